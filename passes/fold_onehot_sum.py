"""fold_onehot_sums: sum_a(onehot(i) * v) along the one-hot's axis is v times the number of
positions equal to i (1 for an in-range integer index, else 0), an (N, 1)-sized expression.

Why: pick's gradient (a one-hot comparison with 0..n-1 times the head gradient) meets
log_softmax's gradient `g - exp(y) * sum(g)`, so a softmax cross-entropy backward summed a
data-sized one-hot product over the classes: the product was stored (it has two consumers),
then read by a reduction pass, then read again by the final pass. Folded, the sum needs no data
pass and the one-hot product has a single consumer, so the whole backward fuses into one pass
reading the saved log-probabilities and writing the gradient (W3/W5/W8b: 10 000 classes).

Exact for every index value and every v: non-integer, negative, too large or NaN indices hit
no position (count 0); an infinite or NaN v still yields NaN through the product with the n-1
zeros of the one-hot (the `v * 0` term), as the summed form does.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import Graph, Node, Value

from .rewrite import rebuild


def fold_onehot_sums(graph: Graph) -> Graph:
    def rule(node: Node):
        match = _match(node)
        if match is None:
            return None
        index, v, n = match
        b = GraphBuilder(graph.name)
        F = b.F
        i, vv = b.wrap(index), b.wrap(v)
        dtype = node.types[0].dtype
        if index.type.dtype != dtype:
            i = F.Cast(i, dtype=dtype)
        hit = F.broadcast_equal(F.floor(i), i)
        if not _clipped_into(index, n):
            hit = hit * F._greater_equal_scalar(i, scalar=0.0) * F._lesser_equal_scalar(i, scalar=float(n - 1))
        out = F.broadcast_mul(vv, hit)
        if n > 1:
            out = F.broadcast_add(out, vv * 0.0)
        shape = node.types[0].shape
        if tuple(out.value.type.shape) != tuple(shape):
            out = F.broadcast_to(out, shape=shape) if _broadcasts(out.value.type.shape, shape) \
                else F.Reshape(out, shape=shape)
        if out.value.type.dtype != dtype:
            out = F.Cast(out, dtype=dtype)
        return [out.value]

    return rebuild(graph, rule)


def _clipped_into(index: Value, n: int) -> bool:
    """index is clip(x, 0, n-1) (through Reshapes), as pick's gradient makes it: the range tests
    are implied, and they would otherwise run once per element of the fused consumer."""
    while index.node.op == "Reshape":
        index = index.node.inputs[0]
    a = index.node.attrs
    return index.node.op == "clip" and a.get("a_min") == 0.0 and a.get("a_max") == float(n - 1)


def _broadcasts(src, dst) -> bool:
    return len(src) == len(dst) and all(s == d or s == 1 for s, d in zip(src, dst))


def _match(node: Node):
    """(index, v, n) when node is sum over exactly the one-hot axis of onehot(index) * v."""
    if node.op != "sum" or node.attrs.get("exclude") or len(node.inputs) != 1:
        return None
    prod = node.inputs[0]
    shape = tuple(prod.type.shape)
    axes = node.attrs.get("axis")
    if axes is None:
        return None
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if len(axes) != 1 or not shape:
        return None
    a = axes[0] % len(shape)
    if prod.node.op != "broadcast_mul" or not node.types[0].dtype.startswith("float"):
        return None
    for hot, v in (prod.node.inputs, prod.node.inputs[::-1]):
        index = _onehot_index(hot, a, shape[a])
        if index is not None and v.type.shape[a] == 1 and len(v.type.shape) == len(shape):
            if index.type.shape[a] == 1 and len(index.type.shape) == len(shape):
                return index, v, shape[a]
    return None


def _onehot_index(hot: Value, axis: int, n: int):
    """i when `hot` is broadcast_equal(i, positions) (either order, maybe under a Cast), with
    positions a constant 0..n-1 along `axis` and of size 1 on every other axis."""
    if hot.node.op == "Cast":
        hot = hot.node.inputs[0]
    if hot.node.op != "broadcast_equal":
        return None
    x, y = hot.node.inputs
    for idx, pos in ((x, y), (y, x)):
        if _is_positions(pos, axis, n):
            return idx
    return None


def _is_positions(v: Value, axis: int, n: int) -> bool:
    if not v.node.is_const:
        return False
    arr = v.node.attrs["value"]
    want = tuple(n if d == axis else 1 for d in range(arr.ndim))
    return arr.shape == want and np.array_equal(arr.reshape(-1), np.arange(n))
