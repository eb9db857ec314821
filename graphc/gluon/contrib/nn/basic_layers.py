"""Containers that run every child on the same input and join the outputs (Concurrent,
HybridConcurrent: Inception-style branches), Identity (the skip branch of such a block), and
SparseEmbedding.

SparseEmbedding is MXNet's embedding for huge vocabularies: its gradient is row_sparse (only
the rows looked up exist), so a lazy optimizer touches only those rows. Its weight is declared
row_sparse as in MXNet, and graphc holds it dense (parameter.py says why).
"""
from __future__ import annotations

from ...block import Block
from ...nn import HybridSequential, Identity, Sequential

__all__ = ["Concurrent", "HybridConcurrent", "Identity", "SparseEmbedding"]


def _run_branches(F, children, x, axis):
    outputs = [block(x) for block in children]
    return F.concat(*outputs, dim=axis)


class Concurrent(Sequential):
    """Feeds x to every child and concatenates their outputs along `axis` (default the last)."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    def forward(self, x):
        from .... import ndarray
        return _run_branches(ndarray, self._children.values(), x, self.axis)


class HybridConcurrent(HybridSequential):
    """Concurrent whose children are HybridBlocks: compiles as one graph when hybridized."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    def hybrid_forward(self, F, x):
        return _run_branches(F, self._children.values(), x, self.axis)


class SparseEmbedding(Block):
    """Rows of weight (input_dim, output_dim) for the integer indices in x; a Block, as in MXNet
    (its forward runs eagerly), with a row_sparse gradient."""

    def __init__(self, input_dim, output_dim, dtype="float32", weight_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {"input_dim": input_dim, "output_dim": output_dim, "dtype": dtype}
        self.weight = self.params.get("weight", shape=(input_dim, output_dim), init=weight_initializer,
                                      dtype=dtype, grad_stype="row_sparse", stype="row_sparse")

    def forward(self, x):
        from ....ndarray import sparse
        # as MXNet's, the rows come through the Trainer: without one row_sparse_data raises
        self.weight.row_sparse_data(x)
        held = self.weight._check_and_get(self.weight._data, x.context)
        return sparse.embedding(x, held, name="fwd", **self._kwargs)

    def __repr__(self):
        k = self._kwargs
        return f"{self.__class__.__name__}({k['input_dim']} -> {k['output_dim']}, {k['dtype']})"
