"""The global random state: `mx.random.seed(n)` makes eager and compiled sampling repeatable.

mx.random.uniform, normal, randint, ... are nd.random's samplers (MXNet exposes both paths)."""
from __future__ import annotations

import numpy as np

_state = {"rng": np.random.default_rng(0)}
_SAMPLERS = ("uniform", "normal", "randn", "randint", "exponential", "gamma", "poisson",
             "negative_binomial", "generalized_negative_binomial", "multinomial", "shuffle")


def seed(seed_state=0, ctx="all"):
    _state["rng"] = np.random.default_rng(int(seed_state))


def generator() -> np.random.Generator:
    return _state["rng"]


def __getattr__(name):
    # resolved lazily: nd.random imports this module for the generator
    if name in _SAMPLERS:
        from .ndarray import random as ndrandom
        return getattr(ndrandom, name)
    raise AttributeError(f"module 'graphc.random' has no attribute {name!r}")
