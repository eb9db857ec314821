"""Samplers: iterables of dataset indices (or, for BatchSampler, of lists of indices).

RandomSampler draws its permutation from `graphc.random.generator()`, so `mx.random.seed(n)`
makes shuffling repeatable (MXNet 1.x used numpy's global state; graphc has one RNG).
"""
from __future__ import annotations

from ... import random as _random

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "FilterSampler", "BatchSampler",
           "IntervalSampler", "SplitSampler"]

_LAST_BATCH_MODES = ("keep", "discard", "rollover")


class Sampler:
    """Base class: subclasses implement `__iter__` and `__len__`."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


class SequentialSampler(Sampler):
    """start, start+1, ..., start+length-1."""

    def __init__(self, length, start=0):
        self._length = int(length)
        self._start = int(start)

    def __iter__(self):
        return iter(range(self._start, self._start + self._length))

    def __len__(self):
        return self._length


class RandomSampler(Sampler):
    """A fresh random permutation of range(length) on every pass."""

    def __init__(self, length):
        self._length = int(length)

    def __iter__(self):
        # drawn eagerly (not in a generator) so the draw happens when iteration starts
        return iter(_random.generator().permutation(self._length).tolist())

    def __len__(self):
        return self._length


class FilterSampler(Sampler):
    """The indices i of `dataset` for which `fn(dataset[i])` is true (evaluated once, now)."""

    def __init__(self, fn, dataset):
        self._fn = fn
        self._dataset = dataset
        self._indices = [i for i in range(len(dataset)) if fn(dataset[i])]

    def __iter__(self):
        return iter(self._indices)

    def __len__(self):
        return len(self._indices)


class IntervalSampler(Sampler):
    """0, interval, 2*interval, ... < length; with rollover, then 1, 1+interval, ..., and so
    on until every index was visited once: IntervalSampler(13, 3) gives
    0 3 6 9 12 1 4 7 10 2 5 8 11. Without rollover only the first pass."""

    def __init__(self, length, interval, rollover=True):
        if not interval < length:
            raise ValueError(f"IntervalSampler: interval {interval} must be smaller than length {length}")
        self._length = int(length)
        self._interval = int(interval)
        self._rollover = rollover

    def __iter__(self):
        for offset in range(self._interval if self._rollover else 1):
            yield from range(offset, self._length, self._interval)

    def __len__(self):
        if self._rollover:
            return self._length
        return len(range(0, self._length, self._interval))


class SplitSampler(Sampler):
    """The part `part_index` of `num_parts` equal, contiguous parts of range(length): the data
    shard of one worker in distributed training, as in MXNet's distributed-training example
    (`SplitSampler(len(data), kv.num_workers, kv.rank)`). Each part has length // num_parts
    indices (the remainder is never sampled), so every worker runs the same number of batches,
    which synchronous training needs. `shuffle` (the example's behaviour) draws a new order of
    the part's indices on every pass from graphc.random."""

    def __init__(self, length, num_parts=1, part_index=0, shuffle=True):
        length, num_parts, part_index = int(length), int(num_parts), int(part_index)
        if num_parts < 1:
            raise ValueError(f"SplitSampler: num_parts must be at least 1, got {num_parts}")
        if not 0 <= part_index < num_parts:
            raise ValueError(f"SplitSampler: part_index must be in [0, {num_parts}), got {part_index}")
        self._part_len = length // num_parts
        self._start = self._part_len * part_index
        self._shuffle = shuffle

    def __iter__(self):
        if not self._shuffle:
            return iter(range(self._start, self._start + self._part_len))
        order = _random.generator().permutation(self._part_len)
        return iter((order + self._start).tolist())

    def __len__(self):
        return self._part_len


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of `batch_size`.

    last_batch says what happens to a final, short batch: 'keep' yields it, 'discard' drops it,
    'rollover' keeps its indices and puts them first in the next pass."""

    def __init__(self, sampler, batch_size, last_batch="keep"):
        if last_batch not in _LAST_BATCH_MODES:
            # MXNet raises this only when iteration reaches the last batch; earlier is kinder
            raise ValueError(f"last_batch must be one of 'keep', 'discard', or 'rollover', but got {last_batch}")
        if int(batch_size) <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive integer, got {batch_size}")
        self._sampler = sampler
        self._batch_size = int(batch_size)
        self._last_batch = last_batch
        self._prev = []

    def __iter__(self):
        batch, self._prev = self._prev, []
        for i in self._sampler:
            batch.append(i)
            if len(batch) == self._batch_size:
                yield batch
                batch = []
        if batch:
            if self._last_batch == "keep":
                yield batch
            elif self._last_batch == "rollover":
                self._prev = batch

    def __len__(self):
        if self._last_batch == "keep":
            return (len(self._sampler) + self._batch_size - 1) // self._batch_size
        if self._last_batch == "discard":
            return len(self._sampler) // self._batch_size
        return (len(self._prev) + len(self._sampler)) // self._batch_size
