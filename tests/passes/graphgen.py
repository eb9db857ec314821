"""Hypothesis strategies that draw random typed graphs from elementwise, reduction, shape and
GEMM operators — shared by the pass tests (and usable by backend tests)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType

UNARY = ["exp", "tanh", "sigmoid", "relu", "negative", "square", "abs", "sin", "softsign", "erf"]
BINARY = ["broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_maximum", "broadcast_minimum"]
SCALAR = ["_plus_scalar", "_mul_scalar", "_minus_scalar", "_rminus_scalar", "_maximum_scalar"]
REDUCE = ["sum", "mean", "max"]


@st.composite
def random_graphs(draw, max_ops=8, dtype="float32"):
    """-> (graph, input arrays). Values stay in a tame range so float comparisons are meaningful."""
    b = GraphBuilder("random")
    rows = draw(st.integers(1, 5))
    cols = draw(st.integers(1, 6))
    n_inputs = draw(st.integers(1, 3))
    values = []
    arrays = []
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    for i in range(n_inputs):
        shape = draw(st.sampled_from([(rows, cols), (rows, 1), (1, cols), (cols,)]))
        values.append(b.var(f"x{i}", TensorType(shape, dtype)))
        arrays.append(rng.uniform(-1, 1, shape).astype(dtype))
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["unary", "binary", "scalar", "reduce", "gemm", "reshape"]))
        x = draw(st.sampled_from(values))
        if kind == "unary":
            values.append(getattr(b.F, draw(st.sampled_from(UNARY)))(x))
        elif kind == "scalar":
            values.append(getattr(b.F, draw(st.sampled_from(SCALAR)))(x, scalar=draw(st.sampled_from([0.0, 1.0, 0.5, -2.0]))))
        elif kind == "binary":
            y = draw(st.sampled_from(values))
            try:
                values.append(getattr(b.F, draw(st.sampled_from(BINARY)))(x, y))
            except Exception:
                continue
        elif kind == "reduce" and x.ndim >= 1:
            axis = draw(st.sampled_from([None, 0, -1]))
            keep = draw(st.booleans())
            values.append(getattr(b.F, draw(st.sampled_from(REDUCE)))(x, axis=axis, keepdims=keep))
        elif kind == "gemm" and x.ndim == 2:
            k = x.shape[1]
            n = draw(st.integers(1, 4))
            w = b.const(rng.uniform(-1, 1, (n, k)).astype(dtype))
            values.append(b.F.FullyConnected(x, w, num_hidden=n, no_bias=True))
        elif kind == "reshape":
            values.append(b.F.Reshape(x, shape=(-1,)))
    n_out = draw(st.integers(1, min(3, len(values))))
    outputs = values[-n_out:]
    return b.build(outputs), arrays
