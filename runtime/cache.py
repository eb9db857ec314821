"""Native code for compiled programs: LLVM IR text -> object code (through the shared target
machine and -O3 pipeline of llvm_jit), cached in memory and on disk, loaded into an MCJIT
engine. The disk cache lives in $GRAPHC_CACHE_DIR (default ~/.cache/graphc), one file per key.

A key covers everything the object code depends on: the caller's description of the program
(printed graph, attributes, constant bytes), the CPU name and features, the thread count and
graphc's version. Files are written atomically (temp file + rename), so concurrent processes
never read half an object.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import tempfile
import threading

import llvmlite.binding as llvm

from . import llvm_jit, threads

VERSION = "graphc-0.1.0-rt5"
_lock = threading.Lock()
_memory: dict = {}        # key -> (engine, {name: address})


@functools.cache
def target_machine():
    return llvm_jit.create_target_machine(opt=3)


@functools.cache
def host_signature() -> str:
    try:
        feats = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        feats = ""
    return f"{llvm.get_host_cpu_name()}|{feats}|llvm{llvm.llvm_version_info}"


@functools.cache
def load_blas() -> str:
    """Make OpenBLAS's symbols (scipy_cblas_*) visible to generated code; returns the path."""
    import scipy_openblas32
    lib_dir = scipy_openblas32.get_lib_dir()
    name = scipy_openblas32.get_library()
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


def cache_dir() -> str:
    return os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "graphc")


def make_key(description: str) -> str:
    h = hashlib.sha256()
    h.update(VERSION.encode())
    h.update(host_signature().encode())
    h.update(description.encode())
    return h.hexdigest()[:40]


def compile_object(ir_text: str) -> bytes:
    tm = target_machine()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    llvm_jit.optimize(mod, tm, speed_level=3)
    return tm.emit_object(mod)


def optimized_ir(ir_text: str) -> str:
    """The -O3 IR of a module (for tests and for reading what the vectoriser did)."""
    tm = target_machine()
    mod = llvm.parse_assembly(ir_text)
    llvm_jit.optimize(mod, tm, speed_level=3)
    return str(mod)


def load(key: str, build_ir, symbols, use_cache: bool = True):
    """Addresses of `symbols` for the program under `key`. build_ir() gives LLVM IR text and is
    called only when neither the memory nor the disk cache holds the object code.
    Returns (addresses dict, where it came from: 'memory' | 'disk' | 'compiled', engine). The
    caller keeps the engine alive as long as it calls the addresses."""
    load_blas()
    threads.ensure_pool()     # generated code calls graphc_pool_run
    with _lock:
        if use_cache and key in _memory:
            engine, addrs = _memory[key]
            return addrs, "memory", engine
    path = os.path.join(cache_dir(), key + ".o")
    obj, source = None, "compiled"
    if use_cache and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                obj = f.read()
            source = "disk"
        except OSError:
            obj = None
    if obj is None:
        obj = compile_object(build_ir())
        if use_cache:
            try:
                os.makedirs(cache_dir(), exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=cache_dir(), suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    f.write(obj)
                os.replace(tmp, path)
            except OSError:
                pass   # a read-only cache directory only costs recompilation
    # the engine takes ownership of its target machine (and frees it with itself): give it its own
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), llvm_jit.create_target_machine(opt=3))
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    addrs = {s: engine.get_function_address(s) for s in symbols}
    missing = [s for s, a in addrs.items() if not a]
    if missing:
        raise RuntimeError(f"compiled program lacks functions {missing}")
    if use_cache:
        with _lock:
            _memory[key] = (engine, addrs)
    return addrs, source, engine


__all__ = ["load", "make_key", "compile_object", "optimized_ir", "cache_dir", "load_blas", "target_machine"]
