"""The simulator's cuBLAS: a runtime.kernel_ir.Gemm computed by numpy on strided views of the
simulated device memory.

It keeps the rules a real cuBLAS call would hold the caller to, so a wrong Gemm fails here and
not first on a GPU: each leading dimension covers its stored rows (lda >= stored columns), every
matrix of the batch lies inside one live allocation, beta == 0 never reads C (fresh memory may
hold NaN) and alpha == 0 never reads A or B.
"""
from __future__ import annotations

import ctypes

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .driver import CudaError


def _operand(g, name, ptr, check, off, stride, rows, cols, ld, dtype):
    """(batch, rows, cols) view of a stored operand, after checking its extent."""
    if rows > 1 and ld < cols:
        raise CudaError(f"sim gemm {g.m}x{g.n}x{g.k}: {name} is stored with {cols} columns per row but its "
                        f"leading dimension is {ld}")
    if stride < 0 or off < 0:
        raise CudaError(f"sim gemm: {name} has a negative offset ({off}) or batch stride ({stride})")
    item = dtype.itemsize
    span = (g.batch - 1) * stride + (rows - 1) * ld + cols      # elements from the first to past the last
    start = ptr + off * item
    check(start, span * item, f"operand {name} ({g.batch} x {rows}x{cols}, ld {ld}, batch stride {stride}, "
                              f"offset {off})")
    flat = np.frombuffer((ctypes.c_char * (span * item)).from_address(start), dtype=dtype)
    return as_strided(flat, shape=(g.batch, rows, cols), strides=(stride * item, ld * item, item))


def run_gemm(g, check, a: int, b: int, c: int) -> None:
    """C_b = alpha * op(A_b) @ op(B_b) + beta * C_b for every b; `check(ptr, nbytes, what)` raises
    unless [ptr, ptr + nbytes) is device memory."""
    dtype = np.dtype(g.dtype)
    if g.m == 0 or g.n == 0 or g.batch == 0:
        return
    cv = _operand(g, "C", c, check, g.off_c, g.stride_c, g.m, g.n, g.ldc, dtype)
    if g.alpha != 0 and g.k > 0:
        ar, ac = (g.k, g.m) if g.trans_a else (g.m, g.k)
        br, bc = (g.n, g.k) if g.trans_b else (g.k, g.n)
        av = _operand(g, "A", a, check, g.off_a, g.stride_a, ar, ac, g.lda, dtype)
        bv = _operand(g, "B", b, check, g.off_b, g.stride_b, br, bc, g.ldb, dtype)
        opa = av.transpose(0, 2, 1) if g.trans_a else av
        opb = bv.transpose(0, 2, 1) if g.trans_b else bv
        result = np.matmul(opa, opb) * dtype.type(g.alpha)
    else:
        result = np.zeros((g.batch, g.m, g.n), dtype)
    if g.beta != 0:
        result = result + cv * dtype.type(g.beta)
    cv[...] = result
