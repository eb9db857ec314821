"""Random samplers. They draw from the generator the caller passes (graphc.random.seed sets it),
are never constant-folded or merged by CSE, and have no gradient."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import DTypeError, OpAttributeError, ShapeError
from ..registry import OpDef, register
from ..types import TensorType

_COMMON = {"shape": Attr("shape", ()), "dtype": Attr("dtype", "float32"), "ctx": Attr("str", "cpu(0)")}


def _infer(shape, dtype, ctx="cpu(0)", **_):
    return TensorType(shape, dtype or "float32")


register(OpDef("_random_uniform", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "low": Attr("float", 0.0), "high": Attr("float", 1.0)},
               compute=lambda shape, dtype, low, high, ctx="cpu(0)", rng=None: rng.uniform(low, high, shape).astype(dtype),
               aliases=("uniform", "random_uniform")))
register(OpDef("_random_normal", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "loc": Attr("float", 0.0), "scale": Attr("float", 1.0)},
               compute=lambda shape, dtype, loc, scale, ctx="cpu(0)", rng=None: rng.normal(loc, scale, shape).astype(dtype),
               aliases=("normal", "random_normal")))
register(OpDef("_random_exponential", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "lam": Attr("float", 1.0)},
               compute=lambda shape, dtype, lam, ctx="cpu(0)", rng=None: rng.exponential(1.0 / lam, shape).astype(dtype),
               aliases=("random_exponential",)))
register(OpDef("_random_gamma", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "alpha": Attr("float", 1.0), "beta": Attr("float", 1.0)},
               compute=lambda shape, dtype, alpha, beta, ctx="cpu(0)", rng=None: rng.gamma(alpha, beta, shape).astype(dtype),
               aliases=("random_gamma",), doc="Gamma(shape alpha, scale beta) samples."))
register(OpDef("_random_poisson", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "lam": Attr("float", 1.0)},
               compute=lambda shape, dtype, lam, ctx="cpu(0)", rng=None: rng.poisson(lam, shape).astype(dtype),
               aliases=("random_poisson",)))


def _randint_infer(shape, dtype, low, high, ctx="cpu(0)"):
    if high <= low:
        raise OpAttributeError(f"_random_randint: high={high} must exceed low={low}")
    if dtype not in ("int32", "int64"):
        raise DTypeError(f"_random_randint: dtype must be int32 or int64, got {dtype}")
    return TensorType(shape, dtype)


register(OpDef("_random_randint", inputs=(), infer=_randint_infer, random=True,
               attrs={"shape": Attr("shape", ()), "dtype": Attr("dtype", "int32"), "ctx": Attr("str", "cpu(0)"),
                      "low": Attr("int"), "high": Attr("int")},
               compute=lambda shape, dtype, low, high, ctx="cpu(0)", rng=None: rng.integers(low, high, shape).astype(dtype),
               aliases=("random_randint",), doc="Integers uniform in [low, high)."))


# -- samplers with inputs --------------------------------------------------------------------------

def _multinomial_infer(p, shape, get_prob, dtype):
    if p.ndim < 1:
        raise ShapeError(f"_sample_multinomial: data must have at least one dimension (probabilities), got {p.shape}")
    # one distribution drawn once: MXNet 1.x writes the lone draw's shape as (1,)
    out = TensorType(p.shape[:-1] + tuple(shape) or (1,), dtype, p.device)
    return [out, out.with_(dtype=p.dtype)] if get_prob else out


def _multinomial_np(p, shape, get_prob, dtype, rng=None):
    k = p.shape[-1]
    flat = p.reshape(-1, k).astype(np.float64)
    n = int(np.prod(shape)) if shape else 1
    cdf = np.cumsum(flat, axis=1)
    u = rng.random((flat.shape[0], n)) * cdf[:, -1:]
    idx = np.minimum(np.stack([np.searchsorted(c, row, side="right") for c, row in zip(cdf, u)]), k - 1)
    out = idx.reshape(p.shape[:-1] + tuple(shape) or (1,)).astype(dtype)
    if not get_prob:
        return out
    logp = np.log(np.take_along_axis(flat, idx, axis=1)).reshape(out.shape).astype(p.dtype)
    return out, logp


def _multinomial_grad(F, ins, outs, gs, attrs):
    # MXNet's rule (REINFORCE): only the log-probability output carries gradient, into the
    # probabilities that were drawn: d log p[k] / d p[k] = 1 / p[k]
    if not attrs["get_prob"] or gs[1] is None:
        return [None]
    p = ins[0]
    k = p.shape[-1]
    hot = F.one_hot(outs[0], depth=k, dtype=p.dtype)  # (..., *shape, k)
    extra = len(attrs["shape"])
    g = F.expand_dims(gs[1], axis=-1) * hot
    if extra:
        g = F.sum(F.Reshape(g, shape=p.shape[:-1] + (-1, k)), axis=-2)
    return [F.Reshape(g, shape=p.shape) / p]


register(OpDef("_sample_multinomial", infer=_multinomial_infer, compute=_multinomial_np, random=True,
               attrs={"shape": Attr("shape", ()), "get_prob": Attr("bool", False), "dtype": Attr("dtype", "int32")},
               num_outputs=lambda attrs: 2 if attrs["get_prob"] else 1, gradient=_multinomial_grad,
               aliases=("sample_multinomial",),
               doc="Draw class indices from the distributions in the last axis of data."))
register(OpDef("_shuffle", infer=lambda x: x, random=True,
               compute=lambda x, rng=None: x[rng.permutation(x.shape[0])] if x.ndim else x.copy(),
               aliases=("shuffle",), doc="A random permutation along the first axis (no gradient)."))
