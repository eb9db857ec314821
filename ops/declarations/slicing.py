"""Slicing and gathering operators: slice, slice_axis, slice_like, take, and the scatters their gradients
need (_slice_assign, _slice_assign_scalar, _backward_take). Slices and slice assignments are
strided copies (`Movement`, graphc.ops.layout); the gathers by index (take, _backward_take)
run on the host."""
from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from ..attrs import Attr
from ..errors import IndexRangeError, OpAttributeError, ShapeError
from .. import layout as L
from ..registry import Movement, OpDef, Take, register
from .common import normalize_axes, same_dtype, like


@dataclass(frozen=True)
class IndexTuple(Attr):
    """A tuple of ints or None (slice bounds): MXNet writes '(0, None)' or '(None,)'."""

    def parse(self, op, name, value):
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value.strip() or "()")
            except (ValueError, SyntaxError):
                raise OpAttributeError(f"{op}: attribute {name}={value!r} is not a tuple of ints or None") from None
        if value is None:
            return ()
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = (value,)
        try:
            return tuple(None if v is None else _int(v) for v in value)
        except (TypeError, ValueError):
            raise OpAttributeError(f"{op}: attribute {name}={value!r} is not a tuple of ints or None") from None


def _int(v):
    if isinstance(v, bool) or not float(v).is_integer():
        raise ValueError(v)
    return int(v)


_SLICE_ATTRS = {"begin": IndexTuple("any"), "end": IndexTuple("any"), "step": IndexTuple("any", ())}


def slices_of(op, shape, begin, end, step) -> tuple:
    """Python slice objects for MXNet's begin/end/step (None = the default for that step's sign)."""
    if len(begin) != len(end):
        raise ShapeError(f"{op}: begin {begin} and end {end} have different lengths (input {shape})")
    if len(begin) > len(shape):
        raise ShapeError(f"{op}: begin {begin} slices {len(begin)} axes but input {shape} has {len(shape)}")
    if step and len(step) != len(begin):
        raise ShapeError(f"{op}: step {step} and begin {begin} have different lengths (input {shape})")
    step = step or (None,) * len(begin)
    if any(s == 0 for s in step):
        raise ShapeError(f"{op}: step {step} contains 0 (input {shape})")
    return tuple(slice(b, e, s) for b, e, s in zip(begin, end, step))


def _sliced_shape(op, shape, begin, end, step):
    sl = slices_of(op, shape, begin, end, step)
    out = [len(range(*s.indices(d))) for s, d in zip(sl, shape)]
    return tuple(out) + tuple(shape[len(sl):])


def _slice_infer(x, begin, end, step):
    return like(x, _sliced_shape("slice", x.shape, begin, end, step))


def _slice_np(x, begin, end, step):
    return np.ascontiguousarray(x[slices_of("slice", x.shape, begin, end, step)])


def _slice_grad(F, ins, outs, gs, attrs):
    return [F._slice_assign(F.zeros_like(ins[0]), gs[0], begin=attrs["begin"], end=attrs["end"], step=attrs["step"])]


def _slice_pieces(in_types, out_types, attrs):
    x = in_types[0]
    view = L.probe(x.shape)[slices_of("slice", x.shape, attrs["begin"], attrs["end"], attrs["step"])]
    return [L.gather(view, out_types[0].shape)]


register(OpDef("slice", infer=_slice_infer, compute=_slice_np, attrs=_SLICE_ATTRS, gradient=_slice_grad,
               lowering=Movement(_slice_pieces), aliases=("crop",),
               doc="x[begin:end:step] per axis (numpy slice semantics)."))


def _assign_infer(lhs, rhs, begin, end, step):
    same_dtype("_slice_assign", lhs, rhs)
    want = _sliced_shape("_slice_assign", lhs.shape, begin, end, step)
    if rhs.shape != want:
        raise ShapeError(f"_slice_assign: rhs has shape {rhs.shape} but the slice of lhs {lhs.shape} has shape {want}")
    return lhs


def _assign_np(lhs, rhs, begin, end, step):
    out = lhs.copy()
    out[slices_of("_slice_assign", lhs.shape, begin, end, step)] = rhs
    return out


def _assign_grad(F, ins, outs, gs, attrs):
    kw = dict(begin=attrs["begin"], end=attrs["end"], step=attrs["step"])
    return [F._slice_assign_scalar(gs[0], scalar=0.0, **kw), F.slice(gs[0], **kw)]


def _assign_pieces(in_types, out_types, attrs):
    lhs, rhs = in_types
    region = L.probe(lhs.shape)[slices_of("_slice_assign", lhs.shape, attrs["begin"], attrs["end"], attrs["step"])]
    return [L.whole(lhs.shape), L.scatter(region, rhs.shape, src=1)]


register(OpDef("_slice_assign", infer=_assign_infer, compute=_assign_np, inputs=("lhs", "rhs"),
               attrs=_SLICE_ATTRS, gradient=_assign_grad, aliases=("_crop_assign",),
               lowering=Movement(_assign_pieces),
               doc="lhs with lhs[begin:end:step] replaced by rhs (the gradient of slice)."))


def _assign_scalar_np(x, scalar, begin, end, step):
    out = x.copy()
    out[slices_of("_slice_assign_scalar", x.shape, begin, end, step)] = scalar
    return out


def _assign_scalar_infer(x, scalar, begin, end, step):
    _sliced_shape("_slice_assign_scalar", x.shape, begin, end, step)
    return x


def _assign_scalar_pieces(in_types, out_types, attrs):
    x = in_types[0]
    region = L.probe(x.shape)[slices_of("_slice_assign_scalar", x.shape, attrs["begin"], attrs["end"], attrs["step"])]
    return [L.whole(x.shape), L.fill(region, attrs["scalar"])]


register(OpDef("_slice_assign_scalar", infer=_assign_scalar_infer, compute=_assign_scalar_np,
               attrs={"scalar": Attr("float", 0.0), **_SLICE_ATTRS}, lowering=Movement(_assign_scalar_pieces),
               gradient=lambda F, ins, outs, gs, attrs: [F._slice_assign_scalar(
                   gs[0], scalar=0.0, begin=attrs["begin"], end=attrs["end"], step=attrs["step"])],
               aliases=("_crop_assign_scalar",)))


# -- slice_axis, slice_like: spelled as slice specs ------------------------------------------------

def _axis_spec(ndim, axis, begin, end):
    a = normalize_axes(axis, ndim, "slice_axis")[0]
    return (None,) * a + (begin,), (None,) * a + (end,), ()


def _slice_axis_infer(x, axis, begin, end):
    return like(x, _sliced_shape("slice_axis", x.shape, *_axis_spec(x.ndim, axis, begin, end)))


def _slice_axis_grad(F, ins, outs, gs, attrs):
    b, e, s = _axis_spec(ins[0].ndim, attrs["axis"], attrs["begin"], attrs["end"])
    return [F._slice_assign(F.zeros_like(ins[0]), gs[0], begin=b, end=e, step=s)]


def _slice_axis_pieces(in_types, out_types, attrs):
    x = in_types[0]
    spec = _axis_spec(x.ndim, attrs["axis"], attrs["begin"], attrs["end"])
    return [L.gather(L.probe(x.shape)[slices_of("slice_axis", x.shape, *spec)], out_types[0].shape)]


register(OpDef("slice_axis", infer=_slice_axis_infer,
               compute=lambda x, axis, begin, end: np.ascontiguousarray(
                   x[slices_of("slice_axis", x.shape, *_axis_spec(x.ndim, axis, begin, end))]),
               attrs={"axis": Attr("int"), "begin": Attr("int"), "end": Attr("int", None, optional=True)},
               gradient=_slice_axis_grad, lowering=Movement(_slice_axis_pieces)))


def _like_spec(x, like_t, axes):
    if not axes:
        if x.ndim != like_t.ndim:
            raise ShapeError(f"slice_like: data {x.shape} and shape_like {like_t.shape} have different ranks")
        axes = range(x.ndim)
    end = [None] * x.ndim
    for a in axes:
        if not -like_t.ndim <= a < like_t.ndim:
            raise ShapeError(f"slice_like: axis {a} is out of range for shape_like {like_t.shape} (data {x.shape})")
        i = normalize_axes(a, x.ndim, "slice_like")[0]
        n = like_t.shape[a % like_t.ndim]
        if n > x.shape[i]:
            raise ShapeError(f"slice_like: shape_like {like_t.shape} is larger than data {x.shape} on axis {a}")
        end[i] = n
    return (None,) * x.ndim, tuple(end), ()


def _slice_like_infer(x, y, axes):
    return like(x, _sliced_shape("slice_like", x.shape, *_like_spec(x, y, axes)))


def _slice_like_np(x, y, axes):
    return np.ascontiguousarray(x[slices_of("slice_like", x.shape, *_like_spec(x, y, axes))])


def _slice_like_grad(F, ins, outs, gs, attrs):
    b, e, s = _like_spec(ins[0], ins[1], attrs["axes"])
    return [F._slice_assign(F.zeros_like(ins[0]), gs[0], begin=b, end=e, step=s), None]


def _slice_like_pieces(in_types, out_types, attrs):
    x = in_types[0]
    view = L.probe(x.shape)[slices_of("slice_like", x.shape, *_like_spec(x, in_types[1], attrs["axes"]))]
    return [L.gather(view, out_types[0].shape)]


register(OpDef("slice_like", infer=_slice_like_infer, compute=_slice_like_np, inputs=("data", "shape_like"),
               attrs={"axes": Attr("shape", ())}, gradient=_slice_like_grad, lowering=Movement(_slice_like_pieces)))


# -- take: gather along an axis; its gradient scatters (adds) back ---------------------------------
_TAKE_ATTRS = {"axis": Attr("int", 0), "mode": Attr("str", "clip", choices=("clip", "wrap", "raise"))}


def _take_infer(a, idx, axis, mode):
    ax = normalize_axes(axis, a.ndim, "take")[0]
    return like(a, a.shape[:ax] + idx.shape + a.shape[ax + 1:])


WRAP_LIMIT = float(2 ** 62)     # float indices beyond this clamp before they convert to integers


def fix_indices(idx, n, mode="clip", op="take", axis=0):
    """Integer indices in [0, n) from an index array of any dtype, the way every backend does
    it: a float index is NaN -> 0, then clamped (to [0, n-1] for clip, to +-2^62 for wrap, so
    that the conversion is defined), then truncated; then clip clamps, wrap takes it mod n.
    mode='raise' first checks every index (`check_in_range`) and converts only valid ones."""
    idx = np.asarray(idx)
    if mode == "raise":
        check_in_range(idx, n, op, axis)
        return idx.astype(np.int64)
    if idx.dtype.kind == "f":
        lo, hi = (0, n - 1) if mode == "clip" else (-WRAP_LIMIT, WRAP_LIMIT)
        idx = np.clip(np.nan_to_num(idx, nan=0.0, posinf=hi, neginf=lo), lo, hi)
    i = idx.astype(np.int64)
    return np.mod(i, n) if mode == "wrap" else np.clip(i, 0, n - 1)


def check_in_range(idx, n, op="take", axis=0):
    """mode='raise': every index must lie in [0, n-1] (a float one is compared before it is
    truncated, as MXNet's CPU kernel compares: 1.7 takes row 1, -0.5 and n-0.5 are refused);
    NaN is never valid (MXNet reads whatever row its integer conversion lands on)."""
    idx = np.asarray(idx)
    if idx.size == 0:
        return
    with np.errstate(invalid="ignore"):
        bad = ~((idx >= 0) & (idx <= n - 1))
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        value = idx[where].item()
        others = int(bad.sum()) - 1
        valid = f"0 to {n - 1}" if n else "none: the axis is empty"
        raise IndexRangeError(f"{op}: index {value!r} at position {where} of the indices {tuple(idx.shape)} is "
                              f"out of range for axis {axis} of size {n} (valid: {valid}; mode='raise')"
                              + (f"; {others} more indices are out of range" if others else ""))


def _take_np(a, idx, axis, mode):
    ax = axis % a.ndim
    return np.take(a, fix_indices(idx, a.shape[ax], mode, "take", ax), axis=ax)


def _take_grad(F, ins, outs, gs, attrs):
    a, idx = ins
    return [F._backward_take(gs[0], idx, axis=attrs["axis"], mode=attrs["mode"], shape=a.shape), None]


def _native_mode(attrs):
    return attrs["mode"] if attrs["mode"] in ("clip", "wrap") else None      # 'raise' reports on the host


register(OpDef("take", infer=_take_infer, compute=_take_np, inputs=("a", "indices"), attrs=_TAKE_ATTRS,
               gradient=_take_grad,
               lowering=Take(data=0, index=1, axis=lambda attrs, ndim: attrs["axis"] % ndim, mode=_native_mode)))


def _backward_take_infer(g, idx, axis, mode, shape):
    ax = normalize_axes(axis, len(shape), "_backward_take")[0]
    want = tuple(shape[:ax]) + idx.shape + tuple(shape[ax + 1:])
    if g.shape != want:
        raise ShapeError(f"_backward_take: gradient has shape {g.shape}, expected {want} for data {shape} "
                         f"and indices {idx.shape}")
    return like(g, tuple(shape))


def _backward_take_np(g, idx, axis, mode, shape):
    ax = axis % len(shape)
    i = fix_indices(idx, shape[ax], mode, "take (gradient)", ax).reshape(-1)
    pre, post = tuple(shape[:ax]), tuple(shape[ax + 1:])
    gm = np.moveaxis(g.reshape(pre + (i.size,) + post), ax, 0)
    out = np.zeros((shape[ax],) + pre + post, dtype=g.dtype)
    np.add.at(out, i, gm)
    return np.ascontiguousarray(np.moveaxis(out, 0, ax))


register(OpDef("_backward_take", infer=_backward_take_infer, compute=_backward_take_np,
               inputs=("ograd", "indices"), attrs={**_TAKE_ATTRS, "shape": Attr("shape")},
               lowering=Take(data=0, index=1, axis=lambda attrs, ndim: attrs["axis"] % ndim, mode=_native_mode,
                             scatter=True),
               gradient=lambda F, ins, outs, gs, attrs: [F.take(gs[0], ins[1], axis=attrs["axis"], mode=attrs["mode"]), None],
               doc="Scatter-add `ograd` into zeros of `shape` at `indices` along `axis` (take's gradient)."))
