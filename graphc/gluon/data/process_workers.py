"""The DataLoader's worker processes, seen from the parent: start them, hand out batches, collect
results in any order, notice at once when one dies, and stop them all in bounded time.

Why not multiprocessing.Pool: its shared queues are guarded by locks shared between processes,
and a worker terminated while holding one (or forked while another thread held it) leaves
Pool.terminate() blocked for good; its result-handler thread cannot tell a dead worker from a
slow one, so a killed worker stalls the loader for the whole timeout.

Here each worker has its own two pipes (tasks in, results out) and nothing is shared between
workers, so nothing one worker does can block another or the parent. The parent never blocks
on a pipe (see pipe_frames): it waits in a single `select` over every result pipe, every
worker's exit sentinel and every task pipe with unsent bytes. A worker that exits is therefore
reported the moment it happens, naming the worker, its pid, how it ended and what it was
loading. Shutting down closes the pipes (an idle worker reads end-of-file and returns), kills
the workers that were still loading (their work is unwanted), and waits at most about a second
before SIGKILL.

This module must never import the DataLoader (dataloader.py sits above it).
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import selectors
import signal
import time
import warnings

from ...ops.errors import GraphcError
from .batch_loading import from_payload, worker_main
from .pipe_frames import FrameReader, FrameWriter, enlarge_pipe

__all__ = ["DataLoaderWorkerError", "ProcessWorkers"]

_EXIT_GRACE_S = 0.5      # idle workers return on end-of-file well within this
_KILL_GRACE_S = 1.0      # after SIGTERM, before SIGKILL

# The parent's ends of every live worker pipe in this process. A forked worker closes all of them
# but its own: if it kept another worker's task pipe open, that worker would never see the end of
# its input, and a copy of another worker's result pipe would hide that worker's exit.
_PARENT_FDS: set[int] = set()


class DataLoaderWorkerError(GraphcError, RuntimeError):
    """A DataLoader worker process ended while the loader still needed it."""


def _describe_exit(exitcode):
    if exitcode is None:
        return "no exit status yet (it closed its result pipe)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {"SIGKILL": " (killed from outside: the out-of-memory killer, or a user)",
                "SIGSEGV": " (a crash in native code run by the dataset or batchify_fn)",
                "SIGBUS": " (a crash touching memory: insufficient shared memory?)"}.get(name, "")
        return f"signal {name}{hint}"
    return f"exit code {exitcode}"


class _Worker:
    """One worker process and the parent's ends of its two pipes."""

    def __init__(self, index, process, task_conn, result_conn):
        self.index, self.process = index, process
        self.pid = process.pid
        self.task_conn, self.result_conn = task_conn, result_conn
        self.writer = FrameWriter(task_conn.fileno())
        self.reader = FrameReader(result_conn.fileno())
        self.outstanding = {}       # key -> indices, in the order sent
        self.header = None          # (key, failure) of the batch whose bytes come next

    def name(self):
        return f"DataLoader worker {self.index} (pid {self.pid})"


class ProcessWorkers:
    """`num_workers` processes loading batches of `dataset`; batches are identified by keys the
    caller chooses, submitted with `submit` and collected, in any order, with `result`."""

    def __init__(self, num_workers, dataset, batchify_fn, start_method):
        self._owner_pid = os.getpid()
        self._ctx = multiprocessing.get_context(start_method)
        self._fork = start_method == "fork"
        self._selector = selectors.DefaultSelector()
        self._workers = []
        self._done = {}             # key -> (failure, pickled batch, worker, indices), still wanted
        self._wanted = set()
        self._next_worker = 0
        self.broken = None          # the message of the DataLoaderWorkerError that ended this pool
        self.closed = False
        try:
            for index in range(num_workers):
                self._workers.append(self._start_worker(index, dataset, batchify_fn))
        except BaseException:
            self.close()
            raise

    @property
    def processes(self):
        return [w.process for w in self._workers]

    def _start_worker(self, index, dataset, batchify_fn):
        task_r, task_w = self._ctx.Pipe(duplex=False)
        result_r, result_w = self._ctx.Pipe(duplex=False)
        enlarge_pipe(result_w.fileno())
        mine = {task_r.fileno(), result_w.fileno()}
        parent_ends = {task_w.fileno(), result_r.fileno()}
        _PARENT_FDS.update(parent_ends | mine)
        try:
            inherited = tuple(sorted(_PARENT_FDS - mine)) if self._fork else ()
            process = self._ctx.Process(
                target=worker_main, name=f"DataLoaderWorker-{index}", daemon=True,
                args=(index, dataset, batchify_fn, task_r, result_w, inherited))
            with warnings.catch_warnings():
                # Python 3.12+ warns about forking a process that runs threads; the workers
                # only index the dataset and never touch the parent's threads' state
                warnings.simplefilter("ignore", DeprecationWarning)
                process.start()
        except BaseException:
            _PARENT_FDS.difference_update(parent_ends | mine)
            for conn in (task_r, task_w, result_r, result_w):
                conn.close()
            raise
        _PARENT_FDS.difference_update(mine)
        task_r.close()
        result_w.close()
        worker = _Worker(index, process, task_w, result_r)
        self._selector.register(result_r.fileno(), selectors.EVENT_READ, ("result", worker))
        self._selector.register(process.sentinel, selectors.EVENT_READ, ("exit", worker))
        return worker

    # -- handing out and collecting batches ------------------------------------------------------
    def submit(self, key, indices, epoch_seed, batch_no):
        """Send one batch to the least busy worker; never blocks."""
        self._raise_if_broken()
        worker = self._pick_worker()
        worker.outstanding[key] = indices
        self._wanted.add(key)
        try:
            worker.writer.send(pickle.dumps((key, indices, epoch_seed, batch_no), pickle.HIGHEST_PROTOCOL))
        except BrokenPipeError:
            # the worker is gone; its exit sentinel reports it (with this batch among the lost
            # ones) at the next wait for a result, so creating an iterator never raises
            worker.writer.discard()
        self._watch_writes(worker)

    def _pick_worker(self):
        n = len(self._workers)
        order = [self._workers[(self._next_worker + i) % n] for i in range(n)]
        worker = min(order, key=lambda w: len(w.outstanding))
        self._next_worker = (worker.index + 1) % n
        return worker

    def result(self, key, timeout):
        """The batch submitted as `key`, waiting at most `timeout` seconds for it; re-raises what
        the worker raised, DataLoaderWorkerError when a worker died, multiprocessing's
        TimeoutError (as MXNet) when the time ran out."""
        self._raise_if_broken()
        deadline = time.monotonic() + timeout
        self._pump(0)
        while key not in self._done:
            if not any(key in w.outstanding for w in self._workers):
                raise KeyError(f"DataLoader: batch {key} was never submitted or was already taken")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out(key, timeout)
            self._pump(remaining)
        self._wanted.discard(key)
        failure, body, worker, indices = self._done.pop(key)
        if failure is not None:
            failure.reraise()
        try:
            payload = pickle.loads(body)
        except Exception as exc:
            raise pickle.UnpicklingError(
                f"{worker.name()} loaded samples {indices} but this process cannot unpickle the "
                f"batch ({type(exc).__name__}: {exc}); with the 'spawn' start method, classes in the "
                "batch must be importable (not defined in __main__)") from exc
        return from_payload(payload)

    def forget(self, keys):
        """Stop wanting these batches (an abandoned or timed-out pass): their results are dropped
        when they arrive."""
        for key in keys:
            self._wanted.discard(key)
            self._done.pop(key, None)

    def _timed_out(self, key, timeout):
        holder = next((w for w in self._workers if key in w.outstanding), None)
        self.forget([key])
        who = holder.name() if holder else "DataLoader worker"
        what = f" loading samples {holder.outstanding[key]}" if holder else ""
        raise multiprocessing.TimeoutError(
            f"{who} timed out after {timeout} seconds{what}. This might be caused by a "
            "slow transform (increase `timeout` to allow slower data loading in each worker) or a "
            "worker stuck in the dataset or batchify_fn.")

    # -- the one place the parent waits ------------------------------------------------------------
    def _pump(self, timeout):
        events = self._selector.select(max(0.0, timeout))
        # results first: a worker that sent its last batch and then exited has still sent it
        events.sort(key=lambda event: event[0].data[0] == "exit")
        for selector_key, _ in events:
            what, worker = selector_key.data
            if what == "result":
                self._receive(worker)
            elif what == "task":
                self._flush(worker)
            else:
                self._receive(worker)
                self._worker_exited(worker)

    def _receive(self, worker):
        messages, closed = worker.reader.read_available()
        for message in messages:
            if worker.header is None:           # (key, failure); the batch's bytes follow
                worker.header = pickle.loads(message)
                continue
            (key, failure), worker.header = worker.header, None
            indices = worker.outstanding.pop(key, None)
            if key in self._wanted:
                self._done[key] = (failure, message, worker, indices)
        if closed:
            self._worker_exited(worker)

    def _flush(self, worker):
        try:
            worker.writer.flush()
        except BrokenPipeError:
            self._worker_exited(worker)
        self._watch_writes(worker)

    def _watch_writes(self, worker):
        fd = worker.writer.fd
        registered = fd in self._selector.get_map()
        if worker.writer.has_pending and not registered:
            self._selector.register(fd, selectors.EVENT_WRITE, ("task", worker))
        elif registered and not worker.writer.has_pending:
            self._selector.unregister(fd)

    def _worker_exited(self, worker):
        worker.process.join(_KILL_GRACE_S)      # the pipe can close a moment before the exit
        message = f"{worker.name()} exited unexpectedly with {_describe_exit(worker.process.exitcode)}"
        lost = list(worker.outstanding.values())
        if lost:
            more = f" and {len(lost) - 1} more batch(es)" if len(lost) > 1 else ""
            message += f" while loading samples {lost[0]}{more}"
        self.broken = message + "; the other workers have been stopped."
        self.close()
        raise DataLoaderWorkerError(self.broken)

    def _raise_if_broken(self):
        if self.broken is not None:
            # a fresh exception each time: a kept one would hold its traceback's frames, and so
            # this pool and whoever called it, alive in a reference cycle
            raise DataLoaderWorkerError(self.broken)
        if self.closed:
            raise DataLoaderWorkerError("DataLoader: its worker processes have been shut down")

    # -- shutting down -----------------------------------------------------------------------------
    def close(self):
        """Stop every worker in bounded time (a few seconds at the very worst, when a worker
        ignores SIGTERM) and release every pipe and process entry. Safe to call twice; a no-op in
        a forked child, which does not own these processes."""
        if self.closed:
            return
        self.closed = True
        if os.getpid() != self._owner_pid:
            return      # a forked child already closed its copies of these pipes (worker_main)
        self._wanted.clear()
        self._done.clear()
        self._selector.close()
        for w in self._workers:
            _PARENT_FDS.difference_update((w.task_conn.fileno(), w.result_conn.fileno()))
            w.task_conn.close()     # an idle worker reads end-of-file and returns
            w.result_conn.close()   # a worker writing a batch gets BrokenPipeError and returns
        for w in self._workers:
            if w.outstanding and w.process.exitcode is None:
                w.process.terminate()   # its batches are unwanted: no need to let it finish
        _join_all([w.process for w in self._workers], _EXIT_GRACE_S)
        stragglers = [w.process for w in self._workers if w.process.exitcode is None]
        for p in stragglers:
            p.terminate()
        _join_all(stragglers, _KILL_GRACE_S)
        for p in stragglers:
            if p.exitcode is None:
                p.kill()
        _join_all(stragglers, _KILL_GRACE_S)
        # each process's sentinel is closed when its Process object is collected; closing it
        # here would break is_alive() for whoever still holds the Process


def _join_all(processes, grace):
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
