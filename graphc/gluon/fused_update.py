"""One native call per Trainer step for SGD: every parameter's update, each in one pass over its
weight, gradient and momentum, instead of a few numpy passes and Python bookkeeping per parameter
(PyTorch calls this a "fused" or "foreach" optimizer; MXNet has multi_sgd_update).

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

_COEFS = 3      # per parameter: lr * rescale_grad, 1 - lr * wd (or lr * wd), lr
_F32 = "float32"


def _formulas(momentum: float, clip):
    """The update's outputs as formulas over arg 0-2 = the parameter's coefficients, 3 = w,
    4 = g, 5 = m: (momentum, weight) with momentum, (weight,) without."""
    c0, c1, c2, w, g = (S.arg(i, _F32) for i in range(5))
    if clip is None:
        step = g * c0                                           # lr * rescale * g
    else:
        # rescale first (c0 holds rescale here), clip (the clip operator's own formula), then lr
        step = get_op("clip").lowering.formula(g * c0, a_min=-clip, a_max=clip) * c2
    if momentum == 0.0:
        return (w * c1 - step,)                                 # c1 = 1 - lr * wd
    m = S.arg(5, _F32)
    new_m = m * S.const(np.float32(momentum).item(), _F32) - w * c1 - step     # c1 = lr * wd
    return new_m, w + new_m


def _kernel(n: int, momentum: float, clip):
    """The update of one parameter of n elements: one parallel loop, one pass."""
    from ..runtime.kernel_ir import Buf, Index, Kernel, Load, Loop
    from ..runtime.kernel_program import MultiStore
    from ..runtime.lower import PARALLEL_WORK
    at = Index((("i", 1),))
    names = ["w", "g"] + (["m"] if momentum != 0.0 else [])
    args = tuple(Load("coef", Index((), j)) for j in range(_COEFS)) + tuple(Load(b, at) for b in names)
    exprs = _formulas(momentum, clip)
    # flags=(): no multiply-add contraction, so the results are the numpy update's, bit for bit
    stmt = MultiStore(("m", "w") if len(exprs) == 2 else ("w",), at, exprs, args, flags=())
    work = n * 8
    bufs = [Buf("coef", _F32, _COEFS)] + [Buf(b, _F32, n) for b in names]
    return Kernel("sgd_update", bufs, [Loop("i", n, [stmt], parallel=work >= PARALLEL_WORK)], work)


class FusedSGD:
    """The compiled step for one set of parameter shapes and settings (momentum, clipping), for
    the CPU device `device` (its worker pool runs the parallel loops)."""

    def __init__(self, shapes, momentum, clip, device: int = 0):
        from ..runtime.kernel_program import KernelProgram
        # flat: parameters of equal size share their kernel (compiled once)
        self.sizes = [int(np.prod(s)) for s in shapes]
        self.momentum, self.clip = momentum, clip
        per = 3 if momentum != 0.0 else 2                # arrays per parameter: w, g (, m)
        kernels, calls = {}, []
        for i, n in enumerate(self.sizes):
            k = kernels.get(n)
            if k is None:
                k = kernels[n] = _kernel(n, momentum, clip)
            coef = (0, i * _COEFS * 4)                   # this parameter's coefficients (bytes)
            calls.append((k, [coef] + [1 + per * i + j for j in range(per)]))
        self.program = KernelProgram("sgd_step", calls, 1 + per * len(self.sizes), device)
        self.coef = np.empty(len(self.sizes) * _COEFS, np.float32)

    def __call__(self, opt, indices, weights, grads, states):
        coef = self.coef
        for i, idx in enumerate(indices):
            lr, wd = opt._get_lr(idx), opt._get_wd(idx)
            base = i * _COEFS
            coef[base] = opt.rescale_grad if self.clip is not None else lr * opt.rescale_grad
            coef[base + 1] = (1.0 - lr * wd) if self.momentum == 0.0 else lr * wd
            coef[base + 2] = lr
        # the arrays themselves, not flat views: the kernels index them flat (C-contiguous, as
        # fused_sgd_applies requires), and the program skips re-binding the same objects
        arrays = [coef]
        if self.momentum != 0.0:
            for w, g, m in zip(weights, grads, states):
                arrays += (w._data, g._data, m._data)
        else:
            for w, g in zip(weights, grads):
                arrays += (w._data, g._data)
        self.program(arrays)


# LLVM's time grows with the number of distinct kernels, one per distinct parameter size here:
# ResNet-18's 62 parameters (17 sizes) compile in 0.65 s, ResNet-50's 193 (22 sizes) in 0.84 s, on
# a loaded 2-core machine (as a graph with a few kernels per parameter, ResNet-50 took 3 s, hence
# the old limit of 32). densenet201 (604 parameters, 121 sizes): first step 0.6 s with the compile,
# then 14-15 ms per step against 47 ms for the per-parameter numpy updates (SGD momentum, quiet
# 2-core Xeon). Above this many parameters the per-parameter numpy updates run instead.
MAX_PARAMETERS = 4096


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


__all__ = ["FusedSGD", "fused_sgd_applies"]
