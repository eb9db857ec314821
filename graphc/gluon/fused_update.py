"""One native call per Trainer step for SGD: every parameter's update, each in one pass over its
weight, gradient and momentum, instead of a few numpy passes and Python bookkeeping per parameter
(PyTorch calls this a "fused" or "foreach" optimizer; MXNet has multi_sgd_update). The step and
its kernels are fused_optimizers.py's, shared with Adam and the others: this module holds SGD's
rule (its formulas and coefficients) and when it applies.

Each parameter's update is one kernel (runtime/kernel_program.py) over its flattened elements,
reading a float32 vector of per-parameter coefficients (learning rate times its multipliers,
weight decay, ...), so that a changing learning rate never recompiles. With momentum it has two
outputs, the momentum and the weight, both computed from one load of w, g and m and stored in
place (runtime/kernel_program.MultiStore): 20 bytes of memory traffic per element. Written as a
graph, the fuser's one-output groups made it two passes, the second reading the new momentum
back (28 bytes per element; W7's MLP: 2.7 MB per array, past the caches).

    g' = clip(rescale_grad * g_i)                       (clip only when clip_gradient is set)
    momentum == 0: w_i = (1 - lr_i * wd_i) * w_i - lr_i * g'
    else:          mom_i = momentum * mom_i - lr_i * wd_i * w_i - lr_i * g';  w_i += mom_i
(the same formulas, in the same float32 order and roundings, as optimizer.SGD.update: bit for
bit). NAG without momentum is SGD's update and takes this path too.
"""
from __future__ import annotations

import numpy as np

from ..ops import scalar as S
from ..ops.registry import get_op
from .fused_optimizers import MAX_PARAMETERS, FusedStep, _Rule, _kernel as _rule_kernel

_F32 = "float32"


class _SGD(_Rule):
    """SGD.update as one rule of fused_optimizers.py. Coefficients: c0 = lr * rescale_grad (the
    rescale alone when clipping: the clip comes between), c1 = 1 - lr * wd without momentum or
    lr * wd with it, lr."""
    name = "sgd"
    coef_names = ("c0", "c1", "lr")

    def __init__(self, momentum: float, clip):
        self.clip, self.momentum = clip, momentum
        self.key = ("SGD", clip, momentum)
        if momentum == 0.0:
            self.bufs, self.outs = ("w", "g"), ("w",)
        else:
            self.bufs, self.outs = ("w", "g", "m"), ("m", "w")

    def formulas(self, c, a):
        w, g = a["w"], a["g"]
        if self.clip is None:
            step = g * c["c0"]                                      # lr * rescale * g
        else:
            # rescale first, clip (the clip operator's own formula), then lr
            step = get_op("clip").lowering.formula(g * c["c0"], a_min=-self.clip, a_max=self.clip) * c["lr"]
        if self.momentum == 0.0:
            return (w * c["c1"] - step,)                            # c1 = 1 - lr * wd
        new_m = a["m"] * S.const(np.float32(self.momentum).item(), _F32) - w * c["c1"] - step
        return new_m, w + new_m

    def coefs(self, opt, idx):
        lr, wd = opt._get_lr(idx), opt._get_wd(idx)
        return (opt.rescale_grad if self.clip is not None else lr * opt.rescale_grad,
                (1.0 - lr * wd) if self.momentum == 0.0 else lr * wd, lr)

    def states(self, state):
        return [state] if self.momentum != 0.0 else []


def _kernel(n: int, momentum: float, clip):
    """The update of one parameter of n elements: one parallel loop, one pass."""
    return _rule_kernel(n, _SGD(momentum, clip))


def sgd_rule(opt) -> _SGD:
    """The compiled-step rule of SGD optimizer `opt` (where fused_sgd_applies)."""
    return _SGD(opt.momentum, opt.clip_gradient if opt._clipping() else None)


class FusedSGD(FusedStep):
    """The compiled step for one set of parameter shapes and settings (momentum, clipping), for
    the CPU device `device` (its worker pool runs the parallel loops)."""

    def __init__(self, shapes, momentum, clip, device: int = 0):
        super().__init__(shapes, _SGD(momentum, clip), device)


def fused_sgd_applies(opt, weights, grads, states) -> bool:
    """Float32, C-contiguous, writeable weights and gradients on the CPU, the plain SGD class (or
    NAG without momentum, which is SGD.update), no float16 master copies, and few enough
    parameters to compile quickly."""
    from .optimizer import NAG, SGD
    if not (type(opt) is SGD or (type(opt) is NAG and opt.momentum == 0.0)) or not weights:
        return False        # multi_precision: float16 weights fail the dtype test below
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


__all__ = ["FusedSGD", "fused_sgd_applies", "sgd_rule"]
