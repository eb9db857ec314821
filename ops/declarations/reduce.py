"""Reductions: sum, mean, prod, max, min, norm, argmax, argmin, and _sum_to (the reverse of a
broadcast, used by gradients).

MXNet 1.x semantics: a reduction over every axis (keepdims=False) gives shape (1,), never a 0-d
array (outside numpy mode, MXNet's shape () means "unknown"), eagerly and in graphs alike."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, Reduction, register
from .common import normalize_axes, like

_REDUCE_ATTRS = {"axis": Attr("axis", None, optional=True), "keepdims": Attr("bool", False),
                 "exclude": Attr("bool", False)}


def reduced_axes(x, axis=None, exclude=False, **_):
    return normalize_axes(axis, x.ndim, "reduce", exclude)


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes) or (1,)


def _reduce_infer(x, axis, keepdims, exclude, **_):
    axes = normalize_axes(axis, x.ndim, "reduce", exclude)
    return like(x, _reduced_shape(x.shape, axes, keepdims))


def _np_reduce(fn):
    def compute(x, axis, keepdims, exclude, **_):
        axes = normalize_axes(axis, x.ndim, "reduce", exclude)
        r = np.asarray(fn(x, axis=axes, keepdims=keepdims)).astype(x.dtype, copy=False)
        return r.reshape(_reduced_shape(x.shape, axes, keepdims))
    return compute


def _expand_back(F, g, x, attrs):
    """Reshape a reduced gradient (or result) so it broadcasts against x."""
    axes = normalize_axes(attrs["axis"], x.ndim, "reduce", attrs["exclude"])
    return F.Reshape(g, shape=_reduced_shape(x.shape, axes, True))


def _sum_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    return [F.broadcast_to(_expand_back(F, gs[0], x, attrs), shape=x.shape)]


def _mean_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    axes = normalize_axes(attrs["axis"], x.ndim, "mean", attrs["exclude"])
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    return [F.broadcast_to(_expand_back(F, gs[0], x, attrs), shape=x.shape) / float(max(count, 1))]


def _extreme_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    y = _expand_back(F, outs[0], x, attrs)
    g = _expand_back(F, gs[0], x, attrs)
    mask = F.broadcast_equal(x, F.broadcast_to(y, shape=x.shape))
    # ties share the gradient equally, like the subgradient numpy users expect from max
    count = F.broadcast_to(_expand_back(F, F.sum(mask, axis=attrs["axis"], exclude=attrs["exclude"]), x, attrs), shape=x.shape)
    return [F.broadcast_to(g, shape=x.shape) * mask / count]


def _prod_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    y = F.broadcast_to(_expand_back(F, outs[0], x, attrs), shape=x.shape)
    g = F.broadcast_to(_expand_back(F, gs[0], x, attrs), shape=x.shape)
    return [g * y / x]


def _axes_of(x, attrs):
    return normalize_axes(attrs.get("axis"), x.ndim, "reduce", attrs.get("exclude", False))


register(OpDef("sum", infer=_reduce_infer, compute=_np_reduce(np.sum), attrs=_REDUCE_ATTRS,
               gradient=_sum_grad, lowering=Reduction("sum", _axes_of), aliases=("sum_axis",)))
register(OpDef("mean", infer=_reduce_infer, compute=_np_reduce(np.mean), attrs=_REDUCE_ATTRS,
               gradient=_mean_grad, lowering=Reduction("sum", _axes_of, finish=lambda acc, n: acc / n)))
register(OpDef("prod", infer=_reduce_infer, compute=_np_reduce(np.prod), attrs=_REDUCE_ATTRS,
               gradient=_prod_grad, lowering=Reduction("prod", _axes_of)))
register(OpDef("max", infer=_reduce_infer, compute=_np_reduce(np.max), attrs=_REDUCE_ATTRS,
               gradient=_extreme_grad, lowering=Reduction("max", _axes_of), aliases=("max_axis",)))
register(OpDef("min", infer=_reduce_infer, compute=_np_reduce(np.min), attrs=_REDUCE_ATTRS,
               gradient=_extreme_grad, lowering=Reduction("min", _axes_of), aliases=("min_axis",)))


def _sum_to_infer(x, shape):
    if len(shape) > x.ndim:
        raise ShapeError(f"_sum_to: target {shape} has more dimensions than input {x.shape}")
    pad = (1,) * (x.ndim - len(shape)) + tuple(shape)
    for d, t in zip(x.shape, pad):
        if t != d and t != 1:
            raise ShapeError(f"_sum_to: input {x.shape} was not broadcast from {tuple(shape)}")
    return like(x, tuple(shape))


def sum_to_axes(in_shape, shape):
    pad = (1,) * (len(in_shape) - len(shape)) + tuple(shape)
    return tuple(i for i, (d, t) in enumerate(zip(in_shape, pad)) if t == 1 and d != 1 or i < len(in_shape) - len(shape))


def _sum_to_np(x, shape):
    axes = sum_to_axes(x.shape, shape)
    return np.sum(x, axis=axes).reshape(shape).astype(x.dtype, copy=False) if axes else x.reshape(shape).copy()


def _sum_to_grad(F, ins, outs, gs, attrs):
    return [F.broadcast_to(F.Reshape(gs[0], shape=(1,) * (ins[0].ndim - len(attrs["shape"])) + tuple(attrs["shape"])), shape=ins[0].shape)]


register(OpDef("_sum_to", infer=_sum_to_infer, compute=_sum_to_np, attrs={"shape": Attr("shape")},
               gradient=_sum_to_grad,
               lowering=Reduction("sum", lambda x, attrs: sum_to_axes(x.shape, attrs["shape"])),
               doc="Sum a broadcast gradient back down to `shape` (numpy broadcasting rules)."))


# -- norm --------------------------------------------------------------------------------------
_NORM_ATTRS = {"ord": Attr("int", 2, choices=(1, 2)), "axis": Attr("axis", None, optional=True),
               "out_dtype": Attr("dtype", None, optional=True), "keepdims": Attr("bool", False)}


def _norm_infer(x, ord, axis, keepdims, out_dtype=None):
    axes = normalize_axes(axis, x.ndim, "norm")
    return like(x, _reduced_shape(x.shape, axes, keepdims), out_dtype or x.dtype)


def _norm_np(x, ord, axis, keepdims, out_dtype=None):
    axes = normalize_axes(axis, x.ndim, "norm")
    if ord == 1:
        r = np.sum(np.abs(x), axis=axes, keepdims=keepdims)
    else:
        r = np.sqrt(np.sum(np.square(x), axis=axes, keepdims=keepdims))
    return np.asarray(r).astype(out_dtype or x.dtype, copy=False).reshape(_reduced_shape(x.shape, axes, keepdims))


def _norm_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    shape = _reduced_shape(x.shape, normalize_axes(attrs["axis"], x.ndim, "norm"), True)
    g = F.Reshape(gs[0], shape=shape)
    if attrs["out_dtype"] and attrs["out_dtype"] != x.dtype:
        g = F.Cast(g, dtype=x.dtype)
    if attrs["ord"] == 1:
        return [g * F.sign(x)]
    y = F.Reshape(outs[0], shape=shape)
    if attrs["out_dtype"] and attrs["out_dtype"] != x.dtype:
        y = F.Cast(y, dtype=x.dtype)
    # a zero vector has a zero (sub)gradient, not 0/0
    return [g * x / (y + (y == 0.0))]


register(OpDef("norm", infer=_norm_infer, compute=_norm_np, attrs=_NORM_ATTRS, gradient=_norm_grad,
               doc="L1 or L2 norm over axes (compiled by runtime/index_kernels.py: a reduction with an abs/square prologue)."))


# -- argmax / argmin: indices, in the input's dtype (MXNet's ElemwiseType) ----------------------
_ARG_ATTRS = {"axis": Attr("int", None, optional=True), "keepdims": Attr("bool", False)}


def _arg_infer(name):
    def infer(x, axis, keepdims):
        if axis is None:
            return like(x, (1,) * x.ndim if keepdims else (1,))
        a = normalize_axes(axis, x.ndim, name)
        return like(x, _reduced_shape(x.shape, a, keepdims))
    return infer


def _arg_np(fn):
    def compute(x, axis, keepdims):
        if axis is None:
            r = fn(x.reshape(-1))
            return np.full((1,) * x.ndim if keepdims else (1,), r, dtype=x.dtype)
        a = normalize_axes(axis, x.ndim, "argmax")
        return np.asarray(fn(x, axis=axis, keepdims=keepdims)).astype(x.dtype).reshape(
            _reduced_shape(x.shape, a, keepdims))
    return compute


for _name, _fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(OpDef(_name, infer=_arg_infer(_name), compute=_arg_np(_fn), attrs=_ARG_ATTRS,
                   gradient=lambda F, ins, outs, gs, attrs: [None],
                   doc=f"{_name} along an axis (flattened when axis is None); the first index wins ties."))
