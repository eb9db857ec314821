"""Pooling (max, avg, sum, lp over 1-D, 2-D, 3-D windows; channels first, or channels last for
layout='NWC'/'NHWC'/'NDHWC') with MXNet 1.x's
conventions, and its gradient operators: `_pooling_grad` (scatter the output gradient back over
the windows: to the first maximum for max, divided by the window's count for avg) and
`_max_pool_gather` (read a tensor at the positions max pooling chose: the gradient of
`_pooling_grad` with respect to its output gradient). Pooling lowers to the backend's pooling
routine (`Library('pool')`); without one, the references run on the host.

Window geometry (MXNet 1.9 pooling.cc / pool.h): output size floor((x + 2p - k) / s) + 1 for
'valid', ceil(...) + 1 for 'full', ceil((x + 2p) / s) for 'same'. A window that runs past the
padded input is clipped; avg divides by the clipped window's size, counting the padding unless
count_include_pad=False. Max never picks a padding position.

Channels-last Pooling is channels-first pooling between transposes (the reference transposes in
and out, the gradient wraps `_pooling_grad` in transposes, `passes/channels_last.py` rewrites
it so for a backend); the two gradient operators are channels first only.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..attrs import Attr
from ..errors import OpAttributeError, ShapeError
from ..registry import OpDef, Library, register
from .common import like
from .conv import (channels_first_shape, from_channels_first, is_channels_last, to_channels_first,
                   to_channels_last, transposed)

_POOL_ATTRS = {"kernel": Attr("shape", ()), "pool_type": Attr("str", "max", choices=("max", "avg", "sum", "lp")),
               "global_pool": Attr("bool", False), "cudnn_off": Attr("bool", False),
               "pooling_convention": Attr("str", "valid", choices=("valid", "full", "same")),
               "stride": Attr("shape", ()), "pad": Attr("shape", ()), "p_value": Attr("int", None, optional=True),
               "count_include_pad": Attr("bool", None, optional=True), "layout": Attr("str", None, optional=True)}


def pool_geometry(op, shape, attrs):
    """(kernel, stride, pad, out spatial) for channels-first data of `shape`."""
    nd = len(shape) - 2
    if not 1 <= nd <= 3:
        raise ShapeError(f"{op}: data {tuple(shape)} must have 3, 4 or 5 dimensions (batch, channel, spatial...)")
    if attrs["global_pool"]:
        return tuple(shape[2:]), (1,) * nd, (0,) * nd, (1,) * nd
    kernel = tuple(attrs["kernel"])
    if len(kernel) != nd:
        raise ShapeError(f"{op}: kernel {kernel} has {len(kernel)} dimensions but data {tuple(shape)} has {nd} spatial ones")
    stride = tuple(attrs["stride"]) or (1,) * nd
    pad = tuple(attrs["pad"]) or (0,) * nd
    if len(stride) != nd or len(pad) != nd or min(kernel) < 1 or min(stride) < 1 or min(pad) < 0:
        raise OpAttributeError(f"{op}: kernel {kernel}, stride {stride}, pad {pad} must all have {nd} entries, "
                               f"positive (pad non-negative)")
    out = []
    for n, k, s, p in zip(shape[2:], kernel, stride, pad):
        if k > n + 2 * p:
            raise ShapeError(f"{op}: kernel {kernel} exceeds data {tuple(shape)} padded by {pad}")
        conv = attrs["pooling_convention"]
        if conv == "valid":
            out.append((n + 2 * p - k) // s + 1)
        elif conv == "full":
            out.append(-(-(n + 2 * p - k) // s) + 1)
        else:
            out.append(-(-(n + 2 * p) // s))
    return kernel, stride, pad, tuple(out)


def _check_p(attrs):
    if attrs["pool_type"] == "lp" and not attrs["p_value"]:
        raise OpAttributeError("Pooling: pool_type='lp' needs p_value")


def pooling_layout(op, shape, layout) -> bool:
    """Whether Pooling's data of `shape` is channels last (MXNet accepts both orders at every
    rank); refuses a layout of another rank."""
    nd = len(shape) - 2
    if not 1 <= nd <= 3:
        raise ShapeError(f"{op}: data {tuple(shape)} must have 3, 4 or 5 dimensions (batch, channel, spatial...)")
    return is_channels_last(op, layout, nd)


def _channels_first_only(op, shape, attrs):
    """The gradient operators work on channels-first data (Pooling's gradient transposes first)."""
    if pooling_layout(op, shape, attrs["layout"]):
        raise OpAttributeError(f"{op}: layout={attrs['layout']!r}: this internal operator takes channels-first "
                               f"data; Pooling's gradient transposes channels-last data before calling it")


def _pool_infer(x, **attrs):
    _check_p(attrs)
    last = pooling_layout("Pooling", x.shape, attrs["layout"])
    xs = channels_first_shape(x.shape, last)
    try:
        _, _, _, out = pool_geometry("Pooling", xs, attrs)
    except ShapeError as exc:
        if not last:
            raise
        raise ShapeError(f"{exc} (data {x.shape} in layout {attrs['layout']!r})") from None
    return like(x, from_channels_first(xs[:2] + out, last))


class _Windows:
    """The padded input and a (N, C, *kernel, *out) view of its windows."""

    def __init__(self, x, attrs, fill):
        self.kernel, self.stride, self.pad, self.out = pool_geometry("Pooling", x.shape, attrs)
        self.spatial = x.shape[2:]
        extent = [max(n + 2 * p, (o - 1) * s + k) for n, p, o, s, k in
                  zip(self.spatial, self.pad, self.out, self.stride, self.kernel)]
        self.xp = np.full(x.shape[:2] + tuple(extent), fill, dtype=x.dtype)
        self.xp[self.inner()] = x
        sp = self.xp.strides[2:]
        self.cols = np.lib.stride_tricks.as_strided(
            self.xp, x.shape[:2] + self.kernel + self.out,
            self.xp.strides[:2] + sp + tuple(a * s for a, s in zip(sp, self.stride)), writeable=False)

    def inner(self):
        return (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(self.pad, self.spatial))

    def reduce_axes(self):
        return tuple(range(2, 2 + len(self.kernel)))

    def offsets(self):
        return itertools.product(*(range(k) for k in self.kernel))

    def window_slice(self, offs):
        return (slice(None), slice(None)) + tuple(
            slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offs, self.stride, self.out))

    def divisor(self, include_pad):
        """Per output position: the number of elements avg divides by."""
        sizes = []
        for n, p, o, s, k in zip(self.spatial, self.pad, self.out, self.stride, self.kernel):
            start = np.arange(o) * s
            end = np.minimum(start + k, n + 2 * p)
            if not include_pad:
                start, end = np.maximum(start, p), np.minimum(end, n + p)
            sizes.append(np.maximum(end - start, 1))
        return math.prod(np.ix_(*sizes)) if len(sizes) > 1 else sizes[0]

    def argmax(self):
        """Flat index (row-major over the kernel) of each window's first maximum."""
        n, c = self.cols.shape[:2]
        flat = self.cols.reshape((n, c, math.prod(self.kernel)) + self.out)    # no -1: n may be 0
        return np.argmax(flat, axis=2)

    def scatter(self, contrib_of):
        """Sum contrib_of(flat kernel index, offsets) -> (N, C, *out) back onto the input."""
        acc = np.zeros(self.xp.shape, dtype=self.xp.dtype)
        for k, offs in enumerate(self.offsets()):
            acc[self.window_slice(offs)] += contrib_of(k, offs)
        return np.ascontiguousarray(acc[self.inner()])


def _lp(x, p):
    return x if p == 1 else x * x if p == 2 else x ** p


def _lp_root(s, p):
    return s if p == 1 else np.sqrt(s) if p == 2 else np.cbrt(s) if p == 3 else s ** (1.0 / p)


def _pool_np(x, **attrs):
    nd = x.ndim - 2
    if pooling_layout("Pooling", x.shape, attrs["layout"]):
        y = _pool_first_np(transposed(x, to_channels_first(nd)), **attrs)
        return transposed(y, to_channels_last(nd))
    return _pool_first_np(x, **attrs)


def _pool_first_np(x, **attrs):
    _check_p(attrs)
    kind = attrs["pool_type"]
    if kind == "max":
        w = _Windows(x, attrs, -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min)
        return np.ascontiguousarray(w.cols.max(axis=w.reduce_axes()))
    w = _Windows(x, attrs, 0)
    if kind == "lp":
        p = attrs["p_value"]
        return _lp_root(_lp(w.cols, p).sum(axis=w.reduce_axes()), p).astype(x.dtype, copy=False)
    s = w.cols.sum(axis=w.reduce_axes())
    if kind == "avg":
        include = attrs["count_include_pad"] is not False
        s = s / w.divisor(include).astype(x.dtype)
    return np.ascontiguousarray(s).astype(x.dtype, copy=False)


def _pool_flops(x, y, attrs) -> float:
    """One operation per window element per output (a global pool reads every input once)."""
    if attrs["global_pool"] or not attrs["kernel"]:
        return float(x.size)
    return float(y.size) * math.prod(attrs["kernel"])


def _pool_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    nd = x.ndim - 2
    if not pooling_layout("Pooling", x.shape, attrs["layout"]):
        return [_data_grad(F, gs[0], x, outs[0], attrs)]
    g, x, y = (F.transpose(v, axes=to_channels_first(nd)) for v in (gs[0], x, outs[0]))
    dx = _data_grad(F, g, x, y, {**attrs, "layout": None})
    return [F.transpose(dx, axes=to_channels_last(nd))]


def _data_grad(F, g, x, y, attrs):
    """_pooling_grad, except for lp pooling: y = (sum over the window of x^p)^(1/p), so
    dx_i = x_i^(p-1) * sum over the windows o covering i of g_o / y_o^(p-1) (0 where y_o = 0, as
    in the reference): sum pooling's gradient of that scale, which compiles (and has its own
    gradient, so lp pooling gets second derivatives for every p)."""
    if attrs["pool_type"] != "lp":
        return F._pooling_grad(g, x, y, **attrs)
    p = attrs["p_value"]
    summed = {**attrs, "pool_type": "sum"}
    if p == 1:
        return F._pooling_grad(g, x, y, **summed)
    nonzero = y != 0
    y_p1 = _power(y, p - 1)
    scale = F.where(nonzero, g / F.where(nonzero, y_p1, F.ones_like(y_p1)), F.zeros_like(g))
    return _power(x, p - 1) * F._pooling_grad(scale, x, y, **summed)


def _power(v, q):
    """v^q as the reference's _lp writes it (products up to the square, else **)."""
    return v if q == 1 else v * v if q == 2 else v ** q


register(OpDef("Pooling", infer=_pool_infer, compute=_pool_np, attrs=_POOL_ATTRS, gradient=_pool_grad,
               lowering=Library("pool"), flops=lambda ins, outs, a: _pool_flops(ins[0], outs[0], a),
               doc="Max/avg/sum/lp pooling over 1-3 spatial dimensions with MXNet's window conventions; "
                   "channels first, or last for layout='NWC'/'NHWC'/'NDHWC'."))


# -- gradient operators ----------------------------------------------------------------------------

def _pooling_grad_infer(g, x, y, **attrs):
    _check_p(attrs)
    _channels_first_only("_pooling_grad", x.shape, attrs)
    _, _, _, out = pool_geometry("_pooling_grad", x.shape, attrs)
    want = x.shape[:2] + out
    if g.shape != want or y.shape != want:
        raise ShapeError(f"_pooling_grad: output gradient {g.shape} and output {y.shape} must have the pooled "
                         f"shape {want} of data {x.shape}")
    return like(x)


def _pooling_grad_np(g, x, y, **attrs):
    kind = attrs["pool_type"]
    if kind == "max":
        w = _Windows(x, attrs, -np.inf)
        arg = w.argmax()
        return w.scatter(lambda k, offs: np.where(arg == k, g, 0).astype(x.dtype)).astype(x.dtype, copy=False)
    w = _Windows(x, attrs, 0)
    if kind == "lp":
        p = attrs["p_value"]
        if p == 1:
            return w.scatter(lambda k, offs: g)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(y != 0, g / _lp(y, p - 1), 0).astype(x.dtype)
        return w.scatter(lambda k, offs: scale * _lp(w.cols[(slice(None), slice(None)) + offs], p - 1))
    if kind == "avg":
        g = g / w.divisor(attrs["count_include_pad"] is not False).astype(x.dtype)
    return w.scatter(lambda k, offs: g).astype(x.dtype, copy=False)


def _pooling_grad_grad(F, ins, outs, gs, attrs):
    g, x, y = ins
    h = gs[0]
    kind = attrs["pool_type"]
    if kind == "max":
        # linear in g; piecewise constant in x (the argmax does not move under a small change)
        return [F._max_pool_gather(h, x, **attrs), None, None]
    if kind in ("avg", "sum"):
        return [F.Pooling(h, **attrs), None, None]
    if attrs["p_value"] == 1:
        return [F.Pooling(h, **{**attrs, "pool_type": "sum"}), None, None]
    raise NotImplementedError("Pooling: second derivatives of lp pooling with p_value > 1 are not implemented")


register(OpDef("_pooling_grad", infer=_pooling_grad_infer, compute=_pooling_grad_np,
               inputs=("ograd", "data", "output"), attrs=_POOL_ATTRS, gradient=_pooling_grad_grad,
               lowering=Library("pool_grad"), flops=lambda ins, outs, a: _pool_flops(ins[1], ins[0], a),
               doc="Pooling's data gradient: the output gradient scattered back over the windows."))


def _gather_infer(h, x, **attrs):
    if h.shape != x.shape:
        raise ShapeError(f"_max_pool_gather: values {h.shape} must have the data's shape {x.shape}")
    _channels_first_only("_max_pool_gather", x.shape, attrs)
    _, _, _, out = pool_geometry("_max_pool_gather", x.shape, attrs)
    return like(h, x.shape[:2] + out)


def _gather_np(h, x, **attrs):
    w = _Windows(x, attrs, -np.inf)
    arg = w.argmax()
    hw = _Windows(h, attrs, 0)
    flat = hw.cols.reshape(hw.cols.shape[:2] + (math.prod(hw.kernel),) + hw.out)
    return np.ascontiguousarray(np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0])


register(OpDef("_max_pool_gather", infer=_gather_infer, compute=_gather_np, inputs=("values", "data"),
               attrs=_POOL_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [
                   F._pooling_grad(gs[0], ins[1], F.Pooling(ins[1], **attrs), **attrs), None],
               doc="values read at the position of each window's first maximum of data (max pooling's choice)."))


# -- _contrib_AdaptiveAvgPooling2D: average over bins [floor(i H / oh), ceil((i + 1) H / oh)) ----------

def _bins(n, o):
    """(o, n) matrix whose row i averages input positions floor(i n / o) .. ceil((i + 1) n / o) - 1."""
    m = np.zeros((o, n))
    for i in range(o):
        lo, hi = (i * n) // o, -(-((i + 1) * n) // o)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _out_size(op, x, output_size):
    size = tuple(output_size) or (1,)
    size = size * 2 if len(size) == 1 else size
    if x.ndim != 4 or len(size) != 2 or min(size) < 1:
        raise ShapeError(f"{op}: data {tuple(x.shape)} must be 4-D (N, C, H, W) and output_size={output_size} "
                         f"one or two positive sizes")
    return size


def _adaptive_infer(x, output_size):
    return like(x, x.shape[:2] + _out_size("_contrib_AdaptiveAvgPooling2D", x, output_size))


def _adaptive_np(x, output_size):
    oh, ow = _out_size("_contrib_AdaptiveAvgPooling2D", x, output_size)
    mh, mw = _bins(x.shape[2], oh).astype(x.dtype), _bins(x.shape[3], ow).astype(x.dtype)
    return np.ascontiguousarray(np.einsum("ih,nchw,jw->ncij", mh, x, mw)).astype(x.dtype, copy=False)


register(OpDef("_contrib_AdaptiveAvgPooling2D", infer=_adaptive_infer, compute=_adaptive_np,
               attrs={"output_size": Attr("shape", ())},
               gradient=lambda F, ins, outs, gs, attrs: [F._adaptive_avg_pool_grad(gs[0], in_size=ins[0].shape[2:])],
               doc="Average pooling to a fixed output size (bins as in PyTorch/MXNet: floor start, ceil end)."))


def _adaptive_grad_infer(g, in_size):
    if g.ndim != 4 or len(in_size) != 2 or g.shape[2] > in_size[0] or g.shape[3] > in_size[1]:
        raise ShapeError(f"_adaptive_avg_pool_grad: gradient {g.shape} does not come from pooling an input of "
                         f"spatial size {in_size}")
    return like(g, g.shape[:2] + tuple(in_size))


def _adaptive_grad_np(g, in_size):
    mh, mw = _bins(in_size[0], g.shape[2]).astype(g.dtype), _bins(in_size[1], g.shape[3]).astype(g.dtype)
    return np.ascontiguousarray(np.einsum("ih,ncij,jw->nchw", mh, g, mw)).astype(g.dtype, copy=False)


register(OpDef("_adaptive_avg_pool_grad", infer=_adaptive_grad_infer, compute=_adaptive_grad_np,
               inputs=("ograd",), attrs={"in_size": Attr("shape")},
               gradient=lambda F, ins, outs, gs, attrs: [
                   F._contrib_AdaptiveAvgPooling2D(gs[0], output_size=ins[0].shape[2:])],
               doc="The gradient of _contrib_AdaptiveAvgPooling2D: each bin's gradient spread evenly over it."))
