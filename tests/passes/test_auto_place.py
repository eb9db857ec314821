"""Automatic placement from the cost model: on a chain of layers whose costs are known from their
widths, the split's bottleneck is within 10% of the best balanced contiguous split (found by
brute force) and crosses no more bytes than it; every device stays within its memory budget;
and on random graphs every node is placed, copies sit only at the cuts, values only move to later
devices, and the partitioned graph computes what the original computes."""
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

import graphc as mx
from graphc.device_memory import DeviceMemoryError, program_need
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.partitioned import plan_stages
from graphc.passes.auto_place import MAX_CUTS, auto_place, place
from graphc.passes.cost_model import graph_costs, node_bytes, node_flops
from graphc.passes.partition import COPY, check_partition, node_device, partition_devices

from graphgen import random_graphs

BATCH = 4
WIDTHS = [96, 512, 48, 1024, 24, 640, 200, 64, 384, 16]


def _chain(widths, batch=BATCH, n_in=128):
    """FullyConnected + relu layers of the given widths -> (graph, known cost of each op node)."""
    h = mx.sym.var("data", shape=(batch, n_in))
    known = {}
    for k, n in enumerate(widths):
        w = mx.sym.var(f"fc{k}_weight", shape=(n, n_in))
        b = mx.sym.var(f"fc{k}_bias", shape=(n,))
        h = mx.sym.FullyConnected(h, w, b, num_hidden=n, name=f"fc{k}")
        known[f"fc{k}"] = 2.0 * batch * n_in * n + batch * n      # multiply-adds and the bias
        h = mx.sym.Activation(h, act_type="relu", name=f"relu{k}")
        known[f"relu{k}"] = float(batch * n)
        n_in = n
    return h._graph(), known


def _cut_bytes(graph, device_of):
    """Bytes a placement copies: each value once per other device that reads it."""
    moved = set()
    for node in graph.op_nodes():
        for v in node.inputs:
            src = device_of.get(v.node.name)
            if not v.node.is_const and src is not None and src != device_of[node.name]:
                moved.add((v.node.name, v.index, device_of[node.name], v.type.nbytes))
    return sum(m[3] for m in moved)


def _best_balanced(graph, known, n_dev):
    """Brute force over every contiguous split of the op order into n_dev (possibly empty)
    segments: the smallest bottleneck, and the fewest bytes crossing among splits reaching it."""
    order = graph.op_nodes()
    n = len(order)
    best = (float("inf"), float("inf"))
    for cuts in itertools.combinations_with_replacement(range(n + 1), n_dev - 1):
        bounds = (0,) + cuts + (n,)
        loads = [sum(known[x.name] for x in order[a:b]) for a, b in zip(bounds, bounds[1:])]
        device_of = {}
        for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
            for x in order[a:b]:
                device_of[x.name] = f"cpu({k})"
        best = min(best, (max(loads), _cut_bytes(graph, device_of)))
    return best


def test_flops_come_from_the_operator_declarations():
    graph, known = _chain([8, 3], batch=5, n_in=7)
    for node in graph.op_nodes():
        assert node_flops(node) == known[node.name], node.name
        assert node_bytes(node) == 4 * node.types[0].size
    costs = graph_costs(graph)
    assert costs["total"].flops == sum(known.values())
    x = mx.sym.var("x", shape=(2, 3, 10, 10))
    conv = mx.sym.Convolution(x, mx.sym.var("w", shape=(6, 3, 3, 3)), num_filter=6, kernel=(3, 3),
                              no_bias=True)._graph()
    node = conv.op_nodes()[0]
    assert node_flops(node) == 2.0 * (2 * 6 * 8 * 8) * (3 * 3 * 3)
    dot = mx.sym.dot(mx.sym.var("a", shape=(5, 7)), mx.sym.var("b", shape=(3, 7)), transpose_b=True)._graph()
    assert node_flops(dot.op_nodes()[0]) == 2.0 * 5 * 3 * 7


@pytest.mark.parametrize("n_dev", [2, 3])
def test_split_of_a_chain_is_within_ten_percent_of_the_best_balanced_split(n_dev):
    graph, known = _chain(WIDTHS)
    devices = [f"cpu({k})" for k in range(n_dev)]
    auto = auto_place(graph, devices)
    loads = {d: 0.0 for d in devices}
    for node in graph.op_nodes():
        loads[auto.node_devices[node.name]] += known[node.name]
    best_bottleneck, best_bytes = _best_balanced(graph, known, n_dev)
    assert max(loads.values()) <= 1.10 * best_bottleneck
    assert max(loads.values()) == pytest.approx(auto.bottleneck)
    # the bytes it copies: no more than the best-balanced split's, and what the copies carry
    assert _cut_bytes(graph, auto.node_devices) <= best_bytes
    placed = check_partition(partition_devices(place(graph, auto)))
    assert auto.cut_bytes == sum(n.types[0].nbytes for n in placed.nodes if n.op == COPY)
    # a contiguous split: the devices in the order given along the chain
    seen = [auto.node_devices[n.name] for n in graph.op_nodes()]
    assert seen == sorted(seen, key=devices.index)


def test_parameters_sit_with_the_layer_that_reads_them():
    graph, _ = _chain(WIDTHS)
    auto = auto_place(graph, ["cpu(0)", "cpu(1)"])
    placed = check_partition(partition_devices(place(graph, auto)))
    for k in range(len(WIDTHS)):
        assert auto.node_devices[f"fc{k}_weight"] == auto.node_devices[f"fc{k}"]
    copied = {n.inputs[0].node.name for n in placed.nodes if n.op == COPY}
    assert not any(name.endswith(("_weight", "_bias")) for name in copied)


def _stage_needs(graph, auto):
    """Per device, the largest need of a program the partitioned graph compiles for it."""
    needs = {}
    for step in plan_stages(partition_devices(place(graph, auto))):
        if hasattr(step, "graph"):
            needs[step.device] = max(needs.get(step.device, 0), program_need(step.graph).total)
    return needs


def test_budgets_move_the_split_and_every_program_fits():
    graph, _ = _chain(WIDTHS)
    free = auto_place(graph, ["cpu(0)", "cpu(1)"])
    tight = free.memory[0] // 2                  # cpu(0) cannot hold what the balanced split gives it
    auto = auto_place(graph, ["cpu(0)", "cpu(1)"], budgets={"cpu(0)": tight})
    assert auto.memory[0] <= tight
    assert auto.bottleneck > free.bottleneck     # balance traded for fitting
    needs = _stage_needs(graph, auto)
    assert needs["cpu(0)"] <= tight
    # training counts the gradients too: the same budget holds less
    trained = auto_place(graph, ["cpu(0)", "cpu(1)"], budgets={"cpu(0)": tight}, training=True)
    assert trained.memory[0] <= tight
    assert trained.segments[0][1] <= auto.segments[0][1]


def test_no_split_that_fits_is_a_clear_error():
    graph, _ = _chain(WIDTHS)
    whole = auto_place(graph, ["cpu(0)"]).memory[0]
    with pytest.raises(DeviceMemoryError) as err:
        auto_place(graph, ["cpu(0)", "cpu(1)"], budgets={"cpu(0)": whole // 4, "cpu(1)": whole // 4})
    text = str(err.value)
    assert "no split over cpu(0), cpu(1) fits" in text and "cpu(1)" in text and "needs" in text
    with pytest.raises(DeviceMemoryError, match="twice"):
        auto_place(graph, ["cpu(0)", "cpu(0)"])


@given(random_graphs(max_ops=10), st.integers(1, 4))
def test_random_graphs_are_placed_whole_with_copies_only_at_cuts(case, n_dev):
    graph, arrays = case
    graph = verify(graph)
    devices = [f"cpu({k})" for k in range(n_dev)]
    auto = auto_place(graph, devices)
    placed = check_partition(verify(partition_devices(place(graph, auto))))
    rank = {d: k for k, d in enumerate(devices)}
    for node in placed.nodes:
        if node.is_const:
            continue
        assert node_device(node) in rank
        if node.op == COPY:
            src = node_device(node.inputs[0].node)
            assert src != node.attrs["device"]                        # a copy only at a cut
            assert rank[src] < rank[node.attrs["device"]]            # and only forward
        elif not node.is_var:
            assert node_device(node) == auto.node_devices[node.name]
    assert auto.cut_bytes == sum(n.types[0].nbytes for n in placed.nodes if n.op == COPY)
    for got, want in zip(interpret(placed, arrays), interpret(graph, arrays)):
        np.testing.assert_array_equal(got, want)


def test_large_graphs_cut_at_evenly_spaced_positions_and_stay_balanced():
    """More operators than MAX_CUTS: the split still lands within 10% of the best one."""
    widths = [int(w) for w in np.random.default_rng(7).integers(8, 300, size=150)]
    graph, known = _chain(widths, n_in=64)
    assert len(graph.op_nodes()) > MAX_CUTS
    order = graph.op_nodes()
    prefix = np.concatenate([[0.0], np.cumsum([known[n.name] for n in order])])
    n = len(order)
    best = min(max(prefix[a], prefix[b] - prefix[a], prefix[n] - prefix[b])
               for a in range(n + 1) for b in range(a, n + 1))
    auto = auto_place(graph, ["cpu(0)", "cpu(1)", "cpu(2)"])
    loads = {}
    for node in order:
        loads[auto.node_devices[node.name]] = loads.get(auto.node_devices[node.name], 0.0) + known[node.name]
    assert max(loads.values()) <= 1.10 * best


@given(random_graphs(max_ops=10), st.integers(2, 3), st.floats(0.3, 1.2))
def test_random_budgets_are_met_or_refused_and_estimates_bound_the_programs(case, n_dev, share):
    graph, _ = case
    devices = [f"cpu({k})" for k in range(n_dev)]
    whole = auto_place(graph, devices[:1]).memory[0]
    limits = {d: int(whole * share) for d in devices}
    try:
        auto = auto_place(graph, devices, budgets=limits)
    except DeviceMemoryError as err:
        assert "fits the memory budgets" in str(err)
        return
    assert all(m <= limits[d] for d, m in zip(devices, auto.memory))
    for dev, need in _stage_needs(graph, auto).items():
        assert need <= auto.memory[devices.index(dev)], dev
