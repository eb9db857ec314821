"""Compiled GPU update rules for the element-wise optimizers that the CPU step (fused_optimizers.py)
does not compile: AdaDelta, Adamax, Nadam, Signum, FTML, Ftrl, DCASGD, and LARS (its trust ratio's
two norms per parameter taken on the device, only those scalars downloaded).

Why: without a rule, Trainer.step on GPU weights ran the optimizer's numpy `update`, which reads
`x._data`: every weight, gradient and state downloaded and uploaded again, each step. With one,
gpu_step.GpuStep runs each parameter's update as one kernel over its device memory and uploads
only the per-parameter coefficients.

Each rule is a transcription of its optimizer's `update` (optimizer.py, optimizers_online.py) in
the same order of float32 operations where that is cheap, but not bit for bit: a few per-step
scalars are folded into coefficients (Nadam's schedule terms, FTML's bias corrections), and the
GPU may contract multiply-adds, so the results agree with the CPU's numpy update to float32
rounding. Whatever changes between steps comes in the coefficient vector (never a recompile);
the optimizer's constants are compiled in and part of the rule's key.

Not here (gpu_step.stats()['host_updates'] counts their fallbacks): LAMB (a norm of the update
between two passes over the parameter), GroupAdaGrad (a mean per row) and SGLD (its noise comes
from graphc's host generator, which is what makes a seeded GPU run equal the CPU's) run their
update as eager GPU operators instead (optimizers_on_device.py); LBSGD still goes through the
host mirrors.
"""
from __future__ import annotations

from ..ops import scalar as S
from .fused_optimizers import _Rule, _clip, _f, _one_minus


def _given_clip(opt):
    """The clip of the rules that clip whenever clip_gradient is given (MXNet's Python rules)."""
    return opt.clip_gradient


def _usual_clip(opt):
    return opt.clip_gradient if opt._clipping() else None


class _AdaDelta(_Rule):
    """g = clip(rescale * grad); acc_g = acc_g * rho + (1 - rho) * g^2;
    delta = sqrt(acc_delta + eps) / sqrt(acc_g + eps) * g;
    acc_delta = acc_delta * rho + (1 - rho) * delta^2;  w = w - (delta + wd * w)."""
    name = "adadelta"
    bufs, outs = ("w", "g", "acc_g", "acc_delta"), ("w", "acc_g", "acc_delta")
    coef_names = ("rescale", "wd")
    clip_of = staticmethod(_given_clip)

    def settings(self, opt):
        return (opt.rho, opt.epsilon)

    def formulas(self, c, a):
        rho, eps = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"], self.clip)
        acc_g = a["acc_g"] * _f(rho) + (_one_minus(rho) * g) * g
        delta = S.sqrt(a["acc_delta"] + _f(eps)) / S.sqrt(acc_g + _f(eps)) * g
        acc_delta = a["acc_delta"] * _f(rho) + (_one_minus(rho) * delta) * delta
        return w - (delta + c["wd"] * w), acc_g, acc_delta

    def coefs(self, opt, idx):
        return opt.rescale_grad, opt._get_wd(idx)


class _Adamax(_Rule):
    """g = clip(rescale * grad + wd * w); m = m * beta1 + (1 - beta1) * g;
    u = max(u * beta2, |g|);  w = w - lr / (1 - beta1^t) * m / u."""
    name = "adamax"
    bufs, outs = ("w", "g", "m", "u"), ("w", "m", "u")
    coef_names = ("rescale", "wd", "lr")
    clip_of = staticmethod(_usual_clip)

    def settings(self, opt):
        return (opt.beta1, opt.beta2)

    def formulas(self, c, a):
        beta1, beta2 = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"] + c["wd"] * w, self.clip)
        m = a["m"] * _f(beta1) + _one_minus(beta1) * g
        u = S.maximum(a["u"] * _f(beta2), S.abs_(g))
        return w - c["lr"] * m / u, m, u

    def coefs(self, opt, idx):
        t = opt._index_update_count[idx]
        return opt.rescale_grad, opt._get_wd(idx), opt._get_lr(idx) / (1.0 - opt.beta1 ** t)


class _Nadam(_Rule):
    """g = clip(rescale * grad + wd * w); m = m * beta1 + (1 - beta1) * g;
    v = v * beta2 + (1 - beta2) * g^2;
    w = w - lr * (a * g + b * m) / (sqrt(v * vc) + eps), with the schedule folded into
    a = (1 - momentum_t) / (1 - m_schedule), b = momentum_t1 / (1 - m_schedule_next),
    vc = 1 / (1 - beta2^t). `coefs` advances opt.m_schedule once per parameter, as update does."""
    name = "nadam"
    bufs, outs = ("w", "g", "m", "v"), ("w", "m", "v")
    coef_names = ("rescale", "wd", "lr", "a", "b", "vc")
    clip_of = staticmethod(_usual_clip)

    def settings(self, opt):
        return (opt.beta1, opt.beta2, opt.epsilon)

    def formulas(self, c, a):
        beta1, beta2, eps = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"] + c["wd"] * w, self.clip)
        m = a["m"] * _f(beta1) + _one_minus(beta1) * g
        v = a["v"] * _f(beta2) + (_one_minus(beta2) * g) * g
        bar = c["a"] * g + c["b"] * m
        return w - c["lr"] * bar / (S.sqrt(v * c["vc"]) + _f(eps)), m, v

    def coefs(self, opt, idx):
        t = opt._index_update_count[idx]
        mom_t = opt.beta1 * (1.0 - 0.5 * (pow(0.96, t * opt.schedule_decay)))
        mom_t1 = opt.beta1 * (1.0 - 0.5 * (pow(0.96, (t + 1) * opt.schedule_decay)))
        opt.m_schedule = opt.m_schedule * mom_t
        nxt = opt.m_schedule * mom_t1
        return (opt.rescale_grad, opt._get_wd(idx), opt._get_lr(idx), (1.0 - mom_t) / (1.0 - opt.m_schedule),
                mom_t1 / (1.0 - nxt), 1.0 / (1.0 - pow(opt.beta2, t)))


class _Signum(_Rule):
    """momentum == 0: w = w * (1 - lr * wd) * (1 - lr * wd_lh) - lr * sign(rescale * grad)
    else: m = m * momentum - (1 - momentum) * (clip(rescale * grad) + wd * w);
          w = w * (1 - lr * wd_lh) + lr * sign(m)."""
    name = "signum"
    coef_names = ("rescale", "wd", "lr", "keep", "keep_lh")
    clip_of = staticmethod(_usual_clip)

    def __init__(self, opt, clip):
        super().__init__(opt, clip)
        if opt.momentum == 0.0:
            self.bufs, self.outs = ("w", "g"), ("w",)
        else:
            self.bufs, self.outs = ("w", "g", "m"), ("w", "m")

    def settings(self, opt):
        return (opt.momentum,)

    def formulas(self, c, a):
        (mom,) = self.key[2:]
        w = a["w"]
        if mom == 0.0:
            return (w * c["keep"] * c["keep_lh"] - c["lr"] * S.sign(a["g"] * c["rescale"]),)
        g = _clip(a["g"] * c["rescale"], self.clip) + c["wd"] * w
        m = a["m"] * _f(mom) - _one_minus(mom) * g
        return w * c["keep_lh"] + c["lr"] * S.sign(m), m

    def coefs(self, opt, idx):
        lr, wd = opt._get_lr(idx), opt._get_wd(idx)
        return opt.rescale_grad, wd, lr, 1.0 - lr * wd, 1.0 - lr * opt.wd_lh

    def states(self, state):
        return [] if state is None else [state]


class _FTML(_Rule):
    """g = clip(rescale * grad + wd * w); v = v * beta2 + (1 - beta2) * g^2;
    d_t = (sqrt(v / (1 - beta2^t)) + eps) * ((1 - beta1^t) / lr);
    z = z * beta1 + (1 - beta1) * g - (d_t - beta1 * d) * w;  d = d_t;  w = -z / d_t."""
    name = "ftml"
    bufs, outs = ("w", "g", "d", "v", "z"), ("w", "d", "v", "z")
    coef_names = ("rescale", "wd", "vc", "dc")
    clip_of = staticmethod(_usual_clip)

    def settings(self, opt):
        return (opt.beta1, opt.beta2, opt.epsilon)

    def formulas(self, c, a):
        beta1, beta2, eps = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"] + w * c["wd"], self.clip)
        v = a["v"] * _f(beta2) + _one_minus(beta2) * (g * g)
        d_t = (S.sqrt(v / c["vc"]) + _f(eps)) * c["dc"]
        z = a["z"] * _f(beta1) + _one_minus(beta1) * g - (d_t - _f(beta1) * a["d"]) * w
        return -(z / d_t), d_t, v, z

    def coefs(self, opt, idx):
        t = opt._index_update_count[idx]
        return (opt.rescale_grad, opt._get_wd(idx), 1.0 - opt.beta2 ** t,
                (1.0 - opt.beta1 ** t) / opt._get_lr(idx))


class _Ftrl(_Rule):
    """g = clip(rescale * grad); z = z + (g - (sqrt(n + g^2) - sqrt(n)) * w / lr); n = n + g^2;
    w = (sign(z) * lamda1 - z) / ((beta + sqrt(n)) / lr + wd) where |z| > lamda1, else 0."""
    name = "ftrl"
    bufs, outs = ("w", "g", "z", "n"), ("w", "z", "n")
    coef_names = ("rescale", "wd", "lr")
    clip_of = staticmethod(_usual_clip)

    def settings(self, opt):
        return (opt.lamda1, opt.beta)

    def formulas(self, c, a):
        lamda1, beta = self.key[2:]
        w, n = a["w"], a["n"]
        g = _clip(a["g"] * c["rescale"], self.clip)
        g2 = g * g
        z = a["z"] + (g - (S.sqrt(n + g2) - S.sqrt(n)) * w / c["lr"])
        n2 = n + g2
        out = (S.sign(z) * _f(lamda1) - z) / ((_f(beta) + S.sqrt(n2)) / c["lr"] + c["wd"])
        return S.select(S.abs_(z) > _f(lamda1), out, 0.0), z, n2

    def coefs(self, opt, idx):
        return opt.rescale_grad, opt._get_wd(idx), opt._get_lr(idx)


class _DCASGD(_Rule):
    """g = clip(rescale * grad); step = -lr * (g + wd * w + lamda * g^2 * (w - prev));
    m = momentum * m + step (step alone without momentum); prev = w; w = w + m."""
    name = "dcasgd"
    coef_names = ("rescale", "wd", "lr")
    clip_of = staticmethod(_given_clip)

    def __init__(self, opt, clip):
        super().__init__(opt, clip)
        if opt.momentum == 0.0:
            self.bufs, self.outs = ("w", "g", "prev"), ("w", "prev")
        else:
            self.bufs, self.outs = ("w", "g", "m", "prev"), ("w", "m", "prev")

    def settings(self, opt):
        return (opt.momentum, opt.lamda)

    def formulas(self, c, a):
        mom, lamda = self.key[2:]
        w = a["w"]
        g = _clip(a["g"] * c["rescale"], self.clip)
        step = -c["lr"] * (g + c["wd"] * w + _f(lamda) * g * g * (w - a["prev"]))
        if mom == 0.0:
            return w + step, w
        m = a["m"] * _f(mom) + step
        return w + m, m, w

    def coefs(self, opt, idx):
        return opt.rescale_grad, opt._get_wd(idx), opt._get_lr(idx)

    def states(self, state):
        mom, prev = state
        return [prev] if mom is None else [mom, prev]


class _LARS(_Rule):
    """LARS.update's SGD step (optimizer.sgd_step) with the layer-wise rate:
        step = clip(rescale * grad) * lr   (clipping)   or   grad * (lr * rescale)
        no momentum: w = w * (1 - lr * wd) - step
        momentum:    m = m * momentum - w * (lr * wd) - step;  w = w + m
    The momentum is a coefficient (momentum_correction changes it with the schedule). The
    trust ratio needs ||w|| and ||grad|| per parameter: `prepare` takes them on the device
    (eager GPU norms) and downloads those two float32 scalars per parameter, nothing else."""
    name = "lars"
    coef_names = ("c0", "lr", "c1", "mom")
    clip_of = staticmethod(_usual_clip)

    def __init__(self, opt, clip):
        super().__init__(opt, clip)
        self.norms = {}
        if opt.momentum == 0.0:
            self.bufs, self.outs = ("w", "g"), ("w",)
        else:
            self.bufs, self.outs = ("w", "g", "m"), ("w", "m")

    def settings(self, opt):
        return (opt.momentum == 0.0,)

    def formulas(self, c, a):
        (plain,) = self.key[2:]
        w, g = a["w"], a["g"]
        step = g * c["c0"] if self.clip is None else _clip(g * c["c0"], self.clip) * c["lr"]
        if plain:
            return (w * c["c1"] - step,)
        m = a["m"] * c["mom"] - w * c["c1"] - step
        return w + m, m

    def prepare(self, opt, indices, weights, grads):
        from .. import ndarray as nd
        norm = nd.norm
        self.norms = {idx: (norm(w).asscalar(), norm(g).asscalar())
                      for idx, w, g in zip(indices, weights, grads) if opt._layer_wise(idx)}

    def coefs(self, opt, idx):
        opt._track_lr()
        lr, wd = opt._get_lr(idx), opt._get_wd(idx)
        if idx in self.norms:
            lr = opt._trust_lr(*self.norms[idx], lr, wd)
        plain = self.key[2]
        return (opt.rescale_grad if self.clip is not None else lr * opt.rescale_grad, lr,
                (1.0 - lr * wd) if plain else lr * wd, 0.0 if plain else opt._momentum())

    def states(self, state):
        return [] if state is None else [state]


def gpu_only_rules():
    """{optimizer class: rule class} for the rules above (exact classes: a subclass may change
    `update`)."""
    from .optimizer import AdaDelta, Adamax, Nadam, Signum
    from .optimizers_layerwise import LARS
    from .optimizers_online import DCASGD, FTML, Ftrl
    return {AdaDelta: _AdaDelta, Adamax: _Adamax, Nadam: _Nadam, Signum: _Signum, FTML: _FTML,
            Ftrl: _Ftrl, DCASGD: _DCASGD, LARS: _LARS}


def make_rule(opt):
    """The rule for `opt`'s exact class, or None."""
    make = gpu_only_rules().get(type(opt))
    return None if make is None else make(opt, make.clip_of(opt))


__all__ = ["gpu_only_rules", "make_rule"]
