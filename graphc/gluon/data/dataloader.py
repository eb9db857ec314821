"""DataLoader: turns a Dataset into an iterator of batches, in this process or in workers.

Batches are the same with and without workers, random augmentations included: each pass draws
one seed from `graphc.random.generator()` when it starts, and batch k is loaded with the global
generator temporarily set to one derived from (that seed, k), whichever process loads it. So
`mx.random.seed(n)` repeats shuffling and augmentation, and forked workers do not repeat each
other's random draws. (With thread_pool=True the threads share the process's one generator, so
random transforms there are not repeatable.)

The workers themselves live in process_workers.py and thread_workers.py; this module only decides
which batches to ask for, in what order, and how far ahead.
"""
from __future__ import annotations

import collections
import itertools
import multiprocessing
import pickle
import weakref

import numpy as np

from ... import random as _random
from ...device import as_context, cpu_pinned
from ...ndarray import NDArray
from . import sampler as _sampler
from .batch_loading import load_seeded
from .process_workers import DataLoaderWorkerError, ProcessWorkers
from .thread_workers import ThreadWorkers

__all__ = ["DataLoader", "DataLoaderWorkerError", "default_batchify_fn", "default_mp_batchify_fn"]


def default_batchify_fn(data):
    """Collate samples into a batch: NDArrays are stacked on a new first axis; tuples are
    collated element-wise into a list; anything else (numbers, numpy arrays) goes through
    np.asarray and becomes an NDArray of the dtype numpy picks (ints -> int64, floats ->
    float64, numpy int32 labels stay int32), as in MXNet 1.x."""
    first = data[0]
    if isinstance(first, NDArray):
        _check_same_shape([d.shape for d in data])
        return NDArray(np.stack([d._data for d in data]), first.context)
    if isinstance(first, tuple):
        return [default_batchify_fn(list(column)) for column in zip(*data)]
    _check_same_shape([np.shape(d) for d in data])
    stacked = np.asarray(data)
    return NDArray(np.array(stacked, copy=True), as_context(None))


def _check_same_shape(shapes):
    if any(s != shapes[0] for s in shapes):
        distinct = sorted(set(shapes), key=shapes.index)
        raise ValueError(f"default_batchify_fn: cannot stack samples of different shapes into a batch "
                         f"(this batch has {', '.join(map(str, distinct[:4]))}{' ...' if len(distinct) > 4 else ''}); "
                         "transform them to one shape (e.g. transforms.Resize) or pass a batchify_fn that pads")


# MXNet's workers stack into shared memory with this one; graphc's workers send numpy arrays
# through a pipe, so the plain collation serves both.
default_mp_batchify_fn = default_batchify_fn


def _start_method():
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


# -- the loader -------------------------------------------------------------------------------
class DataLoader:
    """Loads data from a dataset and returns mini-batches (MXNet 1.x's gluon.data.DataLoader).

    Parameters are MXNet's: give either batch_size (with optional shuffle or sampler, and
    last_batch 'keep' | 'discard' | 'rollover') or a batch_sampler. num_workers > 0 loads batches
    in worker processes (forked where the platform can; elsewhere the dataset and batchify_fn
    must pickle), thread_pool=True in threads instead. prefetch (default 2 * num_workers) is how
    many batches are requested ahead. timeout (seconds, default 120, as MXNet) is how long to
    wait for one batch; past it, multiprocessing.TimeoutError is raised and that batch skipped.

    The workers start on the first pass and live as long as the loader (they see the dataset as
    it was then); they are stopped, in bounded time, when the loader and every iterator over it
    are garbage collected, or at exit. A worker process that dies is reported at once as a
    DataLoaderWorkerError naming the worker, its pid and its exit code or signal; the next pass
    starts new workers. pin_memory=True hands the batches out on cpu_pinned(pin_device_id), as
    MXNet does; the memory is the same host memory graphc's CPU arrays always use, which the GPU
    backend copies from.

    auto_reload=True (MXNet 1.9.1's) starts the next pass at once, at construction and again
    whenever a pass has been read to its end, so its first batches load while the caller does
    other work (evaluation between epochs); the next iter() takes that prefetched pass.
    refresh() starts one by hand and clean() drops it. try_nopython (MXNet 2's: compile the
    pipeline to C++ where it can, else run it in Python) is accepted; graphc always runs the
    Python pipeline, which is MXNet's own fallback.
    """

    def __init__(self, dataset, batch_size=None, shuffle=False, sampler=None,
                 last_batch=None, batch_sampler=None, batchify_fn=None,
                 num_workers=0, pin_memory=False, pin_device_id=0,
                 prefetch=None, thread_pool=False, timeout=120, auto_reload=False, try_nopython=None):
        self._dataset = dataset
        self._pin_memory = pin_memory
        self._pin_device_id = pin_device_id
        self._thread_pool = thread_pool
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, given {timeout}")
        self._timeout = timeout

        if batch_sampler is None:
            if batch_size is None:
                raise ValueError("batch_size must be specified unless batch_sampler is specified")
            if sampler is None:
                sampler = (_sampler.RandomSampler(len(dataset)) if shuffle
                           else _sampler.SequentialSampler(len(dataset)))
            elif shuffle:
                raise ValueError("shuffle must not be specified if sampler is specified")
            batch_sampler = _sampler.BatchSampler(sampler, batch_size, last_batch if last_batch else "keep")
        elif batch_size is not None or shuffle or sampler is not None or last_batch is not None:
            raise ValueError("batch_size, shuffle, sampler and last_batch must not be specified "
                             "if batch_sampler is specified.")

        self._batch_sampler = batch_sampler
        self._num_workers = num_workers if num_workers >= 0 else 0
        self._prefetch = max(0, int(prefetch) if prefetch is not None else 2 * self._num_workers)
        self._batchify_fn = default_batchify_fn if batchify_fn is None else batchify_fn
        self._worker_pool = None
        self._finalizer = None
        self._try_nopython = try_nopython
        self.auto_reload = bool(auto_reload)
        self._iter = None       # a pass started ahead (auto_reload, refresh), taken by the next iter()
        if self.auto_reload:
            self.refresh()

    def __len__(self):
        return len(self._batch_sampler)

    def refresh(self):
        """Start a pass now (its prefetching begins); the next iter() over the loader takes it."""
        self._iter = self._new_pass()

    def clean(self):
        """Drop the pass started ahead; the next iter() starts a fresh one."""
        self._iter = None

    def __iter__(self):
        if self._iter is None and not self.auto_reload:
            return self._new_pass()
        return self._prefetched_pass()

    def _prefetched_pass(self):
        """As MXNet's: lazily take the pass started ahead (or start one), and once it has been
        read to its end, start the next if auto_reload."""
        if self._iter is None:
            self.refresh()
        taken, self._iter = self._iter, None
        yield from taken
        if self._iter is None and self.auto_reload:
            self.refresh()

    def _new_pass(self):
        # both modes draw the same thing from the global generator, at the same moment
        epoch_seed = int(_random.generator().integers(2 ** 63))
        batches = iter(self._batch_sampler)
        if self._num_workers == 0:
            it = self._same_process_iter(batches, epoch_seed)
        else:
            it = _MultiWorkerIter(self, batches, epoch_seed)
        if self._pin_memory:
            return _pinned(it, cpu_pinned(self._pin_device_id))
        return it

    def _same_process_iter(self, batches, epoch_seed):
        for batch_no, indices in enumerate(batches):
            yield load_seeded(self._dataset, self._batchify_fn, indices, epoch_seed, batch_no)

    def _workers(self):
        """The live worker pool, started on first use and started afresh after a worker died."""
        pool = self._worker_pool
        if pool is None or pool.broken is not None or pool.closed:
            if self._finalizer is not None:
                self._finalizer()           # closes the dead pool's remains, once
            if self._thread_pool:
                pool = ThreadWorkers(self._num_workers, self._dataset, self._batchify_fn)
            else:
                pool = self._start_processes()
            self._worker_pool = pool
            self._finalizer = weakref.finalize(self, pool.close)
        return pool

    def _start_processes(self):
        method = _start_method()
        try:
            return ProcessWorkers(self._num_workers, self._dataset, self._batchify_fn, method)
        except (TypeError, pickle.PicklingError, AttributeError) as exc:
            raise RuntimeError(
                f"DataLoader(num_workers={self._num_workers}): this platform starts workers with "
                f"{method!r}, which pickles the dataset and batchify_fn, and that failed ({exc}). "
                "Use module-level functions and classes (no lambdas or closures), or pass "
                "thread_pool=True.") from exc


_pass_ids = itertools.count()


class _MultiWorkerIter:
    """One pass over a DataLoader with workers: keeps `prefetch` batches requested ahead and
    hands them out in sampler order.

    A batch whose loading raised re-raises here and the pass goes on with the next one (as in
    PyTorch); a batch that timed out is skipped the same way. A worker that died ends the pass:
    every later call raises the same DataLoaderWorkerError, and the loader's next pass starts
    new workers. Dropping the iterator mid-pass costs nothing: its outstanding batches are
    forgotten and their results dropped when they arrive."""

    def __init__(self, loader, batches, epoch_seed):
        self._loader = loader               # keeps the loader, and so its workers, alive
        self._timeout = loader._timeout
        self._pool = loader._workers()
        self._pass = next(_pass_ids)
        self._batches = batches
        self._epoch_seed = epoch_seed
        self._batch_no = 0
        self._pending = collections.deque()     # keys of requested batches, in sampler order
        self._error = None
        for _ in range(loader._prefetch):
            self._push_next()

    def _push_next(self):
        indices = next(self._batches, None)
        if indices is None:
            return
        key = (self._pass, self._batch_no)
        self._pending.append(key)
        self._pool.submit(key, list(indices), self._epoch_seed, self._batch_no)
        self._batch_no += 1

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader._batch_sampler)

    def __next__(self):
        if self._error is not None:
            raise DataLoaderWorkerError(self._error)     # kept as text: see ProcessWorkers.broken
        try:
            self._push_next()
            if not self._pending:
                raise StopIteration
            return self._pool.result(self._pending.popleft(), self._timeout)
        except DataLoaderWorkerError as err:
            self._error = str(err)
            self._pending.clear()
            raise

    next = __next__

    def __del__(self):
        pending = getattr(self, "_pending", None)
        if pending:
            try:
                self._pool.forget(pending)
            except Exception:       # at interpreter exit the pool may already be gone
                pass


def _to_context(batch, ctx):
    """The batch (an array, or nested lists/tuples of them) with every NDArray on ctx."""
    if isinstance(batch, NDArray):
        return batch.as_in_context(ctx)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_context(b, ctx) for b in batch)
    return batch


def _pinned(batches, ctx):
    """pin_memory=True: MXNet hands out batches on cpu_pinned(pin_device_id), the page-locked
    host memory a GPU copy reads without staging; graphc's arrays say so by their context."""
    for batch in batches:
        yield _to_context(batch, ctx)
