"""fuse_softmax_ce: a log_softmax becomes one `_fused_softmax_ce` node (graphc.ops.fused_softmax_ce)
giving the row statistics m = max(x) and ls = log(sum(exp(x - m))), and its consumers read x:

- pick(logp, label) along the softmax's axis (a cross-entropy's forward) becomes
  (pick(x, label) - m) - ls: the picked log-probability without the log-probabilities, with
  pick's own index rules (float labels, clip/wrap) untouched;
- any other consumer (the softmax's gradient `exp(logp)`, a dense label's sum(label * logp))
  gets its own copy of (x - m) - ls, which fuses into that consumer's loop;
- a graph output (a split training forward saves logp for its backward) is the node's third
  output, written by the same kernel while the row is still in cache.

The values are those of passes/decompose.py's log_softmax, operation for operation, so the
rewrite is exact. Why: the decomposition reads x three times over the whole tensor (max, exp-sum,
the logp write), 28 MB each for a 700 x 10000 float32 loss (W5); the fused kernel reads each row
from memory once. Runs in the LOWER pipeline just before decompose_softmax.
GRAPHC_FUSE_SOFTMAX_CE=0 turns it off (A/B measurements).
"""
from __future__ import annotations

import os

from graphc.ops.builder import GraphBuilder
from graphc.ops.fused_softmax_ce import FUSED_SOFTMAX_CE, stats_body, stats_type
from graphc.ops.graph import Graph, Node, Value

from .rewrite import relink

_FLOATS = ("float32", "float64")


def _eligible(node: Node) -> bool:
    if node.op != "log_softmax" or node.attrs.get("use_length") or len(node.types) != 1:
        return False
    t = node.attrs.get("temperature")
    x = node.inputs[0].type
    return (t is None or t == 1.0) and node.types[0].dtype in _FLOATS and x.dtype == node.types[0].dtype \
        and x.ndim >= 1 and x.size > 0 and x.shape[node.attrs["axis"] % x.ndim] > 0


def _picks_along(node: Node, src: Node) -> bool:
    """node is pick(src's output, label) along src's axis, in src's dtype."""
    if node.op != "pick" or node.inputs[0].node is not src or node.inputs[0].index != 0:
        return False
    axis = node.attrs.get("axis")
    nd = src.types[0].ndim
    return isinstance(axis, int) and axis % nd == src.attrs["axis"] % nd and node.types[0].dtype == src.types[0].dtype


def fuse_softmax_ce(graph: Graph) -> Graph:
    if os.environ.get("GRAPHC_FUSE_SOFTMAX_CE", "1").strip() == "0":
        return graph
    if not any(_eligible(n) for n in graph.nodes):
        return graph
    outputs = {(id(v.node), v.index) for v in graph.outputs}
    b = GraphBuilder(graph.name)
    F = b.F
    mapping, stats = {}, {}         # stats: id(log_softmax) -> (x, m, ls, kept logp or None)

    def logp_for(src_id):
        x, m, ls, kept = stats[src_id]
        if kept is not None:
            return kept
        return F.broadcast_sub(F.broadcast_sub(b.wrap(x), b.wrap(m)), b.wrap(ls)).value

    def lookup(v: Value) -> Value:
        if v.index == 0 and id(v.node) in stats:
            return logp_for(id(v.node))     # a fresh copy per consumer: it fuses into each
        return mapping.get((id(v.node), v.index), v)

    for node in graph.nodes:
        if node.is_var:
            continue
        if _eligible(node):
            x = lookup(node.inputs[0])
            axis = node.attrs["axis"] % x.type.ndim
            keep = (id(node), 0) in outputs
            st = stats_type(x.type, axis)
            fused = Node(FUSED_SOFTMAX_CE, [x], {"axis": axis, "keep_logp": keep,
                                                 "body": stats_body(x.type, axis, keep, node.name)},
                         f"fused_{node.name}", [st, st] + ([node.types[0]] if keep else []), node.hints)
            stats[id(node)] = (x, fused.out(0), fused.out(1), fused.out(2) if keep else None)
            mapping[(id(node), 0)] = fused.out(2) if keep else None
            continue
        if node.inputs and id(node.inputs[0].node) in stats and _picks_along(node, node.inputs[0].node):
            x, m, ls, _ = stats[id(node.inputs[0].node)]
            picked = Node("pick", [x, lookup(node.inputs[1])], node.attrs, node.name, node.types, node.hints).out()
            shape = tuple(node.types[0].shape)
            if tuple(m.type.shape) != shape:          # keepdims=False: the statistics lose the axis too
                m, ls = (F.Reshape(b.wrap(v), shape=shape).value for v in (m, ls))
            out = F.broadcast_sub(F.broadcast_sub(b.wrap(picked), b.wrap(m)), b.wrap(ls))
            mapping[(id(node), 0)] = out.value
            continue
        current = relink(node, [lookup(v) for v in node.inputs])
        for i, v in enumerate(current.outputs):
            mapping[(id(node), i)] = v
    return Graph.from_outputs(graph.inputs, [lookup(v) for v in graph.outputs], graph.name, graph.output_tree)


__all__ = ["fuse_softmax_ce"]
