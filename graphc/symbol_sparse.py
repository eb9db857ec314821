"""graphc.sym.sparse (and F.sparse inside a hybridized hybrid_forward): MXNet 1.9.1's symbolic
twins of the nd.sparse functions.

A compiled graph holds dense values only (ndarray/sparse_arrays.py says why), so each function
builds the dense operator whose result equals the sparse one's: storage types are a property
of eager arrays, not of graph values. Most names are operators of the same name; the others:

    retain(data, indices)      rows of data whose index is in `indices`, zeros elsewhere
                               (where(row listed, data, 0), the listed rows marked by index_copy)
    cast_storage(data, stype)  a copy (the storage type is checked, then has no effect)
    dot(..., forward_stype)    dot (forward_stype is checked, then has no effect)

adagrad_update has no dense operator in graphc (its sparse kernel writes the history in place),
so it raises, naming the eager nd.sparse.adagrad_update. Variables keep MXNet's storage-type
attribute: sym.var(name, stype='row_sparse') records __storage_type__ (symbol.py)."""
from __future__ import annotations

from .ops.errors import GraphcError
from .ops.registry import has_op

STYPES = ("default", "row_sparse", "csr")

# MXNet 1.9.1's dir(mxnet.symbol.sparse), public names
MXNET_NAMES = (
    "ElementWiseSum", "Embedding", "FullyConnected", "LinearRegressionOutput", "LogisticRegressionOutput",
    "MAERegressionOutput", "abs", "adagrad_update", "adam_update", "add_n", "arccos", "arccosh", "arcsin",
    "arcsinh", "arctan", "arctanh", "broadcast_add", "broadcast_div", "broadcast_minus", "broadcast_mul",
    "broadcast_plus", "broadcast_sub", "cast_storage", "cbrt", "ceil", "clip", "concat", "cos", "cosh",
    "degrees", "dot", "elemwise_add", "elemwise_div", "elemwise_mul", "elemwise_sub", "exp", "expm1", "fix",
    "floor", "ftrl_update", "gamma", "gammaln", "log", "log10", "log1p", "log2", "make_loss", "mean",
    "negative", "norm", "radians", "relu", "retain", "rint", "round", "rsqrt", "sgd_mom_update", "sgd_update",
    "sigmoid", "sign", "sin", "sinh", "slice", "sqrt", "square", "stop_gradient", "sum", "tan", "tanh",
    "trunc", "where", "zeros_like")


def _check_stype(stype, what):
    if stype not in STYPES:
        raise GraphcError(f"sym.sparse.{what}: storage type must be one of {STYPES}, got {stype!r}")


class SparseSymbolFunctions:
    """`sym.sparse.<name>`: MXNet's sparse symbol functions over an operator namespace."""

    def __init__(self, namespace):
        self._ns = namespace

    def retain(self, data, indices, name=None, **kw):
        ns = self._ns
        # keep[r] = 1 for the rows listed (index_copy of ones into zeros: O(rows + indices) memory)
        rows = ns._contrib_arange_like(data, axis=0)                           # (n,), for its shape
        zeros = ns.Reshape(ns.Cast(ns.zeros_like(rows), dtype="float32"), shape=(-1, 1))
        ones = ns.Reshape(ns.Cast(ns.ones_like(indices), dtype="float32"), shape=(-1, 1))
        keep = ns.Reshape(ns._contrib_index_copy(zeros, indices, ones), shape=(-1,))
        return ns.where(keep, data, ns.zeros_like(data), name=name)

    def cast_storage(self, data, stype, name=None, **kw):
        _check_stype(stype, "cast_storage")
        return self._ns._copy(data, name=name)

    def dot(self, lhs, rhs, transpose_a=False, transpose_b=False, forward_stype=None, name=None, **kw):
        if forward_stype is not None:
            _check_stype(forward_stype, "dot")
        return self._ns.dot(lhs, rhs, transpose_a=transpose_a, transpose_b=transpose_b, name=name, **kw)

    def adagrad_update(self, *args, **kwargs):
        raise GraphcError("sym.sparse.adagrad_update: not available in a graph (MXNet's sparse kernel updates "
                          "the history input in place); call nd.sparse.adagrad_update eagerly")

    def __getattr__(self, name):
        if name.startswith("_") or name not in MXNET_NAMES or not has_op(name):
            raise AttributeError(f"module 'graphc.symbol.sparse' has no attribute {name!r} (MXNet 1.9.1's "
                                 "sym.sparse functions are listed by dir(graphc.sym.sparse))")
        return getattr(self._ns, name)

    def __dir__(self):
        return sorted(MXNET_NAMES)
