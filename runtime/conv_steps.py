"""Steps for convolution-family and pooling nodes of a fused, planned graph: the kernels of
runtime/conv.py and runtime/pool.py bound to the node's placements (one image of a batch is
a byte offset into its buffer), the step's arena scratch, and the epilogue of a `_fused_conv`
(a step after the convolution, or, for Winograd, applied by its output transform).

`lower_conv_family(node, ...)` is lower_node's hook: steps, or None for any other node.
"""
from __future__ import annotations

import hashlib

import numpy as np

from graphc.ops import scalar as S
from graphc.ops.fused import FUSED_CONV, CONV_ROLES, body_of, conv_geometry, conv_node_of, uses_winograd
from graphc.ops.memory_plan import Placement
from graphc.ops.registry import has_op

from . import conv as _conv
from . import pool as _pool
from .lower import KernelStep, broadcast_strides, compose, elementwise_kernel, remap_args, used_args, _ident
from .winograd import Epilogue, folds


def _epilogue_formula(node, body, core, bias):
    """(expr, types, buffer names) of the elementwise epilogue over the convolution's output,
    or None when there is nothing to do: `arg n_ext` (buffer "out") reads the raw result, to
    which the bias (body input position, type broadcast over the channel axis) is added first."""
    out_type = node.types[0]
    in_types = [v.type for v in node.inputs]
    bufs_in = [f"in{k}" for k in range(len(node.inputs))]
    n_ext = len(body.inputs)
    if bias is None and len(body.op_nodes()) == 1:
        return None
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
    return compose(body, leaf), ep_types, ep_bufs


def _fold_epilogue(node, formula):
    """The epilogue as the Winograd output transform applies it: the raw result is its last
    argument, every other operand read at the output's index (broadcast strides). None where
    an operand has another dtype than the result (its chunk offsets count the result's
    elements) or one buffer is read under two types: the epilogue then runs as a step."""
    expr, types, bufs = formula
    raw = bufs.index("out")
    used = [u for u in used_args(expr) if u != raw]
    if any(types[u].dtype != node.types[0].dtype for u in used) or len({bufs[u] for u in used}) < len(used):
        return None         # (one buffer read as two types: the bias both as the conv's and as a body input)
    expr = remap_args(expr, {**{u: j for j, u in enumerate(used)}, raw: len(used)})
    shape = node.types[0].shape
    return Epilogue(expr, tuple((bufs[u], types[u].dtype, broadcast_strides(types[u].shape, shape)) for u in used))


def _epilogue(node, body, core, bias, names, pl_in, pl_out) -> list:
    """The elementwise epilogue over the convolution's output, in place, right after it (see
    _epilogue_formula). No step when there is nothing to do."""
    formula = _epilogue_formula(node, body, core, bias)
    if formula is None:
        return []
    expr, ep_types, ep_bufs = formula
    out_type = node.types[0]
    bufs_in = [f"in{k}" for k in range(len(node.inputs))]
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
    bias = None
    if conv.op in ("Convolution", "Deconvolution") and not conv.attrs.get("no_bias", False) and len(conv.inputs) > 2:
        bt = conv.inputs[2].type
        bias = (pos[id(conv.inputs[2].node)], bt.with_(shape=(bt.size,) + (1,) * (conv.types[0].ndim - 2)))
    # a Winograd convolution applies its epilogue as its output transform stores the result
    # (one write of the output, no pass over it after); the others run it as a step after
    formula = _epilogue_formula(node, body, conv, bias)
    folded = None
    if formula is not None and folds() and uses_winograd(conv, conv_geometry(conv)) and len(node.types) == 1 \
            and node.types[0].shape == conv.types[0].shape and node.types[0].dtype == conv.types[0].dtype:
        folded = _fold_epilogue(node, formula)
        places.update({f"in{k}": p for k, p in enumerate(pl_in)})
    steps = []
    for call in _conv.conv_calls(conv, names, folded):
        bind = {}
        for buf in call.kernel.bufs:
            role, off = call.operands[buf.name]
            bind[buf.name] = _shifted(places[role], off, itemsize, buf.size * itemsize)
        steps.append(KernelStep(call.kernel, bind))
    return steps if folded is not None else steps + _epilogue(node, body, conv, bias, names, pl_in, pl_out)


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
