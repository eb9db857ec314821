"""mx.io.ImageRecordIter: NCHW float32 batches from an image RecordIO file, with MXNet 1.9.1's
C++ pipeline semantics (ImageRecordIOParser2 + the default augmenter):

* each record is an IRHeader + encoded image (graphc.formats.recordio), decoded to RGB (gray
  when data_shape has one channel);
* `resize` > 0 scales the shorter edge to it (the longer one by integer division); an image
  still smaller than data_shape is scaled up, rows first, then columns, keeping its aspect
  ratio; all resizing is OpenCV's bilinear (graphc.image.cv_resize), so pixels equal MXNet's;
* crop to data_shape: centred, or at a uniformly random place with rand_crop; rand_mirror
  flips half the images left-right;
* out = (pixel - mean_c) * (scale / std_c), in float32 as MXNet computes it;
* round_batch (default): a short last batch is completed from the start of the data, `pad`
  counts the filler, and the next epoch starts after the filler (MXNet's overflow rule; with
  shuffle every epoch starts at the head of its own new order);
  round_batch=False returns the short batch with its tail zeroed and `pad` = the missing count
  (MXNet says pad 0 and leaves stale rows there);
* num_parts/part_index shard the file by bytes as dmlc's InputSplit does (part k holds the
  records that start in [k, k+1) * ceil(file size / num_parts), rounded up to 4 bytes), so
  graphc's workers read the same records as MXNet's would.

Decoding and augmentation run on a thread pool of `preprocess_threads` (Pillow's decoders and
the numpy resize release the GIL), one batch ahead of the caller. Random choices (shuffle, crop
place, mirror) are drawn in the calling thread from a generator seeded with `seed`, so results
do not depend on the thread count. They are not MXNet's random numbers: only augmentation-free
batches equal MXNet's exactly.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..formats import recordio as _fmt
from .base import DataBatch, DataDesc, DataIter

__all__ = ["ImageRecordIter", "part_offsets"]

# parameters MXNet accepts that graphc has no implementation for: refused, never ignored
_UNSUPPORTED = ("max_rotate_angle", "max_shear_ratio", "max_crop_size", "min_crop_size", "max_random_scale",
                "min_random_scale", "max_aspect_ratio", "max_img_size", "min_img_size", "random_h", "random_s",
                "random_l", "rotate", "fill_value", "pad", "mean_img", "random_resized_crop", "brightness",
                "contrast", "saturation", "pca_noise")


def part_offsets(offsets, file_size, part_index, num_parts):
    """The record offsets that fall in part `part_index` of `num_parts` byte ranges (dmlc's split)."""
    if not 0 <= part_index < num_parts:
        raise ValueError(f"ImageRecordIter: part_index {part_index} must be in [0, num_parts={num_parts})")
    step = -(-file_size // num_parts)
    step = -(-step // 4) * 4
    begin, end = min(step * part_index, file_size), min(step * (part_index + 1), file_size)
    return [o for o in offsets if begin <= o < end]


_END = object()      # the epoch has no more batches


class _Pending:
    """A batch whose images are decoding on the pool."""

    def __init__(self, data, futures, pad, next_start):
        self.data, self.futures, self.pad, self.next_start = data, futures, pad, next_start

    def result(self, it):
        from ..ndarray import NDArray
        label = np.zeros(it.provide_label[0].shape, np.float32)
        for row, future in enumerate(self.futures):
            label[row] = future.result()
        if self.next_start is not None:
            it._start = self.next_start
        return DataBatch([NDArray(self.data)], [NDArray(label)], pad=self.pad)


class _Failed:
    """A batch that cannot be made; the error is raised when the batch is asked for."""

    def __init__(self, error):
        self.error = error

    def result(self, it):
        raise self.error


def _scale_up_to(img, rows, cols, resize):
    """MXNet's growth of an image smaller than the crop: rows first, then columns."""
    h, w = img.shape[:2]
    if h < rows:
        img = resize(img, w * rows // h, rows)
        h, w = img.shape[:2]
    if w < cols:
        img = resize(img, cols, h * cols // w)
    return img


class ImageRecordIter(DataIter):
    """See the module docstring. Arguments are MXNet's names."""

    def __init__(self, path_imgrec, data_shape, batch_size, path_imgidx=None, label_width=1, shuffle=False,
                 seed=0, rand_crop=False, rand_mirror=False, resize=-1, mean_r=0.0, mean_g=0.0, mean_b=0.0,
                 mean_a=0.0, std_r=1.0, std_g=1.0, std_b=1.0, std_a=1.0, scale=1.0, preprocess_threads=4,
                 round_batch=True, part_index=0, num_parts=1, data_name="data", label_name="softmax_label",
                 dtype="float32", inter_method=1, path_imglist=None, **kwargs):
        super().__init__(batch_size)
        unsupported = sorted(k for k in kwargs if k in _UNSUPPORTED)
        unknown = sorted(k for k in kwargs if k not in _UNSUPPORTED and k not in ("prefetch_buffer", "verbose",
                                                                                     "ctx", "num_decode_threads"))
        if unsupported:
            raise NotImplementedError(f"ImageRecordIter: graphc does not implement {unsupported}; use "
                                      f"mx.image.ImageIter with augmenters for these")
        if unknown:
            raise TypeError(f"ImageRecordIter: unknown arguments {unknown}")
        data_shape = tuple(int(d) for d in data_shape)
        if len(data_shape) != 3 or data_shape[0] not in (1, 3):
            raise ValueError(f"ImageRecordIter: data_shape must be (channels, height, width) with 1 or 3 "
                             f"channels, got {data_shape}")
        if inter_method != 1:
            raise NotImplementedError(f"ImageRecordIter: only inter_method=1 (bilinear, MXNet's default) is "
                                      f"implemented, got {inter_method}")
        if dtype != "float32":
            raise NotImplementedError(f"ImageRecordIter: only dtype='float32' is implemented, got {dtype!r}")
        self.path_imgrec = os.fspath(path_imgrec)
        self.data_shape = data_shape
        self.label_width = int(label_width)
        self.shuffle = shuffle
        self.rand_crop = rand_crop
        self.rand_mirror = rand_mirror
        self.resize = int(resize)
        channels = data_shape[0]
        self._mean = np.array([mean_r, mean_g, mean_b][:channels] if channels == 3 else [mean_r], np.float32)
        self._std = np.array([std_r, std_g, std_b][:channels] if channels == 3 else [std_r], np.float32)
        self._mult = (np.float32(scale) / self._std).astype(np.float32)
        self.round_batch = round_batch
        self._rng = np.random.default_rng(seed)
        self._labels_by_id = self._read_label_list(path_imglist) if path_imglist else None

        self._fh = open(self.path_imgrec, "rb")
        self._reader = _fmt.RecordReader(self._fh, self.path_imgrec)
        offsets = _fmt.record_offsets(self._fh, self.path_imgrec)
        size = os.path.getsize(self.path_imgrec)
        self._offsets = part_offsets(offsets, size, part_index, num_parts)
        if not self._offsets:
            raise ValueError(f"ImageRecordIter: {self.path_imgrec} part {part_index} of {num_parts} holds no records")
        self._pool = ThreadPoolExecutor(max(1, int(preprocess_threads)), thread_name_prefix="graphc-imgrec")
        label_shape = (batch_size,) if self.label_width == 1 else (batch_size, self.label_width)
        self.provide_data = [DataDesc(data_name, (batch_size,) + data_shape, np.float32)]
        self.provide_label = [DataDesc(label_name, label_shape, np.float32)]
        self._start = 0           # where the next epoch begins (after last epoch's filler)
        self._order = None
        self._cursor = 0
        self._prepared_end = False
        self._pending = None
        self.reset()

    @staticmethod
    def _read_label_list(path):
        from ..image.image_iter import read_image_list
        labels, _ = read_image_list(path)
        return {key: label for key, (label, _) in labels.items()}

    # -- epochs -------------------------------------------------------------------------------
    # The batch after the one being returned is already decoding on the pool (MXNet's iterator
    # prefetches too). Everything that decides a batch (cursor, random draws, epoch end) happens
    # here in the caller's thread when it is prepared; where the next epoch starts is taken from
    # a batch only when it is returned, so a reset() between the two sees what the caller saw.
    def reset(self):
        n = len(self._offsets)
        self._order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        self._cursor = self._start
        self._start = 0
        self._prepared_end = False
        self._pending = None

    def close(self):
        """Release the file and the worker threads."""
        self._pending = None
        self._pool.shutdown(wait=True)
        self._fh.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn things down already
            pass

    def next(self):
        batch = self._pending if self._pending is not None else self._prepare()
        if batch is _END:
            self._pending = _END
            raise StopIteration
        self._pending = self._prepare()
        return batch.result(self)

    def _prepare(self):
        """Start decoding the next batch; _END after the epoch's last one."""
        if self._prepared_end or self._cursor >= len(self._order):
            return _END
        take = list(self._order[self._cursor:self._cursor + self.batch_size])
        self._cursor += len(take)
        pad = self.batch_size - len(take)
        next_start = None
        if pad and self.round_batch:
            if pad > len(self._order):
                return _Failed(ValueError(
                    f"ImageRecordIter: batch_size {self.batch_size} needs {pad} filler records but "
                    f"{self.path_imgrec} (this part) has only {len(self._order)}; number of input images must "
                    f"be bigger than the batch size"))
            take += list(self._order[:pad])
            # the next epoch skips the filler it already saw; a shuffled epoch has a new order, in
            # which skipping would drop unseen records, so it starts from its beginning
            next_start = 0 if self.shuffle else pad
            self._prepared_end = True
        records = []
        for i in take:
            self._reader.seek(self._offsets[i])
            records.append((self._reader.read(), self._offsets[i]))
        draws = self._rng.random((len(take), 3))
        data = np.zeros(self.provide_data[0].shape, np.float32)
        # each worker writes its own row of `data` and returns the label
        futures = [self._pool.submit(self._process, rec, draw, row) for rec, draw, row in zip(records, draws, data)]
        return _Pending(data, futures, pad, next_start)

    # -- one image (runs on a worker thread) ----------------------------------------------------
    def _process(self, record_at, draw, out):
        """Decode, resize, crop, mirror and normalise one record into `out` (C, H, W); its label."""
        from ..image import codec
        from ..image.cv_resize import resize_bilinear
        record, offset = record_at
        where = f"{self.path_imgrec}: record at byte {offset}"
        header, payload = _fmt.unpack(record, where)
        label = self._label(header, where)
        channels, rows, cols = self.data_shape
        try:
            img = codec.decode(payload, flag=1 if channels == 3 else 0)
        except ValueError as exc:
            raise ValueError(f"ImageRecordIter: {where}: {exc}") from None
        if self.resize > 0:
            h, w = img.shape[:2]
            if h > w:
                img = resize_bilinear(img, self.resize, self.resize * h // w)
            else:
                img = resize_bilinear(img, self.resize * w // h, self.resize)
        img = _scale_up_to(img, rows, cols, resize_bilinear)
        h, w = img.shape[:2]
        if self.rand_crop:
            y0 = min(int(draw[0] * (h - rows + 1)), h - rows)
            x0 = min(int(draw[1] * (w - cols + 1)), w - cols)
        else:
            y0, x0 = (h - rows) // 2, (w - cols) // 2
        img = img[y0:y0 + rows, x0:x0 + cols]
        if self.rand_mirror and draw[2] < 0.5:
            img = img[:, ::-1]
        chw = np.transpose(img, (2, 0, 1))
        np.subtract(chw, self._mean[:, None, None], out=out)
        np.multiply(out, self._mult[:, None, None], out=out)
        return label

    def _label(self, header, where):
        if self._labels_by_id is not None:
            if header.id not in self._labels_by_id:
                raise ValueError(f"ImageRecordIter: {where} has id {header.id}, which path_imglist does not list")
            label = self._labels_by_id[header.id]
        else:
            label = np.atleast_1d(np.asarray(header.label, np.float32))
        if label.size != self.label_width:
            raise ValueError(f"ImageRecordIter: {where} provides {label.size} labels but label_width is "
                             f"{self.label_width}")
        return label[0] if self.label_width == 1 else label
