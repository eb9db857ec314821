"""NDArray indexing with integer arrays in the key (`a[[1, 1, 0], [0, 1, 0]]`, `a[:, idx]`,
`a[nd_rows, nd_cols]`): numpy's advanced-indexing rules, as MXNet 1.x applies them.

Rather than re-deriving numpy's rules (broadcast index arrays, where the advanced axes land
when slices sit between them), the key is applied to an array of flat positions, so numpy
itself says which element each output element is; the result is then one `take` on the
flattened array, which autograd differentiates (its gradient scatters back) like any operator.
"""
from __future__ import annotations

import numbers

import numpy as np


def _is_array_like(k) -> bool:
    from .ndarray import NDArray
    return isinstance(k, (list, np.ndarray, NDArray)) and not isinstance(k, bool)


def is_advanced(key) -> bool:
    """Whether `key` holds an index array (list, numpy array or NDArray) anywhere; a lone NDArray
    key is MXNet's take along axis 0 and is left to the caller."""
    parts = key if isinstance(key, tuple) else (key,)
    return any(_is_array_like(k) for k in parts)


def _numpy_part(k):
    from .ndarray import NDArray
    if isinstance(k, NDArray):
        k = k.asnumpy()
    if isinstance(k, (list, tuple, np.ndarray)):     # (a tuple inside the key is a sequence, as numpy)
        a = np.asarray(k)
        if a.dtype == np.bool_:
            return a
        if a.size and not np.all(np.equal(np.mod(a, 1), 0)):
            raise IndexError(f"index array {a.tolist()!r} has non-integer values")
        return a.astype(np.int64)
    if isinstance(k, (numbers.Integral, np.integer, slice)) or k is None or k is Ellipsis:
        return k
    raise IndexError(f"unsupported index {k!r}: use ints, slices, None, ..., lists or arrays of indices")


def numpy_key(key):
    """The key with its NDArrays and lists as numpy index arrays (for writing through numpy)."""
    parts = key if isinstance(key, tuple) else (key,)
    np_key = tuple(_numpy_part(k) for k in parts)
    return np_key if isinstance(key, tuple) else np_key[0]


def fit_value(value: np.ndarray, target_shape) -> np.ndarray:
    """An assigned value shaped for the indexed region, as MXNet broadcasts it: leading size-1
    axes beyond the region's rank dropped (`x[1, 2] = [5]`), then numpy broadcasting."""
    while value.ndim > len(target_shape) and value.shape[0] == 1:
        value = value[0]
    return value


def positions(shape, key) -> np.ndarray:
    """The flat positions (int64) of the elements `x[key]` selects in an array of `shape`,
    shaped as `x[key]`; IndexError (numpy's message, with the shape) when out of range."""
    parts = key if isinstance(key, tuple) else (key,)
    np_key = tuple(_numpy_part(k) for k in parts)
    flat = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)
    try:
        return np.asarray(flat[np_key])
    except IndexError as e:
        raise IndexError(f"index {key!r} into an array of shape {tuple(shape)}: {e}") from None


def advanced_getitem(x, key):
    """x[key] for a key holding index arrays: one differentiable take of the flattened x."""
    from . import ndarray as _nd
    pos = positions(x.shape, key)
    flat = x.reshape((-1,))
    idx = _nd.NDArray(pos.reshape(-1), x.context)
    out = _nd.invoke("take", [flat, idx], {"axis": 0})
    return out.reshape(pos.shape) if pos.ndim != 1 else out
