"""IntervalSampler as MXNet 1.9's gluon.contrib.data has it (it differs from graphc's
gluon.data.IntervalSampler, an addition of graphc's own: that one refuses interval == length)."""
from __future__ import annotations

from ...data.sampler import Sampler

__all__ = ["IntervalSampler"]


class IntervalSampler(Sampler):
    """0, interval, 2*interval, ... below length; with rollover, then the same from 1, 2, ...
    until every index came once (IntervalSampler(6, 3) gives 0 3 1 4 2 5): the order that lets
    a batch of `interval` parallel streams read consecutive chunks of a corpus (truncated BPTT).
    interval may equal length. len() is the number of indices given, so without rollover it is
    ceil(length / interval) (MXNet 1.9 says `length` there, more than it yields)."""

    def __init__(self, length, interval, rollover=True):
        if interval > length:
            raise ValueError(f"Interval {interval} must be smaller than or equal to length {length}")
        self._length = int(length)
        self._interval = int(interval)
        self._rollover = rollover

    def __iter__(self):
        for start in range(self._interval if self._rollover else 1):
            yield from range(start, self._length, self._interval)

    def __len__(self):
        return self._length if self._rollover else len(range(0, self._length, self._interval))
