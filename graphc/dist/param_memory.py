"""Parameter memory on pipeline ranks: a rank holds the data of the parameters it owns only.

Once a rank-placed block has placed its stages (graphc/gluon/model_parallel_ranks.py), a
parameter another rank owns is never read here: its data and gradient are replaced by
placeholders, arrays of the same shape and dtype whose every element is one shared scalar (all
strides 0), so `shape`, `dtype`, `data()`, `zero_grad()`, `collect_params()` and the Trainer's
bookkeeping keep working while the rank holds none of its bytes. Reading one gives zeros (the
value is the owner's: gather_parameters brings it, e.g. before saving, and the rank then holds it
again). Writes into a placeholder land in its one scalar and change nothing anyone reads.

Initialization: with net.initialize(), every rank draws and holds every parameter until the
block's first call places it and releases the others' share (the whole model is allocated once
until then). graphc.gluon.model_parallel_ranks.initialize_owned(net, x, init=...) places the
block first (a trace needs shapes only) and initializes the parameters in the same order, so
the random draws and the owners' values are those of one process, releasing each another rank
owns right after drawing it: a rank never holds more than its share plus the largest parameter.
"""
from __future__ import annotations

import numpy as np

__all__ = ["placeholder", "is_placeholder", "release", "hold", "held_bytes"]


def placeholder(shape, dtype) -> np.ndarray:
    """A writable array of `shape` and `dtype` holding one element's bytes."""
    one = np.zeros(1, np.dtype(dtype))
    return np.lib.stride_tricks.as_strided(one, shape=tuple(shape), strides=(0,) * len(shape), writeable=True)


def is_placeholder(a: np.ndarray) -> bool:
    return a.size > 1 and all(s == 0 for s in a.strides)


def release(param) -> None:
    """Drop the data and gradient of a parameter this rank does not own (see the module)."""
    for arrays in (param._data, param._grad):
        for arr in arrays or ():
            if not is_placeholder(arr._data):
                arr._data = placeholder(arr._data.shape, arr._data.dtype)


def hold(param, value: np.ndarray) -> None:
    """Give a parameter its full data again (gather_parameters): every copy holds `value`."""
    for arr in param._data or ():
        if is_placeholder(arr._data):
            arr._data = np.array(value, dtype=arr._data.dtype, copy=True, order="C")
        else:
            arr._data[...] = value


def held_bytes(params) -> int:
    """Bytes of parameter data and gradients this process holds (a placeholder holds none of
    its own; shared arrays count once)."""
    if hasattr(params, "values"):
        params = list(params.values())
    seen, total = set(), 0
    for p in params:
        for arrays in (p._data, p._grad):
            for arr in arrays or ():
                a = arr._data
                if is_placeholder(a) or id(a) in seen:
                    continue
                seen.add(id(a))
                total += a.nbytes
    return total
