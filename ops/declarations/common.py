"""Inference helpers shared by the declarations (broadcasting, axis normalisation)."""
from __future__ import annotations

from ..errors import ShapeError, DTypeError
from ..types import TensorType


def broadcast_shape(a: tuple, b: tuple, op="broadcast") -> tuple:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            raise ShapeError(f"{op}: shapes {a} and {b} cannot broadcast (dimension {-i}: {x} vs {y})")
        out.append(max(x, y) if min(x, y) != 0 else 0)
    return tuple(reversed(out))


def same_dtype(op, *types, names=None):
    """The one dtype of `types`; else a DTypeError that lists each input's dtype (by its
    name when `names` gives them)."""
    dts = {t.dtype for t in types}
    if len(dts) > 1:
        listed = ", ".join(f"{n} {t.dtype}" for n, t in zip(names, types)) if names else \
            str([t.dtype for t in types])
        raise DTypeError(f"{op}: inputs have different dtypes ({listed}); use Cast/astype first")
    return types[0].dtype


def normalize_axes(axis, ndim, op="op", exclude=False) -> tuple:
    """axis None/int/tuple -> sorted tuple of non-negative axes; exclude inverts the set."""
    if axis is None:
        axes = tuple(range(ndim))
        return () if exclude else axes
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for an input of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: axis {axis} repeats an axis")
    if exclude:
        return tuple(i for i in range(ndim) if i not in out)
    return tuple(sorted(out))


def like(t: TensorType, shape=None, dtype=None) -> TensorType:
    return t.with_(shape=shape, dtype=dtype)
