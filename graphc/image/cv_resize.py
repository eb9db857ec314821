"""Bilinear resizing of uint8 images that reproduces OpenCV's cv::resize(INTER_LINEAR), which
MXNet's C++ image pipeline (ImageRecordIter) uses: the same sample positions (pixel centres,
no antialiasing when shrinking, edges clamped) and the same 11-bit fixed-point weights and
rounding, so that batches built from resized images equal MXNet's.

Pillow's bilinear filter widens its support when it shrinks, so it cannot serve here; this is
numpy only.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["resize_bilinear"]

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


@lru_cache(maxsize=256)     # a dataset has few distinct sizes; the arrays are never written to
def _taps(src: int, dst: int, clamp_weights: bool):
    """Left/right source index and the two fixed-point weights for each output position.
    OpenCV zeroes the weight of a tap outside the image horizontally, but vertically keeps the
    weights and only clamps the row index (so an edge row is blended with itself)."""
    scale = src / dst
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    f = (f - i0).astype(np.float32)
    if clamp_weights:
        low = i0 < 0
        f[low], i0[low] = 0, 0
        high = i0 >= src - 1
        f[high], i0[high] = 0, src - 1
    w1 = np.rint(f * _COEF_SCALE).astype(np.int32)
    w0 = np.rint((np.float32(1) - f) * _COEF_SCALE).astype(np.int32)
    i1 = np.clip(i0 + 1, 0, src - 1)
    i0 = np.clip(i0, 0, src - 1)
    return i0, i1, w0, w1


def resize_bilinear(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """An HxW or HxWxC uint8 image resized to (h, w) as OpenCV's INTER_LINEAR does."""
    if img.dtype != np.uint8:
        raise TypeError(f"resize_bilinear: expected a uint8 image, got {img.dtype}")
    sh, sw = img.shape[:2]
    w, h = int(w), int(h)
    if (sh, sw) == (h, w):
        return img.copy()
    x0, x1, a0, a1 = _taps(sw, w, True)
    y0, y1, b0, b1 = _taps(sh, h, False)
    # int32 suffices: a row value is at most 255 * 2048, a vertical product 2048 * (255 * 128).
    # In-place steps: this runs once per image in the data pipeline, and allocation dominates.
    src = img.astype(np.int32)
    col = (slice(None),) + (None,) * (img.ndim - 2)
    rows = np.take(src, x0, axis=1)
    rows *= a0[col]
    right = np.take(src, x1, axis=1)
    right *= a1[col]
    rows += right
    # OpenCV's SIMD vertical pass: 16-bit products of (row >> 4), each shifted by 16, then (+2) >> 2
    rows >>= 4
    row = (slice(None), None) + (None,) * (img.ndim - 2)
    out = np.take(rows, y0, axis=0)
    out *= b0[row]
    out >>= 16
    below = np.take(rows, y1, axis=0)
    below *= b1[row]
    below >>= 16
    out += below
    out += 2
    out >>= 2
    # saturate as OpenCV does (weights summing to 2049 by rounding could in principle give 256)
    np.minimum(out, 255, out=out)
    return out.astype(np.uint8)
