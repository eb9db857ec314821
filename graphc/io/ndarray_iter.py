"""NDArrayIter: batches over in-memory arrays, with MXNet 1.9.1's exact treatment of the last,
short batch (`last_batch_handle`):

* 'pad': the short batch is filled up with examples from the start (tiled when the batch is
  bigger than the data) and `DataBatch.pad` says how many are filler;
* 'discard': the short batch is dropped;
* 'roll_over': the short batch is held back and becomes the head of the first batch of the next
  epoch (whose `pad` then says how many examples came from the previous epoch).

The cursor arithmetic is MXNet's (cursor runs from -batch_size; reset() under 'roll_over' leaves
it negative by the carried count), so batch contents, pads and epoch lengths agree with MXNet's
call for call, shuffles included: shuffling draws from numpy's global RNG as MXNet does.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .base import DataBatch, DataDesc, DataIter

__all__ = ["NDArrayIter"]

_HANDLES = ("pad", "discard", "roll_over")


def _named_arrays(data, allow_empty, default_name):
    """data (an array, a list of arrays or a dict name -> array) -> sorted [(name, NDArray)]; a
    list of several is named '_0_<default>', '_1_<default>', ... as in MXNet."""
    from ..ndarray import NDArray, array
    if data is None:
        if not allow_empty:
            raise ValueError("NDArrayIter: data must not be None")
        data = []
    if isinstance(data, (np.ndarray, NDArray)):
        data = [data]
    if isinstance(data, (list, tuple)):
        if not data and not allow_empty:
            raise ValueError("NDArrayIter: data is an empty list")
        if len(data) == 1:
            data = OrderedDict([(default_name, data[0])])
        else:
            data = OrderedDict((f"_{i}_{default_name}", d) for i, d in enumerate(data))
    if not isinstance(data, dict):
        raise TypeError(f"NDArrayIter: input must be an NDArray, numpy.ndarray, a list of them or a dict "
                        f"of them, got {type(data).__name__}")
    out = {}
    for k, v in data.items():
        if isinstance(v, NDArray):
            out[k] = v
            continue
        try:
            out[k] = array(v)
        except Exception as e:  # noqa: BLE001 - re-raised with the name of the bad input
            raise TypeError(f"NDArrayIter: invalid type {type(v).__name__} for {k!r}, should be an NDArray "
                            f"or numpy.ndarray") from e
    return sorted(out.items())


class NDArrayIter(DataIter):
    """Iterates over `data` and `label` (array, list or dict) in batches of `batch_size`;
    see the module docstring for `last_batch_handle`."""

    def __init__(self, data, label=None, batch_size=1, shuffle=False, last_batch_handle="pad",
                 data_name="data", label_name="softmax_label", layout="NCHW"):
        super().__init__(batch_size)
        if last_batch_handle not in _HANDLES:
            raise ValueError(f"NDArrayIter: last_batch_handle must be one of {_HANDLES}, got {last_batch_handle!r}")
        self.data = _named_arrays(data, False, data_name)
        self.label = _named_arrays(label, True, label_name)
        self.layout = layout
        self._axis = layout.find("N")
        n = self.data[0][1].shape[self._axis]
        # The first data array sets the example count; longer arrays are read up to it (MXNet
        # iterates them so too: a label table may cover more examples than a data slice).
        for name, arr in self.data + self.label:
            if arr.shape[self._axis] < n:
                raise ValueError(f"NDArrayIter: {name!r} has {arr.shape[self._axis]} examples along axis "
                                 f"{self._axis}, but {self.data[0][0]!r} has {n}")
        self.idx = np.arange(n)
        self.shuffle = shuffle
        self.last_batch_handle = last_batch_handle
        self.batch_size = batch_size
        self.cursor = -batch_size
        self.num_data = n
        self._cache_data = None
        self._cache_label = None
        self.reset()
        self.data_list = [x[1] for x in self.data] + [x[1] for x in self.label]
        self.num_source = len(self.data_list)

    def _descs(self, source):
        return [DataDesc(k, tuple(v.shape[:self._axis]) + (self.batch_size,) + tuple(v.shape[self._axis + 1:]),
                         v.dtype, layout=self.layout) for k, v in source]

    @property
    def provide_data(self):
        return self._descs(self.data)

    @property
    def provide_label(self):
        return self._descs(self.label)

    def hard_reset(self):
        """Back to the start, forgetting any rolled-over examples."""
        if self.shuffle:
            self._shuffle_data()
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None

    def reset(self):
        if self.shuffle:
            self._shuffle_data()
        if self.last_batch_handle == "roll_over" and self.num_data - self.batch_size < self.cursor < self.num_data:
            # the examples of the held-back short batch count as the head of the next epoch
            self.cursor = self.cursor - self.num_data - self.batch_size
        else:
            self.cursor = -self.batch_size

    def iter_next(self):
        self.cursor += self.batch_size
        return self.cursor < self.num_data

    def next(self):
        if not self.iter_next():
            raise StopIteration
        data = self.getdata()
        label = self.getlabel()
        if data[0].shape[self._axis] != self.batch_size:
            # a short batch ('discard' drops it, 'roll_over' hands it to the next epoch)
            self._cache_data = data
            self._cache_label = label
            raise StopIteration
        return DataBatch(data=data, label=label, pad=self.getpad(), index=None)

    # -- slicing ---------------------------------------------------------------------------------
    def _getdata(self, source, start=None, end=None):
        start = 0 if start is None else start
        if end is None:
            end = source[0][1].shape[self._axis] if source else 0
        return [x.slice_axis(axis=self._axis, begin=start, end=end) for _, x in source]

    def _concat(self, first, second):
        from ..ndarray import concat
        if not first or not second:
            return first if first else second
        return [concat(a, b, dim=self._axis) for a, b in zip(first, second)]

    def _tile(self, data, repeats):
        from ..ndarray import tile
        out = []
        for d in data:
            reps = [1] * d.ndim
            reps[0] = repeats
            out.append(tile(d, reps=tuple(reps)))
        return out

    def _batchify(self, source):
        if self.cursor >= self.num_data:
            raise RuntimeError("NDArrayIter: the iterator is exhausted; call reset()")
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            cached = self._cache_data if self._cache_data is not None else self._cache_label
            if cached is None:
                raise RuntimeError("NDArrayIter: roll_over expected the previous epoch's short batch")
            if self.cursor + self.batch_size > self.num_data:
                raise ValueError(f"NDArrayIter: roll_over cannot fill a batch of {self.batch_size} from "
                                 f"{self.num_data} examples (MXNet fails here too)")
            rest = self._getdata(source, end=self.cursor + self.batch_size)
            if self._cache_data is not None:
                self._cache_data = None
            else:
                self._cache_label = None
            return self._concat(cached, rest)
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            pad = self.batch_size - self.num_data + self.cursor
            first = self._getdata(source, start=self.cursor)
            if pad > self.num_data:
                second = self._tile(self._getdata(source, end=self.num_data), pad // self.num_data)
                if pad % self.num_data:
                    second = self._concat(second, self._getdata(source, end=pad % self.num_data))
            else:
                second = self._getdata(source, end=pad)
            return self._concat(first, second)
        end = min(self.cursor + self.batch_size, self.num_data)
        return self._getdata(source, self.cursor, end)

    def getdata(self):
        return self._batchify(self.data)

    def getlabel(self):
        return self._batchify(self.label)

    def getpad(self):
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            return self.cursor + self.batch_size - self.num_data
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            return -self.cursor
        return 0

    def _shuffle_data(self):
        from ..ndarray import array
        # MXNet re-creates the arrays with nd.array's default dtype (float32), and so does this
        np.random.shuffle(self.idx)
        self.data = [(k, array(v.asnumpy()[self.idx], v.context)) for k, v in self.data]
        self.label = [(k, array(v.asnumpy()[self.idx], v.context)) for k, v in self.label]
