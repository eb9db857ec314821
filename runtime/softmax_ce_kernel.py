"""The CPU kernel of a `_fused_softmax_ce` node (graphc.ops.fused_softmax_ce): a log_softmax's
row statistics (and, when kept, the log-probabilities) in one parallel loop over rows.

Per row of n elements along the axis, the loop body sweeps the row three times: max, then
sum(exp(x - max)), then (only with keep_logp) logp = (x - max) - log(sum). Only the first sweep
reads memory; a row (40 KB for 10 000 float32 classes) is in cache for the others. That is one
memory pass where the decomposition (a max kernel, an exp-sum kernel, an elementwise kernel) made
three over the whole tensor, with one exp per element: an online max with a rescaled sum would
read the row once but pay a second exp per element, which costs more than the cache-resident
re-read it saves. The sweeps are ordinary kernel IR (DeclareAcc, Accumulate, Store), so they
vectorise and use the same exp and log as the decomposition's kernels: the values are the same.
"""
from __future__ import annotations

import math

from graphc.ops import scalar as S
from graphc.ops.fused_softmax_ce import FUSED_SOFTMAX_CE

from .kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Index, Kernel, Load, Loop, Store


def softmax_ce_kernel(name, node) -> Kernel:
    """Outputs m, ls[, logp] over input x, rows along node.attrs['axis']."""
    from .lower import PARALLEL_WORK     # lower.py imports this module at its end
    xt = node.inputs[0].type
    dt = xt.dtype
    a = node.attrs["axis"] % xt.ndim
    outer, n, inner = math.prod(xt.shape[:a]), xt.shape[a], math.prod(xt.shape[a + 1:])
    keep = bool(node.attrs.get("keep_logp"))
    row = [("so", inner)] + ([("si", 1)] if inner > 1 else [])
    at = Index(tuple([("so", n * inner), ("sj", inner)] + ([("si", 1)] if inner > 1 else [])))
    r = Index(tuple(row))
    x = Load("x", at)
    body = [DeclareAcc("smax", dt, "max"),
            Loop("sj", n, [Accumulate("smax", "max", S.arg(0, dt), (x,))]),
            DeclareAcc("ssum", dt, "sum"),
            Loop("sj", n, [Accumulate("ssum", "sum", S.call("exp", S.arg(0, dt) - S.arg(1, dt)), (x, AccRef("smax")))]),
            Store("m", r, S.arg(0, dt), (AccRef("smax"),)),
            Store("ls", r, S.call("log", S.arg(0, dt)), (AccRef("ssum"),))]
    if keep:
        body.append(Loop("sj", n, [Store("logp", at, (S.arg(0, dt) - S.arg(1, dt)) - S.arg(2, dt),
                                         (x, Load("m", r), Load("ls", r)))]))
    if inner > 1:
        body = [Loop("si", inner, body)]
    work = xt.size * (8 if keep else 6)
    loop = Loop("so", outer, body, parallel=work >= PARALLEL_WORK and outer > 1, independent=True)
    bufs = [Buf("m", dt, outer * inner), Buf("ls", dt, outer * inner)] + \
        ([Buf("logp", dt, xt.size)] if keep else []) + [Buf("x", dt, xt.size)]
    return Kernel(name, bufs, [loop], work)


def lower_softmax_ce(node, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: the step of a `_fused_softmax_ce` node (None for any other node)."""
    if node.op != FUSED_SOFTMAX_CE:
        return None
    from .lower import KernelStep
    k = softmax_ce_kernel(names("k_softmax_ce_"), node)
    bind = {"m": pl_out[0], "ls": pl_out[1], "x": pl_in[0]}
    if len(pl_out) > 2:
        bind["logp"] = pl_out[2]
    return [KernelStep(k, bind)]


__all__ = ["softmax_ce_kernel", "lower_softmax_ce"]
