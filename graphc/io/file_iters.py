"""Iterators over files: CSVIter (comma-separated rows) and MNISTIter (the idx files of MNIST),
with MXNet 1.9.1's batching rules for them (its C++ BatchLoader), which differ from NDArrayIter's:

* round_batch=True (the default): a short last batch is completed from the start of the file and
  `pad` counts the wrapped examples; the next epoch then continues after them instead of
  starting over (MXNet's overflow rule), so every example is seen equally often over epochs.
* round_batch=False: the short batch is returned with `pad` = the missing count; the padded rows
  hold whatever the previous batch left in the buffer, as MXNet's do.
* MNISTIter drops a short last batch and scales pixels by 1/256 (not 1/255), as MXNet does.

The files are read whole into memory when the iterator is made (these are small-data formats).
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from .base import DataBatch, DataDesc, DataIter

__all__ = ["CSVIter", "MNISTIter"]


def _open_maybe_gzip(path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def _read_csv(path, row_shape, dtype, what):
    width = int(np.prod(row_shape))
    rows = []
    with _open_maybe_gzip(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.decode().strip()
            if not line:
                continue
            try:
                values = [float(v) for v in line.split(",")]
            except ValueError as e:
                raise ValueError(f"CSVIter: {path}:{lineno}: {what} row is not comma-separated numbers ({e})") from e
            if len(values) != width:
                raise ValueError(f"CSVIter: {path}:{lineno}: {what} row has {len(values)} values, but "
                                 f"{what}_shape {tuple(row_shape)} needs {width}")
            rows.append(values)
    return np.asarray(rows, dtype=dtype).reshape((len(rows),) + tuple(row_shape))


class _BatchLoader(DataIter):
    """MXNet's BatchLoader over in-memory examples (see the module docstring for round_batch)."""

    def __init__(self, data, label, batch_size, round_batch, data_name, label_name, drop_last=False):
        super().__init__(batch_size)
        if len(data) != len(label):
            raise ValueError(f"{type(self).__name__}: {len(data)} data examples but {len(label)} labels")
        if round_batch and len(data) < batch_size:
            raise ValueError(f"{type(self).__name__}: round_batch needs at least batch_size={batch_size} "
                             f"examples, the input has {len(data)}")
        self._data, self._label = data, label
        self._round = round_batch
        self._drop_last = drop_last
        self._names = (data_name, label_name)
        self._pos = 0
        self._overflow = 0
        self._buf_data = np.zeros((batch_size,) + data.shape[1:], data.dtype)
        self._buf_label = np.zeros((batch_size,) + label.shape[1:], label.dtype)
        self._buf_index = np.zeros(batch_size, np.uint64)
        self._batch = None

    @property
    def provide_data(self):
        return [DataDesc(self._names[0], (self.batch_size,) + self._data.shape[1:], self._data.dtype.type)]

    @property
    def provide_label(self):
        return [DataDesc(self._names[1], (self.batch_size,) + self._label.shape[1:], self._label.dtype.type)]

    def reset(self):
        if self._round and self._overflow:
            self._overflow = 0      # the next epoch starts after the examples that filled the pad
        else:
            self._pos = 0

    def _take(self, slot):
        self._buf_data[slot] = self._data[self._pos]
        self._buf_label[slot] = self._label[self._pos]
        self._buf_index[slot] = self._pos
        self._pos += 1

    def iter_next(self):
        from ..ndarray import array
        if self._overflow:
            return False
        n, top = len(self._data), 0
        if self._drop_last and self._pos + self.batch_size > n:
            return False
        while self._pos < n and top < self.batch_size:
            self._take(top)
            top += 1
        if top == 0:
            return False
        pad = 0
        if top < self.batch_size:
            if self._round:
                self._pos = 0
                while top < self.batch_size:
                    self._take(top)
                    top += 1
                    self._overflow += 1
                pad = self._overflow
            else:
                pad = self.batch_size - top
        self._batch = DataBatch([array(self._buf_data, dtype=self._buf_data.dtype)],
                                [array(self._buf_label, dtype=self._buf_label.dtype)],
                                pad=pad, index=self._buf_index.copy())
        return True

    def next(self):
        if self.iter_next():
            return self._batch
        raise StopIteration

    def getdata(self):
        return self._batch.data

    def getlabel(self):
        return self._batch.label

    def getpad(self):
        return self._batch.pad

    def getindex(self):
        return self._batch.index


class CSVIter(_BatchLoader):
    """Rows of `data_csv` reshaped to `data_shape`; labels from `label_csv` (shape label_shape;
    zeros without a file). A label_shape of (1,) gives labels of shape (batch_size,)."""

    def __init__(self, data_csv, data_shape, label_csv=None, label_shape=(1,), batch_size=1, round_batch=True,
                 dtype="float32", data_name="data", label_name="softmax_label", **_ignored):
        data_shape, label_shape = tuple(data_shape), tuple(label_shape)
        data = _read_csv(data_csv, data_shape, dtype, "data")
        if label_csv is None:
            label = np.zeros((len(data),) + label_shape, dtype)
        else:
            label = _read_csv(label_csv, label_shape, dtype, "label")
        if label_shape == (1,):
            label = label.reshape(len(label))
        super().__init__(data, label, batch_size, round_batch, data_name, label_name)


def _read_idx(path, magic, what):
    with _open_maybe_gzip(path) as f:
        raw = f.read()
    ndim = {2051: 3, 2049: 1}[magic]
    header = 4 * (1 + ndim)
    found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if found != magic:
        raise ValueError(f"MNISTIter: {path}: magic number {found}, expected {magic} for an idx {what} file")
    if len(raw) < header:
        raise ValueError(f"MNISTIter: {path}: {len(raw)} bytes is too short for an idx {what} header")
    fields = struct.unpack(f">{1 + ndim}I", raw[:header])
    shape = fields[1:]
    size = int(np.prod(shape))
    if len(raw) - header < size:
        raise ValueError(f"MNISTIter: {path}: header says {shape} ({size} bytes) but only {len(raw) - header} follow")
    return np.frombuffer(raw, np.uint8, size, header).reshape(shape)


class MNISTIter(_BatchLoader):
    """MNIST's idx files (gzip-compressed ones too) as float32 images in [0, 1) and float32 labels.

    shuffle permutes the examples once, with numpy's RandomState(seed): the same seed gives the same
    order every run, but not MXNet's order (its C++ generator differs). num_parts/part_index give
    worker part_index its contiguous share for distributed training."""

    def __init__(self, image="./train-images-idx3-ubyte", label="./train-labels-idx1-ubyte", batch_size=128,
                 shuffle=True, flat=False, seed=0, silent=False, num_parts=1, part_index=0,
                 data_name="data", label_name="softmax_label", **_ignored):
        for path in (image, label):
            if not os.path.exists(path):
                raise FileNotFoundError(f"MNISTIter: no such file {path!r}")
        images = _read_idx(image, 2051, "image")
        labels = _read_idx(label, 2049, "label")
        if len(images) != len(labels):
            raise ValueError(f"MNISTIter: {image} has {len(images)} images but {label} has {len(labels)} labels")
        if not 0 <= part_index < num_parts:
            raise ValueError(f"MNISTIter: part_index {part_index} is not in [0, num_parts={num_parts})")
        step = len(images) // num_parts
        lo, hi = part_index * step, (part_index + 1) * step if part_index + 1 < num_parts else len(images)
        images, labels = images[lo:hi], labels[lo:hi]
        if shuffle:
            order = np.random.RandomState(seed).permutation(len(images))
            images, labels = images[order], labels[order]
        data = images.astype(np.float32) * np.float32(1.0 / 256)
        data = data.reshape(len(data), -1) if flat else data.reshape((len(data), 1) + data.shape[1:])
        super().__init__(data, labels.astype(np.float32), batch_size, False, data_name, label_name,
                         drop_last=True)
