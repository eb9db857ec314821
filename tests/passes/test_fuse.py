"""Elementwise, reduction-prologue and GEMM-epilogue fusion."""
import numpy as np

from graphc.ops.builder import GraphBuilder
from graphc.ops.fused import format_fused
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.fuse import fuse_elementwise


def _run_both(g, arrays):
    return interpret(g, arrays), interpret_fused(fuse_elementwise(g), arrays)


def interpret_fused(g, arrays):
    """Interpret a fused graph by running each fused body with the interpreter."""
    env = {id(n): a for n, a in zip(g.inputs, arrays)}
    for n in g.nodes:
        if n.is_var:
            continue
        if n.is_const:
            env[id(n)] = n.attrs["value"]
        elif n.op.startswith("_fused"):
            env[id(n)] = interpret(n.attrs["body"].graph, [env[id(v.node)] for v in n.inputs])[0]
        else:
            from graphc.ops.registry import get_op
            env[id(n)] = get_op(n.op).run([env[id(v.node)] for v in n.inputs], n.attrs)[0]
    return [env[id(v.node)] for v in g.outputs]


def test_w1_chain_becomes_one_fused_loop():
    gb = GraphBuilder("w1")
    F = gb.F
    x = gb.var("x", TensorType((1000,)))
    g = gb.build([F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x])
    f = verify(fuse_elementwise(g), check_inference=False)
    ops = [n.op for n in f.op_nodes()]
    assert ops == ["_fused_elementwise"]
    text = str(f)
    assert "_fused_elementwise(x, body=[_mul_scalar, _plus_scalar, tanh, sigmoid" in text
    assert "tanh(%1)" in format_fused(f)
    a = np.linspace(-3, 3, 1000).astype(np.float32)
    ref, got = _run_both(g, [a])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)


def test_fullyconnected_bias_and_relu_become_a_gemm_epilogue():
    gb = GraphBuilder("fc")
    F = gb.F
    x = gb.var("x", TensorType((4, 8)))
    w = gb.var("w", TensorType((5, 8)), "param")
    b = gb.var("b", TensorType((5,)), "param")
    g = gb.build([F.Activation(F.FullyConnected(x, w, b, num_hidden=5), act_type="relu")])
    f = fuse_elementwise(g)
    assert [n.op for n in f.op_nodes()] == ["_fused_gemm"]
    assert "body=[FullyConnected, Activation]" in str(f)


def test_reduction_takes_an_elementwise_prologue():
    gb = GraphBuilder("ss")
    F = gb.F
    x = gb.var("x", TensorType((6, 7)))
    g = gb.build([F.sum(x * x, axis=1)])
    f = fuse_elementwise(g)
    assert [n.op for n in f.op_nodes()] == ["_fused_reduce"]
    a = np.random.default_rng(0).standard_normal((6, 7)).astype(np.float32)
    ref, got = _run_both(g, [a])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)


def test_a_value_with_two_consumers_is_computed_once():
    gb = GraphBuilder("two")
    F = gb.F
    x = gb.var("x", TensorType((10,)))
    e = F.exp(x)
    g = gb.build([F.sum(e), F.tanh(e) + 1.0])
    f = fuse_elementwise(g)
    assert sum(1 for n in f.op_nodes() if "exp" in repr(n.attrs.get("body", "")) or n.op == "exp") == 1


def test_graph_outputs_stay_visible():
    gb = GraphBuilder("outs")
    F = gb.F
    x = gb.var("x", TensorType((10,)))
    a = F.exp(x)
    b = F.tanh(a)
    g = gb.build([a, b])
    f = fuse_elementwise(g)
    assert len(f.outputs) == 2
    a_in = np.linspace(0, 1, 10).astype(np.float32)
    ref, got = _run_both(g, [a_in])
    for r, o in zip(ref, got):
        np.testing.assert_allclose(o, r, rtol=1e-6)


def test_where_with_a_row_condition_is_not_treated_as_broadcasting():
    gb = GraphBuilder("where")
    F = gb.F
    c = gb.var("c", TensorType((3,)))
    x = gb.var("x", TensorType((3, 4)))
    g = gb.build([F.exp(F.where(c, x, x * 2.0))])
    f = fuse_elementwise(g)
    assert "where" in [n.op for n in f.op_nodes()]
