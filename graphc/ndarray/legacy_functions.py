"""graphc.nd's functions that MXNet 1.x writes in Python over its operators rather than as
operators: logical_and/or/xor, moveaxis, concatenate, onehot_encode, reset_arrays, split_v2 and histogram
(graphc/split_histogram.py, shared with graphc.sym), and the multi-weight update operators
whose states graphc returns as outputs (they are written back here, as MXNet mutates them)."""
from __future__ import annotations

import numbers

import numpy as np

from .. import split_histogram as _split_histogram
from ..ops.declarations.update_ops import MULTI_STATES
from ..ops.namespace import write_out
from .ndarray import NDArray, _NAMESPACE, array

__all__ = ["logical_and", "logical_or", "logical_xor", "moveaxis", "concatenate", "histogram", "split_v2",
           "onehot_encode", "reset_arrays"]


def _logical(name):
    def fn(lhs, rhs):
        if isinstance(lhs, numbers.Number) and isinstance(rhs, numbers.Number):
            return float(bool(getattr(np, "logical_" + name)(lhs, rhs)))
        if isinstance(rhs, numbers.Number):
            rhs = array(np.full(lhs.shape, rhs), ctx=lhs.context, dtype=lhs.dtype)
        if isinstance(lhs, numbers.Number):
            lhs = array(np.full(rhs.shape, lhs), ctx=rhs.context, dtype=rhs.dtype)
        return getattr(_NAMESPACE, "broadcast_logical_" + name)(lhs, rhs)
    fn.__name__ = "logical_" + name
    fn.__doc__ = f"Elementwise logical {name} of arrays or numbers (1.0 true, 0.0 false), broadcasting."
    return fn


logical_and = _logical("and")
logical_or = _logical("or")
logical_xor = _logical("xor")


def moveaxis(tensor, source, destination):
    """tensor with axis `source` moved to position `destination` (a transpose)."""
    axes = list(range(tensor.ndim))
    src = source % tensor.ndim
    dst = destination % tensor.ndim
    axes.pop(src)
    axes.insert(dst, src)
    return _NAMESPACE.transpose(tensor, axes=tuple(axes))


def concatenate(arrays, axis=0, always_copy=True):
    """The arrays joined along `axis` (MXNet's old nd.concatenate; one array is copied)."""
    arrays = list(arrays)
    if len(arrays) == 1:
        return arrays[0].copy() if always_copy else arrays[0]
    return _NAMESPACE.Concat(*arrays, dim=axis, num_args=len(arrays))


# histogram, split_v2: shared with graphc.sym
globals().update(_split_histogram.functions(_NAMESPACE, lambda a: isinstance(a, NDArray)))


def onehot_encode(indices, out):
    """Write the one-hot rows of `indices` into `out` (n, depth) and return it."""
    return write_out(out, _NAMESPACE._onehot_encode(indices, out))


def reset_arrays(*data, num_arrays=None, **kwargs):
    """Set every given array to zero in place (MXNet's reset_arrays, e.g. for gradient buffers)."""
    if num_arrays is not None and int(num_arrays) != len(data):
        raise ValueError(f"reset_arrays: num_arrays={num_arrays} but {len(data)} arrays were given")
    for a in data:
        a[:] = 0


def _multi_update(name, states):
    op = getattr(_NAMESPACE, name)

    def fn(*arrays, out=None, **attrs):
        num_weights = int(attrs.get("num_weights", 1))
        per = len(arrays[:len(arrays) - (2 if name.startswith("preloaded_") else 0)]) // num_weights
        results = op(*arrays, **attrs)
        results = results if isinstance(results, (list, tuple)) else (results,)
        weights, hidden = results[:num_weights], results[num_weights:]
        # the states follow each weight's (weight, grad) in the inputs, in declaration order
        for i in range(num_weights):
            for j in range(len(states)):
                arrays[i * per + 2 + j][:] = hidden[i * len(states) + j]
        result = weights[0] if num_weights == 1 else list(weights)
        return result if out is None else write_out(out, result)
    fn.__name__ = name
    fn.__doc__ = (f"MXNet's {name}: returns the new weights (write them with out=) and updates each "
                  f"weight's {', '.join(states)} in place.")
    return fn


for _name, _states in MULTI_STATES.items():
    if _states:
        for _full in (_name, "preloaded_" + _name):
            globals()[_full] = _multi_update(_full, _states)
            __all__.append(_full)

