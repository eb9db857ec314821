"""Operators on sparse arrays that keep sparse storage, with MXNet 1.9.1's result storage types
(recorded from MXNet in tests/compat/mxnet_sparse_reference.json):

    a + b, a - b       row_sparse (op) row_sparse -> row_sparse (union of rows), csr (op) csr -> csr;
                       with a dense side or a scalar -> dense
    a * b              sparse * same-stype sparse -> that stype (row_sparse: union of rows, as MXNet;
                       csr: the common entries); sparse * dense of the
                       same shape -> the sparse side's stype; sparse * or / scalar -> sparse
    a == s, a > s, ...   sparse when 0 (op) s is False (y > 0, y == 1, y != 0), else dense
    elemwise_mul       as a * b, whichever side is sparse
    dot                csr . dense -> dense, csr^T . dense -> row_sparse (the csr's columns),
                       dense . csr -> csr, csr . row_sparse -> dense; other pairs: dense fallback
    retain             row_sparse: exactly the rows asked for (zeros where none was stored); slice: csr rows (and columns) -> csr
    sum / mean         of a csr without densifying; results dense, as MXNet's
    zero-preserving unary ops (sqrt, square, abs, relu, sign, ...) keep the storage type

Everything else is MXNet's storage fallback: the dense form through the dense operator (recorded
by autograd like any operator). The sparse rules run eagerly and autograd records two of them:
`dot`, whose gradient goes to its dense side (csr . W gives W a row_sparse gradient), and
`embedding`, whose weight gradient is row_sparse; the others give sparse arrays no gradient
(MXNet's sparse arrays take none either)."""
from __future__ import annotations

import numbers

import numpy as np

from .. import autograd
from ..ops.errors import GraphcError, ShapeError
from .ndarray import NDArray, array, invoke
from .sparse_arrays import (BaseSparseNDArray, CSRNDArray, RowSparseNDArray, from_dense, merge_rows,
                            sparse_zeros_like)

# unary operators with f(0) == 0: applied to the stored values, the storage type stays
ZERO_PRESERVING = {
    "abs": np.abs, "sign": np.sign, "round": np.round, "rint": np.rint, "ceil": np.ceil, "floor": np.floor,
    "trunc": np.trunc, "fix": np.fix, "square": np.square, "sqrt": np.sqrt, "sin": np.sin, "tan": np.tan,
    "arcsin": np.arcsin, "arctan": np.arctan, "sinh": np.sinh, "tanh": np.tanh, "arcsinh": np.arcsinh,
    "arctanh": np.arctanh, "degrees": np.degrees, "radians": np.radians, "expm1": np.expm1, "log1p": np.log1p,
    "relu": lambda v: np.maximum(v, 0), "negative": np.negative, "cbrt": np.cbrt,
}


def tracked(*xs) -> bool:
    """Whether autograd must see this operation: recording, and an input on the tape. The sparse
    rules are not recorded, so such an operation takes the dense path instead (dense result,
    MXNet's values, and a gradient)."""
    return autograd.is_recording() and any(isinstance(x, NDArray) and autograd.needs_grad(x) for x in xs)


def _with_values(x, values):
    return x._like(values.astype(x._values.dtype, copy=False), tuple(a.copy() for a in x._aux))


def unary(name, x):
    fn = ZERO_PRESERVING[name]
    if isinstance(x, BaseSparseNDArray) and not tracked(x):
        return _with_values(x, fn(x._values))
    return invoke(name, [x], {})


def clip(data, a_min, a_max):
    """clip keeps sparse storage when 0 lies in [a_min, a_max] (MXNet's rule); else dense."""
    if isinstance(data, BaseSparseNDArray) and a_min <= 0 <= a_max and not tracked(data):
        return _with_values(data, np.clip(data._values, a_min, a_max))
    return invoke("clip", [data], {"a_min": a_min, "a_max": a_max})


# -- element-wise binary ------------------------------------------------------------------------------
def _coords(x: CSRNDArray):
    indptr, indices = x._aux
    rows = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(indptr))
    return rows * x.shape[1] + indices      # linear positions, sorted (rows, then columns)


def _csr_from_linear(lin, values, shape, ctx):
    rows = lin // shape[1]
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    out = object.__new__(CSRNDArray)
    out._init_sparse(np.ascontiguousarray(values), (indptr, (lin % shape[1]).astype(np.int64)), shape, ctx)
    return out


def _same_sparse(kind, a, b):
    """a (kind) b for two sparse arrays of one storage type and shape."""
    if isinstance(a, RowSparseNDArray):
        ia, ib = a._aux[0], b._aux[0]
        if kind in ("add", "sub"):
            values, idx = merge_rows(a._values, ia, b._values, ib, np.add if kind == "add" else np.subtract)
        else:       # MXNet keeps the union of the rows here too (rows on one side only are zeros)
            values, idx = merge_rows(a._values, ia, b._values, ib, np.multiply)
        return a._like(values, (idx,))
    la, lb = _coords(a), _coords(b)
    if kind in ("add", "sub"):
        lin = np.union1d(la, lb)
        left = np.zeros(len(lin), np.result_type(a._values, b._values))
        right = np.zeros_like(left)
        left[np.searchsorted(lin, la)] = a._values
        right[np.searchsorted(lin, lb)] = b._values
        values = left + right if kind == "add" else left - right
    else:
        lin = np.intersect1d(la, lb)
        values = a._values[np.searchsorted(la, lin)] * b._values[np.searchsorted(lb, lin)]
    return _csr_from_linear(lin, values, a.shape, a._ctx)


def _sparse_times_dense(s, dense: np.ndarray):
    """s * dense (same shape): only s's stored entries can be nonzero."""
    if isinstance(s, RowSparseNDArray):
        return _with_values(s, s._values * dense[s._aux[0]])
    rows = np.repeat(np.arange(s.shape[0]), np.diff(s._aux[0]))
    return _with_values(s, s._values * dense[rows, s._aux[1]])


# x (op) scalar, for the comparisons that keep sparse storage when 0 (op) scalar is False
_COMPARISONS = {"eq": np.equal, "ne": np.not_equal, "gt": np.greater, "ge": np.greater_equal, "lt": np.less,
                "le": np.less_equal}


def binary(kind, a, b, reverse=False):
    """`a (kind) b` with a sparse (b on the left when reverse); NotImplemented means the dense
    operator on the dense forms gives MXNet's answer."""
    if tracked(a, b):
        return NotImplemented
    if isinstance(b, numbers.Number) or (isinstance(b, np.generic) and np.ndim(b) == 0):
        if kind == "mul" or (kind == "truediv" and not reverse):
            return _with_values(a, a._values * b if kind == "mul" else a._values / b)
        compare = _COMPARISONS.get(kind)
        if compare is not None and not reverse and not compare(0, b):
            # the unstored zeros compare False: only the stored values can give 1 (MXNet keeps the storage)
            return _with_values(a, compare(a._values, b).astype(a._values.dtype))
        return NotImplemented
    if not isinstance(b, NDArray) or b.shape != a.shape or kind not in ("add", "sub", "mul"):
        return NotImplemented
    if isinstance(b, BaseSparseNDArray):
        if b.stype != a.stype:
            return NotImplemented
        return _same_sparse(kind, b, a) if reverse else _same_sparse(kind, a, b)
    if kind == "mul" and not reverse:
        return _sparse_times_dense(a, np.asarray(b._data))
    return NotImplemented


def _elementwise(kind, lhs, rhs, dense_op):
    if isinstance(lhs, BaseSparseNDArray):
        out = binary(kind, lhs, rhs)
    elif isinstance(rhs, BaseSparseNDArray) and kind == "mul":
        out = binary(kind, rhs, lhs)        # elemwise_mul(dense, sparse) is sparse in MXNet
    else:
        out = NotImplemented
    if out is NotImplemented:
        return invoke(dense_op, [lhs, rhs], {})
    return out


def elemwise_add(lhs, rhs):
    return _elementwise("add", lhs, rhs, "elemwise_add")


def elemwise_sub(lhs, rhs):
    return _elementwise("sub", lhs, rhs, "elemwise_sub")


def elemwise_mul(lhs, rhs):
    return _elementwise("mul", lhs, rhs, "elemwise_mul")


def add(lhs, rhs):
    return _elementwise("add", lhs, rhs, "broadcast_add")


def subtract(lhs, rhs):
    return _elementwise("sub", lhs, rhs, "broadcast_sub")


def multiply(lhs, rhs):
    return _elementwise("mul", lhs, rhs, "broadcast_mul")


def divide(lhs, rhs):
    if isinstance(lhs, BaseSparseNDArray) and isinstance(rhs, numbers.Number):
        return lhs / rhs        # sparse / scalar stays sparse (dense while autograd tracks it)
    return invoke("broadcast_div", [lhs, rhs], {})      # MXNet: dense, even for sparse / dense


# -- dot ----------------------------------------------------------------------------------------------
def _segment_sums(contrib, starts, n_out_rows, keys):
    """Sum consecutive rows of contrib into out rows `keys` (segments begin at `starts`)."""
    out = np.zeros((n_out_rows,) + contrib.shape[1:], contrib.dtype)
    if len(starts):
        out[keys] = np.add.reduceat(contrib, starts, axis=0)
    return out


def _csr_dot_dense(a: CSRNDArray, b: np.ndarray):
    indptr, cols = a._aux
    vec = b.ndim == 1
    rhs = b[:, None] if vec else b
    contrib = a._values[:, None].astype(np.result_type(a._values, rhs)) * rhs[cols]
    nonempty = np.flatnonzero(np.diff(indptr))
    out = _segment_sums(contrib, indptr[:-1][nonempty], a.shape[0], nonempty)
    return out[:, 0] if vec else out


def _csr_t_dot_dense(a: CSRNDArray, b: np.ndarray):
    """a^T . b as row_sparse: rows of the result are the columns a stores."""
    indptr, cols = a._aux
    vec = b.ndim == 1
    rhs = b[:, None] if vec else b
    rows = np.repeat(np.arange(a.shape[0]), np.diff(indptr))
    order = np.argsort(cols, kind="stable")
    contrib = a._values[order, None].astype(np.result_type(a._values, rhs)) * rhs[rows[order]]
    sorted_cols = cols[order]
    idx, starts = np.unique(sorted_cols, return_index=True)
    values = np.add.reduceat(contrib, starts, axis=0) if len(starts) else contrib[:0]
    shape = (a.shape[1],) + rhs.shape[1:]
    if vec:
        return NDArray(_segment_sums(contrib, starts, a.shape[1], idx)[:, 0], a._ctx)
    out = object.__new__(RowSparseNDArray)
    out._init_sparse(np.ascontiguousarray(values), (idx.astype(np.int64),), shape, a._ctx)
    return out


def dot(lhs, rhs, transpose_a=False, transpose_b=False, forward_stype=None):
    """MXNet's sparse dot (see the module docstring for the storage types)."""
    if forward_stype not in (None, "default", "row_sparse", "csr"):
        raise GraphcError(f"dot: forward_stype must be None, 'default', 'row_sparse' or 'csr', got {forward_stype!r}")
    out = _sparse_dot(lhs, rhs, transpose_a, transpose_b)
    if out is None:
        out = invoke("dot", [lhs, rhs], {"transpose_a": transpose_a, "transpose_b": transpose_b})
    elif autograd.is_recording():
        _record_dot(lhs, rhs, out, transpose_a)
    if forward_stype is not None and out.stype != forward_stype:
        out = out.tostype(forward_stype)
    return out


def _record_dot(lhs, rhs, out, transpose_a):
    """The gradient of a sparse dot with respect to its dense side (the sparse side gets none,
    as in MXNet): csr . W gives W the row_sparse csr^T . g, the rows of W that met a value."""
    sparse_left = isinstance(lhs, CSRNDArray)
    dense = rhs if sparse_left else lhs
    if not isinstance(dense, NDArray) or not autograd.needs_grad(dense):
        return

    def backward(F, ins, outs, ograds):
        g = ograds[0]
        if sparse_left:
            return [None, dot(lhs, g, transpose_a=not transpose_a)]
        return [invoke("dot", [g, rhs], {"transpose_b": True}), None]      # d(A . C)/dA = g . C^T
    autograd.record_custom([lhs, rhs], [out], backward, "dot")


def _sparse_dot(lhs, rhs, transpose_a, transpose_b):
    if isinstance(lhs, CSRNDArray) and not transpose_b and not isinstance(rhs, CSRNDArray):
        b = np.asarray(rhs._data if isinstance(rhs, NDArray) else rhs)
        inner = lhs.shape[0] if transpose_a else lhs.shape[1]
        if b.ndim not in (1, 2) or b.shape[0] != inner:
            raise ShapeError(f"dot: csr lhs {lhs.shape}{' (transposed)' if transpose_a else ''} and rhs {b.shape}: "
                             f"rhs needs {inner} rows")
        if transpose_a:
            return _csr_t_dot_dense(lhs, b)
        return NDArray(_csr_dot_dense(lhs, b), lhs._ctx)
    if isinstance(rhs, CSRNDArray) and not isinstance(lhs, BaseSparseNDArray) and not (transpose_a or transpose_b):
        a = np.asarray(lhs._data)
        if a.ndim != 2 or a.shape[1] != rhs.shape[0]:
            raise ShapeError(f"dot: dense lhs {a.shape} and csr rhs {rhs.shape}: lhs needs {rhs.shape[0]} columns")
        # (a . c) = (c^T . a^T)^T: the same kernel, one transpose of a dense result
        dense = _csr_t_dot_dense(rhs, np.ascontiguousarray(a.T)).asnumpy().T
        return from_dense(np.ascontiguousarray(dense), "csr", rhs._ctx)
    return None


# -- structure ------------------------------------------------------------------------------------------
def retain(data, indices=None, **kw):
    """The rows of a row_sparse array whose index is in `indices` (MXNet's sparse.retain)."""
    kw.pop("name", None)
    if kw or indices is None:
        got = f"unknown argument(s) {sorted(kw)}" if kw else "no indices"
        raise GraphcError(f"retain: takes data and indices, got {got}")
    if not isinstance(data, RowSparseNDArray):
        raise GraphcError(f"retain: expects a row_sparse array, got storage {getattr(data, 'stype', type(data))!r}")
    ids = np.unique(np.asarray(indices._data if isinstance(indices, NDArray) else indices).astype(np.int64).ravel())
    if ids.size and (ids[0] < 0 or ids[-1] >= data.shape[0]):
        raise GraphcError(f"retain: row indices must lie in [0, {data.shape[0]}), got {ids.tolist()}")
    # MXNet's result holds every requested row: the stored ones, and zeros for the others
    values = np.zeros((len(ids),) + data._values.shape[1:], data._values.dtype)
    present = np.isin(ids, data._aux[0])
    values[present] = data._values[np.searchsorted(data._aux[0], ids[present])]
    return data._like(values, (ids,))


def slice_rows(data, begin, end, step=None):
    """csr: rows begin[0]:end[0] (and columns begin[1]:end[1]) as csr; others: the dense slice."""
    if not isinstance(data, CSRNDArray) or (step is not None and any(s not in (None, 1) for s in step)) or \
            tracked(data):
        return invoke("slice", [data], {"begin": begin, "end": end, "step": step or ()})
    rows, cols = data.shape
    r0, r1 = _bounds(begin, end, 0, rows)
    c0, c1 = _bounds(begin, end, 1, cols) if len(begin) > 1 else (0, cols)
    indptr, indices = data._aux
    lo, hi = indptr[r0], indptr[r1]
    values, col, ptr = data._values[lo:hi], indices[lo:hi], indptr[r0:r1 + 1] - lo
    if (c0, c1) != (0, cols):
        keep = (col >= c0) & (col < c1)
        rows = np.repeat(np.arange(r1 - r0), np.diff(ptr))
        counts = np.bincount(rows[keep], minlength=r1 - r0)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        values, col = values[keep], col[keep] - c0
    out = object.__new__(CSRNDArray)
    out._init_sparse(values.copy(), (ptr.astype(np.int64), col.astype(np.int64).copy()), (r1 - r0, c1 - c0),
                     data._ctx)
    return out


def _bounds(begin, end, axis, n):
    b = begin[axis] if axis < len(begin) and begin[axis] is not None else 0
    e = end[axis] if axis < len(end) and end[axis] is not None else n
    b, e = (b + n if b < 0 else b), (e + n if e < 0 else e)
    if not 0 <= b <= e <= n:
        raise ShapeError(f"slice: [{begin[axis] if axis < len(begin) else None}, "
                         f"{end[axis] if axis < len(end) else None}) is out of range for axis {axis} of size {n}")
    return b, e


def reduce_sum(data, axis=None, keepdims=False, exclude=False, **kw):
    """A csr's sum over rows, columns or all without densifying; otherwise the dense sum."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis) if axis is not None else None
    if not isinstance(data, CSRNDArray) or exclude or (axes is not None and len(axes) != 1) or tracked(data):
        return invoke("sum", [data], {"axis": axis, "keepdims": keepdims, "exclude": exclude, **kw})
    indptr, cols = data._aux
    values = data._values
    if axes is None:
        out = np.array([values.sum()], values.dtype)
        return NDArray(out.reshape(1, 1) if keepdims else out, data._ctx)
    ax = axes[0] % 2
    if ax == 0:
        out = np.bincount(cols, weights=values, minlength=data.shape[1]).astype(values.dtype)
    else:
        nonempty = np.flatnonzero(np.diff(indptr))
        out = _segment_sums(values, indptr[:-1][nonempty], data.shape[0], nonempty)
    if keepdims:
        out = out.reshape((1, -1) if ax == 0 else (-1, 1))
    return NDArray(out, data._ctx)


def mean(data, axis=None, keepdims=False, exclude=False, **kw):
    if not isinstance(data, CSRNDArray) or tracked(data):
        return invoke("mean", [data], {"axis": axis, "keepdims": keepdims, "exclude": exclude, **kw})
    total = reduce_sum(data, axis, keepdims, exclude, **kw)
    count = data.size if axis is None else data.shape[axis if isinstance(axis, int) else axis[0]]
    return NDArray((total._data / count).astype(data._values.dtype), data._ctx)


def zeros_like(data):
    if isinstance(data, BaseSparseNDArray):
        return sparse_zeros_like(data)
    return invoke("zeros_like", [data], {})


def cast_storage(data, stype):
    return data.tostype(stype)


# -- the embedding with a row_sparse weight gradient -----------------------------------------------------
def embedding(data, weight, input_dim, output_dim, dtype="float32", sparse_grad=True, name=None):
    """weight[data] whose weight gradient is row_sparse: the rows looked up (sorted, each once),
    each the sum of its output gradients, as MXNet's Embedding(sparse_grad=True). Eager only: a
    hybridized block traces the dense Embedding (see gluon/nn/norm_layers.py's Embedding)."""
    if not sparse_grad:
        return invoke("Embedding", [data, weight], {"input_dim": input_dim, "output_dim": output_dim,
                                                    "dtype": dtype}, name)
    from ..ops.declarations.slicing import fix_indices
    if not isinstance(data, NDArray):
        data = array(data)
    if weight.shape != (input_dim, output_dim):
        raise ShapeError(f"Embedding: weight has shape {weight.shape}, expected ({input_dim}, {output_dim}) "
                         f"(indices {data.shape})")
    raw = np.asarray(data._data)
    rows = fix_indices(raw, input_dim)
    out = NDArray(np.ascontiguousarray(np.asarray(weight._data)[rows]), weight._ctx)
    if autograd.is_recording() and autograd.needs_grad(weight):
        def backward(F, ins, outs, ograds):
            bad = raw[(raw < 0) | (raw >= input_dim)]
            if bad.size:     # the forward clips; MXNet's sparse backward refuses such an index
                raise GraphcError(f"Embedding{f' {name!r}' if name else ''} (sparse_grad=True): index "
                                  f"{bad.ravel()[0]} is out of range [0, {input_dim}); the row_sparse gradient "
                                  "needs every index in range (as MXNet's)")
            g = np.asarray(ograds[0]._data).reshape(-1, output_dim)
            idx, inverse = np.unique(rows.ravel(), return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            starts = np.searchsorted(inverse[order], np.arange(len(idx)))
            values = np.add.reduceat(g[order], starts, axis=0) if len(idx) else g[:0].copy()
            grad = object.__new__(RowSparseNDArray)
            grad._init_sparse(values, (idx.astype(np.int64),), weight.shape, weight._ctx)
            return [None, grad]
        autograd.record_custom([data, weight], [out], backward, name or "Embedding")
    return out


# -- methods of sparse arrays (x.sqrt(), x.retain(...)) -------------------------------------------------
from .sparse_indexing import take  # noqa: E402  (csr rows stay csr)

_METHODS = {"take": take, "retain": retain, "slice": slice_rows, "sum": reduce_sum, "mean": mean, "zeros_like": zeros_like, "dot": dot,
            "clip": clip, "elemwise_add": elemwise_add, "elemwise_sub": elemwise_sub, "elemwise_mul": elemwise_mul}


def dispatch(op_name, inputs, attrs):
    """The sparse rule for the operator `op_name` called on these inputs (nd.take(csr, idx)), or
    NotImplemented where MXNet's storage fallback applies: the caller then runs the dense operator."""
    if op_name == "take" and len(inputs) == 2:
        from .sparse_indexing import take_csr_rows
        return take_csr_rows(inputs[0], inputs[1], attrs.get("axis", 0), attrs.get("mode", "clip"))
    return NotImplemented


def method(name):
    if name in ZERO_PRESERVING:
        return lambda x: unary(name, x)
    return _METHODS.get(name)
