"""Samplers whose distribution parameters are arrays (MXNet's _sample_*: one distribution per
parameter element, `shape` more draws from each), and the two negative binomials with scalar
parameters (_random_negative_binomial, _random_generalized_negative_binomial).

Like the scalar samplers in random.py they draw from the generator the caller passes, are never
folded or merged, and have no gradient (MXNet declares none).
"""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import DTypeError, ShapeError
from ..registry import OpDef, register
from ..types import TensorType

_FLOATS = ("float16", "float32", "float64")


def _out_dtype(op, dtype):
    dtype = dtype or "float32"
    if dtype not in _FLOATS:
        raise DTypeError(f"{op}: dtype must be one of {list(_FLOATS)} (or None for float32), got {dtype}")
    return dtype


def _gamma_poisson(rng, shape_k, scale):
    """Poisson draws whose rate is Gamma(shape_k, scale): the negative binomial family."""
    return rng.poisson(rng.gamma(shape_k, scale))


def _negative_binomial(rng, k, p, size):
    # failures before the k-th success with success probability p: mean k (1 - p) / p
    k, p = np.broadcast_to(k, size), np.broadcast_to(p, size)
    return _gamma_poisson(rng, k, (1.0 - p) / p)


def _generalized_negative_binomial(rng, mu, alpha, size):
    # mean mu, variance mu + alpha mu^2; alpha = 0 is Poisson(mu)
    mu, alpha = np.broadcast_to(mu, size).astype(np.float64), np.broadcast_to(alpha, size).astype(np.float64)
    safe = np.where(alpha > 0, alpha, 1.0)
    rate = np.where(alpha > 0, rng.gamma(1.0 / safe, safe * mu), mu)
    return rng.poisson(rate)


# name -> (parameter names, draw(rng, *params, size))
_DISTRIBUTIONS = {
    "uniform": (("low", "high"), lambda rng, lo, hi, size: rng.uniform(lo, hi, size)),
    "normal": (("mu", "sigma"), lambda rng, mu, sigma, size: rng.normal(mu, sigma, size)),
    "gamma": (("alpha", "beta"), lambda rng, a, b, size: rng.gamma(a, b, size)),
    "exponential": (("lam",), lambda rng, lam, size: rng.exponential(1.0 / np.asarray(lam, np.float64), size)),
    "poisson": (("lam",), lambda rng, lam, size: rng.poisson(lam, size)),
    "negative_binomial": (("k", "p"), _negative_binomial),
    "generalized_negative_binomial": (("mu", "alpha"), _generalized_negative_binomial),
}


def _sample_infer(op, names):
    def infer(*params, shape, dtype):
        for name, t in zip(names[1:], params[1:]):
            if t.shape != params[0].shape:
                raise ShapeError(f"{op}: parameters must have the same shape, got {names[0]} {params[0].shape} "
                                 f"and {name} {t.shape}")
        return TensorType(params[0].shape + tuple(shape), _out_dtype(op, dtype), params[0].device)
    return infer


def _sample_compute(draw):
    def compute(*params, shape, dtype, rng=None):
        extra = (1,) * len(shape)
        size = params[0].shape + tuple(shape)
        wide = [np.asarray(p, np.float64).reshape(p.shape + extra) for p in params]
        return np.asarray(draw(rng, *wide, size)).reshape(size).astype(dtype or "float32")
    return compute


for _name, (_params, _draw) in _DISTRIBUTIONS.items():
    register(OpDef(f"_sample_{_name}", inputs=_params, infer=_sample_infer(f"_sample_{_name}", _params),
                   compute=_sample_compute(_draw), random=True,
                   attrs={"shape": Attr("shape", ()), "dtype": Attr("dtype", None, optional=True)},
                   aliases=(f"sample_{_name}",),
                   doc=f"{_name} samples, one distribution per element of the parameter arrays {list(_params)}."))


_SCALAR = {"shape": Attr("shape", ()), "dtype": Attr("dtype", "float32"), "ctx": Attr("str", "cpu(0)")}


def _scalar_infer(op):
    def infer(shape, dtype, ctx="cpu(0)", **_):
        return TensorType(tuple(shape), _out_dtype(op, dtype))
    return infer


register(OpDef("_random_negative_binomial", inputs=(), infer=_scalar_infer("_random_negative_binomial"), random=True,
               attrs={**_SCALAR, "k": Attr("int", 1), "p": Attr("float", 1.0)},
               compute=lambda shape, dtype, k, p, ctx="cpu(0)", rng=None:
                   _negative_binomial(rng, float(k), p, tuple(shape)).astype(dtype or "float32"),
               aliases=("random_negative_binomial",),
               doc="Failures before the k-th success, success probability p."))
register(OpDef("_random_generalized_negative_binomial", inputs=(), random=True,
               infer=_scalar_infer("_random_generalized_negative_binomial"),
               attrs={**_SCALAR, "mu": Attr("float", 1.0), "alpha": Attr("float", 1.0)},
               compute=lambda shape, dtype, mu, alpha, ctx="cpu(0)", rng=None:
                   _generalized_negative_binomial(rng, mu, alpha, tuple(shape)).astype(dtype or "float32"),
               aliases=("random_generalized_negative_binomial",),
               doc="Negative binomial by mean mu and dispersion alpha (variance mu + alpha mu^2)."))


# -- _random_<dist>_like: the scalar samplers, shaped and typed like an input -------------------------
_LIKE = {  # name -> (attrs with MXNet's defaults, draw(rng, size, **attrs))
    "uniform": ({"low": Attr("float", 0.0), "high": Attr("float", 1.0)},
                lambda rng, size, low, high: rng.uniform(low, high, size)),
    "normal": ({"loc": Attr("float", 0.0), "scale": Attr("float", 1.0)},
               lambda rng, size, loc, scale: rng.normal(loc, scale, size)),
    "gamma": ({"alpha": Attr("float", 1.0), "beta": Attr("float", 1.0)},
              lambda rng, size, alpha, beta: rng.gamma(alpha, beta, size)),
    "exponential": ({"lam": Attr("float", 1.0)}, lambda rng, size, lam: rng.exponential(1.0 / lam, size)),
    "poisson": ({"lam": Attr("float", 1.0)}, lambda rng, size, lam: rng.poisson(lam, size)),
    "negative_binomial": ({"k": Attr("int", 1), "p": Attr("float", 1.0)},
                          lambda rng, size, k, p: _negative_binomial(rng, float(k), p, size)),
    "generalized_negative_binomial": (
        {"mu": Attr("float", 1.0), "alpha": Attr("float", 1.0)},
        lambda rng, size, mu, alpha: _generalized_negative_binomial(rng, mu, alpha, size)),
}


def _like_compute(draw):
    def compute(data, rng=None, **attrs):
        return np.asarray(draw(rng, data.shape, **attrs)).astype(data.dtype)
    return compute


for _name, (_attrs, _draw) in _LIKE.items():
    register(OpDef(f"_random_{_name}_like", inputs=("data",), infer=lambda data, **_: data, random=True,
                   attrs=_attrs, compute=_like_compute(_draw), aliases=(f"random_{_name}_like",),
                   doc=f"{_name} samples with data's shape and dtype (data's values are not read)."))
