"""Run a graph on numpy with each operator's reference implementation: the oracle that every
compiled result is compared with, and the slow path when no backend applies."""
from __future__ import annotations

import numpy as np

from .errors import GraphcError
from .graph import Graph
from .registry import get_op


def interpret(graph: Graph, inputs, rng=None, training=False) -> list:
    """inputs: list in graph.inputs order, or a dict name -> array. Returns output arrays."""
    if isinstance(inputs, dict):
        missing = [n.name for n in graph.inputs if n.name not in inputs]
        if missing:
            raise GraphcError(f"graph {graph.name}: no value given for inputs {missing}")
        inputs = [inputs[n.name] for n in graph.inputs]
    if len(inputs) != len(graph.inputs):
        raise GraphcError(f"graph {graph.name}: expects {len(graph.inputs)} inputs, got {len(inputs)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    env = {}
    for node, arr in zip(graph.inputs, inputs):
        env[(id(node), 0)] = np.asarray(arr)
    for node in graph.nodes:
        if node.is_var:
            if (id(node), 0) not in env:
                raise GraphcError(f"graph {graph.name}: variable {node.name!r} is not an input")
            continue
        if node.is_const:
            env[(id(node), 0)] = node.attrs["value"]
            continue
        op = get_op(node.op)
        args = [env[(id(v.node), v.index)] for v in node.inputs]
        outs = op.run(args, node.attrs, rng=rng, training=training)
        for i, (o, t) in enumerate(zip(outs, node.types)):
            o = np.asarray(o)
            if t is not None and (o.shape != t.shape or o.dtype != np.dtype(t.dtype)):
                raise GraphcError(f"{node.op} '{node.name}': its numpy reference gave {o.dtype}{list(o.shape)} "
                                  f"but inference says {t.dtype}{list(t.shape)} (output {i}): the declaration is inconsistent")
            env[(id(node), i)] = o
    return [env[(id(v.node), v.index)] for v in graph.outputs]
