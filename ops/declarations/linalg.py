"""MXNet's linear-algebra operators (nd.linalg.*, registered as _linalg_<name>): batched over
the leading axes, matrices in the last two (gemm/gemm2 take `axis`, the row axis, to put them
elsewhere). They run as numpy host steps (no native lowering); gradients are graphs of these
same operators, so second derivatives work too.

Triangular operands follow LAPACK as MXNet does: only the triangle named by `lower` is read,
and the gradient into such an operand is zero in the other triangle. potrf is the exception,
as in MXNet: its gradient is symmetric, the derivative along symmetric perturbations (the only
inputs Cholesky is defined for).
"""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import GraphcError, ShapeError
from ..registry import OpDef, register
from .common import like, same_dtype


def _T(x):
    return np.swapaxes(x, -1, -2)


def _batch_shape(shape):
    """The shape of one value per matrix: MXNet 1.x writes a single matrix's as (1,), not ()."""
    return tuple(shape[:-2]) or (1,)


def _square(op, t, name="A"):
    if t.ndim < 2 or t.shape[-1] != t.shape[-2]:
        raise ShapeError(f"{op}: {name} must be a batch of square matrices (..., n, n), got {t.shape}")


def _batch(op, *named):
    first = named[0][1]
    for name, t in named[1:]:
        if t.shape[:-2] != first.shape[:-2]:
            raise ShapeError(f"{op}: {named[0][0]} {first.shape} and {name} {t.shape} have different batch "
                             f"dimensions {first.shape[:-2]} vs {t.shape[:-2]}")


def _row_axis(op, t, axis):
    if t.ndim < 2:
        raise ShapeError(f"{op}: inputs must have at least two dimensions, got {t.shape}")
    if not -t.ndim <= axis < t.ndim - 1 or axis % t.ndim == t.ndim - 1:
        raise ShapeError(f"{op}: axis {axis} (the row axis) must come before the last axis of {t.shape}")
    return axis % t.ndim


def _to_matrix_shape(shape, axis):
    """The shape with the row axis moved to the second-last place (where the kernels want it)."""
    s = list(shape)
    row = s.pop(axis)
    return tuple(s[:-1] + [row, s[-1]])


def _from_matrix_shape(shape, axis):
    s = list(shape)
    row = s.pop(-2)
    s.insert(axis, row)
    return tuple(s)


def _gemm_shape(op, a, b, transpose_a, transpose_b, axis):
    same_dtype(op, a, b, names=("A", "B"))
    ax_a, ax_b = _row_axis(op, a, axis), _row_axis(op, b, axis)
    am, bm = _to_matrix_shape(a.shape, ax_a), _to_matrix_shape(b.shape, ax_b)
    if am[:-2] != bm[:-2]:
        raise ShapeError(f"{op}: A {a.shape} and B {b.shape} must match except on the row/column axes")
    m, k = (am[-1], am[-2]) if transpose_a else (am[-2], am[-1])
    k2, n = (bm[-1], bm[-2]) if transpose_b else (bm[-2], bm[-1])
    if k != k2:
        raise ShapeError(f"{op}: op(A) from {a.shape} has {k} columns but op(B) from {b.shape} has {k2} rows")
    return _from_matrix_shape(am[:-2] + (m, n), ax_a)


def _product(a, b, transpose_a, transpose_b, alpha, axis):
    a, b = np.moveaxis(a, axis, -2), np.moveaxis(b, axis, -2)
    out = alpha * np.matmul(_T(a) if transpose_a else a, _T(b) if transpose_b else b)
    return np.moveaxis(out, -2, axis)


_GEMM_ATTRS = {"transpose_a": Attr("bool", False), "transpose_b": Attr("bool", False),
               "alpha": Attr("float", 1.0), "axis": Attr("int", -2)}


def _gemm_grads(F, a, b, g, attrs, product):
    """(dA, dB) of alpha * op(A) op(B), each a gemm2 of the head gradient and the other factor."""
    ta, tb, alpha, axis = attrs["transpose_a"], attrs["transpose_b"], attrs["alpha"], attrs["axis"]

    def mm(x, y, tx, ty):
        return product(x, y, transpose_a=tx, transpose_b=ty, alpha=alpha, axis=axis)
    da = mm(b, g, tb, True) if ta else mm(g, b, False, not tb)
    db = mm(g, a, True, ta) if tb else mm(a, g, not ta, False)
    return da, db


# -- gemm: alpha * op(A) op(B) + beta * C ---------------------------------------------------------

def _gemm_infer(a, b, c, transpose_a, transpose_b, alpha, beta, axis):
    shape = _gemm_shape("_linalg_gemm", a, b, transpose_a, transpose_b, axis)
    if c.shape != shape:
        raise ShapeError(f"_linalg_gemm: C has shape {c.shape}, expected {shape} (the shape of op(A) op(B))")
    same_dtype("_linalg_gemm", a, c, names=("A", "C"))
    return like(a, shape)


def _gemm_np(a, b, c, transpose_a, transpose_b, alpha, beta, axis):
    return (_product(a, b, transpose_a, transpose_b, alpha, axis % a.ndim) + beta * c).astype(a.dtype, copy=False)


def _gemm_grad(F, ins, outs, gs, attrs):
    a, b, _ = ins
    da, db = _gemm_grads(F, a, b, gs[0], attrs, F._linalg_gemm2)
    return [da, db, gs[0] * attrs["beta"]]


register(OpDef("_linalg_gemm", inputs=("A", "B", "C"), infer=_gemm_infer, compute=_gemm_np, gradient=_gemm_grad,
               attrs={**_GEMM_ATTRS, "beta": Attr("float", 1.0)}, aliases=("linalg_gemm",),
               doc="alpha * op(A) op(B) + beta * C, batched."))


def _gemm2_infer(a, b, transpose_a, transpose_b, alpha, axis):
    return like(a, _gemm_shape("_linalg_gemm2", a, b, transpose_a, transpose_b, axis))


def _gemm2_np(a, b, transpose_a, transpose_b, alpha, axis):
    return _product(a, b, transpose_a, transpose_b, alpha, axis % a.ndim).astype(a.dtype, copy=False)


register(OpDef("_linalg_gemm2", inputs=("A", "B"), infer=_gemm2_infer, compute=_gemm2_np, attrs=_GEMM_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: list(_gemm_grads(F, ins[0], ins[1], gs[0], attrs,
                                                                         F._linalg_gemm2)),
               aliases=("linalg_gemm2",), doc="alpha * op(A) op(B), batched."))


# -- triangles --------------------------------------------------------------------------------------

def _tri(x, lower):
    return np.tril(x) if lower else np.triu(x)


def _tri_mask(F, x, lower):
    """x with the other triangle zeroed, as a graph: a constant 0/1 mask times x."""
    n = x.shape[-1]
    mask = np.tril(np.ones((n, n))) if lower else np.triu(np.ones((n, n)))
    return x * mask.astype(x.dtype)


def _swap(F, x):
    return F.SwapAxis(x, dim1=x.ndim - 2, dim2=x.ndim - 1)


_TRI_ATTRS = {"transpose": Attr("bool", False), "rightside": Attr("bool", False), "lower": Attr("bool", True),
              "alpha": Attr("float", 1.0)}


def _tri_infer(op):
    def infer(a, b, transpose, rightside, lower, alpha):
        same_dtype(op, a, b, names=("A", "B"))
        _square(op, a)
        if b.ndim < 2:
            raise ShapeError(f"{op}: B must have at least two dimensions, got {b.shape}")
        _batch(op, ("A", a), ("B", b))
        side = b.shape[-1] if rightside else b.shape[-2]
        if side != a.shape[-1]:
            raise ShapeError(f"{op}: A {a.shape} is {a.shape[-1]}x{a.shape[-1]} but B {b.shape} has {side} "
                             f"{'columns' if rightside else 'rows'} (rightside={rightside})")
        return b
    return infer


def _op_tri(a, transpose, lower):
    t = _tri(a, lower)
    return _T(t) if transpose else t


def _trmm_np(a, b, transpose, rightside, lower, alpha):
    t = _op_tri(a, transpose, lower)
    return (alpha * (np.matmul(b, t) if rightside else np.matmul(t, b))).astype(b.dtype, copy=False)


def _trsm_np(a, b, transpose, rightside, lower, alpha):
    t = _op_tri(a, transpose, lower)
    diag = np.diagonal(t, axis1=-2, axis2=-1)
    if np.any(diag == 0):
        raise GraphcError("_linalg_trsm: A is singular (a zero on the diagonal of its triangle)")
    if rightside:  # X op(T) = alpha B  <=>  op(T)^T X^T = alpha B^T
        x = _T(np.linalg.solve(_T(t), _T(b)))
    else:
        x = np.linalg.solve(t, b)
    return (alpha * x).astype(b.dtype, copy=False)


def _tri_factor_grad(F, y, x, transpose, rightside):
    """dT for out = op(T) X (left) or X op(T) (right) from the head-side factor y and the other
    factor x, before masking to the triangle."""
    if rightside:
        return F._linalg_gemm2(y, x, transpose_a=True) if transpose else F._linalg_gemm2(x, y, transpose_a=True)
    return F._linalg_gemm2(x, y, transpose_b=True) if transpose else F._linalg_gemm2(y, x, transpose_b=True)


def _trmm_grad(F, ins, outs, gs, attrs):
    a, b = ins
    g = gs[0]
    t, r, lower, alpha = attrs["transpose"], attrs["rightside"], attrs["lower"], attrs["alpha"]
    db = F._linalg_trmm(a, g, transpose=not t, rightside=r, lower=lower, alpha=alpha)
    da = _tri_factor_grad(F, g, b, t, r) * alpha
    return [_tri_mask(F, da, lower), db]


def _trsm_grad(F, ins, outs, gs, attrs):
    a, _ = ins
    x, g = outs[0], gs[0]
    t, r, lower, alpha = attrs["transpose"], attrs["rightside"], attrs["lower"], attrs["alpha"]
    y = F._linalg_trsm(a, g, transpose=not t, rightside=r, lower=lower, alpha=1.0)
    da = _tri_factor_grad(F, y, x, t, r) * -1.0
    return [_tri_mask(F, da, lower), y * alpha]


register(OpDef("_linalg_trmm", inputs=("A", "B"), infer=_tri_infer("_linalg_trmm"), compute=_trmm_np,
               attrs=_TRI_ATTRS, gradient=_trmm_grad, aliases=("linalg_trmm",),
               doc="alpha * op(T) B, or alpha * B op(T) with rightside; T is A's lower (or upper) triangle."))
register(OpDef("_linalg_trsm", inputs=("A", "B"), infer=_tri_infer("_linalg_trsm"), compute=_trsm_np,
               attrs=_TRI_ATTRS, gradient=_trsm_grad, aliases=("linalg_trsm",),
               doc="Solve op(T) X = alpha B (or X op(T) = alpha B with rightside) for triangular T."))


# -- Cholesky: potrf, potri ------------------------------------------------------------------------

def _square_infer(op):
    def infer(a, **_):
        _square(op, a)
        return a
    return infer


def _potrf_np(a, lower):
    sym = np.tril(a) + _T(np.tril(a, -1)) if lower else np.triu(a) + _T(np.triu(a, 1))
    try:
        chol = np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        raise GraphcError("_linalg_potrf: the input is not symmetric positive definite "
                          "(Cholesky factorization failed)") from None
    return (chol if lower else _T(chol)).astype(a.dtype, copy=False)


def _phi(F, x):
    """The lower triangle with its diagonal halved."""
    n = x.shape[-1]
    return x * (np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n)).astype(x.dtype)


def _potrf_grad(F, ins, outs, gs, attrs):
    # A = L L^T: dA = sym(L^-T phi(L^T dL) L^-1) (Murray, "Differentiation of the Cholesky
    # decomposition"); for an upper factor U = L^T the same with L := U^T
    lower = attrs["lower"]
    factor, g = outs[0], gs[0]
    if not lower:
        factor, g = _swap(F, factor), _swap(F, g)
    inner = _phi(F, F._linalg_gemm2(factor, g, transpose_a=True))
    s = F._linalg_trsm(factor, F._linalg_trsm(factor, inner, rightside=True), transpose=True)
    return [(s + _swap(F, s)) * 0.5]


register(OpDef("_linalg_potrf", infer=_square_infer("_linalg_potrf"), compute=_potrf_np, inputs=("A",),
               attrs={"lower": Attr("bool", True)}, gradient=_potrf_grad, aliases=("linalg_potrf",),
               doc="Cholesky factor of symmetric positive definite matrices (read from one triangle)."))


def _potri_np(a, lower):
    t = _tri(a, lower)
    p = np.matmul(t, _T(t)) if lower else np.matmul(_T(t), t)
    return np.linalg.inv(p).astype(a.dtype, copy=False)


def _potri_grad(F, ins, outs, gs, attrs):
    # out = (L L^T)^-1 =: Y; d<g, Y> = -<Y g Y, dL L^T + L dL^T>  =>  dL = -(W + W^T) L, W = Y g Y
    a, y, g = ins[0], outs[0], gs[0]
    w = F._linalg_gemm2(F._linalg_gemm2(y, g), y)
    ws = w + _swap(F, w)
    if attrs["lower"]:
        da = F._linalg_gemm2(ws, _tri_mask(F, a, True)) * -1.0
    else:
        da = F._linalg_gemm2(_tri_mask(F, a, False), ws) * -1.0
    return [_tri_mask(F, da, attrs["lower"])]


register(OpDef("_linalg_potri", infer=_square_infer("_linalg_potri"), compute=_potri_np, inputs=("A",),
               attrs={"lower": Attr("bool", True)}, gradient=_potri_grad, aliases=("linalg_potri",),
               doc="Inverse of L L^T (or U^T U) from its Cholesky factor."))


# -- syrk, sumlogdiag, diagonals ----------------------------------------------------------------

def _syrk_infer(a, transpose, alpha):
    if a.ndim < 2:
        raise ShapeError(f"_linalg_syrk: A must have at least two dimensions, got {a.shape}")
    n = a.shape[-1] if transpose else a.shape[-2]
    return like(a, a.shape[:-2] + (n, n))


def _syrk_np(a, transpose, alpha):
    return (alpha * (np.matmul(_T(a), a) if transpose else np.matmul(a, _T(a)))).astype(a.dtype, copy=False)


def _syrk_grad(F, ins, outs, gs, attrs):
    g = gs[0] + _swap(F, gs[0])
    if attrs["transpose"]:
        return [F._linalg_gemm2(ins[0], g, alpha=attrs["alpha"])]
    return [F._linalg_gemm2(g, ins[0], alpha=attrs["alpha"])]


register(OpDef("_linalg_syrk", infer=_syrk_infer, compute=_syrk_np, inputs=("A",),
               attrs={"transpose": Attr("bool", False), "alpha": Attr("float", 1.0)}, gradient=_syrk_grad,
               aliases=("linalg_syrk",), doc="alpha * A A^T (or alpha * A^T A with transpose)."))


def _sumlogdiag_infer(a):
    _square("_linalg_sumlogdiag", a)
    return like(a, _batch_shape(a.shape))


def _sumlogdiag_grad(F, ins, outs, gs, attrs):
    d = F._linalg_extractdiag(ins[0])
    g = F.Reshape(gs[0], shape=ins[0].shape[:-2] + (1,))
    return [F._linalg_makediag(F.broadcast_div(g, d))]


def _sumlogdiag_np(a):
    return np.log(np.diagonal(a, axis1=-2, axis2=-1)).sum(-1).reshape(_batch_shape(a.shape)).astype(a.dtype)


register(OpDef("_linalg_sumlogdiag", infer=_sumlogdiag_infer, inputs=("A",), compute=_sumlogdiag_np,
               gradient=_sumlogdiag_grad, aliases=("linalg_sumlogdiag",),
               doc="Sum of the logarithms of the diagonal (log det of a Cholesky factor)."))


def _extractdiag_infer(a, offset):
    _square("_linalg_extractdiag", a)
    n = a.shape[-1]
    if abs(offset) >= n:
        raise ShapeError(f"_linalg_extractdiag: offset {offset} is outside a {n}x{n} matrix")
    return like(a, a.shape[:-2] + (n - abs(offset),))


def _makediag_infer(a, offset):
    if a.ndim < 1:
        raise ShapeError(f"_linalg_makediag: A must have at least one dimension, got {a.shape}")
    n = a.shape[-1] + abs(offset)
    return like(a, a.shape[:-1] + (n, n))


def _makediag_np(a, offset):
    k = a.shape[-1]
    n = k + abs(offset)
    out = np.zeros(a.shape[:-1] + (n, n), a.dtype)
    rows = np.arange(k) + max(-offset, 0)
    out[..., rows, rows + offset] = a
    return out


_OFFSET = {"offset": Attr("int", 0)}
register(OpDef("_linalg_extractdiag", infer=_extractdiag_infer, inputs=("A",), attrs=_OFFSET,
               compute=lambda a, offset: np.diagonal(a, offset, axis1=-2, axis2=-1).copy(),
               gradient=lambda F, ins, outs, gs, attrs: [F._linalg_makediag(gs[0], offset=attrs["offset"])],
               aliases=("linalg_extractdiag",), doc="The diagonal (offset above, negative below) of each matrix."))
register(OpDef("_linalg_makediag", infer=_makediag_infer, inputs=("A",), attrs=_OFFSET, compute=_makediag_np,
               gradient=lambda F, ins, outs, gs, attrs: [F._linalg_extractdiag(gs[0], offset=attrs["offset"])],
               aliases=("linalg_makediag",), doc="Square matrices with the last axis on a diagonal."))


# -- inverse, det, slogdet --------------------------------------------------------------------------

def _inverse_grad(F, ins, outs, gs, attrs):
    y = outs[0]
    return [F._linalg_gemm2(F._linalg_gemm2(y, gs[0], transpose_a=True), y, transpose_b=True, alpha=-1.0)]


def _det_infer(a):
    _square("_linalg_det", a)
    return like(a, _batch_shape(a.shape))


def _det_grad(F, ins, outs, gs, attrs):
    scale = F.Reshape(gs[0] * outs[0], shape=ins[0].shape[:-2] + (1, 1))
    return [F.broadcast_mul(scale, _swap(F, F._linalg_inverse(ins[0])))]


def _slogdet_infer(a):
    _square("_linalg_slogdet", a)
    t = like(a, _batch_shape(a.shape))
    return [t, t]


def _slogdet_np(a):
    sign, logdet = np.linalg.slogdet(a)
    shape = _batch_shape(a.shape)
    return sign.reshape(shape).astype(a.dtype), logdet.reshape(shape).astype(a.dtype)


def _slogdet_grad(F, ins, outs, gs, attrs):
    if gs[1] is None:
        return [None]
    scale = F.Reshape(gs[1], shape=ins[0].shape[:-2] + (1, 1))
    return [F.broadcast_mul(scale, _swap(F, F._linalg_inverse(ins[0])))]


register(OpDef("_linalg_inverse", infer=_square_infer("_linalg_inverse"), inputs=("A",),
               compute=lambda a: np.linalg.inv(a).astype(a.dtype, copy=False), gradient=_inverse_grad,
               aliases=("linalg_inverse",), doc="Inverse of each square matrix."))
register(OpDef("_linalg_det", infer=_det_infer, inputs=("A",),
               compute=lambda a: np.linalg.det(a).reshape(_batch_shape(a.shape)).astype(a.dtype), gradient=_det_grad,
               aliases=("linalg_det",), doc="Determinant of each square matrix."))
register(OpDef("_linalg_slogdet", infer=_slogdet_infer, inputs=("A",), compute=_slogdet_np, num_outputs=2,
               gradient=_slogdet_grad, aliases=("linalg_slogdet",),
               doc="Sign and log of the absolute determinant of each square matrix."))


# -- triangles packed into vectors: extracttrian, maketrian -------------------------------------------

def _trian_positions(n, offset, lower):
    """(rows, cols) of the packed triangle in MXNet's order: the lower one row by row, the upper
    one (offset > 0, or offset 0 with lower=False) column by column."""
    rows, cols = np.tril_indices(n, -abs(offset))
    upper = offset > 0 or (offset == 0 and not lower)
    return (cols, rows) if upper else (rows, cols)


def _extracttrian_infer(a, offset, lower):
    _square("_linalg_extracttrian", a)
    n = a.shape[-1]
    if abs(offset) >= n:
        raise ShapeError(f"_linalg_extracttrian: offset {offset} is outside a {n}x{n} matrix")
    k = n - abs(offset)
    return like(a, a.shape[:-2] + (k * (k + 1) // 2,))


def _extracttrian_np(a, offset, lower):
    rows, cols = _trian_positions(a.shape[-1], offset, lower)
    return a[..., rows, cols].copy()


def _maketrian_size(length, offset):
    k = int(round((np.sqrt(8 * length + 1) - 1) / 2))
    if k * (k + 1) // 2 != length:
        raise ShapeError(f"_linalg_maketrian: {length} elements do not fill a triangle (k (k + 1) / 2 for "
                         f"some k)")
    return k + abs(offset)


def _maketrian_infer(a, offset, lower):
    if a.ndim < 1:
        raise ShapeError(f"_linalg_maketrian: A must have at least one dimension, got {a.shape}")
    n = _maketrian_size(a.shape[-1], offset)
    return like(a, a.shape[:-1] + (n, n))


def _maketrian_np(a, offset, lower):
    n = _maketrian_size(a.shape[-1], offset)
    out = np.zeros(a.shape[:-1] + (n, n), a.dtype)
    rows, cols = _trian_positions(n, offset, lower)
    out[..., rows, cols] = a
    return out


_TRIAN_ATTRS = {"offset": Attr("int", 0), "lower": Attr("bool", True)}
register(OpDef("_linalg_extracttrian", infer=_extracttrian_infer, inputs=("A",), attrs=_TRIAN_ATTRS,
               compute=_extracttrian_np, aliases=("linalg_extracttrian",),
               gradient=lambda F, ins, outs, gs, attrs: [F._linalg_maketrian(gs[0], **attrs)],
               doc="A triangle of each matrix packed into a vector (MXNet's order)."))
register(OpDef("_linalg_maketrian", infer=_maketrian_infer, inputs=("A",), attrs=_TRIAN_ATTRS,
               compute=_maketrian_np, aliases=("linalg_maketrian",),
               gradient=lambda F, ins, outs, gs, attrs: [F._linalg_extracttrian(gs[0], **attrs)],
               doc="Triangular matrices from packed vectors (the inverse of extracttrian)."))


# -- factorizations: gelqf (A = L Q), syevd (A = U^T diag(lam) U) -------------------------------------
# Their gradients are host steps of their own (_backward_linalg_*), as in MXNet: the formulas need
# solves and masks no simpler operator spells.

def _gelqf_infer(a):
    if a.ndim < 2 or a.shape[-2] > a.shape[-1]:
        raise ShapeError(f"_linalg_gelqf: A must be (..., m, n) with m <= n, got {a.shape}")
    m = a.shape[-2]
    return [a, like(a, a.shape[:-2] + (m, m))]


def _gelqf_np(a):
    # A^T = Q' R' (Householder, LAPACK's signs) is A = R'^T Q'^T
    q, r = np.linalg.qr(_T(a).astype(np.float64))
    if np.any(np.abs(np.diagonal(r, axis1=-2, axis2=-1)) == 0):
        raise GraphcError("_linalg_gelqf: A does not have full row rank")
    return _T(q).astype(a.dtype), _T(r).astype(a.dtype)


def _zeros_if_none(F, g, like_value):
    return F.zeros_like(like_value) if g is None else g


def _gelqf_grad(F, ins, outs, gs, attrs):
    q, l = outs
    return [F._backward_linalg_gelqf(_zeros_if_none(F, gs[0], q), _zeros_if_none(F, gs[1], l), q, l)]


def _backward_gelqf_np(dq, dl, q, l):
    # dA = L^-T (dQ + copyltu(M) Q), M = L^T dL - dQ Q^T, copyltu mirrors the lower triangle up
    # (from dA Q^T = dL + L dQ Q^T: L^-1 dL is lower triangular, dQ Q^T skew)
    m = np.matmul(_T(l), dl) - np.matmul(dq, _T(q))
    sym = np.tril(m) + _T(np.tril(m, -1))
    return np.linalg.solve(_T(l), dq + np.matmul(sym, q)).astype(q.dtype, copy=False)


register(OpDef("_linalg_gelqf", infer=_gelqf_infer, inputs=("A",), compute=_gelqf_np, num_outputs=2,
               gradient=_gelqf_grad, aliases=("linalg_gelqf",),
               doc="LQ factorization A = L Q: Q with orthonormal rows, L lower triangular."))
register(OpDef("_backward_linalg_gelqf", inputs=("dQ", "dL", "Q", "L"), infer=lambda dq, dl, q, l: dq,
               compute=_backward_gelqf_np, doc="gelqf's gradient into A from those of Q and L."))


def _syevd_infer(a):
    _square("_linalg_syevd", a)
    return [a, like(a, a.shape[:-1])]


def _syevd_np(a):
    lam, v = np.linalg.eigh(a.astype(np.float64), UPLO="L")
    u = _T(v)
    # MXNet makes each eigenvector unique: its entry of largest magnitude is positive
    big = np.take_along_axis(u, np.argmax(np.abs(u), axis=-1)[..., None], axis=-1)
    u = u * np.where(big < 0, -1.0, 1.0)
    return u.astype(a.dtype), lam.astype(a.dtype)


def _syevd_grad(F, ins, outs, gs, attrs):
    u, lam = outs
    return [F._backward_linalg_syevd(_zeros_if_none(F, gs[0], u), _zeros_if_none(F, gs[1], lam), u, lam)]


def _backward_syevd_np(du, dlam, u, lam):
    # A = V diag(lam) V^T with V = U^T: dA = sym(U^T (diag(dlam) + F o (U dU^T)) U),
    # F_ij = 1 / (lam_j - lam_i) off the diagonal (distinct eigenvalues assumed, as MXNet)
    gap = lam[..., None, :] - lam[..., :, None]
    n = lam.shape[-1]
    off = ~np.eye(n, dtype=bool)
    f = np.where(off, 1.0 / np.where(off, gap, 1.0), 0.0)
    inner = f * np.matmul(u, _T(du)) + np.eye(n) * dlam[..., None, :]
    x = np.matmul(np.matmul(_T(u), inner), u)
    return (0.5 * (x + _T(x))).astype(u.dtype, copy=False)


register(OpDef("_linalg_syevd", infer=_syevd_infer, inputs=("A",), compute=_syevd_np, num_outputs=2,
               gradient=_syevd_grad, aliases=("linalg_syevd",),
               doc="Eigendecomposition of symmetric matrices: A = U^T diag(lam) U, lam ascending."))
register(OpDef("_backward_linalg_syevd", inputs=("dU", "dlam", "U", "lam"), infer=lambda du, dlam, u, lam: u,
               compute=_backward_syevd_np, doc="syevd's gradient into A from those of U and lam."))
