"""The differential harness for operator declarations: build one-node graphs with GraphBuilder,
run them with the numpy interpreter, differentiate them with the ops' own gradient rules
(reverse mode over a built graph, so rules apply to gradient graphs too: higher order), and
compare with central finite differences."""
from __future__ import annotations

import numpy as np

from graphc.ops import get_op
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType


def as_outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def build(op_name, arrays, attrs):
    """A builder holding vars x0.. for `arrays` and one `op_name` node over them."""
    b = GraphBuilder(op_name)
    xs = [b.var(f"x{i}", TensorType(a.shape, a.dtype)) for i, a in enumerate(arrays)]
    outs = as_outputs(b.invoke(op_name, xs, dict(attrs)))
    return b, xs, outs


def run_forward(op_name, arrays, attrs, training=False, rng=None) -> list:
    b, _, outs = build(op_name, arrays, attrs)
    return interpret(b.build(outs), list(arrays), rng=rng, training=training)


def reverse_mode(b, outputs, heads, wrt) -> list:
    """Input gradients of sum(outputs * heads) w.r.t. `wrt` (Handles), built into `b` by walking
    its nodes backwards and applying each op's gradient rule with the builder's namespace."""
    grads = {}

    def add(value, g):
        grads[value] = g if value not in grads else grads[value] + g

    for o, h in zip(outputs, heads):
        add(o.value, h)
    for node in reversed(list(b.nodes)):
        if node.is_var or node.is_const:
            continue
        ograds = [grads.get(v) for v in node.outputs]
        if all(g is None for g in ograds):
            continue
        op = get_op(node.op)
        if op.gradient is None:
            raise AssertionError(f"{node.op} has no gradient rule but a gradient reached it")
        ins = [b.wrap(v) for v in node.inputs]
        outs = [b.wrap(v) for v in node.outputs]
        in_grads = op.gradient(b.F, ins, outs, ograds, node.attrs)
        assert len(in_grads) == len(ins), f"{node.op}: gradient gave {len(in_grads)} grads for {len(ins)} inputs"
        for v, g in zip(node.inputs, in_grads):
            if g is None:
                continue
            assert tuple(g.shape) == tuple(v.type.shape), \
                f"{node.op}: gradient for an input of shape {v.type.shape} has shape {g.shape}"
            add(v, g)
    return [grads.get(w.value) for w in wrt]


def analytic_grads(op_name, arrays, attrs, heads, wrt, training=False) -> list:
    """Gradients from the op's rule, evaluated by the interpreter; None gradients become zeros."""
    b, xs, outs = build(op_name, arrays, attrs)
    hs = [b.var(f"g{i}", TensorType(h.shape, h.dtype), kind="ograd") for i, h in enumerate(heads)]
    gs = reverse_mode(b, outs, hs, [xs[i] for i in wrt])
    live = [g for g in gs if g is not None]
    vals = iter(interpret(b.build(live), list(arrays) + list(heads), training=training) if live else [])
    return [next(vals) if g is not None else np.zeros_like(arrays[i]) for g, i in zip(gs, wrt)]


def numeric_grads(op_name, arrays, attrs, heads, wrt, eps=1e-6, training=False) -> list:
    """Central differences of sum_j <out_j, head_j> w.r.t. each input in `wrt`."""
    b, _, outs = build(op_name, arrays, attrs)
    graph = b.build(outs)

    def f(arrs):
        ys = interpret(graph, arrs, training=training)
        return sum(float(np.sum(y.astype(np.float64) * h)) for y, h in zip(ys, heads))

    result = []
    for i in wrt:
        x = arrays[i]
        g = np.zeros(x.shape, np.float64)
        for k in np.ndindex(*x.shape):
            arrs = [a.copy() for a in arrays]
            arrs[i][k] = x[k] + eps
            up = f(arrs)
            arrs[i][k] = x[k] - eps
            down = f(arrs)
            g[k] = (up - down) / (2 * eps)
        result.append(g)
    return result


def head_grads(op_name, arrays, attrs, rng, training=False) -> list:
    outs = run_forward(op_name, arrays, attrs, training=training)
    return [rng.standard_normal(o.shape).astype(o.dtype) for o in outs]
