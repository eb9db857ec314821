"""MPITransport: the Transport of the synchronous distributed stores ('dist_sync',
'dist_device_sync', 'dist_sync_device'), one worker per MPI rank.

Every wait goes through graphc.dist's World (a deadline, and a dead rank named), so a store
never hangs on a lost worker.

* `allreduce_stream` sums many keys with nonblocking MPI_Iallreduce calls, keys in the order
  the store gives them (the reverse of the parameters' order, the order backward produces
  gradients), each call started the moment its data is ready:
  - A key of at least GRAPHC_DIST_DIRECT_KB kilobytes (default 256) whose array is a
    C-contiguous float32/float64 buffer is summed in its own memory, never packed: in place
    (MPI_IN_PLACE) when the caller names that same array as the destination (a pushpull whose
    out is the gradient, what Trainer.allreduce_grads does), from the array straight into the
    destination when the caller names another one (the store's own copy), else into a buffer
    kept for the key. PyTorch DDP's bucket_cap idea, the other way round: packing a big key
    costs a copy of it and saves nothing, packing small keys saves a call (and its latency)
    per key.
  - Smaller keys (and float16 ones, which travel as float32) are packed into buckets of about
    GRAPHC_DIST_BUCKET_MB megabytes (default 25, DDP's size), each bucket's all-reduce
    starting when it is full. Bucket buffers are kept from one call to the next (bucket i of a
    call reuses bucket i's buffer): a fresh 2.7 MB buffer per call cost its page faults and ran
    the all-reduce at less than half the speed of MPI_Allreduce on a reused one; so the sums
    of packed keys are views that the next call overwrites, and the store copies what it keeps.
  Which keys go direct depends only on their sizes and dtypes (which kvstore.init made every
  worker agree on), never on the destinations a worker passes, so every worker starts the
  same collectives in the same order. The sum of an element is MPI's either way (a packed
  and a direct all-reduce of the same values give the same bits on 2 workers; on more, MPI
  may associate a three-way sum differently for different message sizes, on every worker
  alike). What overlaps here: each transfer with packing the next bucket and with the store's
  per-device sums and optimizer updates of keys that already arrived. Overlap with backward
  itself is kvstore/overlap.py's: a Trainer over a synchronous store starts its buckets from
  gradient-ready hooks while backward still runs (as DDP and Horovod do) and comes here only
  where that does not apply (its first step, gradient compression, grad_req='add', several
  devices per process, overlap off: GRAPHC_DIST_OVERLAP).
* With 2-bit compression (MXNet's dist stores compress what a worker sends), each worker
  quantises its sum against its own residual, the packed words are exchanged (MPI_Iallgather:
  16 values per 32-bit word, a sixteenth of the traffic) and every worker dequantises all
  workers' words and adds them in rank order, so every worker holds the same result.
* `agree` compares a description of a collective call (kvstore.init: keys, shapes, dtypes)
  across workers and fails on every worker, naming the key and each worker's value, when they
  differ; otherwise a mismatch would surface later as a hang or as silently wrong sums.
"""
from __future__ import annotations

import json
from collections import deque

import numpy as np

from ..dist.errors import DistributedError
from ..dist.settings import number_setting
from .transport import Transport

__all__ = ["MPITransport", "BUCKET_ENV", "DIRECT_ENV"]

BUCKET_ENV = "GRAPHC_DIST_BUCKET_MB"
DIRECT_ENV = "GRAPHC_DIST_DIRECT_KB"


def bucket_bytes() -> int:
    """GRAPHC_DIST_BUCKET_MB (default 25): the size of the buckets small keys are packed into."""
    return max(1, int(number_setting(BUCKET_ENV, "25", "megabytes") * 1024 * 1024))


def direct_bytes() -> int:
    """GRAPHC_DIST_DIRECT_KB (default 256): keys of at least this many bytes skip the buckets.
    Below it, a key's own MPI call (some tens of microseconds of latency) costs more than
    copying it into a bucket does."""
    return int(number_setting(DIRECT_ENV, "256", "kilobytes", allow_zero=True) * 1024)


def _wire_dtype(dtype):
    """The dtype a value travels in: MPI has no 16-bit float, so float16 sums in float32."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _summable_in_place(array, wire):
    """Whether MPI can read (and write) `array`'s own memory as a buffer of `wire` values."""
    return array.dtype == wire and array.flags.c_contiguous and array.flags.writeable


class _Direct:
    """One big key summed in its own memory (see the module docstring): `dest` is the array
    itself (MPI_IN_PLACE), another array of its shape and dtype, or a buffer kept for the key."""

    def __init__(self, key, array, dest):
        self.key, self.array, self.dest = key, array, dest
        self.request = None

    def keys(self):
        return [self.key]

    def start(self, comm, MPI):
        send = MPI.IN_PLACE if self.dest is self.array else self.array
        self.request = comm.Iallreduce(send, self.dest, op=MPI.SUM)

    def results(self):
        yield self.key, self.dest


class _Bucket:
    def __init__(self, dtype):
        self.dtype = dtype
        self.parts = []         # (key, array)
        self.nbytes = 0
        self.buffer = None
        self.request = None

    def add(self, key, array):
        self.parts.append((key, array))
        self.nbytes += array.size * self.dtype.itemsize

    def keys(self):
        return [k for k, _ in self.parts]

    def start(self, comm, MPI, buffer):
        """Pack the parts into `buffer` (at least nbytes long, of this bucket's dtype) and start
        summing it over the workers in place."""
        self.buffer = buffer[:self.nbytes // self.dtype.itemsize]
        np.concatenate([np.asarray(a, self.dtype).reshape(-1) for _, a in self.parts], out=self.buffer)
        self.request = comm.Iallreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)

    def results(self):
        offset = 0
        for key, array in self.parts:
            piece = self.buffer[offset:offset + array.size]
            offset += array.size
            yield key, piece.reshape(array.shape).astype(array.dtype, copy=False)


class MPITransport(Transport):
    """Sums over the workers of `comm` (an mpi4py communicator of `world`, a dist.World)."""

    def __init__(self, world, comm):
        self._world = world
        self._comm = comm
        self._MPI = world.MPI
        self._bucket_bytes = bucket_bytes()
        self._direct_bytes = direct_bytes()
        self._residuals: dict = {}
        self._buffers: dict = {}        # (bucket index in a call, dtype) -> buffer kept between calls
        self._key_buffers: dict = {}    # key -> buffer a big key without a destination is summed into

    def _buffer(self, index, dtype, nbytes):
        buffer = self._buffers.get((index, dtype))
        if buffer is None or buffer.nbytes < nbytes:
            buffer = self._buffers[(index, dtype)] = np.empty(nbytes // dtype.itemsize, dtype)
        return buffer

    @property
    def rank(self) -> int:
        return self._comm.Get_rank()

    @property
    def num_workers(self) -> int:
        return self._comm.Get_size()

    def _wait(self, requests, what):
        self._world.wait(requests, f"kvstore {what}")

    # -- sums -----------------------------------------------------------------------------------
    def allreduce(self, key, array, compression=None):
        if compression is not None:
            return self._compressed_allreduce(key, array, compression)
        for _, result in self.allreduce_stream([(key, array)]):
            return result.copy()        # the stream's result lives in a buffer the next call reuses

    def _direct(self, key, array, dest):
        """The _Direct job of a big key, or None when the key is packed. Decided by size and
        dtype alone, so that all workers start the same collectives."""
        wire = _wire_dtype(array.dtype)
        if array.nbytes < self._direct_bytes or array.dtype != wire or array.dtype.kind != "f":
            return None
        if not array.flags.c_contiguous:
            # still direct (the decision may not depend on layout, which workers need not share):
            # one copy into the key's buffer, summed there
            dest = None
        elif dest is not None:
            if dest is array:
                if not _summable_in_place(array, wire):
                    dest = None
            elif (dest.shape != array.shape or not _summable_in_place(dest, wire)
                  or np.shares_memory(dest, array)):
                dest = None
        if dest is None:
            dest = self._key_buffers.get(key)
            if dest is None or dest.shape != array.shape or dest.dtype != wire:
                dest = self._key_buffers[key] = np.empty(array.shape, wire)
            if not array.flags.c_contiguous:
                np.copyto(dest, array)
                array = dest
        return _Direct(key, array, dest)

    def allreduce_stream(self, items, compression=None):
        """Yield (key, sum over workers) for each item of `items` (which may be a lazy
        iterable), bucketed and overlapped as the module docstring says. An item is
        (key, array) or (key, array, dest): `dest` (None or an array of the key's shape) is
        where the caller would like the sum; `dest is array` asks for it in the array's own
        memory. A yielded sum is `dest` itself when the transport could write it there (the
        caller checks with `is`), else a view of a buffer the next call overwrites: copy what
        must outlive it."""
        if compression is not None:
            for key, array, *_ in items:
                yield key, self._compressed_allreduce(key, array, compression)
            return
        MPI = self._MPI
        inflight = deque()
        current = None
        launched = 0

        def launch(bucket):
            nonlocal launched
            bucket.start(self._comm, MPI, self._buffer(launched, bucket.dtype, bucket.nbytes))
            launched += 1
            inflight.append(bucket)

        try:
            for key, array, *dest in items:
                job = self._direct(key, array, dest[0] if dest else None)
                if job is not None:
                    job.start(self._comm, MPI)
                    inflight.append(job)
                    while inflight and inflight[0].request.Test():
                        yield from inflight.popleft().results()
                    continue
                wire = _wire_dtype(array.dtype)
                if current is not None and (current.dtype != wire or current.nbytes >= self._bucket_bytes):
                    launch(current)
                    current = None
                if current is None:
                    current = _Bucket(wire)
                current.add(key, array)
                # drive MPI's progress and hand back what has arrived, while packing goes on
                while inflight and inflight[0].request.Test():
                    yield from inflight.popleft().results()
            if current is not None:
                launch(current)
            while inflight:
                bucket = inflight[0]
                self._wait([bucket.request], f"all-reduce of keys {bucket.keys()}")
                inflight.popleft()
                yield from bucket.results()
        finally:
            # abandoned midway (the caller failed): MPI must be done with the kept buffers before
            # the next call packs into them
            if inflight:
                self._wait([b.request for b in inflight], "all-reduce of an abandoned push")

    def _compressed_allreduce(self, key, array, compression):
        if array.dtype != np.float32:
            raise DistributedError(f"kvstore push of key {key!r}: 2-bit compression takes float32 gradients, "
                                   f"got {array.dtype}")
        residual = self._residuals.get(key)
        if residual is None or residual.shape != array.shape:
            residual = self._residuals[key] = np.zeros(array.shape, np.float32)
        words = compression.quantize(array, residual, f"key {key!r}")
        gathered = np.empty(words.size * self.num_workers, np.float32)
        self._wait([self._comm.Iallgather(words, gathered)], f"compressed all-reduce of key {key!r}")
        total = np.zeros(array.size, np.float32)
        for part in gathered.reshape(self.num_workers, words.size):
            total += compression.dequantize(part, array.size)
        return total.reshape(array.shape)

    def residual(self, key):
        """This worker's compression residual for `key` (None before its first push)."""
        return self._residuals.get(key)

    # -- the rest of the contract ---------------------------------------------------------------
    def broadcast(self, key, array, root=0):
        wire = _wire_dtype(array.dtype)
        buffer = np.ascontiguousarray(array, wire).copy()
        self._wait([self._comm.Ibcast(buffer, root=root)], f"broadcast of key {key!r} from worker {root}")
        return buffer.astype(array.dtype, copy=False)

    def barrier(self):
        self._wait([self._comm.Ibarrier()], "barrier")

    def agree(self, op, entries):
        """Fail on every worker unless all workers pass equal `entries` (a list of (key, what)
        pairs describing this call, e.g. (key, 'shape (3, 4) float32'))."""
        mine = json.dumps([[repr(k), str(v)] for k, v in entries]).encode()
        sizes = np.zeros(self.num_workers, np.int64)
        self._wait([self._comm.Iallgather(np.array([len(mine)], np.int64), sizes)], f"{op} (comparing workers)")
        text = np.empty(int(sizes.sum()), np.uint8)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        mine_buf = np.frombuffer(mine, np.uint8) if mine else np.zeros(0, np.uint8)
        request = self._comm.Iallgatherv(mine_buf, [text, (sizes, offsets), self._MPI.BYTE])
        self._wait([request], f"{op} (comparing workers)")
        calls = [json.loads(text[o:o + n].tobytes()) for o, n in zip(offsets, sizes)]
        if all(c == calls[0] for c in calls):
            return
        message = _disagreement(op, calls)
        self._world.fail(DistributedError(f"graphc.dist: {self._world.me}: {message}"))


def _disagreement(op, calls):
    """One line naming the first entry the workers disagree on and every worker's value."""
    longest = max(len(c) for c in calls)
    for i in range(longest):
        row = [c[i] if i < len(c) else None for c in calls]
        if all(r == row[0] for r in row):
            continue
        keys = {r[0] for r in row if r is not None}
        if len(keys) == 1:
            key = keys.pop()
            values = "; ".join(f"worker {w} has {r[1]}" for w, r in enumerate(row))
            return f"{op}: the workers disagree about key {key}: {values}"
        values = "; ".join(f"worker {w} has {'key ' + r[0] + ' ' + r[1] if r else 'no more keys'}"
                           for w, r in enumerate(row))
        return f"{op}: the workers initialise different keys (entry {i} of the call): {values}"
    return f"{op}: the workers' calls differ"
