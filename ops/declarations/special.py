"""Special functions on numpy (gamma, log-gamma, digamma, trigamma) for the host references of
`gamma`, `gammaln` and their derivatives. graphc does not depend on scipy, so these are written
out: recurrence up to x >= 6, then the asymptotic series, and the reflection formula below 1/2."""
from __future__ import annotations

import math

import numpy as np


def _vectorize(fn, x):
    def safe(v):
        try:
            return fn(v)
        except (ValueError, OverflowError):
            # poles (0, -1, -2, ...) and overflow: the limit numpy users expect
            return math.inf
    x = np.asarray(x)
    return np.vectorize(safe, otypes=[np.float64])(x.astype(np.float64)).astype(x.dtype) if x.size else x.copy()


def gamma_np(x):
    return _vectorize(math.gamma, x)


def gammaln_np(x):
    # MXNet's gammaln is log|Gamma(x)|, which is what math.lgamma returns
    return _vectorize(math.lgamma, x)


def _shift_up(x, terms):
    """Recurrence: move every x up to at least 6, accumulating `terms(x)` on the way."""
    acc = np.zeros_like(x)
    x = x.copy()
    for _ in range(6):
        small = x < 6.0
        if not small.any():
            break
        acc = acc + np.where(small, terms(np.where(small, x, 1.0)), 0.0)
        x = np.where(small, x + 1.0, x)
    return x, acc


def digamma_np(x):
    x0 = np.asarray(x)
    x = x0.astype(np.float64)
    with np.errstate(all="ignore"):
        reflect = x < 0.5
        z = np.where(reflect, 1.0 - x, x)
        z, acc = _shift_up(z, lambda v: -1.0 / v)
        r = 1.0 / (z * z)
        series = np.log(z) - 0.5 / z - r * (1 / 12 - r * (1 / 120 - r * (1 / 252 - r * (1 / 240 - r / 132))))
        out = series + acc
        out = np.where(reflect, out - math.pi / np.tan(math.pi * x), out)
    return out.astype(x0.dtype)


def trigamma_np(x):
    x0 = np.asarray(x)
    x = x0.astype(np.float64)
    with np.errstate(all="ignore"):
        reflect = x < 0.5
        z = np.where(reflect, 1.0 - x, x)
        z, acc = _shift_up(z, lambda v: 1.0 / (v * v))
        r = 1.0 / (z * z)
        series = 1.0 / z + r / 2 + r / z * (1 / 6 - r * (1 / 30 - r * (1 / 42 - r / 30)))
        out = series + acc
        out = np.where(reflect, (math.pi / np.sin(math.pi * x)) ** 2 - out, out)
    return out.astype(x0.dtype)
