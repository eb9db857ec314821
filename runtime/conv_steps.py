"""Steps for convolution-family and pooling nodes of a fused, planned graph: the kernels of
runtime/conv.py and runtime/pool.py bound to the node's placements (one image of a batch is
a byte offset into its buffer), the step's arena scratch, and the epilogue of a `_fused_conv`.

`lower_conv_family(node, ...)` is lower_node's hook: steps, or None for any other node.
"""
from __future__ import annotations

import hashlib

import numpy as np

from graphc.ops import scalar as S
from graphc.ops.fused import FUSED_CONV, CONV_ROLES, body_of, conv_geometry, conv_node_of
from graphc.ops.memory_plan import Placement
from graphc.ops.registry import has_op

from . import conv as _conv
from . import pool as _pool
from .lower import KernelStep, compose, elementwise_kernel, _ident


def _epilogue(node, body, core, bias, names, pl_in, pl_out) -> list:
    """The elementwise epilogue over the convolution's output, in place, right after it: `arg
    n_ext` reads the raw result, to which the bias (body input position, type broadcast over the
    channel axis) is added first. No step when there is nothing to do."""
    out_type = node.types[0]
    in_types = [v.type for v in node.inputs]
    bufs_in = [f"in{k}" for k in range(len(node.inputs))]
    n_ext = len(body.inputs)
    if bias is None and len(body.op_nodes()) == 1:
        return []
    raw = S.arg(n_ext, out_type.dtype)
    ep_types = in_types + [out_type]
    ep_bufs = bufs_in + ["out"]
    if bias is not None:
        ep_types.append(bias[1])
        ep_bufs.append(bufs_in[bias[0]])

    def leaf(n, args):
        if n is core and bias is not None:
            return raw + S.arg(n_ext + 1, out_type.dtype)
        return raw
    expr = compose(body, leaf)
    ek = elementwise_kernel("k", expr, out_type, ep_types, ep_bufs, "out", frozenset({"out"}))
    ek.name = f"k_epilogue_{hashlib.sha1(str(ek).encode()).hexdigest()[:12]}"   # equal epilogues share code
    return [KernelStep(ek, {"out": pl_out[0], **dict(zip(bufs_in, pl_in))})]


def _shifted(p: Placement, elems: int, itemsize: int, nbytes: int) -> Placement:
    return Placement(p.kind, p.index, p.offset + elems * itemsize, nbytes, p.device)


def _conv_steps(node, plan, names, pl_in, pl_out) -> list:
    body = body_of(node)
    conv = conv_node_of(node) if node.op == FUSED_CONV else body.outputs[0].node
    pos = {id(v): k for k, v in enumerate(body.inputs)}
    roles = _conv.operand_values(conv)
    itemsize = np.dtype(conv.types[0].dtype).itemsize

    def placement(role):
        where, k = roles[role]
        return pl_out[0] if where == "out" else pl_in[pos[id(conv.inputs[k].node)]]
    places = {r: placement(r) for r in roles}
    places["scratch"] = plan.scratch.get(id(node))
    steps = []
    for call in _conv.conv_calls(conv, names):
        bind = {}
        for buf in call.kernel.bufs:
            role, off = call.operands[buf.name]
            bind[buf.name] = _shifted(places[role], off, itemsize, buf.size * itemsize)
        steps.append(KernelStep(call.kernel, bind))
    bias = None
    if conv.op in ("Convolution", "Deconvolution") and not conv.attrs.get("no_bias", False) and len(conv.inputs) > 2:
        bt = conv.inputs[2].type
        bias = (pos[id(conv.inputs[2].node)], bt.with_(shape=(bt.size,) + (1,) * (conv.types[0].ndim - 2)))
    return steps + _epilogue(node, body, conv, bias, names, pl_in, pl_out)


def lower_conv_family(node, plan, names, pl_in, pl_out):
    """Steps for a convolution-family node (alone or the core of a `_fused_conv`), or a Pooling
    node, adaptive average pooling, or a pooling gradient (`_pooling_grad`, `_max_pool_gather`,
    `_adaptive_avg_pool_grad`) that lowers natively; None
    for anything else (the caller falls back to the host)."""
    if node.op == FUSED_CONV or (has_op(node.op) and node.op in CONV_ROLES):
        conv = conv_node_of(node)
        if conv is not None and conv_geometry(conv) is not None:
            return _conv_steps(node, plan, names, pl_in, pl_out)
        return None
    if has_op(node.op) and _pool.is_native_pool(node):
        k = _pool.pool_kernel("k_pool", node, "in0", "out")
        return [KernelStep(_named("pool", k), {"out": pl_out[0], "in0": pl_in[0]})]
    if has_op(node.op) and _pool.pool_grad_params(node) is not None:
        if node.op == "_max_pool_gather":
            k = _named("poolgather", _pool.max_pool_gather_kernel("k", node))
        else:
            k = _named("poolgrad", _pool.pool_grad_kernel("k", node))
        bufs = {b.name for b in k.bufs}
        return [KernelStep(k, {"out": pl_out[0], **{b: p for b, p in (("in0", pl_in[0]), ("in1", pl_in[1]))
                                                     if b in bufs}})]
    if has_op(node.op) and _pool.is_native_adaptive_pool(node):
        k = _named("adaptivepool", _pool.adaptive_pool_kernel("k", node))
        return [KernelStep(k, {"out": pl_out[0], "in0": pl_in[0]})]
    return None


def _named(kind, kernel):
    """Name a kernel after its kind and content: equal pools compile once."""
    kernel.name = f"k_{kind}_{hashlib.sha1(str(kernel).encode()).hexdigest()[:12]}"
    return kernel


__all__ = ["lower_conv_family"]
