"""Fused nodes in the IR: what a `_fused_*` node is, which operators it may hold, how it prints.

`passes/fuse.py` builds fused nodes and the backends lower them; both need the same facts (the
op names, the `body` attribute's type, which nodes count as elementwise, reduction or GEMM
groups, which dtypes compile natively), so the facts live here, beside the graph IR, where a
backend may read them without importing a pass:

- `_fused_elementwise`: a chain/tree of Elementwise operators; one loop over the output.
- `_fused_reduce`: an elementwise prologue feeding one Reduction (e.g. sum(x*x)).
- `_fused_gemm`: a GEMM (dot, batch_dot, FullyConnected) with an elementwise epilogue.

A fused node's `body` attribute is a `FusedBody`: a small Graph with one variable per external
input, the original operators, and one output. This module never decides grouping (that is the
pass) and never generates code (that is the runtime).
"""
from __future__ import annotations

from .graph import Graph, Node, variable, format_graph
from .registry import Elementwise, Reduction, Library, get_op, has_op

FUSED_ELEMENTWISE = "_fused_elementwise"
FUSED_REDUCE = "_fused_reduce"
FUSED_GEMM = "_fused_gemm"
# dtypes the native backends compute in; anything else stays on the host reference
NATIVE_DTYPES = frozenset({"float32", "float64", "int32", "int64", "bool"})


class FusedBody:
    """The subgraph of a fused node; prints as the list of its operators so the graph listing
    stays one line per node."""

    __slots__ = ("graph",)

    def __init__(self, graph: Graph):
        self.graph = graph

    def __repr__(self):
        return "[" + ", ".join(n.op for n in self.graph.op_nodes()) + "]"

    def __eq__(self, other):
        return isinstance(other, FusedBody) and str(self.graph) == str(other.graph)

    def __hash__(self):
        return hash(str(self.graph))


def _broadcasts_to(shape, target) -> bool:
    if len(shape) > len(target):
        return False
    for d, t in zip(reversed(shape), reversed(target)):
        if d != t and d != 1:
            return False
    return True


def is_elementwise(node: Node) -> bool:
    """An Elementwise operator whose inputs numpy-broadcast to its single output."""
    if node.is_var or node.is_const or not has_op(node.op) or len(node.types) != 1:
        return False
    lowering = get_op(node.op).lowering
    if not isinstance(lowering, Elementwise) or not lowering.applies_to([v.type for v in node.inputs], node.attrs):
        return False
    out = node.types[0]
    if out.dtype not in NATIVE_DTYPES or not node.inputs:
        return False
    return all(v.type.dtype in NATIVE_DTYPES and _broadcasts_to(v.type.shape, out.shape) for v in node.inputs)


def is_reduction(node: Node) -> bool:
    """A Reduction over one input of the same native, non-bool dtype."""
    if node.is_var or node.is_const or not has_op(node.op) or len(node.inputs) != 1:
        return False
    return (isinstance(get_op(node.op).lowering, Reduction) and node.types[0].dtype in NATIVE_DTYPES - {"bool"}
            and node.inputs[0].type.dtype == node.types[0].dtype)


def is_gemm(node: Node) -> bool:
    """A library GEMM in float32 or float64."""
    if node.is_var or node.is_const or not has_op(node.op):
        return False
    low = get_op(node.op).lowering
    return isinstance(low, Library) and low.routine == "gemm" and node.types[0].dtype in ("float32", "float64")


def body_of(node: Node) -> Graph:
    """The group a node stands for: a fused node's body, or a one-node graph for any other op."""
    if node.op.startswith("_fused"):
        return node.attrs["body"].graph
    vars_ = [variable(f"in{i}", v.type) for i, v in enumerate(node.inputs)]
    inner = Node(node.op, [v.out() for v in vars_], node.attrs, node.name, node.types, node.hints)
    return Graph(vars_ + [inner], vars_, inner.outputs, name=f"{node.name}_body")


def format_fused(graph: Graph) -> str:
    """The graph listing, then each fused node's body indented under its name."""
    lines = [format_graph(graph)]
    for n in graph.nodes:
        if n.op.startswith("_fused"):
            lines.append(f"  {n.name} = {n.op}:")
            lines.extend("    " + line for line in format_graph(n.attrs["body"].graph).splitlines())
    return "\n".join(lines)


__all__ = ["FUSED_ELEMENTWISE", "FUSED_REDUCE", "FUSED_GEMM", "NATIVE_DTYPES", "FusedBody",
           "is_elementwise", "is_reduction", "is_gemm", "body_of", "format_fused"]
