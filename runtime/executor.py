"""build_program: a fused, memory-planned Graph becomes a Program, one native entry per run of
compiled kernels.

The caller (the front end's `graphc.compiler.compile_graph`) runs the passes first: fusion
groups the graph into `_fused_*` nodes and memory planning places every value. This module
takes that result as data (`graphc.ops.fused`, `graphc.ops.memory_plan`) and never runs or
imports a pass: lower_graph (kernel IR steps) -> one LLVM module (every kernel plus an entry
function `void segN(void** args)` per maximal run of native steps) -> object code (cached in
memory and on disk) -> MCJIT. Nodes that only have a numpy reference (sort, lp pooling, custom ops, ...)
run from Python between native segments, on numpy views of the same arena; a graph without
such nodes is one ctypes call per forward.

The argument vector is laid out once: [inputs..., outputs..., constants..., arena per device],
then, for a program whose kernels draw random numbers (compiled Dropout), the frame's seed
buffer, which every call refills from the caller's rng (runtime/dropout_kernel.py).
`Program.__call__` fills the input and output pointers into a preallocated ctypes array and
calls; nothing else is allocated per call when the caller passes `outputs`.

Threads: that array and the arena are one call's working state (a `_Frame`). A program owns one
frame behind a lock; a caller that finds it taken (another Python thread is inside the program:
the native call releases the GIL) runs on a spare frame of its own, made on first need and kept
for the next such caller, so concurrent calls run in parallel and each gets its own result. The
single-threaded path pays one uncontended non-blocking lock acquire and nothing else.

Profiling: a program built with profile=True (GRAPHC_PROFILE=1) times each step into
Program.profile(). While mx.profiler runs (runtime/trace.py's flag, read once per call), any
program runs on such a profiled twin of itself, built on first need, and records each step as
a trace event; the unprofiled call path is unchanged apart from that one flag test.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time
import weakref

import numpy as np

from graphc.ops.errors import GraphcError
from graphc.ops.fused import format_fused
from graphc.ops.graph import Graph, format_graph
from graphc.ops.memory_plan import MemoryPlan
from graphc.ops.registry import get_op

from . import cache as _cache
from . import trace as _trace
from . import cpu_devices as _cpu_devices
from . import threads as _threads
from .lower import KernelStep, HostStep, lower_graph
from .dropout_kernel import SEED_WORDS
from .step_labels import kernel_owners, step_label
from .render_llvm import ModuleBuilder

_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _DEAD():
    """A weak reference that never resolves (no array cached yet)."""
    return None


def num_threads() -> int:
    for var in ("GRAPHC_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var)
        if v and v.isdigit() and int(v) > 0:
            return int(v)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def graph_description(graph: Graph, training: bool, nthreads: int) -> str:
    """The text the cache key hashes: the listing (types, attrs), constant bytes, the flags."""
    h = hashlib.sha256()
    for n in graph.nodes:
        if n.is_const:
            arr = n.attrs["value"]
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return f"{format_graph(graph)}\nconsts={h.hexdigest()}\ntraining={training}\nthreads={nthreads}"


class _Frame:
    """One call's working state: the ctypes argument vector (caller's pointers, constants, arena
    addresses), the arenas, and weak references to the arrays whose pointers args[] holds (a
    program must not keep its caller's buffers alive: a static_alloc pool would see them as
    still in use). Two calls running at once each need their own."""
    __slots__ = ("args", "arenas", "last_in", "last_out", "seed")

    def __init__(self, args, arenas, n_in, n_out, seed=None):
        self.args, self.arenas, self.seed = args, arenas, seed
        self.last_in = [_DEAD] * n_in
        self.last_out = [_DEAD] * n_out


# spare frames a program makes for concurrent callers, at most (each holds a whole arena); a
# caller beyond this waits for the program's own frame
MAX_FRAMES = max(8, 2 * num_threads())


class Program:
    """A compiled graph. Call with input arrays (graph.inputs order); optional `outputs` receive
    the results in place; returns the output arrays."""

    def __init__(self, graph, fused, plan, steps, segments, addrs, source, nthreads):
        self.graph, self.fused, self.plan, self.steps = graph, fused, plan, steps
        self.source = source              # 'compiled' | 'memory' | 'disk'
        self.nthreads = nthreads
        self.in_types = [n.types[0] for n in graph.inputs]
        self.out_types = [v.type for v in graph.outputs]
        self._in_dtypes = [np.dtype(t.dtype) for t in self.in_types]
        self._out_dtypes = [np.dtype(t.dtype) for t in self.out_types]
        self._in_shapes = [t.shape for t in self.in_types]
        self._out_shapes = [t.shape for t in self.out_types]
        self._consts = [np.ascontiguousarray(c.attrs["value"]) for c in plan.consts]
        self._devices = sorted(plan.arena_size)
        n_in, n_out, n_c = len(self.in_types), len(self.out_types), len(plan.consts)
        self._arena_slot = {dev: n_in + n_out + n_c + j for j, dev in enumerate(self._devices)}
        # kernels that draw random numbers (compiled Dropout) read a per-call seed from the slot
        # after the arenas; the frame's seed buffer is refilled from the caller's rng each call
        self._seeded = any(isinstance(s, KernelStep) and any(p.kind == "seed" for p in s.bindings.values())
                           for s in steps)
        # the program's own frame, used under _lock; concurrent callers take spares
        self._frame = self._new_frame()
        self._arenas = self._frame.arenas
        self._lock = threading.Lock()
        self._spares = []              # idle spare frames (list.pop/append are atomic)
        self._frames_made = 1
        self._frames_lock = threading.Lock()
        # the run: native segment functions and host steps, in order
        self._run = []
        for seg in segments:
            if isinstance(seg, str):
                self._run.append(_ENTRY(addrs[seg]))
            else:
                self._run.append(seg)
        self._pure_native = len(self._run) == 1 and not isinstance(self._run[0], HostStep)
        self._entry0 = self._run[0] if self._pure_native else None

    # -- frames ------------------------------------------------------------------------------
    def _new_frame(self) -> _Frame:
        """A fresh argument vector (constants and arena addresses filled in) with its arenas."""
        n_in, n_out, n_c = len(self.in_types), len(self.out_types), len(self._consts)
        n_slots = n_in + n_out + n_c + max(1, len(self._devices))
        args = (ctypes.c_void_p * (n_slots + (1 if self._seeded else 0)))()
        for i, c in enumerate(self._consts):
            args[n_in + n_out + i] = c.ctypes.data
        arenas = {}
        for dev in self._devices:
            size = self.plan.arena_size[dev]
            raw = np.zeros(size + 64, dtype=np.uint8)
            off = (-raw.ctypes.data) % 64
            arenas[dev] = raw[off:off + size]
            args[self._arena_slot[dev]] = arenas[dev].ctypes.data
        seed = None
        if self._seeded:
            seed = np.zeros(SEED_WORDS, dtype=np.int64)
            args[n_slots] = seed.ctypes.data
        return _Frame(args, arenas, n_in, n_out, seed)

    def _take_spare(self) -> _Frame | None:
        """An idle spare frame, a new one while fewer than MAX_FRAMES exist, else None."""
        try:
            return self._spares.pop()
        except IndexError:
            pass
        with self._frames_lock:
            if self._frames_made >= MAX_FRAMES:
                return None
            self._frames_made += 1
        return self._new_frame()

    # -- calling -----------------------------------------------------------------------------
    def __call__(self, inputs, outputs=None, rng=None):
        if _trace.symbolic:     # mx.profiler is running: the one test the unprofiled call pays
            return self._traced_call(inputs, outputs, rng)
        lock = self._lock
        if lock.acquire(False):
            try:
                return self._call_on(self._frame, inputs, outputs, rng)
            finally:
                lock.release()
        # another thread is inside this program: run beside it on a frame of our own (a
        # profiled program's timings are per program, so those calls take turns instead)
        frame = self._take_spare() if self._timings is None else None
        if frame is None:
            with lock:
                return self._call_on(self._frame, inputs, outputs, rng)
        try:
            return self._call_on(frame, inputs, outputs, rng)
        finally:
            self._spares.append(frame)

    def _check_inputs(self, frame, inputs):
        if len(inputs) != len(self.in_types):
            raise GraphcError(f"graph {self.graph.name}: expects {len(self.in_types)} inputs "
                              f"{[n.name for n in self.graph.inputs]}, got {len(inputs)}")
        args, last = frame.args, frame.last_in
        shapes, dtypes = self._in_shapes, self._in_dtypes
        for i, a in enumerate(inputs):
            if a is last[i]():
                # the same array object as last call (alive, so its buffer is the one args[]
                # points to; a resize that moves it changes its shape or needs no other
                # reference); shape and dtype can be reassigned in place, so those are checked
                if a.shape != shapes[i] or a.dtype != dtypes[i]:
                    self._bad_input(i, a)
                continue
            if type(a) is not np.ndarray or a.dtype != dtypes[i] or a.shape != shapes[i] \
                    or not a.flags.c_contiguous:
                self._bad_input(i, a)
            args[i] = a.ctypes.data
            last[i] = weakref.ref(a)

    def _bad_input(self, i, a):
        n = self.graph.inputs[i]
        t = self.in_types[i]
        if not isinstance(a, np.ndarray):
            raise GraphcError(f"graph {self.graph.name}: input {i} '{n.name}' must be a numpy array of "
                              f"{t.dtype}{list(t.shape)}, got {type(a).__name__}")
        what = []
        if a.shape != t.shape:
            what.append(f"shape {a.shape} (expected {t.shape})")
        if a.dtype != self._in_dtypes[i]:
            what.append(f"dtype {a.dtype} (expected {t.dtype})")
        if not a.flags.c_contiguous:
            what.append("non-contiguous memory (pass np.ascontiguousarray)")
        raise GraphcError(f"graph {self.graph.name}: input {i} '{n.name}' has {', '.join(what)}")

    def _call_on(self, frame, inputs, outputs, rng):
        """One call on `frame`, which the caller holds for the call's duration."""
        self._check_inputs(frame, inputs)
        n_in = len(self.in_types)
        args = frame.args
        if outputs is None:
            outputs = [np.empty(t.shape, dt) for t, dt in zip(self.out_types, self._out_dtypes)]
            for j, o in enumerate(outputs):
                args[n_in + j] = o.ctypes.data
                frame.last_out[j] = _DEAD
        else:
            if len(outputs) != len(self.out_types):
                raise GraphcError(f"graph {self.graph.name}: returns {len(self.out_types)} outputs, "
                                  f"{len(outputs)} output arrays given")
            last = frame.last_out
            for j, o in enumerate(outputs):
                if o is last[j]() and o.shape == self._out_shapes[j] and o.dtype == self._out_dtypes[j]:
                    continue
                t = self.out_types[j]
                if type(o) is not np.ndarray or o.dtype != self._out_dtypes[j] or o.shape != t.shape \
                        or not o.flags.c_contiguous or not o.flags.writeable:
                    raise GraphcError(f"graph {self.graph.name}: output array {j} must be a writeable "
                                      f"C-contiguous {t.dtype} array of shape {t.shape}")
                args[n_in + j] = o.ctypes.data
                last[j] = weakref.ref(o)
        if self._seeded:
            rng = rng if rng is not None else np.random.default_rng()
            frame.seed[:] = rng.integers(0, 1 << 32, size=SEED_WORDS, dtype=np.int64)
        if self._pure_native:
            self._entry0(args)
            return outputs
        rng = rng if rng is not None else np.random.default_rng()
        if self._timings is not None:
            return self._timed_run(frame, inputs, outputs, rng)
        for item in self._run:
            if isinstance(item, HostStep):
                self._host(item, frame.arenas, inputs, outputs, rng)
            else:
                item(args)
        return outputs

    _timings = None     # per item of _run: seconds summed over calls (profiled programs only)
    _twin = None        # this graph built with profile=True, made when mx.profiler first sees a call

    def _timed_run(self, frame, inputs, outputs, rng):
        clock, times = time.perf_counter_ns, self._timings
        record = _trace.symbolic
        for j, item in enumerate(self._run):
            t0 = clock()
            if isinstance(item, HostStep):
                self._host(item, frame.arenas, inputs, outputs, rng)
            else:
                item(frame.args)
            t1 = clock()
            times[j] += (t1 - t0) * 1e-9
            if record:
                kind, name, what = self._profile_labels[j]
                _trace.span(name, "kernel" if kind == "native" else "host", t0, t1, self.device,
                            {"graph": self.graph.name, "what": what})
        self._calls += 1
        return outputs

    def _traced_call(self, inputs, outputs, rng):
        """A call while mx.profiler records compiled programs: it runs on the profiling twin (one
        native call per kernel, each step timed and recorded) inside a span for the whole call.
        The twin, not this program, because a program built without profile=True runs its
        kernels fused into one native call that cannot be timed apart; building it here (cached
        like any program, recorded as a 'compile' span) profiles programs compiled before the
        profiler started. Calls on one program take turns while profiling: its timings are
        per program."""
        twin = self._profiling_twin()
        t0 = _trace.now()
        with twin._lock:
            result = twin._call_on(twin._frame, inputs, outputs, rng)
        _trace.span(self.graph.name, "program", t0, _trace.now(), self.device,
                    {"steps": len(twin._run), "training": self.training})
        if _trace.memory:
            _trace.counter(f"Memory: cpu/{self.device}", "Device Storage",
                           sum(self.plan.arena_size.values()), self.device)
        return result

    def _profiling_twin(self) -> "Program":
        if self._timings is not None:
            return self
        twin = self._twin
        if twin is None:
            t0 = _trace.now()
            twin = build_program(self.graph, self.fused, self.plan, training=self.training, profile=True,
                                 device=self.device)
            _trace.span(f"compile {self.graph.name} (profiled)", "compile", t0, _trace.now(), self.device,
                        {"source": twin.source})
            self._twin = twin
        return twin

    def profile(self) -> list:
        """Per step of a program built with profile=True (GRAPHC_PROFILE=1): rows of
        (seconds per call, 'native' | 'host', op or kernel, what it computes), slowest first.
        Each kernel runs as its own native call here, so a row includes one call's overhead
        (about a microsecond); use it to find where the time goes, not for totals."""
        if self._timings is None:
            raise GraphcError(f"graph {self.graph.name}: not built with profile=True (or GRAPHC_PROFILE=1)")
        rows = []
        calls = max(self._calls, 1)
        for t, what in zip(self._timings, self._profile_labels):
            rows.append((t / calls,) + what)
        return sorted(rows, key=lambda r: -r[0])

    def _view(self, placement, type_, arenas, inputs, outputs):
        dt = np.dtype(type_.dtype)
        if placement.kind == "input":
            return inputs[placement.index].reshape(type_.shape)
        if placement.kind == "output":
            return outputs[placement.index].reshape(-1).view(np.uint8)[:placement.nbytes].view(dt).reshape(type_.shape)
        if placement.kind == "const":
            return self._consts[placement.index].reshape(type_.shape)
        arena = arenas[placement.device]
        return arena[placement.offset:placement.offset + placement.nbytes].view(dt).reshape(type_.shape)

    def _host(self, step: HostStep, arenas, inputs, outputs, rng):
        node = step.node
        args = [self._view(p, v.type, arenas, inputs, outputs) for p, v in zip(step.inputs, node.inputs)]
        res = get_op(node.op).run(args, node.attrs, rng=rng, training=self.training)
        for p, t, r in zip(step.outputs, node.types, res):
            dst = self._view(p, t, arenas, inputs, outputs)
            np.copyto(dst, np.asarray(r).reshape(t.shape), casting="unsafe")

    training = False
    device = 0          # the CPU device (cpu(k)) whose pool runs the program

    def __str__(self):
        return format_fused(self.fused)

    def kernels(self):
        return [s.kernel for s in self.steps if isinstance(s, KernelStep)]


def _slot_of(placement, n_in, n_out, n_c, arena_slot):
    """(argument slot, byte offset): a kernel may bind part of a buffer (one image of a batch).
    The per-call seed (kind 'seed') sits after the arenas (Program._new_frame puts it there)."""
    if placement.kind == "seed":
        return n_in + n_out + n_c + max(1, len(arena_slot)), 0
    if placement.kind == "input":
        return placement.index, placement.offset
    if placement.kind == "output":
        return n_in + placement.index, placement.offset
    if placement.kind == "const":
        return n_in + n_out + placement.index, placement.offset
    return arena_slot[placement.device], placement.offset


def _check_graphs_agree(graph: Graph, fused: Graph, plan: MemoryPlan) -> None:
    """`fused` must take and return what `graph` does (the Program binds the caller's arrays by
    graph's signature and runs fused's nodes), and `plan` must be fused's plan (placements are
    keyed by node identity, so another graph's plan would fail far from here)."""
    g_in = [n.types[0] for n in graph.inputs]
    f_in = [n.types[0] for n in fused.inputs]
    g_out = [v.type for v in graph.outputs]
    f_out = [v.type for v in fused.outputs]
    if g_in != f_in or g_out != f_out:
        raise GraphcError(f"build_program: graph {fused.name!r} is not a transform of {graph.name!r}: it takes "
                          f"{[str(t) for t in f_in]} and returns {[str(t) for t in f_out]}, but the graph takes "
                          f"{[str(t) for t in g_in]} and returns {[str(t) for t in g_out]}")
    ops = [n for n in fused.nodes if not n.is_var and not n.is_const]
    if len(ops) != len(plan.steps) or any(a is not b for a, b in zip(ops, plan.steps)):
        raise GraphcError(f"build_program: the memory plan was not made for graph {fused.name!r} "
                          f"(its steps are not the graph's {len(ops)} op nodes in order); plan the graph you pass")


def profiling_wanted() -> bool:
    return os.environ.get("GRAPHC_PROFILE", "") not in ("", "0")


def _steps_description(seg_calls) -> str:
    """The generated code's part of the cache key: per call, its kernel's name (a hash of the
    kernel's whole text, lower.name_by_content), the work estimate that picks how a GEMM is split
    (not in the text) and where its buffers are bound (slot, byte offset: the memory plan, baked
    into the entry's tables). Hashing the kernels' text itself again cost ResNet-18's training
    step 2 s on every compile, cache hits included."""
    lines = []
    for i, calls in enumerate(seg_calls):
        lines.append(f"seg{i}")
        lines.extend(f"{k.name} {k.work} {where}" for k, where in calls)
    return "\n".join(lines)


def build_program(graph: Graph, fused: Graph, plan: MemoryPlan, *, training: bool = False,
                  cache: bool = True, profile: bool | None = None, device: int = 0) -> Program:
    """Compile `fused` (the fused form of `graph`) with its memory `plan` for the CPU. `graph`
    gives the program its signature and cache key. training selects the training behaviour of
    host-run ops (Dropout); cache=False skips the memory and disk caches (always compiles).
    profile=True (default: GRAPHC_PROFILE=1) gives every kernel its own entry and times each
    step (Program.profile()). device: the CPU device k (cpu(k)) whose worker pool and thread
    count the code is built for; it calls that pool's entry (threads.pool_symbol), so the
    device is part of the cache key (cpu(0)'s key is unchanged from before devices existed)."""
    profile = profiling_wanted() if profile is None else profile
    _check_graphs_agree(graph, fused, plan)
    nthreads = _cpu_devices.threads(device)
    pool_symbol = _threads.pool_symbol(device)
    _threads.ensure_pool(device)
    _threads.refresh_limit(device)
    split_work = _threads.gemm_split_work()
    steps = lower_graph(fused, plan)
    n_in, n_out, n_c = len(graph.inputs), len(graph.outputs), len(plan.consts)
    devices = sorted(plan.arena_size)
    arena_slot = {dev: n_in + n_out + n_c + j for j, dev in enumerate(devices)}
    segments, current, seg_calls = [], [], []
    for s in steps:
        if isinstance(s, HostStep):
            if current:
                seg_calls.append(current)
                segments.append(f"seg{len(seg_calls) - 1}")
                current = []
            segments.append(s)
        else:
            where = [_slot_of(s.bindings[b.name], n_in, n_out, n_c, arena_slot) for b in s.kernel.bufs]
            if profile and current:
                seg_calls.append(current)
                segments.append(f"seg{len(seg_calls) - 1}")
                current = []
            current.append((s.kernel, where))
    if current or not segments:
        seg_calls.append(current)
        segments.append(f"seg{len(seg_calls) - 1}")
    names = [f"seg{i}" for i in range(len(seg_calls))]

    def build_modules():
        tm = _cache.target_machine()
        mb = ModuleBuilder(graph.name, nthreads, tm.triple, str(tm.target_data), gemm_split_work=split_work,
                           pool_symbol=pool_symbol)
        for name, calls in zip(names, seg_calls):
            mb.add_entry(name, calls)
        return mb

    def build_ir():
        return str(build_modules())

    key = _cache.make_key(graph_description(graph, training, nthreads) + f"\ngemm_split={split_work}\n{ModuleBuilder.cache_tag()}\n" +
                          ("profile\n" if profile else "") + (f"pool={pool_symbol}\n" if device else "") +
                          _steps_description(seg_calls))
    # the modules' text is made as they are compiled: the GEMM module's first, so that the helper
    # process compiles it while this one prints the other (compile_pool.compile_all)
    addrs, source, engine = _cache.load(key, lambda: build_modules().text_makers(), names, use_cache=cache)
    prog = Program(graph, fused, plan, steps, segments, addrs, source, nthreads)
    prog.device = device
    prog._engine = engine      # the machine code lives as long as the program
    if profile:
        prog._pure_native = False
        prog._timings, prog._calls = [0.0] * len(prog._run), 0
        owners = kernel_owners(steps, plan)
        prog._profile_labels = [step_label(item, seg_calls[names.index(item)] if isinstance(item, str) else None,
                                           owners) for item in segments]
    prog.training = training
    prog.llvm_ir = build_ir    # callable: the module's IR text, for inspection
    return prog


__all__ = ["build_program", "Program", "num_threads"]
