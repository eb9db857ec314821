"""One compiled program per Trainer step for SGD: every parameter's update in one native call,
instead of a few numpy passes and Python bookkeeping per parameter (PyTorch calls this a
"fused" or "foreach" optimizer; MXNet has multi_sgd_update).

The update of all k parameters is a graph: inputs w_i, g_i (and mom_i), plus a float32 vector
of per-parameter coefficients (learning rate times its multipliers, weight decay, ...), so that
a changing learning rate never recompiles. Its outputs are written into the weight (and
momentum) arrays themselves: each output element depends only on the same element of the
inputs, which a fused elementwise kernel reads before it writes.

    g' = clip(rescale_grad * g_i)                       (clip only when clip_gradient is set)
    momentum == 0: w_i = (1 - lr_i * wd_i) * w_i - lr_i * g'
    else:          mom_i = momentum * mom_i - lr_i * wd_i * w_i - lr_i * g';  w_i += mom_i
(the same formulas, in the same float32 order, as optimizer.SGD.update).
"""
from __future__ import annotations

import numpy as np

from ..ops.builder import GraphBuilder
from ..ops.types import TensorType

_COEFS = 3      # per parameter: lr * rescale_grad, 1 - lr * wd (or lr * wd), lr


def _graph(shapes, momentum: float, clip):
    b = GraphBuilder("sgd_step")
    F = b.F
    k = len(shapes)
    coef = b.var("coef", TensorType((k * _COEFS,), "float32"), "input")
    outs_w, outs_m = [], []
    for i, shape in enumerate(shapes):
        w = b.var(f"w{i}", TensorType(shape, "float32"), "input")
        g = b.var(f"g{i}", TensorType(shape, "float32"), "input")
        c = [F.slice_axis(coef, axis=0, begin=i * _COEFS + j, end=i * _COEFS + j + 1) for j in range(_COEFS)]
        if clip is None:
            step = F.broadcast_mul(g, c[0])                      # lr * rescale * g
        else:
            # rescale first (c[0] holds rescale here), clip, then the learning rate
            step = F.broadcast_mul(F.clip(F.broadcast_mul(g, c[0]), a_min=-clip, a_max=clip), c[2])
        if momentum == 0.0:
            outs_w.append(F.broadcast_mul(w, c[1]) - step)       # c[1] = 1 - lr * wd
        else:
            m = b.var(f"m{i}", TensorType(shape, "float32"), "input")
            new_m = F.broadcast_mul(m, F.ones_like(c[1]) * momentum) - F.broadcast_mul(w, c[1]) - step
            outs_m.append(new_m)                                  # c[1] = lr * wd
            outs_w.append(w + new_m)
    return b.build([v.value for v in outs_m + outs_w])


class FusedSGD:
    """The compiled step for one set of parameter shapes and settings (momentum, clipping)."""

    def __init__(self, shapes, momentum, clip):
        from ..compiler import compile_graph
        # flat: parameters of equal size share their kernels (LLVM's time grows with the
        # number of distinct kernels: ResNet-50's 299 parameters, 3.1 s as shaped)
        self.shapes = [(int(np.prod(s)),) for s in shapes]
        self.momentum, self.clip = momentum, clip
        self.program = compile_graph(_graph(self.shapes, momentum, clip))
        self.coef = np.empty(len(self.shapes) * _COEFS, np.float32)

    def __call__(self, opt, indices, weights, grads, states):
        coef = self.coef
        for i, idx in enumerate(indices):
            lr, wd = opt._get_lr(idx), opt._get_wd(idx)
            base = i * _COEFS
            coef[base] = opt.rescale_grad if self.clip is not None else lr * opt.rescale_grad
            coef[base + 1] = (1.0 - lr * wd) if self.momentum == 0.0 else lr * wd
            coef[base + 2] = lr
        inputs = [coef]
        ws = [w._data.reshape(-1) for w in weights]
        ms = [s._data.reshape(-1) for s in states] if self.momentum != 0.0 else []
        for i, (w, g) in enumerate(zip(ws, grads)):
            inputs += [w, g._data.reshape(-1)]
            if ms:
                inputs.append(ms[i])
        outs = ms + ws
        self.program(inputs, outs)


# The program has a few kernel calls per parameter, and LLVM's time grows with them: ResNet-50's
# 299 parameters took 3 s to compile (once per process; 13 ms per step after that, against about
# 40 ms in numpy). Above this many parameters the per-parameter numpy updates run instead.
MAX_PARAMETERS = 32


def fused_sgd_applies(opt, weights, grads, states) -> bool:
    """Float32, C-contiguous, writeable weights and gradients on the CPU, the plain SGD class,
    no float16 master copies, and few enough parameters to compile quickly."""
    from .optimizer import SGD
    if type(opt) is not SGD or not weights:     # multi_precision: float16 weights fail the dtype test below
        return False
    if len(weights) > MAX_PARAMETERS:
        return False
    for w, g in zip(weights, grads):
        a, d = w._data, g._data
        if a.dtype != np.float32 or d.dtype != np.float32 or a.shape != d.shape or a.size == 0 \
                or not a.flags.c_contiguous or not a.flags.writeable or not d.flags.c_contiguous:
            return False
    if opt.momentum != 0.0 and any(s is None or s._data.dtype != np.float32 or not s._data.flags.c_contiguous
                                   for s in states):
        return False
    return True


__all__ = ["FusedSGD", "fused_sgd_applies"]
