"""Spatial resampling: UpSampling (nearest neighbour; bilinear, which MXNet defines as a
depthwise Deconvolution of the data with a given (data, weight) pair) and Pad (constant, edge,
reflect), with `_pad_grad`, the
adjoint of Pad (crop, folding the edge/reflect copies back onto the values they copied). Both
compile as strided copies (graphc/ops/copy_pieces.py); Pad's edge/reflect gradient is built from
slices, sums, reversals and zero padding so that it compiles too."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import OpAttributeError, ShapeError
from .. import copy_pieces as CP
from .. import layout as L
from ..registry import Movement, OpDef, register
from .common import same_dtype, like

# -- UpSampling (nearest) --------------------------------------------------------------------------
_UP_ATTRS = {"scale": Attr("int"), "num_filter": Attr("int", 0),
             "sample_type": Attr("str", "nearest", choices=("nearest", "bilinear")),
             "multi_input_mode": Attr("str", "concat", choices=("concat", "sum")),
             "num_args": Attr("int", 1), "workspace": Attr("int", 512)}


def _up_inputs(attrs):
    if attrs["sample_type"] == "bilinear":
        return ("data", "weight")
    return tuple(f"arg{i}" for i in range(attrs["num_args"]))


# -- UpSampling (bilinear): MXNet's Deconvolution with kernel 2s - s%2, stride s, pad ceil((s-1)/2),
# one group per channel and no bias, whose weight (num_filter, 1, k, k) is an input (usually
# initialised to a bilinear kernel); the output is exactly s times the input's size
def _bilinear_deconv_attrs(attrs):
    from ..registry import get_op
    s = attrs["scale"]
    k, p = 2 * s - s % 2, s // 2         # (s // 2 == ceil((s - 1) / 2))
    if attrs["num_filter"] < 1:
        raise OpAttributeError(f"UpSampling: bilinear sampling needs num_filter (the data's channels), got "
                               f"{attrs['num_filter']}")
    return get_op("Deconvolution").parse(dict(kernel=(k, k), stride=(s, s), pad=(p, p), num_filter=attrs["num_filter"],
                                              num_group=attrs["num_filter"], no_bias=True))


def _bilinear_infer(xs, attrs):
    from .conv import _deconv_infer
    if len(xs) != 2:
        raise ShapeError(f"UpSampling: bilinear sampling takes (data, weight), got {len(xs)} inputs")
    x, w = xs
    deconv = _bilinear_deconv_attrs(attrs)
    if x.ndim != 4:
        raise ShapeError(f"UpSampling: bilinear sampling needs 4-D (N, C, H, W) data, got {x.shape}")
    return _deconv_infer(x, w, **deconv)


def _bilinear_np(x, w, attrs):
    from .conv import _deconv_np
    return _deconv_np(x, w, **_bilinear_deconv_attrs(attrs))


def _up_infer_missing(in_types, attrs):
    """Bilinear: the weight (num_filter, 1, k, k) from the attributes."""
    if attrs["sample_type"] != "bilinear" or in_types[0] is None or len(in_types) < 2:
        return in_types
    d = _bilinear_deconv_attrs(attrs)
    want = like(in_types[0], (attrs["num_filter"], 1) + tuple(d["kernel"]))
    return [in_types[0], in_types[1] if in_types[1] is not None else want]


def _up_scales(op, shapes, scale, sample_type):
    if sample_type != "nearest":
        raise OpAttributeError(f"{op}: sample_type={sample_type!r} has no nearest-neighbour scales")
    out_h, out_w = shapes[0][2] * scale, shapes[0][3] * scale
    scales = []
    for s in shapes:
        if len(s) != 4 or s[0] != shapes[0][0] or out_h % s[2] or out_w % s[3] or out_h // s[2] != out_w // s[3]:
            raise ShapeError(f"{op}: inputs {[tuple(t) for t in shapes]} must be 4-D (N, C, H, W) with one batch "
                             f"size, each an integer factor below the output size ({out_h}, {out_w})")
        scales.append(out_h // s[2])
    return scales, (out_h, out_w)


def _up_infer(*xs, scale, sample_type, multi_input_mode, num_args, **rest):
    if sample_type == "bilinear":
        return _bilinear_infer(xs, dict(rest, scale=scale))
    if len(xs) != num_args:
        raise ShapeError(f"UpSampling: num_args={num_args} but {len(xs)} inputs were given")
    same_dtype("UpSampling", *xs)
    _, (h, w) = _up_scales("UpSampling", [x.shape for x in xs], scale, sample_type)
    if multi_input_mode == "sum":
        if len({x.shape[1] for x in xs}) > 1:
            raise ShapeError(f"UpSampling: multi_input_mode='sum' needs equal channels, got {[x.shape for x in xs]}")
        c = xs[0].shape[1]
    else:
        c = sum(x.shape[1] for x in xs)
    return like(xs[0], (xs[0].shape[0], c, h, w))


def _up_np(*xs, scale, sample_type, multi_input_mode, num_args, **rest):
    if sample_type == "bilinear":
        return _bilinear_np(*xs, dict(rest, scale=scale))
    scales, _ = _up_scales("UpSampling", [x.shape for x in xs], scale, sample_type)
    ups = [x.repeat(s, axis=2).repeat(s, axis=3) for x, s in zip(xs, scales)]
    if len(ups) == 1:
        return ups[0]
    return sum(ups[1:], ups[0]) if multi_input_mode == "sum" else np.concatenate(ups, axis=1)


def _up_grad(F, ins, outs, gs, attrs):
    if attrs["sample_type"] == "bilinear":
        from .conv import _deconv_grad
        return _deconv_grad(F, ins, outs, gs, _bilinear_deconv_attrs(attrs))
    g = gs[0]
    scales, _ = _up_scales("UpSampling", [x.shape for x in ins], attrs["scale"], attrs["sample_type"])
    grads, c0 = [], 0
    for x, s in zip(ins, scales):
        n, c, h, w = x.shape
        gi = g
        if attrs["multi_input_mode"] == "concat" and len(ins) > 1:
            gi = F.slice_axis(g, axis=1, begin=c0, end=c0 + c)
            c0 += c
        grads.append(F.sum(F.Reshape(gi, shape=(n, c, h, s, w, s)), axis=(3, 5)) if s > 1 else gi)
    return grads


def _up_pieces(in_types, out_types, attrs):
    if attrs["sample_type"] == "bilinear":
        return None         # a convolution, not a copy: the host runs it
    if attrs["multi_input_mode"] == "sum" and len(in_types) > 1:
        return None         # a sum, not a copy: the host runs it
    shapes = [t.shape for t in in_types]
    scales, _ = _up_scales("UpSampling", shapes, attrs["scale"], attrs["sample_type"])
    return CP.upsample_copies(shapes, scales, out_types[0].shape)


register(OpDef("UpSampling", infer=_up_infer, compute=_up_np, inputs=_up_inputs, attrs=_UP_ATTRS,
               gradient=_up_grad, lowering=Movement(_up_pieces), infer_missing=_up_infer_missing,
               doc="Nearest-neighbour upsampling of NCHW inputs to scale x the first one's size; several "
                   "inputs are concatenated on channels or summed. sample_type='bilinear': a depthwise "
                   "Deconvolution of (data, weight) with kernel 2*scale - scale%2 and stride scale."))


# -- Pad -------------------------------------------------------------------------------------------
_PAD_ATTRS = {"mode": Attr("str", "constant", choices=("constant", "edge", "reflect")),
              "pad_width": Attr("shape"), "constant_value": Attr("float", 0.0)}


def _widths(op, shape, pad_width, mode):
    if len(pad_width) != 2 * len(shape):
        raise ShapeError(f"{op}: pad_width {pad_width} must have two entries per axis of data {tuple(shape)}")
    w = [(pad_width[2 * i], pad_width[2 * i + 1]) for i in range(len(shape))]
    if min(pad_width) < 0:
        raise ShapeError(f"{op}: pad_width {pad_width} has a negative entry (data {tuple(shape)})")
    if mode == "reflect" and any(max(a, b) >= n for (a, b), n in zip(w, shape) if a or b):
        raise ShapeError(f"{op}: reflect padding {pad_width} must be smaller than each padded axis of data {tuple(shape)}")
    return w


def _pad_infer(x, mode, pad_width, constant_value):
    w = _widths("Pad", x.shape, pad_width, mode)
    return like(x, tuple(n + a + b for n, (a, b) in zip(x.shape, w)))


def _pad_np(x, mode, pad_width, constant_value):
    w = _widths("Pad", x.shape, pad_width, mode)
    if mode == "constant":
        return np.pad(x, w, mode="constant", constant_values=x.dtype.type(constant_value))
    return np.pad(x, w, mode=mode)


def _pad_grad(F, ins, outs, gs, attrs):
    if attrs["mode"] == "constant":
        return [F._pad_grad(gs[0], mode="constant", pad_width=attrs["pad_width"])]
    return [_fold_padding(F, gs[0], ins[0].shape, attrs["mode"], attrs["pad_width"])]


def _fold_padding(F, g, shape, mode, pad_width):
    """The adjoint of edge/reflect padding, axis by axis, as slices, sums and zero padding (all
    compiled) rather than `_pad_grad` (a scatter-add, host only): the core of g, plus each band
    summed (edge) or reversed (reflect) and zero-padded onto the rows it copied."""
    ndim = len(shape)
    for d in range(ndim):
        a, b = pad_width[2 * d], pad_width[2 * d + 1]
        if not a and not b:
            continue
        n = shape[d]

        def along(lo, hi, t):       # pad_width that pads only axis d
            return tuple(v for k in range(ndim) for v in ((lo, hi) if k == d else (0, 0)))

        def zero_pad(t, lo, hi):
            return F.Pad(t, mode="constant", pad_width=along(lo, hi, t), constant_value=0.0)

        out = F.slice_axis(g, axis=d, begin=a, end=a + n)
        if mode == "edge":
            if a:
                out = out + zero_pad(F.sum(F.slice_axis(g, axis=d, begin=0, end=a), axis=d, keepdims=True), 0, n - 1)
            if b:
                out = out + zero_pad(F.sum(F.slice_axis(g, axis=d, begin=a + n, end=a + n + b), axis=d,
                                           keepdims=True), n - 1, 0)
        else:   # reflect: padded row j < a copied row a - j; row a + n + k copied row n - 2 - k
            if a:
                out = out + zero_pad(F.reverse(F.slice_axis(g, axis=d, begin=0, end=a), axis=(d,)), 1, n - 1 - a)
            if b:
                out = out + zero_pad(F.reverse(F.slice_axis(g, axis=d, begin=a + n, end=a + n + b), axis=(d,)),
                                     n - 1 - b, 1)
        g = out
    return g


def _pad_pieces(in_types, out_types, attrs):
    x = in_types[0]
    w = _widths("Pad", x.shape, attrs["pad_width"], attrs["mode"])
    return CP.pad_copies(x.shape, w, attrs["mode"], attrs["constant_value"])


register(OpDef("Pad", infer=_pad_infer, compute=_pad_np, attrs=_PAD_ATTRS, gradient=_pad_grad,
               lowering=Movement(_pad_pieces), aliases=("pad",),
               doc="Pad every axis by pad_width (before, after pairs) with a constant, "
                   "the edge value, or a reflection (edge excluded)."))


def _unpad_infer(g, mode, pad_width):
    w = [(pad_width[2 * i], pad_width[2 * i + 1]) for i in range(len(pad_width) // 2)]
    if len(pad_width) != 2 * g.ndim or any(n <= a + b for (a, b), n in zip(w, g.shape)):
        raise ShapeError(f"_pad_grad: gradient {g.shape} is not a padded shape for pad_width {pad_width}")
    shape = tuple(n - a - b for n, (a, b) in zip(g.shape, w))
    _widths("_pad_grad", shape, pad_width, mode)
    return like(g, shape)


def _unpad_np(g, mode, pad_width):
    out = g
    for axis in range(g.ndim):
        a, b = pad_width[2 * axis], pad_width[2 * axis + 1]
        if not a and not b:
            continue
        n = out.shape[axis] - a - b
        core = np.take(out, np.arange(a, a + n), axis=axis).copy()
        if mode != "constant":
            before = np.take(out, np.arange(a), axis=axis)            # padded positions 0..a-1
            after = np.take(out, np.arange(a + n, a + n + b), axis=axis)
            if mode == "edge":
                src_b, src_a = np.zeros(a, np.int64), np.full(b, n - 1)
            else:  # reflect: position j < a copies a - j; position a + n + k copies n - 2 - k
                src_b, src_a = a - np.arange(a), n - 2 - np.arange(b)
            core = np.moveaxis(core, axis, 0)
            np.add.at(core, src_b, np.moveaxis(before, axis, 0))
            np.add.at(core, src_a, np.moveaxis(after, axis, 0))
            core = np.moveaxis(core, 0, axis)
        out = core
    return np.ascontiguousarray(out)


def _unpad_pieces(in_types, out_types, attrs):
    if attrs["mode"] != "constant":
        return None         # edge/reflect fold the padding back with additions: not a copy
    g, pw = in_types[0], attrs["pad_width"]
    core = tuple(slice(pw[2 * i], g.shape[i] - pw[2 * i + 1]) for i in range(g.ndim))
    return [L.gather(L.probe(g.shape)[core], out_types[0].shape)]


register(OpDef("_pad_grad", infer=_unpad_infer, compute=_unpad_np, inputs=("ograd",), lowering=Movement(_unpad_pieces),
               attrs={"mode": _PAD_ATTRS["mode"], "pad_width": Attr("shape")},
               gradient=lambda F, ins, outs, gs, attrs: [F.Pad(gs[0], mode=attrs["mode"], pad_width=attrs["pad_width"],
                                                               constant_value=0.0)],
               doc="Pad's gradient: the interior of ograd plus, for edge/reflect, the padding folded back."))
