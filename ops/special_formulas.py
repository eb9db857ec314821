"""Scalar formulas (graphc.ops.scalar) for the special functions whose numpy references are in
ops/declarations/special.py and misc_math.py: digamma, trigamma, erfinv.

They compile as elementwise kernels, so a network that uses them runs no host step. Each follows
its reference's method in float64 and rounds once to the input's float dtype: the recurrence
loops of the references become a fixed number of selects (a formula has no loops), reflection
below 1/2 uses sin and cos (tan is sin/cos). Only float inputs lower (`float_only`); integer
inputs keep the host reference.

gamma and gammaln stay on the host: their references are math.gamma and math.lgamma, and
tests/ops/test_op_compiled.py holds compiled unary operators to 8 ulp of the reference. A
recurrence-and-Stirling formula is 10-500 ulp off near lgamma's zeros at 1 and 2 and for large
gamma (exp(lgamma) multiplies lgamma's absolute error by its size); a Taylor series at 2 is
accurate, but there math.lgamma's own absolute error (~1e-16, a Lanczos sum) is 1000 ulp of
the result, so no accurate formula matches it either.
"""
from __future__ import annotations

import math

from . import scalar as S

F64 = "float64"


def float_only(in_types, attrs) -> bool:
    return all(t.dtype in ("float32", "float64") for t in in_types)


def _c(v):
    return S.const(v, F64)


def _lt(a, b):
    return S.call("lt", a, b if isinstance(b, S.ScalarExpr) else _c(b))


def _shift_up(z, steps, threshold, term, acc, combine):
    """The references' recurrence, unrolled: while z < threshold (at most `steps` times)
    acc = combine(acc, term(z)), z = z + 1."""
    for _ in range(steps):
        small = _lt(z, threshold)
        acc = S.select(small, combine(acc, term(z)), acc)
        z = S.select(small, z + 1.0, z)
    return z, acc


def _wide(fn):
    """fn over float64, cast back to the input's dtype."""
    def formula(x):
        return S.cast(fn(S.cast(x, F64)), x.dtype)
    formula.__name__ = fn.__name__
    return formula


def _digamma64(x):
    reflect = _lt(x, 0.5)
    z = S.select(reflect, 1.0 - x, x)
    z, acc = _shift_up(z, 6, 6.0, lambda v: -1.0 / v, _c(0.0), lambda a, t: a + t)
    r = 1.0 / (z * z)
    series = S.log(z) - 0.5 / z - r * (1 / 12 - r * (1 / 120 - r * (1 / 252 - r * (1 / 240 - r / 132))))
    out = series + acc
    px = x * math.pi
    return S.select(reflect, out - math.pi * S.cos(px) / S.sin(px), out)


def _trigamma64(x):
    reflect = _lt(x, 0.5)
    z = S.select(reflect, 1.0 - x, x)
    z, acc = _shift_up(z, 6, 6.0, lambda v: 1.0 / (v * v), _c(0.0), lambda a, t: a + t)
    r = 1.0 / (z * z)
    series = 1.0 / z + r / 2 + r / z * (1 / 6 - r * (1 / 30 - r * (1 / 42 - r / 30)))
    out = series + acc
    q = math.pi / S.sin(x * math.pi)
    return S.select(reflect, q * q - out, out)


_ERFINV_SMALL = (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                 -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_LARGE = (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                 0.00943887047, 1.00167406, 2.83297682)


def _erfinv64(v):
    """Giles' single-precision approximation, then two Newton steps on erf (the reference's)."""
    w = -S.log((1.0 - v) * (1.0 + v))
    small = _lt(w, 5.0)
    ws = w - 2.5
    p_small = _c(2.81022636e-08)
    for c in _ERFINV_SMALL:
        p_small = c + p_small * ws
    wl = S.sqrt(S.select(small, _c(5.0), w)) - 3.0
    p_large = _c(-0.000200214257)
    for c in _ERFINV_LARGE:
        p_large = c + p_large * wl
    y = S.select(small, p_small, p_large) * v
    inside = _lt(S.abs_(v), 1.0)
    for _ in range(2):
        ys = S.select(inside, y, _c(0.0))
        step = (S.erf(ys) - v) / (2.0 / math.sqrt(math.pi) * S.exp(-(ys * ys)))
        y = S.select(inside, y - step, y)
    edge = S.select(S.call("eq", v, _c(1.0)), _c(math.inf), S.select(S.call("eq", v, _c(-1.0)), _c(-math.inf),
                                                                       _c(math.nan)))
    return S.select(inside, y, edge)


digamma = _wide(_digamma64)
trigamma = _wide(_trigamma64)
erfinv = _wide(_erfinv64)

__all__ = ["digamma", "trigamma", "erfinv", "float_only"]
