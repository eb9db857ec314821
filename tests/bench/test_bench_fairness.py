"""The benchmark harness's fairness logic (issue 14) and the new workloads' shared model code:
lower bounds, spread-aware verdicts, per-step loss comparison, the peers' environment variants,
and the Gluon Transformer blocks of W8a/W8b run on graphc against their numpy reference."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "systems"))

import bounds  # noqa: E402
import env_variants  # noqa: E402
import report_fair  # noqa: E402


@pytest.fixture(autouse=True)
def _keep_environment():
    """bench/systems/_common.py pins thread variables (and MXNET_*) in os.environ on import:
    undo that so later tests in this process see the environment they started with."""
    import os
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def rec(system, samples, unit="ms", **kw):
    return {"system": system, "variant": "v", "workload": "W2", "unit": unit,
            "median": float(np.median(samples)), "samples": samples, **kw}


# ------------------------------------------------------------------ bounds
def test_flop_counts_match_the_workload_definitions():
    # W3: 0.82 GFLOP per step (WORKLOADS.md); W4: 3.63 GFLOP direct; W7 is W3 at batch 64
    assert bounds.WORK["W3"][0] == pytest.approx(0.821e9, rel=2e-3)
    assert bounds.WORK["W4"][0] == pytest.approx(3.63e9)
    assert bounds.WORK["W7"][0] == pytest.approx(bounds.WORK["W3"][0] / 4)
    # BERT-base layer at 128 tokens: 4 d^2 + 2 d f projections plus attention
    layer = 2 * 128 * (4 * 768 ** 2 + 2 * 768 * 3072) + 4 * 128 * 128 * 768
    assert bounds.WORK["W8a"][0] == pytest.approx(12 * layer)


def test_bound_is_the_slower_of_compute_and_memory():
    lim = {"fma": 400.0, "sgemm": 300.0, "triad": 40.0}
    t_peak, t_gemm = bounds.bound_seconds("W3", lim)
    assert t_peak == pytest.approx(bounds.WORK["W3"][0] / 400e9)
    assert t_gemm == pytest.approx(bounds.WORK["W3"][0] / 300e9)
    t_peak, _ = bounds.bound_seconds("W1b", lim)
    assert t_peak == pytest.approx(8 * 2 ** 24 / 40e9)


def test_bound_line_gives_graphcs_fraction():
    results = [{"system": "fma", "workload": "W0", "median": 400.0},
               {"system": "triad", "workload": "W0", "median": 40.0},
               {"system": "numpy", "variant": "sgemm4096", "workload": "W0", "median": 300.0}]
    g = {"system": "graphc", "variant": "hybrid", "unit": "steps/s", "median": 100.0}
    line = bounds.lines("W3", results, [g])[0]
    want = (bounds.WORK["W3"][0] / 400e9) / (1 / 100.0)
    assert f"**{want:.2f}**" in line and "this run's W0" in line


def test_a_disturbed_fma_figure_is_raised_to_the_sgemm_rate():
    results = [{"system": "fma", "workload": "W0", "median": 70.0},
               {"system": "triad", "workload": "W0", "median": 7.0},
               {"system": "numpy", "variant": "sgemm2048", "workload": "W0", "median": 150.0}]
    assert bounds.machine_limits(results)["fma"] == 150.0


# ------------------------------------------------------------------ verdicts
def test_verdict_claims_a_win_only_when_spreads_separate():
    fast = rec("graphc", [1.0, 1.1, 1.2])
    slow = rec("torch", [1.5, 1.6, 1.7])
    overlap = rec("torch", [1.15, 1.3, 1.4])
    assert report_fair.verdict(fast, slow) == "faster"          # ms: lower is faster
    assert report_fair.verdict(slow, fast) == "slower"
    assert report_fair.verdict(fast, overlap).startswith("even")
    up = rec("graphc", [10.0, 11.0], unit="steps/s")
    down = rec("jax", [8.0, 9.0], unit="steps/s")
    assert report_fair.verdict(up, down) == "faster"           # steps/s: higher is faster


# ------------------------------------------------------------------ loss traces
def test_loss_lines_find_the_first_step_that_differs():
    base = [2.5, 1.4, 0.5, 0.1, 0.03]
    g = rec("graphc", [1.0], unit="steps/s", losses=base)
    same = rec("mxnet", [1.0], unit="steps/s", losses=[v + 1e-5 for v in base])
    off = rec("torch", [1.0], unit="steps/s", losses=base[:3] + [0.2, 0.03])
    text = report_fair.loss_lines([g, same, off])[0]
    assert "agree: mxnet v (5 steps" in text
    assert "torch v from step 3" in text


def test_loss_lines_compare_on_the_common_prefix():
    g = rec("graphc", [1.0], unit="steps/s", losses=[1.0, 0.5])
    long = rec("jax", [1.0], unit="steps/s", losses=[1.0, 0.5, 9.0, 9.0])
    assert "(2 steps" in report_fair.loss_lines([g, long])[0]


# ------------------------------------------------------------------ environment variants
def test_graphc_gets_no_variants_and_peers_get_allocators():
    assert env_variants.variants("graphc", "W3", {}, "/x/libjemalloc.so.2") == []
    names = [n for n, _, _ in env_variants.variants("torch", "W4", {}, "/x/libjemalloc.so.2")]
    assert names == ["jemalloc", "THP"]
    (_, upd, _), = env_variants.variants("jax", "W1", {}, "/x/libjemalloc.so.2")
    assert upd["LD_PRELOAD"] == "/x/libjemalloc.so.2"
    assert upd["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def test_missing_jemalloc_and_unset_coretype_are_reported_not_skipped():
    vs = env_variants.variants("mxnet", "W3", {}, None)
    assert [(n, u) for n, u, _ in vs] == [("jemalloc", None), ("OPENBLAS_CORETYPE", None)]
    assert all(reason and "not" in reason for _, _, reason in vs)


def test_openblas_coretype_variant_restores_the_environment():
    env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    vs = env_variants.variants("numpy", "W0", env, None)
    (name, upd, reason), = [v for v in vs if v[0].startswith("OPENBLAS")]
    assert name == "OPENBLAS_CORETYPE=Haswell" and reason is None
    assert upd == env


def test_tag_keeps_the_base_variant_for_labels():
    recs = env_variants.tag([{"system": "torch", "variant": "eager"}], "THP")
    assert recs[0]["variant"] == "eager [THP]" and recs[0]["base_variant"] == "eager"


# ------------------------------------------------------------------ the shared Gluon model code
def _tiny_params(layers, units, ffn, seed):
    import _w7_9 as W
    return W._seeded(W.encoder_layer_shapes(units, ffn) * layers, np.random.default_rng(seed))


@pytest.mark.parametrize("causal", [False, True])
def test_gluon_encoder_matches_numpy_reference_on_graphc(causal):
    import graphc as mx
    import _transformer as T
    import _w7_9 as W
    layers, units, heads, ffn, seq, eps = 2, 16, 2, 32, 6, 1e-5
    flat = _tiny_params(layers, units, ffn, 3)
    x = np.random.default_rng(4).standard_normal((2, seq, units)).astype(np.float32)
    EncoderLayer, Encoder, _ = T.blocks(mx.gluon)
    mask = W.causal_mask(seq) if causal else None
    if causal:
        net = EncoderLayer(units, heads, ffn, eps)
        flat = flat[:16]
        layers = 1
    else:
        net = Encoder(layers, units, heads, ffn, eps)
    net.initialize()
    T.load_flat(net, flat, mx.nd, "tiny encoder")
    net.hybridize()
    args = [mx.nd.array(x)] + ([mx.nd.array(mask)] if causal else [])
    got = net(*args).asnumpy()
    want = W.encoder_np(x, flat, layers, heads, eps, mask)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_causal_mask_blocks_later_positions():
    import _w7_9 as W
    m = W.causal_mask(4)[0]
    assert m.shape == (4, 4) and m[0, 1] < -1e8 and m[1, 0] == 0 and np.all(np.diag(m) == 0)


def test_w7_reference_first_loss_is_the_numpy_forward():
    import _common as C
    import _w7_9 as W
    ws, bs = C.mlp_weights()
    x, y = C.mlp_inputs(W.W7_BATCH)
    losses = W.w7_losses_np(3)
    assert losses[0] == pytest.approx(C.softmax_ce_np(C.mlp_forward_np(x, ws, bs), y), rel=1e-6)
    assert losses[2] < losses[1] < losses[0]      # a descent step on a fixed batch


def test_load_flat_refuses_a_wrong_shape():
    import graphc as mx
    import _transformer as T
    _, Encoder, _ = T.blocks(mx.gluon)
    net = Encoder(1, 8, 2, 16, 1e-5)
    net.initialize()
    flat = _tiny_params(1, 8, 16, 0)
    flat[10] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="parameter 10"):
        T.load_flat(net, flat, mx.nd, "tiny")


def test_report_renders_verdict_bound_and_unavailable_lines():
    import run
    meta = {"machine": {}, "date": "d", "quick": True, "command": "c", "workloads": ["W7"],
            "jemalloc": "not available: x"}
    results = [
        {"system": "fma", "workload": "W0", "median": 400.0, "unit": "GFLOP/s"},
        {"system": "triad", "workload": "W0", "median": 40.0, "unit": "GB/s"},
        {"system": "graphc", "variant": "imperative", "workload": "W7", "unit": "steps/s",
         "median": 100.0, "samples": [90.0, 100.0, 110.0], "losses": [2.5, 1.0]},
        {"system": "mxnet", "variant": "imperative", "workload": "W7", "unit": "steps/s",
         "median": 105.0, "samples": [95.0, 105.0, 115.0], "losses": [2.5, 1.0]},
        {"system": "mxnet", "variant": "[jemalloc]", "workload": "W7", "skip": "not available: y"},
    ]
    text = run.render(results, meta, {})
    sec = text.split("## W7")[1].split("## Notes")[0]
    assert "**even" in sec
    assert "Lower bound on this machine" in sec and "graphc reaches" in sec
    assert "Not measured: mxnet [jemalloc]: not available: y" in sec
    assert "Every step's loss" in sec and "agree: mxnet imperative" in sec
    assert math.isfinite(bounds.WORK["W7"][0])


def test_openblas_variant_only_where_a_gemm_runs():
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    assert not [v for v in env_variants.variants("numpy", "W1b", env, None)
                if v[0].startswith("OPENBLAS")]
    assert [v for v in env_variants.variants("mxnet", "W4", env, None)
            if v[0].startswith("OPENBLAS")]


def test_apply_prepends_to_an_existing_preload():
    env = env_variants.apply({"LD_PRELOAD": "/a.so", "X": "1"},
                             {"LD_PRELOAD": "/j.so", "MALLOC_CONF": "m"})
    assert env == {"LD_PRELOAD": "/j.so:/a.so", "X": "1", "MALLOC_CONF": "m"}


def test_quick_runs_record_the_expensive_variants_as_not_run():
    import run
    recs = run.run_env_variants("torch", "W4", sys.executable, True, {}, "/x/libjemalloc.so.2")
    assert [r["variant"] for r in recs] == ["[jemalloc]", "[THP]"]
    assert all("--quick" in r["skip"] for r in recs)
