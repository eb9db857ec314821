"""Hypothesis strategies for random graphs over elementwise, reduction, view and GEMM operators
(shared by the memory-plan and executor property tests)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType

UNARY = ["relu", "tanh", "sigmoid", "exp", "negative", "abs", "square", "sqrt"]
BINARY = ["broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_maximum"]
REDUCE = ["sum", "mean", "max"]


@st.composite
def random_graphs(draw, max_ops=8, dtype="float32"):
    """(graph, list of input arrays) with 1..max_ops operators and random 1-3-D shapes."""
    gb = GraphBuilder("random")
    F = gb.F
    base = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    n_in = draw(st.integers(1, 3))
    values = []
    for i in range(n_in):
        shape = base if i == 0 else draw(st.sampled_from([base, base[-1:], (1,) * len(base)]))
        values.append(gb.var(f"x{i}", TensorType(shape, dtype)))
    inputs = list(values)
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "scalar", "reduce", "gemm", "view"]))
        a = draw(st.sampled_from(values))
        if kind == "unary":
            op = draw(st.sampled_from(UNARY))
            if op in ("sqrt",):
                a = F.abs(a)
            if op == "exp":
                a = F.tanh(a)
            v = getattr(F, op)(a)
        elif kind == "binary":
            b = draw(st.sampled_from(values))
            try:
                v = getattr(F, draw(st.sampled_from(BINARY)))(a, b)
            except Exception:
                continue
        elif kind == "scalar":
            v = a * draw(st.sampled_from([0.5, -2.0])) + 1.0
        elif kind == "reduce":
            if len(a.shape) == 0:
                continue
            axis = draw(st.sampled_from([None] + list(range(len(a.shape)))))
            v = getattr(F, draw(st.sampled_from(REDUCE)))(a, axis=axis, keepdims=draw(st.booleans()))
        elif kind == "view":
            v = F.Reshape(a, shape=(-1,))
        else:
            if len(a.shape) != 2:
                a = F.Reshape(a, shape=(1, -1))
            n = draw(st.integers(1, 4))
            w = gb.var(f"w{len(inputs)}", TensorType((n, a.shape[1]), dtype), "param")
            inputs.append(w)
            v = F.FullyConnected(a, w, no_bias=True, num_hidden=n)
        values.append(v)
    k = draw(st.integers(1, min(2, len(values) - n_in) if len(values) > n_in else 1))
    outs = values[-k:] if len(values) > n_in else values[:1]
    graph = gb.build(list(outs))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arrays = [rng.standard_normal(n.types[0].shape).astype(dtype) for n in graph.inputs]
    return graph, arrays
