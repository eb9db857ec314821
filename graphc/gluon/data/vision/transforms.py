"""Image transforms (`gluon.data.vision.transforms`): Blocks that take an image NDArray (HWC, or a
batch NHWC where MXNet allows it) and return a new one, usually inside
`dataset.transform_first(...)`.

They compute on numpy (and Pillow for resampling), never through the compiler: a data pipeline
runs per sample, in DataLoader workers, on shapes that change from image to image. So the
HybridBlocks among them accept `hybridize()` and keep running eagerly. Random transforms draw
from `graphc.random.generator()`: `mx.random.seed(n)` repeats them, and the DataLoader gives
each batch its own derived generator (see dataloader.py). A numpy array input gives a numpy
array output; an NDArray gives an NDArray on the same device.
"""
from __future__ import annotations

import numbers

import numpy as np

from .... import random as _random
from ....ndarray import NDArray
from ....ops.dtypes import canonical
from ...block import Block, HybridBlock
from ...nn import Sequential, Lambda
from . import _image

__all__ = ["Compose", "Cast", "ToTensor", "Normalize", "Resize", "CenterCrop", "CropResize",
           "RandomResizedCrop", "RandomFlipLeftRight", "RandomFlipTopBottom", "RandomBrightness",
           "RandomContrast", "RandomSaturation", "RandomHue", "RandomColorJitter", "RandomLighting"]


def _unwrap(x):
    if isinstance(x, NDArray):
        return x._data, x.context
    return np.asarray(x), None


def _wrap(out, ctx):
    return out if ctx is None else NDArray(np.ascontiguousarray(out), ctx)


def _pair(size, what):
    if isinstance(size, numbers.Number):
        return (int(size), int(size))
    if len(size) != 2:
        raise ValueError(f"{what}: size must be an int or a (width, height) pair, got {size!r}")
    return (int(size[0]), int(size[1]))


def _image_dims(x, what, allow_batch=True):
    if x.ndim == 3 or (allow_batch and x.ndim == 4):
        return
    want = "(H, W, C) or (N, H, W, C)" if allow_batch else "(H, W, C)"
    raise ValueError(f"{what}: expected an image of shape {want}, got shape {x.shape}")


class _EagerTransform(HybridBlock):
    """A HybridBlock that always runs `forward` on NDArrays (numpy underneath): hybridize() is
    accepted and changes nothing."""

    __call__ = Block.__call__

    def hybridize(self, active=True, **kwargs):
        pass

    def forward(self, x):
        data, ctx = _unwrap(x)
        return _wrap(self._apply(data), ctx)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _EagerBlock(Block):
    def forward(self, x):
        data, ctx = _unwrap(x)
        return _wrap(self._apply(data), ctx)


class Compose(Sequential):
    """Applies `transforms` (Blocks, or plain callables) one after another."""

    def __init__(self, transforms):
        super().__init__()
        with self.name_scope():
            for t in transforms:
                self.add(t if isinstance(t, Block) else Lambda(t))

    def hybridize(self, active=True, **kwargs):
        for child in self._children.values():
            child.hybridize(active, **kwargs)


class Cast(_EagerTransform):
    """Casts the input to `dtype`."""

    def __init__(self, dtype="float32"):
        super().__init__()
        self._dtype = canonical(dtype)

    def _apply(self, x):
        return x.astype(self._dtype)


class ToTensor(_EagerTransform):
    """(H, W, C) or (N, H, W, C) in [0, 255] -> float32 (C, H, W) or (N, C, H, W) in [0, 1]."""

    def _apply(self, x):
        _image_dims(x, "ToTensor")
        axes = (2, 0, 1) if x.ndim == 3 else (0, 3, 1, 2)
        return np.ascontiguousarray(x.transpose(axes), dtype=np.float32) / np.float32(255.0)


class Normalize(_EagerTransform):
    """(C, H, W) or (N, C, H, W) tensor: out[c] = (x[c] - mean[c]) / std[c]. mean and std are
    numbers (all channels) or one value per channel."""

    def __init__(self, mean=0.0, std=1.0):
        super().__init__()
        self._mean = mean
        self._std = std

    def _apply(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"Normalize: expected a (C, H, W) or (N, C, H, W) tensor, got shape {x.shape}")
        channels = x.shape[-3]
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        stats = []
        for name, value in (("mean", self._mean), ("std", self._std)):
            v = np.asarray(value, dtype=dtype).reshape(-1)
            if v.size not in (1, channels):
                raise ValueError(f"Normalize: {name} has {v.size} values but the input has {channels} channels "
                                 f"(shape {x.shape}); give one value or one per channel")
            stats.append(v.reshape(-1, 1, 1))
        return ((x.astype(dtype, copy=False) - stats[0]) / stats[1]).astype(dtype, copy=False)


class Resize(_EagerTransform):
    """Resize an (H, W, C) image or (N, H, W, C) batch to size (width, height). With an int size:
    (size, size), or, with keep_ratio, the shorter edge becomes size and the other keeps the
    aspect ratio. interpolation: OpenCV codes (see _image.py for the Pillow mapping)."""

    def __init__(self, size, keep_ratio=False, interpolation=1):
        super().__init__()
        self._size = size
        self._keep = keep_ratio
        self._interpolation = interpolation

    def _out_size(self, h, w):
        if isinstance(self._size, numbers.Number):
            s = int(self._size)
            if not self._keep:
                return s, s
            return (s, h * s // w) if h > w else (w * s // h, s)
        return _pair(self._size, "Resize")

    def _apply(self, x):
        _image_dims(x, "Resize")
        w, h = self._out_size(*x.shape[-3:-1])
        if x.ndim == 3:
            return _image.imresize(x, w, h, self._interpolation)
        return np.stack([_image.imresize(img, w, h, self._interpolation) for img in x])


class CenterCrop(_EagerBlock):
    """Crop the centre (width, height) window of an (H, W, C) image; an image smaller than that
    is cropped to the largest window of the same aspect ratio and resized up."""

    def __init__(self, size, interpolation=1):
        super().__init__()
        self._size = _pair(size, "CenterCrop")
        self._interpolation = interpolation

    def _apply(self, x):
        _image_dims(x, "CenterCrop", allow_batch=False)
        return _image.center_crop(x, self._size, self._interpolation)[0]


class CropResize(_EagerTransform):
    """Crop the (width, height) window at (x, y), then resize it to `size` if given."""

    def __init__(self, x, y, width, height, size=None, interpolation=None):
        super().__init__()
        self._box = (int(x), int(y), int(width), int(height))
        self._size = None if size is None else _pair(size, "CropResize")
        self._interpolation = 1 if interpolation is None else interpolation

    def _apply(self, img):
        _image_dims(img, "CropResize")
        x0, y0, w, h = self._box
        H, W = img.shape[-3:-1]
        if x0 < 0 or y0 < 0 or x0 + w > W or y0 + h > H:
            raise ValueError(f"CropResize: window x={x0}, y={y0}, width={w}, height={h} does not fit "
                             f"an image of width {W} and height {H}")
        out = img[..., y0:y0 + h, x0:x0 + w, :]
        if self._size is None:
            return np.ascontiguousarray(out)
        if out.ndim == 3:
            return _image.imresize(out, *self._size, self._interpolation)
        return np.stack([_image.imresize(i, *self._size, self._interpolation) for i in out])


class RandomResizedCrop(_EagerBlock):
    """Crop a random window (area fraction in `scale`, aspect ratio in `ratio`, log-uniform)
    and resize it to size (width, height)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation=1):
        super().__init__()
        self._args = (_pair(size, "RandomResizedCrop"), scale, ratio, interpolation)

    def _apply(self, x):
        _image_dims(x, "RandomResizedCrop", allow_batch=False)
        return _image.random_size_crop(x, *self._args)[0]


class RandomFlipLeftRight(_EagerTransform):
    """Mirror the image (or the whole batch) horizontally with probability p (MXNet: 0.5)."""

    def __init__(self, p=0.5):
        super().__init__()
        self._p = p

    _axis = -2

    def _apply(self, x):
        _image_dims(x, type(self).__name__)
        if _random.generator().random() < self._p:
            return np.flip(x, axis=self._axis).copy()
        return x.copy()


class RandomFlipTopBottom(RandomFlipLeftRight):
    """Flip the image (or the whole batch) vertically with probability p (MXNet: 0.5)."""

    _axis = -3


# -- colour -----------------------------------------------------------------------------------
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _as_float(x):
    return x.astype(np.float32)


def _like(out, x):
    """Back to the input dtype; integer images are rounded and clipped (saturated)."""
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(x.dtype)


def _check_rgb(x, what):
    _image_dims(x, what)
    if x.shape[-1] != 3:
        raise ValueError(f"{what}: expected 3 (RGB) channels last, got shape {x.shape}")


def _brightness(x, alpha):
    return x * alpha


def _contrast(x, alpha):
    gray = float((x @ _GRAY).mean())
    return x * alpha + gray * (1 - alpha)


def _saturation(x, alpha):
    gray = (x @ _GRAY)[..., None]
    return x * alpha + gray * (1 - alpha)


def _hue(x, alpha):
    # rotate the chroma plane of YIQ space by alpha * pi
    u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
    rotate = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    from_yiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])
    t = (from_yiq @ rotate @ to_yiq).astype(np.float32)
    return x @ t.T


def _factor_range(amount, centre):
    """[max(0, 1 - amount), 1 + amount] for scale factors, [-amount, amount] for hue."""
    if centre == 0.0:
        return -amount, amount
    return max(0.0, centre - amount), centre + amount


class _RandomColor(_EagerTransform):
    _fn = None
    _centre = 1.0

    def __init__(self, amount):
        super().__init__()
        if amount < 0:
            raise ValueError(f"{type(self).__name__}: the amount must be non-negative, got {amount}")
        self._amount = float(amount)

    def _apply(self, x):
        _check_rgb(x, type(self).__name__)
        alpha = _random.generator().uniform(*_factor_range(self._amount, self._centre))
        return _like(type(self)._fn(_as_float(x), alpha), x)


class RandomBrightness(_RandomColor):
    """Scale pixel values by a factor drawn from [max(0, 1 - brightness), 1 + brightness]."""
    _fn = staticmethod(_brightness)


class RandomContrast(_RandomColor):
    """Blend with the image's mean gray level; factor drawn from [max(0, 1 - contrast), 1 + contrast]."""
    _fn = staticmethod(_contrast)


class RandomSaturation(_RandomColor):
    """Blend with each pixel's gray value; factor drawn from [max(0, 1 - saturation),
    1 + saturation]."""
    _fn = staticmethod(_saturation)


class RandomHue(_RandomColor):
    """Rotate hue (in YIQ space) by a fraction of a half turn drawn from [-hue, hue]."""
    _fn = staticmethod(_hue)
    _centre = 0.0


class RandomColorJitter(_EagerTransform):
    """Random brightness, contrast, saturation and hue changes, applied in a random order;
    a zero amount leaves that property alone."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        super().__init__()
        self._parts = [(fn, float(a), centre) for fn, a, centre in
                       ((_brightness, brightness, 1.0), (_contrast, contrast, 1.0),
                        (_saturation, saturation, 1.0), (_hue, hue, 0.0)) if a > 0]

    def _apply(self, x):
        _check_rgb(x, "RandomColorJitter")
        rng = _random.generator()
        out = _as_float(x)
        for k in rng.permutation(len(self._parts)):
            fn, amount, centre = self._parts[k]
            out = fn(out, rng.uniform(*_factor_range(amount, centre)))
        return _like(out, x)


class RandomLighting(_EagerTransform):
    """AlexNet-style PCA lighting noise: add eigvec @ (eigval * N(0, alpha)) to every pixel."""

    _eigval = np.array([55.46, 4.794, 1.148], dtype=np.float32)
    _eigvec = np.array([[-0.5675, 0.7192, 0.4009],
                        [-0.5808, -0.0045, -0.8140],
                        [-0.5836, -0.6948, 0.4203]], dtype=np.float32)

    def __init__(self, alpha):
        super().__init__()
        self._alpha = float(alpha)

    def _apply(self, x):
        _check_rgb(x, "RandomLighting")
        weights = _random.generator().normal(0, self._alpha, size=3).astype(np.float32)
        rgb = self._eigvec @ (weights * self._eigval)
        return _like(_as_float(x) + rgb, x)
