"""Per-device memory budgets (GRAPHC_DEVICE_MEMORY) and what a compiled program needs under them.

`GRAPHC_DEVICE_MEMORY='cpu(0):200MB,cpu(1):1.5GB'` gives devices a budget: a program compiled for
a device whose need exceeds that device's budget is refused before it is built, with an error
naming the program (a hybridized block's name), the device, the budget and the need, so that a
network too big for one device fails at once and clearly instead of swapping, and the automatic
placement (passes/auto_place.py) can split it so that every device stays within its budget.
Devices the variable does not name have no budget. Units: B, KB/MB/GB (powers of 1000),
KiB/MiB/GiB (powers of 1024); a bare number is bytes.

A program's need is what it holds while it runs: its parameters, its other inputs and outputs,
and the arena of its memory plan (passes/memory.py plan_memory on the graph it is given; the
compiler plans the fused graph, whose arena is never larger, so the need is an upper bound).
Eager operators are not checked: each allocates one numpy array at a time, with no plan to judge.
This module measures and judges; it never allocates, places or compiles.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .ops.errors import GraphcError

ENV = "GRAPHC_DEVICE_MEMORY"
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}
_ITEM = re.compile(r"\s*([a-z]+)\((\d+)\)\s*:\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", re.IGNORECASE)


class DeviceMemoryError(GraphcError):
    """A program or a placement does not fit a device's memory budget, or the budget text is bad."""


def parse_budgets(text: str) -> dict:
    """'cpu(0):200MB,cpu(1):1.5GB' -> {'cpu(0)': 200000000, 'cpu(1)': 1500000000}."""
    budgets = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        m = _ITEM.fullmatch(item)
        if m is None:
            raise DeviceMemoryError(f"{ENV}: cannot read {item.strip()!r}; expected DEVICE:SIZE items such as "
                                    f"'cpu(0):200MB,cpu(1):1.5GB'")
        kind, index, number, unit = m.groups()
        if unit.lower() not in _UNITS:
            raise DeviceMemoryError(f"{ENV}: unknown unit {unit!r} in {item.strip()!r}; use B, KB, MB, GB, KiB, "
                                    "MiB or GiB")
        device = f"{kind.lower()}({int(index)})"
        if device in budgets:
            raise DeviceMemoryError(f"{ENV}: {device} is given twice in {text!r}")
        budgets[device] = int(float(number) * _UNITS[unit.lower()])
    return budgets


_parsed = (None, {})


def budgets() -> dict:
    """The budgets GRAPHC_DEVICE_MEMORY gives now (read on every call: tests and notebooks change
    it; parsed once per distinct text)."""
    global _parsed
    text = os.environ.get(ENV, "")
    if text != _parsed[0]:
        _parsed = (text, parse_budgets(text))
    return _parsed[1]


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 10 ** 9), ("MB", 10 ** 6), ("KB", 10 ** 3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class Need:
    """The bytes a program holds while it runs, by kind."""
    parameters: int
    inputs: int          # data inputs and values handed in (saved activations, copies)
    outputs: int
    arena: int           # the memory plan's intermediate values and scratch

    @property
    def total(self) -> int:
        return self.parameters + self.inputs + self.outputs + self.arena

    def describe(self) -> str:
        return (f"{format_bytes(self.total)}: parameters {format_bytes(self.parameters)}, other inputs "
                f"{format_bytes(self.inputs)}, outputs {format_bytes(self.outputs)}, intermediate values "
                f"{format_bytes(self.arena)}")


def program_need(graph) -> Need:
    """What running `graph` as one program holds (see the module doc)."""
    from .passes.memory import plan_memory
    params = sum(n.types[0].nbytes for n in graph.inputs if n.hints.get("kind") in ("param", "aux"))
    inputs = sum(n.types[0].nbytes for n in graph.inputs if n.hints.get("kind") not in ("param", "aux"))
    outputs, seen = 0, set()
    for v in graph.outputs:
        if (id(v.node), v.index) not in seen and not v.node.is_var:
            seen.add((id(v.node), v.index))
            outputs += v.type.nbytes
    arena = sum(plan_memory(graph).arena_size.values()) if graph.op_nodes() else 0
    return Need(params, inputs, outputs, arena)


def check_program(graph, device: str) -> None:
    """Refuse to build `graph` for `device` when its need exceeds the device's budget (nothing to
    do, and nothing computed, when the device has none)."""
    budget = budgets().get(device)
    if budget is None:
        return
    need = program_need(graph)
    if need.total > budget:
        # a stage of a partitioned graph carries device hints (passes/partition.py)
        staged = any("device" in n.hints for n in graph.nodes)
        advice = ("give hybridize(devices=[...]) more devices" if staged else
                  "split it across devices with hybridize(devices=[mx.cpu(0), mx.cpu(1)])")
        raise DeviceMemoryError(
            f"'{graph.name}' needs {need.describe()} on {device}, over its budget of {format_bytes(budget)} "
            f"({ENV}={os.environ.get(ENV, '')!r}); {advice} or raise the budget")


__all__ = ["DeviceMemoryError", "parse_budgets", "budgets", "program_need", "check_program", "Need",
           "format_bytes", "ENV"]
