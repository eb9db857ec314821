"""GpuProgram: a fused, memory-planned graph run on one GPU through the driver seam
(runtime/cuda/driver.py), the GPU counterpart of runtime/executor.py's Program.

build_gpu_program lowers the graph exactly as the CPU backend does (runtime/lower.py: the same
kernel IR steps over the same memory plan), then: every distinct kernel is rendered
(runtime/render_cuda.py) into ONE module, compiled and loaded once; lone GEMMs go to the
driver's gemm (cuBLAS), lone copies to memcpy_dtod; a kernel mixing them is split in order
(render_cuda.cuda_pieces). Constants are uploaded at build; the arena (plan.arena_size) is a
device buffer the program owns. Nodes that only have a numpy reference run on the host
between launches: their inputs are downloaded, the operator runs as the CPU executor runs it
(same rng, same training flag), the results are uploaded. A node whose kernel has no CUDA
rendering runs the same way, with a warning (runtime/cuda/host_fallback.py).

One arena per program, not a spare per concurrent caller as on the CPU: every launch on a
device goes to its one stream in order, so two callers' work would serialize on the device
anyway. A lock keeps one caller's launches from interleaving with another's (they share the
arena); a call holds it only while it issues work, not while the device runs it.

Per-call cost: a real launch costs the driver ~3-5 us, so the framework's share must stay near
it (bench/gpu/dispatch_overhead.py measures it with a do-nothing driver). Every driver call's
argument list is made at build with constant, arena and seed pointers resolved; a call patches
the input and output pointers into those lists and issues them. Programs of several calls and
no host steps replay a CUDA graph per repeated (input, output) pointer tuple on drivers that
can capture (runtime/cuda/program_graphs.py).

Random numbers: a program whose kernels draw them (compiled Dropout) refills its device seed
buffer from the caller's rng before each call, drawing exactly what the CPU program draws, so
the same generator state gives the CPU's masks (runtime/dropout_kernel.py).
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict

import numpy as np

from graphc.ops.errors import GraphcError
from graphc.ops.fused import format_fused

from ..lower import HostStep, KernelStep, lower_graph    # (before dropout_kernel, which lower imports)
from ..dropout_kernel import SEED_WORDS
from ..executor import _check_graphs_agree, graph_description, profiling_wanted
from ..render_cuda import render_cuda_module
from ..program_cache import _node_details     # every attribute in full, as the CPU key hashes them
from ..step_labels import kernel_owners
from . import launch_plan as _plan
from .driver import CudaError, DeviceOutOfMemory, get_driver
from .host_fallback import plan_calls, run_node
from .memory import DeviceBuffer, allocator
from . import program_graphs as _graphs
from .. import trace as _trace


class GpuProgram:
    """A compiled graph on GPU `device`. `run` takes and returns device buffers (graph.inputs
    and graph.outputs order); calling it with numpy arrays uploads, runs and downloads, like the
    CPU Program, so either serves a caller that only has arrays."""

    source = "compiled"

    def __init__(self, graph, fused, plan, steps, *, training, device, driver, module_source, functions,
                 calls, slots, consts, arenas, seed, fallbacks=()):
        self.graph, self.fused, self.plan, self.steps = graph, fused, plan, steps
        self.training, self.device, self.driver = training, device, driver
        self.context = f"gpu({device})"
        self.cuda_source = module_source
        self.in_types = [n.types[0] for n in graph.inputs]
        self.out_types = [v.type for v in graph.outputs]
        self._in_dtypes = [np.dtype(t.dtype) for t in self.in_types]
        self._out_dtypes = [np.dtype(t.dtype) for t in self.out_types]
        self._functions = functions       # kernel name -> driver function handle
        self._calls = calls               # Launch | GemmCall | CopyCall | HostStep, in order
        self._slots = slots               # Placement -> (slot, byte offset), for host steps
        self._consts = consts             # (host array, DeviceBuffer) per constant
        self._const_ptrs = [buf.ptr for _, buf in consts]
        self._arenas = arenas             # DeviceBuffer per arena label of the plan
        self._seed = seed                 # DeviceBuffer of SEED_WORDS int64, or None
        self._has_host = any(isinstance(c, HostStep) for c in calls)
        self.host_steps = sum(isinstance(c, HostStep) for c in calls)
        # (kernel, node, op) of each node run on the host because its kernel has no CUDA form
        self.host_fallbacks = list(fallbacks)
        self._lock = threading.Lock()
        self._pool = allocator(device)
        self._in_nbytes = [t.nbytes for t in self.in_types]
        self._out_nbytes = [t.nbytes for t in self.out_types]
        self._issue, self._patches = _issue_plan(calls, len(self.in_types) + len(self.out_types), self._const_ptrs +
                                                 [a.ptr for a in arenas] + [seed.ptr if seed is not None else 0],
                                                 device, functions)
        self._graphs = _graphs.ProgramGraphs.for_program(driver, device, len(calls)) if not self._has_host else None

    # -- device buffers in, device buffers out ---------------------------------------------------
    def run(self, inputs, outputs=None, rng=None) -> list:
        """Issue the graph on the device for `inputs` (DeviceBuffers); results go to `outputs`
        (DeviceBuffers) or to new buffers from the device's pool. Returns without waiting for
        the device: read results with memcpy_dtoh (which waits) or call the program with arrays.

        The hot path of every GPU step, so it does the least per call: every driver call's
        argument list was made at build with the constant, arena and seed pointers in place;
        a call only writes the input and output pointers into them (`_patches`) and issues the
        lists (`_issue`). A program with no host steps on a driver with `capture` replays a
        CUDA graph for pointer tuples it has seen before (runtime/cuda/program_graphs.py).
        While mx.profiler records compiled programs, the call is a span on the 'gpu/k' track
        that ends when the device has finished it (runtime/trace.py: host-side time)."""
        if _trace.symbolic:     # the one test the unprofiled call pays
            t0 = _trace.now()
            outputs = self._run(inputs, outputs, rng)
            _trace.gpu_span(self.graph.name, "gpu program", t0, self.device, self.driver.synchronize,
                            {"calls": len(self._calls), "training": self.training})
            return outputs
        return self._run(inputs, outputs, rng)

    def _run(self, inputs, outputs, rng) -> list:
        drv = self.driver
        if drv is not get_driver():
            if self._graphs is not None:
                self._graphs.clear()
            raise GraphcError(f"graph {self.graph.name}: this GPU program was built by a driver that has since "
                              "been reset (reset_driver); compile the graph again")
        dev = self.device
        if len(inputs) != len(self._in_nbytes):
            self._check_buffers("input", inputs, self.in_types)
        for b, need in zip(inputs, self._in_nbytes):
            if type(b) is not DeviceBuffer or b.device != dev or b.nbytes < need:
                self._check_buffers("input", inputs, self.in_types)     # (raises, naming which)
                break
        if outputs is None:
            allocate = self._pool.allocate
            outputs = [allocate(n) for n in self._out_nbytes]
        else:
            if len(outputs) != len(self._out_nbytes):
                self._check_buffers("output", outputs, self.out_types)
            for b, need in zip(outputs, self._out_nbytes):
                if type(b) is not DeviceBuffer or b.device != dev or b.nbytes < need:
                    self._check_buffers("output", outputs, self.out_types)
                    break
        with self._lock:
            if self._seed is not None:
                rng = rng if rng is not None else np.random.default_rng()
                words = rng.integers(0, 1 << 32, size=SEED_WORDS, dtype=np.int64)
                drv.memcpy_htod(dev, self._seed.ptr, words)
            if not self._has_host:
                ptrs = [b.ptr for b in inputs]
                ptrs += [b.ptr for b in outputs]
                graphs = self._graphs
                if graphs is None or not graphs.run(tuple(ptrs), self._issue_all, ptrs):
                    self._issue_all(ptrs)
                return outputs
            rng = rng if rng is not None else np.random.default_rng()
            bases = [b.ptr for b in inputs] + [b.ptr for b in outputs] + self._const_ptrs + \
                [a.ptr for a in self._arenas] + [self._seed.ptr if self._seed is not None else 0]
            fns = self._functions
            for c in self._calls:
                if isinstance(c, _plan.Launch):
                    drv.launch(dev, fns[c.name], c.grid, c.block, [bases[s] + o for s, o in c.args])
                elif isinstance(c, _plan.GemmCall):
                    drv.gemm(dev, c.gemm, bases[c.a[0]] + c.a[1], bases[c.b[0]] + c.b[1], bases[c.c[0]] + c.c[1])
                elif isinstance(c, _plan.CopyCall):
                    drv.memcpy_dtod(dev, bases[c.dst[0]] + c.dst[1], bases[c.src[0]] + c.src[1], c.nbytes)
                else:
                    self._host(c, bases, rng)
        return outputs

    def _issue_all(self, ptrs) -> None:
        """Every call of a program without host steps, for input+output pointers `ptrs`: the
        prepared argument lists are patched in place (the lock is held; drivers consume a
        launch's pointer list before returning) and issued in order."""
        for args, pos, slot, off in self._patches:
            args[pos] = ptrs[slot] + off
        drv = self.driver
        methods = (drv.launch, drv.gemm, drv.memcpy_dtod)
        for kind, args in self._issue:
            methods[kind](*args)

    def _check_buffers(self, what, bufs, types):
        if len(bufs) != len(types):
            raise GraphcError(f"graph {self.graph.name}: {len(types)} {what}s expected, {len(bufs)} device buffers given")
        for i, (b, t) in enumerate(zip(bufs, types)):
            if not hasattr(b, "ptr") or not hasattr(b, "nbytes"):
                raise GraphcError(f"graph {self.graph.name}: {what} {i} must be a DeviceBuffer on {self.context}, "
                                  f"got {type(b).__name__}")
            if getattr(b, "device", self.device) != self.device:
                raise GraphcError(f"graph {self.graph.name}: {what} {i} lives on gpu({b.device}), the program "
                                  f"runs on {self.context}")
            if b.nbytes < t.nbytes:
                raise GraphcError(f"graph {self.graph.name}: {what} {i} ({t}) needs {t.nbytes} bytes, its device "
                                  f"buffer has {b.nbytes}")

    def _host(self, step: HostStep, bases, rng):
        """A node with only a numpy reference: as runtime/executor.Program._host, on copies."""
        node = step.node
        args = [self._download(p, v.type, bases) for p, v in zip(step.inputs, node.inputs)]
        res = run_node(node, args, rng, self.training)
        for p, t, r in zip(step.outputs, node.types, res):
            if t.nbytes == 0:
                continue
            arr = np.ascontiguousarray(np.asarray(r).reshape(t.shape).astype(t.dtype, copy=False))
            slot, off = self._slots.of(p)
            self.driver.memcpy_htod(self.device, bases[slot] + off, arr)

    def _download(self, p, t, bases):
        if p.kind == "const":
            return self._consts[p.index][0].reshape(t.shape)
        out = np.empty(t.shape, np.dtype(t.dtype))
        if out.nbytes:
            slot, off = self._slots.of(p)
            self.driver.memcpy_dtoh(self.device, out, bases[slot] + off)
        return out

    # -- numpy arrays in, numpy arrays out (the CPU Program's call) ------------------------------
    def __call__(self, inputs, outputs=None, rng=None) -> list:
        if len(inputs) != len(self.in_types):
            raise GraphcError(f"graph {self.graph.name}: expects {len(self.in_types)} inputs "
                              f"{[n.name for n in self.graph.inputs]}, got {len(inputs)}")
        for i, a in enumerate(inputs):
            t = self.in_types[i]
            if not isinstance(a, np.ndarray) or a.dtype != self._in_dtypes[i] or a.shape != t.shape:
                got = f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
                raise GraphcError(f"graph {self.graph.name}: input {i} '{self.graph.inputs[i].name}' must be a numpy "
                                  f"array of {t.dtype}{list(t.shape)}, got {got}")
        if outputs is not None:
            if len(outputs) != len(self.out_types):
                raise GraphcError(f"graph {self.graph.name}: returns {len(self.out_types)} outputs, "
                                  f"{len(outputs)} output arrays given")
            for j, (o, t) in enumerate(zip(outputs, self.out_types)):
                if type(o) is not np.ndarray or o.dtype != self._out_dtypes[j] or o.shape != t.shape \
                        or not o.flags.c_contiguous or not o.flags.writeable:
                    raise GraphcError(f"graph {self.graph.name}: output array {j} must be a writeable "
                                      f"C-contiguous {t.dtype} array of shape {t.shape}")
        dev_in = []
        try:
            for a in inputs:
                buf = self._pool.allocate(a.nbytes)
                dev_in.append(buf)
                if a.nbytes:
                    self.driver.memcpy_htod(self.device, buf.ptr, np.ascontiguousarray(a))
            dev_out = self.run(dev_in, rng=rng)
            if outputs is None:
                outputs = [np.empty(t.shape, dt) for t, dt in zip(self.out_types, self._out_dtypes)]
            for o, b in zip(outputs, dev_out):
                if o.nbytes:
                    self.driver.memcpy_dtoh(self.device, o, b.ptr)
            for b in dev_out:
                b.free()
        finally:
            for b in dev_in:
                b.free()
        return outputs

    def kernels(self):
        return [s.kernel for s in self.steps if isinstance(s, KernelStep)]

    def __str__(self):
        text = format_fused(self.fused)
        if self.host_fallbacks:
            text += "\n# on the host (no CUDA rendering): " + ", ".join(
                f"{node} ({op})" for _, node, op in self.host_fallbacks)
        return text


def _issue_plan(calls, n_io: int, fixed: list, device: int, functions: dict):
    """(issue, patches) for GpuProgram._issue_all: issue holds (kind, argument list) per call
    (kind 0 launch, 1 gemm, 2 device copy; the list as the driver method takes it, pointers of
    constants, arenas and the seed already resolved); patches holds (list, position, slot,
    byte offset) for each pointer into an input or output (slots below n_io), filled per call.
    Empty for a program with host steps (they need every slot's base: the general loop)."""
    issue, patches = [], []
    if any(isinstance(c, HostStep) for c in calls):
        return issue, patches

    def resolve(target, pos, where):
        slot, off = where
        if slot < n_io:
            patches.append((target, pos, slot, off))
            target[pos] = 0
        else:
            target[pos] = fixed[slot - n_io] + off
    for c in calls:
        if isinstance(c, _plan.Launch):
            ptrs = [0] * len(c.args)
            for i, where in enumerate(c.args):
                resolve(ptrs, i, where)
            issue.append((0, (device, functions[c.name], c.grid, c.block, ptrs)))
        elif isinstance(c, _plan.GemmCall):
            args = [device, c.gemm, 0, 0, 0]
            for i, where in enumerate((c.a, c.b, c.c)):
                resolve(args, 2 + i, where)
            issue.append((1, args))
        else:
            args = [device, 0, 0, c.nbytes]
            resolve(args, 1, c.dst)
            resolve(args, 2, c.src)
            issue.append((2, args))
    return issue, patches


def build_gpu_program(graph, fused, plan, *, training: bool = False, device: int = 0) -> GpuProgram:
    """Compile `fused` (the fused form of `graph`) with its memory `plan` for GPU `device`
    (every value of the plan on 'gpu(device)'). training selects host-run ops' behaviour."""
    _check_graphs_agree(graph, fused, plan)
    drv = get_driver()
    if drv is None:
        raise GraphcError(f"graph {graph.name}: its values live on gpu({device}) but no GPU driver is available "
                          "(no CUDA device; GRAPHC_CUDA_SIM=1 runs GPU programs in the simulator)")
    if not 0 <= device < drv.device_count():
        raise GraphcError(f"graph {graph.name}: placed on gpu({device}), but {drv.device_count()} GPU(s) exist")
    context = f"gpu({device})"
    others = sorted(d for d, size in plan.arena_size.items() if d.startswith("gpu") and d != context and size)
    if others:
        raise GraphcError(f"graph {graph.name}: its memory plan places values on {', '.join(others)}; a GPU program "
                          f"runs on {context} only")
    steps = lower_graph(fused, plan)
    # every arena of the plan lives on this GPU: values a pass made without carrying their
    # device are labelled cpu(0) (ops/fused_softmax_ce.py's row statistics)
    labels = sorted(plan.arena_size)
    slots = _plan.Slots(len(graph.inputs), len(graph.outputs), len(plan.consts), labels)
    sms = drv.multiprocessor_count(device)
    # (a node whose kernel has no CUDA rendering becomes a host step: host_fallback.py)
    steps, calls, rendered, fallbacks = plan_calls(graph, steps, plan, slots, sms)
    module_source, functions = "", {}
    if rendered:
        kernels = [k for k, _ in rendered.values()]
        module_source = render_cuda_module(kernels)
        try:
            module = drv.load_module(device, module_source)
        except CudaError as exc:
            raise CudaError(_compile_failure(graph, exc, module_source, kernels, steps, plan)) from exc
        functions = {k.name: module.function(k.name) for k in kernels}
    pool = allocator(device)
    consts = []
    for c in plan.consts:
        arr = np.ascontiguousarray(c.attrs["value"])
        buf = _allocate(pool, arr.nbytes, graph, f"constant '{c.name}'", device)
        if arr.nbytes:
            drv.memcpy_htod(device, buf.ptr, arr)
        consts.append((arr, buf))
    arenas = [_allocate(pool, plan.arena_size[label], graph, "arena", device) for label in labels]
    seeded = any(isinstance(s, KernelStep) and any(p.kind == "seed" for p in s.bindings.values()) for s in steps)
    seed = _allocate(pool, 8 * SEED_WORDS, graph, "seed buffer", device) if seeded else None
    return GpuProgram(graph, fused, plan, steps, training=training, device=device, driver=drv,
                      module_source=module_source, functions=functions, calls=calls, slots=slots, consts=consts,
                      arenas=arenas, seed=seed, fallbacks=fallbacks)


def _allocate(pool, nbytes, graph, what, device):
    try:
        return pool.allocate(nbytes)
    except DeviceOutOfMemory as exc:
        raise DeviceOutOfMemory(f"graph {graph.name}: its {what} of {nbytes} bytes does not fit on gpu({device}): "
                                f"{exc}") from exc


# where a compiler reports an error: gcc/clang "file.cu:LINE:COL: error", NVRTC/nvcc "file(LINE): error"
_ERROR_LINE = re.compile(r"(?::(\d+):(?:\d+:)?|\((\d+)\):) *(?:fatal |catastrophic )?error")


def _compile_failure(graph, exc, source, kernels, steps, plan) -> str:
    """The compile error, naming the kernels it is about (and the node each computes): by the
    line numbers the compiler reports, mapped to the kernel whose text holds them; else the
    kernels the message names, when it does not name them all."""
    text = str(exc)
    names = [k.name for k in kernels]
    starts = sorted((source[:source.index(f" {n}(")].count("\n") + 1, n) for n in names)
    bad = []
    for m in _ERROR_LINE.finditer(text):
        line = int(m.group(1) or m.group(2))
        owner = None
        for start, n in starts:
            if start <= line:
                owner = n
        if owner is not None and owner not in bad:
            bad.append(owner)
    if not bad:
        named = [n for n in names if n in text]
        bad = named if len(named) < len(names) else []
    owners = kernel_owners(steps, plan)
    node_of = {}
    for s in steps:
        if isinstance(s, KernelStep):
            label = owners.get(id(s.kernel), s.kernel.name)
            node_of[s.kernel.name] = label
    by_name = {k.name: k for k in kernels}

    def describe(n):
        base = n.rsplit("_p", 1)[0] if n not in node_of else n
        return f"kernel {n} (computing {node_of.get(base, '?')}):\n{_plan.excerpt(by_name[n])}"
    which = "\n".join(describe(n) for n in bad) if bad else \
        f"one of kernels {', '.join(names)} (the error names no line)"
    return f"graph {graph.name}: the CUDA module of {len(kernels)} kernel(s) failed to compile; {which}\n{text}"


# -- the in-memory cache of GPU programs (the on-disk program cache is CPU-only: kernel binaries
# are cached on disk by the driver, and a GPU program's build is mostly that) ---------------------
MAX_CACHED_PROGRAMS = 64
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def gpu_program_key(graph, training: bool, *, cache: bool = True, check=None) -> str | None:
    """The in-memory cache key of compiling `graph` for its GPU, or None where the compile must
    run (cache=False, and whenever someone wants to see or check the passes' work, as for the
    CPU's program cache). It covers what the program is a function of: the graph (listing,
    constant bytes, every attribute in full), each value's device, the training flag and the
    GRAPHC_* settings; not the compiler's source files, which cannot change under a running
    process."""
    if not cache or check or os.environ.get("GRAPHC_DUMP", "") or os.environ.get("GRAPHC_VERIFY") == "1" \
            or profiling_wanted():
        return None
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("GRAPHC_"))
    devices = ";".join(",".join(t.device for t in n.types if t is not None) for n in graph.nodes)
    text = "\n".join(["graphc gpu program", graph_description(graph, training, 0), _node_details(graph),
                      f"devices={devices}", f"env={settings!r}"])
    return hashlib.sha256(text.encode()).hexdigest()


def cached_program(key: str | None, build) -> GpuProgram:
    """The program cached under `key`, or build() (cached; the least recently used beyond
    MAX_CACHED_PROGRAMS is dropped, returning its arena to the pool once unreferenced). A
    program made under another driver (tests reset it) is rebuilt."""
    if key is None:
        return build()
    drv = get_driver()
    with _cache_lock:
        prog = _cache.get(key)
        if prog is not None and prog.driver is drv:
            _cache.move_to_end(key)
            return prog
    prog = build()
    with _cache_lock:
        _cache[key] = prog
        _cache.move_to_end(key)
        while len(_cache) > MAX_CACHED_PROGRAMS:
            _cache.popitem(last=False)
    return prog


def clear_program_cache() -> None:
    with _cache_lock:
        _cache.clear()


__all__ = ["GpuProgram", "build_gpu_program", "cached_program", "clear_program_cache"]
