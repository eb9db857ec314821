"""Which GPU a graph runs on, read from its values' types (TensorType.device 'gpu(k)').

Kept apart from the GPU program so that the compiler can route a graph without importing the
driver: a CPU graph pays one scan of its node types.
"""
from __future__ import annotations

import re

from graphc.ops.errors import GraphcError

_GPU = re.compile(r"^gpu\((\d+)\)$")


def graph_devices(graph) -> list:
    """Every device a value of the graph that depends on its inputs lives on, sorted; for a
    graph without inputs, its outputs' devices. Values computed from no input (constants,
    arange, zeros: operators that make values from attributes alone, as autodiff's gradient
    rules do) are left out: they carry the default device cpu(0) whatever graph they are in,
    and a program computes them wherever it runs."""
    found, dependent = set(), set()
    for n in graph.nodes:
        if n.is_const:
            continue
        if n.is_var or any(id(v.node) in dependent for v in n.inputs):
            dependent.add(id(n))
            found.update(t.device for t in n.types if t is not None)
    if not graph.inputs:
        found.update(v.type.device for v in graph.outputs)
    return sorted(found)


def gpu_device_of(graph) -> int | None:
    """The GPU ordinal k when the graph's values live on 'gpu(k)'; None for a CPU graph. A graph
    that mixes a GPU with any other device is refused: a GPU program runs on one device (model
    parallelism across GPUs goes through partitioning, one program per device)."""
    devices = graph_devices(graph)
    gpus = [d for d in devices if _GPU.match(d)]
    if not gpus:
        return None
    if len(devices) > 1:
        raise GraphcError(f"graph {graph.name}: its values live on {', '.join(devices)}; a compiled GPU program "
                          "runs on one device (partition the graph, or copy values onto one device first)")
    return int(_GPU.match(gpus[0]).group(1))


__all__ = ["graph_devices", "gpu_device_of"]
