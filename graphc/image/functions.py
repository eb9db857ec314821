"""mx.image's functions on HWC NDArrays: imread, imdecode, imencode, imresize, resize_short,
scale_down, fixed_crop, center_crop, random_crop, random_size_crop, color_normalize.

Images are HxWxC uint8 NDArrays in RGB order unless to_rgb=False, as in MXNet; interpolation
codes are OpenCV's (0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos, 9 auto, 10 random).
Bilinear (interp=1) resizing of uint8 images is OpenCV's exactly (cv_resize.py), as MXNet's
imresize; the other filters are the Pillow code gluon.data.vision's transforms use (see its
docstring for how they differ from OpenCV when shrinking). Random choices draw from
graphc.random (seed with mx.random.seed).
"""
from __future__ import annotations

import numpy as np

from .. import random as _random
from ..gluon.data.vision import _image as _np_image
from ..ndarray import NDArray
from . import codec
from .cv_resize import resize_bilinear

__all__ = ["imread", "imdecode", "imencode", "imresize", "resize_short", "scale_down", "fixed_crop",
           "center_crop", "random_crop", "random_size_crop", "color_normalize", "copyMakeBorder", "imrotate",
           "random_rotate"]


def _np(src) -> np.ndarray:
    return src.asnumpy() if isinstance(src, NDArray) else np.asarray(src)


def _nd(arr: np.ndarray) -> NDArray:
    return NDArray(np.ascontiguousarray(arr))


def _resolve_interp(interp, src_hw, dst_hw):
    """MXNet's _get_interp_method: 9 picks by direction, 10 draws one of 0..4."""
    if interp == 9:
        (oh, ow), (nh, nw) = src_hw, dst_hw
        if nh > oh and nw > ow:
            return 2
        return 3 if nh < oh and nw < ow else 1
    if interp == 10:
        return int(_random.generator().integers(0, 5))
    return interp


def _resize(arr: np.ndarray, w: int, h: int, interp) -> np.ndarray:
    interp = _resolve_interp(interp, arr.shape[:2], (int(h), int(w)))
    if interp == 1 and arr.dtype == np.uint8:
        return resize_bilinear(arr, int(w), int(h))
    return _np_image.imresize(arr, w, h, interp)


def _crop(arr, x0, y0, w, h, size, interp):
    out = arr[y0:y0 + h, x0:x0 + w]
    if size is not None and (w, h) != tuple(size):
        out = _resize(out, size[0], size[1], interp)
    return np.ascontiguousarray(out)


def imread(filename, flag=1, to_rgb=True, out=None):
    """Read and decode an image file into an HWC uint8 NDArray."""
    with open(filename, "rb") as fh:
        return imdecode(fh.read(), flag, to_rgb, out)


def imdecode(buf, flag=1, to_rgb=True, out=None):
    """Decode image bytes (bytes, or a 1-D uint8 array/NDArray) into an HWC uint8 NDArray:
    3 channels for flag 1, 1 gray channel for flag 0."""
    img = _nd(codec.decode(buf, flag, to_rgb))
    if out is not None:
        out[:] = img
        return out
    return img


def imencode(src, img_fmt=".jpg", quality=95, to_bgr=False):
    """Encode an HWC uint8 image (RGB unless to_bgr) to bytes; graphc's addition for im2rec."""
    return codec.encode(_np(src), img_fmt, quality, bgr=to_bgr)


def imresize(src, w, h, interp=1, out=None):
    """Resize to width w, height h."""
    img = _nd(_resize(_np(src), w, h, interp))
    if out is not None:
        out[:] = img
        return out
    return img


def resize_short(src, size, interp=2):
    """Resize so the shorter edge is `size`, keeping the aspect ratio (integer division, as MXNet)."""
    arr = _np(src)
    h, w = arr.shape[:2]
    new_w, new_h = (size, size * h // w) if h > w else (size * w // h, size)
    return _nd(_resize(arr, new_w, new_h, interp))


def scale_down(src_size, size):
    """Shrink crop size (w, h) to fit in src_size (w, h), keeping its aspect ratio."""
    return _np_image.scale_down(src_size, size)


def fixed_crop(src, x0, y0, w, h, size=None, interp=2):
    """The (w, h) window at (x0, y0), resized to size (w, h) when given and different."""
    return _nd(_crop(_np(src), x0, y0, w, h, size, interp))


def center_crop(src, size, interp=2):
    """The centred window of size (w, h), scaled down to fit first. Returns (image, (x0, y0, w, h))."""
    arr = _np(src)
    h, w = arr.shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0, y0 = int((w - new_w) / 2), int((h - new_h) / 2)
    return _nd(_crop(arr, x0, y0, new_w, new_h, size, interp)), (x0, y0, new_w, new_h)


def random_crop(src, size, interp=2):
    """A window of size (w, h) at a uniformly random place (scaled down to fit first).
    Returns (image, (x0, y0, w, h))."""
    arr = _np(src)
    h, w = arr.shape[:2]
    new_w, new_h = scale_down((w, h), size)
    rng = _random.generator()
    x0 = int(rng.integers(0, w - new_w + 1))
    y0 = int(rng.integers(0, h - new_h + 1))
    return _nd(_crop(arr, x0, y0, new_w, new_h, size, interp)), (x0, y0, new_w, new_h)


def random_size_crop(src, size, area, ratio, interp=2, **kwargs):
    """A window of random area fraction (`area`: min or (min, max)) and aspect ratio
    (log-uniform in `ratio`), resized to size (w, h); a centre crop after ten misses.
    Returns (image, (x0, y0, w, h))."""
    if "min_area" in kwargs:
        area = kwargs.pop("min_area")
    if kwargs:
        raise TypeError(f"random_size_crop: unexpected arguments {sorted(kwargs)}")
    arr = _np(src)
    h, w = arr.shape[:2]
    if isinstance(area, (int, float)):
        area = (area, 1.0)
    rng = _random.generator()
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(area[0], area[1]) * h * w
        aspect = np.exp(rng.uniform(*log_ratio))
        new_w = int(round(np.sqrt(target_area * aspect)))
        new_h = int(round(np.sqrt(target_area / aspect)))
        if 0 < new_w <= w and 0 < new_h <= h:
            x0 = int(rng.integers(0, w - new_w + 1))
            y0 = int(rng.integers(0, h - new_h + 1))
            return _nd(_crop(arr, x0, y0, new_w, new_h, size, interp)), (x0, y0, new_w, new_h)
    return center_crop(arr, size, interp)


def color_normalize(src, mean, std=None):
    """(src - mean) / std, channel-wise; src becomes float32 when it was an integer image."""
    arr = _np(src)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if mean is not None:
        arr = arr - _np(mean).astype(arr.dtype)
    if std is not None:
        arr = arr / _np(std).astype(arr.dtype)
    return _nd(arr)


# OpenCV border types -> numpy.pad modes (constant is handled apart: it takes per-channel values)
_BORDERS = {1: "edge", 2: "symmetric", 3: "wrap", 4: "reflect"}


def copyMakeBorder(src, top, bot, left, right, type=0, value=0.0, values=None):  # noqa: A002 - MXNet's name
    """Pad an HWC image by (top, bot, left, right) pixels with OpenCV's border `type`: 0 constant
    (`value`, or per-channel `values`), 1 replicate, 2 reflect, 3 wrap, 4 reflect-101."""
    arr = _np(src)
    widths = ((top, bot), (left, right)) + ((0, 0),) * (arr.ndim - 2)
    type &= ~16     # noqa: A001 - OpenCV's BORDER_ISOLATED flag (detection pads pass 16) changes nothing here
    if type == 0:
        fill = np.asarray(values if values else [value] * (arr.shape[2] if arr.ndim == 3 else 1), np.float64)
        out = np.empty((arr.shape[0] + top + bot, arr.shape[1] + left + right) + arr.shape[2:], arr.dtype)
        out[...] = fill.astype(arr.dtype) if arr.ndim == 3 else fill[0]
        out[top:top + arr.shape[0], left:left + arr.shape[1]] = arr
        return _nd(out)
    if type not in _BORDERS:
        raise ValueError(f"copyMakeBorder: border type must be 0 (constant), 1 (replicate), 2 (reflect), "
                         f"3 (wrap) or 4 (reflect-101), got {type!r}")
    return _nd(np.pad(arr, widths, mode=_BORDERS[type]))


def _bilinear_sample(img, gx, gy):
    """BilinearSampler on one CHW image: grid in [-1, 1], neighbours outside the image count 0."""
    c, h, w = img.shape
    x = (gx + 1) * (w - 1) / 2
    y = (gy + 1) * (h - 1) / 2
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    out = np.zeros((c,) + gx.shape, np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = img[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            out += np.where(inside, weight, 0).astype(np.float32) * vals
    return out


def imrotate(src, rotation_degrees, zoom_in=False, zoom_out=False):
    """Rotate float32 CHW images (or an NCHW batch, one angle each or one for all) about their
    centre, counter-clockwise by degrees, bilinear, zeros outside. zoom_in scales so no padding
    shows; zoom_out so the whole image stays in view (MXNet's formulas)."""
    if zoom_in and zoom_out:
        raise ValueError("imrotate: `zoom_in` and `zoom_out` cannot be both True")
    arr = _np(src)
    if arr.dtype != np.float32:
        raise TypeError(f"imrotate: only float32 images are supported, got {arr.dtype}")
    single = arr.ndim == 3
    if single:
        if not np.isscalar(rotation_degrees):
            raise TypeError("imrotate: a single image needs a scalar rotation angle")
        arr = arr[None]
    elif arr.ndim != 4:
        raise ValueError(f"imrotate: expected a CHW image or an NCHW batch, got shape {arr.shape}")
    angles = np.full(len(arr), rotation_degrees, np.float64) if np.isscalar(rotation_degrees) \
        else np.asarray(_np(rotation_degrees), np.float64).reshape(-1)
    if len(angles) != len(arr):
        raise ValueError(f"imrotate: {len(arr)} images but {len(angles)} rotation angles")
    _, _, h, w = arr.shape
    hs, ws = (h - 1) / 2, (w - 1) / 2
    hm = np.arange(h, dtype=np.float32)[:, None] - np.float32(hs)
    wm = np.arange(w, dtype=np.float32)[None, :] - np.float32(ws)
    out = np.empty_like(arr)
    for n, deg in enumerate(angles):
        rad = np.float32(np.pi * deg / 180)
        ca, sa = np.cos(rad), np.sin(rad)
        gx = (wm * ca - hm * sa) / np.float32(ws)
        gy = (wm * sa + hm * ca) / np.float32(hs)
        if zoom_in or zoom_out:
            rho, corner = np.sqrt(h * h + w * w), np.arctan(h / w)
            max_x = max(abs(rho * np.cos(corner + abs(rad))), abs(rho * np.cos(corner - abs(rad))))
            max_y = max(abs(rho * np.sin(corner + abs(rad))), abs(rho * np.sin(corner - abs(rad))))
            scale = max(max_x / w, max_y / h) if zoom_out else min(w / max_x, h / max_y)
            gx, gy = gx * np.float32(scale), gy * np.float32(scale)
        out[n] = _bilinear_sample(arr[n], gx, gy)
    return _nd(out[0] if single else out)


def random_rotate(src, angle_limits, zoom_in=False, zoom_out=False):
    """imrotate by angles drawn uniformly from angle_limits (one per image of a batch)."""
    rng = _random.generator()
    arr = _np(src)
    angles = rng.uniform(*angle_limits) if arr.ndim == 3 else rng.uniform(*angle_limits, size=len(arr))
    return imrotate(src, float(angles) if arr.ndim == 3 else angles, zoom_in, zoom_out)
