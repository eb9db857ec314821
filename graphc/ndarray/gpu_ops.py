"""Eager operators on GPU arrays: each application runs as a one-node GPU program.

Why one-node programs: the GPU backend already turns any graph into device code (kernels,
cuBLAS GEMMs, host steps for operators that only have a numpy reference: runtime/cuda/
program.py), so an eager operator is the one-node graph of its application, compiled once per
signature (operator, attributes, input shapes and dtypes, device, training mode) and run on the
inputs' device buffers. Results stay on the device; nothing is downloaded.

Exceptions, run on the host (inputs downloaded, the numpy reference, outputs uploaded):
- operators that draw random numbers (`op.random`: Dropout, the samplers): the reference draws
  from graphc's global generator, so `mx.random.seed(s)` gives the same values on the GPU as on
  the CPU (MXNet's GPU generator differs from its CPU one; graphc's does not);
- a signature whose program fails to build: warned about once, then always on the host (the
  reference still answers; `stats()['failed']` counts them).

Operators that update an input (BatchNorm's moving statistics, `op.mutates`) write the new
value into that input's device memory, as on the CPU. Every input must be on the same GPU:
anything else is MXNet's error naming the operator and both devices. Running out of device
memory is an error (DeviceOutOfMemory), never a silent move to the host.

Autograd: an application is recorded as on the CPU (its operator and attributes on the tape);
its gradient rule runs with the GPU as the current context and creation operators placed on it,
so backward() is GPU operators again and .grad buffers stay on the device.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np

from .. import autograd, random as _random
from ..device import Context
from ..ops.errors import GraphcError
from ..ops.registry import get_op, has_op
from ..runtime import trace as _trace
from ..runtime.cuda.driver import DeviceOutOfMemory, get_driver
from .gpu import _RAW, GpuNDArray, GpuStorage, _init_fields, device_buffer, storage, write_buffer
from .ndarray import NDArray

MAX_PROGRAMS = 512

_lock = threading.Lock()
_entries: dict = {}          # signature -> _Entry
_driver = None               # the driver the entries' programs were loaded by
_stats = {"program_calls": 0, "host_calls": 0, "compiled": 0, "failed": 0}


class _Entry:
    """One signature: its output types and its program (None: the host runs it), with what
    each call would otherwise recompute: (shape, dtype) per output, the visible output count."""
    __slots__ = ("out_types", "program", "out_layouts", "n_visible")

    def __init__(self, out_types, program, n_visible):
        self.out_types, self.program, self.n_visible = out_types, program, n_visible
        self.out_layouts = [(tuple(t.shape), np.dtype(t.dtype)) for t in out_types]


def invoke(op, parsed, inputs, name=None):
    """ndarray.invoke for operators whose first input is a GPU array."""
    ctx = inputs[0]._ctx
    for i, x in enumerate(inputs[1:], 2):
        if type(x) is not GpuNDArray or (x._ctx is not ctx and x._ctx != ctx):
            raise GraphcError(f"Operator {op.name} require all inputs live on the same context. But the first "
                              f"argument is on {ctx} while the {i}-th argument is on "
                              f"{getattr(x, 'context', type(x).__name__)}")
    # (the training flag only matters to ops that read it: the others compile once, not once
    # for record() and once outside it)
    training = autograd.is_training() if op.uses_training else False
    # the signature, as one flat tuple (the driver: a reset driver's programs are stale)
    key = (op.name, parsed, ctx.device_id, training, get_driver(),
           *[(st.shape, st.dtype) for st in map(_RAW.__get__, inputs)])
    try:
        entry = _entries.get(key)
    except TypeError:       # an attribute value that does not hash: built each time (compile_graph caches)
        key = entry = None
    if entry is None:
        _forget_other_driver()
        entry = _entry(op, parsed, inputs, name, key, ctx, training)
    t0 = _trace.now() if _trace.imperative else 0
    if entry.program is not None:
        results = _run_program(entry, inputs, ctx)
    else:
        results = _run_on_host(op, parsed, inputs, ctx, training)
    if t0:      # on the 'gpu/k' track, until the device is done (runtime/trace.py)
        _trace.gpu_span(op.name, "operator", t0, ctx.device_id, get_driver().synchronize)
    for out_index, in_index in op.mutates:
        # auxiliary state (BatchNorm's moving mean/var): its new value, written into the input
        write_buffer(inputs[in_index], device_buffer(results[out_index]))
    if autograd.is_recording() and op.gradient is not None and any(autograd.needs_grad(x) for x in inputs):
        _record(op, parsed, inputs, results, ctx)
    n = entry.n_visible
    return results[0] if n == 1 else list(results[:n])


def _record(op, parsed, inputs, results, ctx):
    """autograd.record_op, with the gradient rule run on the op's GPU: a rule that creates an
    array from nothing (pick's one-hot positions: F._arange(...)) gets it on that GPU; the
    operators' `ctx` attribute defaults to cpu(0) (see _OnDevice)."""
    def backward(F, ins, outs, ograds):
        with Context(ctx):          # (a new object: Context.__enter__ keeps its own old value)
            return op.gradient(_on_device(F, ctx), ins, outs, ograds, parsed)
    node = autograd.record_custom(inputs, results, backward, op.name)
    node.op, node.attrs = op, parsed


class _OnDevice:
    """The eager namespace F of a gradient rule, with creation operators (those taking `ctx`:
    _arange, _full, _zeros, the samplers) placed on `ctx` unless the rule names a device."""

    def __init__(self, F, ctx):
        self._F, self._ctx = F, str(ctx)

    def __getattr__(self, name):
        fn = getattr(self._F, name)
        if not has_op(name) or "ctx" not in get_op(name).attrs:
            return fn
        ctx = self._ctx

        def create(*args, **kwargs):
            kwargs.setdefault("ctx", ctx)
            return fn(*args, **kwargs)
        return create


_namespaces: dict = {}


def _on_device(F, ctx):
    key = (id(F), ctx)
    ns = _namespaces.get(key)
    if ns is None or ns._F is not F:
        ns = _namespaces[key] = _OnDevice(F, ctx)
    return ns


def _entry(op, parsed, inputs, name, key, ctx, training):
    """Infer (errors name the op and node) and, unless the host must run it, compile."""
    in_types = [x._type() for x in inputs]
    out_types = op.infer_types(in_types, parsed, f"'{name}'" if name else "")
    program = None
    if not op.random:
        try:
            program = _compile(op, parsed, in_types, training, ctx.device_id)
        except DeviceOutOfMemory:
            raise
        except Exception as exc:        # noqa: BLE001 - the numpy reference still answers
            warnings.warn(f"graphc eager {op.name} {[t.shape for t in in_types]} on {ctx}: GPU program "
                          f"failed ({type(exc).__name__}: {exc}); running it on the host",
                          RuntimeWarning, stacklevel=4)
            _stats["failed"] += 1
        else:
            _stats["compiled"] += 1
    entry = _Entry(out_types, program, op.n_visible(parsed))
    if key is not None:
        with _lock:
            if len(_entries) >= MAX_PROGRAMS:
                _entries.clear()
            _entries[key] = entry
    return entry


def _forget_other_driver():
    """Programs hold modules of the driver they were loaded by; after reset_driver() (tests
    switching the simulator) they are stale."""
    global _driver
    d = get_driver()
    if d is not _driver:
        with _lock:
            _entries.clear()
        _driver = d


def _compile(op, parsed, in_types, training, device):
    """The GPU program of the one-node graph op(in_types) with all outputs (hidden ones too:
    BatchNorm's new moving statistics)."""
    from ..compiler import compile_graph
    from ..ops.builder import GraphBuilder
    from ..runtime.cuda.program import GpuProgram
    b = GraphBuilder(f"eager_gpu_{op.name}")
    ins = [b.var(f"in{i}", t, "input") for i, t in enumerate(in_types)]
    node = b.emit(op.name, [h.value for h in ins], dict(parsed))
    graph = b.build([node.out(i) for i in range(len(node.types))])
    program = compile_graph(graph, training=training)     # (its device: the types' gpu(k))
    if not isinstance(program, GpuProgram):
        raise GraphcError(f"compile_graph gave a {type(program).__name__} for a graph on gpu({device})")
    return program


def _run_program(entry, inputs, ctx):
    _stats["program_calls"] += 1
    bufs = [_RAW.__get__(x).device_buffer() for x in inputs]
    outs = entry.program.run(bufs, rng=_random.generator())
    in_ptrs = [b.ptr for b in bufs if b.nbytes]
    device, results = ctx.device_id, []
    for buf, (shape, dtype) in zip(outs, entry.out_layouts):
        arr = GpuNDArray.__new__(GpuNDArray)
        _init_fields(arr, GpuStorage(device, shape, dtype, buf=buf), ctx)
        if buf.nbytes and buf.ptr in in_ptrs:
            # an output that is an input's own memory (an identity the program did not copy):
            # the result gets its own, so that writing one never changes the other
            arr = arr.copy()
        results.append(arr)
    return results


def _run_on_host(op, parsed, inputs, ctx, training):
    _stats["host_calls"] += 1
    arrays = [storage(x).download() for x in inputs]
    outs = op.run(arrays, parsed, rng=_random.generator(), training=training)
    return [NDArray(np.asarray(o), ctx) for o in outs]      # uploaded (gpu.adopt)


def stats() -> dict:
    """program_calls / host_calls: eager applications run each way; compiled / failed: signatures."""
    return dict(_stats, signatures=len(_entries))


def clear() -> None:
    """Forget every compiled signature (tests; after the driver was reset)."""
    with _lock:
        _entries.clear()
        for k in _stats:
            _stats[k] = 0


__all__ = ["invoke", "stats", "clear", "MAX_PROGRAMS"]
