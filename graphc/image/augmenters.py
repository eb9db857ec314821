"""mx.image's augmenters (MXNet 1.9.1's classes, arguments and order) and CreateAugmenter.

An augmenter is a callable HWC image -> HWC image. The colour augmenters work in float32 (the
CastAug that CreateAugmenter puts before them does that); the formulas are MXNet's, so a
seeded run differs from MXNet's only in the random numbers drawn. Randomness comes from
graphc.random (mx.random.seed), not from Python's `random` module as in MXNet.
"""
from __future__ import annotations

import json

import numpy as np

from .. import random as _random
from ..ndarray import NDArray
from . import functions as F

__all__ = ["Augmenter", "SequentialAug", "RandomOrderAug", "ResizeAug", "ForceResizeAug", "RandomCropAug",
           "RandomSizedCropAug", "CenterCropAug", "BrightnessJitterAug", "ContrastJitterAug",
           "SaturationJitterAug", "HueJitterAug", "ColorJitterAug", "LightingAug", "ColorNormalizeAug",
           "RandomGrayAug", "HorizontalFlipAug", "CastAug", "CreateAugmenter"]

_GRAY_COEF = np.array([0.299, 0.587, 0.114], np.float32)


def _rng():
    return _random.generator()


def _float_image(src) -> np.ndarray:
    arr = F._np(src)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


class Augmenter:
    """Base class: the constructor's keyword arguments are kept for dumps()."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        for k, v in self._kwargs.items():
            if isinstance(v, NDArray):
                self._kwargs[k] = v.asnumpy().tolist()
            elif isinstance(v, np.ndarray):
                self._kwargs[k] = v.tolist()

    def dumps(self):
        """[class name in lower case, arguments] as JSON, as MXNet's."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, src):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class SequentialAug(Augmenter):
    """Applies its augmenters in order."""

    def __init__(self, ts):
        super().__init__()
        self.ts = ts

    def dumps(self):
        return [self.__class__.__name__.lower(), [x.dumps() for x in self.ts]]

    def __call__(self, src):
        for aug in self.ts:
            src = aug(src)
        return src


class RandomOrderAug(Augmenter):
    """Applies its augmenters in a random order."""

    def __init__(self, ts):
        super().__init__()
        self.ts = ts

    def dumps(self):
        return [self.__class__.__name__.lower(), [x.dumps() for x in self.ts]]

    def __call__(self, src):
        for i in _rng().permutation(len(self.ts)):
            src = self.ts[i](src)
        return src


class ResizeAug(Augmenter):
    """Resize the shorter edge to `size`."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return F.resize_short(src, self.size, self.interp)


class ForceResizeAug(Augmenter):
    """Resize to exactly size (w, h)."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return F.imresize(src, self.size[0], self.size[1], self.interp)


class RandomCropAug(Augmenter):
    """A random (w, h) window."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return F.random_crop(src, self.size, self.interp)[0]


class RandomSizedCropAug(Augmenter):
    """A window of random area and aspect ratio, resized to (w, h) (Inception-style)."""

    def __init__(self, size, area, ratio, interp=2, **kwargs):
        super().__init__(size=size, area=area, ratio=ratio, interp=interp)
        self.size, self.interp, self.ratio = size, interp, ratio
        self.area = kwargs.pop("min_area", area)
        if kwargs:
            raise TypeError(f"RandomSizedCropAug: unexpected arguments {sorted(kwargs)}")

    def __call__(self, src):
        return F.random_size_crop(src, self.size, self.area, self.ratio, self.interp)[0]


class CenterCropAug(Augmenter):
    """The centred (w, h) window."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return F.center_crop(src, self.size, self.interp)[0]


class BrightnessJitterAug(Augmenter):
    """Scale by 1 + U(-brightness, brightness)."""

    def __init__(self, brightness):
        super().__init__(brightness=brightness)
        self.brightness = brightness

    def __call__(self, src):
        alpha = 1.0 + _rng().uniform(-self.brightness, self.brightness)
        return F._nd(_float_image(src) * np.float32(alpha))


class ContrastJitterAug(Augmenter):
    """Blend with the image's mean luminance: alpha * src + (1 - alpha) * 3 * mean(src * gray weights)."""

    def __init__(self, contrast):
        super().__init__(contrast=contrast)
        self.contrast = contrast

    def __call__(self, src):
        arr = _float_image(src)
        alpha = 1.0 + _rng().uniform(-self.contrast, self.contrast)
        gray = arr * _GRAY_COEF
        offset = np.float32(3.0 * (1.0 - alpha) / gray.size) * gray.sum(dtype=np.float32)
        return F._nd(arr * np.float32(alpha) + offset)


class SaturationJitterAug(Augmenter):
    """Blend each pixel with its own gray level."""

    def __init__(self, saturation):
        super().__init__(saturation=saturation)
        self.saturation = saturation

    def __call__(self, src):
        arr = _float_image(src)
        alpha = 1.0 + _rng().uniform(-self.saturation, self.saturation)
        gray = (arr * _GRAY_COEF).sum(axis=2, keepdims=True, dtype=np.float32) * np.float32(1.0 - alpha)
        return F._nd(arr * np.float32(alpha) + gray)


class HueJitterAug(Augmenter):
    """Rotate the hue by U(-hue, hue) * 180 degrees in YIQ space."""

    _TYIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    _ITYIQ = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])

    def __init__(self, hue):
        super().__init__(hue=hue)
        self.hue = hue

    def __call__(self, src):
        alpha = _rng().uniform(-self.hue, self.hue)
        u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
        bt = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = np.dot(np.dot(self._ITYIQ, bt), self._TYIQ).T.astype(np.float32)
        return F._nd(np.dot(_float_image(src), t))


class ColorJitterAug(RandomOrderAug):
    """Brightness, contrast and saturation jitter (those that are non-zero) in random order."""

    def __init__(self, brightness, contrast, saturation):
        ts = []
        if brightness > 0:
            ts.append(BrightnessJitterAug(brightness))
        if contrast > 0:
            ts.append(ContrastJitterAug(contrast))
        if saturation > 0:
            ts.append(SaturationJitterAug(saturation))
        super().__init__(ts)


class LightingAug(Augmenter):
    """AlexNet-style PCA lighting noise: add eigvec @ (N(0, alphastd) * eigval) to every pixel."""

    def __init__(self, alphastd, eigval, eigvec):
        super().__init__(alphastd=alphastd, eigval=eigval, eigvec=eigvec)
        self.alphastd = alphastd
        self.eigval = np.asarray(eigval)
        self.eigvec = np.asarray(eigvec)

    def __call__(self, src):
        alpha = _rng().normal(0, self.alphastd, size=(3,))
        rgb = np.dot(self.eigvec * alpha, self.eigval).astype(np.float32)
        return F._nd(_float_image(src) + rgb)


class ColorNormalizeAug(Augmenter):
    """(src - mean) / std."""

    def __init__(self, mean, std):
        super().__init__(mean=mean, std=std)
        self.mean = None if mean is None else np.asarray(F._np(mean), np.float32)
        self.std = None if std is None else np.asarray(F._np(std), np.float32)

    def __call__(self, src):
        return F.color_normalize(src, self.mean, self.std)


class RandomGrayAug(Augmenter):
    """With probability p, replace the colours by gray (MXNet's 0.21/0.72/0.07 weights)."""

    _MAT = np.array([[0.21, 0.21, 0.21], [0.72, 0.72, 0.72], [0.07, 0.07, 0.07]], np.float32)

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p

    def __call__(self, src):
        if _rng().random() < self.p:
            return F._nd(np.dot(_float_image(src), self._MAT))
        return src


class HorizontalFlipAug(Augmenter):
    """With probability p, mirror left-right."""

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p

    def __call__(self, src):
        if _rng().random() < self.p:
            return F._nd(F._np(src)[:, ::-1])
        return src


class CastAug(Augmenter):
    """Cast to `typ` (float32 by default)."""

    def __init__(self, typ="float32"):
        super().__init__(type=typ)
        self.typ = typ

    def __call__(self, src):
        return F._nd(F._np(src).astype(self.typ))


_PCA_EIGVAL = np.array([55.46, 4.794, 1.148])
_PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


def _channel_stats(value, default, name):
    if value is True:
        return np.array(default, np.float32)
    if value is None or value is False:
        return None
    arr = np.asarray(F._np(value), np.float32)
    if arr.ndim != 1 or arr.shape[0] not in (1, 3):
        raise ValueError(f"CreateAugmenter: {name} must have 1 or 3 values, got shape {arr.shape}")
    return arr


def CreateAugmenter(data_shape, resize=0, rand_crop=False, rand_resize=False, rand_mirror=False, mean=None,
                    std=None, brightness=0, contrast=0, saturation=0, hue=0, pca_noise=0, rand_gray=0,
                    inter_method=2):
    """MXNet's standard augmenter list for data_shape (C, H, W): resize, crop, mirror, cast,
    colour jitter, hue, PCA noise, gray, normalize. mean/std=True use ImageNet's statistics."""
    auglist = []
    if resize > 0:
        auglist.append(ResizeAug(resize, inter_method))
    crop_size = (data_shape[2], data_shape[1])
    if rand_resize:
        if not rand_crop:
            raise ValueError("CreateAugmenter: rand_resize needs rand_crop=True")
        auglist.append(RandomSizedCropAug(crop_size, 0.08, (3.0 / 4.0, 4.0 / 3.0), inter_method))
    elif rand_crop:
        auglist.append(RandomCropAug(crop_size, inter_method))
    else:
        auglist.append(CenterCropAug(crop_size, inter_method))
    if rand_mirror:
        auglist.append(HorizontalFlipAug(0.5))
    auglist.append(CastAug())
    if brightness or contrast or saturation:
        auglist.append(ColorJitterAug(brightness, contrast, saturation))
    if hue:
        auglist.append(HueJitterAug(hue))
    if pca_noise > 0:
        auglist.append(LightingAug(pca_noise, _PCA_EIGVAL, _PCA_EIGVEC))
    if rand_gray > 0:
        auglist.append(RandomGrayAug(rand_gray))
    mean = _channel_stats(mean, [123.68, 116.28, 103.53], "mean")
    std = _channel_stats(std, [58.395, 57.12, 57.375], "std")
    if mean is not None or std is not None:
        auglist.append(ColorNormalizeAug(mean, std))
    return auglist
