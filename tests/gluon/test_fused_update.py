"""The Trainer's compiled SGD step (fused_update.py) gives the per-parameter SGD.update's
results: momentum, weight decay, clipping, lr/wd multipliers, a learning-rate schedule."""
import numpy as np
import pytest

from graphc import nd
from graphc.gluon import optimizer as opt
from graphc.gluon import lr_scheduler


def run(fused, steps=4, **kw):
    rng = np.random.default_rng(0)
    shapes = [(7, 5), (5,), (3, 4, 2)]
    kw = dict(kw)
    if "schedule" in kw:        # a scheduler has state: one per run
        kw["lr_scheduler"] = lr_scheduler.FactorScheduler(**kw.pop("schedule"))
    o = opt.SGD(**kw)
    o.set_lr_mult({1: 0.5})
    o.set_wd_mult({2: 0.0})
    up = opt.Updater(o)
    ws = [nd.array(rng.normal(size=s).astype(np.float32)) for s in shapes]
    for _ in range(steps):
        gs = [nd.array((rng.normal(size=s) * 3).astype(np.float32)) for s in shapes]
        if fused:
            up(list(range(3)), gs, ws)
        else:
            for i in range(3):
                up(i, gs[i], ws[i])
    return [w.asnumpy() for w in ws], up, o


@pytest.mark.parametrize("kw", [
    dict(learning_rate=0.1),
    dict(learning_rate=0.1, momentum=0.9, wd=1e-3),
    dict(learning_rate=0.05, wd=0.01, clip_gradient=0.5, rescale_grad=1 / 8),
    dict(momentum=0.5, clip_gradient=1.0, schedule=dict(step=2, factor=0.5, base_lr=0.2)),
])
def test_fused_step_equals_the_per_parameter_updates(kw):
    got, up, o = run(True, **kw)
    want, _, o2 = run(False, **kw)
    assert getattr(up, "_fused", None), "the compiled step did not run"
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
    assert o.num_update == o2.num_update


def test_float64_weights_keep_the_numpy_path():
    o = opt.SGD(learning_rate=0.1)
    up = opt.Updater(o)
    ws = [nd.array(np.ones((3,)), dtype="float64"), nd.array(np.ones((2,)), dtype="float64")]
    gs = [nd.array(np.ones((3,)), dtype="float64"), nd.array(np.ones((2,)), dtype="float64")]
    up([0, 1], gs, ws)
    assert not getattr(up, "_fused", None)
    np.testing.assert_allclose(ws[0].asnumpy(), 0.9)


def test_many_parameters_keep_the_numpy_path(monkeypatch):
    from graphc.gluon import fused_update
    monkeypatch.setattr(fused_update, "MAX_PARAMETERS", 2)
    got, up, _ = run(True, learning_rate=0.1, momentum=0.9)
    want, _, _ = run(False, learning_rate=0.1, momentum=0.9)
    assert not getattr(up, "_fused", None)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_large_parameters_split_across_threads_match_numpy(momentum):
    """Parameters big enough for the kernels' parallel loops (several threads each take a range
    of elements), against the float64 formula of SGD.update, three steps."""
    from graphc.gluon.fused_update import FusedSGD
    from graphc.runtime.lower import PARALLEL_WORK
    rng = np.random.default_rng(1)
    shapes = [(PARALLEL_WORK // 4 + 3,), (3, 5), (PARALLEL_WORK // 8, 9)]
    o = opt.SGD(learning_rate=0.05, momentum=momentum, wd=1e-2)
    ws = [nd.array(rng.normal(size=s).astype(np.float32)) for s in shapes]
    ms = [nd.array(np.zeros(s, np.float32)) for s in shapes]
    ref_w = [w.asnumpy().astype(np.float64) for w in ws]
    ref_m = [np.zeros(s) for s in shapes]
    step = FusedSGD(shapes, momentum, None)
    for _ in range(3):
        gs = [nd.array(rng.normal(size=s).astype(np.float32)) for s in shapes]
        step(o, [0, 1, 2], ws, gs, ms)
        for i, g in enumerate(gs):
            g64 = g.asnumpy().astype(np.float64)
            if momentum:
                ref_m[i] = momentum * ref_m[i] - 0.05 * 1e-2 * ref_w[i] - 0.05 * g64
                ref_w[i] = ref_w[i] + ref_m[i]
            else:
                ref_w[i] = (1 - 0.05 * 1e-2) * ref_w[i] - 0.05 * g64
    for i in range(3):
        np.testing.assert_allclose(ws[i].asnumpy(), ref_w[i], rtol=1e-5, atol=1e-6)
        if momentum:
            np.testing.assert_allclose(ms[i].asnumpy(), ref_m[i], rtol=1e-5, atol=1e-6)


def test_momentum_step_is_one_pass():
    """Weight and momentum come out of one loop over w, g and m (runtime/kernel_program.MultiStore),
    not a pass that writes m and a second that reads it back."""
    from graphc.gluon.fused_update import _kernel
    from graphc.runtime.kernel_program import MultiStore
    k = _kernel(40, 0.9, None)
    (loop,) = k.body
    (stmt,) = loop.body
    assert isinstance(stmt, MultiStore) and stmt.outs == ("m", "w")
    assert [b.name for b in k.bufs] == ["coef", "w", "g", "m"]


def test_the_compiled_step_shows_in_the_profiler():
    """mx.profiler's symbolic events include the step (one span per native call), as they did
    when it was a compiled graph."""
    from graphc import profiler
    from graphc.runtime import trace
    with profiler.isolated(profile_symbolic=True):
        profiler.set_state("run")
        run(True, steps=2, learning_rate=0.1, momentum=0.9)
        profiler.set_state("stop")
        spans = [e for e in trace.events if e[0] == "X" and e[1] == "sgd_step"]
    assert len(spans) == 2 and all(e[2] == "kernel" for e in spans)
