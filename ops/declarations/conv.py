"""Convolution and Deconvolution (1-D, 2-D, 3-D; channels first, or channels last for 2-D/3-D as
MXNet's layout='NHWC'/'NDHWC'), and the two internal operators
their gradients are made of: `_conv_data_grad` (the transpose of a convolution: what flows back
to the data, and Deconvolution's forward) and `_conv_weight_grad` (what flows back to the
weight). Each of the three is linear in each input, so the gradient of each is built from the
other two: gradients of any order close over this family.

The numpy references use a strided window view (im2col without the copy) and one tensordot per
group. All four lower to the backend's convolution routines (`Library('conv')` etc.); a backend
without them runs these references on the host.

Channels-last layouts (weight (filters, *kernel, channels/groups), MXNet's) are defined by the
channels-first computation on transposed operands: the references transpose in and out, the
gradients are the channels-first gradient operators between transposes, and before a backend
sees the graph `passes/channels_last.py` rewrites each channels-last node into that sandwich.
The gradient operators themselves are channels first only.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..attrs import Attr
from ..errors import OpAttributeError, ShapeError
from ..registry import OpDef, Library, register
from .common import same_dtype, like

CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
# MXNet 1.9's Convolution/Deconvolution layout enum has no 'NWC': 1-D convolutions are channels first
_CONV_LAST_RANKS = (2, 3)


# -- layouts ---------------------------------------------------------------------------------------

def to_channels_first(nd: int) -> tuple:
    """The transpose axes that turn channels-last data of nd spatial dims into channels first."""
    return (0, nd + 1) + tuple(range(1, nd + 1))


def to_channels_last(nd: int) -> tuple:
    """The inverse of to_channels_first."""
    return (0,) + tuple(range(2, nd + 2)) + (1,)


def channels_first_shape(shape, last: bool) -> tuple:
    """`shape` in channels-first order (unchanged when it already is)."""
    shape = tuple(shape)
    return tuple(shape[i] for i in to_channels_first(len(shape) - 2)) if last else shape


def from_channels_first(shape, last: bool) -> tuple:
    """A channels-first `shape` in the layout's order."""
    shape = tuple(shape)
    return tuple(shape[i] for i in to_channels_last(len(shape) - 2)) if last else shape


def is_channels_last(op, layout, nd, last_ranks=(1, 2, 3)) -> bool:
    """False for nd-D's channels-first layout (or none given), True for its channels-last one
    where `last_ranks` allows it; any other layout (another rank's, another order) is refused."""
    if layout is None or layout == CHANNELS_FIRST.get(nd):
        return False
    if layout == CHANNELS_LAST.get(nd) and nd in last_ranks:
        return True
    accepted = [CHANNELS_FIRST[nd]] + ([CHANNELS_LAST[nd]] if nd in last_ranks else [])
    if layout in CHANNELS_LAST.values() and len(layout) == nd + 2:
        raise OpAttributeError(f"{op}: layout={layout!r} is not supported for {nd}-D data (MXNet 1.9 accepts only "
                               f"{' or '.join(map(repr, accepted))} here): transpose the data to "
                               f"{CHANNELS_FIRST[nd]!r} first")
    raise OpAttributeError(f"{op}: layout={layout!r} does not fit {nd}-D data ({nd + 2} dimensions); "
                           f"expected {' or '.join(map(repr, accepted))}")


def transposed(x: np.ndarray, axes) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, axes))


# -- geometry ---------------------------------------------------------------------------------------

def geometry(op, kernel, stride, dilate, pad):
    """Normalise kernel/stride/dilate/pad to tuples of the kernel's rank (MXNet: () = defaults)."""
    nd = len(kernel)
    if not 1 <= nd <= 3:
        raise OpAttributeError(f"{op}: kernel={kernel} must have 1, 2 or 3 dimensions")
    stride = tuple(stride) or (1,) * nd
    dilate = tuple(dilate) or (1,) * nd
    pad = tuple(pad) or (0,) * nd
    for name, v in (("stride", stride), ("dilate", dilate), ("pad", pad)):
        if len(v) != nd:
            raise OpAttributeError(f"{op}: {name}={v} has {len(v)} dimensions but kernel={kernel} has {nd}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilate) < 1 or min(pad) < 0:
        raise OpAttributeError(f"{op}: kernel {kernel}, stride {stride}, dilate {dilate} must be positive "
                               f"and pad {pad} non-negative")
    return tuple(kernel), stride, dilate, pad


def conv_out_size(n, k, s, d, p):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _windows(xp, kernel, stride, dilate, out):
    """A (N, C, *kernel, *out) view of the padded input xp: element [n, c, k.., o..] is
    xp[n, c, o*stride + k*dilate ...]."""
    sp = xp.strides[2:]
    shape = xp.shape[:2] + tuple(kernel) + tuple(out)
    strides = xp.strides[:2] + tuple(s * d for s, d in zip(sp, dilate)) + tuple(s * t for s, t in zip(sp, stride))
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def _pad_spatial(x, pad, extent=None):
    """Zero-pad the spatial axes by `pad` on both sides (and more at the end up to `extent`)."""
    nd = x.ndim - 2
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        after = pad[i]
        if extent is not None:
            after = max(after, extent[i] - x.shape[2 + i] - pad[i])
        widths.append((pad[i], after))
    return np.pad(x, widths) if any(w != (0, 0) for w in widths) else x


def conv_forward(x, w, kernel, stride, dilate, pad, num_group):
    kernel, stride, dilate, pad = geometry("Convolution", kernel, stride, dilate, pad)
    nd = len(kernel)
    out = tuple(conv_out_size(x.shape[2 + i], kernel[i], stride[i], dilate[i], pad[i]) for i in range(nd))
    cols = _windows(np.ascontiguousarray(_pad_spatial(x, pad)), kernel, stride, dilate, out)
    g, cg, fg = num_group, x.shape[1] // num_group, w.shape[0] // num_group
    parts = []
    red = list(range(1, 2 + nd))
    for k in range(g):
        y = np.tensordot(cols[:, k * cg:(k + 1) * cg], w[k * fg:(k + 1) * fg], axes=(red, red))  # (N, *out, F)
        parts.append(np.moveaxis(y, -1, 1))
    return np.ascontiguousarray(np.concatenate(parts, axis=1) if g > 1 else parts[0]).astype(x.dtype, copy=False)


def conv_data_grad(gy, w, kernel, stride, dilate, pad, num_group, in_spatial):
    """The adjoint of conv_forward in its data: scatter-add w^T gy back over the windows."""
    kernel, stride, dilate, pad = geometry("_conv_data_grad", kernel, stride, dilate, pad)
    nd = len(kernel)
    out = gy.shape[2:]
    g, fg, cg = num_group, gy.shape[1] // num_group, w.shape[1]
    extent = [max(in_spatial[i] + 2 * pad[i], (out[i] - 1) * stride[i] + (kernel[i] - 1) * dilate[i] + 1)
              for i in range(nd)]
    xp = np.zeros((gy.shape[0], cg * g) + tuple(extent), dtype=np.result_type(gy, w))
    for k in range(g):
        # (N, *out, Cg, *kernel)
        cols = np.tensordot(np.moveaxis(gy[:, k * fg:(k + 1) * fg], 1, -1), w[k * fg:(k + 1) * fg], axes=([-1], [0]))
        for offs in itertools.product(*(range(n) for n in kernel)):
            sl = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offs, dilate, stride, out))
            xp[(slice(None), slice(k * cg, (k + 1) * cg)) + sl] += np.moveaxis(cols[(Ellipsis,) + offs], -1, 1)
    crop = tuple(slice(p, p + n) for p, n in zip(pad, in_spatial))
    return np.ascontiguousarray(xp[(slice(None), slice(None)) + crop]).astype(gy.dtype, copy=False)


def conv_weight_grad(gy, x, kernel, stride, dilate, pad, num_group):
    kernel, stride, dilate, pad = geometry("_conv_weight_grad", kernel, stride, dilate, pad)
    nd = len(kernel)
    out = gy.shape[2:]
    cols = _windows(np.ascontiguousarray(_pad_spatial(x, pad)), kernel, stride, dilate, out)
    g, cg, fg = num_group, x.shape[1] // num_group, gy.shape[1] // num_group
    parts = []
    for k in range(g):
        # sum over n and output positions: (Fg, Cg, *kernel)
        parts.append(np.tensordot(gy[:, k * fg:(k + 1) * fg], cols[:, k * cg:(k + 1) * cg],
                                  axes=([0] + list(range(2, 2 + nd)), [0] + list(range(2 + nd, 2 + 2 * nd)))))
    return np.ascontiguousarray(np.concatenate(parts, axis=0)).astype(gy.dtype, copy=False)


# -- Convolution ------------------------------------------------------------------------------------
_COMMON = {"kernel": Attr("shape"), "stride": Attr("shape", ()), "dilate": Attr("shape", ()),
           "pad": Attr("shape", ()), "num_filter": Attr("int"), "num_group": Attr("int", 1),
           "workspace": Attr("int", 1024), "cudnn_tune": Attr("str", None, optional=True),
           "cudnn_off": Attr("bool", False), "layout": Attr("str", None, optional=True)}
_CONV_ATTRS = {**_COMMON, "no_bias": Attr("bool", False)}


def _geo(attrs):
    return dict(kernel=attrs["kernel"], stride=attrs["stride"], dilate=attrs["dilate"], pad=attrs["pad"],
                num_group=attrs["num_group"])


def _check_data(op, x, w, kernel, num_group, last=False):
    nd = len(kernel)
    if x.ndim != nd + 2:
        raise ShapeError(f"{op}: data {x.shape} must have {nd + 2} dimensions (batch, channel and "
                         f"{nd} spatial) for kernel {kernel}")
    channels = x.shape[-1 if last else 1]
    if num_group < 1 or channels % num_group:
        raise ShapeError(f"{op}: data {x.shape} has {channels} channels, not divisible by num_group={num_group}")


def _conv_infer(x, w, b=None, *, kernel, stride, dilate, pad, num_filter, num_group, no_bias, layout=None, **_):
    kernel, stride, dilate, pad = geometry("Convolution", kernel, stride, dilate, pad)
    last = is_channels_last("Convolution", layout, len(kernel), _CONV_LAST_RANKS)
    _check_data("Convolution", x, w, kernel, num_group, last)
    if num_filter % num_group:
        raise ShapeError(f"Convolution: num_filter={num_filter} is not divisible by num_group={num_group} "
                         f"(data {x.shape}, weight {w.shape})")
    xs = channels_first_shape(x.shape, last)
    want = from_channels_first((num_filter, xs[1] // num_group) + kernel, last)
    if w.shape != want:
        raise ShapeError(f"Convolution: weight has shape {w.shape}, expected {want} for data {x.shape}, "
                         f"num_filter={num_filter}, num_group={num_group}, kernel={kernel}"
                         + (f", layout={layout!r}" if last else ""))
    if b is not None and b.shape != (num_filter,):
        raise ShapeError(f"Convolution: bias has shape {b.shape}, expected ({num_filter},) "
                         f"(data {x.shape}, weight {w.shape})")
    same_dtype("Convolution", *[t for t in (x, w, b) if t is not None])
    out = tuple(conv_out_size(xs[2 + i], kernel[i], stride[i], dilate[i], pad[i]) for i in range(len(kernel)))
    if min(out) < 1:
        raise ShapeError(f"Convolution: data {x.shape} padded by {pad} is smaller than the dilated kernel "
                         f"{kernel} (dilate {dilate}): weight {w.shape}")
    return like(x, from_channels_first((xs[0], num_filter) + out, last))


def _bias_shape(nd, c):
    return (1, c) + (1,) * nd


def _conv_np(x, w, b=None, *, kernel, stride, dilate, pad, num_filter, num_group, no_bias, layout=None, **_):
    nd = len(kernel)
    last = is_channels_last("Convolution", layout, nd, _CONV_LAST_RANKS)
    if last:
        x, w = transposed(x, to_channels_first(nd)), transposed(w, to_channels_first(nd))
    y = conv_forward(x, w, kernel, stride, dilate, pad, num_group)
    if b is not None and not no_bias:
        y = y + b.reshape(_bias_shape(nd, num_filter))
    return transposed(y, to_channels_last(nd)) if last else y


def _first_operands(F, nd, last, *values):
    """The values transposed to channels first (as they are when `last` is False)."""
    return [F.transpose(v, axes=to_channels_first(nd)) if last else v for v in values]


def _back_to_layout(F, nd, last, *values):
    return [F.transpose(v, axes=to_channels_last(nd)) if last else v for v in values]


def _bias_grad(F, g, last):
    """The output gradient summed over everything but the channels."""
    channel = g.ndim - 1 if last else 1
    return F.sum(g, axis=tuple(i for i in range(g.ndim) if i != channel))


def _conv_grad(F, ins, outs, gs, attrs):
    nd = len(attrs["kernel"])
    last = is_channels_last("Convolution", attrs["layout"], nd, _CONV_LAST_RANKS)
    x, w, g = _first_operands(F, nd, last, ins[0], ins[1], gs[0])
    geo = _geo(attrs)
    dx = F._conv_data_grad(g, w, in_spatial=x.shape[2:], **geo)
    dw = F._conv_weight_grad(g, x, **geo)
    grads = _back_to_layout(F, nd, last, dx, dw)
    if len(ins) == 3:
        grads.append(_bias_grad(F, gs[0], last))
    return grads


def _conv_infer_missing(in_types, attrs):
    """Weight (F, C/group, *kernel) (channels last: (F, *kernel, C/group)) and bias (F,) from the data."""
    x = in_types[0]
    if x is None:
        return in_types
    kernel = tuple(attrs["kernel"])
    last = is_channels_last("Convolution", attrs.get("layout"), len(kernel), _CONV_LAST_RANKS)
    xs = channels_first_shape(x.shape, last)
    f, g = attrs["num_filter"], attrs["num_group"]
    want = [x, like(x, from_channels_first((f, xs[1] // g) + kernel, last)), like(x, (f,))]
    return [t if t is not None else want[i] for i, t in enumerate(in_types)]


register(OpDef("Convolution", infer=_conv_infer, compute=_conv_np, attrs=_CONV_ATTRS, infer_missing=_conv_infer_missing,
               inputs=lambda a: ("data", "weight") if a["no_bias"] else ("data", "weight", "bias"),
               gradient=_conv_grad, lowering=Library("conv"),
               # a multiply-add per weight element of one filter (C/group * kernel) per output
               flops=lambda ins, outs, a: 2.0 * outs[0].size * float(np.prod(ins[1].shape[1:])),
               doc="N-D convolution: out[n, f] = sum_c w[f, c] * x[n, c] (windowed), + bias; channels first, "
                   "or last for layout='NHWC'/'NDHWC' (weight (F, *kernel, C/group))."))


# -- the gradient operators --------------------------------------------------------------------------
_GEO_ATTRS = {"kernel": Attr("shape"), "stride": Attr("shape", ()), "dilate": Attr("shape", ()),
              "pad": Attr("shape", ()), "num_group": Attr("int", 1)}


def _data_grad_infer(gy, w, kernel, stride, dilate, pad, num_group, in_spatial):
    kernel, stride, dilate, pad = geometry("_conv_data_grad", kernel, stride, dilate, pad)
    nd = len(kernel)
    same_dtype("_conv_data_grad", gy, w)
    if gy.ndim != nd + 2 or w.ndim != nd + 2 or w.shape[2:] != kernel or len(in_spatial) != nd:
        raise ShapeError(f"_conv_data_grad: output gradient {gy.shape} and weight {w.shape} do not fit kernel "
                         f"{kernel} and data spatial size {in_spatial}")
    if gy.shape[1] != w.shape[0] or w.shape[0] % num_group:
        raise ShapeError(f"_conv_data_grad: output gradient {gy.shape} has {gy.shape[1]} channels but weight "
                         f"{w.shape} has {w.shape[0]} filters (num_group={num_group})")
    want = tuple(conv_out_size(in_spatial[i], kernel[i], stride[i], dilate[i], pad[i]) for i in range(nd))
    if gy.shape[2:] != want:
        raise ShapeError(f"_conv_data_grad: output gradient {gy.shape} has spatial size {gy.shape[2:]}, but "
                         f"convolving data of spatial size {in_spatial} gives {want} (weight {w.shape})")
    return like(gy, (gy.shape[0], w.shape[1] * num_group) + tuple(in_spatial))


def _data_grad_grad(F, ins, outs, gs, attrs):
    gy, w = ins
    h = gs[0]
    geo = {k: attrs[k] for k in _GEO_ATTRS}
    return [F.Convolution(h, w, num_filter=w.shape[0], no_bias=True, **geo),
            F._conv_weight_grad(gy, h, **geo)]


register(OpDef("_conv_data_grad", infer=_data_grad_infer, compute=conv_data_grad, inputs=("ograd", "weight"),
               attrs={**_GEO_ATTRS, "in_spatial": Attr("shape")}, gradient=_data_grad_grad,
               lowering=Library("conv_data_grad"),
               flops=lambda ins, outs, a: 2.0 * ins[0].size * float(np.prod(ins[1].shape[1:])),
               doc="The data gradient of Convolution (a transposed convolution) for data of spatial size in_spatial."))


def _weight_grad_infer(gy, x, kernel, stride, dilate, pad, num_group):
    kernel, stride, dilate, pad = geometry("_conv_weight_grad", kernel, stride, dilate, pad)
    nd = len(kernel)
    same_dtype("_conv_weight_grad", gy, x)
    _check_data("_conv_weight_grad", x, None, kernel, num_group)
    want = tuple(conv_out_size(x.shape[2 + i], kernel[i], stride[i], dilate[i], pad[i]) for i in range(nd))
    if gy.ndim != nd + 2 or gy.shape[0] != x.shape[0] or gy.shape[2:] != want or gy.shape[1] % num_group:
        raise ShapeError(f"_conv_weight_grad: output gradient {gy.shape} does not fit data {x.shape} "
                         f"(expected (N, F, *{want}) with F divisible by num_group={num_group})")
    return like(gy, (gy.shape[1], x.shape[1] // num_group) + kernel)


def _weight_grad_grad(F, ins, outs, gs, attrs):
    gy, x = ins
    h = gs[0]
    geo = {k: attrs[k] for k in _GEO_ATTRS}
    return [F.Convolution(x, h, num_filter=h.shape[0], no_bias=True, **geo),
            F._conv_data_grad(gy, h, in_spatial=x.shape[2:], **geo)]


register(OpDef("_conv_weight_grad", infer=_weight_grad_infer, compute=conv_weight_grad, inputs=("ograd", "data"),
               attrs=_GEO_ATTRS, gradient=_weight_grad_grad, lowering=Library("conv_weight_grad"),
               flops=lambda ins, outs, a: 2.0 * ins[0].size * float(np.prod(outs[0].shape[1:])),
               doc="The weight gradient of Convolution: correlate the data windows with the output gradient."))


# -- Deconvolution: the transpose of a convolution ----------------------------------------------------
_DECONV_ATTRS = {**_COMMON, "adj": Attr("shape", ()), "target_shape": Attr("shape", ()),
                 "no_bias": Attr("bool", True)}


def deconv_geometry(in_spatial, kernel, stride, dilate, pad, adj, target_shape):
    """(pad, adj, out spatial) of a Deconvolution. A target_shape (any nonzero entry) overrides
    pad and adj: the total padding is split in two, the odd unit going to adj (MXNet 1.x)."""
    kernel, stride, dilate, pad = geometry("Deconvolution", kernel, stride, dilate, pad)
    nd = len(kernel)
    adj = tuple(adj) or (0,) * nd
    if len(adj) != nd:
        raise OpAttributeError(f"Deconvolution: adj={adj} has {len(adj)} dimensions but kernel={kernel} has {nd}")
    full = [stride[i] * (in_spatial[i] - 1) + dilate[i] * (kernel[i] - 1) + 1 for i in range(nd)]
    if target_shape and any(target_shape):
        if len(target_shape) != nd:
            raise OpAttributeError(f"Deconvolution: target_shape={target_shape} has {len(target_shape)} "
                                   f"dimensions but kernel={kernel} has {nd}")
        total = [full[i] - target_shape[i] for i in range(nd)]
        if min(total) < 0:
            raise ShapeError(f"Deconvolution: target_shape {target_shape} is larger than the largest output "
                             f"{tuple(full)} for input spatial size {tuple(in_spatial)}")
        pad = tuple((t + 1) // 2 for t in total)
        adj = tuple(t % 2 for t in total)
    for i in range(nd):
        # MXNet allows adj < max(stride, dilate); graphc needs adj < stride so that the output
        # convolved back gives exactly the input size (the gradient relies on it)
        if adj[i] >= stride[i]:
            raise OpAttributeError(f"Deconvolution: adj={adj} (from target_shape={tuple(target_shape)}) must be "
                                   f"smaller than stride {stride}; graphc does not support larger adjustments")
    out = tuple(full[i] - 2 * pad[i] + adj[i] for i in range(nd))
    return kernel, stride, dilate, pad, adj, out


def _deconv_infer(x, w, b=None, *, kernel, stride, dilate, pad, adj, target_shape, num_filter, num_group,
                  no_bias, layout=None, **_):
    nd = len(geometry("Deconvolution", kernel, stride, dilate, pad)[0])
    last = is_channels_last("Deconvolution", layout, nd, _CONV_LAST_RANKS)
    _check_data("Deconvolution", x, w, tuple(kernel), num_group, last)
    xs = channels_first_shape(x.shape, last)
    kernel, stride, dilate, pad, adj, out = deconv_geometry(xs[2:], kernel, stride, dilate, pad, adj, target_shape)
    if num_filter % num_group:
        raise ShapeError(f"Deconvolution: num_filter={num_filter} is not divisible by num_group={num_group} "
                         f"(data {x.shape}, weight {w.shape})")
    want = from_channels_first((xs[1], num_filter // num_group) + kernel, last)
    if w.shape != want:
        raise ShapeError(f"Deconvolution: weight has shape {w.shape}, expected {want} for data {x.shape}, "
                         f"num_filter={num_filter}, num_group={num_group}, kernel={kernel}"
                         + (f", layout={layout!r}" if last else ""))
    if b is not None and b.shape != (num_filter,):
        raise ShapeError(f"Deconvolution: bias has shape {b.shape}, expected ({num_filter},) "
                         f"(data {x.shape}, weight {w.shape})")
    same_dtype("Deconvolution", *[t for t in (x, w, b) if t is not None])
    if min(out) < 1:
        raise ShapeError(f"Deconvolution: pad {pad} removes the whole output for data {x.shape} and weight {w.shape}")
    return like(x, from_channels_first((xs[0], num_filter) + out, last))


def _deconv_conv_attrs(x_spatial, attrs):
    kernel, stride, dilate, pad, adj, out = deconv_geometry(x_spatial, attrs["kernel"], attrs["stride"],
                                                            attrs["dilate"], attrs["pad"], attrs["adj"],
                                                            attrs["target_shape"])
    return dict(kernel=kernel, stride=stride, dilate=dilate, pad=pad, num_group=attrs["num_group"]), out


def _deconv_np(x, w, b=None, **attrs):
    nd = len(attrs["kernel"])
    last = is_channels_last("Deconvolution", attrs.get("layout"), nd, _CONV_LAST_RANKS)
    if last:
        x, w = transposed(x, to_channels_first(nd)), transposed(w, to_channels_first(nd))
    geo, out = _deconv_conv_attrs(x.shape[2:], attrs)
    y = conv_data_grad(x, w, in_spatial=out, **geo)
    if b is not None and not attrs["no_bias"]:
        y = y + b.reshape(_bias_shape(len(out), attrs["num_filter"]))
    return transposed(y, to_channels_last(nd)) if last else y


def _deconv_grad(F, ins, outs, gs, attrs):
    nd = len(attrs["kernel"])
    last = is_channels_last("Deconvolution", attrs["layout"], nd, _CONV_LAST_RANKS)
    x, w, g = _first_operands(F, nd, last, ins[0], ins[1], gs[0])
    geo, _ = _deconv_conv_attrs(x.shape[2:], attrs)
    grads = _back_to_layout(F, nd, last, F.Convolution(g, w, num_filter=x.shape[1], no_bias=True, **geo),
                            F._conv_weight_grad(x, g, **geo))
    if len(ins) == 3:
        grads.append(_bias_grad(F, gs[0], last))
    return grads


def _deconv_infer_missing(in_types, attrs):
    """Weight (C, F/group, *kernel) (channels last: (C, *kernel, F/group)) and bias (F,) from the data."""
    x = in_types[0]
    if x is None:
        return in_types
    kernel = tuple(attrs["kernel"])
    last = is_channels_last("Deconvolution", attrs.get("layout"), len(kernel), _CONV_LAST_RANKS)
    xs = channels_first_shape(x.shape, last)
    f, g = attrs["num_filter"], attrs["num_group"]
    want = [x, like(x, from_channels_first((xs[1], f // g) + kernel, last)), like(x, (f,))]
    return [t if t is not None else want[i] for i, t in enumerate(in_types)]


register(OpDef("Deconvolution", infer=_deconv_infer, compute=_deconv_np, attrs=_DECONV_ATTRS,
               infer_missing=_deconv_infer_missing,
               inputs=lambda a: ("data", "weight") if a["no_bias"] else ("data", "weight", "bias"),
               gradient=_deconv_grad, lowering=Library("conv"),
               # each input element scatters into F/group * kernel outputs
               flops=lambda ins, outs, a: 2.0 * ins[0].size * float(np.prod(ins[1].shape[1:])),
               doc="Transposed convolution: the data gradient of a Convolution with the same geometry; channels "
                   "first, or last for layout='NHWC'/'NDHWC' (weight (C, *kernel, F/group))."))
