"""MXNet's `_random_pdf_*` operators: densities (or log densities, is_log) of samples under
distributions whose parameters are arrays. Parameters have shape P and the sample P + T: each
parameter set scores the samples in the trailing dimensions T (dirichlet's last dimension is
the simplex, so its result drops it).

The parametrisations are MXNet 1.9.1's: gamma's beta is a rate, generalized_negative_binomial
is negative_binomial with k = 1 / alpha and p = 1 / (1 + alpha mu), and uniform's density is
1 / (high - low) whether or not the sample lies in [low, high] (MXNet does not check).
Gradients with respect to the sample and every parameter come from one host operator,
_random_pdf_grad, with the derivatives written out (digamma from special.py)."""
from __future__ import annotations

import math

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from .common import like
from .special import digamma_np

_LGAMMA = np.vectorize(math.lgamma, otypes=[np.float64])

# name -> parameter names; whether the sample is discrete (no gradient for it)
DISTRIBUTIONS = {
    "uniform": (("low", "high"), False), "normal": (("mu", "sigma"), False), "gamma": (("alpha", "beta"), False),
    "exponential": (("lam",), False), "poisson": (("lam",), True), "negative_binomial": (("k", "p"), True),
    "generalized_negative_binomial": (("mu", "alpha"), True), "dirichlet": (("alpha",), False),
}


def _spread(p, sample_ndim):
    return p.reshape(p.shape + (1,) * (sample_ndim - p.ndim))


def log_density(dist, x, *params):
    """Elementwise log density in float64, parameters broadcast over the sample's trailing dims;
    dirichlet sums over the last dimension."""
    x = x.astype(np.float64)
    if dist == "dirichlet":
        a = params[0].astype(np.float64)
        a = a.reshape(a.shape[:-1] + (1,) * (x.ndim - a.ndim) + a.shape[-1:])
        with np.errstate(all="ignore"):
            return (_LGAMMA(a.sum(-1)) - _LGAMMA(a).sum(-1) + ((a - 1) * np.log(x)).sum(-1))
    p = [_spread(q.astype(np.float64), x.ndim) for q in params]
    with np.errstate(all="ignore"):
        if dist == "uniform":
            return -np.log(p[1] - p[0]) + 0 * x
        if dist == "normal":
            return -0.5 * ((x - p[0]) / p[1]) ** 2 - np.log(p[1]) - 0.5 * math.log(2 * math.pi)
        if dist == "gamma":
            a, b = p
            return a * np.log(b) + (a - 1) * np.log(x) - b * x - _LGAMMA(a)
        if dist == "exponential":
            return np.log(p[0]) - p[0] * x
        if dist == "poisson":
            return x * np.log(p[0]) - p[0] - _LGAMMA(x + 1)
        k, q = p if dist == "negative_binomial" else (1 / p[1], 1 / (1 + p[1] * p[0]))
        return _LGAMMA(x + k) - _LGAMMA(x + 1) - _LGAMMA(k) + k * np.log(q) + x * np.log(1 - q)


def _grads(dist, x, *params):
    """d log density / d (sample, *params), each of the sample's shape (dirichlet: its own)."""
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if dist == "dirichlet":
            a = params[0].astype(np.float64)
            a = a.reshape(a.shape[:-1] + (1,) * (x.ndim - a.ndim) + a.shape[-1:])
            return [(a - 1) / x, digamma_np(a.sum(-1, keepdims=True)) - digamma_np(a) + np.log(x)]
        p = [_spread(q.astype(np.float64), x.ndim) for q in params]
        if dist == "uniform":
            lo, hi = p
            return [0 * x, 1 / (hi - lo) + 0 * x, -1 / (hi - lo) + 0 * x]
        if dist == "normal":
            mu, s = p
            z = (x - mu) / s
            return [-z / s, z / s, (z * z - 1) / s]
        if dist == "gamma":
            a, b = p
            return [(a - 1) / x - b, np.log(b) + np.log(x) - digamma_np(a + 0 * x), a / b - x]
        if dist == "exponential":
            return [-p[0] + 0 * x, 1 / p[0] - x]
        if dist == "poisson":
            return [0 * x, x / p[0] - 1]
        if dist == "negative_binomial":
            k, q = p
            return [0 * x, digamma_np(x + k) - digamma_np(k + 0 * x) + np.log(q), k / q - x / (1 - q)]
        mu, al = p      # through k = 1/alpha, q = 1/(1 + alpha mu)
        k, q = 1 / al, 1 / (1 + al * mu)
        dk = digamma_np(x + k) - digamma_np(k + 0 * x) + np.log(q)
        dq = k / q - x / (1 - q)
        return [0 * x, dq * (-al * q * q), dk * (-1 / (al * al)) + dq * (-mu * q * q)]


def _inputs(dist):
    return ("sample",) + DISTRIBUTIONS[dist][0]


def _infer(dist):
    def infer(sample, *params, is_log):
        first = params[0]
        for p in params:
            if p.shape != first.shape:
                raise ShapeError(f"_random_pdf_{dist}: parameters have different shapes "
                                 f"{[q.shape for q in params]}")
        lead = first.shape[:-1] if dist == "dirichlet" else first.shape
        if sample.shape[:len(lead)] != lead or (dist == "dirichlet" and sample.shape[-1:] != first.shape[-1:]):
            raise ShapeError(f"_random_pdf_{dist}: sample {sample.shape} must start with the parameters' shape "
                             f"{first.shape}" + (" and end with the simplex size" if dist == "dirichlet" else ""))
        return like(sample, sample.shape[:-1] if dist == "dirichlet" else sample.shape)
    return infer


def _compute(dist):
    def compute(sample, *params, is_log):
        lp = log_density(dist, sample, *params)
        return (lp if is_log else np.exp(lp)).astype(sample.dtype)
    return compute


def _grad_rule(dist):
    def gradient(F, ins, outs, gs, attrs):
        return list(F._random_pdf_grad(*ins, outs[0], gs[0], distribution=dist, is_log=attrs["is_log"]))
    return gradient


for _dist in DISTRIBUTIONS:
    register(OpDef(f"_random_pdf_{_dist}", infer=_infer(_dist), compute=_compute(_dist), inputs=_inputs(_dist),
                   attrs={"is_log": Attr("bool", False)}, gradient=_grad_rule(_dist),
                   aliases=(f"random_pdf_{_dist}",),
                   doc=f"The {_dist} density (is_log: log density) of each sample under its parameters."))


# -- the shared backward ---------------------------------------------------------------------------

def _pdf_grad_inputs(attrs):
    return _inputs(attrs["distribution"]) + ("output", "ograd")


def _pdf_grad_infer(*types, distribution, is_log):
    return list(types[:-2])


def _reduce_to(g, shape):
    """Sum a per-sample gradient over the trailing sample dimensions to a parameter's shape."""
    extra = g.ndim - len(shape)
    return g.sum(axis=tuple(range(len(shape), g.ndim))) if extra > 0 else g


def _pdf_grad_np(*arrays, distribution, is_log):
    sample, params, out, og = arrays[0], arrays[1:-2], arrays[-2], arrays[-1]
    scale = og.astype(np.float64) * (1.0 if is_log else out.astype(np.float64))
    parts = _grads(distribution, sample, *params)
    if distribution == "dirichlet":
        s = scale[..., None]
        d_alpha = s * parts[1]
        lead = params[0].ndim - 1
        d_alpha = d_alpha.sum(axis=tuple(range(lead, d_alpha.ndim - 1))) if d_alpha.ndim - 1 > lead else d_alpha
        return (s * parts[0]).astype(sample.dtype), d_alpha.astype(params[0].dtype)
    discrete = DISTRIBUTIONS[distribution][1]
    d_sample = np.zeros_like(sample) if discrete else (scale * parts[0]).astype(sample.dtype)
    return (d_sample,) + tuple(_reduce_to(scale * g, p.shape).astype(p.dtype) for g, p in zip(parts[1:], params))


register(OpDef("_random_pdf_grad", infer=_pdf_grad_infer, compute=_pdf_grad_np, inputs=_pdf_grad_inputs,
               attrs={"distribution": Attr("str", choices=tuple(DISTRIBUTIONS)), "is_log": Attr("bool", False)},
               num_outputs=lambda attrs: 1 + len(DISTRIBUTIONS[attrs["distribution"]][0]),
               doc="The backward of every _random_pdf_*: gradients of the sample (zero when discrete) "
                   "and of each parameter (summed over the samples it scores)."))
