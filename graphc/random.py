"""The global random state: `mx.random.seed(n)` makes eager and compiled sampling repeatable."""
from __future__ import annotations

import numpy as np

_state = {"rng": np.random.default_rng(0)}


def seed(seed_state=0, ctx="all"):
    _state["rng"] = np.random.default_rng(int(seed_state))


def generator() -> np.random.Generator:
    return _state["rng"]


def uniform(low=0.0, high=1.0, shape=(1,), dtype="float32", ctx=None, out=None, **kw):
    from .ndarray import random as ndrandom
    return ndrandom.uniform(low, high, shape, dtype, ctx, out, **kw)


def normal(loc=0.0, scale=1.0, shape=(1,), dtype="float32", ctx=None, out=None, **kw):
    from .ndarray import random as ndrandom
    return ndrandom.normal(loc, scale, shape, dtype, ctx, out, **kw)
