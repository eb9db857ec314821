"""One native call per Trainer step for Adam, AdamW, NAG, RMSProp and AdaGrad, as fused_update.py
does for SGD: each parameter's update is one pass over its weight, gradient and optimizer states,
writing the weight and every state from one set of loads (runtime/kernel_program.MultiStore),
instead of a dozen or more numpy passes with scratch arrays per parameter. Adam moves 7 arrays'
worth of memory this way (w, g, mean, var in; w, mean, var out) where its numpy update moved
about 35; over W8b's 38 parameters (6.7M floats) the step takes a third of the CPU time.

Each rule below is a transcription of its optimizer's `update` in optimizer.py, in the same
float32 order of operations, each operation rounded as numpy rounds it: the kernels are compiled
without multiply-add contraction (NAG's and RMSProp's updates cancel, and an fma's one-ulp
difference in a term of size |w| showed as a 1e-5 relative difference in results near zero), so
the results are the numpy update's bit for bit. Whatever changes between steps (the learning
rate and its schedule, lr/wd multipliers, Adam's bias correction, which MXNet folds into the
rate) comes in a float32 vector of per-parameter coefficients, so it never recompiles; the
optimizer's constants (betas, epsilons, momentum, clipping bounds) are compiled in and are part
of the cache key. Weight decay is always added: w * 0 adds an exact zero, so parameters with and
without decay share one kernel per size.

Applies to float32, C-contiguous, writeable arrays only (weights, gradients and states); anything
else takes the per-parameter numpy path (optimizer.Updater); NAG without momentum is SGD's update
and takes fused_update.py's step.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops import scalar as S
from ..ops.registry import get_op

_F32 = "float32"

# LLVM's time grows with the number of distinct kernels, one per distinct parameter size here:
# ResNet-18's 62 parameters (17 sizes) compile in 0.65 s, ResNet-50's 193 (22 sizes) in 0.84 s, on
# a loaded 2-core machine (as a graph with a few kernels per parameter, ResNet-50 took 3 s, hence
# the old limit of 32). densenet201 (604 parameters, 121 sizes): first step 0.6 s with the compile,
# then 14-15 ms per step against 47 ms for the per-parameter numpy updates (SGD momentum, quiet
# 2-core Xeon). Above this many parameters the per-parameter numpy updates run instead.
MAX_PARAMETERS = 4096


def _f(x):
    """A Python number as the float32 constant numpy uses for `array_f32 op x`."""
    return S.const(np.float32(x).item(), _F32)


def _one_minus(x):
    """1 - x in float32, as optimizer._one_minus (MXNet's 1.f - beta)."""
    return S.const((np.float32(1.0) - np.float32(x)).item(), _F32)


def _clip(x, clip):
    if clip is None:
        return x
    return get_op("clip").lowering.formula(x, a_min=-clip, a_max=clip)


class _Rule:
    """One optimizer's update as formulas. `bufs`: the arrays after the coefficients (w, g, then
    the states), `outs`: the ones stored, `n_coef`: per-parameter coefficients; `formulas(c, a)`
    gets the coefficient and array expressions (dicts by name) and returns one expression per
    output; `coefs(opt, idx)` gives the coefficients for this step; `states(state)` the state
    NDArrays in `bufs` order."""
    name = ""
    bufs: tuple = ()
    outs: tuple = ()
    coef_names: tuple = ()

    def __init__(self, opt, clip):
        self.clip = clip
        self.key = (type(self).__name__, clip) + self.settings(opt)

    def settings(self, opt) -> tuple:
        return ()

    def states(self, state):
        return list(state)


class _Adam(_Rule):
    """Adam.update: g = clip(rescale * grad + w * wd); mean = mean * beta1 + (1 - beta1) * g;
    var = var * beta2 + g^2 * (1 - beta2); w = w - mean / (sqrt(var) + eps) * lr_t."""
    name = "adam"
    bufs, outs = ("w", "g", "mean", "var"), ("w", "mean", "var")
    coef_names = ("rescale", "wd", "lr")

    def settings(self, opt):
        return (opt.beta1, opt.beta2, opt.epsilon)

    def formulas(self, c, a):
        beta1, beta2, eps = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"] + w * c["wd"], self.clip)
        mean = a["mean"] * _f(beta1) + _one_minus(beta1) * g
        var = a["var"] * _f(beta2) + (g * g) * _one_minus(beta2)
        d = mean / (S.sqrt(var) + _f(eps))
        return w - d * c["lr"], mean, var

    def coefs(self, opt, idx):
        t = opt._index_update_count[idx]
        lr = opt._get_lr(idx) * math.sqrt(1.0 - opt.beta2 ** t) / (1.0 - opt.beta1 ** t)
        return opt.rescale_grad, opt._get_wd(idx), lr


class _AdamW(_Adam):
    """AdamW.update: g = clip(rescale * grad); the moments as Adam's;
    w = w - (mean / (sqrt(var) + eps) + w * wd) * eta."""
    name = "adamw"

    def settings(self, opt):
        return (opt.beta1, opt.beta2, opt.epsilon, opt.correct_bias)

    def formulas(self, c, a):
        beta1, beta2, eps = self.key[2:5]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"], self.clip)
        mean = a["mean"] * _f(beta1) + _one_minus(beta1) * g
        var = a["var"] * _f(beta2) + (g * g) * _one_minus(beta2)
        d = mean / (S.sqrt(var) + _f(eps)) + w * c["wd"]
        return w - d * c["lr"], mean, var

    def coefs(self, opt, idx):
        lr = opt._get_lr(idx)
        if opt.correct_bias:
            t = opt._index_update_count[idx]
            lr *= math.sqrt(1.0 - opt.beta2 ** t) / (1.0 - opt.beta1 ** t)
        return opt.rescale_grad, opt._get_wd(idx), lr


class _NAG(_Rule):
    """NAG.update (momentum != 0): g = clip(rescale * grad);
    w' = (w + momentum^2 * m) - (w * wd + g) * ((1 + momentum) * lr);
    m = m * momentum - (w' * wd + g) * lr   (MXNet's decay term sees the updated weight)."""
    name = "nag"
    bufs, outs = ("w", "g", "m"), ("w", "m")
    coef_names = ("rescale", "wd", "lr_1m", "lr")

    def settings(self, opt):
        return (opt.momentum,)

    def formulas(self, c, a):
        (mom,) = self.key[2:]
        w, m = a["w"], a["m"]
        g = _clip(a["g"] * c["rescale"], self.clip)
        new_w = (w + _f(mom * mom) * m) - (w * c["wd"] + g) * c["lr_1m"]
        new_m = m * _f(mom) - (new_w * c["wd"] + g) * c["lr"]
        return new_w, new_m

    def coefs(self, opt, idx):
        lr = opt._get_lr(idx)
        return opt.rescale_grad, opt._get_wd(idx), (1.0 + opt.momentum) * lr, lr

    def states(self, state):
        return [state]


class _RMSProp(_Rule):
    """RMSProp.update: g = clip(rescale * grad + w * wd); n = n * gamma1 + g^2 * (1 - gamma1);
    plain:    w = w - g / sqrt(n + eps) * lr
    centered: m = m * gamma1 + (1 - gamma1) * g;
              delta = delta * gamma2 - g / sqrt((n - m^2) + eps) * lr;  w = w + delta
    then w clipped to [-clip_weights, clip_weights] when given."""
    name = "rmsprop"
    coef_names = ("rescale", "wd", "lr")

    def __init__(self, opt, clip):
        super().__init__(opt, clip)
        if opt.centered:
            self.bufs, self.outs = ("w", "g", "n", "m", "delta"), ("w", "n", "m", "delta")
        else:
            self.bufs, self.outs = ("w", "g", "n"), ("w", "n")

    def settings(self, opt):
        cw = opt.clip_weights if opt.clip_weights is not None and opt.clip_weights >= 0 else None
        return (opt.gamma1, opt.gamma2, opt.epsilon, bool(opt.centered), cw)

    def formulas(self, c, a):
        gamma1, gamma2, eps, centered, cw = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"] + w * c["wd"], self.clip)
        n = a["n"] * _f(gamma1) + (g * g) * _one_minus(gamma1)
        if not centered:
            return _clip(w - g / S.sqrt(n + _f(eps)) * c["lr"], cw), n
        m = a["m"] * _f(gamma1) + _one_minus(gamma1) * g
        delta = a["delta"] * _f(gamma2) - g / S.sqrt((n - m * m) + _f(eps)) * c["lr"]
        return _clip(w + delta, cw), n, m, delta

    def coefs(self, opt, idx):
        return opt.rescale_grad, opt._get_wd(idx), opt._get_lr(idx)


class _AdaGrad(_Rule):
    """AdaGrad.update: g = clip(rescale * grad); h = h + g^2;
    w = w - (g / sqrt(h + eps) + w * wd) * lr."""
    name = "adagrad"
    bufs, outs = ("w", "g", "h"), ("w", "h")
    coef_names = ("rescale", "wd", "lr")

    def settings(self, opt):
        return (opt.float_stable_eps,)

    def formulas(self, c, a):
        (eps,) = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"], self.clip)
        h = a["h"] + g * g
        return w - (g / S.sqrt(h + _f(eps)) + w * c["wd"]) * c["lr"], h

    def coefs(self, opt, idx):
        return opt.rescale_grad, opt._get_wd(idx), opt._get_lr(idx)

    def states(self, state):
        return [state]


def _rules():
    from .optimizer import NAG, AdaGrad, Adam, AdamW, RMSProp
    return {Adam: _Adam, AdamW: _AdamW, NAG: _NAG, RMSProp: _RMSProp, AdaGrad: _AdaGrad}


def rule_formulas(rule):
    """(index, loads, formulas) of one element `i` of a rule's update: coefficient j read from
    `coef[j]`, each buffer b from `b[i]`; the formulas give rule.outs in order. Shared by the
    CPU kernel here and the GPU one (gpu_step.py)."""
    from ..runtime.kernel_ir import Index, Load
    at = Index((("i", 1),))
    nc = len(rule.coef_names)
    args = tuple(Load("coef", Index((), j)) for j in range(nc)) + tuple(Load(b, at) for b in rule.bufs)
    c = {name: S.arg(j, _F32) for j, name in enumerate(rule.coef_names)}
    a = {name: S.arg(nc + j, _F32) for j, name in enumerate(rule.bufs)}
    return at, args, tuple(rule.formulas(c, a))


def _kernel(n: int, rule: _Rule):
    """One parameter of n elements: one parallel loop, every output from one set of loads."""
    from ..runtime.kernel_ir import Buf, Kernel, Loop
    from ..runtime.kernel_program import MultiStore
    from ..runtime.lower import PARALLEL_WORK
    at, args, exprs = rule_formulas(rule)
    nc = len(rule.coef_names)
    stmt = MultiStore(rule.outs, at, exprs, args, flags=())     # no multiply-add contraction
    work = n * (2 * len(rule.bufs) + len(rule.outs) + 4)    # loads, stores, a sqrt and a divide
    bufs = [Buf("coef", _F32, nc)] + [Buf(b, _F32, n) for b in rule.bufs]
    return Kernel(f"{rule.name}_update", bufs, [Loop("i", n, [stmt], parallel=work >= PARALLEL_WORK)], work)


class FusedStep:
    """The compiled step of one rule for one list of parameter shapes, on CPU device `device`."""

    def __init__(self, shapes, rule: _Rule, device: int = 0):
        from ..runtime.kernel_program import KernelProgram
        self.rule = rule
        self.sizes = [int(np.prod(s)) for s in shapes]
        nc, per = len(rule.coef_names), len(rule.bufs)
        kernels, calls = {}, []
        for i, n in enumerate(self.sizes):
            k = kernels.get(n)
            if k is None:
                k = kernels[n] = _kernel(n, rule)       # equal sizes share one kernel
            calls.append((k, [(0, i * nc * 4)] + [1 + per * i + j for j in range(per)]))
        self.program = KernelProgram(f"{rule.name}_step", calls, 1 + per * len(self.sizes), device)
        self.coef = np.empty(len(self.sizes) * nc, np.float32)

    def __call__(self, opt, indices, weights, grads, states):
        rule, nc = self.rule, len(self.rule.coef_names)
        for i, idx in enumerate(indices):
            self.coef[i * nc:(i + 1) * nc] = rule.coefs(opt, idx)
        arrays = [self.coef]
        for w, g, s in zip(weights, grads, states):
            arrays += [w._data, g._data] + [x._data for x in rule.states(s)]
        self.program(arrays)


def _ok(a, like=None, written=True) -> bool:
    return (type(a) is np.ndarray and a.dtype == np.float32 and a.flags.c_contiguous
            and (a.flags.writeable or not written) and a.size > 0 and (like is None or a.shape == like.shape))


def fused_rule(opt, weights, grads, states):
    """The rule for `opt`'s exact class, or None where the compiled step does not apply: another
    optimizer (subclasses too: they may change `update`), NAG without momentum (fused_update.py's), more than
    MAX_PARAMETERS parameters, or any array that is not float32, C-contiguous and
    writeable (gradients need not be), float16 weights with multi_precision included."""
    make = _rules().get(type(opt))
    if make is None or not weights or len(weights) > MAX_PARAMETERS:
        return None
    if make is _NAG and opt.momentum == 0.0:
        return None
    rule = make(opt, opt.clip_gradient if opt._clipping() else None)
    for w, g, s in zip(weights, grads, states):
        if s is None or not _ok(w._data) or not _ok(g._data, w._data, written=False):
            return None
        st = rule.states(s)
        if len(st) != len(rule.bufs) - 2 or not all(x is not None and _ok(x._data, w._data) for x in st):
            return None
    return rule


__all__ = ["FusedStep", "fused_rule"]
