"""mx.image's object-detection pipeline (MXNet 1.9.1's mx.image.detection): augmenters that move
boxes with the pixels, CreateDetAugmenter, and ImageDetIter.

A label is a float array of objects, one row each: [class, xmin, ymin, xmax, ymax, extra...],
corners relative to the image size (0..1). In a record (or .lst line) it is stored flat behind a
header: [header width n >= 2, object width k >= 5, (n - 2 more header values), objects...].
Batched labels are (batch, most objects in the data set, k), unused rows filled with -1.

Random draws come from graphc.random, as in the rest of graphc.image.
"""
from __future__ import annotations

import json
import warnings
from math import sqrt

import numpy as np

from .. import random as _random
from ..ndarray import NDArray
from . import functions as F
from .augmenters import (Augmenter, CastAug, ColorJitterAug, ColorNormalizeAug, ForceResizeAug, HueJitterAug,
                         LightingAug, RandomGrayAug, ResizeAug, _channel_stats, _PCA_EIGVAL, _PCA_EIGVEC)
from .image_iter import ImageIter

__all__ = ["DetAugmenter", "DetBorrowAug", "DetRandomSelectAug", "DetHorizontalFlipAug", "DetRandomCropAug",
           "DetRandomPadAug", "CreateMultiRandCropAugmenter", "CreateDetAugmenter", "ImageDetIter"]


def _rng():
    return _random.generator()


def _randint(low, high):
    """An integer in [low, high], both ends included (Python's random.randint)."""
    return int(_rng().integers(low, high + 1))


def _pair(value, name):
    if isinstance(value, (tuple, list)):
        return tuple(value)
    if not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    return (value, value)


def _box_areas(boxes):
    """Areas of [xmin, ymin, xmax, ymax] rows (0 for empty boxes)."""
    return np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])


class DetAugmenter:
    """Base class: `aug(image, label) -> (image, label)`; keyword arguments are kept for dumps()."""

    def __init__(self, **kwargs):
        self._kwargs = {k: (v.asnumpy().tolist() if isinstance(v, NDArray) else
                            v.tolist() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}

    def dumps(self):
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, src, label):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class DetBorrowAug(DetAugmenter):
    """A classification augmenter that leaves boxes where they are (colour, cast, resize of the
    whole image: relative corners do not change)."""

    def __init__(self, augmenter):
        if not isinstance(augmenter, Augmenter):
            raise TypeError(f"DetBorrowAug: expected an mx.image.Augmenter, got {type(augmenter).__name__}")
        super().__init__(augmenter=augmenter.dumps())
        self.augmenter = augmenter

    def dumps(self):
        return [self.__class__.__name__.lower(), self.augmenter.dumps()]

    def __call__(self, src, label):
        return self.augmenter(src), label


class DetRandomSelectAug(DetAugmenter):
    """One augmenter of the list, chosen at random, or none with probability skip_prob."""

    def __init__(self, aug_list, skip_prob=0):
        super().__init__(skip_prob=skip_prob)
        aug_list = list(aug_list) if isinstance(aug_list, (list, tuple)) else [aug_list]
        for aug in aug_list:
            if not isinstance(aug, DetAugmenter):
                raise TypeError(f"DetRandomSelectAug: expected DetAugmenters, got {type(aug).__name__}")
        self.aug_list = aug_list
        self.skip_prob = skip_prob if aug_list else 1

    def dumps(self):
        return [self.__class__.__name__.lower(), [x.dumps() for x in self.aug_list]]

    def __call__(self, src, label):
        if _rng().random() < self.skip_prob:
            return src, label
        return self.aug_list[int(_rng().integers(len(self.aug_list)))](src, label)


class DetHorizontalFlipAug(DetAugmenter):
    """With probability p, mirror the image and the boxes left-right."""

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p

    def __call__(self, src, label):
        if _rng().random() < self.p:
            src = F._nd(F._np(src)[:, ::-1])
            label = label.copy()
            label[:, 1], label[:, 3] = 1.0 - label[:, 3], 1.0 - label[:, 1]
        return src, label


class DetRandomCropAug(DetAugmenter):
    """A random crop (area fraction in area_range, width/height in aspect_ratio_range) that keeps
    more than min_object_covered of every box it touches; boxes are clipped to it and those left
    with no more than min_eject_coverage of their area are dropped. After max_attempts failed
    proposals the image is left as it is."""

    def __init__(self, min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 1.0),
                 min_eject_coverage=0.3, max_attempts=50):
        aspect_ratio_range = _pair(aspect_ratio_range, "aspect_ratio_range")
        area_range = _pair(area_range, "area_range")
        super().__init__(min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range,
                         area_range=area_range, min_eject_coverage=min_eject_coverage, max_attempts=max_attempts)
        self.min_object_covered = min_object_covered
        self.min_eject_coverage = min_eject_coverage
        self.max_attempts = max_attempts
        self.aspect_ratio_range = aspect_ratio_range
        self.area_range = area_range
        self.enabled = 0 < area_range[1] and area_range[0] <= area_range[1] and \
            0 < aspect_ratio_range[0] <= aspect_ratio_range[1]
        if not self.enabled:
            warnings.warn(f"DetRandomCropAug disabled: invalid area_range {area_range} or aspect_ratio_range "
                          f"{aspect_ratio_range}")

    def __call__(self, src, label):
        h, w = src.shape[:2]
        crop = self._propose(label, h, w)
        if crop is None:
            return src, label
        x, y, cw, ch, label = crop
        return F.fixed_crop(src, x, y, cw, ch), label

    def _covers_enough(self, label, box, width, height):
        """Whether the pixel box (x0, y0, x1, y1) keeps more than min_object_covered of each box it touches."""
        x0, y0, x1, y1 = box
        if (x1 - x0) * (y1 - y0) < 2:
            return False
        areas = _box_areas(label[:, 1:5])
        real = areas * width * height > 2
        if not real.any():
            return False
        boxes = label[real, 1:5]
        window = np.array([x0 / width, y0 / height, x1 / width, y1 / height])
        inter = np.concatenate([np.maximum(boxes[:, :2], window[:2]), np.minimum(boxes[:, 2:], window[2:])], 1)
        coverage = _box_areas(inter) / areas[real]
        coverage = coverage[coverage > 0]
        return coverage.size > 0 and coverage.min() > self.min_object_covered

    def _crop_labels(self, label, box, width, height):
        """Boxes relative to the crop (x, y, w, h), clipped; None when none survives."""
        x, y, cw, ch = box[0] / width, box[1] / height, box[2] / width, box[3] / height
        out = label.copy()
        out[:, (1, 3)] = (out[:, (1, 3)] - x) / cw
        out[:, (2, 4)] = (out[:, (2, 4)] - y) / ch
        out[:, 1:5] = np.clip(out[:, 1:5], 0, 1)
        kept = _box_areas(out[:, 1:5]) * cw * ch / _box_areas(label[:, 1:5])
        valid = (out[:, 3] > out[:, 1]) & (out[:, 4] > out[:, 2]) & (kept > self.min_eject_coverage)
        return out[valid] if valid.any() else None

    def _propose(self, label, height, width):
        if not self.enabled or height <= 0 or width <= 0:
            return None
        min_area = self.area_range[0] * height * width
        max_area = self.area_range[1] * height * width
        for _ in range(self.max_attempts):
            ratio = _rng().uniform(*self.aspect_ratio_range)
            if ratio <= 0:
                continue
            h = int(round(sqrt(min_area / ratio)))
            max_h = int(round(sqrt(max_area / ratio)))
            if round(max_h * ratio) > width:
                max_h = int((width + 0.4999999) / ratio)     # the tallest crop whose width still fits
            max_h = min(max_h, height)
            h = min(h, max_h)
            if h < max_h:
                h = _randint(h, max_h)
            w = int(round(h * ratio))
            if w * h < min_area:
                h += 1
                w = int(round(h * ratio))
            if w * h > max_area:
                h -= 1
                w = int(round(h * ratio))
            if not (min_area <= w * h <= max_area and 0 <= w <= width and 0 <= h <= height):
                continue
            y = _randint(0, max(0, height - h))
            x = _randint(0, max(0, width - w))
            if self._covers_enough(label, (x, y, x + w, y + h), width, height):
                new_label = self._crop_labels(label, (x, y, w, h), width, height)
                if new_label is not None:
                    return x, y, w, h, new_label
        return None


class DetRandomPadAug(DetAugmenter):
    """Place the image at a random spot of a larger canvas (area 1..area_range[1] times the
    image's, width/height in aspect_ratio_range) filled with pad_val; boxes shrink with it."""

    def __init__(self, aspect_ratio_range=(0.75, 1.33), area_range=(1.0, 3.0), max_attempts=50,
                 pad_val=(128, 128, 128)):
        aspect_ratio_range = _pair(aspect_ratio_range, "aspect_ratio_range")
        area_range = _pair(area_range, "area_range")
        pad_val = tuple(pad_val) if isinstance(pad_val, (list, tuple)) else (pad_val,)
        super().__init__(aspect_ratio_range=aspect_ratio_range, area_range=area_range, max_attempts=max_attempts,
                         pad_val=pad_val)
        self.pad_val = pad_val
        self.aspect_ratio_range = aspect_ratio_range
        self.area_range = area_range
        self.max_attempts = max_attempts
        self.enabled = area_range[1] > 1.0 and area_range[0] <= area_range[1] and \
            0 < aspect_ratio_range[0] <= aspect_ratio_range[1]
        if not self.enabled:
            warnings.warn(f"DetRandomPadAug disabled: invalid area_range {area_range} or aspect_ratio_range "
                          f"{aspect_ratio_range}")

    def __call__(self, src, label):
        height, width = src.shape[:2]
        pad = self._propose(label, height, width)
        if pad is None:
            return src, label
        x, y, w, h, label = pad
        values = list(self.pad_val) * (3 if len(self.pad_val) == 1 else 1)
        return F.copyMakeBorder(src, y, h - y - height, x, w - x - width, 16, values=values), label

    def _propose(self, label, height, width):
        if not self.enabled or height <= 0 or width <= 0:
            return None
        min_area = self.area_range[0] * height * width
        max_area = self.area_range[1] * height * width
        for _ in range(self.max_attempts):
            ratio = _rng().uniform(*self.aspect_ratio_range)
            if ratio <= 0:
                continue
            h = int(round(sqrt(min_area / ratio)))
            max_h = int(round(sqrt(max_area / ratio)))
            if round(h * ratio) < width:
                h = int((width + 0.499999) / ratio)          # the shortest canvas wide enough
            h = min(max(h, height), max_h)
            if h < max_h:
                h = _randint(h, max_h)
            w = int(round(h * ratio))
            if h - height < 2 or w - width < 2:
                continue                                     # a margin of a pixel teaches nothing
            y = _randint(0, max(0, h - height))
            x = _randint(0, max(0, w - width))
            out = label.copy()
            out[:, (1, 3)] = (out[:, (1, 3)] * width + x) / w
            out[:, (2, 4)] = (out[:, (2, 4)] * height + y) / h
            return x, y, w, h, out
        return None


def CreateMultiRandCropAugmenter(min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 1.0),
                                 min_eject_coverage=0.3, max_attempts=50, skip_prob=0):
    """A DetRandomSelectAug over DetRandomCropAugs; each argument may be a list (one crop
    augmenter per entry; single values are repeated)."""
    params = [p if isinstance(p, list) else [p] for p in (min_object_covered, aspect_ratio_range, area_range,
                                                          min_eject_coverage, max_attempts)]
    count = max(len(p) for p in params)
    for p in params:
        if len(p) not in (1, count):
            raise ValueError(f"CreateMultiRandCropAugmenter: parameter lists must have 1 or {count} entries, "
                             f"got {len(p)}")
    params = [p * count if len(p) == 1 else p for p in params]
    augs = [DetRandomCropAug(min_object_covered=moc, aspect_ratio_range=arr, area_range=ar, min_eject_coverage=mec,
                             max_attempts=ma) for moc, arr, ar, mec, ma in zip(*params)]
    return DetRandomSelectAug(augs, skip_prob=skip_prob)


def CreateDetAugmenter(data_shape, resize=0, rand_crop=0, rand_pad=0, rand_gray=0, rand_mirror=False, mean=None,
                       std=None, brightness=0, contrast=0, saturation=0, pca_noise=0, hue=0, inter_method=2,
                       min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 3.0),
                       min_eject_coverage=0.3, max_attempts=50, pad_val=(127, 127, 127)):
    """MXNet's standard detection augmenters: resize, random crops (probability rand_crop), mirror,
    random pad (probability rand_pad), force-resize to data_shape, cast, colour, normalize."""
    auglist = []
    if resize > 0:
        auglist.append(DetBorrowAug(ResizeAug(resize, inter_method)))
    if rand_crop > 0:
        auglist.append(CreateMultiRandCropAugmenter(min_object_covered, aspect_ratio_range, area_range,
                                                    min_eject_coverage, max_attempts, skip_prob=1 - rand_crop))
    if rand_mirror > 0:
        auglist.append(DetHorizontalFlipAug(0.5))
    if rand_pad > 0:
        pad = DetRandomPadAug(aspect_ratio_range, (1.0, area_range[1]), max_attempts, pad_val)
        auglist.append(DetRandomSelectAug([pad], 1 - rand_pad))
    auglist.append(DetBorrowAug(ForceResizeAug((data_shape[2], data_shape[1]), inter_method)))
    auglist.append(DetBorrowAug(CastAug()))
    if brightness or contrast or saturation:
        auglist.append(DetBorrowAug(ColorJitterAug(brightness, contrast, saturation)))
    if hue:
        auglist.append(DetBorrowAug(HueJitterAug(hue)))
    if pca_noise > 0:
        auglist.append(DetBorrowAug(LightingAug(pca_noise, _PCA_EIGVAL, _PCA_EIGVEC)))
    if rand_gray > 0:
        auglist.append(DetBorrowAug(RandomGrayAug(rand_gray)))
    mean = _channel_stats(mean, [123.68, 116.28, 103.53], "mean")
    std = _channel_stats(std, [58.395, 57.12, 57.375], "std")
    if mean is not None or std is not None:
        auglist.append(DetBorrowAug(ColorNormalizeAug(mean, std)))
    return auglist


class ImageDetIter(ImageIter):
    """ImageIter for detection: labels parsed as described in the module docstring, augmenters
    called with (image, label), batches of labels (batch, max objects, object width) padded with
    -1. Samples whose boxes are all invalid, before or after augmentation, are skipped. kwargs
    go to CreateDetAugmenter when aug_list is None."""

    def __init__(self, batch_size, data_shape, path_imgrec=None, path_imglist=None, path_root=None,
                 path_imgidx=None, shuffle=False, part_index=0, num_parts=1, aug_list=None, imglist=None,
                 data_name="data", label_name="label", last_batch_handle="pad", **kwargs):
        super().__init__(batch_size=batch_size, data_shape=data_shape, path_imgrec=path_imgrec,
                         path_imglist=path_imglist, path_root=path_root, path_imgidx=path_imgidx, shuffle=shuffle,
                         part_index=part_index, num_parts=num_parts, aug_list=[], imglist=imglist,
                         data_name=data_name, label_name=label_name, last_batch_handle=last_batch_handle)
        self.auglist = CreateDetAugmenter(data_shape, **kwargs) if aug_list is None else aug_list
        self.label_shape = self._estimate_label_shape()
        self.provide_label = [type(self.provide_label[0])(label_name, (batch_size,) + self.label_shape,
                                                          np.float32)]

    @staticmethod
    def _parse_label(label):
        """A stored label -> the (objects, width) array of its valid boxes."""
        raw = np.asarray(label.asnumpy() if isinstance(label, NDArray) else label, np.float32).ravel()
        if raw.size < 7:
            raise RuntimeError(f"ImageDetIter: a detection label needs a header and one object (7+ values), "
                               f"got {raw.size}")
        header, width = int(raw[0]), int(raw[1])
        if header < 2 or width < 5 or (raw.size - header) % width:
            raise RuntimeError(f"ImageDetIter: label of {raw.size} values does not split into a {header}-value "
                               f"header and objects of {width} values")
        objects = raw[header:].reshape(-1, width)
        valid = (objects[:, 3] > objects[:, 1]) & (objects[:, 4] > objects[:, 2])
        if not valid.any():
            raise RuntimeError("ImageDetIter: a sample has no valid box")
        return objects[valid]

    @staticmethod
    def _check_valid_label(label):
        if label.ndim != 2 or label.shape[1] < 5:
            raise RuntimeError(f"ImageDetIter: labels must have shape (objects, 5+), got {label.shape}")
        if not ((label[:, 0] >= 0) & (label[:, 3] > label[:, 1]) & (label[:, 4] > label[:, 2])).any():
            raise RuntimeError("ImageDetIter: augmentation left no valid box")

    def _estimate_label_shape(self):
        """(most objects in any sample, object width): reads every label once, as MXNet does."""
        most, width = 0, None
        self.reset()
        try:
            while True:
                label, _ = self.next_sample()
                label = self._parse_label(label)
                most, width = max(most, label.shape[0]), label.shape[1]
        except StopIteration:
            pass
        self.reset()
        if width is None:
            raise ValueError("ImageDetIter: the data set is empty")
        return (most, width)

    def _empty_batch(self):
        data, label = super()._empty_batch()
        label[:] = -1
        return data, label

    def augmentation_transform(self, data, label):
        for aug in self.auglist:
            data, label = aug(data, label)
        return data, label

    def _batchify(self, data, label, start=0):
        i = start
        try:
            while i < self.batch_size:
                raw_label, s = self.next_sample()
                img = self.imdecode(s)
                try:
                    self.check_valid_image(img)
                    objects = self._parse_label(raw_label)
                    img, objects = self.augmentation_transform(img, objects)
                    self._check_valid_label(objects)
                except RuntimeError:
                    continue                  # MXNet skips such samples too
                chw = self.postprocess_data(img)
                if chw.shape != self.data_shape:
                    raise ValueError(f"ImageDetIter: an augmented image has shape {chw.shape} (CHW), data_shape "
                                     f"is {self.data_shape}; the augmenters must end with a resize to it")
                if objects.shape[0] > label.shape[1]:
                    raise ValueError(f"ImageDetIter: a sample has {objects.shape[0]} boxes, the label shape "
                                     f"holds {label.shape[1]}; reshape(label_shape=...) first")
                data[i] = chw
                label[i, :objects.shape[0]] = objects
                label[i, objects.shape[0]:] = -1
                i += 1
        except StopIteration:
            if not i:
                raise
        return i

    def check_label_shape(self, label_shape):
        if len(label_shape) != 2:
            raise ValueError(f"ImageDetIter: label_shape must be (objects, width), got {label_shape}")
        if label_shape[0] < self.label_shape[0]:
            raise ValueError(f"ImageDetIter: label count cannot shrink from {self.label_shape[0]} to {label_shape[0]}")
        if label_shape[1] != self.label_shape[1]:
            raise ValueError(f"ImageDetIter: object width {label_shape[1]} differs from the data's {self.label_shape[1]}")

    def reshape(self, data_shape=None, label_shape=None):
        """Change the batch's data shape (C, H, W) and/or label shape (objects, width)."""
        desc = type(self.provide_data[0])
        if data_shape is not None:
            data_shape = tuple(data_shape)
            if len(data_shape) != 3 or data_shape[0] not in (1, 3):
                raise ValueError(f"ImageDetIter: data_shape must be (1 or 3, height, width), got {data_shape}")
            self.provide_data = [desc(self.provide_data[0].name, (self.batch_size,) + data_shape, np.float32)]
            self.data_shape = data_shape
        if label_shape is not None:
            label_shape = tuple(label_shape)
            self.check_label_shape(label_shape)
            self.provide_label = [desc(self.provide_label[0].name, (self.batch_size,) + label_shape, np.float32)]
            self.label_shape = label_shape

    def sync_label_shape(self, it, verbose=False):
        """Give this iterator and `it` the same label shape (the larger object count); returns `it`."""
        if not isinstance(it, ImageDetIter):
            raise TypeError(f"sync_label_shape: expected an ImageDetIter, got {type(it).__name__}")
        count = max(self.label_shape[0], it.label_shape[0])
        if self.label_shape[0] < count:
            self.reshape(label_shape=(count, self.label_shape[1]))
        if it.label_shape[0] < count:
            it.reshape(label_shape=(count, it.label_shape[1]))
        if verbose:
            print(f"sync_label_shape: both iterators now give labels of shape {self.label_shape}")
        return it
