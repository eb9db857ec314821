"""The DataLoader's worker threads (thread_pool=True): the same contract as ProcessWorkers
(submit / result / forget / close) for datasets that release the GIL or cannot be forked.

Threads cannot be killed, so shutting down never waits for them: `close` tells every thread to
stop, drops the batches nobody wants any more, and returns at once; a thread busy inside the
dataset finishes that one item and exits. Threads are daemons, so one stuck in the dataset never
holds up the interpreter's exit.

This module must never import the DataLoader (dataloader.py sits above it).
"""
from __future__ import annotations

import multiprocessing
import queue
import threading
import time

from .batch_loading import load_unseeded

__all__ = ["ThreadWorkers"]

_STOP = None


class _Shared:
    """What the threads and the pool share; the threads never hold the pool itself, so dropping
    the DataLoader lets the pool be collected and closed."""

    def __init__(self, dataset, batchify_fn):
        self.dataset, self.batchify_fn = dataset, batchify_fn
        self.tasks = queue.SimpleQueue()
        self.ready = threading.Condition()
        self.done = {}          # key -> (exc_info or None, batch), for keys still wanted
        self.wanted = set()


def _thread_main(index, shared):
    while True:
        task = shared.tasks.get()
        if task is _STOP:
            return
        key, indices = task
        with shared.ready:
            if key not in shared.wanted:        # abandoned pass: skip the work
                continue
        try:
            outcome = (None, load_unseeded(shared.dataset, shared.batchify_fn, indices))
        except BaseException as exc:            # anything: the caller is waiting for this key
            outcome = ((exc, index, indices), None)
        with shared.ready:
            if key in shared.wanted:
                shared.done[key] = outcome
                shared.ready.notify_all()


class ThreadWorkers:
    """`num_workers` threads loading batches of `dataset`, in the DataLoader's process."""

    def __init__(self, num_workers, dataset, batchify_fn):
        self._shared = _Shared(dataset, batchify_fn)
        self.broken = None
        self.closed = False
        self.threads = [threading.Thread(target=_thread_main, args=(i, self._shared), daemon=True,
                                         name=f"DataLoaderWorkerThread-{i}")
                        for i in range(num_workers)]
        for t in self.threads:
            t.start()

    def submit(self, key, indices, epoch_seed, batch_no):
        del epoch_seed, batch_no        # threads share one generator (see load_unseeded)
        with self._shared.ready:
            self._shared.wanted.add(key)
        self._shared.tasks.put((key, indices))

    def result(self, key, timeout):
        shared = self._shared
        deadline = time.monotonic() + timeout
        with shared.ready:
            if key not in shared.wanted:
                raise KeyError(f"DataLoader: batch {key} was never submitted or was already taken")
            while key not in shared.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    shared.wanted.discard(key)
                    raise multiprocessing.TimeoutError(
                        f"DataLoader worker timed out after {timeout} seconds. This might be caused "
                        "by a slow transform (increase `timeout` to allow slower data loading in each "
                        "worker) or a worker thread stuck in the dataset or batchify_fn.")
                shared.ready.wait(remaining)
            shared.wanted.discard(key)
            failure, batch = shared.done.pop(key)
        if failure is not None:
            exc, index, indices = failure
            if hasattr(exc, "add_note"):
                exc.add_note(f"(raised in DataLoader worker thread {index} while loading samples {indices})")
            try:
                raise exc
            finally:
                exc = failure = None    # see WorkerFailure.reraise: no frame <-> traceback cycle
        return batch

    def forget(self, keys):
        with self._shared.ready:
            for key in keys:
                self._shared.wanted.discard(key)
                self._shared.done.pop(key, None)

    def close(self):
        """Tell every thread to stop and return without waiting (see the module docstring)."""
        if self.closed:
            return
        self.closed = True
        with self._shared.ready:
            self._shared.wanted.clear()
            self._shared.done.clear()
        for _ in self.threads:
            self._shared.tasks.put(_STOP)
