"""DataLoader: turns a Dataset into an iterator of batches, in this process or in workers.

Worker processes never pickle an NDArray (NDArray refuses on purpose): a worker converts every
NDArray of its batch to an `_ArrayPayload` (the numpy array and the device), the pool sends that
through its pipe, and the parent turns it back into an NDArray. Everything else a batchify_fn
returns travels as it is.

Batches are the same with and without workers, random augmentations included: each pass draws
one seed from `graphc.random.generator()` when it starts, and batch k is loaded with the global
generator temporarily set to one derived from (that seed, k), whichever process loads it. So
`mx.random.seed(n)` repeats shuffling and augmentation, and forked workers do not repeat each
other's random draws. (With thread_pool=True the threads share the process's one generator, so
random transforms there are not repeatable.)
"""
from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.pool
import os
import pickle
import signal
import traceback
import warnings
import weakref

import numpy as np

from ... import random as _random
from ...device import as_context
from ...ndarray import NDArray
from . import sampler as _sampler

__all__ = ["DataLoader", "default_batchify_fn", "default_mp_batchify_fn"]


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


# -- loading one batch (in this process, a worker process or a thread) --------------------------
def _batch_rng(epoch_seed, batch_no):
    return np.random.default_rng([epoch_seed, batch_no])


def _load_seeded(dataset, batchify_fn, indices, epoch_seed, batch_no):
    """batchify_fn([dataset[i] ...]) with graphc's global generator set to this batch's own."""
    state = _random._state      # the module's one slot; restored below
    saved = state["rng"]
    state["rng"] = _batch_rng(epoch_seed, batch_no)
    try:
        return batchify_fn([dataset[i] for i in indices])
    finally:
        state["rng"] = saved


class _ArrayPayload:
    """An NDArray on its way out of a worker: its numpy data and device name."""

    __slots__ = ("data", "ctx")

    def __init__(self, data, ctx):
        self.data, self.ctx = data, ctx

    def __getstate__(self):
        return (self.data, self.ctx)

    def __setstate__(self, state):
        self.data, self.ctx = state


def _to_payload(obj):
    if isinstance(obj, NDArray):
        return _ArrayPayload(obj._data, str(obj.context))
    if isinstance(obj, list):
        return [_to_payload(x) for x in obj]
    if isinstance(obj, tuple):
        items = [_to_payload(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        return type(obj)((k, _to_payload(v)) for k, v in obj.items())
    return obj


def _from_payload(obj):
    if isinstance(obj, _ArrayPayload):
        return NDArray(obj.data, as_context(obj.ctx))
    if isinstance(obj, list):
        return [_from_payload(x) for x in obj]
    if isinstance(obj, tuple):
        items = [_from_payload(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        return type(obj)((k, _from_payload(v)) for k, v in obj.items())
    return obj


class _WorkerFailure:
    """What a worker sends back instead of a batch when loading raised."""

    def __init__(self, pid, indices, exc, tb_text):
        self.pid, self.indices, self.tb_text = pid, indices, tb_text
        try:
            pickle.dumps(exc)
            self.exc = exc
        except Exception:       # an exception that cannot cross the pipe: keep its text only
            self.exc = None

    def reraise(self):
        where = f"DataLoader worker process (pid {self.pid}) raised while loading samples {self.indices}"
        if self.exc is None:
            raise RuntimeError(f"{where}:\n{self.tb_text}")
        if hasattr(self.exc, "add_note"):
            self.exc.add_note(f"({where}; its traceback is shown above)")
        raise self.exc from _RemoteTraceback(f"{where}. Traceback in the worker:\n\n{self.tb_text}")


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the __cause__ of the re-raised exception."""

    def __str__(self):
        return self.args[0]


_worker_state = {}


def _worker_initializer(dataset, batchify_fn):
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
    _worker_state["dataset"] = dataset
    _worker_state["batchify_fn"] = batchify_fn


def _worker_load(indices, epoch_seed, batch_no):
    try:
        batch = _load_seeded(_worker_state["dataset"], _worker_state["batchify_fn"],
                             indices, epoch_seed, batch_no)
        return _to_payload(batch)
    except Exception as exc:
        return _WorkerFailure(os.getpid(), indices, exc, traceback.format_exc())


def _thread_load(dataset, batchify_fn, indices):
    return batchify_fn([dataset[i] for i in indices])


def _start_method():
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _shutdown_pool(pool):
    pool.terminate()


# -- the loader -------------------------------------------------------------------------------
class DataLoader:
    """Loads data from a dataset and returns mini-batches (MXNet 1.x's gluon.data.DataLoader).

    Parameters are MXNet's: give either batch_size (with optional shuffle or sampler, and
    last_batch 'keep' | 'discard' | 'rollover') or a batch_sampler. num_workers > 0 loads batches
    in worker processes (forked where the platform can; elsewhere the dataset and batchify_fn
    must pickle), thread_pool=True in threads instead. prefetch (default 2 * num_workers) is how
    many batches are requested ahead. timeout is how long to wait for one batch from a worker.

    The worker pool starts on the first pass and lives as long as the loader (workers see the
    dataset as it was then); it is shut down when the loader, and every iterator over it, is
    garbage collected, or at exit. pin_memory is accepted and has no effect: graphc's CPU arrays
    already live in host memory that the GPU backend copies from.
    """

    def __init__(self, dataset, batch_size=None, shuffle=False, sampler=None,
                 last_batch=None, batch_sampler=None, batchify_fn=None,
                 num_workers=0, pin_memory=False, pin_device_id=0,
                 prefetch=None, thread_pool=False, timeout=120):
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

    def __len__(self):
        return len(self._batch_sampler)

    def __iter__(self):
        # both modes draw the same thing from the global generator, at the same moment
        epoch_seed = int(_random.generator().integers(2 ** 63))
        batches = iter(self._batch_sampler)
        if self._num_workers == 0:
            return self._same_process_iter(batches, epoch_seed)
        return _MultiWorkerIter(self, batches, epoch_seed)

    def _same_process_iter(self, batches, epoch_seed):
        for batch_no, indices in enumerate(batches):
            yield _load_seeded(self._dataset, self._batchify_fn, indices, epoch_seed, batch_no)

    def _pool(self):
        if self._worker_pool is None:
            if self._thread_pool:
                pool = multiprocessing.pool.ThreadPool(self._num_workers)
            else:
                pool = self._start_processes()
            self._worker_pool = pool
            self._finalizer = weakref.finalize(self, _shutdown_pool, pool)
        return self._worker_pool

    def _start_processes(self):
        method = _start_method()
        ctx = multiprocessing.get_context(method)
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about forking a process that runs threads; the workers
                # only index the dataset and never touch the parent's threads' state
                warnings.simplefilter("ignore", DeprecationWarning)
                return ctx.Pool(self._num_workers, initializer=_worker_initializer,
                                initargs=(self._dataset, self._batchify_fn))
        except (TypeError, pickle.PicklingError, AttributeError) as exc:
            raise RuntimeError(
                f"DataLoader(num_workers={self._num_workers}): this platform starts workers with "
                f"{method!r}, which pickles the dataset and batchify_fn, and that failed ({exc}). "
                "Keep NDArrays out of the dataset (store numpy arrays and wrap them in __getitem__), "
                "use a module-level batchify_fn, or pass thread_pool=True.") from exc


class _MultiWorkerIter:
    """One pass over a DataLoader with workers: keeps `prefetch` batches requested ahead and
    hands them out in sampler order."""

    def __init__(self, loader, batches, epoch_seed):
        self._loader = loader               # keeps the loader, and so its pool, alive
        self._pool = loader._pool()
        self._threads = loader._thread_pool
        self._batches = batches
        self._epoch_seed = epoch_seed
        self._batch_no = 0
        self._pending = collections.deque()
        for _ in range(loader._prefetch):
            self._push_next()

    def _push_next(self):
        indices = next(self._batches, None)
        if indices is None:
            return
        indices = list(indices)
        if self._threads:
            args = (self._loader._dataset, self._loader._batchify_fn, indices)
            self._pending.append(self._pool.apply_async(_thread_load, args))
        else:
            args = (indices, self._epoch_seed, self._batch_no)
            self._pending.append(self._pool.apply_async(_worker_load, args))
        self._batch_no += 1

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader._batch_sampler)

    def __next__(self):
        self._push_next()
        if not self._pending:
            raise StopIteration
        result = self._pending.popleft()
        timeout = self._loader._timeout
        try:
            batch = result.get(timeout)
        except multiprocessing.TimeoutError:
            msg = (f"DataLoader worker timed out after {timeout} seconds. This might be caused by a "
                   "slow transform (increase `timeout` to allow slower data loading in each worker)")
            if not self._threads:
                msg += (", a worker that died (out of memory?), or insufficient shared memory "
                        "(reduce `num_workers`)")
            raise multiprocessing.TimeoutError(msg + ".") from None
        if self._threads:
            return batch
        if isinstance(batch, _WorkerFailure):
            self._pending.clear()
            batch.reraise()
        return _from_payload(batch)

    next = __next__
