"""Memory planning: liveness, in-place reuse, views, arena packing, and the checker that proves
no two live values share bytes."""
import importlib.util
import os

import pytest
from hypothesis import given, settings, HealthCheck

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.memory_plan import ALIGN, MemoryPlanError, Placement
from graphc.ops.types import TensorType
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory, check_plan

_spec = importlib.util.spec_from_file_location(
    "graph_strategies", os.path.join(os.path.dirname(__file__), "..", "runtime", "graph_strategies.py"))
graph_strategies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph_strategies)


def _chain():
    gb = GraphBuilder("chain")
    F = gb.F
    x = gb.var("x", TensorType((64, 32)))
    w = gb.var("w", TensorType((16, 32)), "param")
    a = F.FullyConnected(x, w, no_bias=True, num_hidden=16)   # arena
    b = F.exp(F.sum(a, axis=1, keepdims=True))                # arena
    c = F.broadcast_mul(a, b)                                 # a dies here: may reuse a
    d = F.tanh(c)
    e = F.FullyConnected(d, w, no_bias=True, num_hidden=16) if False else F.sum(d, axis=0)
    return gb.build([e])


def test_inplace_reuse_never_aliases_a_live_value():
    g = _chain()
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.inplace, "broadcast_mul over a dying input should run in place"
    for step, ik, ok in plan.inplace:
        assert plan.live[ik][1] == step == plan.live[ok][0]


def test_graph_inputs_and_outputs_never_live_in_the_arena():
    g = _chain()
    plan = plan_memory(g)
    assert plan.placement(g.outputs[0]).kind == "output"
    assert plan.placements[(id(g.inputs[0]), 0)].kind == "input"
    for p in plan.placements.values():
        if p.kind == "arena":
            assert p.offset % ALIGN == 0


def test_views_share_their_input_storage():
    gb = GraphBuilder("v")
    F = gb.F
    x = gb.var("x", TensorType((4, 8)))
    a = F.exp(x)
    r = F.Reshape(a, shape=(32,))
    y = F.sum(r)
    g = gb.build([y])
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.placement(r.value) == Placement("arena", 0, plan.placement(a.value).offset, 128)


def test_a_corrupted_plan_is_caught():
    g = _chain()
    plan = plan_memory(g, inplace=False)
    arena = [(k, p) for k, p in plan.placements.items() if p.kind == "arena"]
    assert len(arena) >= 2
    # move every arena value to offset 0: values live at the same time now collide
    for k, p in arena:
        plan.placements[k] = Placement("arena", 0, 0, p.nbytes, p.device)
    with pytest.raises(MemoryPlanError, match="live at the same time"):
        check_plan(g, plan)


def test_misaligned_offset_is_caught():
    g = _chain()
    plan = plan_memory(g)
    k, p = next((k, p) for k, p in plan.placements.items() if p.kind == "arena")
    plan.placements[k] = Placement("arena", 0, p.offset + 4, p.nbytes, p.device)
    with pytest.raises(MemoryPlanError):
        check_plan(g, plan)


def test_disjoint_lifetimes_share_the_arena():
    gb = GraphBuilder("seq")
    F = gb.F
    x = gb.var("x", TensorType((1024,)))
    v = x
    for _ in range(6):
        v = F.sum(F.Reshape(F.exp(v), shape=(32, 32)), axis=0)
        v = F.broadcast_add(F.Reshape(v, shape=(1, 32)), F.Reshape(x, shape=(32, 32)))
        v = F.Reshape(v, shape=(1024,))
    g = gb.build([F.sum(v)])
    plan = plan_memory(g)
    check_plan(g, plan)
    total = sum(n.types[0].nbytes for n in plan.steps)
    assert plan.arena_size["cpu(0)"] < total / 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_strategies.random_graphs(max_ops=10))
def test_random_graph_plans_pass_the_checker(case):
    g, _ = case
    for graph in (g, fuse_elementwise(g)):
        verify(graph, check_inference=False)
        plan = plan_memory(graph)
        check_plan(graph, plan)
