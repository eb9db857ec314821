"""Iterators made of other iterators: ResizeIter (a fixed number of batches per epoch) and
PrefetchingIter (the next batch is read on a thread while the current one is used).

PrefetchingIter owns one daemon thread per wrapped iterator; `close()` (also called by __del__
and on exit from a `with` block) stops and joins them, so dropping an iterator never leaves a
thread blocked on an event."""
from __future__ import annotations

import threading

from .base import DataBatch, DataDesc, DataIter

__all__ = ["ResizeIter", "PrefetchingIter"]


class _CurrentBatchIter(DataIter):
    """An iterator whose iter_next leaves the batch it produced in `current_batch`: the parts
    of that batch are what getdata/getlabel/getindex/getpad give."""

    def getdata(self):
        return self.current_batch.data

    def getlabel(self):
        return self.current_batch.label

    def getindex(self):
        return self.current_batch.index

    def getpad(self):
        return self.current_batch.pad


class ResizeIter(_CurrentBatchIter):
    """`size` batches per epoch from `data_iter`, restarting it when it runs out first; with
    reset_internal=False, reset() does not restart the inner iterator (the next epoch carries on
    where this one stopped)."""

    def __init__(self, data_iter, size, reset_internal=True):
        super().__init__()
        self.data_iter = data_iter
        self.size = size
        self.reset_internal = reset_internal
        self.cur = 0
        self.current_batch = None
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.batch_size = data_iter.batch_size
        if hasattr(data_iter, "default_bucket_key"):
            self.default_bucket_key = data_iter.default_bucket_key

    def reset(self):
        self.cur = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self):
        if self.cur == self.size:
            return False
        try:
            self.current_batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            self.current_batch = self.data_iter.next()
        self.cur += 1
        return True


class _PrefetchState:
    """What a reader thread shares with its PrefetchingIter: a slot per iterator and the two
    events that hand it back and forth (taken: read the next batch; ready: the slot is full)."""

    def __init__(self, iters):
        self.iters = iters
        self.started = True
        self.data_ready = [threading.Event() for _ in iters]
        self.data_taken = [threading.Event() for _ in iters]
        for e in self.data_taken:
            e.set()
        self.next_batch = [None] * len(iters)
        self.errors = [None] * len(iters)


def _prefetch(state, i):
    while True:
        state.data_taken[i].wait()
        if not state.started:
            break
        try:
            state.next_batch[i], state.errors[i] = state.iters[i].next(), None
        except StopIteration:
            state.next_batch[i] = None
        except Exception as e:  # noqa: BLE001 - re-raised in the consumer's thread
            state.next_batch[i], state.errors[i] = None, e
        state.data_taken[i].clear()
        state.data_ready[i].set()


class PrefetchingIter(_CurrentBatchIter):
    """Reads ahead from one or several iterators (their batches are joined: data lists and label
    lists concatenated); rename_data/rename_label are per-iterator {old name: new name} maps."""

    def __init__(self, iters, rename_data=None, rename_label=None):
        super().__init__()
        if not isinstance(iters, list):
            iters = [iters]
        self.n_iter = len(iters)
        if self.n_iter == 0:
            raise ValueError("PrefetchingIter: no iterators given")
        self.iters = iters
        self.rename_data = rename_data
        self.rename_label = rename_label
        self.batch_size = self.provide_data[0][1][0]
        self.current_batch = None
        # the threads see only this shared state, never the iterator itself: an iterator that is
        # dropped without close() is still collected, and its __del__ stops them
        self._state = _PrefetchState(iters)
        self.prefetch_threads = [threading.Thread(target=_prefetch, args=(self._state, i), daemon=True,
                                                  name=f"graphc-prefetch-{i}") for i in range(self.n_iter)]
        for t in self.prefetch_threads:
            t.start()

    @property
    def started(self):
        return self._state.started

    def close(self):
        """Stop and join the reader threads (idempotent)."""
        state = getattr(self, "_state", None)
        if state is None or not state.started:
            return
        state.started = False
        for e in state.data_taken:
            e.set()
        for t in self.prefetch_threads:
            t.join()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _renamed(self, descs_of, renames):
        if renames is None:
            return sum([descs_of(i) for i in self.iters], [])
        return sum([[DataDesc(r[x.name], x.shape, x.dtype) if isinstance(x, DataDesc) else DataDesc(*x)
                     for x in descs_of(i)] for r, i in zip(renames, self.iters)], [])

    @property
    def provide_data(self):
        return self._renamed(lambda i: i.provide_data, self.rename_data)

    @property
    def provide_label(self):
        return self._renamed(lambda i: i.provide_label, self.rename_label)

    def reset(self):
        st = self._state
        if not st.started:
            raise RuntimeError("PrefetchingIter: reset() after close()")
        for e in st.data_ready:
            e.wait()
        for it in self.iters:
            it.reset()
        for e in st.data_ready:
            e.clear()
        for e in st.data_taken:
            e.set()

    def iter_next(self):
        st = self._state
        if not st.started:
            raise RuntimeError("PrefetchingIter: next() after close()")
        for e in st.data_ready:
            e.wait()
        for err in st.errors:
            if err is not None:
                raise err
        batches = st.next_batch
        if batches[0] is None:
            if any(b is not None for b in batches):
                raise ValueError("PrefetchingIter: the iterators ran out after different numbers of batches")
            return False
        pads = {b.pad for b in batches}
        if len(pads) > 1:
            raise ValueError(f"PrefetchingIter: the iterators' batches have different pads {sorted(pads)}")
        self.current_batch = DataBatch(sum([list(b.data) for b in batches], []),
                                       sum([list(b.label or []) for b in batches], []),
                                       batches[0].pad, batches[0].index,
                                       provide_data=self.provide_data, provide_label=self.provide_label)
        for e in st.data_ready:
            e.clear()
        for e in st.data_taken:
            e.set()
        return True

    def next(self):
        if self.iter_next():
            return self.current_batch
        raise StopIteration

