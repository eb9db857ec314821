"""fuse_attention: batch_dot -> (scale) -> (+ mask) -> softmax -> batch_dot becomes one
`_fused_attention` node (graphc.ops.fused_attention), which the CPU backend runs as one kernel
per row block: the scores of a block of queries live in a thread's stack while they are scaled,
masked, exponentiated and multiplied by V, instead of round trips of (N, Tq, Tk) tensors
through memory (the mask add, the softmax's max, sum and divide passes).

The pattern must be private: the scores and everything between them and the softmax have one
user and are not graph outputs. The probabilities may also be a graph output: a training
forward returns them to the backward (the softmax's gradient reads its output); the fused node
then has them as a second output, written once by the kernel, and the mask add, max, sum and
divide passes still disappear.
Runs in the LOWER pipeline before decompose_softmax (which would take the softmax apart).
GRAPHC_FUSE_ATTENTION=0 turns it off (A/B measurements; the program cache keys on the kernels,
so fused and unfused programs never share an entry).
"""
from __future__ import annotations

import os

from graphc.ops.fused import FusedBody
from graphc.ops.fused_attention import FUSED_ATTENTION
from graphc.ops.graph import Graph, Node, variable

from .rewrite import relink

# a row of scores (Tk values) sits in the kernel's stack buffer: bounded so the buffer stays
# small on any thread's stack (runtime/attention_kernel.py sizes blocks from this)
MAX_KEYS = 16384
_FLOATS = ("float32", "float64")
_SCALES = {"_mul_scalar": lambda s: s, "_div_scalar": lambda s: 1.0 / s if s else None}
_ADDS = ("broadcast_add", "elemwise_add")


def _broadcasts(shape, target) -> bool:
    """`shape` numpy-broadcasts to the 3-D `target` without growing it."""
    if len(shape) > 3:
        return False
    shape = (1,) * (3 - len(shape)) + tuple(shape)
    return all(a in (1, b) for a, b in zip(shape, target))


def _match(out: Node, users: dict, outputs: set):
    """The attention pattern ending at batch_dot `out`, or None: (first batch_dot, mask value or
    None, scale, mask_scale, members). Walks up from the second batch_dot through the softmax,
    then scalar scales and at most one mask add, to the first batch_dot. Walking up, `acc` is
    the product of the scales seen so far (the softmax's 1/temperature first): a mask added
    below them is scaled by it, and at the top it is the scale of the product itself."""
    def private(n: Node) -> bool:
        return (id(n), 0) not in outputs and len(users.get(id(n), [])) == 1 and len(n.types) == 1

    if out.op != "batch_dot" or out.attrs.get("transpose_a") or out.types[0].dtype not in _FLOATS:
        return None
    p = out.inputs[0].node
    if p.op != "softmax" or len(users.get(id(p), [])) != 1 or p.attrs.get("use_length") or p.types[0].ndim != 3 \
            or p.attrs.get("axis") not in (-1, 2) or p.inputs[0].type.dtype != p.types[0].dtype:
        return None
    t = p.attrs.get("temperature")
    if t == 0:
        return None             # the unfused graph's inf/nan, not a kernel's business
    acc = 1.0 / t if t is not None else 1.0
    mask, mask_scale, members = None, 1.0, [p, out]
    s = p.inputs[0].node
    while s.op != "batch_dot":
        if not private(s):
            return None
        if s.op in _SCALES:
            f = _SCALES[s.op](float(s.attrs["scalar"]))
            if f is None:
                return None     # a division by zero stays as written
            acc *= f
            up = s.inputs[0]
        elif s.op in _ADDS and mask is None:
            sides = [v for v in s.inputs if _leads_to_product(v.node, private)]
            if len(sides) != 1 or s.inputs[0] == s.inputs[1]:
                return None            # the scores must be one side, the mask the other
            up = sides[0]
            mask, mask_scale = s.inputs[1] if up is s.inputs[0] else s.inputs[0], acc
        else:
            return None
        members.insert(0, s)
        s = up.node
    if not private(s) or s.types[0].dtype != out.types[0].dtype:
        return None
    shape = s.types[0].shape
    if not 1 <= shape[2] <= MAX_KEYS or min(shape) < 1 or out.types[0].size == 0 or \
            min(v.type.size for v in s.inputs) == 0:
        return None             # empty operands: nothing worth a kernel
    if mask is not None and (mask.type.dtype != s.types[0].dtype or not _broadcasts(mask.type.shape, shape)):
        return None
    members.insert(0, s)
    return s, mask, acc, mask_scale, members


def _leads_to_product(n: Node, private) -> bool:
    """n is a batch_dot, or private scalar scales of one."""
    while n.op in _SCALES and private(n):
        n = n.inputs[0].node
    return n.op == "batch_dot"


def _body(members, inputs, keep_probs) -> FusedBody:
    """The replaced operators as a FusedBody: one variable per distinct external input, in the
    fused node's input order (q, k, v, mask); outputs the result (and the softmax's probabilities when the node keeps them)."""
    env, vars_, nodes = {}, {}, []
    for v in inputs:
        vars_.setdefault((id(v.node), v.index), variable(f"in{len(vars_)}", v.type))
    for n in members:
        ins = []
        for v in n.inputs:
            key = (id(v.node), v.index)
            ins.append(env[key] if key in env else vars_[key].out())
        c = Node(n.op, ins, n.attrs, n.name, n.types, n.hints)
        nodes.append(c)
        env[(id(n), 0)] = c.out()
    order = list(vars_.values())
    outs = [env[(id(members[-1]), 0)]] + ([env[(id(members[-2]), 0)]] if keep_probs else [])
    return FusedBody(Graph(order + nodes, order, outs, name=f"{members[-1].name}_body"))


def fuse_attention(graph: Graph) -> Graph:
    """Replace every attention pattern with a `_fused_attention` node (two outputs, the result
    and the probabilities, where the graph returns the probabilities)."""
    if os.environ.get("GRAPHC_FUSE_ATTENTION", "1").strip() == "0":
        return graph
    users = graph.users()
    outputs = {(id(v.node), v.index) for v in graph.outputs}
    found = {}
    for node in graph.nodes:
        if node.op == "batch_dot":
            m = _match(node, users, outputs)
            if m is not None:
                found[id(node)] = m
    if not found:
        return graph
    mapping = {}

    def lookup(v):
        return mapping.get((id(v.node), v.index), v)

    for node in graph.nodes:
        if node.is_var:
            continue
        current = relink(node, [lookup(v) for v in node.inputs])
        m = found.get(id(node))
        if m is None:
            for i, v in enumerate(current.outputs):
                mapping[(id(node), i)] = v
            continue
        first, mask, scale, mask_scale, members = m
        probs = node.inputs[0].node
        keep = (id(probs), 0) in outputs
        inputs = [first.inputs[0], first.inputs[1], node.inputs[1]] + ([mask] if mask is not None else [])
        attrs = {"body": _body(members, inputs, keep), "scale": scale, "mask_scale": mask_scale,
                 "trans_q": bool(first.attrs.get("transpose_a")), "trans_k": bool(first.attrs.get("transpose_b")),
                 "trans_v": bool(node.attrs.get("transpose_b")), "has_mask": mask is not None, "keep_probs": keep}
        types = list(node.types) + ([probs.types[0]] if keep else [])
        fused = Node(FUSED_ATTENTION, [lookup(v) for v in inputs], attrs, f"fused_{node.name}", types, node.hints)
        mapping[(id(node), 0)] = fused.out(0)
        if keep:
            mapping[(id(probs), 0)] = fused.out(1)
    return Graph.from_outputs(graph.inputs, [lookup(v) for v in graph.outputs], graph.name, graph.output_tree)


__all__ = ["fuse_attention", "MAX_KEYS"]
