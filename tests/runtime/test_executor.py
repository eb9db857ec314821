"""Differential tests: every compiled result is checked against the numpy interpreter."""
import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck

from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import GraphcError
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.memory import check_plan
from graphc.compiler import compile_graph
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory
from graphc.runtime.executor import Program, build_program

import graph_strategies

RNG = np.random.default_rng(1234)


def _arrays(graph, positive=False):
    out = []
    for n in graph.inputs:
        t = n.types[0]
        if t.dtype.startswith("float"):
            a = RNG.standard_normal(t.shape).astype(t.dtype)
            out.append(np.abs(a) + 0.5 if positive else a)
        elif t.dtype == "bool":
            out.append(RNG.integers(0, 2, t.shape).astype(bool))
        else:
            out.append(RNG.integers(-20, 20, t.shape).astype(t.dtype))
    return out


def check(graph, arrays=None, rtol=None, atol=None, positive=False, cache=False):
    arrays = arrays if arrays is not None else _arrays(graph, positive)
    prog = compile_graph(graph, cache=cache)
    check_plan(prog.fused, prog.plan)
    got = prog(arrays)
    ref = interpret(graph, arrays)
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype, (g.shape, r.shape, g.dtype, r.dtype)
        if r.dtype.kind == "f":
            tol = 2e-5 if r.dtype == np.float32 else 1e-10
            np.testing.assert_allclose(g, r, rtol=rtol or tol, atol=atol or tol, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, r)
    return prog


def _unary_graph(op, shape, dtype, **attrs):
    gb = GraphBuilder(op)
    x = gb.var("x", TensorType(shape, dtype))
    return gb.build([getattr(gb.F, op)(x, **attrs)])


FLOAT_UNARY = ["negative", "abs", "sign", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square",
               "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu", "softsign", "softrelu", "erf",
               "floor", "ceil", "round", "trunc", "fix"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", FLOAT_UNARY)
def test_unary_float_ops_match_the_reference(op, dtype):
    positive = op in ("log", "sqrt", "rsqrt", "log1p")
    check(_unary_graph(op, (3, 37), dtype), positive=positive)


@pytest.mark.parametrize("op", ["negative", "abs", "sign", "square", "relu"])
def test_unary_int_ops_match_the_reference(op):
    check(_unary_graph(op, (5, 9), "int32"))


BINARY = ["broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_mod",
          "broadcast_maximum", "broadcast_minimum", "broadcast_power", "broadcast_equal",
          "broadcast_greater", "broadcast_lesser_equal", "broadcast_logical_and", "broadcast_hypot"]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("shapes", [((4, 5), (4, 5)), ((4, 5), (5,)), ((3, 1, 5), (1, 4, 1))])
def test_binary_ops_broadcast_like_numpy(op, dtype, shapes):
    if dtype == "int32" and op in ("broadcast_power", "broadcast_hypot"):
        pytest.skip("float-only formula")
    gb = GraphBuilder(op)
    a = gb.var("a", TensorType(shapes[0], dtype))
    b = gb.var("b", TensorType(shapes[1], dtype))
    g = gb.build([getattr(gb.F, op)(a, b)])
    arrays = _arrays(g, positive=op == "broadcast_power")
    check(g, arrays)


def test_scalar_ops_where_clip_and_cast():
    gb = GraphBuilder("misc")
    F = gb.F
    x = gb.var("x", TensorType((6, 7)))
    c = gb.var("c", TensorType((6, 7)))
    y = F.clip(x * 3.0 - 1.0, a_min=-1.0, a_max=2.0)
    z = F.where(c > 0.0, y, F._rdiv_scalar(x, scalar=2.0))
    i = F.Cast(z * 4.0, dtype="int32")
    g = gb.build([z, F.Cast(i * 3 % 5, dtype="float64"), F.LeakyReLU(x, act_type="elu"),
                  F.LeakyReLU(x, act_type="gelu")])
    check(g)


def test_fused_chain_runs_as_one_kernel():
    gb = GraphBuilder("w1")
    F = gb.F
    x = gb.var("x", TensorType((100_000,)))
    g = gb.build([F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x])
    prog = check(g)
    assert len(prog.kernels()) == 1
    assert "_fused_elementwise" in str(prog)


def test_gemm_bias_relu_epilogue():
    gb = GraphBuilder("fc")
    F = gb.F
    x = gb.var("x", TensorType((33, 20)))
    w = gb.var("w", TensorType((17, 20)), "param")
    b = gb.var("b", TensorType((17,)), "param")
    g = gb.build([F.Activation(F.FullyConnected(x, w, b, num_hidden=17), act_type="relu")])
    prog = check(g, rtol=1e-5, atol=1e-5)
    assert [k.body[0].__class__.__name__ for k in prog.kernels()] == ["Gemm", "Loop"]


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot_and_batch_dot_with_transposes(ta, tb, dtype):
    gb = GraphBuilder("dot")
    F = gb.F
    a = gb.var("a", TensorType((7, 5) if ta else (5, 7), dtype))
    b = gb.var("b", TensorType((3, 7) if tb else (7, 3), dtype))
    p = gb.var("p", TensorType((4, 6, 5) if ta else (4, 5, 6), dtype))
    q = gb.var("q", TensorType((4, 2, 6) if tb else (4, 6, 2), dtype))
    g = gb.build([F.dot(a, b, transpose_a=ta, transpose_b=tb),
                  F.batch_dot(p, q, transpose_a=ta, transpose_b=tb) * 2.0])
    check(g, rtol=1e-5, atol=1e-5)


def test_gemv_row_and_vector_dots():
    gb = GraphBuilder("gemv")
    F = gb.F
    v = gb.var("v", TensorType((9,)))
    m = gb.var("m", TensorType((9, 4)))
    x = gb.var("x", TensorType((1, 9)))
    g = gb.build([F.dot(v, m), F.dot(m, F.Reshape(m, shape=(4, 9)), transpose_a=False),
                  F.dot(x, m), F.dot(v, v)])
    check(g, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, True), (1, False), ((0, 2), True), (2, False)])
def test_reductions_over_axes(op, axis, keepdims):
    gb = GraphBuilder(op)
    x = gb.var("x", TensorType((4, 5, 6)))
    g = gb.build([getattr(gb.F, op)(x * 0.5 + 0.75, axis=axis, keepdims=keepdims)])
    check(g, rtol=1e-5, atol=1e-5)


def test_int_sum_and_max():
    gb = GraphBuilder("isum")
    x = gb.var("x", TensorType((8, 9), "int32"))
    g = gb.build([gb.F.sum(x, axis=1), gb.F.max(x, axis=0)])
    check(g)


def test_views_and_view_outputs():
    gb = GraphBuilder("views")
    F = gb.F
    x = gb.var("x", TensorType((4, 6)))
    r = F.Reshape(F.exp(x), shape=(2, 12))
    g = gb.build([F.sum(r, axis=1), F.Flatten(F.expand_dims(x, axis=0)), F.Reshape(x, shape=(24,)), x])
    check(g)


def test_host_fallback_inside_a_compiled_graph():
    gb = GraphBuilder("host")
    F = gb.F
    x = gb.var("x", TensorType((5, 8)))
    s = F.softmax(F.tanh(x) * 2.0, axis=-1)
    g = gb.build([F.log(s + 1e-6) * -1.0, F.gammaln(s)])       # gammaln has no native lowering
    prog = check(g)
    assert any(not isinstance(r, type(prog._run[0])) for r in prog._run) or len(prog._run) > 1


def _mlp(batch):
    gb = GraphBuilder("mlp")
    F = gb.F
    h = gb.var("data", TensorType((batch, 784)))
    for i, (k, n) in enumerate([(784, 512), (512, 512), (512, 10)]):
        w = gb.var(f"fc{i}_weight", TensorType((n, k)), "param")
        b = gb.var(f"fc{i}_bias", TensorType((n,)), "param")
        h = F.FullyConnected(h, w, b, num_hidden=n)
        if i < 2:
            h = F.Activation(h, act_type="relu")
    return gb.build([h])


@pytest.mark.parametrize("batch", [1, 256])
def test_mlp_forward(batch):
    g = _mlp(batch)
    arrays = [a * 0.05 for a in _arrays(g)]
    prog = check(g, arrays, rtol=1e-4, atol=1e-4)
    assert [n.op for n in prog.fused.op_nodes()] == ["_fused_gemm", "_fused_gemm", "FullyConnected"]
    out = [np.empty((batch, 10), np.float32)]
    res = prog(arrays, outputs=out)
    assert res[0] is out[0]
    np.testing.assert_allclose(out[0], interpret(g, arrays)[0], rtol=1e-4, atol=1e-4)


def test_inputs_are_checked_by_name():
    g = _mlp(1)
    prog = compile_graph(g)
    arrays = _arrays(g)
    arrays[1] = arrays[1].astype(np.float64)
    with pytest.raises(GraphcError, match="'fc0_weight' has dtype float64"):
        prog(arrays)
    arrays = _arrays(g)
    arrays[0] = arrays[0].reshape(784, 1)
    with pytest.raises(GraphcError, match="'data' has shape"):
        prog(arrays)


def test_large_kernels_split_across_threads_and_agree():
    gb = GraphBuilder("big")
    F = gb.F
    x = gb.var("x", TensorType((1 << 20,)))
    y = gb.var("y", TensorType((1 << 9, 1 << 11)))
    g = gb.build([F.sigmoid(x) * F.exp(-x) + F.tanh(x), F.sum(F.exp(y * 0.1), axis=1)])
    prog = check(g, rtol=1e-5, atol=1e-5)
    assert all(k.parallel_loop is not None for k in prog.kernels())


def test_arena_is_reused_across_calls():
    g = _mlp(4)
    prog = compile_graph(g)
    a = _arrays(g)
    r1 = prog(a)[0].copy()
    arena = prog._arenas["cpu(0)"].ctypes.data
    r2 = prog(a)[0]
    assert prog._arenas["cpu(0)"].ctypes.data == arena
    np.testing.assert_array_equal(r1, r2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_strategies.random_graphs(max_ops=7))
def test_random_graphs_compile_to_the_interpreted_result(case):
    g, arrays = case
    check(g, arrays, rtol=1e-4, atol=1e-5)


def test_few_long_rows_still_split_across_threads():
    gb = GraphBuilder("rows")
    F = gb.F
    x = gb.var("x", TensorType((3, 1 << 19)))
    b = gb.var("b", TensorType((3, 1)))
    g = gb.build([F.exp(F.broadcast_add(x, b)) * 0.5])
    prog = check(g)
    assert prog.kernels()[0].parallel_loop.extent == 3


def test_build_program_is_the_package_entry_and_runs_no_passes():
    import graphc.runtime as rt
    assert rt.build_program is build_program and rt.Program is Program
    assert not hasattr(rt, "compile_graph")      # ordering the passes is the front end's job


def test_build_program_compiles_the_graph_it_is_given():
    g = _mlp(2)
    fused = fuse_elementwise(g)
    prog = build_program(g, fused, plan_memory(fused), cache=False)
    assert prog.fused is fused
    arrays = _arrays(g)
    np.testing.assert_allclose(prog(arrays)[0], interpret(g, arrays)[0], rtol=1e-4, atol=1e-4)


def test_build_program_refuses_a_plan_made_for_another_graph():
    g = _mlp(2)
    fused = fuse_elementwise(g)
    other = fuse_elementwise(g)               # same listing, different nodes
    with pytest.raises(GraphcError, match="memory plan was not made for graph"):
        build_program(g, fused, plan_memory(other), cache=False)


def test_build_program_refuses_a_fused_graph_of_another_signature():
    g1, g2 = _mlp(1), _mlp(2)
    fused = fuse_elementwise(g2)
    with pytest.raises(GraphcError, match="is not a transform of"):
        build_program(g1, fused, plan_memory(fused), cache=False)


def test_profiled_program_times_every_step_and_computes_the_same(monkeypatch):
    gb = GraphBuilder("prof")
    F = gb.F
    x = gb.var("x", TensorType((16, 32)))
    w = gb.var("w", TensorType((8, 32)), "param")
    h = F.Activation(F.FullyConnected(x, w, num_hidden=8, no_bias=True), act_type="tanh")
    g = gb.build([F.sum(h, axis=1), F.gammaln(h)])     # gammaln runs on the host
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=n.types[0].shape).astype(np.float32) for n in g.inputs]
    plain = compile_graph(g)
    with pytest.raises(GraphcError, match="profile=True"):
        plain.profile()
    monkeypatch.setenv("GRAPHC_PROFILE", "1")
    prof = compile_graph(g)
    for _ in range(3):
        got = prof(arrays)
    for a, b_ in zip(got, plain(arrays)):
        np.testing.assert_array_equal(a, b_)
    rows = prof.profile()
    kinds = [r[1] for r in rows]
    assert kinds.count("host") == 1 and kinds.count("native") >= 2      # one entry per kernel
    assert all(r[0] >= 0 for r in rows) and rows == sorted(rows, key=lambda r: -r[0])
    assert any(r[3].startswith("gemm 1x16x8x32") for r in rows), rows
    assert prof._calls == 3
