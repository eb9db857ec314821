"""Shape operators: Reshape (MXNet's special codes), Flatten, transpose, expand_dims,
broadcast_to. Reshape-like ops are views: they lower to no copy."""
from __future__ import annotations

import math

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from .. import layout as L
from .. import copy_pieces as CP
from ..registry import Elementwise, Movement, OpDef, View, register
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
            infer_at, infer_src = len(out), i
            out.append(-1); i += 1
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
        if known == 0 and total == 0:
            # an empty input beside a zero in the spec: no division says what -1 is, so it
            # stands for the source dimensions the other codes leave over ((0, -1) on (0, 3, 4)
            # -> (0, 12), as on a batch of one)
            span = max(1, len(src) - (len(out) - 1))
            out[infer_at] = math.prod(src[infer_src:infer_src + span])
        elif known == 0 or total % known:
            raise ShapeError(f"Reshape: cannot infer -1 in {spec} for input {src} ({total} elements)")
        else:
            out[infer_at] = total // known
    if math.prod(out) != total:
        if total == 0 and all(s >= 0 for s in spec) and math.prod(spec) == 0:
            # sizes spelled out by a pass or a gradient (Reshape(g, shape=x.shape)) where a
            # dimension is empty: MXNet's code 0 ("copy") would misread that 0; read it literally
            return spec
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


def _permute_pieces(perm):
    def pieces(in_types, out_types, attrs):
        x = in_types[0]
        return [L.gather(np.transpose(L.probe(x.shape), perm(x, attrs)), out_types[0].shape)]
    return Movement(pieces)


register(OpDef("transpose", infer=_transpose_infer,
               compute=lambda x, axes: np.transpose(x, _transpose_axes(x.ndim, axes)).copy(),
               attrs={"axes": Attr("shape", ())}, gradient=_transpose_grad,
               lowering=_permute_pieces(lambda x, a: _transpose_axes(x.ndim, a["axes"]))))


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
               # the input numpy-broadcasts to the output: an identity formula, fusable into its users
               lowering=Elementwise(lambda x, **_: x)))


# -- squeeze, SwapAxis -------------------------------------------------------------------------

def _squeeze_shape(x, axis):
    # squeezing every axis leaves shape (1,), not 0-d (MXNet 1.x)
    if axis is None:
        return tuple(d for d in x.shape if d != 1) or (1,)
    axes = normalize_axes(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of input {x.shape} has size {x.shape[a]}, not 1")
    return tuple(d for i, d in enumerate(x.shape) if i not in axes) or (1,)


register(OpDef("squeeze", infer=lambda x, axis: like(x, _squeeze_shape(x, axis)),
               compute=lambda x, axis: x.reshape(_squeeze_shape(x, axis)),
               attrs={"axis": Attr("axis", None, optional=True)}, gradient=_reshape_back, lowering=View()))


def _swap_perm(ndim, dim1, dim2, shape=None):
    for d in (dim1, dim2):
        if not -ndim <= d < max(ndim, 1):
            raise ShapeError(f"SwapAxis: dimension {d} is out of range for input {shape} ({ndim} dimensions)")
    p = list(range(ndim))
    a, b = dim1 % max(ndim, 1), dim2 % max(ndim, 1)
    p[a], p[b] = p[b], p[a]
    return tuple(p)


def _swap_infer(x, dim1, dim2):
    p = _swap_perm(x.ndim, dim1, dim2, x.shape)
    return like(x, tuple(x.shape[a] for a in p))


register(OpDef("SwapAxis", infer=_swap_infer,
               compute=lambda x, dim1, dim2: np.ascontiguousarray(np.transpose(x, _swap_perm(x.ndim, dim1, dim2))),
               attrs={"dim1": Attr("int", 0), "dim2": Attr("int", 0)},
               gradient=lambda F, ins, outs, gs, attrs: [F.SwapAxis(gs[0], dim1=attrs["dim1"], dim2=attrs["dim2"])],
               lowering=_permute_pieces(lambda x, a: _swap_perm(x.ndim, a["dim1"], a["dim2"], x.shape)),
               aliases=("swapaxes",)))


# -- broadcast_axis, broadcast_like ------------------------------------------------------------

def _sum_back(F, ins, outs, gs, attrs):
    from .elementwise import sum_to
    return [sum_to(F, gs[0], ins[0].shape)] + [None] * (len(ins) - 1)


def _broadcast_axis_shape(x, axis, size):
    if len(axis) != len(size):
        raise ShapeError(f"broadcast_axis: {len(axis)} axes {axis} but {len(size)} sizes {size}")
    out = list(x.shape)
    for a, s in zip(axis, size):
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"broadcast_axis: axis {a} is out of range for input {x.shape}")
        if x.shape[a] != 1 and x.shape[a] != s:
            raise ShapeError(f"broadcast_axis: axis {a} of input {x.shape} has size {x.shape[a]}, "
                             f"cannot broadcast to {s} (only size-1 axes broadcast)")
        out[a % x.ndim] = s
    return tuple(out)


register(OpDef("broadcast_axis", infer=lambda x, axis, size: like(x, _broadcast_axis_shape(x, axis, size)),
               compute=lambda x, axis, size: np.ascontiguousarray(np.broadcast_to(x, _broadcast_axis_shape(x, axis, size))),
               attrs={"axis": Attr("shape", ()), "size": Attr("shape", ())}, gradient=_sum_back,
               lowering=Elementwise(lambda x, **_: x),    # only size-1 axes grow: numpy broadcasting
               aliases=("broadcast_axes",)))


def _broadcast_like_shape(lhs, rhs, lhs_axes, rhs_axes):
    if lhs_axes is None or rhs_axes is None:        # (as MXNet: both given, or the whole shape)
        if lhs.ndim != rhs.ndim:
            raise ShapeError(f"broadcast_like: lhs {lhs.shape} and rhs {rhs.shape} have different ranks")
        pairs = list(zip(range(lhs.ndim), range(rhs.ndim)))
    else:
        lhs_axes, rhs_axes = tuple(lhs_axes), tuple(rhs_axes)
        if not lhs_axes:
            raise ShapeError(f"broadcast_like: lhs_axes and rhs_axes are empty (lhs {lhs.shape}, rhs {rhs.shape}); "
                             f"name at least one axis pair, or leave both out to broadcast the whole shape")
        if len(lhs_axes) != len(rhs_axes):
            raise ShapeError(f"broadcast_like: lhs_axes {lhs_axes} and rhs_axes {rhs_axes} differ in length "
                             f"(lhs {lhs.shape}, rhs {rhs.shape})")
        pairs = [(normalize_axes(a, lhs.ndim, "broadcast_like")[0], normalize_axes(b, rhs.ndim, "broadcast_like")[0])
                 for a, b in zip(lhs_axes, rhs_axes)]
    out = list(lhs.shape)
    for a, b in pairs:
        if lhs.shape[a] != rhs.shape[b] and lhs.shape[a] != 1:
            raise ShapeError(f"broadcast_like: cannot broadcast lhs {lhs.shape} like rhs {rhs.shape} "
                             f"(axis {a}: {lhs.shape[a]} vs {rhs.shape[b]})")
        out[a] = rhs.shape[b]
    return tuple(out)


register(OpDef("broadcast_like", inputs=("lhs", "rhs"),
               infer=lambda lhs, rhs, lhs_axes=None, rhs_axes=None: like(lhs, _broadcast_like_shape(lhs, rhs, lhs_axes, rhs_axes)),
               compute=lambda lhs, rhs, lhs_axes=None, rhs_axes=None: np.ascontiguousarray(
                   np.broadcast_to(lhs, _broadcast_like_shape(lhs, rhs, lhs_axes, rhs_axes))),
               attrs={"lhs_axes": Attr("shape", None, optional=True), "rhs_axes": Attr("shape", None, optional=True)},
               gradient=_sum_back,
               # a copy, not a formula: rhs (read for its shape only) need not broadcast to the output
               lowering=Movement(lambda ins, outs, a: [CP.broadcast_copy(ins[0].shape, outs[0].shape)])))


# -- tile, repeat ------------------------------------------------------------------------------

def _tile_dims(shape, reps):
    n = max(len(shape), len(reps))
    return (1,) * (n - len(shape)) + tuple(shape), (1,) * (n - len(reps)) + tuple(reps)


def _tile_infer(x, reps):
    if any(r < 0 for r in reps):
        raise ShapeError(f"tile: reps {reps} must be non-negative (input {x.shape})")
    dims, reps = _tile_dims(x.shape, reps)
    return like(x, tuple(d * r for d, r in zip(dims, reps)))


def _tile_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    dims, reps = _tile_dims(x.shape, attrs["reps"])
    # out[r0, d0, r1, d1, ...] interleaved: sum the repeat axes away
    split = tuple(v for pair in zip(reps, dims) for v in pair)
    g = F.sum(F.Reshape(gs[0], shape=split), axis=tuple(range(0, 2 * len(dims), 2)))
    return [F.Reshape(g, shape=x.shape)]


register(OpDef("tile", infer=_tile_infer, compute=lambda x, reps: np.tile(x, reps),
               attrs={"reps": Attr("shape")}, gradient=_tile_grad,
               lowering=Movement(lambda ins, outs, a: [CP.tile_copy(ins[0].shape, a["reps"])])))


def _repeat_infer(x, repeats, axis):
    if repeats < 0:
        raise ShapeError(f"repeat: repeats={repeats} must be non-negative (input {x.shape})")
    if axis is None:
        return like(x, (x.size * repeats,))
    a = normalize_axes(axis, x.ndim, "repeat")[0]
    return like(x, x.shape[:a] + (x.shape[a] * repeats,) + x.shape[a + 1:])


def _repeat_grad(F, ins, outs, gs, attrs):
    x, r = ins[0], attrs["repeats"]
    if attrs["axis"] is None:
        return [F.Reshape(F.sum(F.Reshape(gs[0], shape=(x.size, r)), axis=1), shape=x.shape)]
    a = attrs["axis"] % x.ndim
    g = F.Reshape(gs[0], shape=x.shape[:a] + (x.shape[a], r) + x.shape[a + 1:])
    return [F.sum(g, axis=a + 1)]


register(OpDef("repeat", infer=_repeat_infer, compute=lambda x, repeats, axis: np.repeat(x, repeats, axis),
               attrs={"repeats": Attr("int"), "axis": Attr("int", None, optional=True)}, gradient=_repeat_grad,
               lowering=Movement(lambda ins, outs, a: [CP.repeat_copy(
                   ins[0].shape, a["repeats"], None if a["axis"] is None else a["axis"] % max(ins[0].ndim, 1))])))
