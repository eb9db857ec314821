"""lower_channels_last: rewrite each channels-last Convolution, Deconvolution and Pooling
(layout 'NWC'/'NHWC'/'NDHWC') into its channels-first form between transposes,

    Convolution(x, w, b, layout='NHWC')
        -> transpose(Convolution(transpose(x), transpose(w), b, layout='NCHW'), axes=(0, 2, 3, 1))

so that backends, whose convolution and pooling routines are channels first, compile it natively
(the transposes lower to strided copies) instead of running the numpy reference on the host.
That sandwich is the operators' definition (see ops/declarations/conv.py), so the rewrite is
exact. Where one such node feeds the next (conv -> pool -> conv, all NHWC), the transpose back
to channels last and the transpose to channels first cancel: the rewritten node reads the
channels-first value directly, and the unused transpose drops out of the graph.

It runs only on the way to a backend (the LOWER pipelines): exported graphs keep MXNet's
operators and their layout attribute as written.
"""
from __future__ import annotations

from graphc.ops.builder import GraphBuilder
from graphc.ops.declarations.conv import CHANNELS_FIRST, CHANNELS_LAST, to_channels_first, to_channels_last
from graphc.ops.graph import Graph, Node, Value

from .rewrite import rebuild

# op -> the inputs laid out like the data (the weight's layout follows the data's)
_LAYOUT_INPUTS = {"Convolution": (0, 1), "Deconvolution": (0, 1), "Pooling": (0,)}


def _spatial_rank(node: Node) -> int | None:
    """The number of spatial dimensions when `node` is channels last, else None."""
    if node.op not in _LAYOUT_INPUTS:
        return None
    nd = node.types[0].ndim - 2
    layout = node.attrs.get("layout")
    return nd if layout is not None and CHANNELS_LAST.get(nd) == layout else None


def _undoes(value: Value, axes: tuple) -> Value | None:
    """When `value` is a transpose that `axes` inverts, the value it transposed."""
    node = value.node
    if node.op != "transpose" or node.is_var or node.is_const:
        return None
    inner = tuple(node.attrs["axes"])
    if len(inner) != len(axes) or any(inner[a] != i for i, a in enumerate(axes)):
        return None
    return node.inputs[0]


def lower_channels_last(graph: Graph) -> Graph:
    def rule(node: Node):
        nd = _spatial_rank(node)
        if nd is None:
            return None
        b = GraphBuilder(graph.name)
        first = to_channels_first(nd)
        inputs = []
        for i, v in enumerate(node.inputs):
            if i in _LAYOUT_INPUTS[node.op]:
                undone = _undoes(v, first)
                v = undone if undone is not None else b.emit(
                    "transpose", [v], {"axes": first}, name=f"{node.name}_{i}_channels_first").out()
            inputs.append(v)
        attrs = {**node.attrs, "layout": CHANNELS_FIRST[nd]}
        inner = b.emit(node.op, inputs, attrs, name=node.name, hints=node.hints)
        out = b.emit("transpose", [inner.out()], {"axes": to_channels_last(nd)}, name=f"{node.name}_channels_last")
        return [out.out()]

    return rebuild(graph, rule)
