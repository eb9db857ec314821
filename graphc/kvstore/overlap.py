"""All-reduce overlapped with backward: a distributed Trainer's gradients summed over the workers
bucket by bucket while backward still computes the rest (PyTorch DDP's Reducer, Horovod).

Why: without it the first all-reduce starts in `trainer.step()`, after backward has written
every gradient, so communication overlaps only the optimizer update. Backward produces the
last layers' gradients first; their transfer can run while the first layers' are computed.

How:
* The plan. Keys (parameter positions) in reverse parameter order are cut into buckets by
  their sizes and dtypes alone, which every worker agreed on at kvstore.init, so every worker
  starts the same collectives in the same order whatever order its gradients become ready in.
  A key of at least GRAPHC_DIST_DIRECT_KB is a bucket of its own (no packing copy), as in
  mpi_transport; smaller keys of one dtype are packed up to the bucket cap, the smaller of
  GRAPHC_DIST_BUCKET_MB and a quarter of the model (at least 64 KB): one bucket for a whole
  small model could only start after backward ends, which is no overlap at all. A bucket of
  small keys stays open across big keys (plan_buckets says why).
* The hooks. The Trainer registers a gradient-ready hook on each parameter (autograd.py): the
  eager tape calls it when the tape walk has visited every reader of the parameter, a
  hybridized block when the segment of its compiled backward that computes that gradient
  returns (gluon/cached_op.py, passes/segment_backward.py). Bucket b starts once all its keys
  are ready and buckets < b have started (the order rule above).
* Progress. MPICH moves a nonblocking collective on only inside MPI calls, and backward's
  native code makes none; a communication thread therefore tests each started collective, in
  order, every _POLL_S (0.2 ms) and sleeps in between (MPI runs MPI_THREAD_MULTIPLE; the GIL
  is free while it sleeps). Not MPI_Wait: MPICH's blocking wait spins a core, and where no core
  is spare (2 ranks of 1 thread on 2 cores) it slowed the computation it should overlap as
  much as the overlap saved: 3 MB of all-reduce beside 26 ms of matmuls per iteration took
  38 ms one after the other, 38 ms overlapped with MPI_Wait, 28 ms with the sleeping poll.
  The thread has its own deadline too (World's), so it never waits forever.
* The flush (`step()` / `allreduce_grads()`): start the buckets not started yet (parameters no
  backward reached are summed as before), wait for every collective with World's deadline
  (a dead peer is named by World.check), then hand the sums over: into the gradients
  (update_on_kvstore=False), or to the store's updater, keys in the order the store's own
  push runs them (update_on_kvstore=True).
* Sums started during backward land in buffers of the reducer (packed keys in their bucket's,
  a big key in one of its own), never in a gradient's memory: a second backward pass before
  the step may still write it. Such a write first waits for the collective reading that
  gradient (a hook autograd calls before the write), and the round is stale: the flush waits
  for what was started and sums everything the ordinary way (every worker runs the same code,
  so every worker does the same). A big key whose sum the flush starts (backward is over) is
  summed in its own memory (MPI_IN_PLACE) when update_on_kvstore=False, as the store's own
  pushpull does; the updater of update_on_kvstore=True reads a buffer (the gradients keep this
  worker's values, as before).
* Buckets that start during backward are waited on by the communication thread; those the
  flush starts (parameters no hook reached, or a step without backward) by the caller itself
  (World.wait), which is quicker than handing them to a thread.

The first step is not overlapped: the Trainer creates the store and its hooks in that step,
after its backward. Gradients with grad_req='add' (accumulated over several backward passes)
are never overlapped, since no hook can know which pass is the last.
GRAPHC_DIST_OVERLAP=1 turns overlap on, 0 off; by default it is on except where all ranks share
one host whose cores their compute threads already fill (overlap_enabled says why).
"""
from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections import deque

import numpy as np

from ..dist.errors import DistributedError
from ..dist.settings import number_setting
from ..ndarray import NDArray
from .mpi_transport import _wire_dtype, bucket_bytes, direct_bytes

__all__ = ["OVERLAP_ENV", "SEGMENTS_ENV", "OverlapReducer", "plan_buckets", "backward_segments", "reducer_for"]

_POLL_S = 0.0002      # the communication thread's test period
OVERLAP_ENV = "GRAPHC_DIST_OVERLAP"
SEGMENTS_ENV = "GRAPHC_DIST_BACKWARD_SEGMENTS"
MAX_SEGMENTS = 4
_MIN_BUCKET_BYTES = 64 * 1024


def overlap_enabled(world) -> bool:
    """GRAPHC_DIST_OVERLAP: '1' on, '0' off, unset or 'auto': on unless every rank runs on this
    host and their compute threads take every core. Between hosts the network moves the bytes
    and overlap hides its latency; within one host MPI moves them with memcpy on some core, and
    where every core computes that work only moves from the step into backward, at a cost (W10's
    2 ranks x 1 thread on 2 cores: about 1.2x the step time and 20-30% more CPU per step)."""
    raw = os.environ.get(OVERLAP_ENV, "auto").strip().lower()
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    if raw not in ("", "auto"):
        raise DistributedError(f"{OVERLAP_ENV}={raw!r}: expected 1, 0 or auto")
    if any(p.host != world.host for p in world.peers):
        return True
    from ..runtime.executor import num_threads
    return (os.cpu_count() or 1) > len(world.peers) * num_threads()


def _bucket_cap(total_bytes: int) -> int:
    return max(1, min(bucket_bytes(), max(_MIN_BUCKET_BYTES, math.ceil(total_bytes / MAX_SEGMENTS))))


def plan_buckets(entries) -> list:
    """entries: (key, element count, dtype) in the order gradients arrive (reverse parameter
    order). -> list of (wire dtype, [keys], direct?) in the order they are summed.

    A big key is a collective of its own, summed as soon as it arrives. Small keys fill a bucket
    per wire dtype that stays open across big keys until it reaches the cap (or the keys end):
    closing it at every big key would send each layer's bias alone, a latency-bound call each.
    Collectives are ordered by when their last key arrives."""
    entries = list(entries)
    total = sum(n * _wire_dtype(np.dtype(d)).itemsize for _, n, d in entries)
    cap, direct = _bucket_cap(total), direct_bytes()
    closed = []                     # (position of the last key, wire dtype, keys, direct?)
    open_: dict = {}                # wire dtype -> [keys, bytes]
    for position, (key, n, dtype) in enumerate(entries):
        dtype = np.dtype(dtype)
        wire = _wire_dtype(dtype)
        nbytes = n * wire.itemsize
        if nbytes >= direct and dtype == wire and dtype.kind == "f":
            closed.append((position, wire, [key], True))
            continue
        bucket = open_.setdefault(wire, [[], 0])
        bucket[0].append(key)
        bucket[1] += nbytes
        if bucket[1] >= cap:
            closed.append((position, wire, bucket[0], False))
            del open_[wire]
    for wire, (keys, _) in open_.items():
        closed.append((len(entries), wire, keys, False))
    closed.sort(key=lambda c: c[0])     # (stable: same-position buckets keep their order)
    return [(wire, keys, direct_) for _, wire, keys, direct_ in closed]


def backward_segments(grads) -> int:
    """How many segments a compiled backward producing `grads` ((element count, dtype) in
    parameter order) is cut into for overlap: one per collective the plan would start, at most
    MAX_SEGMENTS; GRAPHC_DIST_BACKWARD_SEGMENTS overrides."""
    if os.environ.get(SEGMENTS_ENV):
        return max(1, int(number_setting(SEGMENTS_ENV, "1", "segments")))
    entries = [(i, n, d) for i, (n, d) in enumerate(grads)][::-1]
    return max(1, min(MAX_SEGMENTS, len(plan_buckets(entries))))


class _Collective:
    """One bucket of the plan and, once started, its request and where its sums are."""

    def __init__(self, index, wire, keys, direct):
        self.index, self.wire, self.keys, self.direct = index, wire, keys, direct
        self.buffer = None          # the packed sums (or the direct key's), kept between steps
        self.in_place = None        # the gradient summed in its own memory, if so
        self.request = None
        self.threaded = False       # waited on by the communication thread
        self.done = threading.Event()
        self.error = None

    def start(self, comm, MPI, grads, in_place):
        """Start the all-reduce of the keys' gradients `grads` (numpy arrays, key order); a
        direct key's in its own memory when `in_place`."""
        self.done.clear()
        self.error = None
        self.in_place = None
        g = grads[0]
        if self.direct and g.dtype == self.wire and g.flags.c_contiguous and g.flags.writeable:
            if in_place:
                self.in_place = g
                self.request = comm.Iallreduce(MPI.IN_PLACE, g.reshape(-1), op=MPI.SUM)
                return
            self._buffer(g.size)
            self.request = comm.Iallreduce(g.reshape(-1), self.buffer, op=MPI.SUM)
            return
        self._buffer(sum(g.size for g in grads))
        np.concatenate([np.asarray(g, self.wire).reshape(-1) for g in grads], out=self.buffer)
        self.request = comm.Iallreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)

    def _buffer(self, n):
        if self.buffer is None or self.buffer.size != n:
            self.buffer = np.empty(n, self.wire)

    def sums(self, grads):
        """(key, sum) per key: the gradient itself when summed in place, else views of the
        bucket's buffer shaped like each gradient."""
        if self.in_place is not None:
            yield self.keys[0], self.in_place
            return
        offset = 0
        for key, g in zip(self.keys, grads):
            yield key, self.buffer[offset:offset + g.size].reshape(g.shape)
            offset += g.size


class _Progress:
    """The communication thread: waits on the oldest started collective until it completes,
    testing it every _POLL_S (see the module docstring), so transfers move on while the caller
    computes. `take()` hands the collectives not complete yet back to the caller, who then
    waits on them itself: at the step, spinning on MPI_Test finishes a transfer sooner than a
    sleeping poll, and MPI forbids two threads to complete one request."""

    def __init__(self, MPI, timeout):
        from ..dist import native_wait
        self._MPI, self._timeout = MPI, timeout
        self._native = native_wait if hasattr(MPI, "_addressof") and native_wait.available() else None
        self._wake = threading.Condition(threading.Lock())
        self._inflight = deque()
        self._busy = False              # the thread is testing inflight[0] without the lock
        self._stop = ctypes.c_int32(0)  # set: the native wait returns at its next test
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="graphc-allreduce-progress", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            with self._wake:
                while not self._inflight and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                job = self._inflight[0]
                self._busy = True
            finished, error = False, None
            try:
                if self._native is not None:
                    # without the GIL for up to a second at a time
                    finished = self._native.test_until(self._MPI, job.request, self._stop, _POLL_S, int(1 / _POLL_S))
                else:
                    finished = job.request.Test()
                    if not finished:
                        time.sleep(_POLL_S)
            except Exception as e:  # noqa: BLE001 (the caller raises it at the step)
                finished, error = True, e
            with self._wake:
                self._busy = False
                if not finished and time.monotonic() > job.deadline:
                    finished, error = True, f"not complete after {self._timeout:g} s"
                if finished and self._inflight and self._inflight[0] is job:
                    job.error = error
                    self._inflight.popleft()
                    job.done.set()
                self._wake.notify_all()

    def submit(self, job):
        with self._wake:
            job.deadline = time.monotonic() + self._timeout
            self._inflight.append(job)
            self._wake.notify_all()

    def take(self):
        """The submitted collectives not complete yet; the thread stops testing them."""
        with self._wake:
            self._stop.value = 1
            while self._busy:
                self._wake.wait()
            jobs = list(self._inflight)
            self._inflight.clear()
            self._stop.value = 0
        return jobs

    def stop(self):
        with self._wake:
            self._stopped = True
            self._stop.value = 1
            self._wake.notify_all()


class OverlapReducer:
    """Sums a Trainer's gradients over the workers of its store as backward produces them."""

    def __init__(self, store, params, keys, update_on_kvstore, owner=None):
        transport = store._transport
        self._owner = owner             # a weakref to the Trainer: a parameter moved on is not ours
        self._in_place = not update_on_kvstore
        self._store = store
        self._world, self._comm, self._MPI = transport._world, transport._comm, transport._MPI
        self._params = params           # the Trainer's parameter list (keys index it)
        self.keys = tuple(keys)
        entries = [(k, int(np.prod(params[k].shape)), params[k].list_grad()[0]._data.dtype)
                   for k in reversed(self.keys)]
        self.plan = [_Collective(i, wire, ks, direct) for i, (wire, ks, direct) in enumerate(plan_buckets(entries))]
        self._bucket_of = {k: c for c in self.plan for k in c.keys}
        self._lock = threading.Lock()       # hooks may fire from several backward threads
        self._progress = _Progress(self._MPI, self._world.timeout)
        self._hooked = {}                   # key -> the data array the hook is on
        self._hooks = {}                    # key -> (ready hook, before-write hook) registered for it
        self.trace = None                   # a list to record (event, detail) into (tests)
        self._closed = False
        self._reset()
        self._hook_all()
        self._world.at_finish(self.close)

    # -- hooks ----------------------------------------------------------------------------------
    def _hook_all(self):
        from .. import autograd
        for k in self.keys:
            arr = self._params[k].list_data()[0]
            old = self._hooked.get(k)
            if old is arr:
                continue
            if old is not None:
                autograd._remove_grad_ready_hook(old, *self._hooks[k])
            self._hooks[k] = (lambda _x, k=k: self._ready(k), lambda _x, k=k: self._before_write(k))
            autograd._add_grad_ready_hook(arr, *self._hooks[k])
            self._hooked[k] = arr

    def close(self):
        """Finish what this round started, remove the hooks and end the communication thread
        (the Trainer is gone, or the process ends: MPI_Finalize must not meet a test in flight)."""
        from .. import autograd
        if self._closed:
            return
        self._closed = True
        self.abandon()
        for k, arr in self._hooked.items():
            autograd._remove_grad_ready_hook(arr, *self._hooks[k])
        self._hooked.clear()
        self._progress.stop()

    def _reset(self):
        self._ready_keys = set()
        self._started = 0               # buckets plan[:started] have started
        self._stale = False

    def _record(self, event, detail):
        if self.trace is not None:
            self.trace.append((time.perf_counter(), event, detail))

    def _ready(self, key):
        from .. import device
        if self._owner is not None and self._params[key]._trainer is not self._owner():
            return                      # the parameter belongs to another Trainer now
        with self._lock:
            self._record("ready", key)
            if device.MULTI:
                # several devices in use: a gradient may still be queued on its device, not
                # written yet; sum the ordinary way (the store waits for queued values)
                self._stale = True
                return
            if self._bucket_of[key].index < self._started:
                self._stale = True      # written again after its sum started: see the docstring
                return
            self._ready_keys.add(key)
            while self._started < len(self.plan) and all(k in self._ready_keys for k in self.plan[self._started].keys):
                self._start(self.plan[self._started], threaded=True)

    def _before_write(self, key):
        """Backward is about to write key's gradient: if its sum has started this round, MPI
        must be done with that memory first, and the round is stale."""
        with self._lock:
            if self._bucket_of[key].index >= self._started:
                return
            self._stale = True
            self._finish(self.plan[:self._started])

    def _grads(self, bucket):
        return [self._params[k].list_grad()[0]._data for k in bucket.keys]

    def _start(self, bucket, threaded):
        bucket.start(self._comm, self._MPI, self._grads(bucket), self._in_place and not threaded)
        bucket.threaded = threaded
        self._started += 1
        self._record("start", bucket.index)
        if threaded:
            self._progress.submit(bucket)

    # -- the flush --------------------------------------------------------------------------------
    def flush(self, update_on_kvstore):
        """Finish this round's sums and hand them over; False (nothing handed over) when the
        round is stale, and the caller sums the ordinary way."""
        if self._store._compression is not None:
            self.abandon()              # compression set after the Trainer made this reducer
            return False
        with self._lock:
            while self._started < len(self.plan):
                self._start(self.plan[self._started], threaded=False)
            started, stale = self.plan[:self._started], self._stale
            self._reset()
        self._finish(started)
        self._record("flushed", len(started))
        if stale:
            return False
        if update_on_kvstore:
            self._update_on_store()
        else:
            self._write_sums()
        self._hook_all()        # a parameter whose array was replaced keeps its hook
        return True

    def abandon(self):
        """Wait for whatever this round started and forget it (the caller sums the ordinary way)."""
        with self._lock:
            started = self.plan[:self._started]
            self._reset()
        self._finish(started)

    def _finish(self, started):
        """Wait for the collectives `started` (buckets of this round) on this thread, with
        World's deadline and its dead-peer check: those the communication thread has not seen
        complete are taken back from it."""
        taken = self._progress.take()
        requests = [b.request for b in taken] + [b.request for b in started if not b.threaded and b.request is not None]
        if requests:
            keys = [k for b in started for k in b.keys]
            self._world.wait(requests, f"kvstore all-reduce of keys {keys} (overlapped with backward)")
        for b in taken:
            b.done.set()
        for b in started:
            if not b.threaded:
                b.request = None
            if b.error is not None:
                self._world.fail(DistributedError(f"graphc.dist: {self._world.me}: kvstore all-reduce of keys "
                                                  f"{b.keys} failed: {b.error}"))

    def _write_sums(self):
        """update_on_kvstore=False: the sums into the gradients (the store keeps them or not,
        as its own pushpull would: store.py _keeps_sums)."""
        store = self._store
        for bucket in self.plan:
            grads = self._grads(bucket)
            for (key, total), g in zip(bucket.sums(grads), grads):
                if total is not g:
                    np.copyto(g, total, casting="unsafe")
                if store._keeps_sums:
                    np.copyto(store._store[key]._data, g)
                else:
                    store._unkept.add(key)

    def _update_on_store(self):
        """update_on_kvstore=True: the store's updater on each summed gradient, keys in the
        order a distributed store's push updates them (last key first), then each parameter's
        copy pulled from the store."""
        store = self._store
        sums = {}
        for bucket in self.plan:
            for key, total in bucket.sums(self._grads(bucket)):
                sums[key] = total
        for key in sorted(sums, key=lambda k: store._order[k], reverse=True):
            stored = store._store[key]
            merged = sums[key].astype(stored._data.dtype, copy=False)
            store._updater(key, NDArray(merged, stored.context), stored)
            for out in self._params[key].list_data():
                out._data[...] = stored._data


def reducer_for(store, params, keys, update_on_kvstore, owner=None):
    """An OverlapReducer for a Trainer's store and parameters, or None where overlap does not
    apply: turned off, not a synchronous distributed store over MPI, one worker, gradient
    compression, a parameter on several devices of this process, or grad_req other than
    'write' on one of `keys` (the positions in `params` of the parameters trained here)."""
    from .mpi_transport import MPITransport
    from .store import KVStore
    if not isinstance(store, KVStore) or not isinstance(store._transport, MPITransport):
        return None
    if not overlap_enabled(store._transport._world):
        return None
    if "dist" not in store.type or "async" in store.type or store.num_workers < 2 or store._compression is not None:
        return None
    if update_on_kvstore and store._updater is None:
        return None
    if not keys or any(len(params[k].list_ctx()) != 1 or params[k].grad_req != "write" for k in keys):
        return None
    import weakref
    reducer = OverlapReducer(store, params, keys, update_on_kvstore,
                             weakref.ref(owner) if owner is not None else None)
    if owner is not None:
        weakref.finalize(owner, reducer.close)      # no hooks and no thread left behind
    return reducer
