"""MXNet's NaN-skipping reductions (nansum, nanprod), moments (mean and variance in one op), the
shape queries shape_array/size_array, and diag. They run on the host (no lowering): they are
rare in hot paths, and each is one numpy call.

Semantics follow MXNet 1.9.1: a NaN counts as 0 in nansum and as 1 in nanprod and gets no
gradient; moments' variance is the population one (divide by N) and `axes` must be given;
shape_array/size_array give int64."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from ..types import TensorType
from .common import normalize_axes, like
from .reduce import _REDUCE_ATTRS, _reduce_infer, _reduced_shape, _expand_back


def _nan_reduce(fn):
    def compute(x, axis, keepdims, exclude, **_):
        axes = normalize_axes(axis, x.ndim, "reduce", exclude)
        r = np.asarray(fn(x, axis=axes, keepdims=keepdims)).astype(x.dtype, copy=False)
        return r.reshape(_reduced_shape(x.shape, axes, keepdims))
    return compute


def _not_nan(F, x):
    return F.broadcast_equal(x, x)     # NaN is the one value unequal to itself


def _nansum_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    g = F.broadcast_to(_expand_back(F, gs[0], x, attrs), shape=x.shape)
    return [g * _not_nan(F, x)]


def _nanprod_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    keep = _not_nan(F, x)
    filled = F.where(keep, x, F.ones_like(x))
    y = F.broadcast_to(_expand_back(F, outs[0], x, attrs), shape=x.shape)
    g = F.broadcast_to(_expand_back(F, gs[0], x, attrs), shape=x.shape)
    return [F.where(keep, g * y / filled, F.zeros_like(x))]


register(OpDef("nansum", infer=_reduce_infer, compute=_nan_reduce(np.nansum), attrs=_REDUCE_ATTRS,
               gradient=_nansum_grad, doc="Sum over axes, NaN counted as 0."))
register(OpDef("nanprod", infer=_reduce_infer, compute=_nan_reduce(np.nanprod), attrs=_REDUCE_ATTRS,
               gradient=_nanprod_grad, doc="Product over axes, NaN counted as 1."))


# -- moments -----------------------------------------------------------------------------------
def _moment_axes(x, axes):
    if not axes:
        raise ShapeError("moments: axes must name the axes to reduce (MXNet refuses empty axes; for "
                         f"global moments pass all of them, axes={tuple(range(x.ndim))})")
    return normalize_axes(axes, x.ndim, "moments")


def _moments_infer(x, axes, keepdims):
    shape = _reduced_shape(x.shape, _moment_axes(x, axes), keepdims)
    return [like(x, shape), like(x, shape)]


def _moments_np(x, axes, keepdims):
    ax = _moment_axes(x, axes)
    shape = _reduced_shape(x.shape, ax, keepdims)
    mean = np.mean(x, axis=ax, keepdims=True)
    var = np.mean(np.square(x - mean), axis=ax)
    return mean.astype(x.dtype).reshape(shape), var.astype(x.dtype).reshape(shape)


def _moments_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    ax = _moment_axes(x, attrs["axes"])
    kept = _reduced_shape(x.shape, ax, True)
    n = float(np.prod([x.shape[a] for a in ax]))
    mean = F.broadcast_to(F.Reshape(outs[0], shape=kept), shape=x.shape)
    g_mean = F.broadcast_to(F.Reshape(gs[0], shape=kept), shape=x.shape)
    g_var = F.broadcast_to(F.Reshape(gs[1], shape=kept), shape=x.shape)
    return [g_mean / n + g_var * (x - mean) * (2.0 / n)]


register(OpDef("moments", infer=_moments_infer, compute=_moments_np, num_outputs=2,
               attrs={"axes": Attr("shape", None, optional=True), "keepdims": Attr("bool", False)},
               gradient=_moments_grad, doc="(mean, population variance) over axes."))


# -- shape queries ---------------------------------------------------------------------------
def _no_grad(F, ins, outs, gs, attrs):
    return [None]


register(OpDef("shape_array", infer=lambda x: TensorType((x.ndim,), "int64", x.device),
               compute=lambda x: np.asarray(x.shape, np.int64), gradient=_no_grad,
               doc="The input's shape as an int64 array."))
register(OpDef("size_array", infer=lambda x: TensorType((1,), "int64", x.device),
               compute=lambda x: np.asarray([x.size], np.int64), gradient=_no_grad,
               doc="The input's element count as a one-element int64 array."))


# -- diag ------------------------------------------------------------------------------------
_DIAG_ATTRS = {"k": Attr("int", 0), "axis1": Attr("int", 0), "axis2": Attr("int", 1)}


def _diag_axes(x, axis1, axis2):
    a1, a2 = normalize_axes(axis1, x.ndim, "diag")[0], normalize_axes(axis2, x.ndim, "diag")[0]
    if a1 == a2:
        raise ShapeError(f"diag: axis1 and axis2 must differ, both are {axis1}")
    return a1, a2


def _diag_np(x, k, axis1, axis2):
    if x.ndim == 1:
        return np.diag(x, k)
    a1, a2 = _diag_axes(x, axis1, axis2)
    return np.ascontiguousarray(np.diagonal(x, k, a1, a2))


def _diag_infer(x, k, axis1, axis2):
    if x.ndim == 0:
        raise ShapeError("diag: the input must have at least one dimension")
    if x.ndim == 1:
        n = x.shape[0] + abs(k)
        return like(x, (n, n))
    a1, a2 = _diag_axes(x, axis1, axis2)
    d1, d2 = x.shape[a1], x.shape[a2]
    length = max(0, min(d1, d2 - k) if k >= 0 else min(d1 + k, d2))
    rest = tuple(d for i, d in enumerate(x.shape) if i not in (a1, a2))
    return like(x, rest + (length,))


def _diag_grad(F, ins, outs, gs, attrs):
    return [F._backward_diag(gs[0], ins[0], **dict(attrs))]


register(OpDef("diag", infer=_diag_infer, compute=_diag_np, attrs=_DIAG_ATTRS, gradient=_diag_grad,
               doc="1-D input: the matrix with it on diagonal k; otherwise diagonal k of axes (axis1, axis2)."))


def _diag_backward_np(g, x, k, axis1, axis2):
    if x.ndim == 1:
        return np.ascontiguousarray(np.diagonal(g, k)).astype(x.dtype, copy=False)
    a1, a2 = _diag_axes(x, axis1, axis2)
    out = np.zeros(x.shape, g.dtype)
    moved = np.moveaxis(out, (a1, a2), (-2, -1))       # a view: writing it writes out
    rows = np.arange(g.shape[-1]) + max(-k, 0)
    cols = np.arange(g.shape[-1]) + max(k, 0)
    moved[..., rows, cols] = g
    return out


register(OpDef("_backward_diag", infer=lambda g, x, k, axis1, axis2: x, compute=_diag_backward_np,
               inputs=("ograd", "data"), attrs=_DIAG_ATTRS,
               doc="diag's gradient: the output gradient written back onto the diagonal."))
