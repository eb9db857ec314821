"""Fold an inference BatchNorm into the Convolution that feeds it.

In inference (or with use_global_stats) BatchNorm is a per-channel affine map of its input:
y = conv(x) * s + t with s = gamma / sqrt(moving_var + eps) (gamma read as 1 under fix_gamma)
and t = beta - moving_mean * s. It therefore folds into the convolution:

    BatchNorm(Convolution(x, w, b), gamma, beta, mean, var)
        -> Convolution(x, w * s[:, None, ...], (b - mean) * s + beta)

Where the weights are graph inputs (parameters), that rewrite multiplies every weight on every
call: ResNet-18's 11.7M weights are ~47 MB of traffic per image, more than its activations.
So when `w` is not a constant the pass keeps `w` and scales the convolution's output instead,

    Convolution(x, w) * s[None, :, None...] + ((b - mean) * s + beta)[None, :, None...]

a per-channel scale and shift that fusion puts into the convolution's epilogue (beside its
bias and activation), so it costs only O(channels) work per call. With constant weights
(an exported model after constant folding) the weights themselves are folded, here, once.
`fold_weights=True`/`False` forces one form.

Only when the BatchNorm's batch statistics (outputs 1 and 2) are unused and it does not run in
training with batch statistics; its new moving statistics (outputs 3 and 4, which a hybridized
block writes back) are then the old ones, so their uses read the inputs instead. The
convolution must feed nothing else. Channel axis 1 only, channels-first convolutions only.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.builder import GraphBuilder
from graphc.ops.fused import CONV_LAYOUTS
from graphc.ops.graph import Graph, Node
from graphc.ops.registry import get_op

from .rewrite import relink


def _foldable(bn: Node, users, outputs, training: bool) -> bool:
    if bn.op != "BatchNorm" or (training and not bn.attrs["use_global_stats"]):
        return False
    conv = bn.inputs[0].node
    if conv.op != "Convolution" or bn.inputs[0].index != 0 or bn.attrs["axis"] % bn.types[0].ndim != 1:
        return False
    if conv.attrs.get("layout") not in CONV_LAYOUTS:     # channels last: the filters are not on axis 1
        return False
    if len(users.get(id(conv), [])) != 1 or (id(conv), 0) in outputs:
        return False
    if any((id(bn), i) in outputs for i in (1, 2)) or any(
            v.index in (1, 2) for u, _ in users.get(id(bn), []) for v in u.inputs if v.node is bn):
        return False
    dtypes = {v.type.dtype for v in bn.inputs} | {v.type.dtype for v in conv.inputs}
    return len(dtypes) == 1 and dtypes <= {"float32", "float64"}


def _evaluate(value):
    """The array `value` holds when everything it depends on is constant (the references run)."""
    env = {}
    # the constant subgraph in topological order, walked without recursion (it may be a long chain)
    for node in Graph.from_outputs([], [value]).nodes:
        if node.is_const:
            env[id(node)] = (node.attrs["value"],)
            continue
        args = [env[id(v.node)][v.index] for v in node.inputs]
        env[id(node)] = tuple(np.asarray(o).astype(t.dtype, copy=False)
                              for o, t in zip(get_op(node.op).run(args, node.attrs), node.types))
    return env[id(value.node)][value.index]


def fold_batchnorm(graph: Graph, training: bool = False, fold_weights: bool | None = None) -> Graph:
    """Fold each inference BatchNorm that follows a Convolution into it (see the module doc).
    fold_weights: None = fold into the weights when they are constants, else scale the output."""
    users = graph.users()
    outputs = {(id(v.node), v.index) for v in graph.outputs}
    todo = {id(n) for n in graph.nodes if _foldable(n, users, outputs, training)}
    if not todo:
        return graph
    gb = GraphBuilder(graph.name)
    F = gb.F

    def fold(bn: Node):
        conv = bn.inputs[0].node
        x, w = (gb.wrap(v) for v in conv.inputs[:2])
        gamma, beta, mean, var = (gb.wrap(v) for v in bn.inputs[1:])
        a = bn.attrs
        nf = conv.attrs["num_filter"]
        scale = F.rsqrt(var + a["eps"])
        if not a["fix_gamma"]:
            scale = scale * gamma
        bias = gb.wrap(conv.inputs[2]) if not conv.attrs["no_bias"] else None
        shift = (beta - mean * scale) if bias is None else ((bias - mean) * scale + beta)
        nd = conv.types[0].ndim
        consts = w.value.node.is_const
        use_weights = consts if fold_weights is None else fold_weights
        attrs = dict(conv.attrs)
        if use_weights:
            w2 = w * F.Reshape(scale, shape=(nf,) + (1,) * (nd - 1))
            if consts and all(v.node.is_const for v in bn.inputs[1:]) and (bias is None or bias.value.node.is_const):
                w2 = gb.const(_evaluate(w2.value))
                shift = gb.const(_evaluate(shift.value))
            attrs["no_bias"] = False
            y = gb.emit("Convolution", [x.value, w2.value, shift.value], attrs, name=conv.name)
            out = y.out()
        else:
            attrs["no_bias"] = True
            y = gb.wrap(gb.emit("Convolution", [x.value, w.value], attrs, name=conv.name).out())
            shape = (1, nf) + (1,) * (nd - 2)
            out = (y * F.Reshape(scale, shape=shape) + F.Reshape(shift, shape=shape)).value
        return [out, bn.outputs[1], bn.outputs[2], bn.inputs[3], bn.inputs[4]]

    # rebuild's walk, deciding on the original nodes (a relinked node is a new object)
    mapping = {}

    def lookup(v):
        return mapping.get((id(v.node), v.index), v)
    for node in graph.nodes:
        if node.is_var:
            continue
        current = relink(node, [lookup(v) for v in node.inputs])
        outs = fold(current) if id(node) in todo else current.outputs
        for i, v in enumerate(outs):
            mapping[(id(node), i)] = v
    outputs = [lookup(v) for v in graph.outputs]
    return Graph.from_outputs(graph.inputs, outputs, graph.name, graph.output_tree)


def fold_batchnorm_inference(graph: Graph) -> Graph:
    """fold_batchnorm for a graph compiled for inference (the INFERENCE pipeline's step)."""
    return fold_batchnorm(graph, training=False)


__all__ = ["fold_batchnorm", "fold_batchnorm_inference"]
