"""The Trainer's compiled steps for Adam, AdamW, NAG, RMSProp and AdaGrad (fused_optimizers.py)
and SGD (fused_update.py)
give the per-parameter numpy updates' weights and states bit for bit (the kernels round every
operation as numpy does: no multiply-add contraction): with and without weight decay and
clipping, lr/wd multipliers, a learning-rate schedule, parameters large enough to be split over
threads."""
import numpy as np
import pytest

from graphc import nd
from graphc.gluon import lr_scheduler
from graphc.gluon import optimizer as opt
from graphc.runtime.lower import PARALLEL_WORK

SMALL = [(7, 5), (5,), (3, 4, 2), (1,)]
LARGE = [(PARALLEL_WORK // 4 + 3,), (3, 5), (PARALLEL_WORK // 8, 9)]


def run(cls, fused, shapes=SMALL, steps=4, **kw):
    rng = np.random.default_rng(0)
    kw = dict(kw)
    if "schedule" in kw:        # a scheduler has state: one per run
        kw["lr_scheduler"] = lr_scheduler.FactorScheduler(**kw.pop("schedule"))
    o = cls(**kw)
    o.set_lr_mult({1: 0.5})
    o.set_wd_mult({2: 0.0, 0: 2.0})
    up = opt.Updater(o)
    ws = [nd.array(rng.normal(size=s).astype(np.float32)) for s in shapes]
    idx = list(range(len(shapes)))
    for _ in range(steps):
        gs = [nd.array((rng.normal(size=s) * 3).astype(np.float32)) for s in shapes]
        if fused:
            up(idx, gs, ws)
        else:
            for i in idx:
                up(i, gs[i], ws[i])
    states = [[x.asnumpy() for x in (s if isinstance(s, tuple) else (s,)) if x is not None] for s in
              (up.states[i] for i in idx)]
    return [w.asnumpy() for w in ws], states, up, o


CASES = [
    # SGD's compiled step (fused_update.py), also bit for bit, and NAG without momentum, which is SGD
    (opt.SGD, dict(learning_rate=0.1, momentum=0.9, wd=1e-2, clip_gradient=1.0, rescale_grad=0.5)),
    (opt.SGD, dict(learning_rate=0.1, wd=1e-2)),
    (opt.NAG, dict(learning_rate=0.1, wd=1e-2, clip_gradient=1.0)),
    (opt.Adam, dict(learning_rate=0.01)),
    (opt.Adam, dict(learning_rate=0.01, wd=1e-2, clip_gradient=2.0, rescale_grad=1 / 8)),
    (opt.Adam, dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=1e-6,
                    schedule=dict(step=2, factor=0.5, base_lr=0.05))),
    (opt.AdamW, dict(learning_rate=0.01, wd=1e-2)),
    (opt.AdamW, dict(learning_rate=0.01, wd=1e-2, clip_gradient=1.0, correct_bias=False)),
    (opt.NAG, dict(learning_rate=0.05, momentum=0.9)),
    (opt.NAG, dict(learning_rate=0.05, momentum=0.9, wd=1e-2, clip_gradient=1.5, rescale_grad=0.5,
                   schedule=dict(step=2, factor=0.5, base_lr=0.05))),
    (opt.RMSProp, dict(learning_rate=0.01)),
    (opt.RMSProp, dict(learning_rate=0.01, wd=1e-2, clip_gradient=2.0, clip_weights=1.2)),
    (opt.RMSProp, dict(learning_rate=0.01, centered=True)),
    (opt.RMSProp, dict(learning_rate=0.01, centered=True, wd=1e-2, clip_gradient=2.0, clip_weights=1.2,
                       schedule=dict(step=2, factor=0.5, base_lr=0.01))),
    (opt.AdaGrad, dict(learning_rate=0.1)),
    (opt.AdaGrad, dict(learning_rate=0.1, wd=1e-2, clip_gradient=2.0, rescale_grad=1 / 4)),
]


def _ids():
    return [f"{c.__name__}-{'-'.join(sorted(k))}" for c, k in CASES]


@pytest.mark.parametrize("cls,kw", CASES, ids=_ids())
def test_fused_step_equals_the_per_parameter_updates(cls, kw):
    got_w, got_s, up, o = run(cls, True, **kw)
    want_w, want_s, _, o2 = run(cls, False, **kw)
    assert getattr(up, "_fused", None), "the compiled step did not run"
    for a, b in zip(got_w, want_w):
        np.testing.assert_array_equal(a, b)
    for sa, sb in zip(got_s, want_s):
        for a, b in zip(sa, sb):
            np.testing.assert_array_equal(a, b)
    assert o.num_update == o2.num_update


@pytest.mark.parametrize("cls,kw", [
    (opt.Adam, dict(learning_rate=0.01, wd=1e-2)),
    (opt.NAG, dict(learning_rate=0.05, momentum=0.9, wd=1e-2)),
    (opt.RMSProp, dict(learning_rate=0.01, centered=True, wd=1e-3)),
    (opt.AdaGrad, dict(learning_rate=0.1, wd=1e-3)),
], ids=lambda x: getattr(x, "__name__", ""))
def test_large_parameters_split_across_threads(cls, kw):
    got_w, got_s, up, _ = run(cls, True, shapes=LARGE, steps=3, **kw)
    want_w, want_s, _, _ = run(cls, False, shapes=LARGE, steps=3, **kw)
    assert getattr(up, "_fused", None)
    for a, b in zip(got_w, want_w):
        np.testing.assert_array_equal(a, b)
    for sa, sb in zip(got_s, want_s):
        for a, b in zip(sa, sb):
            np.testing.assert_array_equal(a, b)


def test_adam_matches_the_float64_formula():
    """Against Adam's formula itself (float64), not only the numpy update: three steps."""
    rng = np.random.default_rng(3)
    shapes = [(11,), (4, 6)]
    o = opt.Adam(learning_rate=0.01, wd=1e-2)
    up = opt.Updater(o)
    ws = [nd.array(rng.normal(size=s).astype(np.float32)) for s in shapes]
    ref = [w.asnumpy().astype(np.float64) for w in ws]
    mean = [np.zeros(s) for s in shapes]
    var = [np.zeros(s) for s in shapes]
    for t in range(1, 4):
        gs = [nd.array(rng.normal(size=s).astype(np.float32)) for s in shapes]
        up([0, 1], gs, ws)
        for i, g in enumerate(gs):
            g64 = g.asnumpy().astype(np.float64) + 1e-2 * ref[i]
            mean[i] = 0.9 * mean[i] + 0.1 * g64
            var[i] = 0.999 * var[i] + 0.001 * g64 ** 2
            lr_t = 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            ref[i] = ref[i] - lr_t * mean[i] / (np.sqrt(var[i]) + 1e-8)
    assert getattr(up, "_fused", None)
    for w, r in zip(ws, ref):
        np.testing.assert_allclose(w.asnumpy(), r, rtol=1e-5, atol=1e-6)


def test_adam_step_is_one_pass():
    """Weight, mean and variance come out of one loop over w, g, mean and var."""
    from graphc.gluon.fused_optimizers import _kernel, fused_rule
    from graphc.runtime.kernel_program import MultiStore
    o = opt.Adam()
    w = nd.array(np.zeros(40, np.float32))
    rule = fused_rule(o, [w], [w], [o.create_state(0, w)])
    (loop,) = _kernel(40, rule).body
    (stmt,) = loop.body
    assert isinstance(stmt, MultiStore) and stmt.outs == ("w", "mean", "var")


@pytest.mark.parametrize("make", [
    lambda: (opt.Adam(), "float64"),
    lambda: (opt.Adam(multi_precision=True), "float16"),
    lambda: (opt.Adamax(), "float32"),
])
def test_what_it_does_not_cover_keeps_the_numpy_path(make):
    o, dtype = make()
    up = opt.Updater(o)
    ws = [nd.array(np.ones((3,)), dtype=dtype), nd.array(np.ones((2,)), dtype=dtype)]
    gs = [nd.array(np.ones((3,)), dtype=dtype), nd.array(np.ones((2,)), dtype=dtype)]
    up([0, 1], gs, ws)
    assert not getattr(up, "_fused", None)
    assert not np.allclose(ws[0].asnumpy(), 1.0)     # the numpy update did run


def test_gluon_trainer_takes_the_compiled_adam_step():
    from graphc import autograd, gluon
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(8, activation="relu", in_units=5), gluon.nn.Dense(3, in_units=8))
    net.initialize()
    x = nd.array(np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "wd": 1e-3})
    before = [p.data().asnumpy().copy() for p in net.collect_params().values()]
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    trainer.step(4)
    (updater,) = trainer._updaters
    fused = list(updater._fused.values())
    assert len(fused) == 1 and type(fused[0]).__name__ == "FusedStep" and fused[0].rule.name == "adam"
    after = [p.data().asnumpy() for p in net.collect_params().values()]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def _mul_sub(n, flags):
    from graphc.ops import scalar as S
    from graphc.runtime.kernel_ir import Buf, Index, Kernel, Load, Loop
    from graphc.runtime.kernel_program import MultiStore
    at = Index((("i", 1),))
    a, b, c = (S.arg(i, "float32") for i in range(3))
    stmt = MultiStore(("c",), at, (a * b - c,), (Load("a", at), Load("b", at), Load("c", at)), flags=flags)
    return Kernel("mul_sub", [Buf(x, "float32", n) for x in "abc"], [Loop("i", n, [stmt])], work=4 * n)


def test_multistore_without_flags_rounds_every_operation_as_numpy():
    """flags=() (what the optimizer kernels use): a * b - c is a rounded product, then a rounded
    difference, even where the CPU has fused multiply-add (which would round once)."""
    from graphc.runtime.kernel_program import KernelProgram
    rng = np.random.default_rng(5)
    n = 4099
    a = rng.normal(size=n).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    c0 = (a * b).astype(np.float32)       # cancels to the product's rounding error under an fma
    want = a * b - c0
    c = c0.copy()
    KernelProgram("mul_sub_exact", [(_mul_sub(n, ()), [0, 1, 2])], 3, cache=False)([a, b, c])
    np.testing.assert_array_equal(c, want)
    assert "floating-point flags: none" in "\n".join(_mul_sub(n, ()).body[0].body[0].lines(""))
