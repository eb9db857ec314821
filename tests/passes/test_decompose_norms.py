"""BatchNorm, LayerNorm, InstanceNorm and GroupNorm compile to native reductions and elementwise
kernels (decompose_norms, specialize_training), forward and gradient, in training and in
inference, with the numpy references' results; hybridized Gluon layers train like eager ones."""
import sys
from pathlib import Path

import numpy as np
import pytest

from graphc import autograd, nd
from graphc.compiler import compile_graph
from graphc.gluon import nn
from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.decompose_norms import decompose_norms, specialize_training
from graphc.runtime.lower import HostStep

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))     # the operators' test harness
from gradcheck import build, numeric_grads, reverse_mode  # noqa: E402

RNG = np.random.default_rng(11)
NORMS = ("BatchNorm", "LayerNorm", "InstanceNorm", "GroupNorm")


def _data(shape, dtype="float32", offset=0.0):
    return (RNG.standard_normal(shape) * 2.0 + offset).astype(dtype)


def _inputs(op, shape, attrs, dtype):
    x = _data(shape, dtype, offset=3.0)          # a mean far from 0: two-pass variance matters
    if op == "BatchNorm":
        c = shape[attrs.get("axis", 1) % len(shape)]
        return [x, _data((c,), dtype), _data((c,), dtype), _data((c,), dtype),
                (RNG.random(c) + 0.5).astype(dtype)]
    if op == "LayerNorm":
        c = shape[attrs.get("axis", -1) % len(shape)]
    elif op == "InstanceNorm":
        c = shape[1]
    else:
        c = attrs["num_groups"]
    return [x, _data((c,), dtype), _data((c,), dtype)]


CASES = [
    ("BatchNorm", (4, 3, 5, 6), dict(fix_gamma=False)),
    ("BatchNorm", (4, 3, 5, 6), dict(fix_gamma=True, momentum=0.7)),
    ("BatchNorm", (6, 5, 4), dict(axis=-1, fix_gamma=False, eps=1e-5)),
    ("BatchNorm", (8, 7), dict(fix_gamma=False)),
    ("BatchNorm", (4, 3, 5, 6), dict(fix_gamma=False, use_global_stats=True)),
    ("BatchNorm", (2, 3, 4, 5, 3), dict(fix_gamma=False, output_mean_var=True)),
    ("LayerNorm", (4, 10), dict()),
    ("LayerNorm", (3, 6, 5), dict(axis=1, eps=1e-3)),
    ("LayerNorm", (2, 3, 7), dict(axis=-1, output_mean_var=True)),
    ("InstanceNorm", (3, 4, 5, 6), dict()),
    ("InstanceNorm", (2, 3, 9), dict(eps=1e-5)),
    ("GroupNorm", (3, 6, 4, 5), dict(num_groups=3)),
    ("GroupNorm", (2, 4, 7), dict(num_groups=1, output_mean_var=True)),
    ("GroupNorm", (2, 8, 3, 3), dict(num_groups=8)),
]


def _host_ops(prog):
    return [s.node.op for s in prog.steps if isinstance(s, HostStep)]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op, shape, attrs", CASES)
def test_every_output_compiles_natively_and_matches_the_reference(op, shape, attrs, dtype, training):
    arrays = _inputs(op, shape, attrs, dtype)
    b, _, _ = build(op, arrays, attrs)
    node = b.nodes[-1]
    g = b.build(node.outputs)                   # the hidden statistics too
    d = decompose_norms(g, training=training)
    verify(d)
    assert not any(n.op in NORMS for n in d.nodes)
    want = interpret(g, arrays, training=training)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(rtol=1e-11, atol=1e-11)
    for got, ref in zip(interpret(d, arrays, training=training), want):
        np.testing.assert_allclose(got, ref, **tol)
    prog = compile_graph(g, training=training, cache=False, check=True)
    assert _host_ops(prog) == []
    for got, ref in zip(prog(arrays), want):
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, **tol)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("op, shape, attrs", CASES)
def test_compiled_gradient_matches_the_interpreted_one(op, shape, attrs, training):
    arrays = _inputs(op, shape, attrs, "float64")
    b, xs, outs = build(op, arrays, attrs)
    heads = [RNG.standard_normal(o.shape) for o in outs[:1]]
    hs = [b.var("g0", TensorType(heads[0].shape, "float64"), kind="ograd")]
    wrt = [0, 1, 2]
    grads = reverse_mode(b, outs[:1], hs, [xs[i] for i in wrt])
    g = b.build([x for x in grads if x is not None])
    feed = arrays + heads
    prog = compile_graph(g, training=training, cache=False, check=True)
    assert _host_ops(prog) == []
    for got, ref in zip(prog(feed), interpret(g, feed, training=training)):
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op, shape, attrs", [CASES[0], CASES[2], CASES[7], CASES[9], CASES[11]])
def test_compiled_training_gradient_matches_finite_differences(op, shape, attrs):
    arrays = _inputs(op, shape, attrs, "float64")
    b, xs, outs = build(op, arrays, attrs)
    head = RNG.standard_normal(outs[0].shape)
    hs = [b.var("g0", TensorType(head.shape, "float64"), kind="ograd")]
    grads = reverse_mode(b, outs[:1], hs, xs[:3])
    prog = compile_graph(b.build(grads), training=True, cache=False)
    got = prog(arrays + [head])
    n_out = 5 if op == "BatchNorm" else 3
    heads = [head] + [np.zeros(o.shape) for o in outs[1:n_out]]
    want = numeric_grads(op, arrays, attrs, heads, [0, 1, 2], training=True)
    for gg, w in zip(got, want):
        np.testing.assert_allclose(gg, w, rtol=1e-5, atol=1e-6)


def test_specialize_training_turns_the_flag_into_a_constant_and_folds_it():
    b = GraphBuilder("flag")
    x = b.var("x", TensorType((4, 3)))
    g = b.build([b.F._is_training(x) * x])
    for training in (True, False):
        s = specialize_training(g, training=training)
        verify(s)
        assert not any(n.op == "_is_training" for n in s.nodes)
        a = _data((4, 3))
        np.testing.assert_array_equal(interpret(s, [a])[0], a * float(training))
        np.testing.assert_array_equal(compile_graph(g, training=training, cache=False)([a])[0], a * float(training))
    # x * 1 disappears in training
    assert [n.op for n in specialize_training(g, training=True).op_nodes()] == []


def test_inference_batchnorm_after_a_convolution_still_folds_into_it():
    b = GraphBuilder("convbn")
    x = b.var("x", TensorType((2, 3, 6, 6)))
    w = b.var("w", TensorType((4, 3, 3, 3)), "param")
    c = b.F.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True)
    ps = [b.var(n, TensorType((4,)), "param") for n in ("gamma", "beta", "mm", "mv")]
    g = b.build([b.F.BatchNorm(c, *ps, fix_gamma=False)])
    arrays = [_data((2, 3, 6, 6)), _data((4, 3, 3, 3)), _data((4,)), _data((4,)), _data((4,)),
              (RNG.random(4) + 0.5).astype("float32")]
    prog = compile_graph(g, training=False, cache=False, check=True)
    assert _host_ops(prog) == []
    # folded: a convolution with an epilogue, no reduction and no separate normalising pass
    kernels = [s.kernel.name for s in prog.steps if not isinstance(s, HostStep)]
    assert not any("reduce" in k for k in kernels)
    np.testing.assert_allclose(prog(arrays)[0], interpret(g, arrays)[0], rtol=1e-4, atol=1e-4)


# -- hybridized Gluon layers: forward, gradients and moving statistics like eager ---------------

def _layer_cases():
    return [
        ("bn_axis1", lambda: nn.BatchNorm(in_channels=3), (4, 3, 5, 5)),
        ("bn_axis-1_gamma", lambda: nn.BatchNorm(axis=-1, in_channels=6, momentum=0.5), (5, 4, 6)),
        ("bn_fix_gamma", lambda: nn.BatchNorm(scale=False, in_channels=3, center=False), (4, 3, 5, 5)),
        ("bn_global_stats", lambda: nn.BatchNorm(use_global_stats=True, in_channels=3), (4, 3, 5, 5)),
        ("layernorm", lambda: nn.LayerNorm(in_channels=12), (6, 12)),
        ("layernorm_axis1", lambda: nn.LayerNorm(axis=1, in_channels=5), (3, 5, 4)),
        ("instancenorm", lambda: nn.InstanceNorm(in_channels=3), (2, 3, 4, 5)),
        ("groupnorm", lambda: nn.GroupNorm(num_groups=2), (3, 4, 3, 3)),
    ]


def _perturb(net, seed):
    rng = np.random.default_rng(seed)
    for p in net.collect_params().values():
        v = rng.random(p.shape) + 0.5 if p.name.endswith("var") else rng.standard_normal(p.shape) * 0.5
        p.set_data(nd.array(v.astype("float32")))


@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("name, make, shape", _layer_cases(), ids=[c[0] for c in _layer_cases()])
def test_hybridized_layer_trains_like_the_eager_one(name, make, shape, train_mode):
    x = nd.array(_data(shape, offset=2.0))
    head = nd.array(_data(shape))
    results = []
    for hybrid in (False, True):
        net = make()
        net.initialize()
        _perturb(net, 5)
        if hybrid:
            net.hybridize()
        xs = x.copy()
        xs.attach_grad()
        outs = []
        for _ in range(2):                     # the second step sees the moved statistics
            with autograd.record(train_mode=train_mode):
                y = net(xs)
            # backward in the forward's mode: a hybridized block's compiled backward is built
            # for it (eager would otherwise differentiate the other mode's formula)
            y.backward(head, train_mode=train_mode)
            outs.append((y.asnumpy(), xs.grad.asnumpy().copy(),
                         {k.split("_", 1)[-1]: (p.data().asnumpy().copy(), None if p.grad_req == "null"
                                                 else p.grad().asnumpy().copy())
                          for k, p in net.collect_params().items()}))
        results.append(outs)
    for (ye, ge, pe), (yh, gh, ph) in zip(*results):
        np.testing.assert_allclose(yh, ye, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gh, ge, rtol=1e-3, atol=1e-4)
        assert pe.keys() == ph.keys()
        for k in pe:
            np.testing.assert_allclose(ph[k][0], pe[k][0], rtol=1e-5, atol=1e-6, err_msg=k)
            if pe[k][1] is not None:
                np.testing.assert_allclose(ph[k][1], pe[k][1], rtol=1e-3, atol=1e-4, err_msg=k)


def test_dropout_outside_training_is_the_identity_in_compiled_programs():
    b = GraphBuilder("drop")
    x = b.var("x", TensorType((4, 5)))
    out, mask = b.F.Dropout(x, p=0.3).value.node.outputs
    g = b.build([b.wrap(out) * 2.0, b.wrap(mask)])
    a = _data((4, 5))
    prog = compile_graph(g, training=False, cache=False, check=True)
    assert _host_ops(prog) == []
    got = prog([a])
    np.testing.assert_array_equal(got[0], a * 2.0)
    np.testing.assert_array_equal(got[1], np.ones_like(a))
    # in training the mask is drawn in a kernel too (runtime/dropout_kernel.py)
    assert _host_ops(compile_graph(g, training=True, cache=False)) == []


@pytest.mark.parametrize("training", [True, False])
def test_the_centred_input_is_never_stored_it_fuses_into_each_consumer(training):
    from graphc.passes.pipeline import lower_pipeline
    arrays = _inputs("BatchNorm", (4, 3, 5, 6), {}, "float32")
    b, _, outs = build("BatchNorm", arrays, dict(fix_gamma=False))
    lowered = lower_pipeline(training)(b.build(outs[:1]))
    # the full-size nodes left outside fused bodies: only the fused output pass
    full = [n.op for n in lowered.op_nodes() if n.types[0].shape == (4, 3, 5, 6)]
    assert full == ["_fused_elementwise"], full
