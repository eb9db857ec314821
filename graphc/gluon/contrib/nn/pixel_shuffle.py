"""Pixel (sub-pixel convolution) shuffling, Shi et al. 2016: (N, C*f1*...*fd, S1, ..., Sd) ->
(N, C, S1*f1, ..., Sd*fd). Channel c*F + k (F = f1*...*fd, k the row-major index of
(k1, ..., kd)) lands at output position (s1*f1 + k1, ..., sd*fd + kd) of channel c, which is
MXNet's layout (checked against MXNet 1.9.1 in tests/gluon/test_contrib_nn.py). One reshape
that splits the channels, one transpose that interleaves each factor after its spatial axis,
one reshape that merges them: the same three nodes for 1, 2 and 3 dimensions."""
from __future__ import annotations

import numpy as np

from ....ops.errors import GraphcError
from ...block import HybridBlock

__all__ = ["PixelShuffle1D", "PixelShuffle2D", "PixelShuffle3D"]


def _factors(factor, dims, name):
    if isinstance(factor, (int, np.integer)):
        return (int(factor),) * dims
    factors = tuple(int(f) for f in factor)
    if len(factors) != dims:
        raise GraphcError(f"{name}: factor must be an int or {dims} ints, got {factor!r}")
    return factors


class _PixelShuffle(HybridBlock):
    _dims = 0

    def __init__(self, factor):
        super().__init__()
        self._factors = _factors(factor, self._dims, type(self).__name__)

    def hybrid_forward(self, F, x):
        d, factors = self._dims, self._factors
        if len(x.shape) != d + 2:
            raise GraphcError(f"{type(self).__name__}: input must have {d + 2} axes (N, C, {d} spatial), "
                              f"got shape {tuple(x.shape)}")
        n, channels, *spatial = (int(s) for s in x.shape)
        block = int(np.prod(factors))
        if channels % block:
            raise GraphcError(f"{type(self).__name__}: {channels} channels are not a multiple of the factors' "
                              f"product {block} (factors {factors})")
        x = F.reshape(x, shape=(n, channels // block, *factors, *spatial))
        # axes now: 0 N, 1 C, 2..d+1 the factors, d+2.. the spatial axes
        order = [0, 1] + [a for i in range(d) for a in (d + 2 + i, 2 + i)]
        x = F.transpose(x, axes=tuple(order))
        return F.reshape(x, shape=(n, channels // block, *(s * f for s, f in zip(spatial, factors))))

    def __repr__(self):
        shown = self._factors[0] if self._dims == 1 else self._factors
        return f"{self.__class__.__name__}({shown})"


class PixelShuffle1D(_PixelShuffle):
    """(N, f*C, W) -> (N, C, W*f)."""
    _dims = 1


class PixelShuffle2D(_PixelShuffle):
    """(N, f1*f2*C, H, W) -> (N, C, H*f1, W*f2)."""
    _dims = 2


class PixelShuffle3D(_PixelShuffle):
    """(N, f1*f2*f3*C, D, H, W) -> (N, C, D*f1, H*f2, W*f3)."""
    _dims = 3
