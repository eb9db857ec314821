"""Arrays whose data is pending: what an NDArray is while its device's dispatcher still has work
queued that touches it (graphc/engine.py).

An array that a queued job reads, writes or produces becomes a PendingNDArray (its class is
switched, no copy): every access to its data (`_data`, so asnumpy, printing, numpy conversion,
an optimizer's update, the kvstore's sums, any eager operator that is not queued itself) waits
for the last job that touches it, and re-raises that job's failure when the data it should hold
was never made. Its shape and dtype never wait: they are known when the job is queued (the
placeholder in the data slot has them). When that job finishes, the array becomes a plain
NDArray again, so code that runs after the work is done pays nothing. A dispatcher reads the
data without waiting: its queue runs in order, and before a job starts it has waited for the
jobs of other queues that write what it reads (its `deps`, recorded when it was queued).

Marking reads as well as writes is deliberate: a job reading the weights makes a later write of
the weights from Python (the trainer's update) wait for it, so no write ever lands under a
running program. A read from Python waits too, which costs nothing in the training loop (the
trainer waits for the gradients anyway).

An input that lives on another device is waited for and copied when the job is queued (its
value at that point of the program), so a device's jobs never wait for another device's.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from .. import autograd, engine as _engine, random as _random
from ..ops.errors import GraphcError
from ..ops.types import TensorType
from .ndarray import DescribedWithoutData, NDArray, finish_invoke

_RAW = NDArray.__dict__["_data"]         # the slot itself (no waiting)
_lock = threading.Lock()                 # marking and releasing arrays


def _writer(arr, job):
    """The job whose output `arr`'s pending value is (None: its value is already made)."""
    if job is None:
        return None
    if job.writes is not None and id(arr) in job.writes:
        return job
    src = job.sources
    return src.get(id(arr)) if src else None


class PendingNDArray(DescribedWithoutData, NDArray):
    """An NDArray with queued work on it; see the module docstring. Never constructed directly:
    NDArrays switch to this class when queued work touches them, and back when it is done."""

    __slots__ = ()

    @property
    def _data(self):
        job = self._job
        if job is not None and not _engine.on_dispatcher():
            job.wait()
            writer = _writer(self, job)
            if writer is not None and writer.error is not None:
                _engine.reported(writer.error)
                raise writer.error
        return _RAW.__get__(self)

    @_data.setter
    def _data(self, value):
        # a whole new value: wait for the queued work, then the array holds the new value even
        # if that work failed (nothing reads the failed result any more)
        job = self._job
        if job is not None and not _engine.on_dispatcher():
            job.wait()
            _RAW.__set__(self, value)
            with _lock:
                if self._job is job:
                    self._job = None
                    self.__class__ = NDArray
            return
        _RAW.__set__(self, value)

    def _type(self):
        raw = _RAW.__get__(self)
        return TensorType(raw.shape, raw.dtype, str(self._ctx))

    def wait_to_read(self):
        self._data  # noqa: B018 - waits, and raises the failure of the work that makes it
        return self


def is_pending(x) -> bool:
    return type(x) is PendingNDArray


def new_output(shape, dtype, ctx) -> PendingNDArray:
    """An array a queued job will fill: shape and dtype now, data when the job has run."""
    arr = PendingNDArray.__new__(PendingNDArray)
    _RAW.__set__(arr, np.broadcast_to(np.zeros((), np.dtype(dtype)), tuple(shape)))
    arr._ctx = ctx
    arr._entry = arr._grad = arr._job = None
    arr._grad_req = "null"
    arr._fresh_grad = False
    return arr


def _release(job):
    """After `job`: arrays whose last queued work it was become plain NDArrays again, except
    those whose value a failed job should have made (they keep raising its error)."""
    touched, job.touched = job.touched, None
    if job.error is None:
        job.sources = None       # its inputs were all made: nothing to inherit from it any more
    with _lock:
        for arr in touched:
            if arr._job is not job:
                continue         # queued work after this job touches it too
            if job.error is not None:
                writer = _writer(arr, job)
                if writer is not None and writer.error is not None:
                    continue     # poisoned: readers re-raise the failure
            arr._job = None
            arr.__class__ = NDArray


def run_async(ctx, fn, reads=(), writes=(), outputs=(), overwrites=(), name="", after=()):
    """Queue fn on ctx's dispatcher. fn returns one numpy array per output (which become the
    outputs' data); it may read `reads`, update `writes` (read and written) and fill
    `overwrites` (written whole, their old value unread, so an earlier failure that left them
    unmade does not pass on) in place, all NDArrays of ctx, through `_data`. `after`: earlier
    jobs of ctx whose failure this one inherits (data passed outside arrays). Returns the Job.
    Called on ctx's own dispatcher, fn runs at once."""
    device = ctx.device_id
    outputs = list(outputs)

    def body():
        values = fn()
        for out, value in zip(outputs, values):
            value = np.asarray(value)
            placeholder = _RAW.__get__(out)
            if value.shape != placeholder.shape:
                raise ValueError(f"{name}: produced shape {value.shape} for an output announced as "
                                 f"{placeholder.shape}")
            _RAW.__set__(out, value)

    job = _engine.Job(body, device, name, on_done=_release)
    overwrites = list(overwrites)
    touched = list(reads) + list(writes) + outputs + overwrites
    job.writes = {id(a) for a in writes} | {id(a) for a in outputs} | {id(a) for a in overwrites}
    sources, deps = {}, list(after)
    with _lock:
        for arr in touched[:len(touched) - len(outputs) - len(overwrites)]:
            prev = arr._job if type(arr) is PendingNDArray else None
            w = _writer(arr, prev)
            if w is not None and id(arr) not in sources:
                sources[id(arr)] = w
                if w not in deps:
                    deps.append(w)
        job.sources, job.deps, job.touched = sources, deps, touched
        for arr in touched:
            arr._job = job
            if type(arr) is NDArray:
                arr.__class__ = PendingNDArray
    return _engine.push(job)


def _after_fork_in_child():
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def local_value(x, ctx):
    """x's data for a job of `ctx`: the array itself when it lives there, else (another device)
    a copy of its value now, waited for first."""
    if x._ctx == ctx:
        return x
    return NDArray(np.array(x._data, copy=True), ctx)


__all__ = ["PendingNDArray", "is_pending", "new_output", "run_async", "local_value"]


# -- the operations that queue work (called by ndarray.py once more than one device is in use) ---
def _queued(ctx) -> bool:
    """Whether ctx's work goes through a dispatcher (CPU devices; a GPU label runs here)."""
    return ctx.device_type == "cpu"


def _kind(ctx) -> str:
    return "gpu" if ctx.device_type == "gpu" else "cpu"


def invoke_multi(op, parsed, inputs, name):
    """ndarray.invoke with several devices in use. As in MXNet, inputs must share a device type
    (cpu(0) with cpu(1) is allowed: the op runs on the first input's device, after the others'
    pending work, on a copy of their values); an input with queued work on the op's device makes
    the op queued too, so that a device's forward, loss and backward are all in its queue and
    the calling thread goes on to the next device."""
    ctx = inputs[0]._ctx
    kind = _kind(ctx)
    for i, x in enumerate(inputs[1:], 2):
        if _kind(x._ctx) != kind:
            raise GraphcError(f"Operator {op.name} require all inputs live on the same context. But the first "
                              f"argument is on {ctx} while the {i}-th argument is on {x._ctx}")
    args = [local_value(x, ctx) for x in inputs]
    where = f"'{name}'" if name else ""
    out_types = op.infer_types([a._type() for a in args], parsed, where)
    rng, training = _random.generator(), autograd.is_training()
    queue = _queued(ctx) and any(type(a) is PendingNDArray for a in args) and \
        all(d >= 0 for t in out_types for d in t.shape)
    if not queue:
        outs = op.run([a._data for a in args], parsed, rng=rng, training=training)
        results = [NDArray(np.asarray(o), ctx) for o in outs]
        for out_index, in_index in op.mutates:
            args[in_index]._data[...] = results[out_index]._data
        return finish_invoke(op, parsed, inputs, results)
    outputs = [new_output(t.shape, t.dtype, ctx) for t in out_types]

    def run():
        values = [np.asarray(o) for o in op.run([a._data for a in args], parsed, rng=rng, training=training)]
        for out_index, in_index in op.mutates:   # BatchNorm's moving statistics
            args[in_index]._data[...] = values[out_index]
        return values
    run_async(ctx, run, reads=args, writes=[args[i] for _, i in op.mutates], outputs=outputs, name=op.name)
    return finish_invoke(op, parsed, inputs, outputs)


def detach(x):
    """x.detach() of a pending array: the same data, once it is made, without the tape."""
    if not _queued(x._ctx):
        return NDArray(x._data, x._ctx)
    out = new_output(x.shape, x.dtype, x._ctx)
    run_async(x._ctx, lambda: [_RAW.__get__(x)], reads=[x], outputs=[out], name="detach")
    return out


def store_grad(dst, g, req):
    """NDArray._store_grad with pending work on either side: queued on dst's device."""
    ctx = dst._ctx
    src = local_value(g, ctx)
    if not _queued(ctx):
        if req == "add":
            dst._data += src._data
        else:
            dst._data[...] = src._data
        return

    def add():
        dst._data += src._data
        return ()

    def write():
        dst._data[...] = src._data
        return ()
    if req == "add":
        run_async(ctx, add, reads=[src], writes=[dst], name="grad += ")
    else:
        run_async(ctx, write, reads=[src], overwrites=[dst], name="grad = ")


def assign(dst, result, what):
    """dst[...] = result (an in-place operator's last step) with pending work on either side."""
    ctx = dst._ctx
    if ctx.device_type == "gpu":
        from .gpu import assign as gpu_assign      # on the device (gpu.py)
        return gpu_assign(dst, result, what)
    src = local_value(result, ctx)

    def write():
        data = dst._data
        if not data.flags.writeable:
            raise ValueError(f"{what}: the array is read-only")
        data[...] = src._data
        return ()
    if not _queued(ctx):
        write()
        return
    run_async(ctx, write, reads=[src], overwrites=[dst], name=what)
