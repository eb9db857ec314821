"""Autodiff as a graph transform: gradients match finite differences, and the forward/backward
split computes the same thing as the joint graph."""
import numpy as np
import pytest
from hypothesis import given

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate, split_forward_backward
from graphc.passes.pipeline import SIMPLIFY

from graphgen import random_graphs


def fd_grads(graph, arrays, heads, eps=1e-6):
    def scalar(arrs):
        return sum(float(np.sum(o * h)) for o, h in zip(interpret(graph, arrs), heads))
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k][i] += eps
            minus[k][i] -= eps
            g[i] = (scalar(plus) - scalar(minus)) / (2 * eps)
        grads.append(g)
    return grads


def mlp(batch=4):
    b = GraphBuilder("mlp")
    x = b.var("data", TensorType((batch, 5), "float64"))
    w1 = b.var("w1", TensorType((6, 5), "float64"), "param")
    b1 = b.var("b1", TensorType((6,), "float64"), "param")
    w2 = b.var("w2", TensorType((3, 6), "float64"), "param")
    label = b.var("label", TensorType((batch,), "float64"))
    h = b.F.Activation(b.F.FullyConnected(x, w1, b1, num_hidden=6), act_type="tanh")
    logits = b.F.FullyConnected(h, w2, num_hidden=3, no_bias=True)
    loss = -b.F.pick(b.F.log_softmax(logits), label)
    return b.build([b.F.mean(loss)])


def test_mlp_gradients_match_finite_differences():
    g = mlp()
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=n.types[0].shape) for n in g.inputs]
    arrays[4] = np.array([0, 2, 1, 2], np.float64)
    wrt = g.inputs[:4]
    gg = differentiate(g, wrt)
    verify(gg.graph)
    head = [np.array(1.0)]
    got = interpret(gg.graph, arrays + head)[1:]
    want = fd_grads(g, arrays, head)[:4]
    for a, b_ in zip(got, want):
        np.testing.assert_allclose(a, b_, rtol=1e-6, atol=1e-8)


@given(random_graphs(max_ops=6, dtype="float64"))
def test_random_graph_gradients_match_finite_differences(case):
    graph, arrays = case
    rng = np.random.default_rng(0)
    heads = [rng.uniform(-1, 1, v.type.shape) for v in graph.outputs]
    gg = differentiate(graph, graph.inputs)
    verify(gg.graph)
    got = interpret(gg.graph, arrays + heads)[len(graph.outputs):]
    want = fd_grads(graph, arrays, heads)
    for a, b_ in zip(got, want):
        # max/relu/abs have kinks; random inputs hit them with probability ~0
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-5)


def test_split_forward_backward_reproduces_the_joint_graph():
    g = mlp()
    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=n.types[0].shape) for n in g.inputs]
    arrays[4] = np.array([1, 0, 0, 2], np.float64)
    gg = differentiate(g, g.inputs[:4])
    joint = interpret(gg.graph, arrays + [np.array(0.5)])
    sp = split_forward_backward(gg, g.inputs)
    fwd = SIMPLIFY(sp.forward, check=True)
    bwd = SIMPLIFY(sp.backward, check=True)
    f_out = interpret(fwd, arrays)
    feed = []
    for kind, k in sp.backward_inputs:
        feed.append({"saved": lambda: f_out[sp.num_outputs + k], "input": lambda: arrays[k],
                     "head_grad": lambda: np.array(0.5)}[kind]())
    grads = interpret(bwd, feed)
    np.testing.assert_allclose(f_out[0], joint[0])
    for a, b_ in zip(grads, joint[1:]):
        np.testing.assert_allclose(a, b_, rtol=1e-12)
    # the backward graph never recomputes the forward FullyConnected
    assert sum(n.op == "FullyConnected" for n in bwd.op_nodes()) == 0


def test_missing_gradient_rule_is_reported_with_the_node():
    from graphc.ops.registry import OpDef, register, has_op
    if not has_op("_test_nondifferentiable"):
        register(OpDef("_test_nondifferentiable", infer=lambda x: x, compute=lambda x: x))
    b = GraphBuilder()
    x = b.var("x", TensorType((3,)))
    y = b.F._test_nondifferentiable(b.F.exp(x), name="blackbox")
    with pytest.raises(Exception, match="_test_nondifferentiable.*blackbox"):
        differentiate(b.build([y]), [x.value.node])


def test_split_keeps_constants_that_the_backward_part_reads():
    """A folded constant (e.g. an RNN's zero begin state) used by gradient nodes is shared by
    the backward program, not looked for among forward values."""
    b = GraphBuilder("c")
    x = b.var("x", TensorType((3,), "float64"))
    c = b.const(np.array([1.0, 2.0, 3.0]))
    y = b.F.sum(b.F.exp(x) * c)
    g = b.build([y])
    gg = differentiate(g, [x.value.node])
    sp = split_forward_backward(gg, g.inputs)
    verify(sp.backward)
    xs = np.array([0.1, 0.2, 0.3])
    f_out = interpret(sp.forward, [xs])
    feed = [{"saved": lambda k: f_out[sp.num_outputs + k], "input": lambda k: xs,
             "head_grad": lambda k: np.array(1.0)}[kind](k) for kind, k in sp.backward_inputs]
    (grad,) = interpret(sp.backward, feed)
    np.testing.assert_allclose(grad, np.exp(xs) * [1, 2, 3])


def _run_split(sp, arrays, head):
    f_out = interpret(sp.forward, arrays)
    feed = [{"saved": lambda k: f_out[sp.num_outputs + k], "input": lambda k: arrays[k],
             "head_grad": lambda k: head}[kind](k) for kind, k in sp.backward_inputs]
    return f_out, interpret(sp.backward, feed)


def relu_mlp_with_loss(batch=4, depth=7):
    b = GraphBuilder("relu_mlp")
    x = b.var("data", TensorType((batch, 5), "float64"))
    w1 = b.var("w1", TensorType((6, 5), "float64"), "param")
    w2 = b.var("w2", TensorType((depth, 6), "float64"), "param")
    label = b.var("label", TensorType((batch,), "float64"))
    h = b.F.Activation(b.F.FullyConnected(x, w1, num_hidden=6, no_bias=True), act_type="relu")
    logits = b.F.FullyConnected(h, w2, num_hidden=depth, no_bias=True)
    return b.build([b.F.mean(-b.F.pick(b.F.log_softmax(logits), label))])


def test_split_recomputes_cheap_masks_instead_of_saving_them():
    """relu's mask and pick's one-hot mask are rebuilt by the backward from values it has
    anyway (relu's output, the label): the forward saves only what the GEMMs need."""
    g = relu_mlp_with_loss()
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=n.types[0].shape) for n in g.inputs]
    arrays[3] = np.array([0, 6, 2, 3], np.float64)
    gg = differentiate(g, g.inputs[:3])
    sp = split_forward_backward(gg, g.inputs)
    verify(sp.forward)
    verify(sp.backward)
    saved_ops = sorted(v.node.op for v in sp.forward.outputs[sp.num_outputs:])
    assert saved_ops == ["Activation", "log_softmax"], saved_ops
    assert not any(n.op in ("one_hot", "_greater_scalar") for n in sp.forward.op_nodes())
    _, grads = _run_split(sp, arrays, np.array(1.0))
    want = fd_grads(g, arrays, [np.array(1.0)])[:3]
    for a, b_ in zip(grads, want):
        np.testing.assert_allclose(a, b_, rtol=1e-6, atol=1e-8)


@given(random_graphs(max_ops=6, dtype="float64"))
def test_split_with_recomputation_matches_the_joint_graph(case):
    graph, arrays = case
    rng = np.random.default_rng(0)
    heads = [rng.uniform(-1, 1, v.type.shape) for v in graph.outputs]
    gg = differentiate(graph, graph.inputs, num_heads=len(graph.outputs))
    joint = interpret(gg.graph, arrays + heads)
    sp = split_forward_backward(gg, graph.inputs)
    verify(sp.forward)
    verify(sp.backward)
    f_out = interpret(sp.forward, arrays)
    feed = []
    for kind, k in sp.backward_inputs:
        feed.append(f_out[sp.num_outputs + k] if kind == "saved" else arrays[k] if kind == "input" else heads[k])
    grads = interpret(sp.backward, feed)
    for a, b_ in zip(f_out[:sp.num_outputs] + grads, joint):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
