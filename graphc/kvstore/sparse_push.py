"""Row-sparse values in a KVStore of one process: the sum over devices of row_sparse pushes
stays row_sparse (the union of their rows), so an updater (the optimizer) sees a row_sparse
gradient and updates lazily, as MXNet's 'local' and 'device' stores do. The stored value itself
is dense. Distributed stores never come here: their transport sums dense buffers."""
from __future__ import annotations

import numpy as np

from ..ndarray import NDArray
from ..ndarray.sparse_arrays import RowSparseNDArray, merge_rows


def all_row_sparse(groups) -> bool:
    return bool(groups) and all(isinstance(v, RowSparseNDArray) for _, values in groups for v in values)


def _sum(values, dtype):
    data, idx = values[0]._values.astype(dtype), values[0]._aux[0]
    for v in values[1:]:
        data, idx = merge_rows(data, idx, v._values.astype(dtype, copy=False), v._aux[0], np.add)
    return data, idx


def push_row_sparse(store, op, key, groups, out):
    """KVStore._push for row_sparse values: returns the keys whose outputs were written here
    (with no updater, outputs that are the pushed arrays get the row_sparse sum)."""
    written = set()
    outs = {}
    if out is not None and store._updater is None:
        for k, o in store._pairs(op, key, out, "output")[0]:
            outs.setdefault(k, []).append(o)
    for k, values in groups:
        stored = store._store[k]
        data, idx = _sum(values, stored._data.dtype)
        merged = object.__new__(RowSparseNDArray)
        merged._init_sparse(data, (idx,), stored.shape, stored.context)
        if store._updater is not None:
            store._updater(k.encode() if isinstance(k, str) else k, merged, stored)
            continue
        store._unkept.discard(k)
        stored._data[...] = 0
        stored._data[idx] = data
        if k in outs and all(isinstance(o, RowSparseNDArray) for o in outs[k]):
            for o in outs[k]:
                merged.copyto(o)
            written.add(k)
    return written


def rows_into(out: RowSparseNDArray, dense: np.ndarray, rows: np.ndarray):
    """out = the rows `rows` of `dense` (each once, sorted), as MXNet's row_sparse_pull."""
    rows = np.unique(rows)
    out._values = np.ascontiguousarray(dense[rows]).astype(out._values.dtype, copy=False)
    out._aux = (rows.astype(np.int64),)


def write_out(out: NDArray, dense: np.ndarray):
    """A pull's write of a stored (dense) value into `out`, whatever its storage."""
    if out.stype != "default":
        out._assign_dense(np.asarray(dense))
    else:
        out._data[...] = dense
