"""split_batch_sums: the sums over the batch of a graph traced per micro-batch run once on the
rows put back together, and that equals the whole-batch graph; anything that mixes rows before
a sum, or needs a sum per row, stays per micro-batch."""
import numpy as np

import graphc as mx
from graphc.ops.interpret import interpret
from graphc.passes.batch_sums import ROWS, SHARED, SUMMED, classify, split_batch_sums


def _weight_grads(rows, centred=False):
    """What a Dense layer's backward computes from dy (rows x 5) and x (rows x 3): the weight
    and bias gradients (sums over rows) and the input gradient (per row)."""
    dy, x = mx.sym.var("dy", shape=(rows, 5)), mx.sym.var("x", shape=(rows, 3))
    w = mx.sym.var("w", shape=(5, 3))
    if centred:                     # a per-row value that depends on every row (BatchNorm-like)
        dy = mx.sym.broadcast_sub(dy, mx.sym.sum(dy, axis=0, keepdims=True) / rows)
    gw = mx.sym.dot(dy, x, transpose_a=True)
    gb = mx.sym.sum(dy, axis=0)
    gx = mx.sym.dot(dy, w)
    return mx.sym.Group([gw, gb * 0.5, gx])._graph()


def _inputs(graph, rows, seed):
    rng = np.random.default_rng(seed)
    return {n.name: rng.standard_normal(n.types[0].shape).astype(np.float32) for n in graph.inputs}


def test_weight_and_bias_gradients_run_once_on_the_whole_batch_and_equal_it():
    small, large = _weight_grads(2), _weight_grads(6)
    cut = split_batch_sums(small, large)
    assert cut is not None
    assert cut.outputs == [("whole", 0), ("whole", 1), ("rows", 0)]
    whole_in = _inputs(large, 6, 0)
    parts = [{k: (v[2 * m:2 * m + 2] if k != "w" else v) for k, v in whole_in.items()} for m in range(3)]
    row_results = [interpret(cut.rows, [p[n.name] for n in cut.rows.inputs]) for p in parts]
    feed = []
    for src in cut.sources:
        if src[0] == "output":
            feed.append(np.concatenate([r[src[1]] for r in row_results]))
        else:
            name = cut.rows.inputs[src[1]].name
            feed.append(whole_in[name] if src[2] else parts[0][name])
    got = interpret(cut.whole, feed)
    want = interpret(large, [whole_in[n.name] for n in large.inputs])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([r[0] for r in row_results]), want[2], rtol=1e-5, atol=1e-6)


def test_a_sum_feeding_a_per_row_value_keeps_everything_per_micro_batch():
    assert split_batch_sums(_weight_grads(2, centred=True), _weight_grads(6, centred=True)) is None


def test_classification_of_rows_sums_and_shared_values():
    g = _weight_grads(6)
    kinds = classify(g, {id(n) for n in g.inputs if n.name in ("dy", "x")})
    by_op = {}
    for n in g.nodes:
        by_op.setdefault(n.op, set()).add(kinds[id(n)])
    assert kinds[id(g.input_by_name("w"))] == SHARED
    assert by_op["sum"] == {SUMMED} and by_op["_mul_scalar"] == {SUMMED}
    assert by_op["dot"] == {SUMMED, ROWS}


def test_graphs_traced_differently_are_not_cut():
    small = _weight_grads(2)
    other = mx.sym.Group([mx.sym.sum(mx.sym.var("dy", shape=(6, 5)), axis=0)])._graph()
    assert split_batch_sums(small, other) is None
