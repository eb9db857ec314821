"""nd.random: samplers drawing from the global generator that mx.random.seed sets. Number
parameters draw from one distribution, array parameters from one per element (MXNet's
_random_* and _sample_* operators; graphc.op_functions picks which)."""
from __future__ import annotations

from ..op_functions import RandomFunctions
from .ndarray import NDArray, _NAMESPACE

_FUNCTIONS = RandomFunctions(_NAMESPACE, lambda a: isinstance(a, NDArray))

uniform = _FUNCTIONS.uniform
normal = _FUNCTIONS.normal
randn = _FUNCTIONS.randn
randint = _FUNCTIONS.randint
poisson = _FUNCTIONS.poisson
exponential = _FUNCTIONS.exponential
gamma = _FUNCTIONS.gamma
negative_binomial = _FUNCTIONS.negative_binomial
generalized_negative_binomial = _FUNCTIONS.generalized_negative_binomial
multinomial = _FUNCTIONS.multinomial
shuffle = _FUNCTIONS.shuffle


def __getattr__(name):
    return getattr(_FUNCTIONS, name)
