"""What a picture of a graph shows, decided once for every way of drawing it (DOT text, graphc's
own SVG): which nodes become boxes, what each box says and how it is coloured, which edges
join them and what they carry.

Boxes follow MXNet 1.x's `plot_network`: data inputs are ovals, operators boxes coloured by kind
(convolutions and GEMMs, activations, normalisation, pooling, reshaping, softmax, the rest), and
parameters (names ending in `_weight`, `_bias`, ...) hidden unless asked for. graphc adds three
things MXNet's graphs never had: a fused kernel (`_fused_*`) is one box naming the operators it
holds; in a device-partitioned graph every box is coloured by its device and each
`_CrossDeviceCopy` becomes a cut edge (the copy is the edge, not a box); and graphs already
typed label their edges with full types (`f32[2,8,4,4]`) where a Symbol's edges show MXNet's
batch-less `8x4x4`.

This module only describes; it never lays out or renders.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ..ops.fused import FusedBody
from ..ops.graph import Graph, Node, Value
from ..passes.partition import COPY, node_device

# MXNet's colour map, by operator kind
INPUT_COLOR, GEMM_COLOR, ACTIVATION_COLOR, NORM_COLOR, POOL_COLOR, SHAPE_COLOR, SOFTMAX_COLOR, OTHER_COLOR = (
    "#8dd3c7", "#fb8072", "#ffffb3", "#bebada", "#80b1d3", "#fdb462", "#b3de69", "#fccde5")
# one colour per device, in order of first appearance (ColorBrewer Set2, readable under black text)
DEVICE_COLORS = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3")
CUT_COLOR = "#d62728"
DEFAULT_NODE_ATTRS = {"shape": "box", "fixedsize": "true", "width": "1.3", "height": "0.8034", "style": "filled"}
_WEIGHT_SUFFIXES = ("_weight", "_bias", "_beta", "_gamma", "_moving_var", "_moving_mean",
                    "_running_var", "_running_mean")
_FUSED_KIND = {"_fused_gemm": GEMM_COLOR, "_fused_conv": GEMM_COLOR, "_fused_reduce": NORM_COLOR,
               "_fused_elementwise": ACTIVATION_COLOR}


@dataclass
class Box:
    key: str                 # unique among the scene's boxes (the DOT node id)
    name: str                # the graph node's name
    op: str                  # operator, 'null' for a variable or constant (MXNet's word)
    lines: list              # label, one entry per line
    attrs: dict              # DOT attributes: shape, fillcolor, style, width, height...
    device: str | None = None
    fused_ops: tuple = ()    # the operators a fused box holds

    @property
    def shape(self) -> str:
        return self.attrs.get("shape", "box")

    @property
    def fill(self) -> str | None:
        return self.attrs.get("fillcolor") if "filled" in self.attrs.get("style", "") else None


@dataclass
class Edge:
    src: str                 # key of the producing box
    dst: str                 # key of the consuming box
    label: str
    cut: tuple | None = None  # (from device, to device) where the value crosses devices
    nbytes: int | None = None


@dataclass
class Scene:
    title: str
    boxes: list              # topological order
    edges: list
    devices: list = field(default_factory=list)   # a partitioned graph's devices, first seen first

    def box(self, key: str) -> Box:
        return self._by_key[key]

    def __post_init__(self):
        self._by_key = {b.key: b for b in self.boxes}


def looks_like_weight(name: str) -> bool:
    """MXNet's test for a parameter: its name ends like one."""
    return name.endswith(_WEIGHT_SUFFIXES)


def _dims(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def _op_look(node: Node, given: frozenset) -> tuple:
    """(label lines, fill colour) as MXNet's plot_network draws an operator."""
    a, op = node.attrs, node.op
    if op == "Convolution":
        stride = _dims(a["stride"]) if "stride" in given and a.get("stride") else "1"
        return ["Convolution", f"{_dims(a['kernel'])}/{stride}, {a['num_filter']}"], GEMM_COLOR
    if op == "FullyConnected":
        return ["FullyConnected", str(a["num_hidden"])], GEMM_COLOR
    if op == "BatchNorm":
        return [node.name], NORM_COLOR
    if op in ("Activation", "LeakyReLU"):
        return [op, str(a.get("act_type", "leaky"))], ACTIVATION_COLOR
    if op == "Pooling":
        kernel = _dims(a["kernel"]) if a.get("kernel") else "[]"
        stride = _dims(a["stride"]) if "stride" in given and a.get("stride") else "1"
        return ["Pooling", f"{a.get('pool_type', 'max')}, {kernel}/{stride}"], POOL_COLOR
    if op in ("Concat", "Flatten", "Reshape"):
        return [node.name], SHAPE_COLOR
    if op == "Softmax":
        return [node.name], SOFTMAX_COLOR
    if op == "Custom":
        return [str(a.get("op_type", node.name))], OTHER_COLOR
    if op.startswith("_fused"):
        ops = tuple(n.op for n in a["body"].graph.op_nodes()) if isinstance(a.get("body"), FusedBody) else ()
        return [f"{op.lstrip('_').replace('_', ' ')}: {node.name}"] + _wrap(ops), _FUSED_KIND.get(op, OTHER_COLOR)
    return [node.name], OTHER_COLOR


def _wrap(ops, width: int = 28) -> list:
    """The operators of a fused box as lines no wider than `width`, so a 40-op group stays a box."""
    lines, line = [], ""
    for op in ops:
        piece = op if not line else f"{line} + {op}"
        if line and len(piece) > width:
            lines.append(line + " +")
            line = op
        else:
            line = piece
    return lines + ([line] if line else [])


class EdgeLabels:
    """How an edge names the value it carries: MXNet's batch-less `8x4x4` (and `(float32)` when
    dtypes were asked for) for a Symbol, the IR's `f32[2,8,4,4]` for a typed graph, or nothing."""

    def __init__(self, style: str, dtypes: dict | None = None):
        self.style, self.dtypes = style, dtypes or {}   # style: 'mxnet' | 'full' | 'none'

    def __call__(self, v: Value) -> str:
        t = v.type
        if self.style == "full":
            return "" if t is None else str(t)
        text = ""
        if self.style == "mxnet" and t is not None:
            text = _dims(t.shape[1:])
        dtype = self.dtypes.get((id(v.node), v.index))
        return text + (f"({dtype})" if dtype else "")


def build_scene(graph: Graph, title: str = "plot", labels: EdgeLabels | None = None, node_attrs=None,
                hide_weights: bool = True, weights_by_kind: bool = False) -> Scene:
    """The boxes and edges of `graph`. weights_by_kind: variables of kind param/aux count as
    weights too (a traced or compiled graph knows them; a Symbol's variables only by name)."""
    labels = labels or EdgeLabels("none")
    base_attrs = dict(DEFAULT_NODE_ATTRS)
    base_attrs.update({str(k): str(v) for k, v in (node_attrs or {}).items()})
    devices = _devices(graph)
    device_color = {d: DEVICE_COLORS[i % len(DEVICE_COLORS)] for i, d in enumerate(devices)}
    keys = _unique_keys(graph)
    boxes, hidden = [], set()

    def is_weight(node):
        if node.is_const:
            return True
        return looks_like_weight(node.name) or (weights_by_kind and node.hints.get("kind") in ("param", "aux"))

    for node in graph.nodes:
        if node.op == COPY and devices:
            continue                      # drawn as the cut edge it makes
        attrs = dict(base_attrs)
        if node.is_var or node.is_const:
            if is_weight(node):
                if hide_weights:
                    hidden.add(id(node))
                    continue
                attrs = {"shape": "oval"}     # MXNet draws a shown weight as a plain ellipse
                lines, fill = [node.name], None
            else:
                attrs["shape"] = "oval"
                lines, fill = [node.name], INPUT_COLOR
            op = "null"
        else:
            lines, fill = _op_look(node, node.hints.get("given_attrs", frozenset(node.attrs)))
            op = node.op
        dev = node_device(node) if devices else None
        if dev is not None and fill is not None:
            fill = device_color[dev]
        if fill is not None and "fillcolor" not in (node_attrs or {}):
            attrs["fillcolor"] = fill
        fused = tuple(n.op for n in node.attrs["body"].graph.op_nodes()) if op.startswith("_fused") else ()
        boxes.append(Box(keys[id(node)], node.name, op, lines, attrs, dev, fused))

    edges = []
    for node in graph.nodes:
        if node.is_var or node.is_const or (node.op == COPY and devices):
            continue
        for v in node.inputs:
            source, cut = _through_copies(v, devices)
            if id(source.node) in hidden:
                continue
            label = labels(v)
            nbytes = None
            if cut is not None:
                nbytes = v.type.nbytes if v.type is not None else None
                label = f"{label} {cut[0]}\u2192{cut[1]}".strip()
            edges.append(Edge(keys[id(source.node)], keys[id(node)], label, cut, nbytes))
    return Scene(title, boxes, edges, devices)


def _through_copies(v: Value, devices) -> tuple:
    """(the value a chain of copies started from, (from device, to device) or None)."""
    if not devices or v.node.op != COPY:
        return v, None
    dst = node_device(v.node)
    while v.node.op == COPY:
        v = v.node.inputs[0]
    return v, (node_device(v.node) or "?", dst)


def _devices(graph: Graph) -> list:
    seen = []
    for node in graph.nodes:
        dev = node_device(node)
        if dev is not None and dev not in seen:
            seen.append(dev)
    # a graph all on one device is drawn as an unpartitioned one (colours by operator kind)
    return seen if len(seen) > 1 or any(n.op == COPY for n in graph.nodes) else []


def _unique_keys(graph: Graph) -> dict:
    """id(node) -> a key unique in the picture: the node's name, numbered from the second use on
    (MXNet warns about repeated names; graphc's traced graphs may repeat a user's name)."""
    keys, used, repeated = {}, set(), []
    for node in graph.nodes:
        key = node.name
        if key in used:
            repeated.append(key)
            k = 2
            while f"{node.name}#{k}" in used:
                k += 1
            key = f"{node.name}#{k}"
        used.add(key)
        keys[id(node)] = key
    if repeated:
        warnings.warn(f"plot_network: several nodes are named {sorted(set(repeated))}; the picture numbers "
                      "the later ones (name#2, ...)", RuntimeWarning, stacklevel=3)
    return keys


__all__ = ["Box", "Edge", "Scene", "EdgeLabels", "build_scene", "looks_like_weight", "DEVICE_COLORS",
           "CUT_COLOR"]
