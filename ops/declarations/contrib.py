"""MXNet's `_contrib_*` operators (nd.contrib.X / sym.contrib.X call `_contrib_X`): bilinear
resizing, boolean_mask (an eager reference and its gradient), index_copy, index_array,
arange_like, div_sqrt_dim, quadratic and the straight-through estimators. The detection ones
(box_iou, box_nms, MultiBoxPrior) are in detection.py, AdaptiveAvgPooling2D with the pools.
Each has its numpy reference and gradient here; those without a lowering run as host steps
in compiled graphs."""
from __future__ import annotations

import math

import numpy as np

from .. import scalar as S
from ..attrs import Attr
from ..errors import ShapeError, OpAttributeError
from ..registry import OpDef, Elementwise, register
from .common import like, normalize_axes
from .elementwise import _round_np


def _rows(x) -> np.ndarray:
    return np.asarray(x).reshape(-1).astype(np.int64)


# -- BilinearResize2D ------------------------------------------------------------------------------
_RESIZE_MODES = ("size", "like", "odd_scale", "to_even_down", "to_even_up", "to_odd_down", "to_odd_up")
_RESIZE_ATTRS = {"height": Attr("int", 1), "width": Attr("int", 1),
                 "scale_height": Attr("float", None, optional=True), "scale_width": Attr("float", None, optional=True),
                 "mode": Attr("str", "size", choices=_RESIZE_MODES), "align_corners": Attr("bool", True)}


def _resized(n, mode, size, scale):
    """One spatial extent after resizing, by MXNet 1.9.1's rule for `mode`."""
    if mode == "size":
        return int(n * scale) if scale is not None else size
    if mode == "odd_scale":
        if scale is None:
            raise OpAttributeError("_contrib_BilinearResize2D: mode='odd_scale' needs scale_height and scale_width")
        return int((n - 1) * scale) + 1 if n % 2 else int(n * scale)
    even = n % 2 == 0
    return {"to_even_down": n if even else n - 1, "to_even_up": n if even else n + 1,
            "to_odd_down": n - 1 if even else n, "to_odd_up": n + 1 if even else n}[mode]


def _resize_out(x, like_shape, height, width, scale_height, scale_width, mode):
    if x.ndim != 4:
        raise ShapeError(f"_contrib_BilinearResize2D: data must be 4-D (N, C, H, W), got {tuple(x.shape)}")
    if mode == "like":
        if like_shape is None or len(like_shape) != 4:
            raise ShapeError(f"_contrib_BilinearResize2D: mode='like' needs a 4-D `like` input, got {like_shape}")
        return tuple(like_shape[2:])
    out = (_resized(x.shape[2], mode, height, scale_height), _resized(x.shape[3], mode, width, scale_width))
    if min(out) < 1:
        raise ShapeError(f"_contrib_BilinearResize2D: output size {out} from data {tuple(x.shape)} is empty")
    return out


def interpolation_matrix(n_in, n_out, align_corners) -> np.ndarray:
    """(n_out, n_in) weights of linear interpolation, sampling positions as MXNet 1.9.1 does:
    corners aligned, src = dst (n_in - 1) / (n_out - 1); else src = (dst + 0.5) n_in / n_out - 0.5,
    clamped at 0 (half-pixel centres)."""
    m = np.zeros((n_out, n_in))
    for d in range(n_out):
        if align_corners:
            src = d * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((d + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[d, lo] += 1.0 - frac
        m[d, hi] += frac
    return m


def _resize_inputs(attrs):
    return ("data", "like") if attrs["mode"] == "like" else ("data",)


def _resize_infer(x, *like_t, **attrs):
    like_shape = like_t[0].shape if like_t else None
    return like(x, x.shape[:2] + _resize_out(x, like_shape, **{k: v for k, v in attrs.items() if k != "align_corners"}))


def _resize_np(x, *like_a, align_corners, **attrs):
    oh, ow = _resize_out(x, like_a[0].shape if like_a else None, **attrs)
    mh = interpolation_matrix(x.shape[2], oh, align_corners)
    mw = interpolation_matrix(x.shape[3], ow, align_corners)
    return np.ascontiguousarray(np.einsum("ih,nchw,jw->ncij", mh, x, mw)).astype(x.dtype, copy=False)


def _resize_grad(F, ins, outs, gs, attrs):
    g = F._bilinear_resize_grad(gs[0], in_size=ins[0].shape[2:], align_corners=attrs["align_corners"])
    return [g] + [None] * (len(ins) - 1)


register(OpDef("_contrib_BilinearResize2D", infer=_resize_infer, compute=_resize_np, inputs=_resize_inputs,
               attrs=_RESIZE_ATTRS, gradient=_resize_grad,
               doc="Bilinear resizing of NCHW data to a size given, scaled, taken from `like`, or rounded "
                   "to even/odd."))


def _resize_grad_infer(g, in_size, align_corners):
    if g.ndim != 4 or len(in_size) != 2:
        raise ShapeError(f"_bilinear_resize_grad: gradient {g.shape} must be 4-D and in_size={in_size} two sizes")
    return like(g, g.shape[:2] + tuple(in_size))


def _resize_grad_np(g, in_size, align_corners):
    mh = interpolation_matrix(in_size[0], g.shape[2], align_corners)
    mw = interpolation_matrix(in_size[1], g.shape[3], align_corners)
    return np.ascontiguousarray(np.einsum("ih,ncij,jw->nchw", mh, g, mw)).astype(g.dtype, copy=False)


register(OpDef("_bilinear_resize_grad", infer=_resize_grad_infer, compute=_resize_grad_np, inputs=("ograd",),
               attrs={"in_size": Attr("shape"), "align_corners": Attr("bool", True)},
               gradient=lambda F, ins, outs, gs, attrs: [
                   F._contrib_BilinearResize2D(gs[0], height=ins[0].shape[2], width=ins[0].shape[3],
                                               align_corners=attrs["align_corners"])],
               doc="The adjoint of _contrib_BilinearResize2D: each output gradient spread back with the "
                   "interpolation weights."))


# -- boolean_mask: rows of data where index is nonzero ---------------------------------------------
# The forward is no registered operator: its output length is the number of nonzero index values,
# known only once the values are, so no graph can hold it. graphc.ndarray.contrib runs
# `boolean_mask_np` eagerly and records `_boolean_mask_grad` for autograd.

def boolean_mask_np(x, index, axis=0):
    """MXNet 1.9.1's boolean_mask: the rows (axis 0 only) of x whose index value is nonzero."""
    if axis != 0:
        raise OpAttributeError(f"boolean_mask: axis={axis} is not supported (MXNet 1.9.1 supports axis 0 only)")
    if x.ndim < 1 or index.ndim != 1 or index.shape[0] != x.shape[0]:
        raise ShapeError(f"boolean_mask: index must be 1-D with one value per row of data; data "
                         f"{tuple(x.shape)}, index {tuple(index.shape)}")
    return np.ascontiguousarray(x[np.asarray(index) != 0])


def _mask_grad_infer(g, index, x):
    return like(x, dtype=g.dtype)


def _mask_grad_np(g, index, x):
    out = np.zeros(x.shape, g.dtype)
    out[np.asarray(index) != 0] = g
    return out


register(OpDef("_boolean_mask_grad", infer=_mask_grad_infer, compute=_mask_grad_np, inputs=("ograd", "index", "data"),
               doc="The gradient of contrib.boolean_mask: each kept row's gradient back at its place, "
                   "zeros elsewhere."))


# -- index_copy: old with rows index[i] replaced by new[i] ------------------------------------------

def _copy_infer(old, index, new):
    if index.ndim != 1 or new.ndim != old.ndim or new.shape[0] != index.shape[0] or new.shape[1:] != old.shape[1:]:
        raise ShapeError(f"_contrib_index_copy: new_tensor must hold one row of old_tensor's shape per index; "
                         f"old {old.shape}, index {index.shape}, new {new.shape}")
    if old.dtype != new.dtype:
        raise ShapeError(f"_contrib_index_copy: old_tensor is {old.dtype} but new_tensor is {new.dtype}")
    return old


def _copy_np(old, index, new):
    rows = _rows(index)
    if rows.size and (rows.min() < 0 or rows.max() >= old.shape[0]):
        raise OpAttributeError(f"_contrib_index_copy: index values {rows.tolist()} out of range for "
                               f"{old.shape[0]} rows")
    out = old.copy()
    out[rows] = new
    return out


def _copy_grad(F, ins, outs, gs, attrs):
    g = gs[0]
    return [F._index_copy_old_grad(g, ins[1]), None, F.take(g, ins[1], axis=0)]


register(OpDef("_contrib_index_copy", infer=_copy_infer, compute=_copy_np,
               inputs=("old_tensor", "index_vector", "new_tensor"), gradient=_copy_grad,
               doc="old_tensor with row index[i] replaced by new_tensor[i]."))


def _copy_old_grad_np(g, index):
    out = g.copy()
    out[_rows(index)] = 0
    return out


register(OpDef("_index_copy_old_grad", infer=lambda g, index: g, compute=_copy_old_grad_np, inputs=("ograd", "index"),
               gradient=lambda F, ins, outs, gs, attrs: [F._index_copy_old_grad(gs[0], ins[1]), None],
               doc="The gradient of index_copy's old_tensor: zero on the rows that were overwritten."))


# -- arange_like, index_array ----------------------------------------------------------------------
_ARANGE_ATTRS = {"start": Attr("float", 0.0), "step": Attr("float", 1.0), "repeat": Attr("int", 1),
                 "ctx": Attr("str", ""), "axis": Attr("int", None, optional=True)}


def _arange_shape(x, axis):
    if axis is None:
        return tuple(x.shape)
    (a,) = normalize_axes(axis, x.ndim, "_contrib_arange_like")
    return (x.shape[a],)


def _arange_np(x, start, step, repeat, ctx, axis):
    shape = _arange_shape(x, axis)
    i = np.arange(math.prod(shape)) // max(repeat, 1)
    return (start + step * i).astype(x.dtype).reshape(shape)


register(OpDef("_contrib_arange_like", infer=lambda x, axis, **_: like(x, _arange_shape(x, axis)),
               compute=_arange_np, attrs=_ARANGE_ATTRS, gradient=lambda F, ins, outs, gs, attrs: [None],
               doc="start, start + step, ... (each repeated `repeat` times) in the shape of data or of one axis."))


def _index_axes(x, axes):
    if axes is None:
        return tuple(range(x.ndim))
    out = []
    for a in (axes,) if isinstance(axes, int) else axes:
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"_contrib_index_array: axis {a} is out of range for data of shape {x.shape}")
        out.append(a % x.ndim)
    return tuple(out)


def _index_array_np(x, axes):
    grids = np.indices(x.shape, dtype=np.int64)
    return np.ascontiguousarray(np.stack([grids[a] for a in _index_axes(x, axes)], axis=-1))


register(OpDef("_contrib_index_array", infer=lambda x, axes: like(x, tuple(x.shape) + (len(_index_axes(x, axes)),),
                                                                  "int64"),
               compute=_index_array_np, attrs={"axes": Attr("axis", None)},
               gradient=lambda F, ins, outs, gs, attrs: [None],
               doc="Each element's index (along `axes`, all by default) as int64, in a new last axis."))


# -- elementwise: div_sqrt_dim, quadratic, gradientmultiplier, round_ste, sign_ste -----------------

register(OpDef("_contrib_div_sqrt_dim", infer=lambda x: x,
               compute=lambda x: (x / np.sqrt(x.shape[-1])).astype(x.dtype),
               gradient=lambda F, ins, outs, gs, attrs: [F._contrib_div_sqrt_dim(gs[0])],
               doc="data / sqrt(data.shape[-1]): the scaling of dot-product attention."))

register(OpDef("_contrib_quadratic", infer=lambda x, **_: x,
               compute=lambda x, a, b, c: (a * x * x + b * x + c).astype(x.dtype),
               attrs={"a": Attr("float", 0.0), "b": Attr("float", 0.0), "c": Attr("float", 0.0)},
               gradient=lambda F, ins, outs, gs, attrs: [gs[0] * (ins[0] * (2.0 * attrs["a"]) + attrs["b"])],
               lowering=Elementwise(lambda x, a, b, c: (x * a) * x + x * b + c),   # MXNet's order: (a x) x
               doc="a x^2 + b x + c, elementwise."))

register(OpDef("_contrib_gradientmultiplier", infer=lambda x, **_: x, compute=lambda x, scalar, **_: x.copy(),
               attrs={"scalar": Attr("float", 1.0), "is_int": Attr("bool", True)},
               gradient=lambda F, ins, outs, gs, attrs: [gs[0] * attrs["scalar"]],
               lowering=Elementwise(lambda x, scalar, is_int: x),
               doc="The identity whose gradient is scaled by `scalar` (gradient reversal with scalar=-1)."))

register(OpDef("_contrib_round_ste", infer=lambda x: x, compute=_round_np,
               gradient=lambda F, ins, outs, gs, attrs: [gs[0]],
               lowering=Elementwise(S.round_),
               doc="round (half away from zero) with the straight-through gradient: the identity's."))

register(OpDef("_contrib_sign_ste", infer=lambda x: x, compute=lambda x: np.sign(x).astype(x.dtype),
               gradient=lambda F, ins, outs, gs, attrs: [gs[0]], lowering=Elementwise(S.sign),
               doc="sign with the straight-through gradient: the identity's."))
