"""Issue 14's per-workload target lines (bench/targets.py): the verdict follows the spreads, and
each target is judged against the reference the issue names; and the environment variants'
choice of which of a peer's variants to rerun (bench/run.py)."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import targets  # noqa: E402


def rec(system, samples, unit="ms", variant="v", wl="W7", **kw):
    import statistics
    return {"system": system, "variant": variant, "workload": wl, "unit": unit,
            "median": statistics.median(samples), "samples": samples, **kw}


def test_judge_needs_the_whole_spread_on_one_side():
    assert targets.judge(1.1, 1.3, 1.0) == "met"
    assert targets.judge(0.7, 0.95, 1.0) == "not met"
    assert targets.judge(0.9, 1.1, 1.0).startswith("not decided")


def test_w7_is_judged_against_pytorch_eager_not_the_fastest_peer():
    g = rec("graphc", [10.0, 11.0], unit="steps/s", variant="imperative")
    eager = rec("torch", [8.0, 9.0], unit="steps/s", variant="eager")
    thp = rec("torch", [9.0, 9.5], unit="steps/s", variant="eager [THP]", base_variant="eager")
    jax = rec("jax", [50.0, 60.0], unit="steps/s", variant="op-by-op")
    (line,) = targets.lines("W7", [g, eager, thp, jax], [])
    assert "torch eager [THP]" in line and "**met**" in line


def test_w8a_ignores_torch_eager_and_mxnet():
    g = rec("graphc", [100.0, 105.0], wl="W8a", variant="hybrid")
    slow_ref = rec("jax", [120.0, 125.0], wl="W8a", variant="jit")
    eager = rec("torch", [50.0, 55.0], wl="W8a", variant="eager")
    mx = rec("mxnet", [40.0, 45.0], wl="W8a", variant="hybrid")
    (line,) = targets.lines("W8a", [g, slow_ref, eager, mx], [])
    assert "jax jit" in line and "**met**" in line


def test_w6_time_limits_and_w5b_ratio():
    cold = rec("graphc", [0.6, 0.7], unit="s", wl="W6", variant="hybrid-cold")
    warm = rec("graphc", [0.05, 0.12], unit="s", wl="W6", variant="hybrid-warm")
    cold_line, warm_line = targets.lines("W6", [cold, warm], [])
    assert "**not met**" in cold_line and "not decided" in warm_line
    g = rec("graphc", [10.0], unit="steps/s", wl="W5b", ratio_vs_w5=0.95,
            ratio_vs_w5_spread=[0.92, 0.97])
    (line,) = targets.lines("W5b", [g], [])
    assert "0.95" in line and "**met**" in line


def test_no_graphc_measurement_is_not_decided():
    (line,) = targets.lines("W2", [rec("onnxruntime", [20.0], unit="us", wl="W2")], [])
    assert "not decided" in line
    assert targets.lines("W10", [], []) == []


def test_env_variants_rerun_only_the_fastest_base_variants():
    import run
    base = [rec("torch", [5.0, 6.0], variant="compile"), rec("torch", [50.0], variant="eager"),
            rec("torch", [4.0, 4.5], variant="compile max-autotune"),
            {"system": "torch", "variant": "jit.trace", "workload": "W7", "error": "x"}]
    assert run.fastest_variants(base) == "compile max-autotune,compile"
    assert run.fastest_variants(base[:2]) is None           # two or fewer: run them all
    commas = [rec("numpy", [1.0], variant="hand-written, out="), rec("numpy", [2.0]),
              rec("numpy", [3.0], variant="w")]
    assert run.fastest_variants(commas) is None             # not expressible as --variants


def test_a_timed_out_script_lists_its_unmeasured_variants(tmp_path, monkeypatch):
    import run
    (tmp_path / "fake_w.py").write_text(
        "import json, time\n"
        "print('@@BENCH ' + json.dumps({'system': 'fake', 'variant': 'eager', 'workload': 'W2',"
        " 'unit': 'us', 'median': 1.0}), flush=True)\n"
        "time.sleep(30)\n")
    monkeypatch.setattr(run, "SYSTEMS_DIR", tmp_path)
    monkeypatch.setattr(run, "WORK", tmp_path)
    monkeypatch.setattr(run, "PROC_TIMEOUT_WL", {"W2": 3})
    recs = run.run_script("fake", "W2", sys.executable, True, {})
    assert recs[0]["variant"] == "eager" and "timed out" in recs[0]["note"]
    assert recs[1]["variant"] == "(variants after eager)" and "not measured" in recs[1]["error"]
