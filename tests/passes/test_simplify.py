"""Cleanup passes preserve meaning (property tests over random graphs) and do their one job."""
import numpy as np
from hypothesis import given

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.pipeline import SIMPLIFY, Pipeline
from graphc.passes.simplify import (eliminate_common_subexpressions, eliminate_dead_code,
                                    fold_constants, simplify_algebra)

from graphgen import random_graphs


@given(random_graphs())
def test_simplify_pipeline_preserves_results(case):
    graph, arrays = case
    want = interpret(graph, arrays)
    got = interpret(SIMPLIFY(graph, check=True), arrays)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@given(random_graphs())
def test_every_pass_alone_keeps_the_graph_valid(case):
    graph, arrays = case
    for p in (eliminate_dead_code, eliminate_common_subexpressions, fold_constants, simplify_algebra):
        verify(p(graph))


def test_dead_code_is_removed_but_inputs_stay():
    b = GraphBuilder()
    x = b.var("x", TensorType((2,)))
    unused = b.var("unused", TensorType((3,)))
    b.F.exp(x)  # dead
    y = b.F.tanh(x)
    g = eliminate_dead_code(b.build([y]))
    assert [n.op for n in g.op_nodes()] == ["tanh"]
    assert [n.name for n in g.inputs] == ["x", "unused"]


def test_common_subexpressions_merge_but_random_ops_do_not():
    b = GraphBuilder()
    x = b.var("x", TensorType((2,)))
    y = b.F.exp(x) + b.F.exp(x)
    r = b.F._random_uniform(shape=(2,)) + b.F._random_uniform(shape=(2,))
    g = eliminate_common_subexpressions(b.build([y, r]))
    ops = [n.op for n in g.op_nodes()]
    assert ops.count("exp") == 1 and ops.count("_random_uniform") == 2


def test_constants_fold_and_identities_vanish():
    b = GraphBuilder()
    x = b.var("x", TensorType((3,)))
    c = b.F.exp(b.const(np.zeros(3, np.float32))) * 2.0   # folds to [2, 2, 2]
    y = (x * 1.0 + 0.0) * c
    z = b.F.Reshape(y, shape=(3,))
    g = SIMPLIFY(b.build([z]), check=True)
    assert [n.op for n in g.op_nodes()] == ["broadcast_mul"]
    np.testing.assert_allclose(interpret(g, [np.ones(3, np.float32)])[0], [2, 2, 2])


def test_scalar_multiplications_combine():
    b = GraphBuilder()
    x = b.var("x", TensorType((3,)))
    g = simplify_algebra(b.build([(x * 2.0) * 3.0]))
    (node,) = g.op_nodes()
    assert node.op == "_mul_scalar" and node.attrs["scalar"] == 6.0


def test_pipeline_prints_after_each_pass(capsys):
    b = GraphBuilder("dumped")
    x = b.var("x", TensorType((3,)))
    Pipeline([eliminate_dead_code, simplify_algebra])(b.build([x * 1.0]), dump="simplify_algebra")
    err = capsys.readouterr().err
    assert "-- after simplify_algebra --" in err and "graph dumped" in err
    assert "eliminate_dead_code" not in err
