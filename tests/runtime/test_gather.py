"""Embedding, take and _backward_take run as native kernels that pick rows through the index
array (kernel_ir.Indirect): compiled results equal the numpy references for clipped, wrapped,
duplicate, negative, huge and NaN indices, along every axis."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep


def check(graph, arrays, exact=True):
    prog = compile_graph(graph)
    got, want = prog(arrays), interpret(graph, arrays)
    for a, w in zip(got, want):
        if exact:
            np.testing.assert_array_equal(a, w)
        else:
            np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)
    return prog


def host_ops(prog):
    return [s.node.op for s in prog.steps if isinstance(s, HostStep)]


@pytest.mark.parametrize("index_dtype", ["float32", "int32", "int64"])
def test_embedding_gathers_rows_with_clipped_indices(index_dtype):
    rng = np.random.default_rng(0)
    b = GraphBuilder("emb")
    idx = b.var("idx", TensorType((7, 5), index_dtype), "input")
    w = b.var("w", TensorType((11, 4), "float32"), "input")
    g = b.build([b.F.Embedding(idx, w, input_dim=11, output_dim=4)])
    ii = rng.integers(-3, 15, (7, 5)).astype(index_dtype)
    if index_dtype == "float32":
        ii[0, 0], ii[0, 1], ii[0, 2] = np.nan, 1e30, 2.7        # NaN and huge clip; 2.7 truncates
    with np.errstate(invalid="ignore"):
        prog = check(g, [ii, rng.normal(size=(11, 4)).astype(np.float32)])
    assert host_ops(prog) == []


@pytest.mark.parametrize("mode", ["clip", "wrap"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_take_and_its_scatter_adjoint_along_every_axis(mode, axis):
    rng = np.random.default_rng(1)
    shape = (3, 6, 5)
    b = GraphBuilder("take")
    a = b.var("a", TensorType(shape, "float32"), "input")
    ix = b.var("i", TensorType((4, 2), "int32"), "input")
    picked = b.F.take(a, ix, axis=axis, mode=mode)
    back = b.F._backward_take(picked * 2.0, ix, axis=axis, mode=mode, shape=shape)
    g = b.build([picked, back])
    # duplicates and out-of-range indices: the scatter adds every contribution
    prog = check(g, [rng.normal(size=shape).astype(np.float32), rng.integers(-9, 10, (4, 2)).astype(np.int32)],
                 exact=False)
    assert host_ops(prog) == []


def test_large_scatter_splits_its_zeroing_across_threads():
    rng = np.random.default_rng(2)
    b = GraphBuilder("scatter")
    gr = b.var("g", TensorType((700, 200), "float32"), "input")
    ix = b.var("i", TensorType((700,), "float32"), "input")
    g = b.build([b.F._backward_take(gr, ix, axis=0, mode="clip", shape=(10000, 200))])
    idx = rng.integers(0, 50, 700).astype(np.float32)        # many duplicates
    prog = check(g, [rng.normal(size=(700, 200)).astype(np.float32), idx], exact=False)
    assert host_ops(prog) == [] and len(prog.kernels()) == 2


def test_take_with_mode_raise_stays_on_the_host_and_raises():
    b = GraphBuilder("raise")
    a = b.var("a", TensorType((4, 3), "float32"), "input")
    ix = b.var("i", TensorType((2,), "int32"), "input")
    prog = compile_graph(b.build([b.F.take(a, ix, axis=0, mode="raise")]))
    assert host_ops(prog) == ["take"]
    with pytest.raises(IndexError, match="out of range"):
        prog([np.zeros((4, 3), np.float32), np.array([0, 7], np.int32)])


def test_hybridized_embedding_trains_like_the_eager_one():
    from graphc import autograd, gluon, nd
    rng = np.random.default_rng(3)
    x = nd.array(rng.integers(0, 30, (6, 4)).astype(np.float32))
    grads = []
    for hybrid in (False, True):
        net = gluon.nn.Embedding(30, 8)
        net.initialize()
        net.weight.set_data(nd.array(np.arange(240, dtype=np.float32).reshape(30, 8) / 100))
        if hybrid:
            net.hybridize()
        with autograd.record():
            y = (net(x) * net(x)).sum()
        y.backward()
        grads.append(net.weight.grad().asnumpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


@pytest.mark.parametrize("mode", ["clip", "wrap"])
@pytest.mark.parametrize("axis,keepdims", [(0, False), (1, True), (-1, False), (2, True)])
def test_pick_reads_one_element_per_position(mode, axis, keepdims):
    rng = np.random.default_rng(4)
    shape = (3, 5, 4)
    a = axis % 3
    idx_shape = shape[:a] + ((1,) if keepdims else ()) + shape[a + 1:]
    b = GraphBuilder("pick")
    x = b.var("x", TensorType(shape, "float32"), "input")
    i = b.var("i", TensorType(idx_shape, "float32"), "input")
    g = b.build([b.F.pick(x, i, axis=axis, keepdims=keepdims, mode=mode)])
    idx = rng.integers(-7, 9, idx_shape).astype(np.float32)
    idx.flat[0], idx.flat[1] = np.nan, 2.9
    prog = check(g, [rng.normal(size=shape).astype(np.float32), idx])
    assert host_ops(prog) == []
