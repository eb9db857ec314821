"""CUDA C source -> cubin for one device, cached in memory and on disk.

Which compiler: NVRTC when libnvrtc loads (runtime/cuda/nvrtc.py), else nvcc -cubin;
GRAPHC_CUDA_COMPILER=nvrtc|nvcc forces one. The cubin targets the device's own architecture
(nvrtc.pick_arch), so nothing is JIT-compiled from PTX at load time.

The disk cache lives in the graphc cache directory's `cuda/` folder as <key>.cubin, in the
compile cache's entry format (runtime/cache_entry.py: length and SHA-256 checked before use) and
under its file rules (runtime/cache_store.py: owned by this user, written atomically). The key is
the SHA-256 of the source, the architecture, the compiler's identity and its options: a new
compiler or option set never serves an old cubin. GRAPHC_CACHE_MAX_BYTES bounds the folder
(least recently used first; 0 turns the disk cache off). This module never loads a cubin: the
drivers do.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading

from .. import cache_store
from ..cache_entry import BadEntry, encode_entry, decode_entry
from . import nvrtc
from .driver import CudaError

SUFFIX = ".cubin"
# bump when the way cubins are built changes in a way the key does not show
CUBIN_VERSION = "graphc-cubin-1"
NVCC_OPTIONS = ("-O3",)      # and no --use_fast_math: results must match the CPU within tolerance
NVCC_TIMEOUT = 600
COMPILER_ENV = "GRAPHC_CUDA_COMPILER"
_lock = threading.Lock()
_memory: dict = {}
_counts = {"compiles": 0, "disk_hits": 0, "memory_hits": 0}


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        root = os.environ.get(var)
        if root and os.access(os.path.join(root, "bin", "nvcc"), os.X_OK):
            return os.path.join(root, "bin", "nvcc")
    return "/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None


@functools.cache
def _nvcc_identity(nvcc: str) -> tuple:
    """(compiler id, supported sm numbers) of one nvcc binary."""
    try:
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
        codes = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CudaError(f"cannot run {nvcc} --version: {exc}") from None
    release = [ln.strip() for ln in version.stdout.splitlines() if ln.strip()]
    archs = sorted({int(w[3:]) for w in codes.stdout.split() if w.startswith("sm_") and w[3:].isdigit()})
    return "nvcc-" + (release[-1] if release else "unknown"), archs


class Compiler:
    """One way to make cubins: its identity (part of the cache key), the architectures it can
    target and the compile call."""

    def __init__(self, kind: str, ident: str, archs: list, compile_fn):
        self.kind, self.ident, self.archs, self._compile = kind, ident, archs, compile_fn

    def compile(self, source: str, arch: int) -> bytes:
        return self._compile(source, arch)


def compiler() -> Compiler:
    """The compiler this process uses (see the module docstring); CudaError when there is none."""
    forced = os.environ.get(COMPILER_ENV, "").strip().lower()
    if forced not in ("", "nvrtc", "nvcc"):
        raise CudaError(f"{COMPILER_ENV}={forced!r}: expected 'nvrtc' or 'nvcc'")
    if forced in ("", "nvrtc") and nvrtc.available():
        return Compiler("nvrtc", nvrtc.compiler_id(), nvrtc.supported_archs(), nvrtc.compile_cubin)
    if forced == "nvrtc":
        nvrtc.version()      # raises the CudaError that says where NVRTC was looked for
    nvcc = find_nvcc()
    if nvcc is None:
        raise CudaError("no CUDA compiler: NVRTC (libnvrtc) was not found and nvcc is not on the PATH, "
                        "in $CUDA_HOME/bin or /usr/local/cuda/bin")
    ident, archs = _nvcc_identity(nvcc)
    return Compiler("nvcc", ident, archs, functools.partial(nvcc_cubin, nvcc))


def nvcc_cubin(nvcc: str, source: str, arch: int) -> bytes:
    """The cubin nvcc makes of `source` for sm_<arch>; CudaError with nvcc's messages if it fails."""
    with tempfile.TemporaryDirectory(prefix="graphc-nvcc-") as tmp:
        src, out = os.path.join(tmp, "kernels.cu"), os.path.join(tmp, "kernels.cubin")
        with open(src, "w") as f:
            f.write(source)
        cmd = [nvcc, "-cubin", f"-arch=sm_{arch}", *NVCC_OPTIONS, src, "-o", out]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=NVCC_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise CudaError(f"nvcc -cubin for sm_{arch} ran past {NVCC_TIMEOUT} s") from None
        except OSError as exc:
            raise CudaError(f"cannot run {nvcc}: {exc}") from None
        if r.returncode != 0:
            raise CudaError(f"nvcc -cubin for sm_{arch} failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
        with open(out, "rb") as f:
            return f.read()


def cache_key(source: str, arch: int, ident: str, options=()) -> str:
    text = json.dumps([CUBIN_VERSION, source, arch, ident, list(options)])
    return hashlib.sha256(text.encode()).hexdigest()


def _target(arch: int, ident: str) -> dict:
    """The entry header's fields (cache_entry.TARGET_FIELDS) for a cubin."""
    return {"graphc": CUBIN_VERSION, "llvmlite": "-", "llvm": "-", "triple": "nvptx64-nvidia-cuda",
            "cpu": f"sm_{arch}", "features": ident}


def cache_folder() -> str:
    return os.path.join(cache_store.cache_dir(), "cuda")


def compile_for(source: str, capability: tuple) -> bytes:
    """The cubin of `source` for a device of compute capability (major, minor): from memory,
    else from the disk cache, else compiled (and stored)."""
    comp = compiler()
    arch = nvrtc.pick_arch(capability, comp.archs)
    options = nvrtc.OPTIONS if comp.kind == "nvrtc" else NVCC_OPTIONS
    key = cache_key(source, arch, comp.ident, options)
    with _lock:
        if key in _memory:
            _counts["memory_hits"] += 1
            return _memory[key]
    target = _target(arch, comp.ident)
    cubin = _load(key, target)
    counter = "disk_hits"
    if cubin is None:
        cubin = comp.compile(source, arch)
        counter = "compiles"
        _store(key, cubin, target)
    with _lock:
        _counts[counter] += 1
        _memory[key] = cubin
    return cubin


def _load(key: str, target: dict) -> bytes | None:
    if cache_store.max_bytes() == 0:
        return None
    folder = cache_folder()
    problem = cache_store.dir_problem(folder)
    if problem:
        cache_store.warn(f"not using the CUDA cubin cache {folder}: {problem}")
        return None
    try:
        data = cache_store.read_entry_bytes(cache_store.entry_path(folder, key, SUFFIX), cache_store.MAX_ENTRY_BYTES)
        if data is None:
            return None
        cubin = decode_entry(data, key, target)
    except BadEntry as exc:
        cache_store.warn(f"recompiling the CUDA kernels of cache entry {key[:16]}...: {exc}")
        return None
    try:
        os.utime(cache_store.entry_path(folder, key, SUFFIX), follow_symlinks=False)
    except OSError:
        pass
    return cubin


def _store(key: str, cubin: bytes, target: dict) -> None:
    limit = cache_store.max_bytes()
    if limit == 0:
        return
    folder = cache_folder()
    problem = cache_store.prepare_dir(folder)
    if problem:
        cache_store.warn(f"not writing the CUDA cubin cache {folder}: {problem}")
        return
    try:
        cache_store.write_entry(folder, key, encode_entry(key, cubin, target), SUFFIX)
    except OSError as exc:
        cache_store.warn(f"could not write a CUDA cubin to {folder}: {exc.strerror or exc}")
        return
    _trim(folder, limit)


def _trim(folder: str, limit: int) -> None:
    """Remove least recently used cubins until the folder's total is within `limit` bytes."""
    entries = []
    for name in os.listdir(folder):
        if name.endswith(SUFFIX):
            try:
                entries.append((os.path.join(folder, name), os.lstat(os.path.join(folder, name))))
            except OSError:
                pass
    entries.sort(key=lambda e: e[1].st_mtime_ns)
    total = sum(st.st_size for _, st in entries)
    for path, st in entries:
        if total <= limit:
            break
        try:
            os.unlink(path)
            total -= st.st_size
        except OSError:
            pass


def stats() -> dict:
    """compiles, disk_hits, memory_hits since the process started (tests and the profiler)."""
    with _lock:
        return dict(_counts)


def clear_memory_cache() -> None:
    """Forget the cubins held in memory (tests: the next compile_for reads the disk)."""
    with _lock:
        _memory.clear()
