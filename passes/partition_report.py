"""partition_report: what a device partition costs, per device and per cut, as numbers and text.

For a graph placed by `partition_devices`: per device, its operators, their forward FLOPs, the
bytes of the parameters it holds and of the activations it makes; per ordered pair of devices,
the copies between them and the bytes they move on every forward run. Those are the numbers that
say whether a partition is balanced and how much it pays for its cuts; `graphc viz --partition`
prints them under the picture.

An analysis: it reads a graph and changes nothing. FLOPs and bytes come from the cost model
(passes/cost_model.py), so this report and automatic placement count the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graphc.ops.graph import Graph, Node

from .partition import COPY, node_device


def _costs():
    """(node_flops, node_bytes) from the cost model; without it (a checkout from before it), one
    FLOP per output element and the outputs' bytes, so the report still adds up."""
    try:
        from .cost_model import node_bytes, node_flops
        return node_flops, node_bytes
    except ImportError:                       # pragma: no cover - the cost model ships with graphc
        def node_bytes(node: Node) -> int:
            return sum(t.nbytes for t in node.types if t is not None)

        def node_flops(node: Node) -> float:
            if node.is_var or node.is_const:
                return 0.0
            return float(sum(t.size for t in node.types if t is not None))
        return node_flops, node_bytes


@dataclass
class DeviceLoad:
    device: str
    ops: int = 0
    flops: float = 0.0
    param_bytes: int = 0        # parameters and auxiliary states held there
    activation_bytes: int = 0   # data inputs there and every operator's outputs (copies excluded)


@dataclass
class Crossing:
    source: str
    target: str
    copies: int = 0
    bytes: int = 0


@dataclass
class PartitionReport:
    graph: str
    devices: list = field(default_factory=list)     # DeviceLoad, first-placed device first
    crossings: list = field(default_factory=list)   # Crossing, in order of first copy
    untyped: int = 0                                # nodes whose sizes are unknown (counted as 0)

    def device(self, name: str) -> DeviceLoad:
        for load in self.devices:
            if load.device == name:
                return load
        raise KeyError(f"partition report of {self.graph}: no device {name!r}; devices are "
                       f"{[d.device for d in self.devices]}")

    def __str__(self) -> str:
        return format_partition_report(self)


def partition_report(graph: Graph) -> PartitionReport:
    node_flops, node_bytes = _costs()
    report = PartitionReport(graph.name or "graph")
    loads, crossings = {}, {}
    for node in graph.nodes:
        dev = node_device(node)
        if dev is None:                     # constants: every device program embeds its own
            continue
        if any(t is None for t in node.types):
            report.untyped += 1
        if node.op == COPY:
            src = node_device(node.inputs[0].node) or "?"
            key = (src, dev)
            if key not in crossings:
                crossings[key] = Crossing(src, dev)
            crossings[key].copies += 1
            crossings[key].bytes += node_bytes(node)
            loads.setdefault(dev, DeviceLoad(dev))
            continue
        load = loads.setdefault(dev, DeviceLoad(dev))
        if node.is_var:
            if node.hints.get("kind") in ("param", "aux"):
                load.param_bytes += node_bytes(node)
            else:
                load.activation_bytes += node_bytes(node)
            continue
        load.ops += 1
        load.flops += node_flops(node)
        load.activation_bytes += node_bytes(node)
    report.devices = list(loads.values())
    report.crossings = list(crossings.values())
    return report


def format_partition_report(report: PartitionReport) -> str:
    cut_bytes = sum(c.bytes for c in report.crossings)
    copies = sum(c.copies for c in report.crossings)
    total_flops = sum(d.flops for d in report.devices) or 1.0
    lines = [f"partition of {report.graph}: {len(report.devices)} devices, {copies} {'copy' if copies == 1 else 'copies'}, "
             f"{format_bytes(cut_bytes)} crossing per forward run"]
    header = ("device", "ops", "FLOPs", "share", "parameters", "activations")
    rows = [header] + [(d.device, str(d.ops), format_count(d.flops), f"{100 * d.flops / total_flops:.0f}%",
                        format_bytes(d.param_bytes), format_bytes(d.activation_bytes)) for d in report.devices]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if report.crossings:
        lines.append("bytes crossing (forward):")
        for c in report.crossings:
            lines.append(f"  {c.source} -> {c.target}: {c.copies} {'copy' if c.copies == 1 else 'copies'}, "
                         f"{format_bytes(c.bytes)} ({c.bytes} bytes)")
    else:
        lines.append("no value crosses devices")
    if report.untyped:
        lines.append(f"({report.untyped} nodes have no shapes yet and count as 0: give the input shapes)")
    return "\n".join(lines)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def format_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


__all__ = ["partition_report", "format_partition_report", "PartitionReport", "DeviceLoad", "Crossing",
           "format_bytes", "format_count"]
