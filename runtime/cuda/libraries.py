"""Finding and opening NVIDIA's user-space libraries (NVRTC, cuBLAS) without a CUDA install.

The lent GPU machine has them only as pip wheels (site-packages/nvidia/cu13/lib for CUDA 13,
nvidia/<package>/lib for CUDA 12), a workstation under $CUDA_HOME/lib64, a distribution through
ldconfig: we look in that order and take the newest soname found in the first place that has
one. A missing library is an answer (None), never an exception: callers fall back (nvcc for
NVRTC) or report that the GPU path is unavailable. This module knows file names, not APIs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import sys
import threading

# library stem -> the pip wheels' package folders that ship it (CUDA 13 bundles them in cu13)
WHEEL_DIRS = {"nvrtc": ("cu13", "cuda_nvrtc"), "cublas": ("cu13", "cublas"), "cublasLt": ("cu13", "cublas")}
_lock = threading.Lock()
_opened: dict = {}


def candidate_dirs(stem: str, paths=None, environ=None) -> list[str]:
    """Folders to search for lib<stem>.so*, most specific first: the nvidia wheels on
    `paths` (sys.path), then $CUDA_HOME / $CUDA_PATH, then /usr/local/cuda."""
    paths = sys.path if paths is None else paths
    environ = os.environ if environ is None else environ
    dirs = []
    for entry in paths:
        for package in WHEEL_DIRS.get(stem, ()):
            dirs.append(os.path.join(entry or ".", "nvidia", package, "lib"))
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        root = environ.get(var)
        if root:
            dirs += [os.path.join(root, "lib64"), os.path.join(root, "lib")]
    dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/lib"]
    seen, out = set(), []
    for d in dirs:
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            out.append(d)
    return out


def _version_key(path: str):
    """Sort key of a soname's version suffix: libx.so.13.5 > libx.so.13 > libx.so."""
    suffix = os.path.basename(path).split(".so", 1)[1]
    return tuple(int(p) for p in re.findall(r"\d+", suffix))


def find_library(stem: str, paths=None, environ=None) -> str | None:
    """Path of the newest lib<stem>.so* in the first candidate folder holding one, else what
    ldconfig knows by that name, else None."""
    for d in candidate_dirs(stem, paths, environ):
        found = [p for p in glob.glob(os.path.join(d, f"lib{stem}.so*"))
                 if re.fullmatch(rf"lib{re.escape(stem)}\.so(\.\d+)*", os.path.basename(p))]
        if found:
            return max(found, key=_version_key)
    return ctypes.util.find_library(stem)


def open_library(stem: str, global_symbols: bool = False):
    """The ctypes.CDLL of lib<stem>, opened once per process; None when it is not installed or
    does not load (a wrong architecture, a missing dependency)."""
    with _lock:
        if stem in _opened:
            return _opened[stem]
        path = find_library(stem)
        lib = None
        if path is not None:
            try:
                lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL if global_symbols else ctypes.RTLD_LOCAL)
            except OSError:
                lib = None
        _opened[stem] = lib
        return lib


def forget() -> None:
    """Tests: search again on the next open_library (after changing sys.path or CUDA_HOME)."""
    with _lock:
        _opened.clear()
