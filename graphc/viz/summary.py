"""MXNet 1.x's `print_summary` table, computed from graphc's IR: one row per layer with its output
shape (batch dimension dropped), its parameter count and the layers it reads.

The rows and numbers are MXNet's, quirks included, because scripts and notebooks compare the
text: the first node of the graph (normally `data`) gets a row; a layer's "previous layers" are
its operator inputs and that first node (MXNet tests membership in the first head entry
[node, output, version] as if it were a set of node indices); parameters are counted from the
attributes of Convolution, FullyConnected, BatchNorm (2 x channels) and Embedding only, with the
input width read from the previous layers' shapes (0 when no shapes were given). graphc adds
one rule for its own fused kernels: the sizes of the learnable parameters they read.
"""
from __future__ import annotations

import math

from ..ops.graph import Graph, Node
from ..ops.registry import get_op, has_op

HEADER = ("Layer (type)", "Output Shape", "Param #", "Previous Layer")


def summary_lines(graph: Graph, show_shape: bool, line_length: int = 120,
                  positions=(.44, .64, .74, 1.)) -> list:
    positions = list(positions)
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    first_head = graph.outputs[0] if graph.outputs else None
    heads = {index.get(id(first_head.node), -1), first_head.index, 0} if first_head is not None else {0}
    lines = ["_" * line_length, _row(HEADER, positions), "=" * line_length]
    total = 0
    for i, node in enumerate(graph.nodes):
        is_op = not (node.is_var or node.is_const)
        if not is_op and i > 0:
            continue
        shape = _visible_shape(node) if show_shape else None
        previous, width = [], 0
        for v in node.inputs if is_op else ():
            src = v.node
            if not (src.is_var or src.is_const) or index[id(src)] in heads:
                previous.append(src.name)
                below = _visible_shape(src) if show_shape else None
                if below:
                    width += int(below[0])
        params = _param_count(node, width, shape) if is_op else 0
        total += params
        op = node.op if is_op else "null"
        lines.append(_row((f"{node.name}({op})", "x".join(str(d) for d in (shape or ())), params,
                           previous[0] if previous else ""), positions))
        lines += [_row(("", "", "", name), positions) for name in previous[1:]]
        lines.append(("=" if i == len(graph.nodes) - 1 else "_") * line_length)
    lines.append(f"Total params: {total}")
    lines.append("_" * line_length)
    return lines


def _row(fields, positions) -> str:
    """Each field cut or padded to end at its column, as MXNet's print_row does."""
    line = ""
    for field, end in zip(fields, positions):
        line += str(field)
        line = line[:end]
        line += " " * (end - len(line))
    return line


def _visible_shape(node: Node):
    """The node's output shape without the batch dimension, as MXNet's `name_output` key finds
    it: None when unknown or when the operator shows several outputs (then MXNet has no key)."""
    if not node.types or node.types[0] is None:
        return None
    if not (node.is_var or node.is_const) and has_op(node.op) and get_op(node.op).n_visible(node.attrs) != 1:
        return None
    return node.types[0].shape[1:]


def _param_count(node: Node, width: int, shape) -> int:
    a = node.attrs
    if node.op == "Convolution":
        count = width * int(a["num_filter"]) // int(a.get("num_group", 1) or 1) * math.prod(a["kernel"])
        return count + (0 if a.get("no_bias") else int(a["num_filter"]))
    if node.op == "FullyConnected":
        return (width + (0 if a.get("no_bias") else 1)) * int(a["num_hidden"])
    if node.op == "BatchNorm":
        return 2 * int(shape[0]) if shape else 0
    if node.op == "Embedding":
        return int(a["input_dim"]) * int(a["output_dim"])
    if node.op.startswith("_fused"):
        return sum(v.type.size for v in node.inputs
                   if v.node.is_var and v.node.hints.get("kind") == "param" and v.type is not None)
    return 0


__all__ = ["summary_lines"]
