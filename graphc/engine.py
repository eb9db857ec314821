"""The engine: dispatcher threads per CPU device, MXNet's asynchronous execution in the small.

MXNet's engine makes every operation asynchronous: a call returns at once with arrays whose
data is pending, work on different devices runs at the same time, and a reader (asnumpy,
wait_to_read, mx.nd.waitall) waits. graphc does the same once more than one device holds data
(graphc.device.MULTI): the compiled work of a device (hybridized blocks' forward and backward)
and the eager operators on its pending arrays are Jobs queued to a dispatcher of that device, a
thread pinned to the device's cores (runtime/cpu_devices.py) that runs its jobs in order. The
native programs release the GIL, so two devices' programs truly run at once, each on its own
worker pool (runtime/threads.py). With one device nothing goes through here: the caller's
thread runs everything, as before devices existed (no thread hop on the single-device path).

One queue per (device, calling thread): a thread's work on a device runs in the order the thread
issued it (its program order, which is all the ordering a queue gives), and two Python threads
calling a block on the same device still run at the same time, as they do without devices
(README "Threads"); a single data-parallel loop gets one queue per device. A job first waits for
the jobs of other queues that write what it reads (recorded when it is queued, so a job only
ever waits for jobs queued before it: no cycle, no deadlock); jobs of its own queue have run.
A dispatcher idle for IDLE_SECONDS ends (a thread that made it may be gone); the next job starts
a new one.

This module knows jobs and threads only; which arrays a job reads and writes, and what a pending
array is, belong to graphc/ndarray/pending.py. A job's failure is kept on the job: readers of the
arrays it writes re-raise it (the original exception), jobs reading them fail with it, and the
next waitall() raises it once.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from contextlib import contextmanager

from .runtime import cpu_devices

__all__ = ["Job", "push", "waitall", "waitall_quiet", "wait_device", "on_dispatcher", "dispatcher_threads",
           "trace", "IDLE_SECONDS"]

IDLE_SECONDS = 30.0
_local = threading.local()
_lock = threading.Lock()
_dispatchers: dict = {}          # (device index, calling thread id) -> _Dispatcher
_failures: list = []             # jobs that failed (not by propagation) since the last waitall
_trace = None                    # list of (device, name, thread native id, t_start, t_end) while tracing


class Job:
    """One unit of a device's work: fn() runs on a dispatcher of the device after every job queued
    before it on that queue. `deps`: jobs whose results it reads (of other queues: waited for
    first) and whose failure it inherits instead of running. `on_done(job)` runs after fn,
    failed or not, before the job counts as done."""

    __slots__ = ("fn", "device", "name", "deps", "on_done", "error", "root", "queue", "_done", "writes",
                 "sources", "touched")

    def __init__(self, fn, device: int, name: str = "", deps=(), on_done=None):
        self.fn, self.device, self.name = fn, device, name
        self.deps, self.on_done = deps, on_done
        self.error = None        # the exception fn raised (or a dependency's)
        self.root = False        # True when this job's own fn raised
        self.queue = None        # the dispatcher it was queued on
        self._done = threading.Event()
        self.writes = self.sources = self.touched = None    # the array layer's bookkeeping

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self):
        """Block until the job ran (or failed); never raises."""
        if not self._done.is_set():
            if self.queue is not None and getattr(_local, "dispatcher", None) is self.queue:
                raise RuntimeError(f"engine: job {self.name!r} of cpu({self.device}) waited for from its own "
                                   "dispatcher thread (it would wait forever)")
            self._done.wait()

    def run(self):
        clock = time.perf_counter
        t0 = clock()
        try:
            for dep in self.deps:
                dep.wait()
                if dep.error is not None:
                    self.error = dep.error
                    break
            else:
                self.fn()
        except BaseException as exc:   # noqa: BLE001 - kept and re-raised where it is read
            self.error, self.root = exc, True
            with _lock:
                _failures.append(self)
        finally:
            self.fn = self.deps = None   # closures hold arrays (a backward's saved tensors)
            if _trace is not None:
                _trace.append((self.device, self.name, threading.get_native_id(), t0, clock()))
            try:
                if self.on_done is not None:
                    self.on_done(self)
            finally:
                self.on_done = None
                self._done.set()


class _Dispatcher:
    """A thread running one queue of a device's jobs in order, pinned to the device's cores when
    the layout has more than one device (re-pinned if the layout grows)."""

    def __init__(self, key, caller_name):
        self.key = key
        self.device = key[0]
        self.jobs = queue.SimpleQueue()
        self.last = None                 # the job queued most recently
        self._generation = -1
        self.thread = threading.Thread(target=self._loop, name=f"graphc-cpu({self.device})-{caller_name}",
                                       daemon=True)
        self.thread.start()

    def _pin(self):
        layout = cpu_devices.current()
        if layout.generation == self._generation:
            return
        self._generation = layout.generation
        pinned = layout.pin and self.device < layout.count
        cores = layout.cores(self.device) if pinned else {c for group in layout.devices for c in group}
        try:
            os.sched_setaffinity(0, cores)    # this thread only (Linux)
        except (AttributeError, OSError):  # pragma: no cover - non-Linux or a refused mask
            pass

    def _loop(self):
        _local.dispatcher = self
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with _lock:      # pushes put under this lock: empty now means empty for good
                    if self.jobs.empty():
                        if _dispatchers.get(self.key) is self:
                            del _dispatchers[self.key]
                        return
                continue
            self._pin()
            job.run()


def on_dispatcher() -> bool:
    """Whether the calling thread is a dispatcher (it reads its jobs' arrays without waiting)."""
    return getattr(_local, "dispatcher", None) is not None


def push(job: Job) -> Job:
    """Queue `job` on the calling thread's queue of its device (run it at once when called from
    a dispatcher: a job never waits behind itself)."""
    if getattr(_local, "dispatcher", None) is not None:
        job.run()
        return job
    current = threading.current_thread()
    key = (job.device, current.ident)
    with _lock:
        d = _dispatchers.get(key)
        if d is None:
            d = _dispatchers[key] = _Dispatcher(key, current.name)
        job.queue = d
        d.last = job
        d.jobs.put(job)
    return job


def wait_device(device: int) -> None:
    """Wait until every job queued on cpu(device) so far (by any thread) has run."""
    for key, d in list(_dispatchers.items()):
        last = d.last
        if key[0] == device and last is not None:
            last.wait()


def waitall_quiet() -> None:
    """Wait for every device without raising (their failures stay for the next waitall), GPUs
    included (their kernels run asynchronously on the device's stream)."""
    for d in list(_dispatchers.values()):
        last = d.last
        if last is not None:
            last.wait()
    gpu_memory = sys.modules.get("graphc.runtime.cuda.memory")     # loaded once a GPU is used
    if gpu_memory is not None:
        gpu_memory.synchronize_all()


def reported(error) -> None:
    """`error` (a failed job's) was raised where its result was read: waitall will not raise it
    again, as MXNet's engine clears an exception once it has been rethrown."""
    with _lock:
        _failures[:] = [job for job in _failures if job.error is not error]


def waitall() -> None:
    """Wait for every device's queued work; raise the first failure since the last waitall
    (MXNet's mx.nd.waitall)."""
    waitall_quiet()
    with _lock:
        failed = _failures[:]
        _failures.clear()
    if failed:
        raise failed[0].error


def dispatcher_threads() -> dict:
    """device -> [(thread name, native thread id), ...] of the dispatchers running now."""
    out: dict = {}
    for (device, _), d in sorted(_dispatchers.items(), key=lambda kv: kv[0]):
        out.setdefault(device, []).append((d.thread.name, d.thread.native_id))
    return out


@contextmanager
def trace():
    """`with engine.trace() as events:` records (device, job name, native thread id, start, end)
    of every job that finishes inside the block (waiting for them at the end): which thread ran
    what, and what overlapped."""
    global _trace
    events = _trace = []
    try:
        yield events
    finally:
        waitall_quiet()
        _trace = None


def _before_fork():
    # a child cannot run its parent's queued work (it has none of the dispatcher threads), so
    # the parent finishes it first, as MXNet's engine stops before fork; a fork from a dispatcher
    # thread itself cannot wait for its own queue and forks as it is
    if not on_dispatcher():
        waitall_quiet()


def _after_fork_in_child():
    global _lock
    _lock = threading.Lock()         # another parent thread may have held it at the fork
    _dispatchers.clear()             # started again on first use
    _failures.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
