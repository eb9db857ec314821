"""The one way passes rebuild a graph: walk nodes in order, let a rule replace each node's
outputs, and re-link users to the replacements. Nodes whose inputs did not change are reused
as they are, so a pass that changes nothing returns an equal graph cheaply."""
from __future__ import annotations

from typing import Callable

from graphc.ops.graph import Graph, Node, Value


def relink(node: Node, inputs) -> Node:
    """The same node over new inputs (reused if nothing changed)."""
    inputs = tuple(inputs)
    if all(a == b for a, b in zip(inputs, node.inputs)):
        return node
    new = Node(node.op, inputs, node.attrs, node.name, node.types, node.hints)
    return new


def rebuild(graph: Graph, rule: Callable[[Node], list | None], *, context: bool = False) -> Graph:
    """rule(node_with_updated_inputs) returns None to keep the node, or a list of Values (one per
    output) that replace its outputs. Inputs are never replaced. context=True calls
    rule(current, original, lookup) instead: the node as it is in `graph` (for plans made on
    it) and the map from any of graph's values to its replacement so far."""
    mapping = {}

    def lookup(v: Value) -> Value:
        return mapping.get((id(v.node), v.index), v)

    for node in graph.nodes:
        if node.is_var:
            continue
        current = relink(node, [lookup(v) for v in node.inputs])
        replacement = rule(current, node, lookup) if context else rule(current)
        if replacement is None:
            replacement = current.outputs
        for i, v in enumerate(replacement):
            mapping[(id(node), i)] = v
    outputs = [lookup(v) for v in graph.outputs]
    return Graph.from_outputs(graph.inputs, outputs, graph.name, graph.output_tree)
