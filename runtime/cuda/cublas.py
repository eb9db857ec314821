"""Matrix products on the GPU through cuBLAS (libcublas, called with ctypes).

graphc's Gemm (runtime/kernel_ir.py) is row-major; cuBLAS is column-major. A row-major matrix
with leading dimension ld is, read column-major, its own transpose with the same ld, so
C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: the operands swap, m and n swap, and each
operand keeps its own transpose flag. `column_major_args` is that mapping alone, a pure function
(tested against numpy without a GPU); `Blas` is one cuBLAS handle bound to a driver's stream.

cuBLAS's default math mode is set explicitly: no TF32 tensor-core rounding of float32 inputs,
so GPU products match the CPU's within float32 tolerance.
"""
from __future__ import annotations

import ctypes

from . import libraries
from .driver import CudaError

OP_N, OP_T = 0, 1
DEFAULT_MATH = 0
ITEMSIZE = {"float32": 4, "float64": 8}
INT_MAX = 2 ** 31 - 1
_STATUS = {0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
           7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
           13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR",
           15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR"}
_bound = None


def column_major_args(g) -> dict:
    """The cuBLAS (column-major) strided-batched call computing the row-major Gemm `g`:
    transa/transb (bools), m, n, k, lda/ldb/ldc, the batch strides, batch, alpha, beta, and for
    each cuBLAS operand A, B, C which of g's buffers it reads ('a', 'b', 'c') and at which
    element offset."""
    return {"transa": bool(g.trans_b), "transb": bool(g.trans_a),
            "m": g.n, "n": g.m, "k": g.k,
            "A": ("b", g.off_b), "lda": g.ldb, "stride_a": g.stride_b,
            "B": ("a", g.off_a), "ldb": g.lda, "stride_b": g.stride_a,
            "C": ("c", g.off_c), "ldc": g.ldc, "stride_c": g.stride_c,
            "batch": g.batch, "alpha": g.alpha, "beta": g.beta}


class _Cublas:
    """libcublas's functions with their argument types (one per process)."""

    def __init__(self, lib):
        self.lib = lib
        P, I, L = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
        sig = {"cublasCreate_v2": [ctypes.POINTER(P)], "cublasDestroy_v2": [P],
               "cublasSetStream_v2": [P, P], "cublasSetMathMode": [P, I]}
        for name, argtypes in sig.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        for name in ("cublasSgemmStridedBatched", "cublasDgemmStridedBatched"):
            fn = getattr(lib, name)
            fn.argtypes = [P, I, I, I, I, I, P, P, I, L, P, I, L, P, P, I, L, I]
            fn.restype = ctypes.c_int
        self.status_name = getattr(lib, "cublasGetStatusName", None)
        if self.status_name is not None:
            self.status_name.argtypes, self.status_name.restype = [ctypes.c_int], ctypes.c_char_p

    def check(self, status: int, call: str) -> None:
        if status != 0:
            name = self.status_name(status).decode() if self.status_name else _STATUS.get(status, "unknown status")
            raise CudaError(f"cuBLAS {call} failed: {name} ({status})")


def _cublas() -> _Cublas | None:
    global _bound
    if _bound is None:
        libraries.open_library("cublasLt", global_symbols=True)      # libcublas's dependency, same folder
        lib = libraries.open_library("cublas")
        if lib is None:
            return None
        try:
            _bound = _Cublas(lib)
        except AttributeError:
            return None
    return _bound


def available() -> bool:
    return _cublas() is not None


class Blas:
    """One cuBLAS handle whose work goes to `stream` (a CUstream handle as an int). Create and use
    it with the owning device's context current on the calling thread."""

    def __init__(self, stream: int):
        cb = _cublas()
        if cb is None:
            raise CudaError("cuBLAS (libcublas) was not found: install the nvidia-cublas wheel or set CUDA_HOME "
                            f"(searched {', '.join(libraries.candidate_dirs('cublas')) or 'no CUDA folders'} "
                            "and ldconfig)")
        self._cb = cb
        self.handle = ctypes.c_void_p()
        cb.check(cb.lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        cb.check(cb.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream or None)), "cublasSetStream")
        cb.check(cb.lib.cublasSetMathMode(self.handle, DEFAULT_MATH), "cublasSetMathMode")

    def gemm(self, g, a: int, b: int, c: int) -> None:
        """Queue the row-major Gemm `g` on the buffers at a, b, c (device pointers)."""
        if g.dtype not in ITEMSIZE:
            raise CudaError(f"cuBLAS gemm: dtype {g.dtype} is not supported (float32 and float64 are)")
        if g.m == 0 or g.n == 0 or g.batch == 0:
            return
        cm = column_major_args(g)
        for name in ("m", "n", "k", "lda", "ldb", "ldc", "batch"):
            if cm[name] > INT_MAX:
                raise CudaError(f"cuBLAS gemm: {name}={cm[name]} exceeds the 32-bit limit of the strided-batched "
                                f"call (Gemm {g.m}x{g.n}x{g.k}, batch {g.batch})")
        size = ITEMSIZE[g.dtype]
        base = {"a": a, "b": b, "c": c}
        ptr = {op: base[cm[op][0]] + cm[op][1] * size for op in ("A", "B", "C")}
        scalar = ctypes.c_float if g.dtype == "float32" else ctypes.c_double
        alpha, beta = scalar(cm["alpha"]), scalar(cm["beta"])
        fn = self._cb.lib.cublasSgemmStridedBatched if g.dtype == "float32" else self._cb.lib.cublasDgemmStridedBatched
        status = fn(self.handle, OP_T if cm["transa"] else OP_N, OP_T if cm["transb"] else OP_N,
                    cm["m"], cm["n"], cm["k"], ctypes.byref(alpha),
                    ctypes.c_void_p(ptr["A"]), max(1, cm["lda"]), cm["stride_a"],
                    ctypes.c_void_p(ptr["B"]), max(1, cm["ldb"]), cm["stride_b"],
                    ctypes.byref(beta), ctypes.c_void_p(ptr["C"]), max(1, cm["ldc"]), cm["stride_c"], cm["batch"])
        self._cb.check(status, f"{'S' if g.dtype == 'float32' else 'D'}gemmStridedBatched "
                               f"({g.m}x{g.n}x{g.k}, batch {g.batch}, trans {g.trans_a}/{g.trans_b})")

    def close(self) -> None:
        if self.handle:
            self._cb.lib.cublasDestroy_v2(self.handle)
            self.handle = ctypes.c_void_p()
