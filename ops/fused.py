"""Fused nodes in the IR: what a `_fused_*` node is, which operators it may hold, how it prints.

`passes/fuse.py` builds fused nodes and the backends lower them; both need the same facts (the
op names, the `body` attribute's type, which nodes count as elementwise, reduction or GEMM
groups, which dtypes compile natively), so the facts live here, beside the graph IR, where a
backend may read them without importing a pass:

- `_fused_elementwise`: a chain/tree of Elementwise operators; one loop over the output.
- `_fused_reduce`: an elementwise prologue feeding one Reduction (e.g. sum(x*x)).
- `_fused_gemm`: a GEMM (dot, batch_dot, FullyConnected) with an elementwise epilogue.
- `_fused_conv`: a convolution (Convolution, Deconvolution) with an elementwise epilogue
  (bias, folded BatchNorm, activation, residual add) over its output.

Convolutions also need facts both sides share: `conv_geometry` (the forward convolution a
convolution-family node is, or is the transpose/gradient of) and `scratch_bytes` (the arena
scratch a step needs for im2col columns: the memory planner reserves it, the backend uses it).

A fused node's `body` attribute is a `FusedBody`: a small Graph with one variable per external
input, the original operators, and one output. This module never decides grouping (that is the
pass) and never generates code (that is the runtime).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .graph import Graph, Node, variable, format_graph
from .registry import Elementwise, Reduction, Library, get_op, has_op

FUSED_ELEMENTWISE = "_fused_elementwise"
FUSED_REDUCE = "_fused_reduce"
FUSED_GEMM = "_fused_gemm"
FUSED_CONV = "_fused_conv"
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


# -- convolutions ------------------------------------------------------------------------------

# op name -> role. 'forward': y = conv(x, w) (inputs data, weight[, bias]); 'transposed':
# x = convᵀ(y, w) (Deconvolution's data, weight[, bias]; `_conv_data_grad`'s ograd, weight);
# 'weight_grad': w = dconv/dw(dy, x) (`_conv_weight_grad`'s ograd, data).
CONV_ROLES = {"Convolution": "forward", "Deconvolution": "transposed",
              "_conv_data_grad": "transposed", "_conv_weight_grad": "weight_grad"}
CONV_LAYOUTS = (None, "NCW", "NCHW", "NCDHW")
# im2col columns for this many bytes at most per step: more images than fit are done in chunks
SCRATCH_BUDGET = 8 << 20


@dataclass(frozen=True)
class ConvGeometry:
    """The forward convolution a convolution-family node computes, is the transpose of, or is the
    gradient of: images of `channels` x `in_size` -> `filters` x `out_size`, weight
    (filters, channels/groups, *kernel). For Deconvolution, `in_size` is the deconvolution's
    output and `out_size` its input (the convolution it transposes)."""
    batch: int
    channels: int
    filters: int
    groups: int
    in_size: tuple
    out_size: tuple
    kernel: tuple
    stride: tuple
    dilate: tuple
    pad: tuple
    dtype: str

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)

    @property
    def col_rows(self) -> int:
        """Rows of an image's im2col matrix: (channel, tap) pairs, group-major."""
        return self.channels * self.taps

    @property
    def col_elems(self) -> int:
        return self.col_rows * math.prod(self.out_size)

    @property
    def padded_elems(self) -> int:
        """Elements of one zero-padded image (0 without padding: the image is read in place)."""
        if not any(self.pad):
            return 0
        return self.channels * math.prod(i + 2 * p for i, p in zip(self.in_size, self.pad))

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: the image itself is the column matrix (a plain GEMM)."""
        return all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride) and not any(self.pad)

    @property
    def depthwise(self) -> bool:
        """One filter per input channel: a direct loop beats im2col + C GEMMs of one row."""
        return self.groups == self.channels == self.filters and self.groups > 1


def _spatial(value, nd, default):
    if value is None or value == ():
        return (default,) * nd
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return value * nd if len(value) == 1 and nd > 1 else value


def conv_geometry(node: Node):
    """The ConvGeometry of a convolution-family node, or None when it does not lower natively
    (an unknown role, a channels-last layout, a dtype other than float32/float64)."""
    role = CONV_ROLES.get(node.op)
    if role is None or node.is_var or node.is_const:
        return None
    attrs = node.attrs
    if attrs.get("layout") not in CONV_LAYOUTS:
        return None
    out = node.types[0]
    if out.dtype not in ("float32", "float64") or any(v.type.dtype != out.dtype for v in node.inputs):
        return None
    if role == "forward":           # (data, weight): data is the image
        img, res = node.inputs[0].type.shape, out.shape
    elif role == "transposed":      # (data or ograd, weight): the output is the image
        img, res = out.shape, node.inputs[0].type.shape
    else:                           # (ograd, data): dw has the weight's shape
        img, res = node.inputs[1].type.shape, node.inputs[0].type.shape
    nd = len(img) - 2
    if nd < 1 or len(res) != nd + 2:
        return None
    wshape = out.shape if role == "weight_grad" else node.inputs[1].type.shape
    pad = attrs.get("pad")
    if node.op == "Deconvolution":
        # target_shape overrides pad (and adj); the declaration knows how
        from .declarations.conv import deconv_geometry
        pad = deconv_geometry(res[2:], attrs["kernel"], attrs["stride"], attrs["dilate"], attrs["pad"],
                              attrs["adj"], attrs["target_shape"])[3]
    groups = int(attrs.get("num_group") or 1)
    kernel = tuple(wshape[2:])
    g = ConvGeometry(batch=img[0], channels=img[1], filters=res[1], groups=groups, in_size=tuple(img[2:]),
                     out_size=tuple(res[2:]), kernel=kernel, stride=_spatial(attrs.get("stride"), nd, 1),
                     dilate=_spatial(attrs.get("dilate"), nd, 1), pad=_spatial(pad, nd, 0),
                     dtype=out.dtype)
    if len(g.stride) != nd or len(g.dilate) != nd or len(g.pad) != nd or g.channels % groups or g.filters % groups:
        return None
    # the result's size must be the convolution's (Deconvolution's adj only ever leaves trailing
    # image positions that no result position reaches)
    for i, o, k, s, d, p in zip(g.in_size, g.out_size, g.kernel, g.stride, g.dilate, g.pad):
        if o != (i + 2 * p - d * (k - 1) - 1) // s + 1:
            return None
    # every role's weight is (filters, channels/groups, *kernel) of the forward convolution
    if tuple(wshape[:2]) != (g.filters, g.channels // groups):
        return None
    return g


def uses_im2col(node: Node, g: ConvGeometry) -> bool:
    role = CONV_ROLES[node.op]
    if g.pointwise and g.groups == 1:
        return False
    if role == "forward" and g.depthwise:
        return False
    return True


# Winograd F(m x m, 3x3) (runtime/winograd.py): which convolutions take it, with which tile,
# and the scratch they need; here because the memory planner sizes the scratch from these facts
# smallest output side: each of the GEMMs has (out/m)^2 columns per image; ResNet's 7x7
# stage would make them 16 columns wide (worse than one im2col GEMM)
WINOGRAD_MIN_OUT = 14
# most filters x channels: the weight transform runs per call (weights are program inputs
# that may change) and writes 16 or 36 floats per pair, 4 MB at 256 x 256 for F(2x2). ResNet-18's
# 256 x 256 stage at 14x14 gained (W4 8.5 -> 7.8 ms, medians of 50 alternating rounds; its
# weight transform costs 0.18 ms of the 0.47); 512 x 512 at 7x7 is below WINOGRAD_MIN_OUT.
WINOGRAD_MAX_PAIRS = 256 * 256


def winograd_setting() -> int:
    """GRAPHC_WINOGRAD: 0 (off: im2col everywhere), 2 (F(2x2, 3x3) only) or 4 (the default:
    F(4x4, 3x3) where the output sides divide by 4, else F(2x2, 3x3))."""
    v = os.environ.get("GRAPHC_WINOGRAD", "4").strip().lower()
    return 0 if v in ("0", "off", "false") else 2 if v == "2" else 4


def winograd_tile(g: ConvGeometry) -> int:
    """m of F(m x m, 3x3): outputs per tile side."""
    return 4 if winograd_setting() == 4 and all(o % 4 == 0 for o in g.out_size) else 2


def winograd_points(g: ConvGeometry) -> int:
    """Points of a transformed tile, (m + 2)^2: the number of GEMMs."""
    return (winograd_tile(g) + 2) ** 2


def winograd_tiles(g: ConvGeometry) -> tuple:
    return tuple(o // winograd_tile(g) for o in g.out_size)


def uses_winograd(node: Node, g: ConvGeometry) -> bool:
    """A forward 2-D 3x3 convolution, stride and dilation 1, one group, float32, even output
    sides of at least WINOGRAD_MIN_OUT: Winograd instead of im2col. float64 keeps im2col
    (exact summation order is its point)."""
    if not winograd_setting():
        return False
    return (CONV_ROLES.get(node.op) == "forward" and g.kernel == (3, 3) and g.stride == (1, 1)
            and g.dilate == (1, 1) and g.groups == 1 and g.dtype == "float32"
            and all(o % 2 == 0 and o >= WINOGRAD_MIN_OUT for o in g.out_size)
            and g.filters * g.channels <= WINOGRAD_MAX_PAIRS)


def winograd_plane(elems: int) -> int:
    """The distance between two of the planes (one per point) of a transformed operand: past a
    multiple of 1024 floats by one cache line, so the transforms' 16 or 36 streams fall into
    different L1 sets (at a multiple of 4 KiB, as 64 x 64 or 64 channels x 28 x 28 tiles are,
    they all share one set and the 12-way L1 thrashes: the transforms ran 5-8x slower)."""
    return -(-elems // 1024) * 1024 + 16


def winograd_scratch(g: ConvGeometry, images: int) -> dict:
    """Elements of the transformed inputs (v), the products (m), both for `images` images,
    and the transformed weights (u, shared by all images): a plane per point each
    (winograd_plane); and the weights' staging copy (staged), one image's outputs tile by tile
    (tiled) and the input transform's column phases (phases), shared by all images."""
    t = math.prod(winograd_tiles(g)) * images
    sizes = {k: winograd_points(g) * winograd_plane(e) for k, e in
             (("v", g.channels * t), ("m", g.filters * t), ("u", g.filters * g.channels))}
    sizes["staged"] = g.filters * g.channels * 9       # the weights, staged block by block
    sizes["tiled"] = g.filters * math.prod(g.out_size)      # one image's outputs, by tile
    sizes["phases"] = g.channels * (winograd_tile(g) + 2) * winograd_tile(g) * (winograd_tiles(g)[1] + 1)
    return sizes


def conv_scratch(node: Node, g: ConvGeometry):
    """(images per chunk, column elements per image, padded-image elements per image) of the
    arena scratch a convolution-family node works in: im2col columns (none for 1x1 and
    depthwise convolutions) and a zero-padded copy of the images (none without padding).
    Images are done in chunks whose scratch fits SCRATCH_BUDGET (all at once when they fit;
    depthwise works on all images)."""
    if uses_winograd(node, g):
        per = winograd_scratch(g, 1)
        cols = per["v"] + per["m"]
    else:
        cols = g.col_elems if uses_im2col(node, g) else 0
    padded = g.padded_elems if (cols or (CONV_ROLES[node.op] == "forward" and g.depthwise)) else 0
    if not cols:
        return g.batch, 0, padded
    per_image = (cols + padded) * (4 if g.dtype == "float32" else 8)
    return max(1, min(g.batch, SCRATCH_BUDGET // max(per_image, 1))), cols, padded


def conv_node_of(node: Node):
    """The convolution-family node a (fused) node lowers around, or None."""
    if node.op == FUSED_CONV:
        return next(n for n in node.attrs["body"].graph.nodes if n.op in CONV_ROLES)
    return node if node.op in CONV_ROLES else None


def scratch_bytes(node: Node) -> int:
    """Arena bytes a step needs while it runs and never after (im2col columns, padded images)."""
    conv = conv_node_of(node)
    if conv is None:
        from .declarations.sorting import network_scratch_bytes    # sort/argsort/topk's network
        return network_scratch_bytes(node)
    g = conv_geometry(conv)
    if g is None:
        return 0
    chunk, cols, padded = conv_scratch(conv, g)
    fixed = winograd_scratch(g, 0) if uses_winograd(conv, g) else {}
    weights = sum(fixed.get(k, 0) for k in ("u", "staged", "tiled", "phases"))
    return (chunk * (cols + padded) + weights) * (4 if g.dtype == "float32" else 8)


def is_conv(node: Node) -> bool:
    """A convolution that lowers natively and may take an elementwise epilogue."""
    return node.op in ("Convolution", "Deconvolution") and conv_geometry(node) is not None


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


__all__ = ["FUSED_ELEMENTWISE", "FUSED_REDUCE", "FUSED_GEMM", "FUSED_CONV", "NATIVE_DTYPES", "FusedBody",
           "is_elementwise", "is_reduction", "is_gemm", "is_conv", "body_of", "format_fused", "CONV_ROLES",
           "ConvGeometry", "conv_geometry", "uses_im2col", "conv_scratch", "uses_winograd", "winograd_scratch", "winograd_plane",
           "winograd_tiles", "winograd_tile", "winograd_points", "conv_node_of", "scratch_bytes"]
