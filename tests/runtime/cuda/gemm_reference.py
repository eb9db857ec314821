"""References for the GPU GEMM tests: what a row-major runtime.kernel_ir.Gemm means, BLAS's
column-major strided-batched GEMM by its definition, and a hypothesis strategy of Gemms with
transposes, padded leading dimensions, batch strides (0: one matrix for the whole batch) and
offsets."""
import numpy as np
from hypothesis import strategies as st

from graphc.runtime.kernel_ir import Gemm


def _stored_shape(g, which):
    """(rows, cols) of operand `which` as stored row-major."""
    if which == "a":
        return (g.k, g.m) if g.trans_a else (g.m, g.k)
    if which == "b":
        return (g.n, g.k) if g.trans_b else (g.k, g.n)
    return g.m, g.n


def _extent(g, which):
    rows, cols = _stored_shape(g, which)
    off, ld, stride = {"a": (g.off_a, g.lda, g.stride_a), "b": (g.off_b, g.ldb, g.stride_b),
                       "c": (g.off_c, g.ldc, g.stride_c)}[which]
    return off + (g.batch - 1) * stride + (rows - 1) * ld + cols


def rowmajor_reference(g, a, b, c):
    """What the Gemm means (runtime/kernel_ir.py), on flat numpy buffers; returns the new c."""
    c = c.copy()
    for p in range(g.batch):
        def mat(buf, which, off, ld, stride):
            rows, cols = _stored_shape(g, which)
            i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
            return buf[off + p * stride + i * ld + j]
        A = mat(a, "a", g.off_a, g.lda, g.stride_a)
        B = mat(b, "b", g.off_b, g.ldb, g.stride_b)
        A, B = (A.T if g.trans_a else A), (B.T if g.trans_b else B)
        i, j = np.meshgrid(np.arange(g.m), np.arange(g.n), indexing="ij")
        idx = g.off_c + p * g.stride_c + i * g.ldc + j
        old = c[idx] * g.beta if g.beta else 0
        c[idx] = g.alpha * (A @ B) + old
    return c


def colmajor_gemm(transa, transb, m, n, k, alpha, A, offA, lda, sA, B, offB, ldb, sB, beta, C, offC, ldc, sC,
                  batch):
    """BLAS ?gemmStridedBatched by its definition: column-major, element (i, j) of a stored
    matrix at off + i + j * ld; C_p = alpha op(A_p) op(B_p) + beta C_p (C not read when beta = 0)."""
    for p in range(batch):
        i, l_ = np.meshgrid(np.arange(m), np.arange(k), indexing="ij")
        opA = A[offA + p * sA + (l_ + i * lda if transa else i + l_ * lda)]        # m x k
        l2, j = np.meshgrid(np.arange(k), np.arange(n), indexing="ij")
        opB = B[offB + p * sB + (j + l2 * ldb if transb else l2 + j * ldb)]        # k x n
        ci, cj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        idx = offC + p * sC + ci + cj * ldc
        C[idx] = alpha * (opA @ opB) + (beta * C[idx] if beta else 0)


@st.composite
def gemms(draw, dtype="float64"):
    m, n, k = (draw(st.integers(1, 5)) for _ in range(3))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    batch = draw(st.integers(1, 3))
    pad = lambda: draw(st.integers(0, 2))          # noqa: E731
    lda = (m if ta else k) + pad()
    ldb = (k if tb else n) + pad()
    ldc = n + pad()
    size_a = ((k if ta else m) - 1) * lda + (m if ta else k)
    size_b = ((n if tb else k) - 1) * ldb + (n if tb else k)
    size_c = (m - 1) * ldc + n
    # A or B may be one matrix for the whole batch (stride 0); C never overlaps itself
    stride_a = draw(st.sampled_from([0, size_a, size_a + 3]))
    stride_b = draw(st.sampled_from([0, size_b, size_b + 1]))
    stride_c = size_c + draw(st.integers(0, 2))
    return Gemm(a="a", b="b", c="c", m=m, n=n, k=k, trans_a=ta, trans_b=tb, lda=lda, ldb=ldb, ldc=ldc, dtype=dtype,
                batch=batch, stride_a=stride_a, stride_b=stride_b, stride_c=stride_c,
                alpha=draw(st.sampled_from([1.0, 0.5, -2.0])), beta=draw(st.sampled_from([0.0, 1.0, 0.25])),
                off_a=draw(st.integers(0, 4)), off_b=draw(st.integers(0, 4)), off_c=draw(st.integers(0, 4)))


def buffers(g, rng, dtype=np.float64):
    return {w: rng.standard_normal(_extent(g, w) + 3).astype(dtype) for w in "abc"}
