"""Compiled convolutions (im2col + GEMM, 1x1 GEMM, depthwise direct, col2im) and their
gradients match the numpy references of ops/declarations/conv.py."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.fused import conv_geometry
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate
from graphc.passes.memory import check_plan
from graphc.runtime.executor import HostStep

RNG = np.random.default_rng(7)


def _check(graph, dtype, arrays=None, native=True):
    arrays = arrays or [RNG.standard_normal(n.types[0].shape).astype(dtype) for n in graph.inputs]
    prog = compile_graph(graph, cache=False, check=True)
    check_plan(prog.fused, prog.plan)
    if native:
        host = [s.node.op for s in prog.steps if isinstance(s, HostStep)]
        assert host == [], f"ran on the host: {host}"
    got = prog(arrays)
    ref = interpret(graph, arrays)
    tol = 2e-5 if dtype == "float32" else 1e-11
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        scale = max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * scale)
    return prog


def _conv_graph(x_shape, w_shape, dtype, bias=False, op="Convolution", act=None, **attrs):
    gb = GraphBuilder(op.lower())
    x = gb.var("x", TensorType(x_shape, dtype))
    w = gb.var("w", TensorType(w_shape, dtype), "param")
    args = [x, w]
    if bias:
        nf = attrs["num_filter"]
        args.append(gb.var("b", TensorType((nf,), dtype), "param"))
    y = getattr(gb.F, op)(*args, no_bias=not bias, **attrs)
    if act:
        y = gb.F.Activation(y, act_type=act)
    return gb.build([y])


# (data shape, weight shape, attrs): 1-D, 2-D, 3-D; stride, pad, dilate, groups, 1x1, depthwise
CONV_CASES = [
    ((2, 3, 11), (4, 3, 3), dict(kernel=(3,), num_filter=4)),
    ((2, 3, 12), (6, 3, 5), dict(kernel=(5,), stride=(2,), pad=(2,), dilate=(1,), num_filter=6)),
    ((1, 4, 9, 9), (8, 4, 3, 3), dict(kernel=(3, 3), pad=(1, 1), num_filter=8)),
    ((2, 4, 10, 9), (8, 4, 3, 3), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=8)),
    ((2, 3, 13, 11), (5, 3, 7, 7), dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=5)),
    # rows of 40 outputs at stride 2: im2col's inner loop runs in two overlapping vector spans
    ((1, 3, 5, 80), (4, 3, 3, 3), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4)),
    # three planes, ten output rows: im2col runs the rows in parallel (an RGB stem)
    ((1, 3, 20, 24), (4, 3, 5, 5), dict(kernel=(5, 5), stride=(2, 2), pad=(2, 2), num_filter=4)),
    ((3, 4, 7, 8), (8, 2, 3, 3), dict(kernel=(3, 3), pad=(2, 1), dilate=(2, 1), num_group=2, num_filter=8)),
    ((2, 6, 7, 8), (6, 1, 3, 3), dict(kernel=(3, 3), pad=(1, 1), num_group=6, num_filter=6)),        # depthwise
    ((1, 6, 9, 9), (6, 1, 3, 3), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_group=6, num_filter=6)),
    ((2, 4, 5, 6), (8, 4, 1, 1), dict(kernel=(1, 1), num_filter=8)),                                 # 1x1 GEMM
    ((1, 4, 9, 9), (8, 4, 1, 1), dict(kernel=(1, 1), stride=(2, 2), num_filter=8)),                  # 1x1 stride 2
    ((2, 3, 5, 6, 4), (4, 3, 3, 2, 3), dict(kernel=(3, 2, 3), pad=(1, 0, 1), num_filter=4)),
    ((1, 2, 6, 5, 7), (4, 2, 3, 3, 3), dict(kernel=(3, 3, 3), stride=(2, 1, 2), pad=(1, 1, 0), dilate=(1, 2, 1),
                                            num_filter=4)),
    ((2, 3, 4, 4), (4, 3, 5, 5), dict(kernel=(5, 5), pad=(1, 1), num_filter=4)),   # taps reaching past both edges
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_CASES)
def test_convolution_matches_reference(x_shape, w_shape, attrs, dtype):
    _check(_conv_graph(x_shape, w_shape, dtype, bias=True, **attrs), dtype)


DECONV_CASES = [
    ((2, 4, 5), (4, 3, 3), dict(kernel=(3,), stride=(2,), pad=(1,), num_filter=3)),
    ((2, 4, 5, 5), (4, 6, 3, 3), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1), num_filter=6)),
    ((1, 4, 4, 6), (4, 3, 4, 4), dict(kernel=(4, 4), stride=(2, 2), pad=(1, 1), num_group=2, num_filter=6)),
    ((2, 3, 4, 5), (3, 5, 1, 1), dict(kernel=(1, 1), num_filter=5)),
    ((1, 4, 3, 4), (4, 2, 3, 3), dict(kernel=(3, 3), stride=(2, 2), target_shape=(7, 8), num_filter=2)),
    ((1, 2, 3, 4, 3), (2, 3, 3, 3, 3), dict(kernel=(3, 3, 3), stride=(1, 2, 1), dilate=(2, 1, 1), pad=(1, 1, 1),
                                            num_filter=3)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape, w_shape, attrs", DECONV_CASES)
def test_deconvolution_matches_reference(x_shape, w_shape, attrs, dtype):
    _check(_conv_graph(x_shape, w_shape, dtype, bias=True, op="Deconvolution", **attrs), dtype)


@pytest.mark.parametrize("x_shape, w_shape, attrs", [CONV_CASES[i] for i in (0, 3, 5, 6, 8, 11)])
def test_convolution_gradients_compile_and_match(x_shape, w_shape, attrs):
    g = _conv_graph(x_shape, w_shape, "float64", bias=True, act="tanh", **attrs)
    gg = differentiate(g)
    ops = {n.op for n in gg.graph.op_nodes()}
    assert {"_conv_data_grad", "_conv_weight_grad"} <= ops
    prog = _check(gg.graph, "float64")
    assert any("col2im" in k.name or "gemm" in k.name for k in prog.kernels())


@pytest.mark.parametrize("x_shape, w_shape, attrs", [DECONV_CASES[i] for i in (1, 2)])
def test_deconvolution_gradients_compile_and_match(x_shape, w_shape, attrs):
    g = _conv_graph(x_shape, w_shape, "float64", op="Deconvolution", **attrs)
    _check(differentiate(g).graph, "float64")


def test_bias_and_activation_run_as_one_epilogue_after_the_gemm():
    g = _conv_graph((1, 4, 9, 9), (8, 4, 3, 3), "float32", bias=True, act="relu", kernel=(3, 3), pad=(1, 1),
                    num_filter=8)
    prog = _check(g, "float32")
    assert [n.op for n in prog.fused.op_nodes()] == ["_fused_conv"]
    names = [k.name for k in prog.kernels()]
    assert [n.split("_")[1] for n in names[:3]] == ["pad", "im2col", "gemm"] and "epilogue" in names[3]
    assert len(names) == 4


def test_residual_add_joins_the_epilogue():
    gb = GraphBuilder("res")
    F = gb.F
    x = gb.var("x", TensorType((1, 8, 6, 6)))
    w = gb.var("w", TensorType((8, 8, 3, 3)), "param")
    y = F.relu(F.Convolution(x, w, kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True) + x)
    prog = _check(gb.build([y]), "float32")
    assert [n.op for n in prog.fused.op_nodes()] == ["_fused_conv"]


def test_one_by_one_convolution_is_a_plain_gemm_and_depthwise_a_direct_loop():
    p1 = _check(_conv_graph((2, 4, 5, 6), (8, 4, 1, 1), "float32", kernel=(1, 1), num_filter=8), "float32")
    assert len(p1.kernels()) == 1 and "gemm" in p1.kernels()[0].name and p1.plan.scratch == {}
    p2 = _check(_conv_graph((2, 6, 7, 8), (6, 1, 3, 3), "float32", kernel=(3, 3), pad=(1, 1), num_group=6,
                            num_filter=6), "float32")
    assert [k.name.split("_")[1] for k in p2.kernels()[:2]] == ["pad", "depthwise"]


def test_large_batches_run_in_chunks_that_fit_the_scratch_budget(monkeypatch):
    import graphc.ops.fused as fused
    monkeypatch.setattr(fused, "SCRATCH_BUDGET", 4 * (3 * 9 * 25 + 3 * 49) * 2)   # two images' columns
    g = _conv_graph((5, 3, 5, 5), (4, 3, 3, 3), "float32", kernel=(3, 3), pad=(1, 1), num_filter=4)
    geo = conv_geometry(next(n for n in g.nodes if n.op == "Convolution"))
    prog = _check(g, "float32")
    assert max(p.nbytes for p in prog.plan.scratch.values()) == 2 * (geo.col_elems + geo.padded_elems) * 4
    gg = differentiate(g)
    _check(gg.graph, "float32")


def test_scratch_never_overlaps_a_value_live_at_its_step():
    gb = GraphBuilder("two")
    F = gb.F
    x = gb.var("x", TensorType((1, 4, 8, 8)))
    w1 = gb.var("w1", TensorType((4, 4, 3, 3)), "param")
    w2 = gb.var("w2", TensorType((4, 4, 3, 3)), "param")
    a = F.Convolution(x, w1, kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True)
    b = F.Convolution(F.relu(a), w2, kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True)
    prog = _check(gb.build([b + a]), "float32")
    assert len(prog.plan.scratch) == 2


def test_convolutions_of_one_geometry_share_their_kernels():
    gb = GraphBuilder("shared")
    F = gb.F
    x = gb.var("x", TensorType((1, 4, 8, 8)))
    y = x
    for i in range(3):
        w = gb.var(f"w{i}", TensorType((4, 4, 3, 3)), "param")
        y = F.relu(F.Convolution(y, w, kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True))
    prog = _check(gb.build([y]), "float32")
    names = [k.name for k in prog.kernels() if "epilogue" not in k.name]
    assert len(names) == 9 and len(set(names)) == 3
