"""decompose_softmax: rewrite softmax and log_softmax into the reductions and elementwise
operators they are made of, just before fusion, so that they compile to vectorised native
kernels (a max reduction, an exp-sum reduction with the subtraction fused in as its prologue,
one elementwise pass) instead of running on the numpy fallback.

It runs only on the way to a backend (the LOWER pipeline): exported graphs and the autodiff
pass keep the operators whole, with their own gradient rules.
"""
from __future__ import annotations

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import Graph, Node

from .rewrite import rebuild

_SOFTMAXES = ("softmax", "log_softmax")


def decompose_softmax(graph: Graph) -> Graph:
    def rule(node: Node):
        if node.op not in _SOFTMAXES or node.attrs.get("use_length"):
            return None
        if not node.types[0].dtype.startswith("float"):
            return None
        b = GraphBuilder(graph.name)
        F = b.F
        x = b.wrap(node.inputs[0])
        axis = node.attrs["axis"]
        t = node.attrs.get("temperature")
        if t is not None and t != 1.0:
            x = x / float(t)
        m = F.max(x, axis=axis, keepdims=True)

        def z():
            # stable: exp(z) <= 1. A separate z per use, so that fusion computes it inside the
            # reduction's loop and inside the output's loop instead of storing a data-sized
            # temporary (this pass runs after CSE, which would merge them back)
            return x - m
        if node.op == "log_softmax":
            out = z() - F.log(F.sum(F.exp(z()), axis=axis, keepdims=True))
        else:
            out = F.exp(z()) / F.sum(F.exp(z()), axis=axis, keepdims=True)
        if out.value.type.dtype != node.types[0].dtype:
            out = F.Cast(out, dtype=node.types[0].dtype)
        return [out.value]

    return rebuild(graph, rule)
