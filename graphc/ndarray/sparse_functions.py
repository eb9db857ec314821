"""The rest of MXNet 1.9.1's nd.sparse namespace: the functions beyond sparse_ops.py's sparse
rules, with MXNet's result storage types.

    add_n / ElementWiseSum   all row_sparse -> row_sparse (the union of the rows); else dense
    concat                   csr along dim 0 -> csr; else dense
    broadcast_mul / _div     csr (op) a dense row or column vector -> csr (only stored entries
                             can be nonzero); else dense
    stop_gradient, make_loss keep the storage type (a copy), dense while autograd tracks them
    sgd_update, sgd_mom_update, adam_update (lazy_update=True), adagrad_update
                             with a row_sparse gradient: MXNet's lazy update, only the rows the
                             gradient stores change in the weight and its states (written in
                             place, out= is the weight); else the dense operator
    everything else          (exp, log, sigmoid, FullyConnected, where, norm, ftrl_update on a
                             dense weight, ...) MXNet's storage fallback: the dense operator on
                             the dense forms, a dense result

The lazy rows run through the dense operator itself on the gathered rows, so there is one
formula per update rule (ops/ declares it); adagrad_update has no dense operator in MXNet (its
only kernel is the sparse one) and is written out here."""
from __future__ import annotations

import numpy as np

from ..ops.errors import GraphcError, ShapeError
from .ndarray import NDArray, _NAMESPACE
from .sparse_arrays import BaseSparseNDArray, CSRNDArray, RowSparseNDArray, merge_rows
from .sparse_ops import tracked

# MXNet's nd.sparse names answered by the dense operator of the same name (storage fallback)
DENSE_FALLBACK = ("FullyConnected", "LinearRegressionOutput", "LogisticRegressionOutput", "MAERegressionOutput",
                  "arccos", "arccosh", "broadcast_add", "broadcast_sub", "broadcast_plus", "broadcast_minus", "cos",
                  "cosh", "elemwise_div", "exp", "gamma", "gammaln", "log", "log10", "log2", "norm", "rsqrt",
                  "sigmoid", "where", "ftrl_update")


def dense_fallback(name):
    op = getattr(_NAMESPACE, name)

    def fn(*args, **kwargs):
        return op(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"{name} on the dense forms of its inputs (MXNet's storage fallback): a dense result."
    return fn


def _sparse_inputs(arrays):
    return any(isinstance(a, BaseSparseNDArray) for a in arrays)


def add_n(*args, **kwargs):
    """The sum of the arrays: row_sparse when all are row_sparse (the union of their rows)."""
    arrays = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    if arrays and all(isinstance(a, RowSparseNDArray) for a in arrays) and not tracked(*arrays):
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise ShapeError(f"add_n: every array needs shape {shape}, got {[a.shape for a in arrays]}")
        values, idx = arrays[0]._values, arrays[0]._aux[0]
        for a in arrays[1:]:
            values, idx = merge_rows(values, idx, a._values, a._aux[0], np.add)
        return arrays[0]._like(np.ascontiguousarray(values), (idx,))
    return _NAMESPACE.add_n(*arrays, **kwargs)


ElementWiseSum = add_n


def concat(*args, dim=1, **kwargs):
    """Concatenation: csr arrays along dim 0 give a csr (their rows one after another)."""
    arrays = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    if dim == 0 and arrays and all(isinstance(a, CSRNDArray) for a in arrays) and not tracked(*arrays):
        cols = arrays[0].shape[1]
        if any(a.shape[1] != cols for a in arrays):
            raise ShapeError(f"concat: csr arrays along dim 0 need {cols} columns each, got "
                             f"{[a.shape for a in arrays]}")
        values = np.concatenate([a._values for a in arrays])
        indices = np.concatenate([a._aux[1] for a in arrays]).astype(np.int64)
        offsets = np.cumsum([0] + [len(a._values) for a in arrays[:-1]])
        indptr = np.concatenate([[0]] + [a._aux[0][1:] + off for a, off in zip(arrays, offsets)]).astype(np.int64)
        rows = sum(a.shape[0] for a in arrays)
        return arrays[0]._like(values, (indptr, indices), shape=(rows, cols))
    return _NAMESPACE.concat(*arrays, dim=dim, **kwargs)


def _broadcast_csr(kind, lhs, rhs, dense_name, **kwargs):
    """csr (op) a dense vector broadcast over rows or columns stays csr (MXNet's rule)."""
    if isinstance(lhs, CSRNDArray) and isinstance(rhs, NDArray) and not isinstance(rhs, BaseSparseNDArray) \
            and not tracked(lhs, rhs):
        r = np.asarray(rhs._data)
        rows, cols = lhs.shape
        if r.ndim == 2 and r.shape in ((1, cols), (rows, 1), (1, 1)):
            row_of = np.repeat(np.arange(rows), np.diff(lhs._aux[0]))
            picked = np.broadcast_to(r, lhs.shape)[row_of, lhs._aux[1]]
            values = lhs._values * picked if kind == "mul" else lhs._values / picked
            return lhs._like(values.astype(lhs._values.dtype), tuple(a.copy() for a in lhs._aux))
    return getattr(_NAMESPACE, dense_name)(lhs, rhs, **kwargs)


def broadcast_mul(lhs, rhs, **kwargs):
    return _broadcast_csr("mul", lhs, rhs, "broadcast_mul", **kwargs)


def broadcast_div(lhs, rhs, **kwargs):
    return _broadcast_csr("div", lhs, rhs, "broadcast_div", **kwargs)


def _identity_keeping_storage(name):
    def fn(data, **kwargs):
        if isinstance(data, BaseSparseNDArray) and not tracked(data):
            return data.copy()
        return getattr(_NAMESPACE, name)(data, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"{name}: the values unchanged, in the input's storage type (MXNet's)."
    return fn


stop_gradient = _identity_keeping_storage("stop_gradient")
make_loss = _identity_keeping_storage("make_loss")


# -- optimizer updates with a row_sparse gradient ---------------------------------------------------------
def _writable_rows(weight, what):
    data = weight._data
    if not data.flags.writeable:
        raise GraphcError(f"{what}: the weight is a row_sparse array without every row stored; MXNet's update "
                          "needs all rows of a row_sparse weight (store them, e.g. tostype('default')."
                          "tostype('row_sparse') of a nonzero weight, or use a dense weight)")
    return data


def _lazy(op_name, weight, grad, states, attrs, out):
    """Run the dense update `op_name` on the rows `grad` stores, in place on weight and states."""
    target = weight if out is None else out
    if target is not weight:
        raise GraphcError(f"{op_name}: with a row_sparse gradient out= must be the weight (MXNet updates in place)")
    if grad.shape != weight.shape:
        raise ShapeError(f"{op_name}: gradient shape {grad.shape} differs from weight shape {weight.shape}")
    w = _writable_rows(weight, op_name)
    rows = grad._aux[0]
    held = [_writable_rows(s, op_name) for s in states]
    w_rows = NDArray(w[rows], weight.context)
    s_rows = [NDArray(h[rows], s.context) for h, s in zip(held, states)]
    g_rows = NDArray(grad._values.astype(w.dtype, copy=False), grad.context)
    new = getattr(_NAMESPACE, op_name)(w_rows, g_rows, *s_rows, **attrs)
    w[rows] = new._data
    for h, part in zip(held, s_rows):      # the dense operator updated the gathered states in place
        h[rows] = part._data
    return weight


def _update(op_name, n_states):
    def fn(weight, grad, *states, out=None, lazy_update=True, **attrs):
        states = states[:n_states]
        if isinstance(grad, RowSparseNDArray) and lazy_update:
            return _lazy(op_name, weight, grad, states, attrs, out)
        return getattr(_NAMESPACE, op_name)(weight, grad, *states, out=out, lazy_update=lazy_update, **attrs)
    fn.__name__ = op_name
    fn.__doc__ = (f"{op_name}; with a row_sparse gradient only the rows it stores are updated (MXNet's lazy "
                  "update), in place on the weight and its states.")
    return fn


sgd_update = _update("sgd_update", 0)
sgd_mom_update = _update("sgd_mom_update", 1)
adam_update = _update("adam_update", 2)


def adagrad_update(weight, grad, history, lr, epsilon=1e-7, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, out=None,
                   name=None):
    """MXNet's sparse adagrad_update (its only kernel: the gradient must be row_sparse), on the
    gradient's rows, in place on weight and history:
        g = clip(rescale_grad * grad);  history += g^2;  weight -= lr * g / (sqrt(history) + epsilon)"""
    if not isinstance(grad, RowSparseNDArray):
        raise GraphcError(f"adagrad_update: the gradient must be row_sparse (MXNet has only the sparse kernel), "
                          f"got storage {grad.stype!r}")
    if wd != 0:
        raise GraphcError(f"adagrad_update: weight decay is not supported with a row_sparse gradient (wd={wd}), "
                          "as MXNet's sparse kernel")
    if out is not None and out is not weight:
        raise GraphcError("adagrad_update: out= must be the weight (the update is in place)")
    if grad.shape != weight.shape or history.shape != weight.shape:
        raise ShapeError(f"adagrad_update: weight {weight.shape}, grad {grad.shape} and history {history.shape} "
                         "must have one shape")
    w, h = _writable_rows(weight, "adagrad_update"), _writable_rows(history, "adagrad_update")
    rows = grad._aux[0]
    g = grad._values.astype(w.dtype) * w.dtype.type(rescale_grad)
    if clip_gradient is not None and clip_gradient >= 0:
        g = np.clip(g, -clip_gradient, clip_gradient)
    h[rows] += g * g
    w[rows] -= w.dtype.type(lr) * g / (np.sqrt(h[rows]) + w.dtype.type(epsilon))
    return weight


def names():
    """{name: function} of this module's nd.sparse functions."""
    out = {name: dense_fallback(name) for name in DENSE_FALLBACK}
    out.update({"add_n": add_n, "ElementWiseSum": ElementWiseSum, "concat": concat, "broadcast_mul": broadcast_mul,
                "broadcast_div": broadcast_div, "stop_gradient": stop_gradient, "make_loss": make_loss,
                "sgd_update": sgd_update, "sgd_mom_update": sgd_mom_update, "adam_update": adam_update,
                "adagrad_update": adagrad_update})
    return out

