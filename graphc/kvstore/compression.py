"""2-bit gradient compression, bit for bit as MXNet 1.9.1's
(`kv.set_gradient_compression({'type': '2bit', 'threshold': t})`,
src/kvstore/gradient_compression-inl.h).

The sender keeps a float32 residual per gradient. For every element, in float32:
residual += grad; residual >= t gives code 0b11 and residual -= t; residual <= -t gives code
0b10 and residual += t; anything else (NaN included) gives 0b00. Sixteen codes pack into one
float32 word: element j of a block of 16 lives in byte j // 4 of the word (bytes in memory
order) at bit pair 7-6, 5-4, 3-2, 1-0 for j % 4 = 0, 1, 2, 3. Dequantising gives +t for 0b11,
-t for 0b10 and 0 otherwise. The error the codes leave behind stays in the residual and is
sent later ("error feedback"), so no gradient is lost, only delayed.

Everything here is numpy over whole arrays; a Python loop per element would make a 10 M-value
gradient take seconds. This module knows nothing of keys or devices: the store owns the
residuals and decides where compression applies.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..ops.errors import DTypeError, GraphcError

__all__ = ["TwoBitCompression", "from_params"]

_CODES_PER_WORD = 16
_POS, _NEG = np.uint8(0b11), np.uint8(0b10)


class TwoBitCompression:
    """MXNet's '2bit' scheme with one positive `threshold` (float32, as MXNet stores it)."""

    type = "2bit"

    def __init__(self, threshold=0.5):
        threshold = float(threshold)
        if not threshold > 0:
            raise GraphcError(f"gradient compression '2bit': threshold must be greater than 0, got {threshold}")
        self.threshold = np.float32(threshold)

    def __repr__(self):
        return f"TwoBitCompression(threshold={float(self.threshold)!r})"

    @staticmethod
    def compressed_size(size: int) -> int:
        """Number of float32 words that hold `size` codes."""
        return (size + _CODES_PER_WORD - 1) // _CODES_PER_WORD

    def quantize(self, grad: np.ndarray, residual: np.ndarray, what: str = "gradient") -> np.ndarray:
        """Add `grad` into `residual` (in place), take the codes out of it, return the packed
        words (float32, compressed_size(grad.size) of them)."""
        _check_float32(grad, what)
        _check_float32(residual, f"residual of {what}")
        if grad.shape != residual.shape:
            raise GraphcError(f"gradient compression: {what} has shape {grad.shape} but its residual has "
                              f"{residual.shape}")
        r = residual.reshape(-1)
        if not np.shares_memory(r, residual):
            raise GraphcError(f"gradient compression: the residual of {what} must be contiguous")
        r += grad.reshape(-1)
        t = self.threshold
        pos = r >= t
        neg = r <= -t
        np.subtract(r, t, out=r, where=pos)
        np.add(r, t, out=r, where=neg)
        n = r.size
        codes = np.zeros(self.compressed_size(n) * _CODES_PER_WORD, np.uint8)
        codes[:n][pos] = _POS
        codes[:n][neg] = _NEG
        c = codes.reshape(-1, 4)
        packed = (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]
        return packed.view(np.float32)

    def dequantize(self, words: np.ndarray, size: int) -> np.ndarray:
        """The `size` float32 values (+t, -t or 0) that the packed `words` stand for."""
        words = np.ascontiguousarray(words, dtype=np.float32).reshape(-1)
        if words.size != self.compressed_size(size):
            raise GraphcError(f"gradient compression: {size} values need {self.compressed_size(size)} words, "
                              f"got {words.size}")
        b = words.view(np.uint8)
        codes = np.stack([b >> 6, (b >> 4) & 3, (b >> 2) & 3, b & 3], axis=1).reshape(-1)[:size]
        out = np.zeros(size, np.float32)
        out[codes == _POS] = self.threshold
        out[codes == _NEG] = -self.threshold
        return out


def _check_float32(a, what):
    if a.dtype != np.float32:
        raise DTypeError(f"gradient compression '2bit': {what} is {a.dtype}, but MXNet's 2-bit kernels take "
                         "float32 only")


def from_params(params) -> TwoBitCompression:
    """Parse `set_gradient_compression`'s dict the way MXNet does: 'type' is required and must be
    '2bit'; 'threshold' defaults to 0.5 and may be a number or a numeric string. MXNet ignores
    other keys; so does graphc, with a warning, since a misspelt 'threshold' would otherwise
    silently train with 0.5."""
    if not isinstance(params, dict):
        raise GraphcError(f"set_gradient_compression: expected a dict like {{'type': '2bit', 'threshold': 0.5}}, "
                          f"got {type(params).__name__}")
    if "type" not in params:
        raise GraphcError("set_gradient_compression: the required key 'type' is missing (only '2bit' exists)")
    kind = str(params["type"])
    if kind != "2bit":
        raise GraphcError(f"set_gradient_compression: unknown type {kind!r} for gradient compression; "
                          "MXNet 1.9.1 has '2bit' only")
    unknown = sorted(set(params) - {"type", "threshold"})
    if unknown:
        warnings.warn(f"set_gradient_compression: ignoring unknown keys {unknown} (known: 'type', 'threshold')")
    try:
        threshold = float(params.get("threshold", 0.5))
    except (TypeError, ValueError):
        raise GraphcError(f"set_gradient_compression: threshold must be a number, got "
                          f"{params['threshold']!r}") from None
    return TwoBitCompression(threshold)
