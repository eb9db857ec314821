"""The Trainer's optimizer step for parameters on a GPU: every parameter's update as one kernel
launch over its device memory, from the same update rules as the CPU's compiled step
(fused_update.py for SGD, fused_optimizers.py for Adam, AdamW, NAG, RMSProp, AdaGrad; gpu_rules.py
for AdaDelta, Adamax, Nadam, Signum, FTML, Ftrl, DCASGD, which only the GPU compiles).

Why: the CPU step (an LLVM program over numpy buffers) cannot touch device memory, and running
the numpy updates on GPU arrays would download every weight, gradient and state and upload them
again each step. Here the weights never leave the GPU; per step only the float32 vector of
per-parameter coefficients (learning rates, decay, Adam's bias correction) is uploaded, one
small copy, so a changing learning rate never recompiles.

Each rule's formulas become one CUDA kernel per distinct parameter size (runtime/render_cuda.py
renders it; one module per step, loaded once per device). The CPU kernels use
kernel_program.MultiStore (all loads, then all stores: an update is in place, and the weight's
new value must not be read by the moments' formulas); render_cuda has no such statement, so each
output is first computed into a scalar temporary (an accumulator declared at its identity and
combined once with `max`, which returns the value exactly: max(-inf, v) = v, NaN stays NaN, -0
stays -0), and the stores follow. The GPU rounds like numpy except where nvcc contracts a
multiply and an add into one fused operation, so results agree with the CPU step to float32
rounding, not bit for bit.

Anything the rules do not cover takes the optimizer's own per-parameter update: LAMB,
GroupAdaGrad and SGLD run it as eager GPU operators (optimizers_on_device.py); the rest (LBSGD,
float16 weights, sparse gradients) work on GPU arrays through their host mirrors (slow, correct).
`stats()` counts compiled steps and fallbacks, so that tests and users can see which one ran.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..ops import scalar as S
from .fused_optimizers import MAX_PARAMETERS, _rules, _NAG, rule_formulas
from .gpu_rules import make_rule

_F32 = "float32"
_stats = {"compiled_steps": 0, "host_updates": 0}


def stats() -> dict:
    """compiled_steps: Trainer updates of GPU weights run as one compiled step; host_updates:
    those that fell back to the optimizer's own update (see the module docstring for where
    that runs)."""
    return dict(_stats)


def is_gpu(arr) -> bool:
    return arr is not None and arr.context.device_type == "gpu"  # (a GpuNDArray: ndarray/gpu.py)


def _kernel(n: int, rule, tag: str):
    """The in-place update of one parameter of n float32 elements (see the module docstring)."""
    from ..runtime.kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Kernel, Loop, Store
    at, args, exprs = rule_formulas(rule)
    nc = len(rule.coef_names)
    body = []
    for k in range(len(rule.outs)):
        body.append(DeclareAcc(f"t{k}", _F32, "max"))
    for k, expr in enumerate(exprs):
        body.append(Accumulate(f"t{k}", "max", expr, args))
    for k, out in enumerate(rule.outs):
        body.append(Store(out, at, S.arg(0, _F32), (AccRef(f"t{k}"),)))
    bufs = [Buf("coef", _F32, nc)] + [Buf(b, _F32, n) for b in rule.bufs]
    return Kernel(f"{rule.name}_gpu_update_{n}_{tag}", bufs, [Loop("i", n, body, parallel=True)])


class GpuStep:
    """The step of one rule for one list of parameter shapes on GPU `device`: kernels compiled
    and loaded once; each call uploads the coefficients and launches one kernel per parameter,
    in order on the device's stream (no wait: later work on the device sees the new weights)."""

    def __init__(self, shapes, rule, device: int):
        from ..runtime.cuda.driver import require_driver
        from ..runtime.cuda.launch_plan import launch_shape
        from ..runtime.cuda.memory import allocator
        from ..runtime.render_cuda import render_cuda, render_cuda_module
        self.rule, self.device = rule, device
        self.driver = require_driver(f"the {rule.name} step on gpu({device})")
        self.sizes = [int(np.prod(s)) for s in shapes]
        tag = hashlib.sha1(repr(rule.key).encode()).hexdigest()[:10]
        kernels = {}
        for n in self.sizes:
            if n not in kernels:
                kernels[n] = _kernel(n, rule, tag)
        module = self.driver.load_module(device, render_cuda_module(list(kernels.values())))
        sms = self.driver.multiprocessor_count(device)
        self.launches = []
        for n in self.sizes:
            k = kernels[n]
            _, launch = render_cuda(k)
            grid, block = launch_shape(k, launch, sms)
            self.launches.append((module.function(k.name), grid, block))
        self.nc = len(rule.coef_names)
        self.coef = np.empty(len(self.sizes) * self.nc, np.float32)
        self.coef_buf = allocator(device).allocate(self.coef.nbytes)

    def __call__(self, opt, indices, weights, grads, states):
        from ..ndarray.gpu import device_buffer, storage
        from ..runtime import trace as _trace
        t0 = _trace.now() if _trace.symbolic else 0
        rule, nc = self.rule, self.nc
        for i, idx in enumerate(indices):
            self.coef[i * nc:(i + 1) * nc] = rule.coefs(opt, idx)
        self.driver.memcpy_htod(self.device, self.coef_buf.ptr, self.coef)
        for i, (w, g, s) in enumerate(zip(weights, grads, states)):
            arrays = [w, g] + list(rule.states(s))
            ptrs = [self.coef_buf.ptr + 4 * nc * i] + [device_buffer(x).ptr for x in arrays]
            fn, grid, block = self.launches[i]
            self.driver.launch(self.device, fn, grid, block, ptrs)
        for w, s in zip(weights, states):
            for x in [w] + list(rule.states(s)):
                storage(x).written_on_device()
        if t0:          # mx.profiler: a span on the 'gpu/k' track (runtime/trace.py)
            _trace.gpu_span(f"{rule.name} update", "gpu update", t0, self.device, self.driver.synchronize,
                            {"parameters": len(weights)})


def _ok(x, like=None) -> bool:
    return (is_gpu(x) and x.stype == "default" and np.dtype(x.dtype) == np.float32 and x.size > 0
            and (like is None or (tuple(x.shape) == tuple(like.shape) and x.context == like.context)))


def gpu_rule(opt, weights, grads, states):
    """The compiled-step rule for `opt` when every weight, gradient and state is a float32 dense
    array on one GPU (the CPU step's conditions, fused_optimizers.fused_rule, read without
    touching the data); None otherwise."""
    from .fused_update import sgd_rule
    from .optimizer import NAG, SGD
    if not weights or len(weights) > MAX_PARAMETERS:
        return None
    if type(opt) is SGD or (type(opt) is NAG and opt.momentum == 0.0):
        rule = sgd_rule(opt)
    else:
        make = _rules().get(type(opt))
        if make is _NAG and opt.momentum == 0.0:
            return None
        rule = make(opt, opt.clip_gradient if opt._clipping() else None) if make else make_rule(opt)
        if rule is None:
            return None
    device = weights[0].context
    for w, g, s in zip(weights, grads, states):
        if w.context != device or not _ok(w) or not _ok(g, w):
            return None
        if len(rule.bufs) > 2 and s is None:
            return None
        st = rule.states(s) if len(rule.bufs) > 2 else []
        if len(st) != len(rule.bufs) - 2 or not all(x is not None and _ok(x, w) for x in st):
            return None
    return rule


def gpu_update(updater, index, grads, weights) -> bool:
    """Apply `updater` (optimizer.Updater) to GPU weights as one compiled step: creates missing
    states as the Updater does, counts the update, launches. False (nothing changed but state
    creation) where gpu_rule does not apply; the caller then makes its usual Updater call."""
    if not weights or not all(is_gpu(w) for w in weights):
        return False
    opt = updater.optimizer
    index = [i.decode() if isinstance(i, bytes) else i for i in index]
    opt._set_current_context(weights[0].context.device_id)
    for idx, w in zip(index, weights):
        if idx not in updater.states:
            updater.states[idx] = opt.create_state_multi_precision(idx, w)
            updater.states_synced[idx] = True
    states = [updater.states[i] for i in index]
    rule = gpu_rule(opt, weights, grads, states)
    if rule is None:
        _stats["host_updates"] += 1
        return False
    shapes = tuple(tuple(w.shape) for w in weights)
    device = weights[0].context.device_id
    key = (shapes, rule.key, device)
    cache = updater.__dict__.setdefault("_gpu_steps", {})
    step = cache.get(key)
    if step is None:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        step = cache[key] = GpuStep(shapes, rule, device)
    opt._update_count(list(index))
    if hasattr(step.rule, "prepare"):       # per-step inputs of the coefficients (LARS's norms)
        step.rule.prepare(opt, index, weights, grads)
    step(opt, index, weights, grads, states)
    _stats["compiled_steps"] += 1
    return True


__all__ = ["GpuStep", "gpu_rule", "gpu_update", "is_gpu", "stats"]
