"""arctan, arcsin and arccos as scalar formulas over the vocabulary every renderer implements
(graphc.ops.scalar), so that they compile instead of running their numpy reference.

arctan is Cephes' reduction with its (4, 5) rational approximation, good to about an ulp in
float64: |x| above tan(3pi/8) becomes pi/2 + arctan(-1/x), |x| above 0.66 becomes
pi/4 + arctan((x-1)/(x+1)), and the rational fits the rest. The others go through arctan in
forms that keep their accuracy at the ends of [-1, 1]:
    arcsin(x) = arctan(x / sqrt((1 - x)(1 + x)))   (1 - x is exact near 1, unlike 1 - x*x)
    arccos(x) = 2 arctan(sqrt((1 - x) / (1 + x)))  (no cancellation near 1 or near -1)
Outside [-1, 1] the square root's argument is negative and the result NaN, as numpy's.
"""
from __future__ import annotations

import math

from . import scalar as S

_TAN_3PI_8 = 2.41421356237309504880
_MOREBITS = 6.123233995736765886130e-17      # pi/2 - float64(pi/2)
_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
      -1.228866684490136173410e2, -6.485021904942025371773e1)
_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
      4.853903996359136964868e2, 1.945506571482613964425e2)


def _horner(z, coeffs, monic=False):
    acc = z + coeffs[0] if monic else S.const(coeffs[0], z.dtype)
    for c in coeffs[1:]:
        acc = acc * z + c
    return acc


def arctan(x):
    a = S.abs_(x)
    big, mid = a > _TAN_3PI_8, a > 0.66
    r = S.select(big, -1.0 / a, S.select(mid, (a - 1.0) / (a + 1.0), a))
    def pick(if_big, if_mid):
        return S.select(big, S.const(if_big, x.dtype), S.select(mid, S.const(if_mid, x.dtype), S.const(0.0, x.dtype)))
    base, extra = pick(math.pi / 2, math.pi / 4), pick(_MOREBITS, 0.5 * _MOREBITS)
    z = r * r
    # Cephes' p1evl: Q has an implicit leading 1, so the denominator is monic in z
    poly = z * (_horner(z, _P) / _horner(z, _Q, monic=True))
    y = base + ((r * poly + extra) + r)
    return S.select(x < 0.0, -y, y)


def arcsin(x):
    return arctan(x / S.sqrt((1.0 - x) * (1.0 + x)))


def arccos(x):
    return arctan(S.sqrt((1.0 - x) / (1.0 + x))) * 2.0


__all__ = ["arctan", "arcsin", "arccos"]
