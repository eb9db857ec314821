"""The fused log-softmax statistics node: what `passes/fuse_softmax_ce.py` builds and
`runtime/softmax_ce_kernel.py` lowers, stated once here so that neither imports the other.

A `_fused_softmax_ce` node reads x and, along `axis`, returns per row

    m  = max(x)                          (x's shape with `axis` of size 1)
    ls = log(sum(exp(x - m)))            (same shape)
    logp = (x - m) - ls                  (third output, only when `keep_logp`)

which is log_softmax(x) = logp exactly as passes/decompose.py writes it, so every consumer of
the log-probabilities can be rewritten in terms of x, m and ls with the same rounding: a
cross-entropy's pick(logp, label) is (pick(x, label) - m) - ls, and the softmax's gradient
reads exp((x - m) - ls) inside its own kernel. The kernel makes one pass over memory per row
(the row's max, then its exp-sum and the optional logp write hit the cache), where the
decomposition makes three passes over the whole tensor. `body` holds that decomposition as a
`FusedBody` (interpreters and the verifier run it); `softmax_ce_reference` is the numpy oracle.
"""
from __future__ import annotations

import numpy as np

from .builder import GraphBuilder
from .fused import FusedBody
from .types import TensorType

FUSED_SOFTMAX_CE = "_fused_softmax_ce"


def stats_type(x_type: TensorType, axis: int) -> TensorType:
    """The type of m and ls: x's with the reduced axis kept as size 1."""
    a = axis % x_type.ndim
    return x_type.with_(shape=tuple(1 if d == a else s for d, s in enumerate(x_type.shape)))   # (x's device too)


def stats_body(x_type: TensorType, axis: int, keep_logp: bool, name="softmax_ce") -> FusedBody:
    """The operators the node stands for (decompose_softmax's log_softmax, its m and ls exposed)."""
    b = GraphBuilder(f"{name}_body")
    F = b.F
    x = b.var("in0", x_type)
    m = F.max(x, axis=axis, keepdims=True)
    ls = F.log(F.sum(F.exp(x - m), axis=axis, keepdims=True))
    outs = [m, ls] + ([(x - m) - ls] if keep_logp else [])
    return FusedBody(b.build(outs))


def softmax_ce_reference(x, axis=-1):
    """numpy: (m, ls, logp) in x's dtype, by the two-pass formula."""
    m = x.max(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        ls = np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
        return m, ls, (x - m) - ls


__all__ = ["FUSED_SOFTMAX_CE", "stats_type", "stats_body", "softmax_ce_reference"]
