"""build_program: a fused, memory-planned Graph becomes a Program, one native entry per run of
compiled kernels.

The caller (the front end's `graphc.compiler.compile_graph`) runs the passes first: fusion
groups the graph into `_fused_*` nodes and memory planning places every value. This module
takes that result as data (`graphc.ops.fused`, `graphc.ops.memory_plan`) and never runs or
imports a pass: lower_graph (kernel IR steps) -> one LLVM module (every kernel plus an entry
function `void segN(void** args)` per maximal run of native steps) -> object code (cached in
memory and on disk) -> MCJIT. Nodes that only have a numpy reference (random ops, softmax, ...)
run from Python between native segments, on numpy views of the same arena; a graph without
such nodes is one ctypes call per forward.

The argument vector is laid out once: [inputs..., outputs..., constants..., arena per device].
`Program.__call__` fills the input and output pointers into a preallocated ctypes array and
calls; nothing else is allocated per call when the caller passes `outputs`.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import time
import weakref

import numpy as np

from graphc.ops.errors import GraphcError
from graphc.ops.fused import format_fused
from graphc.ops.graph import Graph, format_graph
from graphc.ops.memory_plan import MemoryPlan
from graphc.ops.registry import get_op

from . import cache as _cache
from . import threads as _threads
from .kernel_ir import Gemm
from .lower import KernelStep, HostStep, lower_graph
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
        # weak references to the arrays whose pointers args[] holds: a program must not keep its
        # caller's buffers alive (a static_alloc pool would see them as still in use)
        self._last_in = [_DEAD] * len(self.in_types)
        self._last_out = [_DEAD] * len(self.out_types)
        n_in, n_out, n_c = len(self.in_types), len(self.out_types), len(plan.consts)
        self._devices = sorted(plan.arena_size)
        self._args = (ctypes.c_void_p * (n_in + n_out + n_c + max(1, len(self._devices))))()
        self._consts = [np.ascontiguousarray(c.attrs["value"]) for c in plan.consts]
        for i, c in enumerate(self._consts):
            self._args[n_in + n_out + i] = c.ctypes.data
        self._arenas = {}
        for j, dev in enumerate(self._devices):
            raw = np.zeros(plan.arena_size[dev] + 64, dtype=np.uint8)
            off = (-raw.ctypes.data) % 64
            self._arenas[dev] = raw[off:off + plan.arena_size[dev]]
            self._args[n_in + n_out + n_c + j] = self._arenas[dev].ctypes.data
        self._arena_slot = {dev: n_in + n_out + n_c + j for j, dev in enumerate(self._devices)}
        # the run: native segment functions and host steps, in order
        self._run = []
        for seg in segments:
            if isinstance(seg, str):
                self._run.append(_ENTRY(addrs[seg]))
            else:
                self._run.append(seg)
        self._pure_native = len(self._run) == 1 and not isinstance(self._run[0], HostStep)
        self._entry0 = self._run[0] if self._pure_native else None

    # -- calling -----------------------------------------------------------------------------
    def _check_inputs(self, inputs):
        if len(inputs) != len(self.in_types):
            raise GraphcError(f"graph {self.graph.name}: expects {len(self.in_types)} inputs "
                              f"{[n.name for n in self.graph.inputs]}, got {len(inputs)}")
        args, last = self._args, self._last_in
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

    def __call__(self, inputs, outputs=None, rng=None):
        self._check_inputs(inputs)
        n_in = len(self.in_types)
        args = self._args
        if outputs is None:
            outputs = [np.empty(t.shape, dt) for t, dt in zip(self.out_types, self._out_dtypes)]
            for j, o in enumerate(outputs):
                args[n_in + j] = o.ctypes.data
                self._last_out[j] = _DEAD
        else:
            if len(outputs) != len(self.out_types):
                raise GraphcError(f"graph {self.graph.name}: returns {len(self.out_types)} outputs, "
                                  f"{len(outputs)} output arrays given")
            last = self._last_out
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
        if self._pure_native:
            self._entry0(args)
            return outputs
        rng = rng if rng is not None else np.random.default_rng()
        if self._timings is not None:
            return self._timed_run(args, inputs, outputs, rng)
        for item in self._run:
            if isinstance(item, HostStep):
                self._host(item, inputs, outputs, rng)
            else:
                item(args)
        return outputs

    _timings = None     # per item of _run: seconds summed over calls (profiled programs only)

    def _timed_run(self, args, inputs, outputs, rng):
        clock, times = time.perf_counter, self._timings
        for j, item in enumerate(self._run):
            t0 = clock()
            if isinstance(item, HostStep):
                self._host(item, inputs, outputs, rng)
            else:
                item(args)
            times[j] += clock() - t0
        self._calls += 1
        return outputs

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

    def _view(self, placement, type_, inputs, outputs):
        dt = np.dtype(type_.dtype)
        if placement.kind == "input":
            return inputs[placement.index].reshape(type_.shape)
        if placement.kind == "output":
            return outputs[placement.index].reshape(-1).view(np.uint8)[:placement.nbytes].view(dt).reshape(type_.shape)
        if placement.kind == "const":
            return self._consts[placement.index].reshape(type_.shape)
        arena = self._arenas[placement.device]
        return arena[placement.offset:placement.offset + placement.nbytes].view(dt).reshape(type_.shape)

    def _host(self, step: HostStep, inputs, outputs, rng):
        node = step.node
        args = [self._view(p, v.type, inputs, outputs) for p, v in zip(step.inputs, node.inputs)]
        res = get_op(node.op).run(args, node.attrs, rng=rng, training=self.training)
        for p, t, r in zip(step.outputs, node.types, res):
            dst = self._view(p, t, inputs, outputs)
            np.copyto(dst, np.asarray(r).reshape(t.shape), casting="unsafe")

    training = False

    def __str__(self):
        return format_fused(self.fused)

    def kernels(self):
        return [s.kernel for s in self.steps if isinstance(s, KernelStep)]


def _profile_label(item, seg_calls, names) -> tuple:
    if isinstance(item, HostStep):
        n = item.node
        return ("host", n.op, f"{n.name}: {', '.join(str(t) for t in n.types)}")
    kernels = [k for k, _ in seg_calls[names.index(item)]]
    if not kernels:
        return ("native", "(empty)", "")
    k = kernels[0]
    gemms = [g for g in k.body if isinstance(g, Gemm)]
    if gemms:
        g = gemms[0]
        what = f"gemm {g.batch}x{g.m}x{g.n}x{g.k}{' tA' if g.trans_a else ''}{' tB' if g.trans_b else ''}"
    else:
        what = f"work {k.work}, " + ", ".join(f"{b.name}: {b.dtype}[{b.size}]" for b in k.bufs)
    return ("native", k.name, what)


def _slot_of(placement, n_in, n_out, n_c, arena_slot):
    """(argument slot, byte offset): a kernel may bind part of a buffer (one image of a batch)."""
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


def build_program(graph: Graph, fused: Graph, plan: MemoryPlan, *, training: bool = False,
                  cache: bool = True, profile: bool | None = None) -> Program:
    """Compile `fused` (the fused form of `graph`) with its memory `plan` for the CPU. `graph`
    gives the program its signature and cache key. training selects the training behaviour of
    host-run ops (Dropout); cache=False skips the memory and disk caches (always compiles).
    profile=True (default: GRAPHC_PROFILE=1) gives every kernel its own entry and times each
    step (Program.profile())."""
    profile = profiling_wanted() if profile is None else profile
    _check_graphs_agree(graph, fused, plan)
    nthreads = num_threads()
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

    def build_ir():
        tm = _cache.target_machine()
        mb = ModuleBuilder(graph.name, nthreads, tm.triple, str(tm.target_data), gemm_split_work=split_work)
        for name, calls in zip(names, seg_calls):
            mb.add_entry(name, calls)
        return str(mb)

    key = _cache.make_key(graph_description(graph, training, nthreads) + f"\ngemm_split={split_work}\n{ModuleBuilder.cache_tag()}\n" +
                          ("profile\n" if profile else "") +
                          "\n".join(str(s.kernel) for s in steps if isinstance(s, KernelStep)))
    addrs, source, engine = _cache.load(key, build_ir, names, use_cache=cache)
    prog = Program(graph, fused, plan, steps, segments, addrs, source, nthreads)
    prog._engine = engine      # the machine code lives as long as the program
    if profile:
        prog._pure_native = False
        prog._timings, prog._calls = [0.0] * len(prog._run), 0
        prog._profile_labels = [_profile_label(item, seg_calls, names) for item in segments]
    prog.training = training
    prog.llvm_ir = build_ir    # callable: the module's IR text, for inspection
    return prog


__all__ = ["build_program", "Program", "num_threads"]
