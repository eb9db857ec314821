"""The GPU updates of the optimizers that gluon/gpu_rules.py cannot compile as one element-wise
kernel: LAMB (a norm of the update between two passes), GroupAdaGrad (a mean per row), LBSGD
(gradients summed over steps, warmup or LARS multipliers) and SGLD (noise from graphc's host
generator), written with NDArray operators so that on GPU weights each step runs as eager GPU
operators on the device instead of numpy on downloaded copies (`x._data`).

What still crosses: LAMB downloads its two trust-ratio norms (two float32 scalars per
parameter: its clamps and zero tests are host decisions, as on the CPU), LBSGD's 'lars'
strategy its two sums of squares; SGLD uploads its
noise (drawn from the host generator so that mx.random.seed gives the CPU's values; a weight's
worth per step, one way). Weights, gradients and states are never downloaded. The formulas are
the CPU updates' (optimizers_layerwise.py, optimizers_online.py) in the same order; results
agree to float32 rounding (the GPU's norms sum in float32, the CPU's in float64).
"""
from __future__ import annotations

import math

import numpy as np


def on_gpu(weight) -> bool:
    return weight.context.device_type == "gpu" and getattr(weight, "stype", "default") == "default"


def _rescaled(opt, grad, clip_when_given=False):
    from .. import ndarray as nd
    g = grad * opt.rescale_grad
    clip = opt.clip_gradient if clip_when_given else (opt.clip_gradient if opt._clipping() else None)
    return nd.clip(g, -clip, clip) if clip is not None else g


def sgld_update(opt, index, weight, grad) -> None:
    """SGLD.update: weight += -lr / 2 * (g + wd * weight) + N(0, sqrt(lr))."""
    from .. import ndarray as nd, random as _random
    lr, wd, _ = opt._begin(index)
    g = _rescaled(opt, grad, clip_when_given=True)
    new = weight + (g + weight * float(np.float32(wd))) * float(-np.float32(lr / 2))
    noise = _random.generator().normal(0.0, math.sqrt(lr), size=weight.shape).astype(weight.dtype)
    weight[:] = new + nd.array(noise, ctx=weight.context, dtype=weight.dtype)


def lamb_update(opt, index, weight, grad, state) -> None:
    """LAMB.update (see there): the moments in place, then the trust-ratio step."""
    from .. import ndarray as nd
    lr, wd, t = opt._begin(index)
    mean, var = state
    g = _rescaled(opt, grad)
    f = np.dtype(weight.dtype).type
    mean[:] = mean * float(f(opt.beta1)) + g * float(f(1.0) - f(opt.beta1))
    var[:] = var * float(f(opt.beta2)) + nd.square(g) * float(f(1.0) - f(opt.beta2))
    if opt.bias_correction:
        mean_hat = mean / float(f(1.0) - f(opt.beta1) ** f(t))
        var_hat = var / float(f(1.0) - f(opt.beta2) ** f(t))
    else:
        mean_hat, var_hat = mean, var
    r = mean_hat / (nd.sqrt(var_hat) + opt.epsilon)
    if wd != 0:
        r = r + weight * wd
    r1, r2 = np.float32(nd.norm(weight).asscalar()), np.float32(nd.norm(r).asscalar())
    if opt.lower_bound:
        r1 = max(r1, np.float32(opt.lower_bound))
    if opt.upper_bound:
        r1 = min(r1, np.float32(opt.upper_bound))
    if r1 != 0 and r2 != 0:
        lr = np.float32(lr) * (r1 / r2)
    weight[:] = weight - r * float(lr)


def group_adagrad_update(opt, lr, weight, grad, history) -> None:
    """GroupAdaGrad.update (its count and wd check done): history += mean(g^2, axis=1);
    weight -= lr * g / sqrt(history + eps)."""
    from .. import ndarray as nd
    g = _rescaled(opt, grad, clip_when_given=True)
    history[:] = history + nd.mean(nd.square(g), axis=1, keepdims=True)
    weight[:] = weight - nd.broadcast_div(g * float(np.float32(lr)),
                                          nd.sqrt(history + float(np.float32(opt.float_stable_eps))))


def sgd_step(opt, w, grad, state, lr, wd, momentum) -> None:
    """optimizer.sgd_step on GPU arrays (in place on w and the momentum `state`)."""
    from .. import ndarray as nd
    if opt._clipping():
        g = nd.clip(grad * opt.rescale_grad, -opt.clip_gradient, opt.clip_gradient) * lr
    else:
        g = grad * (lr * opt.rescale_grad)
    if state is None:
        w[:] = (w * (1.0 - lr * wd) if wd != 0 else w) - g
        return
    m = state * momentum
    if wd != 0:
        m = m - w * (lr * wd)
    state[:] = m - g
    w[:] = w + state


def lbsgd_update(opt, index, weight, grad, state) -> None:
    """LBSGD.update (optimizer_lbsgd.py's _step): gradients summed on the device until
    batch_scale of them arrived, then SGD with the warmup (or 'lars': two sums of squares
    downloaded) multiplier."""
    from .. import ndarray as nd
    opt._update_count(index)
    lr, wd = opt._get_lr(index), opt._get_wd(index)
    entry = opt._accumulate(index, grad)
    if entry[1] % opt.batch_scale != 0:
        return
    g = entry[0] / opt.batch_scale
    if opt.warmup_strategy == "lars":
        w2, g2 = nd.sum(nd.square(weight)).asscalar(), nd.sum(nd.square(g)).asscalar()
        mult = opt._lars_from_sums(float(w2), float(g2), wd)
    else:
        mult = opt._warmup_mult(entry[1])
    sgd_step(opt, weight, g, state, lr * mult, wd, opt.momentum)
    entry[0] = None


__all__ = ["group_adagrad_update", "lamb_update", "lbsgd_update", "on_gpu", "sgd_step", "sgld_update"]
