"""The program cache: a process that compiles a graph some earlier process already compiled
loads the whole result (the native code's layout and its object code) instead of running the
passes and the lowering again.

The object-code cache (runtime/cache.py) is keyed by the lowered kernels, so a hit there still
pays for the passes and the lowering (ResNet-18 batch 1: 0.12 s of a 0.29 s warm first call,
CPU time, measured). This cache sits in front of it. Its key hashes what the program is a
function of, as known before any pass runs:

  - the traced graph: its printed form, the bytes of its constants, every node's attributes
    and hints in full (the printed form abbreviates large arrays and omits defaults), the
    training flag and thread count (executor.graph_description);
  - the compile settings: the device's pool, the GEMM split and GEMM settings, and every
    GRAPHC_* environment variable except those that only say where and how much to cache;
  - the code that compiles: graphc's modules under ops/, passes/ and runtime/ (names, sizes,
    modification times: an edited pass misses) and the numpy, graphc, llvmlite and LLVM
    versions, the CPU and its features (cache.host_signature), cache.VERSION.

Parameter values are never part of it: parameters are program inputs. The entry (program_entry)
holds the entry symbols, arena sizes, input/output types, constants and the key of the object
code entry, which stays where it was (one copy of the code; the LRU trims both alike). On a hit
nothing is lowered and no IR text is made; if the object entry is gone or refused, the hit
becomes a miss. A refused program entry (damaged, truncated, another graphc's) is reported
with a CacheWarning and the program is compiled and the entry replaced.

Only programs that are one native call are stored: host-run steps (numpy references between
segments), programs whose kernels draw random numbers (compiled Dropout) and profiled programs
are compiled every time. Off when cache=False, when the disk cache is off
(GRAPHC_CACHE_MAX_BYTES=0), when GRAPHC_PROGRAM_CACHE=0, and whenever someone wants to see or
check the passes' work (GRAPHC_DUMP, GRAPHC_VERIFY=1 or check=True, GRAPHC_PROFILE).

A Program from here has no fused graph, memory plan or kernel steps in memory; the first use
of .fused, .plan (beyond its arena sizes and constants), .steps, .kernels(), str() or
.llvm_ir() compiles the graph the ordinary way (object code from the memory cache) and answers
from that. The runtime never imports a pass: the front end hands in that compile as `rebuild`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import threading
import weakref

import numpy as np

from . import cache as _cache
from . import cpu_devices as _cpu_devices
from . import threads as _threads
from .cache_entry import BadEntry
from .cache_store import warn
from .executor import Program, graph_description, profiling_wanted
from .program_entry import ProgramLayout, decode_layout, encode_layout, type_triples
from .render_llvm import ModuleBuilder

ENV = "GRAPHC_PROGRAM_CACHE"
# settings that change where programs are cached or how much, never what a program is
_NOT_KEYED = {"GRAPHC_CACHE_DIR", "GRAPHC_CACHE_MAX_BYTES", "GRAPHC_CACHE_MAX_PROGRAMS",
              "GRAPHC_COMPILE_WORKERS", ENV}
# the packages whose code decides what a graph compiles to
_CODE_PACKAGES = ("graphc.ops", "graphc.passes", "graphc.runtime")


def program_key(graph, training: bool, device: int, *, cache: bool = True, check=None) -> str | None:
    """The program-cache key of compiling `graph`, or None when the cache must not be used
    for this compile (see the module docstring)."""
    if not cache or check or os.environ.get(ENV, "1").strip() == "0" or profiling_wanted() \
            or os.environ.get("GRAPHC_DUMP", "") or os.environ.get("GRAPHC_VERIFY") == "1" \
            or _cache.max_bytes() <= 0:
        return None
    nthreads = _cpu_devices.threads(device)
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("GRAPHC_") and k not in _NOT_KEYED)
    text = "\n".join([
        "graphc program", graph_description(graph, training, nthreads), _node_details(graph),
        f"device={device} pool={_threads.pool_symbol(device)} gemm_split={_threads.gemm_split_work()}",
        f"gemm={ModuleBuilder.cache_tag()}", f"env={settings!r}", f"numpy={np.__version__}",
        f"code={code_fingerprint()}"])
    return _cache.make_key(text)


def lookup(key: str, graph, training: bool, device: int, rebuild) -> Program | None:
    """The Program stored under `key` for `graph`, or None (not stored, refused, or its object
    code is gone). rebuild() must compile the same graph the ordinary way."""
    payload = _cache.read_stored(key)
    if payload is None:
        return None
    try:
        layout = decode_layout(payload)
        _check_matches(layout, graph, device)
    except BadEntry as exc:
        warn(f"refused the program entry {key[:16]}...: {exc}; recompiling and replacing it")
        return None
    _threads.ensure_pool(device)
    _threads.refresh_limit(device)
    try:
        addrs, source, code = _cache.load(layout.object_key, _object_code_gone, list(layout.symbols))
    except _ObjectCodeGone:
        return None
    prog = StoredProgram(graph, layout, addrs, source, rebuild)
    prog.device, prog.training, prog._engine = device, training, code
    return prog


def store(key: str, graph, prog) -> None:
    """Record `prog` (just compiled from `graph`) under `key`, if it is a kind this cache keeps."""
    code = getattr(prog, "_engine", None)
    if type(prog) is not Program or code is None or not prog._pure_native or prog._seeded \
            or prog._timings is not None:
        return
    layout = ProgramLayout(object_key=code.key, symbols=tuple(code.addrs), arena_size=dict(prog.plan.arena_size),
                           in_types=type_triples(prog.in_types), out_types=type_triples(prog.out_types),
                           consts=tuple(prog._consts), nthreads=prog.nthreads)
    _cache.write_stored(key, encode_layout(layout))


class StoredProgram(Program):
    """A Program built from a program-cache entry. What only the passes and the lowering know
    (fused graph, memory plan, kernel steps) is made on first use by compiling the graph the
    ordinary way; the arena sizes and constants the calls need are the stored ones. `source`
    says where the object code came from ('disk' or 'memory')."""

    def __init__(self, graph, layout: ProgramLayout, addrs, source, rebuild):
        self._full, self._rebuild, self._full_lock = None, rebuild, threading.Lock()
        super().__init__(graph, None, _StoredPlan(self, layout), [], list(layout.symbols), addrs, source,
                         layout.nthreads)

    def _materialised(self) -> Program:
        with self._full_lock:
            if self._full is None:
                self._full = self._rebuild()
            return self._full

    # Program.__init__ assigns these; the stored program answers them from the full compile
    fused = property(lambda self: self._materialised().fused, lambda self, value: None)
    steps = property(lambda self: self._materialised().steps, lambda self, value: None)

    @property
    def plan(self):
        return self._full.plan if self._full is not None else self._stored_plan

    @plan.setter
    def plan(self, value):
        self._stored_plan = value

    def llvm_ir(self) -> str:
        return self._materialised().llvm_ir()

    def _profiling_twin(self) -> Program:
        return self._materialised()._profiling_twin()


class _StoredPlan:
    """The two things a Program reads from its memory plan on every frame (arena sizes, and
    the constants through .consts[i].attrs['value']); anything else comes from the full plan."""

    def __init__(self, owner: StoredProgram, layout: ProgramLayout):
        self._owner = weakref.ref(owner)
        self.arena_size = dict(layout.arena_size)
        self.consts = [_Const(c) for c in layout.consts]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        owner = self._owner()
        if owner is None:
            raise AttributeError(f"{name} (its program is gone)")
        return getattr(owner._materialised().plan, name)


class _Const:
    __slots__ = ("attrs",)

    def __init__(self, value):
        self.attrs = {"value": value}


class _ObjectCodeGone(Exception):
    """The program entry names object code that neither cache holds any more."""


def _object_code_gone():
    raise _ObjectCodeGone()


def _check_matches(layout: ProgramLayout, graph, device: int) -> None:
    """The key already covers these; checked again because the Program binds the caller's
    arrays by them, and a mismatch must be a miss, not a wrong read."""
    ins = type_triples(n.types[0] for n in graph.inputs)
    outs = type_triples(v.type for v in graph.outputs)
    if layout.in_types != ins or layout.out_types != outs:
        raise BadEntry(f"it takes {layout.in_types} and returns {layout.out_types}; graph {graph.name!r} "
                       f"takes {ins} and returns {outs}")
    nthreads = _cpu_devices.threads(device)
    if layout.nthreads != nthreads:
        raise BadEntry(f"built for {layout.nthreads} threads, cpu({device}) has {nthreads}")


def _node_details(graph) -> str:
    """Each node's attributes and hints in full (format_graph abbreviates arrays, leaves out
    attributes at their default and hints): anything a pass may read is in the key."""
    lines = []
    for i, n in enumerate(graph.nodes):
        attrs = {k: v for k, v in n.attrs.items() if not (n.is_const and k == "value")}
        if attrs or n.hints:
            lines.append(f"{i} {_value_text(attrs)} {_value_text(dict(n.hints))}")
    return "\n".join(lines)


def _value_text(v) -> str:
    """A text that differs whenever the value does (repr abbreviates large arrays; an object
    whose repr holds its address makes the key unique to this process: a miss, never a wrong hit)."""
    if isinstance(v, np.ndarray):
        return f"ndarray({v.dtype},{v.shape},{hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()})"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k!r}:{_value_text(x)}" for k, x in sorted(v.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(v, (set, frozenset)):      # iteration order changes with the process's hash seed
        return f"{type(v).__name__}(" + ",".join(sorted(_value_text(x) for x in v)) + ")"
    if isinstance(v, (list, tuple)):
        return f"{type(v).__name__}(" + ",".join(_value_text(x) for x in v) + ")"
    return f"{type(v).__name__}:{v!r}"


@functools.cache
def code_fingerprint() -> str:
    """The fingerprint (source_fingerprint) of the compiler's code: ops/, passes/, runtime/ and
    graphc/compiler.py. A checkout whose passes or lowering were edited since an entry was
    written misses instead of loading a program the old code made."""
    roots = []
    for package in _CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        roots.extend(sorted(spec.submodule_search_locations or ()))
    compiler = importlib.util.find_spec("graphc.compiler")
    if compiler is not None and compiler.origin:
        roots.append(compiler.origin)
    return source_fingerprint(roots)


def source_fingerprint(roots) -> str:
    """A hash of the names, sizes and modification times of the .py files at `roots` (files, or
    folders searched recursively): a stat per file, so that every process can afford it."""
    h = hashlib.sha256()
    for root in roots:
        h.update(f"root {os.path.basename(root)}\n".encode())
        if os.path.isfile(root):
            files = [(os.path.basename(root), root)]
        else:
            files = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                files.extend((os.path.relpath(os.path.join(dirpath, n), root), os.path.join(dirpath, n))
                             for n in sorted(filenames) if n.endswith(".py"))
        for name, path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


__all__ = ["program_key", "lookup", "store", "StoredProgram", "code_fingerprint", "source_fingerprint", "ENV"]
