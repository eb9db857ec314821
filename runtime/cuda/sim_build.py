"""Compiling rendered CUDA C for the simulator: g++ with sim_runtime.h force-included, into a
shared library loaded with ctypes, cached on disk and in the process.

The disk cache is a `cuda-sim` folder in the compile cache's directory ($GRAPHC_CACHE_DIR; or
$GRAPHC_CUDA_SIM_CACHE; off when GRAPHC_CACHE_MAX_BYTES is 0), one <key>.so per source, the key the hash of the header,
the source, the flags, the compiler's version and the machine. A library is executed, so one
is loaded from there only when it is a regular file of this user that nobody else may write.
(Entries are not trimmed to GRAPHC_CACHE_MAX_BYTES: they are tens of kilobytes, test-only.)
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading

from ..cache_store import cache_dir, max_bytes, prepare_dir
from .driver import CudaError

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sim_runtime.h")
# -U_FORTIFY_SOURCE: the fault handler's siglongjmp leaves a fiber's stack for the launcher's,
# which glibc's checked longjmp would take for stack smashing. -fstack-clash-protection: a large
# frame touches each page it allocates, so it faults on the guard page below a fiber's stack
# instead of stepping over it into a neighbour's.
FLAGS = ("-O1", "-std=c++17", "-shared", "-fPIC", "-w", "-U_FORTIFY_SOURCE", "-fstack-clash-protection")
_KERNEL_RE = re.compile(r'__global__\s+void\s+(\w+)\s*\(')

# key -> CDLL: a process loads each compiled source once, whichever driver instance asks
_loaded: dict = {}
_load_lock = threading.Lock()
# how many times g++ ran, and libraries came from disk, in this process (for tests)
stats = {"compiles": 0, "disk_hits": 0}


def kernel_sources(source: str) -> dict:
    """name -> (its text, its parameter count). The text runs from its `__global__` to the next
    kernel's, plus the helpers before the first kernel (a barrier there counts for every one)."""
    found = list(_KERNEL_RE.finditer(source))
    prelude = source[:found[0].start()] if found else ""
    out = {}
    for i, m in enumerate(found):
        text = prelude + source[m.start():(found[i + 1].start() if i + 1 < len(found) else len(source))]
        params = source[m.end():source.find(")", m.end())].strip()
        out[m.group(1)] = (text, params.count(",") + 1 if params and params != "void" else 0)
    return out


def _max_params(source: str) -> int:
    return max([n for _, n in kernel_sources(source).values()], default=0)


_compiler_id = None


def _compiler() -> tuple:
    """(g++ path, its version line): the version is part of every cache key."""
    global _compiler_id
    if _compiler_id is None:
        gxx = shutil.which("g++")
        if gxx is None:
            raise CudaError("the CUDA simulator needs g++ to compile kernels, and g++ is not on PATH")
        out = subprocess.run([gxx, "--version"], capture_output=True, text=True).stdout
        _compiler_id = (gxx, out.splitlines()[0] if out else "")
    return _compiler_id


def _flags(source: str) -> tuple:
    return FLAGS + (f"-DGC_SIM_MAX_ARGS={_max_params(source)}",)


def module_key(source: str) -> str:
    gxx, version = _compiler()
    with open(HEADER, "rb") as f:
        header = f.read()
    h = hashlib.sha256()
    for part in (header, source.encode(), " ".join(_flags(source)).encode(), version.encode(),
                 os.uname().machine.encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def compiled(source: str):
    """The CDLL for `source`: from this process, else the disk cache, else g++."""
    key = module_key(source)
    with _load_lock:
        lib = _loaded.get(key)
        if lib is None:
            lib = _load_or_build(key, source)
            lib.gc_sim_run.argtypes = ([ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p] + [ctypes.c_int] * 6
                                       + [ctypes.c_void_p])
            lib.gc_sim_run.restype = ctypes.c_int
            lib.gc_sim_error.restype = ctypes.c_char_p
            lib.gc_sim_fault_address.restype = ctypes.c_void_p
            _loaded[key] = lib
    return lib


def _cache_folder() -> str | None:
    if max_bytes() == 0:
        return None
    # GRAPHC_CUDA_SIM_CACHE: a folder of its own (the test suite's workers share one, each with
    # its own compile cache: most GPU tests compile the same elementwise kernels)
    folder = os.environ.get("GRAPHC_CUDA_SIM_CACHE") or os.path.join(cache_dir(), "cuda-sim")
    return folder if prepare_dir(folder) is None else None


def _trusted(path: str) -> bool:
    """A cached library is executed: only a regular file of ours that nobody else may write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _load_or_build(key: str, source: str):
    folder = _cache_folder()
    if folder is not None:
        path = os.path.join(folder, key + ".so")
        if _trusted(path):
            stats["disk_hits"] += 1
            return ctypes.CDLL(path)
    with tempfile.TemporaryDirectory(prefix="graphc-sim-") as tmp:
        built = _build(source, tmp)
        if folder is None:
            return ctypes.CDLL(built)       # mapped now; the file may go with the directory
        fd, staged = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".so")
        os.close(fd)
        shutil.copyfile(built, staged)
        os.replace(staged, path)
    return ctypes.CDLL(path)


def _build(source: str, tmp: str) -> str:
    gxx, _ = _compiler()
    src, out = os.path.join(tmp, "kernels.cu"), os.path.join(tmp, "kernels.so")
    with open(src, "w") as f:
        f.write(source)
    r = subprocess.run([gxx, *_flags(source), "-include", HEADER, "-x", "c++", src, "-o", out],
                       capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    stats["compiles"] += 1
    if r.returncode != 0:
        stderr = r.stderr.replace(src, "kernels.cu")
        errors = [line for line in stderr.splitlines() if "error" in line] or stderr.splitlines()
        names = ", ".join(_KERNEL_RE.findall(source)) or "no __global__ kernel found"
        raise CudaError(f"sim load_module: g++ could not compile kernels ({names}):\n"
                        + "\n".join(errors[:8]))
    return out
