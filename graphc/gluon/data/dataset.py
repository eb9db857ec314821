"""Datasets (`gluon.data.Dataset` and friends): indexable collections of samples.

A dataset only answers `len(ds)` and `ds[i]`; everything else here (transform, filter, shard,
take, sample) builds a new dataset that views the old one. Nothing in this module batches,
shuffles or knows about workers: that is the DataLoader's job.
"""
from __future__ import annotations

import numpy as np

from ...ndarray import NDArray

__all__ = ["Dataset", "SimpleDataset", "ArrayDataset"]


class Dataset:
    """Abstract dataset: subclasses implement `__getitem__(idx)` and `__len__()`."""

    def __getitem__(self, idx):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __iter__(self):
        # by length, not by waiting for an IndexError: NDArray indexing past the end raises
        # graphc's ShapeError, which would end `for x in dataset` with an error
        for i in range(len(self)):
            yield self[i]

    def filter(self, fn):
        """The samples for which `fn(sample)` is true, in order (evaluated once, now)."""
        from .sampler import FilterSampler
        return _SampledDataset(self, FilterSampler(fn, self))

    def shard(self, num_shards, index):
        """Part `index` of `num_shards` contiguous, near-equal parts; the first
        `len(self) % num_shards` parts hold one extra sample."""
        if num_shards <= 0:
            raise ValueError(f"shard: number of shards must be greater than 0, got {num_shards}")
        if not 0 <= index < num_shards:
            raise ValueError(f"shard: index {index} is out of bounds for {num_shards} shards")
        base, rest = divmod(len(self), num_shards)
        start = base * index + min(index, rest)
        length = base + (1 if index < rest else 0)
        from .sampler import SequentialSampler
        return _SampledDataset(self, SequentialSampler(length, start))

    def take(self, count):
        """The first `count` samples (all of them when count is None or too large)."""
        if count is None or count > len(self):
            count = len(self)
        from .sampler import SequentialSampler
        return _SampledDataset(self, SequentialSampler(count))

    def sample(self, sampler):
        """The samples at the indices `sampler` yields, in that order."""
        from .sampler import Sampler
        if not isinstance(sampler, Sampler):
            raise TypeError(f"Invalid sampler type: {type(sampler)}. Expected gluon.data.Sampler instead.")
        return _SampledDataset(self, sampler)

    def transform(self, fn, lazy=True):
        """A dataset whose samples are `fn(sample)`; a tuple sample is unpacked, `fn(*sample)`.
        lazy=True applies fn on each access; lazy=False applies it to every sample now."""
        trans = _LazyTransformDataset(self, fn)
        if lazy:
            return trans
        return SimpleDataset([trans[i] for i in range(len(trans))])

    def transform_first(self, fn, lazy=True):
        """Like transform, but fn sees only the first element of each sample (the data, not
        the label); the other elements pass through unchanged."""
        return self.transform(_TransformFirst(fn), lazy)


class SimpleDataset(Dataset):
    """A dataset over any indexable sequence (a list, a numpy array, ...)."""

    def __init__(self, data):
        self._data = data

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        return self._data[idx]


class ArrayDataset(Dataset):
    """Zips several arrays (NDArrays, numpy arrays, lists) of equal length: sample i is
    `(a[i], b[i], ...)`, or just `a[i]` when there is one array. A 1-D NDArray is kept as numpy,
    as in MXNet, so its samples are numpy scalars rather than 0-d arrays."""

    def __init__(self, *args):
        if not args:
            raise ValueError("ArrayDataset needs at least 1 array")
        self._length = len(args[0])
        self._data = []
        for i, data in enumerate(args):
            if len(data) != self._length:
                lengths = ", ".join(f"array[{j}] has length {len(a)}" for j, a in enumerate(args))
                raise ValueError(f"ArrayDataset: all arrays must have the same length, but {lengths}")
            if isinstance(data, NDArray) and data.ndim == 1:
                data = data.asnumpy()
            self._data.append(data)

    def __len__(self):
        return self._length

    def __getitem__(self, idx):
        if len(self._data) == 1:
            return _index(self._data[0], idx)
        return tuple(_index(data, idx) for data in self._data)


def _index(data, idx):
    # An NDArray row straight from numpy, a copy like `data[idx]` gives, without the cost of an
    # operator call per sample (which would dominate loading small samples such as MNIST's)
    if isinstance(data, NDArray) and isinstance(idx, (int, np.integer)):
        return NDArray(data._data[idx].copy(), data.context)
    return data[idx]


class _LazyTransformDataset(Dataset):
    def __init__(self, data, fn):
        self._data = data
        self._fn = fn

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        item = self._data[idx]
        if isinstance(item, tuple):
            return self._fn(*item)
        return self._fn(item)


class _TransformFirst:
    """A named callable (not a closure) so a transformed dataset can be pickled to spawn workers."""

    def __init__(self, fn):
        self._fn = fn

    def __call__(self, x, *args):
        if args:
            return (self._fn(x),) + args
        return self._fn(x)


class _SampledDataset(Dataset):
    """The samples of `dataset` at the indices a sampler yields (drawn once, at creation)."""

    def __init__(self, dataset, sampler):
        self._dataset = dataset
        self._sampler = sampler
        self._indices = list(iter(sampler))

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, idx):
        return self._dataset[self._indices[idx]]
