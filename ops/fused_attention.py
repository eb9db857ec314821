"""The fused attention node: what `passes/fuse_attention.py` builds and `runtime/attention_kernel.py`
lowers, stated once here so that neither imports the other (a backend never imports a pass).

A `_fused_attention` node computes, per matrix n of the batch,

    S = scale * op_q(q[n]) @ op_k(k[n]) + mask_scale * mask[n]   (mask broadcast to (Tq, Tk))
    out[n] = softmax(S, axis=-1) @ op_v(v[n])

without storing S or the probabilities: those are the (N, Tq, Tk) tensors that dominate an
attention layer's memory traffic. A softmax temperature t is folded into both scales (S / t).
Inputs are q, k, v and, when `has_mask`, the mask; `trans_q`, `trans_k`, `trans_v` are the
transpose flags of the two batch_dots it replaces (so `trans_k` is True for the usual
`batch_dot(q, k, transpose_b=True)`). With `keep_probs` the node has a second output,
softmax(S) itself (a training forward returns it for the softmax's gradient). `body` holds the replaced operators as
a `FusedBody`: the node prints as what it came from, and `attention_reference` is the numpy
oracle tests compare the kernel with.
"""
from __future__ import annotations

import numpy as np

FUSED_ATTENTION = "_fused_attention"


def attention_reference(q, k, v, mask=None, *, scale=1.0, mask_scale=1.0, trans_q=False, trans_k=True,
                        trans_v=False):
    """numpy: the unfused computation, in the inputs' dtype, softmax stabilised by the row max."""
    qq = np.swapaxes(q, 1, 2) if trans_q else q
    kk = k if trans_k else np.swapaxes(k, 1, 2)            # (N, Tk, D)
    vv = np.swapaxes(v, 1, 2) if trans_v else v            # (N, Tk, Dv)
    s = np.matmul(qq, np.swapaxes(kk, 1, 2)) * q.dtype.type(scale)
    if mask is not None:
        s = s + mask.astype(q.dtype) * q.dtype.type(mask_scale)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    p = e / e.sum(axis=-1, keepdims=True)
    return np.matmul(p, vv).astype(q.dtype, copy=False)


__all__ = ["FUSED_ATTENTION", "attention_reference"]
