"""The cost model: how much arithmetic a node does and how many bytes it makes, from the operator
declarations alone (OpDef.flops, the inferred output types).

Automatic device placement (passes/auto_place.py) balances FLOPs across devices and counts the
bytes that cross a cut; pictures of a graph colour nodes by the same numbers. The model is
static and coarse on purpose: it never runs or times anything, so the same graph always gets the
same placement. Operators that declare no `flops` count one operation per output element (an
elementwise op, a movement); a fused node counts what its body's operators count.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphc.ops.fused import FUSED_CONV, FUSED_ELEMENTWISE, FUSED_GEMM, FUSED_REDUCE
from graphc.ops.graph import Graph, Node
from graphc.ops.registry import get_op, has_op

_FUSED = (FUSED_ELEMENTWISE, FUSED_REDUCE, FUSED_GEMM, FUSED_CONV)


def node_bytes(node: Node) -> int:
    """Bytes of the node's outputs (untyped outputs count nothing)."""
    return sum(t.nbytes for t in node.types if t is not None)


def _elements(node: Node) -> int:
    return sum(t.size for t in node.types if t is not None)


def node_flops(node: Node) -> float:
    """Arithmetic of one forward run of `node`: its operator's declared `flops`, else one per
    output element; variables and constants cost nothing; fused nodes sum their body."""
    if node.is_var or node.is_const:
        return 0.0
    if node.op in _FUSED and "body" in node.attrs:
        from graphc.ops.fused import body_of
        return float(sum(node_flops(n) for n in body_of(node).nodes))
    if not has_op(node.op):
        return float(_elements(node))
    op = get_op(node.op)
    if op.flops is None or any(v.type is None for v in node.inputs) or any(t is None for t in node.types):
        return float(_elements(node))
    return float(op.flops([v.type for v in node.inputs], list(node.types), node.attrs))


@dataclass(frozen=True)
class NodeCost:
    flops: float         # forward arithmetic
    bytes: int           # bytes of the node's outputs


def graph_costs(graph: Graph) -> dict:
    """id(node) -> NodeCost for every node of `graph` (variables and constants: 0 FLOPs, their
    bytes), plus the totals under the key 'total' (a NodeCost)."""
    costs = {}
    flops = 0.0
    nbytes = 0
    for n in graph.nodes:
        c = NodeCost(node_flops(n), node_bytes(n))
        costs[id(n)] = c
        flops += c.flops
        nbytes += c.bytes
    costs["total"] = NodeCost(flops, nbytes)
    return costs


__all__ = ["node_flops", "node_bytes", "graph_costs", "NodeCost"]
