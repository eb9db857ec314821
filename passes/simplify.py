"""Cleanup passes: dead-code elimination, common-subexpression elimination, constant folding
and algebraic simplification. Each is a small pure function Graph -> Graph."""
from __future__ import annotations

import numpy as np

from graphc.ops.graph import Graph, Node, constant
from graphc.ops.registry import get_op, has_op

from .rewrite import rebuild

FOLD_LIMIT = 1 << 16   # elements: never materialise huge constants (a _zeros of 1e8 stays an op)


def eliminate_dead_code(graph: Graph) -> Graph:
    """Keep only what the outputs need (inputs stay: they are the calling convention)."""
    return Graph.from_outputs(graph.inputs, graph.outputs, graph.name, graph.output_tree)


def _pure(node: Node) -> bool:
    return has_op(node.op) and not get_op(node.op).random


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Two nodes with the same op, inputs and attributes compute the same thing: keep one.
    Random operators are never merged (two draws are two different samples)."""
    seen = {}

    def rule(node: Node):
        if node.is_const:
            arr = node.attrs["value"]
            key = ("const", arr.dtype.str, arr.shape, arr.tobytes())
        elif _pure(node):
            key = (node.op, tuple((id(v.node), v.index) for v in node.inputs), hash(node.attrs))
        else:
            return None
        hit = seen.get(key)
        if hit is not None and (hit.is_const or hit.attrs == node.attrs):
            return hit.outputs
        seen[key] = node
        return None

    return rebuild(graph, rule)


def fold_constants(graph: Graph) -> Graph:
    """Evaluate nodes whose inputs are all constants (with the numpy reference)."""
    def rule(node: Node):
        if node.is_const or not _pure(node) or get_op(node.op).uses_training:
            return None
        if not all(v.node.is_const for v in node.inputs):
            return None
        if any(t.size > FOLD_LIMIT for t in node.types):
            return None
        op = get_op(node.op)
        outs = op.run([v.node.attrs["value"] for v in node.inputs], node.attrs)
        suffix = (lambda i: "") if len(node.types) == 1 else (lambda i: str(i))
        return [constant(np.asarray(o).astype(t.dtype, copy=False), f"{node.name}_folded{suffix(i)}", t.device).out()
                for i, (o, t) in enumerate(zip(outs, node.types))]

    return rebuild(graph, rule)


def _scalar_of(node: Node):
    return node.attrs.get("scalar") if node.op.endswith("_scalar") else None


_IDENTITY_SCALAR = {"_plus_scalar": 0.0, "_minus_scalar": 0.0, "_mul_scalar": 1.0, "_div_scalar": 1.0,
                    "_power_scalar": 1.0}


def _is_const_value(v, value) -> bool:
    if not v.node.is_const:
        return False
    arr = v.node.attrs["value"]
    return arr.size > 0 and bool(np.all(arr == value))


def simplify_algebra(graph: Graph) -> Graph:
    """Rewrite identities: x*1, x+0, x-0, x/1, x**1, Reshape/Cast/broadcast_to/_sum_to to the
    same type, transpose by the identity, -(-x), and chains of scalar multiplications."""
    def rule(node: Node):
        op = node.op
        if not node.inputs or node.is_const:
            return None
        x = node.inputs[0]
        out_t = node.types[0]
        same_type = len(node.types) == 1 and x.type == out_t
        if op in _IDENTITY_SCALAR and node.attrs["scalar"] == _IDENTITY_SCALAR[op] and same_type:
            return [x]
        if op in ("Reshape", "Flatten", "Cast", "broadcast_to", "_sum_to", "expand_dims", "_copy",
                  "identity", "broadcast_like") and same_type and op != "expand_dims":
            return [x]
        if op == "transpose" and same_type and tuple(node.attrs["axes"]) in ((), tuple(range(out_t.ndim))) and out_t.ndim <= 1:
            return [x]
        if op == "transpose" and node.attrs["axes"] and tuple(node.attrs["axes"]) == tuple(range(out_t.ndim)):
            return [x]
        if op == "negative" and x.node.op == "negative":
            return [x.node.inputs[0]]
        if op == "_mul_scalar" and x.node.op == "_mul_scalar":
            from graphc.ops.builder import GraphBuilder
            b = GraphBuilder()
            n = b.emit("_mul_scalar", [x.node.inputs[0]], {"scalar": node.attrs["scalar"] * x.node.attrs["scalar"]}, node.name)
            return n.outputs
        if op in ("broadcast_mul", "elemwise_mul") and len(node.inputs) == 2:
            a, b_ = node.inputs
            if _is_const_value(b_, 1) and a.type == out_t:
                return [a]
            if _is_const_value(a, 1) and b_.type == out_t:
                return [b_]
        if op in ("broadcast_add", "elemwise_add") and len(node.inputs) == 2:
            a, b_ = node.inputs
            if _is_const_value(b_, 0) and a.type == out_t:
                return [a]
            if _is_const_value(a, 0) and b_.type == out_t:
                return [b_]
        return None

    return rebuild(graph, rule)
