"""Neural-network operators that are not plain elementwise math: softmax, log_softmax, pick,
Dropout."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, Take, register
from .common import normalize_axes, like
from .length_mask import with_length

_SOFTMAX_ATTRS = {"axis": Attr("int", -1), "temperature": Attr("float", None, optional=True),
                  "dtype": Attr("dtype", None, optional=True), "use_length": Attr("bool", False)}


def _softmax_np(x, axis, temperature=None, dtype=None, use_length=False):
    t = 1.0 if temperature is None else temperature
    z = x / x.dtype.type(t) if t != 1.0 else x
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(dtype or x.dtype, copy=False)


def _log_softmax_np(x, axis, temperature=None, dtype=None, use_length=False):
    t = 1.0 if temperature is None else temperature
    z = x / x.dtype.type(t) if t != 1.0 else x
    z = z - z.max(axis=axis, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=axis, keepdims=True))).astype(dtype or x.dtype, copy=False)


def _softmax_infer(x, axis, temperature=None, dtype=None, use_length=False):
    normalize_axes(axis, x.ndim, "softmax")
    return like(x, dtype=dtype or x.dtype)


def _softmax_grad(F, ins, outs, gs, attrs):
    y, g = outs[0], gs[0]
    t = attrs["temperature"] or 1.0
    dx = y * (g - F.sum(g * y, axis=attrs["axis"], keepdims=True))
    return [dx / t if t != 1.0 else dx]


def _log_softmax_grad(F, ins, outs, gs, attrs):
    y, g = outs[0], gs[0]
    t = attrs["temperature"] or 1.0
    dx = g - F.exp(y) * F.sum(g, axis=attrs["axis"], keepdims=True)
    return [dx / t if t != 1.0 else dx]


# max, subtract, exp, sum, divide: five passes over the data
register(OpDef("softmax", **with_length("softmax", _softmax_infer, _softmax_np, _softmax_grad), attrs=_SOFTMAX_ATTRS,
               flops=lambda ins, outs, a: 5.0 * ins[0].size))
register(OpDef("log_softmax", infer=_softmax_infer, compute=_log_softmax_np, attrs=_SOFTMAX_ATTRS,
               gradient=_log_softmax_grad, flops=lambda ins, outs, a: 5.0 * ins[0].size))


# -- pick: out[i] = data[i, index[i]] along an axis ----------------------------------------------
_PICK_ATTRS = {"axis": Attr("int", -1, optional=True), "keepdims": Attr("bool", False),
               "mode": Attr("str", "clip", choices=("clip", "wrap"))}


def _pick_infer(x, idx, axis, keepdims, mode):
    a = normalize_axes(axis, x.ndim, "pick")[0]
    out = x.shape[:a] + ((1,) if keepdims else ()) + x.shape[a + 1:] or (1,)   # never 0-d (MXNet 1.x)
    if tuple(idx.shape) not in (out, x.shape[:a] + x.shape[a + 1:], x.shape[:a] + (1,) + x.shape[a + 1:]):
        raise ShapeError(f"pick: index has shape {idx.shape}, expected {x.shape[:a] + x.shape[a + 1:]} for data {x.shape} along axis {a}")
    return like(x, out)


def _pick_index(x, idx, axis, mode):
    from .slicing import fix_indices
    a = axis % x.ndim
    return a, fix_indices(idx, x.shape[a], mode).reshape(x.shape[:a] + (1,) + x.shape[a + 1:])


def _pick_np(x, idx, axis, keepdims, mode):
    a, i = _pick_index(x, idx, axis, mode)
    out = np.take_along_axis(x, i, axis=a)
    return out if keepdims or x.ndim == 1 else out.squeeze(a)


def _pick_grad(F, ins, outs, gs, attrs):
    x, idx = ins
    a = attrs["axis"] % x.ndim
    g = gs[0] if attrs["keepdims"] or x.ndim == 1 else F.expand_dims(gs[0], axis=a)
    n = x.shape[a]
    # the forward clipped or wrapped out-of-range indices: the gradient goes where it read
    idx = F.clip(idx, a_min=0.0, a_max=float(n - 1)) if attrs["mode"] == "clip" else F._mod_scalar(idx, scalar=float(n))
    # the one-hot mask as a comparison with a constant 0..n-1 along the axis: elementwise, so it
    # fuses into the kernel that consumes the gradient instead of materialising data-sized zeros
    along = tuple(n if d == a else 1 for d in range(x.ndim))
    positions = F.Reshape(F._arange(start=0.0, stop=float(n), dtype=idx.dtype), shape=along)
    hot = F.broadcast_equal(F.Reshape(idx, shape=g.shape), positions)
    if hot.dtype != x.dtype:
        hot = F.Cast(hot, dtype=x.dtype)
    return [F.broadcast_mul(hot, g), None]


register(OpDef("pick", infer=_pick_infer, compute=_pick_np, inputs=("data", "index"),
               attrs=_PICK_ATTRS, gradient=_pick_grad, aliases=("choose_element_0index",),
               lowering=Take(data=0, index=1, axis=lambda attrs, ndim: attrs["axis"] % ndim,
                             mode=lambda attrs: attrs["mode"], per_position=True)))


def _one_hot_infer(idx, depth, on_value, off_value, dtype):
    return like(idx, idx.shape + (depth,), dtype)


def _one_hot_np(idx, depth, on_value, off_value, dtype):
    # an index outside [0, depth) gives a row of off_value (MXNet); so does NaN, which names
    # no class (converting it to an integer first would be undefined)
    finite = np.isfinite(idx) if idx.dtype.kind == "f" else np.ones(idx.shape, bool)
    i = np.where(finite, idx, -1).astype(np.int64)
    out = np.full(i.shape + (depth,), off_value, dtype)
    valid = (i >= 0) & (i < depth)
    np.put_along_axis(out, np.where(valid, i, 0)[..., None], np.where(valid, on_value, off_value)[..., None].astype(dtype), axis=-1)
    return out


register(OpDef("one_hot", infer=_one_hot_infer, compute=_one_hot_np, inputs=("indices",),
               attrs={"depth": Attr("int"), "on_value": Attr("float", 1.0), "off_value": Attr("float", 0.0),
                      "dtype": Attr("dtype", "float32")},
               gradient=lambda F, ins, outs, gs, attrs: [None]))


# -- Dropout: output and the mask it used (the mask is hidden, the gradient reuses it) ------------
_DROPOUT_ATTRS = {"p": Attr("float", 0.5), "mode": Attr("str", "training", choices=("training", "always")),
                  "axes": Attr("shape", ()), "cudnn_off": Attr("bool", None, optional=True)}


def _dropout_infer(x, p, mode, axes, cudnn_off=None):
    if not 0.0 <= p < 1.0:
        raise ShapeError(f"Dropout: p={p} must be in [0, 1)")
    return [x, x]


def _dropout_np(x, p, mode, axes, cudnn_off=None, rng=None, training=False):
    if (not training and mode == "training") or p == 0.0:
        return x.copy(), np.ones_like(x)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    keep = (rng.random(shape) >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    mask = np.broadcast_to(keep, x.shape).copy()
    return x * mask, mask


def _dropout_grad(F, ins, outs, gs, attrs):
    return [gs[0] * outs[1]]


register(OpDef("Dropout", infer=_dropout_infer, compute=_dropout_np, attrs=_DROPOUT_ATTRS,
               num_outputs=2, num_visible_outputs=1, random=True, uses_training=True,
               gradient=_dropout_grad))
