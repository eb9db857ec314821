"""nd.random: samplers drawing from the global generator that mx.random.seed sets."""
from __future__ import annotations

from .ndarray import invoke


def _sample(op, shape, dtype, ctx, **attrs):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    attrs.update(shape=shape, dtype=dtype or "float32")
    if ctx is not None:
        attrs["ctx"] = str(ctx)
    return invoke(op, [], attrs)


def uniform(low=0.0, high=1.0, shape=(1,), dtype="float32", ctx=None, out=None, **kw):
    return _sample("_random_uniform", shape, dtype, ctx, low=low, high=high)


def normal(loc=0.0, scale=1.0, shape=(1,), dtype="float32", ctx=None, out=None, **kw):
    return _sample("_random_normal", shape, dtype, ctx, loc=loc, scale=scale)


def randn(*shape, loc=0.0, scale=1.0, dtype="float32", ctx=None, **kw):
    return normal(loc, scale, shape, dtype, ctx)


def randint(low, high, shape=(1,), dtype="int32", ctx=None, out=None, **kw):
    return _sample("_random_randint", shape, dtype, ctx, low=low, high=high)


def exponential(scale=1.0, shape=(1,), dtype="float32", ctx=None, out=None, **kw):
    return _sample("_random_exponential", shape, dtype, ctx, lam=1.0 / scale)


def shuffle(data, **kw):
    return invoke("_shuffle", [data], {})
