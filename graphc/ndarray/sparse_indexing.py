"""take on a csr array, keeping csr storage (MXNet 1.9.1's take with a csr data input).

MXNet gathers csr rows without densifying when the indices are 1-D, axis is 0 and mode is
'clip' or 'wrap'; the result is csr, with the source's dtype and int64 indices. Indices are cast
to integers by truncation first (1.7 -> row 1), as MXNet's. Every other case (another axis,
mode='raise', 2-D indices, a row_sparse input) is MXNet's storage fallback: the dense operator
on the dense form, with a dense result; so is a take autograd must record, since the sparse
rules take no gradient (sparse_ops.tracked)."""
from __future__ import annotations

import numpy as np

from .ndarray import NDArray, invoke
from .sparse_arrays import CSRNDArray


def take(a, indices, axis=0, mode="clip", **kw):
    """nd.take(a, indices, axis, mode) with MXNet's storage types (see the module docstring)."""
    out = take_csr_rows(a, indices, axis, mode)
    if out is NotImplemented:
        return invoke("take", [a, indices], dict(axis=axis, mode=mode, **kw))
    return out


def take_csr_rows(a, indices, axis=0, mode="clip"):
    """The csr result of taking rows of csr `a`, or NotImplemented where MXNet falls back to dense."""
    from .sparse_ops import tracked
    if not isinstance(a, CSRNDArray) or int(axis) != 0 or mode not in ("clip", "wrap") or tracked(a, indices):
        return NotImplemented
    idx = np.asarray(indices._data if isinstance(indices, NDArray) else indices)
    if idx.ndim != 1 or a.shape[0] == 0:
        return NotImplemented
    a._require_valid("take")
    n = a.shape[0]
    rows = idx.astype(np.int64)      # truncation toward zero, as MXNet's cast of float indices
    rows = np.clip(rows, 0, n - 1) if mode == "clip" else np.mod(rows, n)
    indptr, cols = a._aux
    starts, counts = indptr[rows], np.diff(indptr)[rows]
    new_indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=new_indptr[1:])
    # position of every gathered entry in the source: its row's start plus its offset in the row
    offsets = np.arange(new_indptr[-1], dtype=np.int64) - np.repeat(new_indptr[:-1], counts)
    gather = np.repeat(starts, counts) + offsets
    out = object.__new__(CSRNDArray)
    out._init_sparse(a._values[gather].copy(), (new_indptr, cols[gather].copy()), (len(rows), a.shape[1]), a._ctx)
    return out
