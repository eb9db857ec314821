"""Loading one batch, wherever that happens: in the DataLoader's process, a worker thread or a
worker process; and the worker process's whole life (`worker_main`).

Worker processes never pickle an NDArray (NDArray refuses on purpose): a worker converts every
NDArray of its batch to an `_ArrayPayload` (the numpy array and the device), sends that through
its pipe, and the parent turns it back into an NDArray. Everything else a batchify_fn returns
travels as it is. A batch that raised travels as a `WorkerFailure` carrying the worker's
traceback text, so the parent can re-raise it with the place it happened.

This module must never import the parent-side machinery (process_workers, thread_workers).
"""
from __future__ import annotations

import os
import pickle
import signal
import traceback

import numpy as np

from ... import random as _random
from ...device import as_context
from ...ndarray import NDArray
from .pipe_frames import read_frame, write_frame

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _batch_rng(epoch_seed, batch_no):
    return np.random.default_rng([epoch_seed, batch_no])


def load_seeded(dataset, batchify_fn, indices, epoch_seed, batch_no):
    """batchify_fn([dataset[i] ...]) with graphc's global generator set to this batch's own, so
    a batch's random augmentations do not depend on which process or worker loads it."""
    state = _random._state      # the module's one slot; restored below
    saved = state["rng"]
    state["rng"] = _batch_rng(epoch_seed, batch_no)
    try:
        return batchify_fn([dataset[i] for i in indices])
    finally:
        state["rng"] = saved


def load_unseeded(dataset, batchify_fn, indices):
    """What a worker thread runs: threads share the process's one generator, so a batch cannot
    have its own (swapping the global slot from several threads would race)."""
    return batchify_fn([dataset[i] for i in indices])


class _ArrayPayload:
    """An NDArray on its way out of a worker: its numpy data and device name."""

    __slots__ = ("data", "ctx")

    def __init__(self, data, ctx):
        self.data, self.ctx = data, ctx

    def __getstate__(self):
        return (self.data, self.ctx)

    def __setstate__(self, state):
        self.data, self.ctx = state


def to_payload(obj):
    if isinstance(obj, NDArray):
        return _ArrayPayload(obj._data, str(obj.context))
    if isinstance(obj, list):
        return [to_payload(x) for x in obj]
    if isinstance(obj, tuple):
        items = [to_payload(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        return type(obj)((k, to_payload(v)) for k, v in obj.items())
    return obj


def from_payload(obj):
    if isinstance(obj, _ArrayPayload):
        return NDArray(obj.data, as_context(obj.ctx))
    if isinstance(obj, list):
        return [from_payload(x) for x in obj]
    if isinstance(obj, tuple):
        items = [from_payload(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, dict):
        return type(obj)((k, from_payload(v)) for k, v in obj.items())
    return obj


class WorkerFailure:
    """What a worker sends back instead of a batch when loading (or pickling) it raised.

    The exception travels as its own pickle, unpickled only in `reraise`: an exception class
    the parent cannot import (or that does not round-trip) still arrives as its traceback text."""

    def __init__(self, worker, pid, indices, exc, tb_text):
        self.worker, self.pid, self.indices, self.tb_text = worker, pid, indices, tb_text
        try:
            self.exc_pickle = pickle.dumps(exc, _PROTOCOL)
        except Exception:
            self.exc_pickle = None

    def reraise(self):
        where = (f"DataLoader worker process (pid {self.pid}, worker {self.worker}) raised while "
                 f"loading samples {self.indices}")
        exc = None
        if self.exc_pickle is not None:
            try:
                exc = pickle.loads(self.exc_pickle)
            except Exception:
                exc = None
        if not isinstance(exc, BaseException):
            raise RuntimeError(f"{where}:\n{self.tb_text}")
        if hasattr(exc, "add_note"):
            exc.add_note(f"({where}; its traceback is shown above)")
        try:
            raise exc from RemoteTraceback(f"{where}. Traceback in the worker:\n\n{self.tb_text}")
        finally:
            exc = None      # else this frame and the exception's traceback hold each other (and
                            # with them the DataLoader) until the cyclic garbage collector runs


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the __cause__ of the re-raised exception."""

    def __str__(self):
        return self.args[0]


def worker_main(index, dataset, batchify_fn, task_conn, result_conn, inherited_fds):
    """A worker process: read (key, indices, epoch_seed, batch_no) tasks until the parent closes
    the task pipe, answer each with two messages: (key, None) and the pickled batch, or
    (key, WorkerFailure) and nothing. The batch travels apart so that the parent can route it
    without unpickling it (a batch nobody wants any more is never unpickled), and so that a batch
    the parent cannot unpickle is an error about that batch, not about the pipe.

    An exception from the dataset or batchify_fn is reported and the worker carries on; anything
    that ends the process instead (sys.exit, os._exit, a signal) is seen by the parent through
    the process's exit sentinel and reported with its exit code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # the parent's own handler must not keep us alive
    for fd in inherited_fds:                        # other workers' pipe ends, copied by fork:
        try:                                        # holding them would hide those workers' exits
            os.close(fd)
        except OSError:
            pass
    task_fd, result_fd = task_conn.fileno(), result_conn.fileno()
    while True:
        frame = read_frame(task_fd)
        if frame is None:
            return
        key, indices, epoch_seed, batch_no = pickle.loads(frame)
        try:
            batch = load_seeded(dataset, batchify_fn, indices, epoch_seed, batch_no)
            header, body = pickle.dumps((key, None), _PROTOCOL), pickle.dumps(to_payload(batch), _PROTOCOL)
        except Exception as exc:
            failure = WorkerFailure(index, os.getpid(), indices, exc, traceback.format_exc())
            header, body = pickle.dumps((key, failure), _PROTOCOL), b""
        try:
            write_frame(result_fd, header)
            write_frame(result_fd, body)
        except BrokenPipeError:     # the parent closed its end: it no longer wants anything
            return
