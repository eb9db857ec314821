"""CUDA C source -> cubin in-process, through NVRTC (libnvrtc, called with ctypes).

Why NVRTC first: it needs no toolkit on the machine (the lent GPU has it as the nvidia-cuda-nvrtc
wheel) and no process per compile; runtime/cuda/toolchain.py falls back to nvcc when the library
is missing. Options deliberately leave out --use_fast_math: GPU results are compared with the
CPU's within float tolerance, and approximate exp/div/sqrt break that.

The rendered source starts with `#include <math.h>`, which NVRTC has no file for (its math
functions are built in): the program is given an empty math.h, so nvcc and NVRTC compile the
same text.
"""
from __future__ import annotations

import ctypes

from . import libraries
from .driver import CudaError

# beyond the architecture: none (NVRTC optimizes fully by default and takes no -O flag); the
# cubin cache key includes these, so a change here never serves an old cubin
OPTIONS = ()
# headers the rendered source includes that NVRTC provides as builtins
BUILTIN_HEADERS = {"math.h": ""}
_bound = None


class _Nvrtc:
    """libnvrtc's functions with their argument types (one per process)."""

    def __init__(self, lib):
        self.lib = lib
        P = ctypes.c_void_p
        sig = {
            "nvrtcVersion": [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)],
            "nvrtcGetNumSupportedArchs": [ctypes.POINTER(ctypes.c_int)],
            "nvrtcGetSupportedArchs": [ctypes.POINTER(ctypes.c_int)],
            "nvrtcCreateProgram": [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)],
            "nvrtcCompileProgram": [P, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
            "nvrtcGetProgramLogSize": [P, ctypes.POINTER(ctypes.c_size_t)],
            "nvrtcGetProgramLog": [P, ctypes.c_char_p],
            "nvrtcGetCUBINSize": [P, ctypes.POINTER(ctypes.c_size_t)],
            "nvrtcGetCUBIN": [P, ctypes.c_char_p],
            "nvrtcDestroyProgram": [ctypes.POINTER(P)],
        }
        for name, argtypes in sig.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        lib.nvrtcGetErrorString.argtypes, lib.nvrtcGetErrorString.restype = [ctypes.c_int], ctypes.c_char_p

    def check(self, result: int, call: str, detail: str = "") -> None:
        if result != 0:
            text = (self.lib.nvrtcGetErrorString(result) or b"?").decode()
            raise CudaError(f"NVRTC {call} failed: {text} (code {result}){detail}")


def _nvrtc() -> _Nvrtc | None:
    global _bound
    if _bound is None:
        lib = libraries.open_library("nvrtc")
        if lib is None:
            return None
        try:
            _bound = _Nvrtc(lib)
        except AttributeError:      # a library too old for the calls we make
            return None
    return _bound


def available() -> bool:
    return _nvrtc() is not None


def version() -> tuple:
    """(major, minor) of the loaded NVRTC; CudaError when there is none."""
    n = _require()
    major, minor = ctypes.c_int(), ctypes.c_int()
    n.check(n.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def compiler_id() -> str:
    """What the cubin cache key says about this compiler."""
    major, minor = version()
    return f"nvrtc-{major}.{minor}"


def supported_archs() -> list:
    """The sm numbers (75, 80, 90, ...) this NVRTC can generate cubins for."""
    n = _require()
    count = ctypes.c_int()
    n.check(n.lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
    archs = (ctypes.c_int * count.value)()
    n.check(n.lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
    return list(archs)


def pick_arch(capability: tuple, supported) -> int:
    """The sm number to build for a device of compute capability (major, minor): itself when
    the compiler supports it, else the newest supported one of the same major version below it
    (cubins run on later minor versions of their major); CudaError when none fits."""
    want = capability[0] * 10 + capability[1]
    if want in supported:
        return want
    same_major = [a for a in supported if a // 10 == capability[0] and a <= want]
    if same_major:
        return max(same_major)
    raise CudaError(f"the CUDA compiler cannot build for compute capability {capability[0]}.{capability[1]} "
                    f"(sm_{want}); it supports {', '.join(f'sm_{a}' for a in sorted(supported))}")


def compile_cubin(source: str, arch: int, name: str = "graphc_kernels.cu") -> bytes:
    """The cubin of `source` for sm_<arch>; CudaError with NVRTC's log when it does not compile."""
    n = _require()
    prog = ctypes.c_void_p()
    headers = list(BUILTIN_HEADERS.items())
    contents = (ctypes.c_char_p * len(headers))(*[h[1].encode() for h in headers])
    names = (ctypes.c_char_p * len(headers))(*[h[0].encode() for h in headers])
    n.check(n.lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), len(headers), contents,
                                     names), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture=sm_{arch}".encode(), *(o.encode() for o in OPTIONS)]
        result = n.lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        if result != 0:
            n.check(result, f"nvrtcCompileProgram (sm_{arch}, {name})", "\n" + _log(n, prog)[-4000:])
        size = ctypes.c_size_t()
        n.check(n.lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
        buf = ctypes.create_string_buffer(size.value)
        n.check(n.lib.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN")
        return buf.raw
    finally:
        n.lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _log(n: _Nvrtc, prog) -> str:
    size = ctypes.c_size_t()
    if n.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)) != 0 or size.value <= 1:
        return "(no log)"
    buf = ctypes.create_string_buffer(size.value)
    n.lib.nvrtcGetProgramLog(prog, buf)
    return buf.value.decode(errors="replace")


def _require() -> _Nvrtc:
    n = _nvrtc()
    if n is None:
        raise CudaError("NVRTC (libnvrtc) was not found: install the nvidia-cuda-nvrtc wheel or set CUDA_HOME "
                        f"(searched {', '.join(libraries.candidate_dirs('nvrtc')) or 'no CUDA folders'} and ldconfig)")
    return n
