"""Shape operators: Reshape (MXNet's special codes), Flatten, transpose, expand_dims,
broadcast_to. Reshape-like ops are views: they lower to no copy."""
from __future__ import annotations

import math

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, View, register
from .common import normalize_axes, like


def mxnet_reshape(src: tuple, spec: tuple, reverse: bool = False) -> tuple:
    """Apply MXNet's Reshape codes: 0 copy this dim, -1 infer, -2 copy the rest, -3 merge two,
    -4 split one into the next two (one of which may be -1)."""
    src, spec = tuple(src), tuple(spec)
    if reverse:
        out = mxnet_reshape(src[::-1], _reverse_spec(spec))
        return out[::-1]
    out, i, j = [], 0, 0
    infer_at = None
    while j < len(spec):
        s = spec[j]
        if s == 0:
            if i >= len(src):
                raise ShapeError(f"Reshape: code 0 at position {j} has no input dimension to copy (input {src})")
            out.append(src[i]); i += 1
        elif s == -1:
            if infer_at is not None:
                raise ShapeError(f"Reshape: shape {spec} has more than one -1")
            infer_at = len(out); out.append(-1); i += 1
        elif s == -2:
            out.extend(src[i:]); i = len(src)
        elif s == -3:
            if i + 1 >= len(src):
                raise ShapeError(f"Reshape: code -3 needs two input dimensions at {i} (input {src})")
            out.append(src[i] * src[i + 1]); i += 2
        elif s == -4:
            if j + 2 >= len(spec) or i >= len(src):
                raise ShapeError(f"Reshape: code -4 needs two following sizes (shape {spec}, input {src})")
            a, b = spec[j + 1], spec[j + 2]
            d = src[i]
            if a == -1:
                a = d // b
            if b == -1:
                b = d // a
            if a * b != d:
                raise ShapeError(f"Reshape: cannot split dimension {d} into {a} x {b}")
            out.extend([a, b]); i += 1; j += 2
        elif s > 0:
            out.append(s); i += 1
        else:
            raise ShapeError(f"Reshape: unknown code {s} in shape {spec}")
        j += 1
    total = math.prod(src)
    if infer_at is not None:
        known = math.prod(d for k, d in enumerate(out) if k != infer_at)
        if known == 0 or total % known:
            raise ShapeError(f"Reshape: cannot infer -1 in {spec} for input {src} ({total} elements)")
        out[infer_at] = total // known
    if math.prod(out) != total:
        raise ShapeError(f"Reshape: input {src} has {total} elements but shape {spec} gives {tuple(out)} "
                         f"with {math.prod(out)}")
    return tuple(out)


def _reverse_spec(spec):
    out, j = [], 0
    spec = list(spec)
    # -4 a b groups keep their inner order when reversed
    groups = []
    while j < len(spec):
        if spec[j] == -4:
            groups.append([-4, spec[j + 2], spec[j + 1]]); j += 3
        else:
            groups.append([spec[j]]); j += 1
    for g in reversed(groups):
        out.extend(g if g[0] != -4 else g)
    return tuple(out)


_RESHAPE_ATTRS = {"shape": Attr("shape", ()), "reverse": Attr("bool", False),
                  "target_shape": Attr("shape", None, optional=True), "keep_highest": Attr("bool", False)}


def _reshape_infer(x, shape, reverse, target_shape=None, keep_highest=False):
    return like(x, mxnet_reshape(x.shape, shape, reverse))


def _reshape_np(x, shape, reverse, target_shape=None, keep_highest=False):
    return x.reshape(mxnet_reshape(x.shape, shape, reverse))


def _reshape_back(F, ins, outs, gs, attrs):
    return [F.Reshape(gs[0], shape=ins[0].shape)]


register(OpDef("Reshape", infer=_reshape_infer, compute=_reshape_np, attrs=_RESHAPE_ATTRS,
               gradient=_reshape_back, lowering=View(), aliases=("reshape",)))


def _flat_shape(s):
    return (s[0], math.prod(s[1:])) if s else (1, 1)


register(OpDef("Flatten", infer=lambda x: like(x, _flat_shape(x.shape)),
               compute=lambda x: x.reshape(_flat_shape(x.shape)), gradient=_reshape_back,
               lowering=View(), aliases=("flatten",)))


def _expand_infer(x, axis):
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ShapeError(f"expand_dims: axis {axis} out of range for {x.ndim}-D input {x.shape}")
    a = axis % (x.ndim + 1)
    return like(x, x.shape[:a] + (1,) + x.shape[a:])


register(OpDef("expand_dims", infer=_expand_infer, compute=lambda x, axis: np.expand_dims(x, axis),
               attrs={"axis": Attr("int")}, gradient=_reshape_back, lowering=View()))


def _transpose_axes(ndim, axes):
    if not axes:
        return tuple(reversed(range(ndim)))
    if sorted(a % ndim for a in axes) != list(range(ndim)):
        raise ShapeError(f"transpose: axes {axes} are not a permutation of {ndim} dimensions")
    return tuple(a % ndim for a in axes)


def _transpose_infer(x, axes):
    p = _transpose_axes(x.ndim, axes)
    return like(x, tuple(x.shape[a] for a in p))


def _transpose_grad(F, ins, outs, gs, attrs):
    p = _transpose_axes(ins[0].ndim, attrs["axes"])
    inv = tuple(int(i) for i in np.argsort(p))
    return [F.transpose(gs[0], axes=inv)]


register(OpDef("transpose", infer=_transpose_infer,
               compute=lambda x, axes: np.ascontiguousarray(np.transpose(x, _transpose_axes(x.ndim, axes))),
               attrs={"axes": Attr("shape", ())}, gradient=_transpose_grad))


def _broadcast_to_target(x, shape):
    if len(shape) < x.ndim:
        raise ShapeError(f"broadcast_to: target {shape} has fewer dimensions than input {x.shape}")
    pad = (1,) * (len(shape) - x.ndim) + tuple(x.shape)
    out = []
    for d, t in zip(pad, shape):
        t = d if t == 0 else t
        if d != t and d != 1:
            raise ShapeError(f"broadcast_to: cannot broadcast input {x.shape} to {tuple(shape)}")
        out.append(t)
    return tuple(out)


def _broadcast_to_grad(F, ins, outs, gs, attrs):
    from .elementwise import sum_to
    return [sum_to(F, gs[0], ins[0].shape)]


register(OpDef("broadcast_to", infer=lambda x, shape: like(x, _broadcast_to_target(x, shape)),
               compute=lambda x, shape: np.ascontiguousarray(np.broadcast_to(x, _broadcast_to_target(x, shape))),
               attrs={"shape": Attr("shape")}, gradient=_broadcast_to_grad,
               lowering=None))
