"""MXNet's optimizer update operators (sgd_update, adam_update, ftrl_update, the multi_* and
preloaded_multi_* batches, contrib's AdamW and group AdaGrad...), with MXNet 1.9.1's kernels'
formulas.

How state is written: an update op's first output(s) are the new weight(s), which the caller
writes over the weight with `out=weight`, as MXNet's optimizers do. Optimizer state (momentum,
moments, fp32 master weights) is mutated in place by MXNet; here it is an extra, hidden output
declared in `mutates`, so the graph stays functional and eager mode writes it back into the
state array. The update rules have no gradient.

`clip_gradient` < 0 means no clipping. Where MXNet adds weight decay before clipping (Adam,
RMSProp, FTML, NAG's decayed gradient) or after it (SGD, Signum, LAMB), the reference follows."""
from __future__ import annotations

import math

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register

_F = lambda default: Attr("float", default)  # noqa: E731
_COMMON = {"wd": _F(0.0), "rescale_grad": _F(1.0), "clip_gradient": _F(-1.0)}


def _clip(g, c):
    return np.clip(g, -c, c) if c is not None and c >= 0 else g


def _f32(x):
    return x.astype(np.float64)


def _check_same(op, names, types):
    first = types[0]
    for n, t in zip(names, types):
        if t.shape != first.shape:
            raise ShapeError(f"{op}: {n} has shape {t.shape}, expected the weight's {first.shape}")


def _declare(name, inputs, states, attrs, rule, doc, weight32=None):
    """One update op: `rule(w, g, *states, **attrs) -> (new_w, *new_states)` in float64; the new
    weight goes out in the weight's dtype, each state in its own. weight32: the input position
    of an fp32 master weight, updated in its place and cast to the weight's dtype (mp_*)."""
    state_pos = [inputs.index(s) for s in states]

    def infer(*types, **_):
        _check_same(name, inputs, types)
        return [types[0]] + [types[p] for p in state_pos]

    def compute(*arrays, **a):
        out = rule(*[_f32(x) for x in arrays], **a)
        new_w = out[0].astype(arrays[0].dtype)
        return (new_w,) + tuple(o.astype(arrays[p].dtype) for o, p in zip(out[1:], state_pos))

    register(OpDef(name, infer=infer, compute=compute, inputs=tuple(inputs), attrs=attrs,
                   num_outputs=1 + len(states), num_visible_outputs=1,
                   mutates=tuple((i + 1, p) for i, p in enumerate(state_pos)), doc=doc))


# -- SGD family ------------------------------------------------------------------------------------

def sgd_rule(w, g, lr, wd, rescale_grad, clip_gradient, lazy_update=True):
    return ((1.0 - lr * wd) * w - lr * _clip(rescale_grad * g, clip_gradient),)


def sgd_mom_rule(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient, lazy_update=True):
    mom = momentum * mom - lr * wd * w - lr * _clip(rescale_grad * g, clip_gradient)
    return w + mom, mom


def nag_mom_rule(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient):
    """MXNet's kernel writes the weight first and reads it back (out aliases weight) when it
    decays the momentum: the new momentum's decay term sees the updated weight."""
    gc = _clip(rescale_grad * g, clip_gradient)
    new_w = w + momentum * momentum * mom - (1.0 + momentum) * lr * (gc + wd * w)
    mom = momentum * mom - lr * (gc + wd * new_w)
    return new_w, mom


def _mp(rule, n_states):
    """The fp32-master variant: update weight32 (the last input) and return it twice, as the
    new weight (cast by _declare) and as the new master."""
    def mp(w, g, *rest, **a):
        states, w32 = rest[:n_states], rest[n_states]
        out = rule(w32, g, *states, **a)
        return (out[0],) + tuple(out[1:]) + (out[0],)
    return mp


_SGD = {"lr": Attr("float"), **_COMMON, "lazy_update": Attr("bool", True)}
_MOM = {"lr": Attr("float"), "momentum": _F(0.0), **_COMMON, "lazy_update": Attr("bool", True)}
_NAG = {"lr": Attr("float"), "momentum": _F(0.0), **_COMMON}
_declare("sgd_update", ["weight", "grad"], [], _SGD, sgd_rule,
         "weight = (1 - lr wd) weight - lr clip(rescale_grad grad)")
_declare("sgd_mom_update", ["weight", "grad", "mom"], ["mom"], _MOM, sgd_mom_rule,
         "mom = momentum mom - lr wd weight - lr clip(rescale_grad grad); weight += mom")
_declare("nag_mom_update", ["weight", "grad", "mom"], ["mom"], _NAG, nag_mom_rule,
         "Nesterov momentum as MXNet's kernel computes it (see nag_mom_rule)")
_declare("mp_sgd_update", ["weight", "grad", "weight32"], ["weight32"], _SGD, _mp(sgd_rule, 0),
         "sgd_update on the fp32 master weight32; the weight gets its cast")
_declare("mp_sgd_mom_update", ["weight", "grad", "mom", "weight32"], ["mom", "weight32"], _MOM,
         _mp(sgd_mom_rule, 1), "sgd_mom_update on the fp32 master weight32")
_declare("mp_nag_mom_update", ["weight", "grad", "mom", "weight32"], ["mom", "weight32"], _NAG,
         _mp(nag_mom_rule, 1), "nag_mom_update on the fp32 master weight32")


# -- Adam, RMSProp, FTRL, FTML, sign methods --------------------------------------------------------

def adam_rule(w, g, mean, var, lr, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient, lazy_update=True):
    g = _clip(rescale_grad * g + wd * w, clip_gradient)
    mean = beta1 * mean + (1.0 - beta1) * g
    var = beta2 * var + (1.0 - beta2) * g * g
    return w - lr * mean / (np.sqrt(var) + epsilon), mean, var


def _clip_weights(w, c):
    return np.clip(w, -c, c) if c is not None and c >= 0 else w


def rmsprop_rule(w, g, n, lr, gamma1, epsilon, wd, rescale_grad, clip_gradient, clip_weights):
    g = _clip(rescale_grad * g + wd * w, clip_gradient)
    n = (1.0 - gamma1) * g * g + gamma1 * n
    return _clip_weights(w - lr * g / np.sqrt(n + epsilon), clip_weights), n


def rmspropalex_rule(w, g, n, gbar, delta, lr, gamma1, gamma2, epsilon, wd, rescale_grad, clip_gradient,
                     clip_weights):
    g = _clip(rescale_grad * g + wd * w, clip_gradient)
    n = (1.0 - gamma1) * g * g + gamma1 * n
    gbar = (1.0 - gamma1) * g + gamma1 * gbar
    delta = gamma2 * delta - lr * g / np.sqrt(n - gbar * gbar + epsilon)
    return _clip_weights(w + delta, clip_weights), n, gbar, delta


def ftrl_rule(w, g, z, n, lr, lamda1, beta, wd, rescale_grad, clip_gradient):
    g = _clip(rescale_grad * g, clip_gradient)
    z = z + g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / lr
    n = n + g * g
    new_w = (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > lamda1)
    return new_w, z, n


def ftml_rule(w, g, d, v, z, lr, beta1, beta2, epsilon, t, wd, rescale_grad, clip_grad):
    g = _clip(rescale_grad * g + wd * w, clip_grad)
    v = beta2 * v + (1.0 - beta2) * g * g
    d_t = (1.0 - beta1 ** t) / lr * (np.sqrt(v / (1.0 - beta2 ** t)) + epsilon)
    z = beta1 * z + (1.0 - beta1) * g - (d_t - beta1 * d) * w
    return -z / d_t, d_t, v, z


def signsgd_rule(w, g, lr, wd, rescale_grad, clip_gradient):
    return ((1.0 - lr * wd) * w - lr * np.sign(g),)


def signum_rule(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient, wd_lh):
    mom = momentum * mom - (1.0 - momentum) * wd * w - (1.0 - momentum) * _clip(rescale_grad * g, clip_gradient)
    return (1.0 - lr * wd_lh) * w + lr * np.sign(mom), mom


_declare("adam_update", ["weight", "grad", "mean", "var"], ["mean", "var"],
         {"lr": Attr("float"), "beta1": _F(0.9), "beta2": _F(0.999), "epsilon": _F(1e-8), **_COMMON,
          "lazy_update": Attr("bool", True)}, adam_rule,
         "Adam's step without bias correction (the optimizer folds it into lr)")
_declare("rmsprop_update", ["weight", "grad", "n"], ["n"],
         {"lr": Attr("float"), "gamma1": _F(0.95), "epsilon": _F(1e-8), **_COMMON, "clip_weights": _F(-1.0)},
         rmsprop_rule, "RMSProp (Tieleman & Hinton)")
_declare("rmspropalex_update", ["weight", "grad", "n", "g", "delta"], ["n", "g", "delta"],
         {"lr": Attr("float"), "gamma1": _F(0.95), "gamma2": _F(0.9), "epsilon": _F(1e-8), **_COMMON,
          "clip_weights": _F(-1.0)}, rmspropalex_rule, "centered RMSProp (Graves 2013)")
_declare("ftrl_update", ["weight", "grad", "z", "n"], ["z", "n"],
         {"lr": Attr("float"), "lamda1": _F(0.01), "beta": _F(1.0), **_COMMON}, ftrl_rule,
         "FTRL-proximal (McMahan et al.)")
_declare("ftml_update", ["weight", "grad", "d", "v", "z"], ["d", "v", "z"],
         {"lr": Attr("float"), "beta1": _F(0.6), "beta2": _F(0.999), "epsilon": _F(1e-8), "t": Attr("int"),
          "wd": _F(0.0), "rescale_grad": _F(1.0), "clip_grad": _F(-1.0)}, ftml_rule,
         "Follow the Moving Leader (Zheng & Kwok)")
_declare("signsgd_update", ["weight", "grad"], [], {"lr": Attr("float"), **_COMMON}, signsgd_rule,
         "weight = (1 - lr wd) weight - lr sign(grad)")
_declare("signum_update", ["weight", "grad", "mom"], ["mom"],
         {"lr": Attr("float"), "momentum": _F(0.0), **_COMMON, "wd_lh": _F(0.0)}, signum_rule,
         "signSGD with momentum (Bernstein et al.)")


# -- LAMB's two phases -----------------------------------------------------------------------------

def lamb1_rule(w, g, mean, var, beta1, beta2, epsilon, t, bias_correction, wd, rescale_grad, clip_gradient):
    """Returns the update direction g (phase 2 scales it by the trust ratio) and the moments."""
    g = _clip(rescale_grad * g, clip_gradient)
    mean = beta1 * mean + (1.0 - beta1) * g
    var = beta2 * var + (1.0 - beta2) * g * g
    m, v = (mean / (1.0 - beta1 ** t), var / (1.0 - beta2 ** t)) if bias_correction else (mean, var)
    return m / (np.sqrt(v) + epsilon) + wd * w, mean, var


def lamb2_rule(w, g, r1, r2, lr, lower_bound, upper_bound):
    r1 = float(r1.reshape(-1)[0])
    r2 = float(r2.reshape(-1)[0])
    if lower_bound >= 0:
        r1 = max(r1, lower_bound)
    if upper_bound >= 0:
        r1 = min(r1, upper_bound)
    ratio = 1.0 if r1 == 0.0 or r2 == 0.0 else r1 / r2
    return (w - lr * ratio * g,)


_LAMB1 = {"beta1": _F(0.9), "beta2": _F(0.999), "epsilon": _F(1e-6), "t": Attr("int"),
          "bias_correction": Attr("bool", True), **_COMMON}
_LAMB2 = {"lr": Attr("float"), "lower_bound": _F(-1.0), "upper_bound": _F(-1.0)}


def _declare_lamb2(name, inputs, rule, doc):
    def infer(w, g, r1, r2, *w32, **_):
        if g.shape != w.shape or r1.size != 1 or r2.size != 1:
            raise ShapeError(f"{name}: g must have the weight's shape {w.shape} and r1, r2 one value each, "
                             f"got g {g.shape}, r1 {r1.shape}, r2 {r2.shape}")
        return [w] + list(w32)

    def compute(*arrays, **a):
        out = rule(*[_f32(x) for x in arrays], **a)
        return tuple(o.astype(x.dtype) for o, x in zip(out, (arrays[0],) + arrays[4:]))
    n_states = len(inputs) - 4
    register(OpDef(name, infer=infer, compute=compute, inputs=tuple(inputs), attrs=_LAMB2,
                   num_outputs=1 + n_states, num_visible_outputs=1,
                   mutates=tuple((1 + i, 4 + i) for i in range(n_states)), doc=doc))


_declare("lamb_update_phase1", ["weight", "grad", "mean", "var"], ["mean", "var"], _LAMB1, lamb1_rule,
         "LAMB's direction: bias-corrected Adam step plus wd weight (the moments update in place)")


def _mp_lamb1(w, g, mean, var, w32, **a):
    d, mean, var = lamb1_rule(w32, g, mean, var, **a)
    return d, mean, var


_declare("mp_lamb_update_phase1", ["weight", "grad", "mean", "var", "weight32"], ["mean", "var"], _LAMB1,
         _mp_lamb1, "lamb_update_phase1 reading the fp32 master weight32")
_declare_lamb2("lamb_update_phase2", ["weight", "g", "r1", "r2"], lamb2_rule,
               "weight -= lr (r1 / r2) g, r1 clipped to [lower_bound, upper_bound] (LAMB's trust ratio)")


def _mp_lamb2(w, g, r1, r2, w32, **a):
    (new,) = lamb2_rule(w32, g, r1, r2, **a)
    return new, new


_declare_lamb2("mp_lamb_update_phase2", ["weight", "g", "r1", "r2", "weight32"], _mp_lamb2,
               "lamb_update_phase2 on the fp32 master weight32; the weight gets its cast")


# -- multi_* and preloaded_multi_*: many weights in one call ----------------------------------------
# Inputs are interleaved per weight (w0, g0, [mom0], [w32_0], w1, g1, ...); preloaded_* take the
# learning rates and weight decays as two trailing arrays instead of the lrs/wds attributes.

_MULTI = {
    "multi_sgd_update": (("weight", "grad"), (), sgd_rule),
    "multi_sgd_mom_update": (("weight", "grad", "mom"), ("mom",), sgd_mom_rule),
    "multi_mp_sgd_update": (("weight", "grad", "weight32"), ("weight32",), _mp(sgd_rule, 0)),
    "multi_mp_sgd_mom_update": (("weight", "grad", "mom", "weight32"), ("mom", "weight32"), _mp(sgd_mom_rule, 1)),
}


def _declare_multi(name, per, states, rule, preloaded):
    k = len(per)
    state_pos = [per.index(s) for s in states]
    momentum = "mom" in per

    def inputs(attrs):
        names = tuple(f"{p}_{i}" for i in range(attrs["num_weights"]) for p in per)
        return names + (("lrs", "wds") if preloaded else ())

    def infer(*types, num_weights, **_):
        if len(types) != num_weights * k + (2 if preloaded else 0):
            raise ShapeError(f"{name}: num_weights={num_weights} needs {num_weights * k} arrays "
                             f"({', '.join(per)} per weight), got {len(types)}")
        outs, hidden = [], []
        for i in range(num_weights):
            group = types[i * k:(i + 1) * k]
            _check_same(name, per, group)
            outs.append(group[0])
            hidden += [group[p] for p in state_pos]
        return outs + hidden

    def compute(*arrays, num_weights, rescale_grad, clip_gradient, lrs=(), wds=(), momentum=0.0):
        if preloaded:
            lrs, wds = arrays[-2].reshape(-1), arrays[-1].reshape(-1)
        if len(lrs) < num_weights or len(wds) < num_weights:
            raise ShapeError(f"{name}: {num_weights} weights need as many lrs and wds, got {len(lrs)} and {len(wds)}")
        outs, hidden = [], []
        for i in range(num_weights):
            group = arrays[i * k:(i + 1) * k]
            extra = {"momentum": momentum} if "mom" in per else {}
            res = rule(*[_f32(x) for x in group], lr=float(lrs[i]), wd=float(wds[i]), rescale_grad=rescale_grad,
                       clip_gradient=clip_gradient, **extra)
            outs.append(res[0].astype(group[0].dtype))
            hidden += [r.astype(group[p].dtype) for r, p in zip(res[1:], state_pos)]
        return tuple(outs + hidden)

    attrs = {"num_weights": Attr("int", 1), "rescale_grad": _F(1.0), "clip_gradient": _F(-1.0)}
    if not preloaded:
        attrs.update(lrs=Attr("any"), wds=Attr("any"))
    if momentum:
        attrs["momentum"] = _F(0.0)

    def n_out(attrs):
        return attrs["num_weights"] * (1 + len(states))

    # The states' count depends on num_weights, and OpDef.mutates is one static tuple: so the
    # new states are visible outputs after the weights, and graphc.nd's function of the same
    # name (graphc/ndarray/update_functions.py) writes them back and returns the weights.
    register(OpDef(name, infer=infer, compute=compute, inputs=inputs, attrs=attrs, num_outputs=n_out,
                   doc=f"{name.replace('preloaded_', '').replace('multi_', '')} over num_weights weights at once"
                       + (" (lrs, wds as trailing arrays)" if preloaded else "")
                       + ("; outputs: the new weights, then each weight's new states" if states else "")))


MULTI_STATES = {name: states for name, (per, states, rule) in _MULTI.items()}


for _name, (_per, _states, _rule) in _MULTI.items():
    _declare_multi(_name, _per, _states, _rule, preloaded=False)
    _declare_multi("preloaded_" + _name, _per, _states, _rule, preloaded=True)


# -- contrib: AdamW (rescale_grad an array: skipped when not finite), group AdaGrad -----------------

def adamw_rule(w, g, mean, var, rescale, lr, eta, beta1, beta2, epsilon, wd, clip_gradient):
    s = float(rescale.reshape(-1)[0])
    if not math.isfinite(s):
        return w, mean, var      # MXNet skips the step when the loss scale overflowed
    g = _clip(s * g, clip_gradient)
    mean = beta1 * mean + (1.0 - beta1) * g
    var = beta2 * var + (1.0 - beta2) * g * g
    return w - eta * (lr * mean / (np.sqrt(var) + epsilon) + wd * w), mean, var


_ADAMW = {"lr": Attr("float"), "eta": Attr("float"), "beta1": _F(0.9), "beta2": _F(0.999), "epsilon": _F(1e-8),
          "wd": _F(0.0), "clip_gradient": _F(-1.0)}


def _declare_adamw(name, inputs, states, rule, alias):
    state_pos = [inputs.index(s) for s in states]
    r = inputs.index("rescale_grad")

    def infer(*types, **_):
        _check_same(name, [n for n in inputs if n != "rescale_grad"], [t for i, t in enumerate(types) if i != r])
        return [types[0]] + [types[p] for p in state_pos]

    def compute(*arrays, **a):
        out = rule(*[_f32(x) for x in arrays], **a)
        return (out[0].astype(arrays[0].dtype),) + tuple(o.astype(arrays[p].dtype) for o, p in zip(out[1:], state_pos))
    register(OpDef(name, infer=infer, compute=compute, inputs=tuple(inputs), attrs=_ADAMW,
                   num_outputs=1 + len(states), num_visible_outputs=1,
                   mutates=tuple((i + 1, p) for i, p in enumerate(state_pos)), aliases=(alias,),
                   doc="AdamW (decoupled weight decay, Loshchilov & Hutter): weight -= eta (lr mean / "
                       "(sqrt(var) + epsilon) + wd weight); no step when rescale_grad is not finite"))


def _mp_adamw(w, g, mean, var, w32, rescale, **a):
    new, mean, var = adamw_rule(w32, g, mean, var, rescale, **a)
    return new, mean, var, new


_declare_adamw("_adamw_update", ["weight", "grad", "mean", "var", "rescale_grad"], ["mean", "var"], adamw_rule,
               "_contrib_adamw_update")
_declare_adamw("_mp_adamw_update", ["weight", "grad", "mean", "var", "weight32", "rescale_grad"],
               ["mean", "var", "weight32"], _mp_adamw, "_contrib_mp_adamw_update")


def group_adagrad_rule(w, g, history, lr, rescale_grad, clip_gradient, epsilon):
    g = _clip(rescale_grad * g, clip_gradient)
    rows = g.reshape(g.shape[0], -1)
    history = history + np.mean(rows * rows, axis=1).reshape(history.shape)
    scale = np.sqrt(history.reshape(-1) + epsilon).reshape((-1,) + (1,) * (g.ndim - 1))
    return w - lr * g / scale, history


def _group_adagrad_infer(w, g, h, **_):
    if g.shape != w.shape or h.shape[:1] != w.shape[:1] or h.size != w.shape[0]:
        raise ShapeError(f"_contrib_group_adagrad_update: grad must match weight {w.shape} and history hold one "
                         f"value per row, got grad {g.shape}, history {h.shape}")
    return [w, h]


def _group_adagrad_np(w, g, h, **a):
    new, hist = group_adagrad_rule(_f32(w), _f32(g), _f32(h), **a)
    return new.astype(w.dtype), hist.astype(h.dtype)


register(OpDef("_contrib_group_adagrad_update", infer=_group_adagrad_infer, compute=_group_adagrad_np,
               inputs=("weight", "grad", "history"),
               attrs={"lr": Attr("float"), "rescale_grad": _F(1.0), "clip_gradient": _F(-1.0), "epsilon": _F(1e-5)},
               num_outputs=2, num_visible_outputs=1, mutates=((1, 2),),
               doc="AdaGrad with one history value per row (the mean of the row's squared gradient)"))


# -- contrib's multi-tensor AdamW and LAMB (nd.contrib.multi_adamw_update, multi_lamb_update) ------
# Interleaved per weight as (weight, grad, mean, var[, weight32]); AdamW's rescale_grad is a
# trailing array. Outputs: the new weights, then each weight's new states (written back by
# graphc/ndarray/contrib_updates.py, as MXNet mutates them).

def lamb_rule(w, g, mean, var, lr, wd, t, beta1, beta2, epsilon, rescale_grad, lower_bound, upper_bound,
              clip_gradient, bias_correction):
    """Both LAMB phases on one tensor: the Adam direction plus decay, scaled by the trust ratio
    ||w|| / ||direction|| (||w|| clipped to [lower_bound, upper_bound] where those are >= 0)."""
    d, mean, var = lamb1_rule(w, g, mean, var, beta1, beta2, epsilon, t, bias_correction, wd, rescale_grad,
                              clip_gradient)
    (new,) = lamb2_rule(w, d, np.array([np.linalg.norm(w)]), np.array([np.linalg.norm(d)]), lr, lower_bound,
                        upper_bound)
    return new, mean, var


def _declare_multi_tensor(name, per, n_states, step, attrs, trailing=()):
    """step(arrays of one weight as float64, index, attrs, *trailing arrays) -> (new weight, *states);
    states are per[2:] (the inputs after weight and grad)."""
    k = len(per)
    count = "num_weights" if "num_weights" in attrs else "num_tensors"

    def inputs(a):
        return tuple(f"{p}_{i}" for i in range(a[count]) for p in per) + tuple(trailing)

    def infer(*types, **a):
        n = a[count]
        if len(types) != n * k + len(trailing):
            raise ShapeError(f"{name}: {count}={n} needs {n * k} arrays ({', '.join(per)} per weight), got "
                             f"{len(types) - len(trailing)}")
        groups = [types[i * k:(i + 1) * k] for i in range(n)]
        for grp in groups:
            _check_same(name, per, grp)
        return [grp[0] for grp in groups] + [grp[2 + j] for grp in groups for j in range(n_states)]

    def compute(*arrays, **a):
        n = a[count]
        extra = arrays[n * k:]
        outs, hidden = [], []
        for i in range(n):
            grp = arrays[i * k:(i + 1) * k]
            res = step([_f32(x) for x in grp], i, a, *extra)
            outs.append(res[0].astype(grp[0].dtype))
            hidden += [r.astype(grp[2 + j].dtype) for j, r in enumerate(res[1:])]
        return tuple(outs + hidden)

    register(OpDef(name, infer=infer, compute=compute, inputs=inputs, attrs=attrs,
                   num_outputs=lambda a: a[count] * (1 + n_states),
                   doc=f"{name.strip('_')} over {count} tensors at once; outputs: the new weights, then each "
                       f"weight's new states"))
    MULTI_TENSOR_STATES[name] = (per, n_states, count)


MULTI_TENSOR_STATES = {}


def _adamw_step(mp):
    def step(grp, i, a, rescale):
        w, g, mean, var = grp[:4]
        kw = dict(lr=float(a["lrs"][i]), eta=float(a["etas"][i]), wd=float(a["wds"][i]), beta1=a["beta1"],
                  beta2=a["beta2"], epsilon=a["epsilon"], clip_gradient=a["clip_gradient"])
        new, mean, var = adamw_rule(grp[4] if mp else w, g, mean, var, rescale, **kw)
        return (new, mean, var, new) if mp else (new, mean, var)
    return step


def _lamb_step(mp):
    def step(grp, i, a):
        w, g, mean, var = grp[:4]
        new, mean, var = lamb_rule(grp[4] if mp else w, g, mean, var, lr=float(a["learning_rates"][i]),
                                   wd=float(a["wds"][i]), t=int(a["step_count"][i]), beta1=a["beta1"],
                                   beta2=a["beta2"], epsilon=a["epsilon"], rescale_grad=a["rescale_grad"],
                                   lower_bound=a["lower_bound"], upper_bound=a["upper_bound"],
                                   clip_gradient=a["clip_gradient"], bias_correction=a["bias_correction"])
        return (new, mean, var, new) if mp else (new, mean, var)
    return step


_MULTI_ADAMW = {"lrs": Attr("any"), "wds": Attr("any"), "etas": Attr("any"), "beta1": _F(0.9), "beta2": _F(0.999),
                "epsilon": _F(1e-8), "clip_gradient": _F(-1.0), "num_weights": Attr("int", 1)}
_MULTI_LAMB = {"learning_rates": Attr("any"), "wds": Attr("any"), "step_count": Attr("any"), "beta1": _F(0.9),
               "beta2": _F(0.999), "epsilon": _F(1e-6), "rescale_grad": _F(1.0), "lower_bound": _F(-1.0),
               "upper_bound": _F(-1.0), "clip_gradient": _F(-1.0), "bias_correction": Attr("bool", True),
               "num_tensors": Attr("int", 1)}
_declare_multi_tensor("_multi_adamw_update", ("weight", "grad", "mean", "var"), 2, _adamw_step(False), _MULTI_ADAMW,
                      trailing=("rescale_grad",))
_declare_multi_tensor("_multi_mp_adamw_update", ("weight", "grad", "mean", "var", "weight32"), 3, _adamw_step(True),
                      _MULTI_ADAMW, trailing=("rescale_grad",))
_declare_multi_tensor("_multi_lamb_update", ("weight", "grad", "mean", "var"), 2, _lamb_step(False), _MULTI_LAMB)
_declare_multi_tensor("_multi_mp_lamb_update", ("weight", "grad", "mean", "var", "weight32"), 3, _lamb_step(True),
                      _MULTI_LAMB)
