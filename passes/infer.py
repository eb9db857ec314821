"""infer_types: give every value its shape, dtype and device, from the input types.

Graphs loaded from files (or built with untyped `sym.var`) carry no types; graphs traced from a
block are typed already and can be re-typed for other input shapes with this same pass."""
from __future__ import annotations

from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import ShapeError
from graphc.ops.graph import Graph, Node, variable
from graphc.ops.types import TensorType


def infer_types(graph: Graph, input_types: dict | None = None) -> Graph:
    """input_types: name -> TensorType for inputs whose type is missing or should change."""
    input_types = input_types or {}
    builder = GraphBuilder(graph.name)
    mapping = {}
    new_inputs = []
    for node in graph.inputs:
        t = input_types.get(node.name, node.types[0] if node.types else None)
        if t is None:
            raise ShapeError(f"graph {graph.name}: input {node.name!r} has no shape; give it one "
                             f"(known inputs: {sorted(input_types)})")
        if node.types and node.types[0] == t:
            new = node
        else:
            new = variable(node.name, t, node.hints.get("kind", "input"),
                           {k: v for k, v in node.hints.items() if k != "kind"})
        mapping[(id(node), 0)] = new.out()
        new_inputs.append(new)
    for node in graph.nodes:
        if node.is_var:
            if (id(node), 0) not in mapping:
                raise ShapeError(f"graph {graph.name}: variable {node.name!r} is used but is not an input")
            continue
        if node.is_const:
            mapping[(id(node), 0)] = node.out()
            continue
        inputs = [mapping[(id(v.node), v.index)] for v in node.inputs]
        unchanged = all(a == b for a, b in zip(inputs, node.inputs)) and all(t is not None for t in node.types)
        if unchanged:
            new = node
        else:
            new = builder.emit(node.op, inputs, dict(node.attrs), node.name, node.hints)
        for i in range(len(node.types)):
            mapping[(id(node), i)] = new.out(i)
    outputs = [mapping[(id(v.node), v.index)] for v in graph.outputs]
    return Graph.from_outputs(new_inputs, outputs, graph.name, graph.output_tree)
