"""Gradient rules build differentiable operators, so gradients of gradients work: reverse mode
over the first-order gradient graph matches finite differences of that gradient."""
import numpy as np
import pytest

from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from gradcheck import build, head_grads, reverse_mode
from op_cases import CASES

OPS = ["tanh", "sigmoid", "exp", "log", "sin", "sqrt", "erf", "broadcast_mul", "broadcast_div",
       "softmax", "log_softmax", "dot", "FullyConnected", "smooth_l1", "norm", "take", "Concat",
       "LeakyReLU", "sum", "max", "broadcast_power", "softmax_cross_entropy", "gammaln"]


def _first_case(op):
    return next(c for c in CASES if c.op == op and c.fd)


def _first_order_graph(c, heads):
    """Graph (x..., g..., v...) -> d/dx sum_i <grad_i(x, g), v_i>, and the first-order graph."""
    b, xs, outs = build(c.op, c.inputs, c.attrs)
    hs = [b.var(f"g{i}", TensorType(h.shape, h.dtype), kind="ograd") for i, h in enumerate(heads)]
    wrt = [xs[i] for i in c.differentiable_inputs()]
    grads = reverse_mode(b, outs, hs, wrt)
    pairs = [(g, b.var(f"v{k}", TensorType(g.shape, g.dtype))) for k, g in enumerate(grads) if g is not None]
    first = b.build([g for g, _ in pairs])
    second = reverse_mode(b, [g for g, _ in pairs], [v for _, v in pairs], wrt)
    second = [s if s is not None else b.F.zeros_like(w) for s, w in zip(second, wrt)]
    return b.build(second), first, [g.shape for g, _ in pairs]


@pytest.mark.parametrize("op", OPS)
def test_second_derivative_matches_finite_differences_of_the_gradient(op):
    c = _first_case(op)
    rng = np.random.default_rng(11)
    heads = head_grads(c.op, c.inputs, c.attrs, rng)
    graph2, graph1, v_shapes = _first_order_graph(c, heads)
    vs = [rng.standard_normal(shape) for shape in v_shapes]
    feed = list(c.inputs) + heads + vs
    got = interpret(graph2, feed)

    def f(arrays):
        return sum(float(np.sum(g * v)) for g, v in zip(interpret(graph1, list(arrays) + heads + vs), vs))

    eps = 1e-6
    for i, g in zip(c.differentiable_inputs(), got):
        num = np.zeros(c.inputs[i].shape)
        for k in np.ndindex(*c.inputs[i].shape):
            arrs = [a.copy() for a in c.inputs]
            arrs[i][k] += eps
            up = f(arrs)
            arrs[i][k] -= 2 * eps
            num[k] = (up - f(arrs)) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6, err_msg=f"{op}: second derivative, input {i}")
