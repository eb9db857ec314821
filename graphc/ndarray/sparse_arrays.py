"""RowSparseNDArray and CSRNDArray: MXNet's two sparse storage types, held as numpy arrays.

    row_sparse: data (k, *shape[1:]), indices (k,) int64, sorted and unique: the rows present;
                every other row is zero. Gradients of embeddings and their lazy updates use it.
    csr:        data (nnz,), indices (nnz,) int64 column of each value, indptr (rows + 1,) int64
                (row r's values are data[indptr[r]:indptr[r+1]]). Sparse inputs (bag of words,
                user-item matrices) use it.

Both are NDArray subclasses, so everything written for dense arrays accepts them: an operator
without a sparse rule (nd.exp, nd.dot on shapes it does not know, ...) reads `_data`, which here
is the dense form made on demand, read-only. That is MXNet's "storage fallback": the values are
MXNet's and the result is dense. A write through `_data` would land in a temporary, so it is
refused (numpy raises on the read-only array) instead of being silently lost; the in-place
entry points (copyto, _store_grad, x[:] = ..., x += ...) are overridden here. The exception is a
row_sparse array storing every row (a Parameter(stype='row_sparse') weight, which MXNet's
optimizers require to be whole): its values are its dense form, so `_data` returns them, writable,
and optimizers and initializers update it in place.

A hybridized (compiled) block fed a sparse array takes its dense form the same way: the
compiler has no sparse values, so a compiled graph computes densely, with MXNet's results. The
one place this changes more than speed is Embedding(sparse_grad=True), whose gradient is then
computed densely (gluon/nn/norm_layers.py says how, and warns).

The operators that keep sparse storage, with MXNet 1.9.1's result storage types, live in
sparse_ops.py. This module must never import it at load time (sparse_ops imports this one)."""
from __future__ import annotations

import numpy as np

from ..device import as_context, current_context
from ..ops.dtypes import canonical
from ..ops.errors import GraphcError, ShapeError
from ..ops.types import TensorType
from .ndarray import NDArray

__all__ = ["BaseSparseNDArray", "RowSparseNDArray", "CSRNDArray", "StorageTypeError", "dense_to_row_sparse",
           "dense_to_csr", "from_user_parts"]

STYPES = ("default", "row_sparse", "csr")


class StorageTypeError(GraphcError, ValueError):
    """An unknown storage type (MXNet raises ValueError)."""


def _check_stype(stype, what):
    if stype not in STYPES:
        raise StorageTypeError(f"{what}: storage type must be one of {STYPES}, got {stype!r}")


class BaseSparseNDArray(NDArray):
    """Shared plumbing: shape and dtype without densifying, the read-only dense view, copies."""

    # _invalid: None for a well-formed array; else (why it is not, whether its parts still
    # describe a dense array): see from_user_parts
    __slots__ = ("_values", "_aux", "_sshape", "_invalid")

    def _init_sparse(self, values, aux, shape, ctx):
        self._invalid = None
        self._values = values
        self._aux = aux
        self._sshape = tuple(int(s) for s in shape)
        self._ctx = ctx or current_context()
        self._entry = None
        self._grad = None
        self._grad_req = "null"
        self._fresh_grad = False
        self._job = None

    # the dense form, for every operator without a sparse rule (see the module docstring)
    def _dense(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_data(self):
        self._require_valid("its dense form")
        if self._holds_every_row():
            return self._values         # the dense form itself: writes through it are kept
        out = self._dense()
        out.flags.writeable = False
        return out

    def _holds_every_row(self) -> bool:
        return False

    def _set_data(self, value):
        self._assign_dense(np.asarray(value))

    _data = property(_get_data, _set_data)

    # With several devices in use, queued jobs mark the arrays they touch (`_job`) and turn them
    # back into plain NDArrays when done (pending.py). A sparse array is never pending: its
    # operators run at once and replace its parts instead of writing into them, so a job that
    # reads it reads a complete value. It takes no mark, and so is never turned into a dense array.
    _job = property(lambda self: None, lambda self, job: None)

    @property
    def shape(self):
        return self._sshape

    @property
    def dtype(self):
        return self._values.dtype.type

    @property
    def size(self):
        return int(np.prod(self._sshape, dtype=np.int64))

    @property
    def ndim(self):
        return len(self._sshape)

    @property
    def data(self):
        """The stored values (MXNet's .data), as a dense NDArray."""
        return NDArray(self._values.copy(), self._ctx)

    @property
    def indices(self):
        return NDArray(self._aux[-1].copy(), self._ctx)

    # MXNet's accessors of the auxiliary arrays (row_sparse: indices; csr: indptr, indices)
    @property
    def _num_aux(self):
        return len(self._aux)

    @property
    def _aux_types(self):
        return [a.dtype.type for a in self._aux]

    def _aux_type(self, i):
        return self._aux[i].dtype.type

    def _aux_data(self, i):
        return NDArray(self._aux[i].copy(), self._ctx)

    def _require_valid(self, what):
        """Refuse to compute from parts that describe no array (an index out of range, a
        decreasing indptr): MXNet reads out of bounds there; graphc names the problem."""
        if self._invalid is not None and not self._invalid[1]:
            raise GraphcError(f"{type(self).__name__}: cannot compute {what}: the array is not valid "
                              f"({self._invalid[0]}); check_format() reports this")

    def check_format(self, full_check=True):
        """Raise unless the stored parts form a valid array of this storage type (MXNet's
        check_format; full_check also checks the index values, not only their lengths)."""
        if full_check and self._invalid is not None:
            raise GraphcError(f"check_format: {self._invalid[0]}")
        check = _check_row_sparse if self.stype == "row_sparse" else _check_csr
        parts = (self._values, self._aux[0]) if self.stype == "row_sparse" else \
            (self._values, self._aux[1], self._aux[0])
        if not full_check or self._invalid is not None:
            lengths_ok = len(parts[1]) == len(parts[0]) if self.stype == "row_sparse" else \
                len(parts[2]) == self._sshape[0] + 1 and len(parts[1]) == len(parts[0])
            if not lengths_ok:
                raise GraphcError(f"check_format: the {self.stype} array's auxiliary arrays do not match its data")
            return
        _, *checked = check(*parts, self._sshape)
        if self.stype == "row_sparse" and not np.array_equal(checked[0], self._aux[0]):
            raise GraphcError(f"check_format: row_sparse indices must be sorted and unique, got "
                              f"{self._aux[0].tolist()}")
        if self.stype == "csr":
            indptr, indices = self._aux
            for r in range(self._sshape[0]):
                cols = indices[indptr[r]:indptr[r + 1]]
                if np.any(np.diff(cols) <= 0):
                    raise GraphcError(f"check_format: csr row {r} has column indices {cols.tolist()}, which "
                                      "are not sorted and unique")

    def _type(self) -> TensorType:
        return TensorType(self._sshape, self._values.dtype, str(self._ctx))

    def asnumpy(self) -> np.ndarray:
        self._require_valid("asnumpy()")
        return self._dense()

    def _like(self, values, aux, shape=None, ctx=None):
        """A new array of this storage type (no copy of the arguments)."""
        out = object.__new__(type(self))
        out._init_sparse(values, aux, shape or self._sshape, ctx or self._ctx)
        out._invalid = self._invalid        # a copy of an invalid array is as invalid (MXNet's)
        return out

    def copy(self):
        return self._like(self._values.copy(), tuple(a.copy() for a in self._aux))

    def detach(self):
        return self._like(self._values, self._aux)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(canonical(dtype))
        if not copy and dtype == self._values.dtype:
            return self
        return self._like(self._values.astype(dtype), tuple(a.copy() for a in self._aux))

    def copyto(self, other):
        """Into a sparse array of the same storage (it takes these values), a dense NDArray (it
        takes the dense form), or onto a device (a new sparse array there)."""
        if isinstance(other, NDArray):
            if other.shape != self.shape:
                raise ShapeError(f"copyto: target shape {other.shape} differs from source {self.shape}")
            if isinstance(other, BaseSparseNDArray):
                if other.stype != self.stype:
                    other._assign_dense(self._dense())
                else:
                    other._values = self._values.astype(other._values.dtype, copy=True)
                    other._aux = tuple(a.copy() for a in self._aux)
            else:
                other._data[...] = self._dense()
            return other
        return self._like(self._values.copy(), tuple(a.copy() for a in self._aux), ctx=as_context(other))

    def tostype(self, stype):
        _check_stype(stype, f"{type(self).__name__}.tostype")
        self._require_valid(f"tostype({stype!r})")
        if stype == self.stype:
            return self.copy()
        if stype == "default":
            return NDArray(self._dense(), self._ctx)
        # MXNet's cast_storage refuses these too; going through 'default' is explicit about the cost
        raise GraphcError(f"tostype: cast_storage from {self.stype} to {stype} is not supported (as in MXNet); "
                          f"use .tostype('default').tostype({stype!r})")

    def attach_grad(self, grad_req="write", stype=None):
        """A gradient buffer of storage `stype` (default: this array's own, as MXNet's). Operators
        without a sparse rule differentiate the dense form; backward() stores into the buffer in
        its storage type (_store_grad)."""
        if grad_req not in ("write", "add", "null"):
            raise ValueError(f"attach_grad: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        stype = stype or self.stype
        _check_stype(stype, f"{type(self).__name__}.attach_grad")
        from .sparse import zeros
        self._grad = zeros(stype, self._sshape, self._ctx, self._values.dtype)
        self._grad_req = grad_req
        self._entry = None

    def _inplace(self, kind, other):
        """x += y (and -=, *=, /=) on a sparse x: the result replaces x's stored parts, in x's
        storage type (MXNet keeps the left operand's storage)."""
        if autograd_recording_on(self):
            raise GraphcError(f"in-place {kind} on a {self.stype} array on the autograd tape: write `x = x op y`")
        result = self._binary(kind, other)
        if result.shape != self.shape:
            raise ShapeError(f"in-place {kind}: the result has shape {result.shape} but the {self.stype} array "
                             f"being updated has shape {self.shape}")
        if isinstance(result, BaseSparseNDArray) and result.stype == self.stype:
            self._values = result._values.astype(self._values.dtype, copy=False)
            self._aux = result._aux
        else:
            self._assign_dense(np.asarray(result._data))
        return self

    def __setitem__(self, key, value):
        # MXNet allows only x[:] = value on sparse arrays
        if not (isinstance(key, slice) and key == slice(None)):
            raise GraphcError(f"{type(self).__name__}: only x[:] = value is supported for assignment, got "
                              f"key {key!r}")
        if isinstance(value, BaseSparseNDArray):
            value.copyto(self)
        elif np.isscalar(value) and value == 0:    # x[:] = 0 (zero_grad): nothing stored
            zero = sparse_zeros_like(self)
            self._values, self._aux = zero._values, zero._aux
        else:
            v = value._data if isinstance(value, NDArray) else value
            self._assign_dense(np.broadcast_to(np.asarray(v, self._values.dtype), self.shape))

    def __repr__(self):
        name = "RowSparseNDArray" if self.stype == "row_sparse" else "CSRNDArray"
        return f"\n<{name} {'x'.join(map(str, self.shape))} @{self._ctx}>"

    def __reduce__(self):
        place = "cpu(0)" if self._ctx.device_type.startswith("cpu") else str(self._ctx)
        return (_unpickle_sparse, (self.stype, self._values, self._aux, self._sshape, place))

    # arithmetic keeps sparse storage where MXNet does (sparse_ops.binary)
    def _binary(self, kind, other, reverse=False):
        from . import sparse_ops
        self._require_valid(f"'{kind}'")
        if isinstance(other, BaseSparseNDArray):
            other._require_valid(f"'{kind}'")
        out = sparse_ops.binary(kind, self, other, reverse)
        return out if out is not NotImplemented else NDArray._binary(self, kind, other, reverse)

    def __neg__(self):
        from . import sparse_ops
        self._require_valid("negative")
        return sparse_ops.unary("negative", self)

    def __abs__(self):
        from . import sparse_ops
        self._require_valid("abs")
        return sparse_ops.unary("abs", self)

    def __getattr__(self, name):
        # x.sqrt(), x.sum(axis=0), x.retain(...): the sparse rule where there is one, else the
        # dense operator on the dense form (storage fallback)
        if not name.startswith("_"):
            from . import sparse_ops
            self._require_valid(f"{name}()")
            fn = sparse_ops.method(name)
            if fn is not None:
                return lambda *args, **kwargs: fn(self, *args, **kwargs)
        return NDArray.__getattr__(self, name)


class RowSparseNDArray(BaseSparseNDArray):
    """Rows `indices` of a (rows, ...) array hold `data`; all other rows are zero."""

    __slots__ = ()

    def __init__(self, data, indices, shape, ctx=None):
        data, indices, shape = _check_row_sparse(np.asarray(data), np.asarray(indices), shape)
        self._init_sparse(data, (indices,), shape, as_context(ctx) if ctx is not None else None)

    @property
    def stype(self):
        return "row_sparse"

    def _holds_every_row(self):
        # a weight held row_sparse (Parameter(stype='row_sparse')) stores all its rows: its values
        # are its dense form, so optimizers and initializers may write through _data
        idx = self._aux[0]
        n = self._sshape[0]
        return len(idx) == n and n > 0 and idx[0] == 0 and idx[-1] == n - 1 and self._values.flags.writeable

    def _dense(self):
        out = np.zeros(self._sshape, self._values.dtype)
        if len(self._aux[0]):
            out[self._aux[0]] = self._values
        return out

    def _assign_dense(self, dense):
        self._values, (indices,) = dense_to_row_sparse(dense.astype(self._values.dtype, copy=False))
        self._aux = (indices,)

    def retain(self, indices):
        from . import sparse_ops
        return sparse_ops.retain(self, indices)

    def _store_grad(self, g, req):
        """backward()'s write of gradient g: the rows g has ('write'), or merged in ('add')."""
        if isinstance(g, RowSparseNDArray):
            values, idx = g._values.astype(self._values.dtype, copy=True), g._aux[0].copy()
        else:
            values, (idx,) = dense_to_row_sparse(np.asarray(g._data, self._values.dtype))
        if req == "add":
            values, idx = merge_rows(self._values, self._aux[0], values, idx, np.add)
        self._values, self._aux = values, (idx,)

    def __getitem__(self, key):
        if isinstance(key, slice) and key == slice(None):
            return self
        return NDArray.__getitem__(self, key)


class PulledRows(RowSparseNDArray):
    """Rows of a row_sparse Parameter's weight, as Parameter.row_sparse_data returns them: the rows
    asked for, and, as in MXNet, the parameter's gradient (the weight's own .grad array and
    grad_req), so backward through them writes the gradient the Trainer reads, and marks the weight's
    gradient fresh. The weight itself stays whole (graphc's optimizers update it in place); the
    rows are a snapshot of it, so take them again after Trainer.step, as MXNet's pull does."""

    __slots__ = ("_source",)

    def __init__(self, weight, rows):
        rows = np.unique(np.asarray(rows, np.int64))
        values = np.asarray(weight._values)[np.searchsorted(weight._aux[0], rows)] if weight._holds_every_row() \
            else weight._dense()[rows]
        self._source = weight
        fresh = weight._fresh_grad
        self._init_sparse(np.ascontiguousarray(values), (rows,), weight.shape, weight._ctx)
        self._source._fresh_grad = fresh        # (_init_sparse clears the mark; taking rows must not)
        self._grad, self._grad_req = weight._grad, weight._grad_req

    # Trainer.step checks the weight's mark; backward sets the leaf's (these rows')
    _fresh_grad = property(lambda self: self._source._fresh_grad,
                           lambda self, flag: setattr(self._source, "_fresh_grad", flag))

    def _like(self, values, aux, shape=None, ctx=None):
        out = object.__new__(RowSparseNDArray)      # copies and results are ordinary arrays
        out._init_sparse(values, aux, shape or self._sshape, ctx or self._ctx)
        return out


class CSRNDArray(BaseSparseNDArray):
    """Compressed sparse rows of a 2-D array: data, indices (columns), indptr (row starts)."""

    __slots__ = ()

    def __init__(self, data, indices, indptr, shape, ctx=None):
        data, indices, indptr, shape = _check_csr(np.asarray(data), np.asarray(indices), np.asarray(indptr), shape)
        self._init_sparse(data, (indptr, indices), shape, as_context(ctx) if ctx is not None else None)

    @property
    def stype(self):
        return "csr"

    @property
    def indptr(self):
        return NDArray(self._aux[0].copy(), self._ctx)

    def _dense(self):
        out = np.zeros(self._sshape, self._values.dtype)
        indptr, indices = self._aux
        rows = np.repeat(np.arange(self._sshape[0]), np.diff(indptr))
        out[rows, indices] = self._values
        return out

    def _assign_dense(self, dense):
        self._values, indptr, indices = dense_to_csr(dense.astype(self._values.dtype, copy=False))
        self._aux = (indptr, indices)

    def _store_grad(self, g, req):
        """backward()'s write of gradient g into a csr buffer (attach_grad(stype='csr')): its nonzeros."""
        dense = np.asarray(g._data, self._values.dtype)
        self._assign_dense(dense + self._dense() if req == "add" else dense)

    def asscipy(self):
        import scipy.sparse as sp
        return sp.csr_matrix((self._values.copy(), self._aux[1].copy(), self._aux[0].copy()), shape=self._sshape)

    def __getitem__(self, key):
        """Rows: x[i] (a 1-row csr, as MXNet's) or x[a:b] (step 1); anything else reads the dense form."""
        from . import sparse_ops
        self._require_valid(f"x[{key!r}]")
        if isinstance(key, (int, np.integer)):
            begin = int(key) + (self._sshape[0] if key < 0 else 0)
            if not 0 <= begin < self._sshape[0]:
                raise IndexError(f"CSRNDArray: row {key} is out of range for shape {self._sshape}")
            return sparse_ops.slice_rows(self, begin=(begin,), end=(begin + 1,))
        if isinstance(key, slice) and key.step in (None, 1):
            begin, end, _ = key.indices(self._sshape[0])
            return sparse_ops.slice_rows(self, begin=(begin,), end=(max(begin, end),))
        return NDArray.__getitem__(self, key)


# -- conversions and checks ---------------------------------------------------------------------------
def dense_to_row_sparse(dense: np.ndarray):
    """(values, (indices,)) of the rows of `dense` holding a nonzero (MXNet's cast_storage)."""
    if dense.ndim == 0:
        raise ShapeError("tostype('row_sparse'): a 0-d array has no rows")
    keep = np.flatnonzero(dense.reshape(dense.shape[0], -1).any(axis=1)) if dense.size else \
        np.zeros(0, np.int64)
    return np.ascontiguousarray(dense[keep]), (keep.astype(np.int64),)


def dense_to_csr(dense: np.ndarray):
    """(values, indptr, indices) of the nonzeros of a 2-D array, row by row."""
    if dense.ndim != 2:
        raise ShapeError(f"tostype('csr'): csr storage is 2-D, the array has shape {dense.shape}")
    rows, cols = np.nonzero(dense)
    indptr = np.zeros(dense.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
    return np.ascontiguousarray(dense[rows, cols]), indptr, cols.astype(np.int64)


def from_dense(dense: np.ndarray, stype: str, ctx):
    if stype == "row_sparse":
        values, (indices,) = dense_to_row_sparse(dense)
        out = object.__new__(RowSparseNDArray)
        out._init_sparse(values, (indices,), dense.shape, ctx)
        return out
    values, indptr, indices = dense_to_csr(dense)
    out = object.__new__(CSRNDArray)
    out._init_sparse(values, (indptr, indices), dense.shape, ctx)
    return out


def merge_rows(values_a, idx_a, values_b, idx_b, combine):
    """Row-sparse a (op) b over the union of their rows: (values, indices), indices sorted.
    A row missing from one side counts as zeros there."""
    idx = np.union1d(idx_a, idx_b).astype(np.int64)
    dtype = np.result_type(values_a.dtype, values_b.dtype)
    left = np.zeros((len(idx),) + values_a.shape[1:], dtype)
    right = np.zeros_like(left)
    left[np.searchsorted(idx, idx_a)] = values_a
    right[np.searchsorted(idx, idx_b)] = values_b
    return combine(left, right), idx


def _check_row_sparse(data, indices, shape):
    shape = tuple(int(s) for s in shape)
    if indices.ndim != 1 or data.ndim < 1 or len(indices) != data.shape[0]:
        raise ShapeError(f"row_sparse_array: expected data (k, ...) and indices (k,), got data {data.shape} and "
                         f"indices {indices.shape}")
    if data.shape[1:] != shape[1:]:
        raise ShapeError(f"row_sparse_array: data rows have shape {data.shape[1:]} but the array shape {shape} "
                         f"needs rows of {shape[1:]}")
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        if not np.all(np.mod(indices, 1) == 0):
            raise GraphcError(f"row_sparse_array: indices must be whole numbers, got {indices}")
    indices = indices.astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= shape[0]):
        raise GraphcError(f"row_sparse_array: row indices must lie in [0, {shape[0]}), got {indices.tolist()}")
    if np.any(np.diff(indices) <= 0):
        order = np.argsort(indices, kind="stable")
        indices, data = indices[order], data[order]
        if np.any(np.diff(indices) == 0):
            raise GraphcError(f"row_sparse_array: row indices must be unique, got {np.sort(indices).tolist()}")
    return np.ascontiguousarray(data), indices, shape


def _check_csr(data, indices, indptr, shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ShapeError(f"csr_matrix: csr storage is 2-D, got shape {shape}")
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1:
        raise ShapeError(f"csr_matrix: data, indices and indptr must be 1-D, got {data.shape}, {indices.shape}, "
                         f"{indptr.shape}")
    if len(indptr) != shape[0] + 1:
        raise ShapeError(f"csr_matrix: indptr needs rows + 1 = {shape[0] + 1} entries, got {len(indptr)}")
    indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(data) or len(indices) != len(data):
        raise GraphcError(f"csr_matrix: indptr must start at 0, never decrease and end at nnz = {len(data)} "
                          f"(= len(indices) = {len(indices)}), got {indptr.tolist()}")
    if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
        raise GraphcError(f"csr_matrix: column indices must lie in [0, {shape[1]}), got {indices.tolist()}")
    return np.ascontiguousarray(data), indices, indptr, shape


def from_user_parts(cls, values, aux, shape, ctx):
    """A sparse array from the parts a user gave (row_sparse_array((data, indices)),
    csr_matrix((data, indices, indptr))). As in MXNet, parts whose lengths agree are accepted even
    when their values are not a valid array (an index out of range, a decreasing indptr, row
    indices unsorted or repeated); check_format() then raises, naming the problem. Parts that
    still describe a dense array (row indices in range but unsorted) are stored in canonical form
    and compute as that array; the others are kept as given and refuse to compute."""
    values, aux = np.asarray(values), tuple(np.asarray(a) for a in aux)
    if cls is CSRNDArray and aux[0].ndim == 1 and values.ndim == 1 and len(aux[0]) != len(values):
        raise ShapeError(f"csr_matrix: data and indices must have the same length, got {len(values)} values "
                         f"and {len(aux[0])} column indices")
    try:
        out = cls(values, *aux, shape, ctx)
    except ShapeError:
        raise
    except GraphcError as exc:
        out = object.__new__(cls)
        kept = tuple(a.astype(np.int64) if np.issubdtype(a.dtype, np.number) else a for a in aux)
        out._init_sparse(np.ascontiguousarray(values), kept if cls is RowSparseNDArray else kept[::-1], shape,
                         as_context(ctx) if ctx is not None else None)
        out._invalid = (str(exc).split(": ", 1)[-1], False)
        return out
    if cls is RowSparseNDArray and np.any(np.diff(aux[0].astype(np.int64)) <= 0):
        out._invalid = (f"row_sparse indices must be sorted and unique, got {aux[0].tolist()}", True)
    return out


def autograd_recording_on(x) -> bool:
    from .. import autograd
    return autograd.is_recording() and (x._entry is not None or x._grad_req != "null")


def sparse_zeros_like(x):
    if isinstance(x, RowSparseNDArray):
        return x._like(x._values[:0].copy(), (np.zeros(0, np.int64),))
    return x._like(x._values[:0].copy(), (np.zeros(x.shape[0] + 1, np.int64), np.zeros(0, np.int64)))


def _unpickle_sparse(stype, values, aux, shape, ctx):
    cls = RowSparseNDArray if stype == "row_sparse" else CSRNDArray
    out = object.__new__(cls)
    out._init_sparse(np.asarray(values), tuple(np.asarray(a) for a in aux), shape, as_context(ctx))
    return out
