"""fold_onehot_sums: sum over the classes of onehot(index) * v becomes an (N, 1) expression, with
exactly the summed form's values for every index and v (out-of-range, non-integer and NaN
indices, infinite and NaN v), and a softmax cross-entropy backward compiles to one data pass."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.fold_onehot_sum import fold_onehot_sums


def onehot_sum_graph(rows, n, axis, keepdims, index_dtype="float32", dtype="float32", swap=False, cast=False,
                     clipped=False):
    """sum_axis(broadcast_equal(index, arange(n)) * v), the shape pick's gradient gives it."""
    b = GraphBuilder("g")
    F = b.F
    along = (1, n) if axis == 1 else (n, 1)
    col = (rows, 1) if axis == 1 else (1, rows)
    i = b.var("i", TensorType(col, index_dtype))
    v = b.var("v", TensorType(col, dtype))
    pos = b.const(np.arange(n, dtype=index_dtype).reshape(along))
    if clipped:                                   # as pick's gradient clips: range tests implied
        i = F.clip(i, a_min=0.0, a_max=float(n - 1))
    hot = F.broadcast_equal(pos, i) if swap else F.broadcast_equal(i, pos)
    if cast or index_dtype != dtype:
        hot = F.Cast(hot, dtype=dtype)
    prod = F.broadcast_mul(v, hot) if swap else F.broadcast_mul(hot, v)
    return b.build([F.sum(prod, axis=axis, keepdims=keepdims), prod])


_INDEX_VALUES = st.sampled_from([0.0, 1.0, 2.0, 3.0, 6.0, -1.0, 7.0, 100.0, 2.5, -0.5, np.nan, np.inf])
_V_VALUES = st.one_of(st.floats(-2.0 ** 100, 2.0 ** 100, width=32), st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -0.0]))


@given(rows=st.integers(1, 5), n=st.integers(1, 7), axis=st.sampled_from([0, 1]), keepdims=st.booleans(),
       swap=st.booleans(), cast=st.booleans(), clipped=st.booleans(), data=st.data())
def test_folded_sum_equals_the_summed_one_hot(rows, n, axis, keepdims, swap, cast, clipped, data):
    g = onehot_sum_graph(rows, n, axis, keepdims, swap=swap, cast=cast, clipped=clipped)
    folded = fold_onehot_sums(g)
    verify(folded)
    assert [n_.op for n_ in folded.op_nodes() if n_.op == "sum"] == []
    shape = g.inputs[0].types[0].shape
    i = np.array(data.draw(st.lists(_INDEX_VALUES, min_size=rows, max_size=rows)), np.float32).reshape(shape)
    v = np.array(data.draw(st.lists(_V_VALUES, min_size=rows, max_size=rows)), np.float32).reshape(shape)
    with np.errstate(all="ignore"):
        want, got = interpret(g, [i, v]), interpret(folded, [i, v])
    for w, o in zip(want, got):
        assert w.shape == o.shape and w.dtype == o.dtype
        np.testing.assert_array_equal(o, w)      # NaN positions included


def test_integer_index_and_float64_values_fold():
    g = onehot_sum_graph(4, 5, 1, True, index_dtype="int32", dtype="float64")
    folded = fold_onehot_sums(g)
    assert not any(n.op == "sum" for n in folded.op_nodes())
    i = np.array([[0], [4], [5], [-1]], np.int32)
    v = np.array([[1.5], [-2.0], [3.0], [4.0]])
    np.testing.assert_array_equal(interpret(folded, [i, v])[0], [[1.5], [-2.0], [0.0], [0.0]])


def test_sums_that_are_not_over_a_one_hot_stay():
    b = GraphBuilder("g")
    F = b.F
    i = b.var("i", TensorType((3, 1), "float32"))
    v = b.var("v", TensorType((3, 1), "float32"))
    off = b.const(np.arange(1, 6, dtype="float32").reshape(1, 5))        # 1..5, not 0..4
    hot = F.broadcast_equal(i, off)
    both = F.broadcast_mul(hot, v)
    g = b.build([F.sum(both, axis=1, keepdims=True), F.sum(both, axis=0, keepdims=True)])
    assert fold_onehot_sums(g) is g or [n.op for n in fold_onehot_sums(g).op_nodes()].count("sum") == 2
