"""Image helpers on numpy HWC arrays (MXNet's `mx.image` functions the vision transforms use):
reading files, resizing, cropping. Pillow does the decoding and resampling; it is imported only
when a function here needs it, so the rest of gluon.data works without it.

Interpolation codes are OpenCV's, as in MXNet, mapped onto Pillow's filters:
0 nearest -> NEAREST, 1 bilinear -> BILINEAR, 2 bicubic -> BICUBIC, 3 area -> BOX,
4 Lanczos -> LANCZOS, 9 -> BICUBIC when enlarging, BOX when shrinking, BILINEAR otherwise,
10 -> one of 0..4 drawn from graphc.random. Pillow's filters widen their support when they
shrink (antialiasing), OpenCV's (except area) do not, so shrunken images differ slightly from
MXNet's pixel for pixel; shapes, dtypes and nearest-neighbour results match.
"""
from __future__ import annotations

import numpy as np

from .... import random as _random


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - exercised only without Pillow
        raise ImportError("graphc.gluon.data.vision needs Pillow to read and resize images: "
                          "pip install 'graphc[vision]' (or pip install Pillow)") from exc
    return Image


def _pil_filter(interp, src_wh, dst_wh):
    Image = _pil()
    R = Image.Resampling
    if interp == 10:
        interp = int(_random.generator().integers(0, 5))
    if interp == 9:
        (sw, sh), (dw, dh) = src_wh, dst_wh
        if dw > sw and dh > sh:
            return R.BICUBIC
        if dw < sw and dh < sh:
            return R.BOX
        return R.BILINEAR
    table = {0: R.NEAREST, 1: R.BILINEAR, 2: R.BICUBIC, 3: R.BOX, 4: R.LANCZOS}
    if interp not in table:
        raise ValueError(f"interpolation must be one of 0 (nearest), 1 (bilinear), 2 (bicubic), 3 (area), "
                         f"4 (Lanczos), 9 (auto) or 10 (random), got {interp!r}")
    return table[interp]


def imresize(src: np.ndarray, w: int, h: int, interp: int = 1) -> np.ndarray:
    """Resize an HWC image to width w and height h, keeping its dtype and channel count."""
    Image = _pil()
    if src.ndim != 3:
        raise ValueError(f"imresize: expected an HWC image (3 dimensions), got shape {src.shape}")
    sh, sw, c = src.shape
    w, h = int(w), int(h)
    if w <= 0 or h <= 0:
        raise ValueError(f"imresize: output size must be positive, got width {w} and height {h}")
    resample = _pil_filter(interp, (sw, sh), (w, h))
    if src.dtype == np.uint8 and c in (1, 3):
        img = Image.fromarray(np.ascontiguousarray(src[:, :, 0] if c == 1 else src))
        return np.asarray(img.resize((w, h), resample)).reshape(h, w, c)
    # any other dtype or channel count: one 32-bit float image ('F' mode) per channel
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(src[:, :, k], dtype=np.float32))
                           .resize((w, h), resample)) for k in range(c)]
    out = np.stack(channels, axis=-1)
    if np.issubdtype(src.dtype, np.integer):
        info = np.iinfo(src.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(src.dtype)


def resize_short(src, size, interp=2):
    """Resize so that the shorter edge is `size`, keeping the aspect ratio."""
    h, w = src.shape[:2]
    if h > w:
        new_h, new_w = size * h // w, size
    else:
        new_h, new_w = size, size * w // h
    return imresize(src, new_w, new_h, interp)


def imread(filename, flag=1, to_rgb=True):
    """Read an image file as an HWC uint8 numpy array: flag=1 gives 3 channels (RGB, or BGR when
    to_rgb is False, like OpenCV), flag=0 gives 1 gray channel."""
    Image = _pil()
    with Image.open(filename) as img:
        if flag == 0:
            return np.asarray(img.convert("L"))[:, :, None].copy()
        out = np.asarray(img.convert("RGB")).copy()
    return out if to_rgb else out[:, :, ::-1].copy()


def scale_down(src_size, size):
    """Shrink the crop size (w, h) to fit inside src_size (w, h), keeping its aspect ratio."""
    w, h = size
    sw, sh = src_size
    if sh < h:
        w, h = float(w * sh) / h, sh
    if sw < w:
        w, h = sw, float(h * sw) / w
    return int(w), int(h)


def fixed_crop(src, x0, y0, w, h, size=None, interp=2):
    """The (w, h) window at (x0, y0), resized to size (w, h) when given and different."""
    out = src[y0:y0 + h, x0:x0 + w]
    if size is not None and (w, h) != tuple(size):
        out = imresize(out, size[0], size[1], interp)
    return np.ascontiguousarray(out)


def center_crop(src, size, interp=2):
    """The centred window of size (w, h) (scaled down to fit if the image is smaller, then
    resized up to size). Returns (image, (x0, y0, w, h))."""
    h, w = src.shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0 = int((w - new_w) / 2)
    y0 = int((h - new_h) / 2)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def random_size_crop(src, size, area, ratio, interp=2):
    """A window covering a random fraction `area` (min, max) of the image with a random aspect
    ratio (log-uniform in `ratio`), resized to size (w, h); ten tries, then a centre crop.
    Returns (image, (x0, y0, w, h))."""
    rng = _random.generator()
    h, w = src.shape[:2]
    if isinstance(area, (int, float)):
        area = (area, 1.0)
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(area[0], area[1]) * h * w
        aspect = np.exp(rng.uniform(*log_ratio))
        new_w = int(round(np.sqrt(target_area * aspect)))
        new_h = int(round(np.sqrt(target_area / aspect)))
        if 0 < new_w <= w and 0 < new_h <= h:
            x0 = int(rng.integers(0, w - new_w + 1))
            y0 = int(rng.integers(0, h - new_h + 1))
            return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)
    return center_crop(src, size, interp)
