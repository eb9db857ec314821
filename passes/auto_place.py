"""auto_place: choose a device for every node of a graph from the cost model, so that the
partitioning pass (passes/partition.py) can insert the copies (`hybridize(devices=[...])`).

The placement is a contiguous split of the graph's topological order into one segment per
device, in the order the devices are given (segment k runs on devices[k]; a segment may be
empty). A contiguous split keeps every edge pointing from a device to itself or to a later one,
so the stages form a pipeline and no value goes back and forth. It is chosen in two steps, both
dynamic programs over the cut positions:

  1. the smallest *bottleneck*: the largest forward FLOPs (passes/cost_model.py) any one device
     runs, among the splits that keep every device within its memory budget;
  2. among the splits whose bottleneck is within `TOLERANCE` of that smallest one, the one with
     the fewest bytes crossing devices (each value counted once per device that reads it).

Training does not change the split's balance (backward costs about twice the forward of each
node, on the node's device: autodiff builds each gradient where its forward node runs) but it
does change memory: gradients of parameters and of activations need as much again.

A segment's memory is estimated from the graph alone and errs high, so that the compiled
programs (checked against the budgets by graphc/device_memory.py) fit whenever the estimate
does: the variables it reads first (parameters, their gradients when training), the values it
receives from earlier devices, and every value it makes (each padded to the arena's alignment,
plus a convolution's scratch), as if nothing were reused.

Large graphs cut only at `MAX_CUTS` positions spaced evenly by FLOPs, which keeps the search
quadratic in that number rather than in the node count. The pass is pure: it returns the
placement and a graph whose nodes carry it; it compiles and runs nothing.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from graphc.ops.fused import scratch_bytes
from graphc.ops.graph import Graph, Node
from graphc.ops.memory_plan import ALIGN

from .cost_model import node_flops
from .partition import DEVICE, device_name

TOLERANCE = 0.05        # bottleneck slack traded for fewer bytes crossing devices
MAX_CUTS = 256          # cut positions considered in large graphs
_INF = float("inf")


@dataclass
class AutoPlacement:
    """devices: the devices in split order. segments: per device, (start, end) positions in
    `order`, the graph's operator nodes in topological order. node_devices: node name -> device
    for every operator and every variable an operator reads (data inputs included: they are
    moved there). flops, memory: per device, forward FLOPs and the estimated bytes.
    cut_bytes: bytes copied between devices per forward run."""
    devices: list
    order: list
    segments: list
    node_devices: dict = field(default_factory=dict)
    flops: list = field(default_factory=list)
    memory: list = field(default_factory=list)
    cut_bytes: int = 0

    @property
    def bottleneck(self) -> float:
        return max(self.flops) if self.flops else 0.0

    def describe(self) -> str:
        from graphc.device_memory import format_bytes
        parts = []
        for dev, (a, b), f, m in zip(self.devices, self.segments, self.flops, self.memory):
            names = f"{self.order[a].name}..{self.order[b - 1].name}" if b > a else "nothing"
            parts.append(f"{dev}: {b - a} nodes ({names}), {f:.3g} FLOPs, ~{format_bytes(m)}")
        return "; ".join(parts) + f"; {format_bytes(self.cut_bytes)} cross devices"


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class _Costs:
    """Per-position prefix sums and the values crossing each candidate cut."""

    def __init__(self, graph: Graph, training: bool):
        self.order = graph.op_nodes()
        pos = {id(n): p for p, n in enumerate(self.order)}
        n = len(self.order)
        consumers = {}                       # value key -> sorted positions that read it
        for p, node in enumerate(self.order):
            for v in node.inputs:
                if v.node.is_const:
                    continue
                lst = consumers.setdefault((id(v.node), v.index), [])
                if not lst or lst[-1] != p:
                    lst.append(p)
        self.values = []                     # (home position, consumer positions, bytes, node)
        var_bytes = [0] * n
        for node in graph.nodes:
            if node.is_const:
                continue
            for i, t in enumerate(node.types):
                readers = consumers.get((id(node), i))
                if not readers or t is None:
                    continue
                home = readers[0] if node.is_var else pos[id(node)]
                self.values.append((home, readers, t.nbytes, node))
                if node.is_var:
                    # gradients of parameters as large again when training
                    grads = 2 if training and node.hints.get("kind") in ("param", "aux") else 1
                    var_bytes[home] += grads * _aligned(t.nbytes)
        flops = [node_flops(nd) for nd in self.order]
        made = [sum(_aligned(t.nbytes) for t in nd.types if t is not None) + _scratch(nd) for nd in self.order]
        self.training = training
        self.flops_prefix = _prefix(flops)
        self.var_prefix = _prefix(var_bytes)
        self.made_prefix = _prefix(made)
        self.cuts = self._cut_positions()
        self.bytes_in = self._bytes_in()

    def _cut_positions(self) -> list:
        """0, the positions a segment may start at, and len(order)."""
        n = len(self.order)
        if n + 1 <= MAX_CUTS:
            return list(range(n + 1))
        total = self.flops_prefix[-1] or 1.0
        cuts, step = [0], total / (MAX_CUTS - 1)
        for p in range(1, n):
            if self.flops_prefix[p] >= len(cuts) * step and p > cuts[-1]:
                cuts.append(p)
        cuts.append(n)
        return cuts

    def _bytes_in(self) -> list:
        """bytes_in[a][b]: bytes of values made before cut a and read in [cuts[a], cuts[b])."""
        m = len(self.cuts)
        table = []
        for a, start in enumerate(self.cuts):
            add = [0] * (m + 1)
            for home, readers, nbytes, _ in self.values:
                if home >= start:
                    continue
                k = bisect.bisect_left(readers, start)
                if k == len(readers):
                    continue
                first = readers[k]
                b = bisect.bisect_right(self.cuts, first)      # smallest b with cuts[b] > first
                add[b] += nbytes
            row, acc = [], 0
            for b in range(m):
                acc += add[b]
                row.append(acc if b > a else 0)
            table.append(row)
        return table

    def flops(self, a: int, b: int) -> float:
        return self.flops_prefix[self.cuts[b]] - self.flops_prefix[self.cuts[a]]

    def memory(self, a: int, b: int) -> int:
        """Estimated bytes of segment [cuts[a], cuts[b]) (see the module doc); 0 when empty."""
        if b == a:
            return 0
        made = self.made_prefix[self.cuts[b]] - self.made_prefix[self.cuts[a]]
        variables = self.var_prefix[self.cuts[b]] - self.var_prefix[self.cuts[a]]
        received = self.bytes_in[a][b]
        if self.training:
            # saved activations, the output gradients coming back, and the activations' gradients
            return variables + 2 * received + 3 * made
        return variables + received + made


def _scratch(node: Node) -> int:
    try:
        return scratch_bytes(node)
    except Exception:                 # a geometry the backend would not lower: no scratch
        return 0


def _prefix(xs) -> list:
    out, acc = [0], 0
    for x in xs:
        acc += x
        out.append(acc)
    return out


def auto_place(graph: Graph, devices, budgets=None, training: bool = False) -> AutoPlacement:
    """Split `graph` over `devices` (see the module doc). budgets: device -> bytes (devices not
    named have no budget); None reads GRAPHC_DEVICE_MEMORY."""
    from graphc.device_memory import DeviceMemoryError, budgets as env_budgets
    devs = [device_name(d) for d in devices]
    if not devs:
        raise DeviceMemoryError(f"auto_place '{graph.name}': the device list is empty")
    if len(set(devs)) != len(devs):
        raise DeviceMemoryError(f"auto_place '{graph.name}': devices {devs} name a device twice")
    limits = env_budgets() if budgets is None else {device_name(k): v for k, v in budgets.items()}
    caps = [limits.get(d, _INF) for d in devs]
    costs = _Costs(graph, training)
    m = len(costs.cuts) - 1          # segment boundaries are cut indices 0..m

    def fits(k, a, b):
        return costs.memory(a, b) <= caps[k]

    # 1. the smallest bottleneck over splits that fit
    best = _split(costs, len(devs), m, fits, lambda prev, a, b, k: max(prev, costs.flops(a, b)))
    if best is None:
        raise DeviceMemoryError(_no_fit_message(graph, costs, devs, caps, m))
    bottleneck = best[0]
    cap = bottleneck * (1 + TOLERANCE)
    # 2. the fewest bytes crossing devices among splits within the tolerance
    fewest = _split(costs, len(devs), m, lambda k, a, b: fits(k, a, b) and costs.flops(a, b) <= cap,
                    lambda prev, a, b, k: prev + costs.bytes_in[a][b])
    bounds = (fewest or best)[1]
    return _placement(graph, costs, devs, bounds)


def _split(costs, n_dev, m, allowed, combine):
    """Minimise combine(...) over contiguous splits of cut indices 0..m into n_dev segments (each
    allowed(k, a, b)); returns (value, [boundary indices]) or None when no split is allowed."""
    # value[b]: the best over the devices so far holding cut indices [0, b)
    value = [combine(0.0, 0, b, 0) if allowed(0, 0, b) else _INF for b in range(m + 1)]
    choice = [[0] * (m + 1)]
    for k in range(1, n_dev):
        new, pick = [_INF] * (m + 1), [0] * (m + 1)
        for b in range(m + 1):
            for a in range(b + 1):
                if value[a] == _INF or not allowed(k, a, b):
                    continue
                v = combine(value[a], a, b, k)
                if v < new[b]:
                    new[b], pick[b] = v, a
        value = new
        choice.append(pick)
    if value[m] == _INF:
        return None
    bounds, b = [m], m
    for k in range(n_dev - 1, 0, -1):
        b = choice[k][b]
        bounds.append(b)
    bounds.append(0)
    return value[m], bounds[::-1]


def _placement(graph, costs, devs, bounds) -> AutoPlacement:
    segments = [(costs.cuts[bounds[k]], costs.cuts[bounds[k + 1]]) for k in range(len(devs))]
    node_devices = {}
    for dev, (a, b) in zip(devs, segments):
        for node in costs.order[a:b]:
            node_devices[node.name] = dev
    for home, _, _, node in costs.values:
        if node.is_var:
            k = next(k for k, (a, b) in enumerate(segments) if a <= home < b)
            node_devices.setdefault(node.name, devs[k])
    flops = [costs.flops(bounds[k], bounds[k + 1]) for k in range(len(devs))]
    memory = [costs.memory(bounds[k], bounds[k + 1]) for k in range(len(devs))]
    cut = sum(costs.bytes_in[bounds[k]][bounds[k + 1]] for k in range(len(devs)))
    return AutoPlacement(devs, costs.order, segments, node_devices, flops, memory, cut)


def _no_fit_message(graph, costs, devs, caps, m) -> str:
    """Name the budgets, the total need and the closest split's worst device."""
    from graphc.device_memory import ENV, format_bytes

    def ratio(k, a, b):
        need = costs.memory(a, b)
        return need / caps[k] if caps[k] != _INF else 0.0
    closest = _split(costs, len(devs), m, lambda k, a, b: True, lambda prev, a, b, k: max(prev, ratio(k, a, b)))
    budgets = ", ".join(f"{d} {format_bytes(c) if c != _INF else 'unlimited'}" for d, c in zip(devs, caps))
    text = (f"auto_place '{graph.name}': no split over {', '.join(devs)} fits the memory budgets ({budgets}; "
            f"{ENV}); the whole graph needs about {format_bytes(costs.memory(0, m))}")
    if closest is not None:
        bounds = closest[1]
        worst = max(range(len(devs)), key=lambda k: ratio(k, bounds[k], bounds[k + 1]))
        need = costs.memory(bounds[worst], bounds[worst + 1])
        text += (f", and the best split still needs {format_bytes(need)} on {devs[worst]}"
                 "; add devices or raise the budgets")
    return text


def place(graph: Graph, placement: AutoPlacement) -> Graph:
    """`graph` with every node that `placement` names carrying its device (partition_devices keeps
    a placed node where it is and inserts the copies at the cuts)."""
    new_of, nodes = {}, []
    for node in graph.nodes:
        dev = placement.node_devices.get(node.name)
        if node.is_const or dev is None:
            hints = node.hints
        else:
            hints = {**node.hints, DEVICE: dev}
        if node.is_const or (hints is node.hints and not node.inputs):
            new = node
        else:
            ins = [new_of[(id(v.node), v.index)] for v in node.inputs]
            new = Node(node.op, ins, node.attrs, node.name, node.types, hints)
        nodes.append(new)
        for i in range(len(node.types)):
            new_of[(id(node), i)] = new.out(i)
    keep = {id(o): n for o, n in zip(graph.nodes, nodes)}
    inputs = [keep[id(n)] for n in graph.inputs]
    outputs = [new_of[(id(v.node), v.index)] for v in graph.outputs]
    return Graph(nodes, inputs, outputs, graph.name, graph.output_tree)


__all__ = ["auto_place", "place", "AutoPlacement", "TOLERANCE", "MAX_CUTS"]
