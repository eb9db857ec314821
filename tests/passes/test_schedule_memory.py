"""schedule_for_memory: same nodes, a valid order, the same results, a smaller arena where
reductions of large values were left at the end (autodiff's parameter gradients)."""
import importlib.util
import os

import numpy as np
from hypothesis import HealthCheck, given, settings

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import check_plan, plan_memory
from graphc.passes.schedule_memory import schedule_for_memory

_spec = importlib.util.spec_from_file_location(
    "graph_strategies", os.path.join(os.path.dirname(__file__), "..", "runtime", "graph_strategies.py"))
graph_strategies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph_strategies)


def _late_sums(layers=6, rows=256, cols=512):
    """A chain of large values h_i, each also summed to a small output, with every sum emitted
    after the whole chain (the order autodiff gives parameter gradients)."""
    gb = GraphBuilder("late_sums")
    F = gb.F
    h = gb.var("x", TensorType((rows, cols)))
    hs = []
    for _ in range(layers):
        h = F.tanh(F._mul_scalar(h, scalar=0.9))
        hs.append(h)
    sums = [F.sum(v, axis=0) for v in hs]
    return gb.build([h] + sums)


def _positions(graph):
    return {id(n): i for i, n in enumerate(graph.nodes)}


def _assert_valid_reorder(before, after):
    assert sorted(map(id, before.nodes)) == sorted(map(id, after.nodes))
    assert after.inputs == before.inputs and after.outputs == before.outputs
    pos = _positions(after)
    for n in after.nodes:
        for v in n.inputs:
            assert pos[id(v.node)] < pos[id(n)], f"{n.name} runs before its input {v.node.name}"
    verify(after, check_inference=False)


def test_late_reductions_move_up_and_the_arena_shrinks():
    g = fuse_elementwise(_late_sums())
    s = schedule_for_memory(g)
    _assert_valid_reorder(g, s)
    before, after = plan_memory(g), plan_memory(s)
    check_plan(s, after)
    big = 256 * 512 * 4
    # unscheduled: all six chain values live until the sums at the end
    assert before.arena_size["cpu(0)"] >= 5 * big
    # scheduled: each sum runs right after its value; at most two chain values live at once
    assert after.arena_size["cpu(0)"] <= 2 * big + 4096
    # the interpreter runs unfused graphs: the same reordering there computes the same values
    g0 = _late_sums()
    s0 = schedule_for_memory(g0)
    _assert_valid_reorder(g0, s0)
    x = np.random.default_rng(0).uniform(-1, 1, (256, 512)).astype(np.float32)
    want = interpret(g0, [x])
    for a, b in zip(want, interpret(s0, [x])):
        np.testing.assert_array_equal(a, b)
    # and the compiled program (compile_graph schedules) matches the reference
    from graphc.compiler import compile_graph
    got = compile_graph(g0, cache=False)([x])
    for a, b in zip(want, got):
        np.testing.assert_allclose(np.asarray(b), a, rtol=1e-5, atol=1e-5)


def test_a_graph_with_nothing_to_gain_is_returned_as_is():
    gb = GraphBuilder("chain")
    F = gb.F
    x = gb.var("x", TensorType((8, 8)))
    g = gb.build([F.sum(F.exp(F.tanh(x)), axis=0)])
    assert schedule_for_memory(g) is g


def test_random_nodes_keep_their_place_and_order():
    """Moving a random op would change which numbers it draws from the program's stream."""
    gb = GraphBuilder("rand")
    F = gb.F
    x = gb.var("x", TensorType((64, 64)))
    h = F.tanh(x)
    r1 = F._random_uniform(shape=(64, 64))
    h2 = F.exp(h)
    r2 = F._random_normal(shape=(64, 64))
    late = F.sum(h, axis=0)              # would move up, past r1
    g = gb.build([F.broadcast_add(h2, F.broadcast_add(r1, r2)), late])
    s = schedule_for_memory(g)
    _assert_valid_reorder(g, s)
    rand = [n for n in s.nodes if n.op.startswith("_random")]
    assert [n.op for n in rand] == ["_random_uniform", "_random_normal"]
    before, after = _positions(g), _positions(s)
    moved = [n.name for n in g.nodes if before[id(n)] != after[id(n)]]
    assert moved, "the sum should have moved up"
    # a random node only shifts as others move past it; its neighbours among random nodes stay
    assert after[id(rand[0])] < after[id(rand[1])]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_strategies.random_graphs(max_ops=10))
def test_random_graphs_reorder_validly_and_compute_the_same(case):
    g, arrays = case
    for graph in (g, fuse_elementwise(g)):
        s = schedule_for_memory(graph)
        _assert_valid_reorder(graph, s)
        plan = plan_memory(s)
        check_plan(s, plan)
        if graph is g:       # the interpreter runs unfused graphs
            for a, b in zip(interpret(graph, arrays), interpret(s, arrays)):
                np.testing.assert_array_equal(a, b)
