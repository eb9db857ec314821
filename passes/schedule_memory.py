"""Reorder a graph's op nodes so that the memory plan needs less: a node that consumes large
values for the last time runs as early as its own inputs allow, when that ends those values'
lives sooner than it starts its outputs' lives.

Why: autodiff emits every parameter gradient after the whole data-gradient chain. In
ResNet-18's training step the weight gradients of the convolutions and the gamma/beta sums of
the BatchNorms each keep a full activation-sized dy alive from the layer's backward to the end
of the graph: 61 values live at once, 493 MiB at the peak against about 150 MiB of gradients
actually in flight. Moving each such reduction up to just after its last input is computed
lets the arena reuse those bytes.

Only where a node runs changes, never what it computes, and only for nodes that are pure
(no random op inside): the relative order of random nodes, and so the random stream, stays.
The result is a valid topological order of the same nodes (graph inputs, outputs and names
untouched); `plan_memory` and `check_plan` work on it as on any graph.
"""
from __future__ import annotations

import copy

from graphc.ops.fused import body_of
from graphc.ops.graph import Graph, Node
from graphc.ops.memory_plan import is_view_node
from graphc.ops.registry import get_op, has_op


def _pure(node: Node) -> bool:
    """No random op inside: moving it cannot change the random numbers any node draws."""
    if node.op.startswith("_fused"):
        return all(_pure(n) for n in body_of(node).nodes if not n.is_var and not n.is_const)
    return has_op(node.op) and not get_op(node.op).random


def schedule_for_memory(graph: Graph) -> Graph:
    """`graph` with its op nodes reordered (see the module docstring); `graph` itself is not
    changed. Returns `graph` unchanged when no move pays."""
    order = [n for n in graph.nodes if not n.is_var and not n.is_const]
    if len(order) < 3:
        return graph
    fixed = [n for n in graph.nodes if n.is_var or n.is_const]
    in_arena = {id(n) for n in order}          # values the plan places (not caller-owned)
    outputs = {id(v.node) for v in graph.outputs}
    users = {}
    for n in order:
        for v in n.inputs:
            users.setdefault(id(v.node), []).append(n)
    moved = False
    pos = {id(m): j for j, m in enumerate(order)}
    for i in range(len(order)):
        n = order[i]
        if is_view_node(n) or not _pure(n):
            continue
        earliest = max((pos[id(v.node)] + 1 for v in n.inputs if id(v.node) in pos), default=0)
        if earliest >= i or _gain(n, i, earliest, pos, users, in_arena, outputs) <= 0:
            continue
        order.insert(earliest, order.pop(i))
        for j in range(earliest, i + 1):       # the nodes it passed moved down by one
            pos[id(order[j])] = j
        moved = True
    if not moved:
        return graph
    out = copy.copy(graph)
    out.nodes = fixed + order
    return out


def _root(node: Node) -> Node:
    while is_view_node(node) and node.inputs:
        node = node.inputs[0].node
    return node


def _last_use(root: Node, pos, users, skip: Node) -> int:
    """Latest position at which `root`'s bytes are read, through views of it, not counting `skip`."""
    last, stack = -1, [root]
    while stack:
        m = stack.pop()
        for u in users.get(id(m), ()):
            if u is skip:
                continue
            last = max(last, pos[id(u)])
            if is_view_node(u):
                stack.append(u)
    return last


def _gain(n: Node, at: int, to: int, pos, users, in_arena, outputs) -> int:
    """Byte-steps saved by running `n` at position `to` instead of `at`: the inputs whose last
    reader is `n` die earlier; `n`'s own outputs (when the arena holds them) are born earlier."""
    gain, seen = 0, set()
    for v in n.inputs:
        r = _root(v.node)
        if id(r) in seen or id(r) not in in_arena or id(r) in outputs:
            continue
        seen.add(id(r))
        other = _last_use(r, pos, users, n)
        if other < at:
            gain += sum(t.nbytes for t in r.types) * (at - max(other, to))
    if id(n) not in outputs:
        gain -= sum(t.nbytes for t in n.types) * (at - to)
    return gain


__all__ = ["schedule_for_memory"]
