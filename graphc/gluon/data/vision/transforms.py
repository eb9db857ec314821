"""Image transforms (`gluon.data.vision.transforms`), built as MXNet 1.9.1 builds them so that a
pipeline gives MXNet's numbers: the HybridBlocks call the `F.image.*` operators
(ops/declarations/image_ops.py, whose formulas are MXNet's kernels, quirks included), and the
Blocks MXNet writes in Python (CenterCrop, RandomResizedCrop, Rotate, RandomRotation,
RandomApply) call the `graphc.image` functions MXNet's call. Amount-to-factor rules are MXNet's
too, e.g. RandomHue(h) draws its factor from [max(0, 1 - h), 1 + h] full turns of hue.

Random transforms draw from `graphc.random.generator()` (MXNet uses its own engine and numpy's),
so `mx.random.seed(n)` repeats them; the draws themselves are not MXNet's.

Two conveniences MXNet lacks, kept for existing pipelines: a numpy array input gives a numpy
array output, and Compose accepts plain callables beside Blocks. Resize and CropResize with an
interpolation other than 0 (nearest) or 1 (bilinear), which the resize operator does not
implement, fall back to Pillow eagerly (see _image.py); those blocks then ignore hybridize().
"""
from __future__ import annotations

import numbers

import numpy as np

from .... import image as _mximage
from .... import random as _random
from ....ndarray import NDArray
from ...block import Block, HybridBlock
from ...nn import HybridSequential, Lambda, Sequential
from . import _image

__all__ = ["Compose", "HybridSequential", "Cast", "ToTensor", "Normalize", "Resize", "CenterCrop", "CropResize",
           "RandomResizedCrop", "RandomFlipLeftRight", "RandomFlipTopBottom", "RandomBrightness",
           "RandomContrast", "RandomSaturation", "RandomHue", "RandomColorJitter", "RandomLighting",
           "Rotate", "RandomRotation", "RandomApply"]

_FAST_INTERP = (0, 1)     # the interpolations the _image_resize operator implements


def _pair(size, what):
    if isinstance(size, numbers.Number):
        return (int(size), int(size))
    if len(size) != 2:
        raise ValueError(f"{what}: size must be an int or a (width, height) pair, got {size!r}")
    return (int(size[0]), int(size[1]))


def _known_shape(x):
    shape = getattr(x, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
        return shape
    return None


def _check_image(shape, what, allow_batch=True, rgb=False):
    ok = len(shape) == 3 or (allow_batch and len(shape) == 4)
    if not ok:
        want = "(H, W, C) or (N, H, W, C)" if allow_batch else "(H, W, C)"
        raise ValueError(f"{what}: expected an image of shape {want}, got shape {shape}")
    if rgb and shape[-1] != 3:
        raise ValueError(f"{what}: expected 3 (RGB) channels last, got shape {shape}")


class _ImageHybridBlock(HybridBlock):
    """A HybridBlock over F.image operators that checks the input shape before the operator
    sees it (errors naming the transform) and lets a numpy image through as MXNet's cannot."""

    def _check(self, shape):
        pass

    def __call__(self, x, *args):
        if isinstance(x, np.ndarray):
            out = self(NDArray(np.ascontiguousarray(x)), *args)
            return out.asnumpy() if isinstance(out, NDArray) else out
        shape = _known_shape(x)
        if shape is not None:
            self._check(shape)
        return super().__call__(x, *args)


class _ImageBlock(Block):
    """A Block computed by graphc.image functions on NDArrays; numpy in gives numpy out."""

    def __call__(self, x, *args):
        if isinstance(x, np.ndarray):
            out = super().__call__(NDArray(np.ascontiguousarray(x)), *args)
            return out.asnumpy() if isinstance(out, NDArray) else out
        return super().__call__(x, *args)


class Compose(Sequential):
    """Chain `transforms`; runs of consecutive HybridBlocks are grouped into a HybridSequential,
    as MXNet does, but not hybridized: graphc compiles a graph per input shape, and images in a
    data pipeline change shape from one to the next (Resize+ToTensor+Normalize on 20 shapes:
    44 ms/image hybridized, 2.4 ms eager). Call hybridize() for fixed-shape inputs. Plain
    callables are wrapped in Lambda."""

    def __init__(self, transforms):
        super().__init__()
        run = []
        with self.name_scope():
            for t in list(transforms) + [None]:
                if isinstance(t, HybridBlock):
                    run.append(t)
                    continue
                if len(run) == 1:
                    self.add(run[0])
                elif len(run) > 1:
                    group = HybridSequential()
                    group.add(*run)
                    self.add(group)
                run = []
                if t is not None:
                    self.add(t if isinstance(t, Block) else Lambda(t))

    def __call__(self, x, *args):
        if isinstance(x, np.ndarray):
            out = super().__call__(NDArray(np.ascontiguousarray(x)), *args)
            return out.asnumpy() if isinstance(out, NDArray) else out
        return super().__call__(x, *args)


class Cast(_ImageHybridBlock):
    """Cast the input to `dtype`."""

    def __init__(self, dtype="float32"):
        super().__init__()
        self._dtype = dtype

    def hybrid_forward(self, F, x):
        return F.cast(x, dtype=self._dtype)


class ToTensor(_ImageHybridBlock):
    """(H, W, C) or (N, H, W, C) in [0, 255] -> float32 (C, H, W) or (N, C, H, W) in [0, 1]."""

    def _check(self, shape):
        _check_image(shape, "ToTensor")

    def hybrid_forward(self, F, x):
        return F.image.to_tensor(x)


class Normalize(_ImageHybridBlock):
    """(C, H, W) or (N, C, H, W) tensor: out[c] = (x[c] - mean[c]) / std[c]; mean and std are
    one number (every channel) or one per channel."""

    def __init__(self, mean=0.0, std=1.0):
        super().__init__()
        self._mean = mean
        self._std = std

    def _check(self, shape):
        if len(shape) not in (3, 4):
            raise ValueError(f"Normalize: expected a (C, H, W) or (N, C, H, W) tensor, got shape {shape}")
        channels = shape[-3]
        for name, value in (("mean", self._mean), ("std", self._std)):
            n = np.asarray(value).size
            if n not in (1, channels):
                raise ValueError(f"Normalize: {name} has {n} values but the input has {channels} channels "
                                 f"(shape {shape}); give one value or one per channel")

    def hybrid_forward(self, F, x):
        return F.image.normalize(x, mean=self._mean, std=self._std)


def _eager_resize(x, wh, interp):
    """Pillow resampling for interpolations the operator lacks (per image of a batch)."""
    if not isinstance(x, NDArray):
        raise ValueError(f"Resize/CropResize: interpolation={interp} runs eagerly (Pillow) and cannot be part of "
                         f"a hybridized graph; use interpolation 0 or 1 there")
    data, ctx = x._data, x.context
    out = (_image.imresize(data, *wh, interp) if data.ndim == 3
           else np.stack([_image.imresize(img, *wh, interp) for img in data]))
    return NDArray(np.ascontiguousarray(out), ctx)


def _resize_wh(h, w, size, keep_ratio):
    """The _image_resize operator's (width, height) rule, for the eager Pillow path."""
    if isinstance(size, numbers.Number):
        s = int(size)
        if not keep_ratio:
            return s, s
        return (int(w * s / h), s) if h <= w else (s, int(h * s / w))
    return _pair(size, "Resize")


class Resize(_ImageHybridBlock):
    """Resize an (H, W, C) image or (N, H, W, C) batch to size (width, height). An int size:
    (size, size), or with keep_ratio the shorter edge becomes size. interpolation: OpenCV codes;
    0 and 1 run the resize operator (MXNet's numbers), others Pillow (see the module docstring)."""

    def __init__(self, size, keep_ratio=False, interpolation=1):
        super().__init__()
        self._size = size
        self._keep = keep_ratio
        self._interpolation = interpolation
        if not isinstance(size, numbers.Number):
            _pair(size, "Resize")

    def _check(self, shape):
        _check_image(shape, "Resize")

    def hybridize(self, active=True, **kwargs):
        if self._interpolation in _FAST_INTERP:
            super().hybridize(active, **kwargs)

    def __call__(self, x, *args):
        if self._interpolation in _FAST_INTERP or isinstance(x, np.ndarray):
            return super().__call__(x, *args)
        self._check(x.shape)
        return _eager_resize(x, _resize_wh(*x.shape[-3:-1], self._size, self._keep), self._interpolation)

    def hybrid_forward(self, F, x):
        size = self._size if isinstance(self._size, numbers.Number) else tuple(self._size)
        return F.image.resize(x, size=size, keep_ratio=self._keep, interp=self._interpolation)


class CropResize(_ImageHybridBlock):
    """Crop the (width, height) window at (x, y), then resize it to `size` (width, height) if
    given. MXNet 1.9.1 fails on size with interpolation=None; here None means bilinear."""

    def __init__(self, x, y, width, height, size=None, interpolation=None):
        super().__init__()
        self._box = (int(x), int(y), int(width), int(height))
        self._size = None if size is None else _pair(size, "CropResize")
        self._interpolation = 1 if interpolation is None else interpolation

    def _check(self, shape):
        _check_image(shape, "CropResize")
        x0, y0, w, h = self._box
        H, W = shape[-3:-1]
        if x0 < 0 or y0 < 0 or w < 1 or h < 1 or x0 + w > W or y0 + h > H:
            raise ValueError(f"CropResize: window x={x0}, y={y0}, width={w}, height={h} does not fit "
                             f"an image of width {W} and height {H}")

    def hybridize(self, active=True, **kwargs):
        if self._size is None or self._interpolation in _FAST_INTERP:
            super().hybridize(active, **kwargs)

    def __call__(self, x, *args):
        if self._size is None or self._interpolation in _FAST_INTERP or isinstance(x, np.ndarray):
            return super().__call__(x, *args)
        self._check(x.shape)
        x0, y0, w, h = self._box
        return _eager_resize(x[..., y0:y0 + h, x0:x0 + w, :] if x.ndim == 4 else x[y0:y0 + h, x0:x0 + w],
                             self._size, self._interpolation)

    def hybrid_forward(self, F, x):
        x0, y0, w, h = self._box
        out = F.image.crop(x, x=x0, y=y0, width=w, height=h)
        if self._size is not None:
            out = F.image.resize(out, size=self._size, keep_ratio=False, interp=self._interpolation)
        return out


class CenterCrop(_ImageBlock):
    """The centred (width, height) window of an (H, W, C) image (mx.image.center_crop): an image
    smaller than that is cropped to the largest window of that aspect ratio and resized up."""

    def __init__(self, size, interpolation=1):
        super().__init__()
        self._args = (_pair(size, "CenterCrop"), interpolation)

    def forward(self, x):
        _check_image(x.shape, "CenterCrop", allow_batch=False)
        return _mximage.center_crop(x, *self._args)[0]


class RandomResizedCrop(_ImageBlock):
    """A random window (area fraction in `scale`, aspect ratio log-uniform in `ratio`) resized to
    size (width, height) (mx.image.random_size_crop)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation=1):
        super().__init__()
        self._args = (_pair(size, "RandomResizedCrop"), scale, ratio, interpolation)

    def forward(self, x):
        _check_image(x.shape, "RandomResizedCrop", allow_batch=False)
        return _mximage.random_size_crop(x, *self._args)[0]


class RandomFlipLeftRight(_ImageHybridBlock):
    """Mirror the image (or the whole batch) horizontally with probability 1/2."""

    def _check(self, shape):
        _check_image(shape, type(self).__name__)

    def hybrid_forward(self, F, x):
        return F.image.random_flip_left_right(x)


class RandomFlipTopBottom(RandomFlipLeftRight):
    """Flip the image (or the whole batch) vertically with probability 1/2."""

    def hybrid_forward(self, F, x):
        return F.image.random_flip_top_bottom(x)


class _RandomColor(_ImageHybridBlock):
    """One random colour operator with factor range [max(0, 1 - amount), 1 + amount]."""
    _op = None

    def __init__(self, amount):
        super().__init__()
        if amount < 0:
            raise ValueError(f"{type(self).__name__}: the amount must be non-negative, got {amount}")
        self._args = (max(0.0, 1.0 - amount), 1.0 + amount)

    def _check(self, shape):
        _check_image(shape, type(self).__name__, rgb=True)

    def hybrid_forward(self, F, x):
        return getattr(F.image, self._op)(x, min_factor=self._args[0], max_factor=self._args[1])


class RandomBrightness(_RandomColor):
    """Scale pixel values by a factor drawn from [max(0, 1 - brightness), 1 + brightness]."""
    _op = "random_brightness"

    def __init__(self, brightness):
        super().__init__(brightness)


class RandomContrast(_RandomColor):
    """Blend with the image's mean gray level; factor from [max(0, 1 - contrast), 1 + contrast]."""
    _op = "random_contrast"

    def __init__(self, contrast):
        super().__init__(contrast)


class RandomSaturation(_RandomColor):
    """Blend each pixel with its gray value as MXNet 1.9.1's kernel computes it (0.114 * blue);
    factor from [max(0, 1 - saturation), 1 + saturation]."""
    _op = "random_saturation"

    def __init__(self, saturation):
        super().__init__(saturation)


class RandomHue(_RandomColor):
    """Rotate hue in HLS space by a factor of full turns drawn from [max(0, 1 - hue), 1 + hue]
    (MXNet's range: a rotation of (factor - 1) turns, so hue=0 leaves the image alone)."""
    _op = "random_hue"

    def __init__(self, hue):
        super().__init__(hue)


class RandomColorJitter(_ImageHybridBlock):
    """Random brightness, contrast, saturation and hue changes in a random order; a zero amount
    leaves that property alone."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        super().__init__()
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation),
                            ("hue", hue)):
            if value < 0:
                raise ValueError(f"RandomColorJitter: {name} must be non-negative, got {value}")
        self._args = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)

    def _check(self, shape):
        _check_image(shape, "RandomColorJitter", rgb=True)

    def hybrid_forward(self, F, x):
        return F.image.random_color_jitter(x, **self._args)


class RandomLighting(_ImageHybridBlock):
    """AlexNet-style PCA lighting noise: add eigvec @ (eigval * N(0, alpha)) to every pixel."""

    def __init__(self, alpha):
        super().__init__()
        self._alpha = float(alpha)

    def _check(self, shape):
        _check_image(shape, "RandomLighting", rgb=True)

    def hybrid_forward(self, F, x):
        return F.image.random_lighting(x, alpha_std=self._alpha)


def _float32_only(x, what):
    if np.dtype(x.dtype) != np.float32:
        raise TypeError(f"{what}: only float32 images are supported, got {np.dtype(x.dtype)}; "
                        f"call it after ToTensor")


class Rotate(_ImageBlock):
    """Rotate a float32 (C, H, W) tensor or (N, C, H, W) batch by `rotation_degrees`
    counter-clockwise (mx.image.imrotate); zoom_in crops away the empty corners, zoom_out
    shrinks the image so none of it leaves the frame."""

    def __init__(self, rotation_degrees, zoom_in=False, zoom_out=False):
        super().__init__()
        self._args = (rotation_degrees, zoom_in, zoom_out)

    def forward(self, x):
        _float32_only(x, "Rotate")
        return _mximage.imrotate(x, *self._args)


class RandomRotation(_ImageBlock):
    """With probability rotate_with_proba, rotate by an angle drawn uniformly from angle_limits
    (mx.image.random_rotate); float32 (C, H, W) or (N, C, H, W) input."""

    def __init__(self, angle_limits, zoom_in=False, zoom_out=False, rotate_with_proba=1.0):
        super().__init__()
        lower, upper = angle_limits
        if lower >= upper:
            raise ValueError(f"RandomRotation: angle_limits must be an ordered (lower, upper) pair, got {angle_limits}")
        if not 0 <= rotate_with_proba <= 1:
            raise ValueError(f"RandomRotation: rotate_with_proba must lie in [0, 1], got {rotate_with_proba}")
        self._args = (angle_limits, zoom_in, zoom_out)
        self._rotate_with_proba = rotate_with_proba

    def forward(self, x):
        if _random.generator().random() > self._rotate_with_proba:
            return x
        _float32_only(x, "RandomRotation")
        return _mximage.random_rotate(x, *self._args)


class RandomApply(Sequential):
    """Apply `transforms` (a Block or callable) with probability p, else pass the input through."""

    def __init__(self, transforms, p=0.5):
        super().__init__()
        self.transforms = transforms
        self.p = p

    def forward(self, x):
        if self.p < _random.generator().random():
            return x
        return self.transforms(x)
