"""merge_summed_gemms: sums of products over one contraction layout become one product over
concatenated operands, with the same value (float64: to rounding)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.merge_gemms import merge_summed_gemms


def ops_of(g, *names):
    return sorted(n.op for n in g.op_nodes() if n.op in names)


def check_same(g, m, seed=0):
    verify(m)
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=n.types[0].shape) for n in g.inputs]
    for a, b in zip(interpret(g, arrays), interpret(m, arrays)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ta,tb", [(True, False), (False, True), (False, False), (True, True)])
def test_a_chain_of_products_becomes_one_product(ta, tb):
    b = GraphBuilder("sum")
    F = b.F
    m, n, ks = 3, 4, [2, 5, 1, 3]
    total = None
    for i, k in enumerate(ks):
        a = b.var(f"a{i}", TensorType((k, m) if ta else (m, k), "float64"))
        w = b.var(f"b{i}", TensorType((n, k) if tb else (k, n), "float64"))
        p = F.dot(a, w, transpose_a=ta, transpose_b=tb)
        total = p if total is None else total + p
    extra = b.var("c", TensorType((m, n), "float64"))
    g = b.build([F.exp(total + extra)])
    merged = merge_summed_gemms(g)
    assert ops_of(merged, "dot") == ["dot"]
    assert ops_of(merged, "Concat") == ["Concat", "Concat"]
    check_same(g, merged)


def test_products_that_are_used_elsewhere_or_differ_in_layout_stay():
    b = GraphBuilder("keep")
    F = b.F
    x = [b.var(f"x{i}", TensorType((3, 3), "float64")) for i in range(6)]
    p0 = F.dot(x[0], x[1])
    p1 = F.dot(x[2], x[3])
    p2 = F.dot(x[4], x[5], transpose_a=True)          # another layout: a group of its own (of one)
    g = b.build([p0 + p1 + p2, F.sum(p0)])           # p0 has a second user: kept as it is
    merged = merge_summed_gemms(g)
    assert len(ops_of(merged, "dot")) == 3 and ops_of(merged, "Concat") == []
    check_same(g, merged)


def test_shared_intermediate_sums_are_not_absorbed():
    b = GraphBuilder("shared")
    F = b.F
    x = [b.var(f"x{i}", TensorType((2, 2), "float64")) for i in range(6)]
    s1 = F.dot(x[0], x[1]) + F.dot(x[2], x[3])
    g = b.build([s1 + F.dot(x[4], x[5]), F.exp(s1)])   # s1 is read twice: its products merge inside it
    merged = merge_summed_gemms(g)
    check_same(g, merged)
    assert len(ops_of(merged, "dot")) == 2


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=1, max_size=6), st.integers(1, 4),
       st.integers(1, 4))
def test_random_sums_of_products(terms, m, n):
    b = GraphBuilder("rand")
    F = b.F
    total = None
    for i, (k, ta) in enumerate(terms):
        a = b.var(f"a{i}", TensorType((k, m) if ta else (m, k), "float64"))
        w = b.var(f"b{i}", TensorType((k, n), "float64"))
        p = F.dot(a, w, transpose_a=ta)
        total = p if total is None else (total + p if i % 2 else p + total)
    g = b.build([total * 2.0])
    check_same(g, merge_summed_gemms(g))


def test_unrolled_lstm_weight_gradients_become_few_large_products():
    from graphc import autograd, gluon, nd
    net = gluon.rnn.LSTM(8, num_layers=1, layout="TNC")
    net.initialize()
    net.hybridize()
    x = nd.array(np.random.default_rng(0).random((6, 3, 4)).astype(np.float32))
    with autograd.record():
        y = net(x)
    y.backward()
    (entry,) = net._cached_op.last.train.values()
    bwd = entry[4]
    merged = merge_summed_gemms(bwd)
    assert len(ops_of(merged, "dot")) < len(ops_of(bwd, "dot")) / 2
    verify(merged)


def test_a_sum_thousands_of_products_long_merges_without_recursion():
    b = GraphBuilder("long")
    F = b.F
    w = b.var("w", TensorType((3, 2), "float64"))
    total = None
    for i in range(1500):
        x = b.var(f"x{i}", TensorType((1, 3), "float64"))
        p = F.dot(x, w)
        total = p if total is None else total + p
    g = b.build([total])
    merged = merge_summed_gemms(g)
    assert ops_of(merged, "dot") == ["dot"]
    check_same(g, merged)
