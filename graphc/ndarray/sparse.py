"""graphc.nd.sparse: MXNet's `mx.nd.sparse` namespace: creating row_sparse and csr arrays and the
operators that keep them sparse (sparse_ops.py). The arrays themselves are in sparse_arrays.py.

Creation follows MXNet 1.9.1: row_sparse_array((data, indices), shape) / csr_matrix((data,
indices, indptr), shape), or from a dense array, a shape (all zeros), a sparse array, a scipy
sparse matrix (when scipy is installed) or, for csr, (data, (row, col)) coordinates. The dtype is
the source's when it is an array, else float32; indices are int64."""
from __future__ import annotations

import numpy as np

from ..device import as_context
from ..ops.dtypes import canonical
from ..ops.errors import GraphcError, ShapeError
from .ndarray import NDArray
from .sparse_arrays import (BaseSparseNDArray, CSRNDArray, RowSparseNDArray, StorageTypeError,  # noqa: F401
                            dense_to_csr, dense_to_row_sparse, from_dense, from_user_parts)
from .sparse_ops import (ZERO_PRESERVING, add, cast_storage, clip, divide, dot, elemwise_add,  # noqa: F401
                         elemwise_mul, elemwise_sub, embedding, mean, multiply, reduce_sum, retain, slice_rows,
                         subtract, unary, zeros_like)

from . import sparse_functions as _sparse_functions  # noqa: E402



def _out_and_name(fn):
    """fn with MXNet's out= (the result is copied into that array, in its storage type, and
    returned) and name= (ignored eagerly, as MXNet's imperative calls do)."""
    def wrapper(*args, out=None, name=None, **kwargs):
        for x in args:
            if isinstance(x, BaseSparseNDArray):
                x._require_valid(f"sparse.{fn.__name__}")
        result = fn(*args, **kwargs)
        return result if out is None else result.copyto(out)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


dot, elemwise_add, elemwise_sub, elemwise_mul, clip, cast_storage, retain, zeros_like = map(
    _out_and_name, (dot, elemwise_add, elemwise_sub, elemwise_mul, clip, cast_storage, retain, zeros_like))
gs_retain = retain      # MXNet's second name for retain
# MXNet's names (they shadow the builtins inside this namespace module only)
sum = _out_and_name(reduce_sum)        # noqa: A001
slice = _out_and_name(slice_rows)      # noqa: A001

__all__ = ["RowSparseNDArray", "CSRNDArray", "BaseSparseNDArray", "row_sparse_array", "csr_matrix", "zeros",
           "empty", "array", "dot", "retain", "slice", "sum", "mean", "add", "subtract", "multiply", "divide",
           "elemwise_add", "elemwise_sub", "elemwise_mul", "cast_storage", "zeros_like", "clip", "Embedding"]


def _dtype(source, dtype):
    if dtype is not None:
        return np.dtype(canonical(dtype))
    if isinstance(source, (np.ndarray, NDArray)):
        return np.dtype(source.dtype)
    return np.dtype(np.float32)


def _np(x):
    return np.asarray(x._data) if isinstance(x, NDArray) else np.asarray(x)


def _is_shape(arg):
    return isinstance(arg, tuple) and all(isinstance(d, (int, np.integer)) for d in arg)


def _is_scipy(arg, kind=None):
    try:
        import scipy.sparse as sp
    except ImportError:
        return False
    return sp.issparse(arg) and (kind is None or arg.format == kind)


def row_sparse_array(arg1, shape=None, ctx=None, dtype=None):
    """A RowSparseNDArray from (data, indices), a shape (zeros), a row_sparse array or a dense array."""
    ctx = as_context(ctx) if ctx is not None else None
    if isinstance(arg1, RowSparseNDArray):
        out = arg1.astype(dtype or arg1.dtype)
        return out.copyto(ctx) if ctx is not None else out
    if _is_shape(arg1):
        _check_shape("row_sparse_array", arg1, shape)
        return zeros("row_sparse", arg1, ctx, dtype or "float32")
    if isinstance(arg1, tuple) and len(arg1) == 2:
        data, indices = arg1
        values = _np(data).astype(_dtype(data, dtype))
        if shape is None:
            idx = _np(indices)
            if not idx.size:        # MXNet refuses too: no row says how many rows there are
                raise ShapeError("row_sparse_array: cannot infer the shape from empty indices; pass shape=")
            shape = (int(idx.max()) + 1,) + values.shape[1:]
        return from_user_parts(RowSparseNDArray, values, (_np(indices),), shape, ctx)
    if isinstance(arg1, BaseSparseNDArray):
        raise GraphcError(f"row_sparse_array: cannot create from a {arg1.stype} array; use .tostype('row_sparse')")
    dense = _np(arg1).astype(_dtype(arg1, dtype))
    _check_shape("row_sparse_array", dense.shape, shape)
    return from_dense(dense, "row_sparse", ctx or _ctx_of(arg1))


def _check_shape(what, actual, shape):
    """shape= must agree with the shape the source gives (MXNet raises ValueError)."""
    if shape is not None and tuple(int(d) for d in shape) != tuple(int(d) for d in actual):
        raise ShapeError(f"{what}: shape mismatch: the source has shape {tuple(actual)}, shape= says {tuple(shape)}")


def csr_matrix(arg1, shape=None, ctx=None, dtype=None):
    """A CSRNDArray from (data, indices, indptr), (data, (row, col)), a shape (zeros), a csr
    array, a scipy sparse matrix or a dense 2-D array."""
    ctx = as_context(ctx) if ctx is not None else None
    if isinstance(arg1, CSRNDArray):
        out = arg1.astype(dtype or arg1.dtype)
        return out.copyto(ctx) if ctx is not None else out
    if _is_shape(arg1):
        _check_shape("csr_matrix", arg1, shape)
        return zeros("csr", arg1, ctx, dtype or "float32")
    if _is_scipy(arg1):
        m = arg1.tocsr(copy=True)
        m.sum_duplicates()          # canonical form (sorted, each entry once), as MXNet's
        return CSRNDArray(m.data.astype(_dtype(m.data, dtype)), m.indices, m.indptr, m.shape, ctx)
    if isinstance(arg1, tuple) and len(arg1) == 3:
        data, indices, indptr = arg1
        indptr_np = _np(indptr)
        if shape is None:
            idx = _np(indices)
            if not idx.size:        # MXNet refuses too: no column says how many columns there are
                raise ShapeError("csr_matrix: cannot infer the shape from empty indices; pass shape=")
            shape = (len(indptr_np) - 1, int(idx.max()) + 1)
        return from_user_parts(CSRNDArray, _np(data).astype(_dtype(data, dtype)), (_np(indices), indptr_np), shape, ctx)
    if isinstance(arg1, tuple) and len(arg1) == 2 and isinstance(arg1[1], tuple):
        data, (row, col) = arg1
        values, row, col = _np(data).astype(_dtype(data, dtype)), _np(row).astype(np.int64), _np(col).astype(np.int64)
        if shape is None:
            shape = (int(row.max()) + 1 if row.size else 0, int(col.max()) + 1 if col.size else 0)
        dense = np.zeros(shape, values.dtype)
        np.add.at(dense, (row, col), values)       # duplicates are summed, as scipy's coo_matrix
        return from_dense(dense, "csr", ctx)
    if isinstance(arg1, BaseSparseNDArray):
        raise GraphcError(f"csr_matrix: cannot create from a {arg1.stype} array; use .tostype('csr')")
    dense = _np(arg1).astype(_dtype(arg1, dtype))
    _check_shape("csr_matrix", dense.shape, shape)
    return from_dense(dense, "csr", ctx or _ctx_of(arg1))


def _ctx_of(x):
    return x.context if isinstance(x, NDArray) else None


def zeros(stype, shape, ctx=None, dtype="float32", **kw):
    """An all-zero array of storage `stype` (nothing stored)."""
    from . import zeros as dense_zeros
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    ctx = as_context(ctx) if ctx is not None else None
    dt = np.dtype(canonical(dtype or "float32"))
    if stype == "default":
        return dense_zeros(shape, ctx, dt)
    if stype == "row_sparse":
        return RowSparseNDArray(np.zeros((0,) + shape[1:], dt), np.zeros(0, np.int64), shape, ctx)
    if stype == "csr":
        if len(shape) != 2:
            raise GraphcError(f"sparse.zeros: csr storage is 2-D, got shape {shape}")
        return CSRNDArray(np.zeros(0, dt), np.zeros(0, np.int64), np.zeros(shape[0] + 1, np.int64), shape, ctx)
    raise StorageTypeError(f"sparse.zeros: storage type must be 'default', 'row_sparse' or 'csr', got {stype!r}")


def empty(stype, shape, ctx=None, dtype="float32"):
    return zeros(stype, shape, ctx, dtype)


def array(source_array, ctx=None, dtype=None):
    """A sparse array from a sparse array (a copy) or a scipy csr matrix, as MXNet's sparse.array."""
    if isinstance(source_array, RowSparseNDArray):
        return row_sparse_array(source_array.copy(), ctx=ctx, dtype=dtype)
    if isinstance(source_array, CSRNDArray) or _is_scipy(source_array, "csr"):
        return csr_matrix(source_array.copy() if isinstance(source_array, CSRNDArray) else source_array,
                          ctx=ctx, dtype=dtype)
    raise GraphcError(f"sparse.array: expects a sparse NDArray or a scipy csr_matrix, got {type(source_array).__name__}")


def Embedding(data, weight, input_dim, output_dim, dtype="float32", sparse_grad=True, name=None, **kw):
    return embedding(data, weight, input_dim, output_dim, dtype, sparse_grad, name)


def _unary(name):
    def fn(data, **kw):
        return unary(name, data)
    fn.__name__ = name
    fn.__doc__ = f"{name} on the stored values (f(0) == 0): the storage type is kept."
    return fn


globals().update({name: _unary(name) for name in ZERO_PRESERVING})
# the rest of MXNet's nd.sparse: add_n, concat, the lazy optimizer updates, dense fallbacks
globals().update(_sparse_functions.names())


# -- .params records (formats/mxnet_params.py knows numpy only) ------------------------------------------
def saveable(x):
    """What nd.save writes for x: numpy for a dense array, a SparseArray record for a sparse one."""
    from ..formats.mxnet_params import SparseArray
    if isinstance(x, BaseSparseNDArray):
        return SparseArray(x.stype, x.shape, x._values, x._aux)
    return x.asnumpy()


def loaded(record):
    """The NDArray for what load_params returned: sparse records become sparse arrays."""
    from ..formats.mxnet_params import SparseArray
    from .ndarray import array as dense_array
    if isinstance(record, SparseArray):
        if record.stype == "row_sparse":
            return RowSparseNDArray(record.data, record.aux[0], record.shape)
        indptr, indices = record.aux
        return CSRNDArray(record.data, indices, indptr, record.shape)
    return dense_array(record, dtype=record.dtype)
