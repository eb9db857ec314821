"""Native code for compiled programs: LLVM IR text -> object code (through the shared target
machine and -O3 pipeline of llvm_jit), cached in memory and on disk, loaded into an MCJIT
engine. A program's text may hold several modules (llvm_jit.MODULE_BREAK between them): each
compiles apart, the later ones in a helper process when a core is free (compile_pool), and the
engine links their objects; a disk entry holds them all (pack_objects).

A key covers everything the object code depends on: the caller's description of the program
(printed graph, attributes, constant bytes, code-generation settings), the target triple, the
CPU name and features, the graphc, llvmlite and LLVM versions (host_signature) and the cache's
own VERSION. The disk cache ($GRAPHC_CACHE_DIR, default ~/.cache/graphc; runtime/cache_store.py)
holds one entry per key whose header is checked against all of that before a byte reaches the
JIT (runtime/cache_entry.py); a refused entry is recompiled and replaced, with a CacheWarning.

The same directory holds the program cache's entries (runtime/program_cache.py: what the
passes and the lowering made of a graph, as data), in the same entry format and under the same
checks and limits, as <key>.p beside the <key>.o object entries (read_stored / write_stored).

Both caches are bounded. On disk: GRAPHC_CACHE_MAX_BYTES, least recently used entries first.
In memory: the GRAPHC_CACHE_MAX_PROGRAMS (default 64) most recently loaded programs stay
loaded; an older one stays only while some Program still uses it (each Program holds its
LoadedCode), and its engine and machine code are freed with the last such Program.
"""
from __future__ import annotations

import collections
import ctypes
import functools
import hashlib
import os
import struct
import threading
import weakref

import llvmlite
import llvmlite.binding as llvm

from . import llvm_jit, threads
from .cache_entry import BadEntry, TARGET_FIELDS, encode_entry
from .cache_store import (CacheWarning, MAX_ENTRY_BYTES, OBJECT, PROGRAM, cache_dir, entry_path, load_entry,
                          max_bytes, prepare_dir, trim, warn, write_entry)

# bump when generated code or the way keys are made changes in a way descriptions do not show
VERSION = "graphc-0.1.0-rt9"
DEFAULT_MAX_PROGRAMS = 64
_lock = threading.Lock()
_write_failed: set = set()      # directories whose failed write was reported (once per process)


class LoadedCode:
    """One program's machine code in its own MCJIT engine, with its functions' addresses.
    Whoever calls the addresses holds this object; the engine is freed with it."""

    __slots__ = ("engine", "addrs", "key", "__weakref__")

    def __init__(self, engine, addrs: dict, key: str):
        self.engine, self.addrs, self.key = engine, addrs, key


_alive: "weakref.WeakSet[LoadedCode]" = weakref.WeakSet()


def live_engines() -> int:
    """How many programs' machine code is loaded in this process right now."""
    with _lock:
        return len(_alive)


class EngineCache:
    """key -> LoadedCode. The `limit` most recently used stay loaded; beyond that an entry is
    only found while something else still holds it (so two Programs of one key share code)."""

    def __init__(self):
        self._recent: collections.OrderedDict = collections.OrderedDict()
        self._in_use = weakref.WeakValueDictionary()

    def get(self, key: str, limit: int):
        code = self._recent.get(key)
        if code is not None:
            self._recent.move_to_end(key)
            return code
        code = self._in_use.get(key)
        if code is not None:
            self.put(key, code, limit)
        return code

    def put(self, key: str, code: LoadedCode, limit: int) -> None:
        self._in_use[key] = code
        self._recent[key] = code
        self._recent.move_to_end(key)
        while len(self._recent) > limit:
            self._recent.popitem(last=False)

    def clear(self) -> None:
        """Forget every program (a fresh process, for tests); Programs keep their own code."""
        self._recent.clear()
        self._in_use.clear()

    def __contains__(self, key) -> bool:
        return key in self._recent or key in self._in_use

    def __len__(self) -> int:
        return len(self._recent)


_memory = EngineCache()


def max_programs() -> int:
    """GRAPHC_CACHE_MAX_PROGRAMS: programs kept loaded after their last user lets go."""
    text = os.environ.get("GRAPHC_CACHE_MAX_PROGRAMS", "").strip()
    if text.isdigit():
        return int(text)
    if text:
        warn(f"GRAPHC_CACHE_MAX_PROGRAMS={text!r} is not a whole number; using {DEFAULT_MAX_PROGRAMS}")
    return DEFAULT_MAX_PROGRAMS


@functools.cache
def target_machine():
    return llvm_jit.create_target_machine(opt=3)


def _graphc_version() -> str:
    # the package's own __version__ (graphc is imported before any of its modules) first: the
    # distribution metadata says the same, but finding it scans sys.path (10 ms of every
    # process's first compile, cache hits included)
    import sys
    known = getattr(sys.modules.get("graphc"), "__version__", None)
    if isinstance(known, str) and known:
        return known
    try:
        from importlib.metadata import version
        return version("graphc")
    except Exception:       # not installed (a bare source tree): VERSION still separates releases
        return "unknown"


@functools.cache
def host_target() -> dict:
    """What object code built in this process is specific to (cache_entry.TARGET_FIELDS)."""
    try:
        feats = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        feats = ""
    return {"graphc": _graphc_version(), "llvmlite": llvmlite.__version__,
            # the triple target_machine() is made for (Target.from_default_triple), without making
            # one: a cache hit needs none (5 ms of a warm process's first call)
            "llvm": ".".join(str(v) for v in llvm.llvm_version_info), "triple": llvm.get_default_triple(),
            "cpu": llvm.get_host_cpu_name(), "features": feats}


@functools.cache
def host_signature() -> str:
    target = host_target()
    return "|".join(f"{name}={target[name]}" for name in TARGET_FIELDS)


@functools.cache
def load_blas() -> str:
    """Make OpenBLAS's symbols (scipy_cblas_*) visible to generated code; returns the path."""
    lib_dir, name = _openblas_location()
    for f in sorted(os.listdir(lib_dir)):
        if f.startswith("lib" + name) and (".so" in f or f.endswith(".dylib")):
            path = os.path.join(lib_dir, f)
            llvm.load_library_permanently(path)
            n = threads.blas_threads()
            if n:
                # this library is graphc's alone (numpy bundles its own OpenBLAS): one owner for the cores
                try:
                    ctypes.CDLL(path).scipy_openblas_set_num_threads(ctypes.c_int(n))
                except (OSError, AttributeError):
                    pass
            return path
    raise OSError(f"OpenBLAS library lib{name}.so not found in {lib_dir}")


def _openblas_location() -> tuple[str, str]:
    """(lib folder, library name) of the scipy_openblas32 wheel. Found without importing the
    package where its layout is the known one: its __init__ reads its own version from the
    distribution metadata, a scan of sys.path that cost every process's first compile 10 ms."""
    import importlib.util
    spec = importlib.util.find_spec("scipy_openblas32")
    for root in (spec.submodule_search_locations or ()) if spec is not None else ():
        lib_dir = os.path.join(root, "lib")
        try:
            names = sorted(f for f in os.listdir(lib_dir) if f.startswith("libscipy_openblas"))
        except OSError:
            continue
        if names:      # get_library(): the first such file's name without 'lib' and the suffix
            return lib_dir, os.path.splitext(names[0])[0][3:]
    import scipy_openblas32
    return scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library()


def make_key(description: str) -> str:
    """The cache key of a program: its description plus everything about this host and
    toolchain that changes the object code."""
    h = hashlib.sha256()
    h.update(VERSION.encode())
    h.update(b"\0")
    h.update(host_signature().encode())
    h.update(b"\0")
    h.update(description.encode())
    return h.hexdigest()[:40]


def compile_object(ir_text: str) -> bytes:
    """Object code of one module's IR text."""
    tm = target_machine()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    llvm_jit.optimize(mod, tm, speed_level=3)
    return tm.emit_object(mod)


def compile_objects(ir) -> list:
    """Object code of each module of a program: `ir` is its IR text (llvm_jit.MODULE_BREAK
    between modules) or a list of module texts or functions returning one; the later modules
    compile on another core when there is one (runtime/compile_pool.py)."""
    from . import compile_pool      # (here: a process that only loads cached code never needs it)
    texts = llvm_jit.split_modules(ir) if isinstance(ir, str) else list(ir)
    return compile_pool.compile_all(texts, compile_object)


def optimized_ir(ir_text: str) -> str:
    """The -O3 IR of a program's modules (for tests and for reading what the vectoriser did)."""
    tm = target_machine()
    out = []
    for text in llvm_jit.split_modules(ir_text):
        mod = llvm.parse_assembly(text)
        llvm_jit.optimize(mod, tm, speed_level=3)
        out.append(str(mod))
    return llvm_jit.MODULE_BREAK.join(out)


# a disk entry's payload: the objects of a program's modules, each after its u64 length
_OBJECTS = struct.Struct("<Q")


def pack_objects(objs) -> bytes:
    return b"".join(_OBJECTS.pack(len(o)) + bytes(o) for o in objs)


def unpack_objects(payload) -> list:
    """Inverse of pack_objects; raises BadEntry on lengths that do not add up."""
    data, out, at = bytes(payload), [], 0
    while at < len(data):
        if at + _OBJECTS.size > len(data):
            raise BadEntry("object list cut short")
        (n,) = _OBJECTS.unpack_from(data, at)
        at += _OBJECTS.size
        if at + n > len(data):
            raise BadEntry("object list cut short")
        out.append(data[at:at + n])
        at += n
    if not out:
        raise BadEntry("no object code")
    return out


def _jit(objs, symbols, key: str) -> LoadedCode:
    # the engine takes ownership of its target machine (and frees it with itself): give it its own
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), llvm_jit.create_target_machine(opt=3))
    for obj in objs:       # one program's modules call each other's functions: linked here
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    addrs = {s: engine.get_function_address(s) for s in symbols}
    missing = [s for s, a in addrs.items() if not a]
    if missing:
        raise RuntimeError(f"compiled program lacks functions {missing}")
    code = LoadedCode(engine, addrs, key)
    with _lock:
        _alive.add(code)
    return code


def _usable_dir(limit: int, quiet: bool = False) -> str | None:
    """The disk cache directory when it may be used (created 0700 if missing), else None.
    quiet: no warning (the program cache's look-ups; the object code's load says it once)."""
    if limit <= 0:
        return None
    directory = cache_dir()
    problem = prepare_dir(directory)
    if problem:
        if not quiet:
            warn(f"not using the cache directory {directory}: {problem}; compiling in memory "
                 f"(chmod 700 it, or point GRAPHC_CACHE_DIR elsewhere)")
        return None
    return directory


def _store(directory: str, key: str, obj: bytes, limit: int, suffix: str = OBJECT) -> None:
    try:
        write_entry(directory, key, encode_entry(key, obj, host_target()), suffix)
    except OSError as exc:
        if directory not in _write_failed:
            _write_failed.add(directory)
            warn(f"could not write {entry_path(directory, key, suffix)} ({exc.strerror or exc}); programs "
                 f"still run, compiled in every process")
        return
    trim(directory, limit)


def read_stored(key: str) -> bytes | None:
    """The verified payload of the program entry <key>.p (runtime/program_cache.py), after every
    check an object entry gets; None when the disk cache is off or holds no usable entry (a
    refused one is reported as a CacheWarning)."""
    limit = max_bytes()
    directory = _usable_dir(limit, quiet=True)
    if directory is None:
        return None
    try:
        return load_entry(directory, key, host_target(), min(limit, MAX_ENTRY_BYTES), PROGRAM)
    except BadEntry as exc:
        warn(f"refused {entry_path(directory, key, PROGRAM)}: {exc}; recompiling and replacing it")
        return None


def write_stored(key: str, payload: bytes) -> None:
    """Store `payload` under `key` as read_stored reads it (no-op when the disk cache is off)."""
    limit = max_bytes()
    directory = _usable_dir(limit, quiet=True)
    if directory is not None:
        _store(directory, key, payload, limit, PROGRAM)


def load(key: str, build_ir, symbols, use_cache: bool = True):
    """The loaded code of the program under `key`. build_ir() gives LLVM IR (what compile_objects
    takes) and is called only when neither the memory nor the disk cache holds intact object
    code for the key.
    Returns (addresses dict, where it came from: 'memory' | 'disk' | 'compiled', LoadedCode).
    The caller keeps the LoadedCode alive as long as it calls the addresses."""
    load_blas()
    threads.ensure_pool()     # generated code calls graphc_pool_run
    return load_code(key, build_ir, symbols, use_cache)


def load_code(key: str, build_ir, symbols, use_cache: bool = True, resident: bool = False):
    """load() for code that calls neither OpenBLAS nor the worker pool (the pool's own module
    is cached through this: building it costs every process about 45 ms, loading its object
    3 ms). resident: code kept for the whole process (the pool's), so it takes no place among
    the GRAPHC_CACHE_MAX_PROGRAMS programs in memory and is not counted by live_engines()."""
    remember = use_cache and not resident
    if remember:
        with _lock:
            code = _memory.get(key, max_programs())
        if code is not None:
            return code.addrs, "memory", code
    limit = max_bytes() if use_cache else 0
    directory = _usable_dir(limit)
    code = None
    if directory is not None:
        path = entry_path(directory, key)
        try:
            obj = load_entry(directory, key, host_target(), min(limit, MAX_ENTRY_BYTES))
            if obj is not None:
                code = _jit(unpack_objects(obj), symbols, key)
        except (BadEntry, RuntimeError) as exc:
            warn(f"refused {path}: {exc}; recompiling and replacing it")
    source = "disk" if code is not None else "compiled"
    if code is None:
        objs = compile_objects(build_ir())
        if directory is not None:
            _store(directory, key, pack_objects(objs), limit)
        code = _jit(objs, symbols, key)
    if remember:
        with _lock:
            _memory.put(key, code, max_programs())
    if resident:
        with _lock:
            _alive.discard(code)
    return code.addrs, source, code


__all__ = ["load", "load_code", "make_key", "read_stored", "write_stored", "compile_object", "compile_objects",
           "pack_objects", "unpack_objects", "optimized_ir", "cache_dir", "load_blas", "target_machine",
           "host_target", "host_signature", "live_engines", "LoadedCode", "CacheWarning", "VERSION"]
