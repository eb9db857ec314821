"""mx.image.ImageIter: a DataIter over images from a .rec file (with or without .idx) or an image
list (.lst file or Python list) under a root folder, decoded and augmented in Python, batched
as NCHW float32 with MXNet 1.9.1's last_batch_handle rules ('pad' fills from the start,
'discard' drops, 'roll_over' carries the short batch into the next epoch).

For fast C++-style record reading with threads, mx.io.ImageRecordIter is the one to use.
"""
from __future__ import annotations

import os

import numpy as np

from .. import random as _random
from .. import recordio
from ..io.base import DataBatch, DataDesc, DataIter
from ..ndarray import NDArray
from . import functions as F
from .augmenters import CreateAugmenter

__all__ = ["ImageIter", "read_image_list"]

_HANDLES = ("pad", "discard", "roll_over")


def read_image_list(path, dtype=np.float32):
    """A .lst file (`index<TAB>label...<TAB>relative path` lines) -> {index: (labels, path)}, keys."""
    imglist, keys = {}, []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            fields = [f.strip() for f in line.strip().split("\t")]
            if fields == [""]:
                continue
            if len(fields) < 3:
                raise ValueError(f"{path}: line {lineno}: expected 'index<TAB>label...<TAB>path', "
                                 f"found {line.strip()!r}")
            try:
                key, label = int(fields[0]), np.array(fields[1:-1], dtype=dtype)
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: index must be an integer and labels numbers, "
                                 f"found {line.strip()!r}") from None
            imglist[key] = (label, fields[-1])
            keys.append(key)
    return imglist, keys


class ImageIter(DataIter):
    """See the module docstring; arguments are MXNet's (kwargs go to CreateAugmenter when aug_list
    is None)."""

    def __init__(self, batch_size, data_shape, label_width=1, path_imgrec=None, path_imglist=None,
                 path_root=None, path_imgidx=None, shuffle=False, part_index=0, num_parts=1, aug_list=None,
                 imglist=None, data_name="data", label_name="softmax_label", dtype="float32",
                 last_batch_handle="pad", **kwargs):
        super().__init__(batch_size)
        if not (path_imgrec or path_imglist or isinstance(imglist, list)):
            raise ValueError("ImageIter: give path_imgrec, path_imglist or imglist")
        if len(data_shape) != 3 or data_shape[0] not in (1, 3):
            raise ValueError(f"ImageIter: data_shape must be (channels, height, width) with 1 or 3 channels, "
                             f"got {data_shape}")
        if last_batch_handle not in _HANDLES:
            raise ValueError(f"ImageIter: last_batch_handle must be one of {_HANDLES}, got {last_batch_handle!r}")
        self.imgrec = None
        self.imgidx = None
        if path_imgrec:
            if path_imgidx:
                self.imgrec = recordio.MXIndexedRecordIO(path_imgidx, path_imgrec, "r")
                self.imgidx = list(self.imgrec.keys)
            else:
                self.imgrec = recordio.MXRecordIO(path_imgrec, "r")
        self.imglist = None
        if path_imglist:
            self.imglist, self.imgidx = read_image_list(path_imglist, dtype)
        elif isinstance(imglist, list):
            self.imglist, self.imgidx = {}, []
            # [label, path], [[labels...], path] or [label1, label2, ..., path], as MXNet accepts
            for index, entry in enumerate(imglist, 1):
                raw = entry[:-1] if len(entry) > 2 else entry[0]
                self.imglist[index] = (np.array(raw, dtype=dtype).reshape(-1), entry[-1])
                self.imgidx.append(index)
        if self.imgrec is not None and self.imgidx is None and (shuffle or num_parts > 1):
            raise ValueError("ImageIter: shuffle and num_parts > 1 need random access: give path_imgidx too")
        self.seq = list(self.imgidx) if self.imgidx is not None else None
        if num_parts > 1:
            if not 0 <= part_index < num_parts:
                raise ValueError(f"ImageIter: part_index {part_index} must be in [0, {num_parts})")
            n = len(self.seq) // num_parts
            self.seq = self.seq[part_index * n:(part_index + 1) * n]
        self.path_root = path_root
        self.data_shape = tuple(data_shape)
        self.label_width = label_width
        self.shuffle = shuffle
        self.dtype = dtype
        self.auglist = CreateAugmenter(data_shape, **kwargs) if aug_list is None else aug_list
        label_shape = (batch_size,) if label_width == 1 else (batch_size, label_width)
        self.provide_data = [DataDesc(data_name, (batch_size,) + self.data_shape, np.dtype(dtype))]
        self.provide_label = [DataDesc(label_name, label_shape, np.dtype(dtype))]
        self.last_batch_handle = last_batch_handle
        self.num_image = len(self.seq) if self.seq is not None else None
        self.cur = 0
        self._allow_read = True
        self._cache = None
        self.reset()

    # -- epoch control ------------------------------------------------------------------------
    def reset(self):
        if self.seq is not None and self.shuffle:
            self.seq = [self.seq[i] for i in _random.generator().permutation(len(self.seq))]
        if self.last_batch_handle != "roll_over" or self._cache is None:
            if self.imgrec is not None:
                self.imgrec.reset()
            self.cur = 0
            self._allow_read = True

    def hard_reset(self):
        """Back to the start, forgetting a rolled-over batch."""
        if self.seq is not None and self.shuffle:
            self.seq = [self.seq[i] for i in _random.generator().permutation(len(self.seq))]
        if self.imgrec is not None:
            self.imgrec.reset()
        self.cur = 0
        self._allow_read = True
        self._cache = None

    # -- samples ------------------------------------------------------------------------------
    def next_sample(self):
        """(label, encoded image bytes) of the next image; StopIteration at the end of the epoch."""
        if not self._allow_read:
            raise StopIteration
        if self.seq is not None:
            if self.cur >= self.num_image:
                if self.last_batch_handle != "discard":
                    self.cur = 0
                raise StopIteration
            idx = self.seq[self.cur]
            self.cur += 1
            if self.imgrec is not None:
                header, img = recordio.unpack(self.imgrec.read_idx(idx), self.imgrec.uri)
                # a list given with the .rec overrides the labels; the pixels stay the record's
                return (header.label if self.imglist is None else self.imglist[idx][0]), img
            label, fname = self.imglist[idx]
            return label, self.read_image(fname)
        record = self.imgrec.read()
        if record is None:
            if self.last_batch_handle != "discard":
                self.imgrec.reset()
            raise StopIteration
        header, img = recordio.unpack(record, self.imgrec.uri)
        return header.label, img

    def read_image(self, fname):
        with open(os.path.join(self.path_root or "", fname), "rb") as fh:
            return fh.read()

    def imdecode(self, s):
        return F.imdecode(s, flag=1 if self.data_shape[0] == 3 else 0)

    def check_valid_image(self, data):
        if len(data.shape) == 0 or data.shape[0] == 0:
            raise RuntimeError("ImageIter: data shape is wrong (empty image)")

    def augmentation_transform(self, data):
        for aug in self.auglist:
            data = aug(data)
        return data

    def postprocess_data(self, datum):
        """HWC -> CHW."""
        arr = datum.asnumpy() if isinstance(datum, NDArray) else np.asarray(datum)
        return np.transpose(arr, (2, 0, 1))

    def _label_row(self, label):
        label = np.asarray(label, dtype=np.float32).reshape(-1)
        if self.label_width == 1:
            return label[0]
        if label.size != self.label_width:
            raise ValueError(f"ImageIter: a sample has {label.size} labels, label_width is {self.label_width}")
        return label

    def _batchify(self, data, label, start=0):
        i = start
        try:
            while i < self.batch_size:
                lab, s = self.next_sample()
                img = self.imdecode(s)
                self.check_valid_image(img)
                img = self.augmentation_transform(img)
                chw = self.postprocess_data(img)
                if chw.shape != self.data_shape:
                    raise ValueError(f"ImageIter: an augmented image has shape {chw.shape} (CHW), "
                                     f"data_shape is {self.data_shape}; add a crop or resize augmenter")
                data[i] = chw
                label[i] = self._label_row(lab)
                i += 1
        except StopIteration:
            if not i:
                raise
        return i

    def _empty_batch(self):
        """Fresh numpy buffers for one batch's data and labels."""
        return (np.zeros((self.batch_size,) + self.data_shape, np.dtype(self.dtype)),
                np.zeros(self.provide_label[0].shape, np.dtype(self.dtype)))

    def next(self):
        if self._cache is not None:
            data, label, i = self._cache
        else:
            data, label = self._empty_batch()
            i = self._batchify(data, label)
        pad = self.batch_size - i
        if pad:
            if self.last_batch_handle == "discard":
                raise StopIteration
            if self.last_batch_handle == "roll_over" and self._cache is None:
                self._cache = (data, label, i)
                raise StopIteration
            self._batchify(data, label, i)
            if self.last_batch_handle == "pad":
                self._allow_read = False
            else:
                self._cache = None
        return DataBatch([NDArray(data)], [NDArray(label)], pad=pad)
