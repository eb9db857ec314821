"""Specialise a graph to the mode it is compiled for, and rewrite the normalisation layers
(BatchNorm, LayerNorm, InstanceNorm, GroupNorm) into the reductions and elementwise operators
they are made of, so that fusion turns them into native reduction and elementwise kernels
instead of running their numpy references on the host.

`specialize_training(graph, training=...)`: a compiled program runs in one mode only (the
training flag is part of its signature), so `_is_training` (the flag BatchNorm's gradient
reads) becomes a constant and what that constant decides is folded away, and Dropout outside
training (or with p=0) becomes the identity it is there.

`decompose_norms(graph, training=...)`: per layer, a mean reduction, a reduction of the
squared deviation from it (two passes, as the references compute it: E[x^2] - E[x]^2 loses
the variance to cancellation when the mean is large), then one elementwise pass
`(x - mean) * invstd * gamma + beta`. `x - mean` is built once per consumer on purpose: as one
shared node it would be stored as a full-size intermediate (a node joins a fused group only
when all its uses lie inside it); as two nodes each fuses into its consumer, the variance
reduction's prologue and the output's elementwise pass. BatchNorm in training (without
use_global_stats) also returns the moved statistics `moving * momentum + batch * (1 -
momentum)`; otherwise its moving statistics normalise and come back unchanged.

Both run only on the way to a backend (the LOWER pipelines of passes/pipeline.py): exported
graphs and autodiff see the layers whole, with their own gradient rules.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import Graph, Node, constant

from .rewrite import rebuild
from .simplify import fold_constants, simplify_algebra, eliminate_dead_code

_FLOATS = ("float32", "float64")


def specialize_training(graph: Graph, *, training: bool) -> Graph:
    """`_is_training` -> the constant [1] or [0], Dropout that draws nothing -> its input; then
    fold what that decides (BatchNorm's gradient mixes batch and moving statistics with the
    flag)."""
    changed = []

    def rule(node: Node):
        if node.op == "Dropout" and (node.attrs["p"] == 0.0 or (not training and node.attrs["mode"] == "training")):
            b = GraphBuilder(graph.name)          # the identity, and its all-ones mask
            x = b.wrap(node.inputs[0])
            changed.append(node)
            return [x.value, b.F.ones_like(x).value]
        if node.op != "_is_training":
            return None
        t = node.types[0]
        changed.append(node)
        return [constant(np.full(t.shape, 1.0 if training else 0.0, dtype=t.dtype),
                         f"{node.name}_{'training' if training else 'inference'}", t.device).out()]

    out = rebuild(graph, rule)
    if not changed:
        return out
    return eliminate_dead_code(simplify_algebra(fold_constants(out)))


def _bshape(ndim, axis, n):
    return tuple(n if i == axis else 1 for i in range(ndim))


def _native(node: Node) -> bool:
    return all(t.dtype in _FLOATS for t in node.types) and \
        all(v.type.dtype == node.types[0].dtype for v in node.inputs)


def _batchnorm(F, node, ins, training):
    x, gamma, beta, mm, mv = ins
    at = node.attrs
    nd = len(node.types[0].shape)
    a = at["axis"] % nd
    c = node.types[0].shape[a]
    red = tuple(i for i in range(nd) if i != a)
    bs = _bshape(nd, a, c)
    eps, m = at["eps"], at["momentum"]
    if training and not at["use_global_stats"]:
        mean = F.mean(x, axis=red, keepdims=True)
        var = F.mean(F.square(x - mean), axis=red, keepdims=True)
        mean_c, var_c = F.Reshape(mean, shape=(c,)), F.Reshape(var, shape=(c,))
        new_mm = mm * m + mean_c * (1.0 - m)
        new_mv = mv * m + var_c * (1.0 - m)
    else:
        mean_c, var_c = mm, mv
        mean = F.Reshape(mm, shape=bs)
        new_mm, new_mv = mm, mv
    invstd = 1.0 / F.sqrt(var_c + eps)
    out = (x - mean) * F.Reshape(invstd, shape=bs)
    if not at["fix_gamma"]:
        out = out * F.Reshape(gamma, shape=bs)
    out = out + F.Reshape(beta, shape=bs)
    return [out, mean_c, invstd, new_mm, new_mv]


def _normalise(F, x, gamma, beta, red, eps, bs, std_out):
    """(x - mean) / sqrt(var + eps) * gamma + beta with moments over `red` (kept as size-1
    axes), gamma and beta reshaped to `bs`; and (mean, sqrt(var + eps) or var)."""
    mean = F.mean(x, axis=red, keepdims=True)
    var = F.mean(F.square(x - mean), axis=red, keepdims=True)
    std = F.sqrt(var + eps)
    out = (x - mean) / std * F.Reshape(gamma, shape=bs) + F.Reshape(beta, shape=bs)
    return out, mean, (std if std_out else var)


def _layernorm(F, node, ins):
    x, gamma, beta = ins
    nd = len(x.shape)
    a = node.attrs["axis"] % nd
    out, mean, std = _normalise(F, x, gamma, beta, (a,), node.attrs["eps"], _bshape(nd, a, x.shape[a]), True)
    return [out, mean, std]


def _instancenorm(F, node, ins):
    x, gamma, beta = ins
    nd = len(x.shape)
    out, mean, var = _normalise(F, x, gamma, beta, tuple(range(2, nd)), node.attrs["eps"],
                                _bshape(nd, 1, x.shape[1]), False)
    return [out, mean, var]


def _groupnorm(F, node, ins):
    x, gamma, beta = ins
    g = node.attrs["num_groups"]
    xr = F.Reshape(x, shape=(x.shape[0], g, int(np.prod(x.shape[1:])) // g))
    out, mean, std = _normalise(F, xr, gamma, beta, (2,), node.attrs["eps"], (1, g, 1), True)
    stat = (x.shape[0], g)
    return [F.Reshape(out, shape=x.shape), F.Reshape(mean, shape=stat), F.Reshape(std, shape=stat)]


_RULES = {"LayerNorm": _layernorm, "InstanceNorm": _instancenorm, "GroupNorm": _groupnorm}


def decompose_norms(graph: Graph, *, training: bool) -> Graph:
    """BatchNorm (in the mode `training` and use_global_stats select), LayerNorm, InstanceNorm
    and GroupNorm in float32/float64 -> reductions and elementwise operators, output for
    output (the hidden statistics too, where something reads them)."""
    def rule(node: Node):
        if node.op != "BatchNorm" and node.op not in _RULES or not _native(node):
            return None
        b = GraphBuilder(graph.name)
        ins = [b.wrap(v) for v in node.inputs]
        if node.op == "BatchNorm":
            outs = _batchnorm(b.F, node, ins, training)
        else:
            outs = _RULES[node.op](b.F, node, ins)
        for n in b.nodes:                  # dumps and errors name the layer they came from
            n.name = f"{node.name}_{n.name}"
        return [o.value for o in outs]

    return rebuild(graph, rule)


__all__ = ["specialize_training", "decompose_norms"]
