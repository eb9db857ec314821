"""Operator cases for MXNet 1.x compatibility round 2 (coordinate indexing, reverse, linalg,
array-parameter samplers), appended to op_cases.CASES by the import at the end of op_cases.py.
Expectations are plain numpy written here, independent of the declarations."""
from __future__ import annotations

import math

import numpy as np

from op_cases import FD_EXEMPT, U, case, _stats

_rng = np.random.default_rng(4321)


def _coords(*rows):
    return np.array(rows, dtype=np.float64)


# -- gather_nd / scatter_nd / _backward_gather_nd / batch_take / reverse --------------------------
_GI = _coords([2, 0, -1, 2], [1, 3, 0, 1])          # points (2,1) (0,3) (2,0) (2,1): one repeated
case("gather_nd", [U(3, 4), _GI], {}, lambda d, i: np.array([d[2, 1], d[0, 3], d[2, 0], d[2, 1]]), wrt=(0,))
case("gather_nd", [U(3, 2, 2), _coords([[2, 0], [1, 2]])], {},
     lambda d, i: np.stack([np.stack([d[2], d[0]]), np.stack([d[1], d[2]])]), wrt=(0,))
case("gather_nd", [U(3, 2), _coords([1], [0])], {}, lambda d, i: d[1:2, 0], wrt=(0,))


def _scatter_last(data, idx, shape):
    out = np.zeros(shape)
    for k in range(idx.shape[1]):
        out[tuple(int(v) for v in idx[:, k])] = data[k]
    return out


case("scatter_nd", [U(3), _coords([0, 2, 1], [1, 3, 0])], {"shape": (3, 4)},
     lambda d, i: _scatter_last(d, i, (3, 4)), wrt=(0,))
case("scatter_nd", [U(2, 2), _coords([2, 0])], {"shape": (3, 2)},
     lambda d, i: np.stack([d[1], np.zeros(2), d[0]]), wrt=(0,))
case("scatter_nd", [np.array([1.0, 2.0, 3.0]), _coords([0, 2, 0], [1, 3, 1])], {"shape": (3, 4)},
     lambda d, i: np.array([[0, 3.0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2.0]]), fd=False)


def _scatter_sum(data, idx, shape):
    out = np.zeros(shape)
    for k in range(idx.shape[1]):
        out[tuple(int(v) for v in idx[:, k])] += data[k]
    return out


case("scatter_nd", [U(1), _coords([1], [0])], {"shape": (3, 2)},
     lambda d, i: np.array([[0, 0], [d[0], 0], [0, 0]]), wrt=(0,))
case("_backward_gather_nd", [U(4), _GI], {"shape": (3, 4)},
     lambda d, i: _scatter_sum(d, i % np.array([[3], [4]]), (3, 4)), wrt=(0,))
case("batch_take", [U(3, 4), np.array([0.0, 5.0, -1.0])], {}, lambda a, i: np.array([a[0, 0], a[1, 3], a[2, 0]]),
     wrt=(0,))
case("batch_take", [U(2, 2, 3), np.array([[2.0, 1.0], [0.0, 2.0]])], {},
     lambda a, i: np.array([[a[0, 0, 2], a[0, 1, 1]], [a[1, 0, 0], a[1, 1, 2]]]), wrt=(0,))
case("reverse", [U(2, 3, 4)], {"axis": (0, 2)}, lambda x: x[::-1, :, ::-1])
case("reverse", [U(2, 3)], {"axis": -1}, lambda x: x[:, ::-1])


# -- linalg ------------------------------------------------------------------------------------------
def _mm(a, b):
    return np.einsum("...ij,...jk->...ik", a, b)


def _tr(x):
    return np.swapaxes(x, -1, -2)


def _spd(*batch, n=3):
    m = _rng.uniform(-1, 1, batch + (n, n))
    return _mm(m, _tr(m)) + n * np.eye(n)


def _lower(*batch, n=3):
    """Well-conditioned matrices whose upper triangle holds junk (the ops must ignore it)."""
    return _rng.uniform(-1, 1, batch + (n, n)) + 3 * np.eye(n)


case("_linalg_gemm", [U(2, 3), U(3, 4), U(2, 4)], {"alpha": 2.0, "beta": 0.5},
     lambda a, b, c: 2 * a @ b + 0.5 * c)
case("_linalg_gemm", [U(2, 3, 2), U(2, 4, 3), U(2, 2, 4)], {"transpose_a": True, "transpose_b": True},
     lambda a, b, c: _mm(_tr(a), _tr(b)) + c)
case("_linalg_gemm", [U(2, 3, 2), U(2, 3, 2), U(2, 3, 2)], {"axis": 0, "transpose_a": True, "alpha": 1.5, "beta": 2.0},
     lambda a, b, c: np.moveaxis(1.5 * _mm(_tr(np.moveaxis(a, 0, 1)), np.moveaxis(b, 0, 1)), 1, 0) + 2 * c)
case("_linalg_gemm2", [U(2, 3), U(4, 3)], {"transpose_b": True, "alpha": 3.0}, lambda a, b: 3 * a @ b.T)
case("_linalg_gemm2", [U(2, 3, 2), U(2, 3, 4)], {"transpose_a": True}, lambda a, b: _mm(_tr(a), b))
case("_linalg_potrf", [_spd(2)], {}, lambda a: np.linalg.cholesky(a), fd=False)
case("_linalg_potrf", [_spd()], {"lower": False}, lambda a: np.linalg.cholesky(a).T, fd=False)
case("_linalg_potri", [_lower()], {}, lambda a: np.linalg.inv(np.tril(a) @ np.tril(a).T))
case("_linalg_potri", [_lower(2)], {"lower": False}, lambda a: np.linalg.inv(_mm(_tr(np.triu(a)), np.triu(a))))
case("_linalg_trmm", [_lower(), U(3, 2)], {"alpha": 2.0}, lambda a, b: 2 * np.tril(a) @ b)
case("_linalg_trmm", [_lower(2), U(2, 4, 3)], {"rightside": True, "transpose": True},
     lambda a, b: _mm(b, _tr(np.tril(a))))
case("_linalg_trmm", [_lower(), U(3, 2)], {"lower": False, "transpose": True}, lambda a, b: np.triu(a).T @ b)
case("_linalg_trmm", [_lower(), U(2, 3)], {"rightside": True, "lower": False}, lambda a, b: b @ np.triu(a))
case("_linalg_trsm", [_lower(), U(3, 2)], {"alpha": 2.0}, lambda a, b: np.linalg.solve(np.tril(a), 2 * b))
case("_linalg_trsm", [_lower(), U(3, 2)], {"transpose": True}, lambda a, b: np.linalg.solve(np.tril(a).T, b))
case("_linalg_trsm", [_lower(2), U(2, 4, 3)], {"rightside": True},
     lambda a, b: _tr(np.linalg.solve(_tr(np.tril(a)), _tr(b))))
case("_linalg_trsm", [_lower(), U(2, 3)], {"rightside": True, "transpose": True, "lower": False, "alpha": -1.0},
     lambda a, b: -np.linalg.solve(np.triu(a), b.T).T)
case("_linalg_syrk", [U(2, 3)], {"alpha": 2.0}, lambda a: 2 * a @ a.T)
case("_linalg_syrk", [U(2, 3, 2)], {"transpose": True}, lambda a: _mm(_tr(a), a))
case("_linalg_sumlogdiag", [_spd(2)], {}, lambda a: np.log(np.stack([np.diag(m) for m in a])).sum(-1))
case("_linalg_extractdiag", [U(2, 3, 3)], {"offset": 1}, lambda a: np.stack([[m[0, 1], m[1, 2]] for m in a]))
case("_linalg_extractdiag", [U(3, 3)], {}, lambda a: np.array([a[0, 0], a[1, 1], a[2, 2]]))
case("_linalg_makediag", [U(2, 2)], {"offset": -1},
     lambda a: np.stack([[[0, 0, 0], [v[0], 0, 0], [0, v[1], 0]] for v in a]))
case("_linalg_inverse", [_spd(2)], {}, lambda a: np.stack([np.linalg.inv(m) for m in a]))
case("_linalg_det", [_lower(2)], {}, lambda a: np.array([np.linalg.det(m) for m in a]))
case("_linalg_slogdet", [np.array([[1.0, 2.0], [3.0, 4.0]]) + U(2, 2, lo=-0.1, hi=0.1)], {},
     lambda a: (np.sign(np.linalg.det(a)).reshape(1), np.log(abs(np.linalg.det(a))).reshape(1)))
case("_linalg_slogdet", [_lower(2)], {}, lambda a: (np.sign(np.linalg.det(a)), np.log(abs(np.linalg.det(a)))))
case("_linalg_det", [_lower()], {}, lambda a: np.array([np.linalg.det(a)]))
case("_linalg_sumlogdiag", [_spd()], {}, lambda a: np.array([np.log(np.diag(a)).sum()]))

_T4 = np.arange(16.0).reshape(4, 4) + U(4, 4, lo=-0.1, hi=0.1)
case("_linalg_extracttrian", [_T4], {}, lambda a: np.array([a[i, j] for i in range(4) for j in range(i + 1)]))
case("_linalg_extracttrian", [_T4], {"lower": False},
     lambda a: np.array([a[i, j] for j in range(4) for i in range(j + 1)]))
case("_linalg_extracttrian", [U(2, 4, 4)], {"offset": 1},
     lambda a: np.stack([[m[i, j] for j in range(4) for i in range(j)] for m in a]))
case("_linalg_extracttrian", [_T4], {"offset": -2}, lambda a: np.array([a[2, 0], a[3, 0], a[3, 1]]))
case("_linalg_maketrian", [U(6)], {}, lambda v: np.array([[v[0], 0, 0], [v[1], v[2], 0], [v[3], v[4], v[5]]]))
case("_linalg_maketrian", [U(2, 6)], {"lower": False},
     lambda v: np.stack([[[r[0], r[1], r[3]], [0, r[2], r[4]], [0, 0, r[5]]] for r in v]))
case("_linalg_maketrian", [U(3)], {"offset": 2},
     lambda v: np.array([[0, 0, v[0], v[1]], [0, 0, 0, v[2]], [0, 0, 0, 0], [0, 0, 0, 0]]))


def _check_lq(outs, ins):
    q, l, a = outs[0], outs[1], ins[0]
    np.testing.assert_allclose(np.triu(l, 1) if l.ndim == 2 else np.triu(l[0], 1), 0, atol=1e-12)
    np.testing.assert_allclose(_mm(q, _tr(q)), np.broadcast_to(np.eye(q.shape[-2]), q.shape[:-1] + (q.shape[-2],)),
                               atol=1e-10)
    np.testing.assert_allclose(_mm(l, q), a, rtol=1e-10, atol=1e-12)


def _check_eig(outs, ins):
    u, lam, a = outs[0], outs[1], ins[0]
    np.testing.assert_allclose(_mm(u, _tr(u)), np.eye(u.shape[-1]) + 0 * u, atol=1e-10)
    np.testing.assert_allclose(_mm(_tr(u) * lam[..., None, :], u), a, rtol=1e-10, atol=1e-10)
    assert np.all(np.diff(lam, axis=-1) > 0)
    big = np.take_along_axis(u, np.argmax(np.abs(u), axis=-1)[..., None], axis=-1)
    assert np.all(big > 0), "each eigenvector's largest entry is positive"


case("_linalg_gelqf", [U(2, 4)], {}, check=_check_lq)
case("_linalg_gelqf", [U(2, 3, 3)], {}, check=_check_lq)
case("_linalg_syevd", [_spd()], {}, check=_check_eig)
case("_linalg_syevd", [_spd(2)], {}, check=_check_eig)


def _lq(a):
    q, r = np.linalg.qr(a.T)
    return q.T, r.T


def _eig(a):
    lam, v = np.linalg.eigh(a)
    u = v.T
    return u * np.sign(u[np.arange(len(u)), np.argmax(np.abs(u), axis=1)])[:, None], lam


def _sym_fd(f, a, h=1e-6):
    """d f / d A along symmetric perturbations, as the symmetric gradient MXNet returns."""
    g = np.zeros_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            e = np.zeros_like(a)
            e[i, j] = e[j, i] = h
            g[i, j] = (f(a + e) - f(a - e)) / (2 * h) / (1 if i == j else 2)
    return g


def _full_fd(f, a, h=1e-6):
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        e = np.zeros_like(a)
        e[idx] = h
        g[idx] = (f(a + e) - f(a - e)) / (2 * h)
    return g


_LQ_A = U(2, 3)
_EIG_A = _spd()
case("_backward_linalg_gelqf", [U(2, 3), U(2, 2), *_lq(_LQ_A)], {},
     lambda dq, dl, q, l: _full_fd(lambda a: (_lq(a)[0] * dq).sum() + (_lq(a)[1] * dl).sum(), l @ q),
     rtol=1e-6, f32=False, fd=False)
case("_backward_linalg_syevd", [U(3, 3), U(3), *_eig(_EIG_A)], {},
     lambda du, dlam, u, lam: _sym_fd(lambda a: (_eig(a)[0] * du).sum() + (_eig(a)[1] * dlam).sum(),
                                      u.T @ np.diag(lam) @ u),
     rtol=1e-6, f32=False, fd=False)
FD_EXEMPT["_linalg_syevd"] = ("like potrf its gradient is the symmetric one MXNet returns (eigh reads one "
                              "triangle); the rule is _backward_linalg_syevd, checked against symmetric differences")

FD_EXEMPT["_linalg_potrf"] = ("its gradient is MXNet's symmetric one (the derivative along symmetric "
                              "perturbations), which per-entry differences cannot see; tested against MXNet and "
                              "symmetric differences in test_mxnet_ops_round2.py")


# -- samplers with array parameters, and the negative binomials ---------------------------------------
def _per_row(stats):
    """One _stats check per row (each row is one distribution's draws)."""
    def check(outs, ins):
        y = outs[0]
        assert y.shape[0] == len(stats)
        for row, st in zip(y, stats):
            st([row], ins)
    return check


_N = (4000,)
_TWO = lambda a, b: np.array([a, b], dtype=np.float64)  # noqa: E731
case("_sample_uniform", [_TWO(-1, 2), _TWO(3, 2.5)], {"shape": _N},
     check=_per_row([_stats(1.0, 4 / math.sqrt(12), -1, 3), _stats(2.25, 0.5 / math.sqrt(12), 2, 2.5)]))
case("_sample_normal", [_TWO(1, -3), _TWO(2, 0.5)], {"shape": _N}, check=_per_row([_stats(1, 2), _stats(-3, 0.5)]))
case("_sample_gamma", [_TWO(9, 2), _TWO(0.5, 3)], {"shape": _N},
     check=_per_row([_stats(4.5, 1.5, 0), _stats(6, 3 * math.sqrt(2), 0)]))
case("_sample_exponential", [_TWO(4, 0.5)], {"shape": _N}, check=_per_row([_stats(0.25, 0.25, 0), _stats(2, 2, 0)]))
case("_sample_poisson", [_TWO(4, 0.5)], {"shape": _N},
     check=_per_row([_stats(4, 2, 0, integer=True), _stats(0.5, math.sqrt(0.5), 0, integer=True)]))
case("_sample_negative_binomial", [_TWO(3, 5), _TWO(0.4, 0.8)], {"shape": _N},
     check=_per_row([_stats(4.5, math.sqrt(3 * 0.6) / 0.4, 0, integer=True),
                     _stats(1.25, math.sqrt(5 * 0.2) / 0.8, 0, integer=True)]))
case("_sample_generalized_negative_binomial", [_TWO(2, 3), _TWO(0.5, 0.0)], {"shape": _N},
     check=_per_row([_stats(2, 2, 0, integer=True), _stats(3, math.sqrt(3), 0, integer=True)]))
case("_random_negative_binomial", [], {"shape": _N, "k": 3, "p": 0.4},
     check=_stats(4.5, math.sqrt(3 * 0.6) / 0.4, 0, integer=True))
case("_random_generalized_negative_binomial", [], {"shape": _N, "mu": 2.0, "alpha": 0.5},
     check=_stats(2.0, 2.0, 0, integer=True))

for _dist, _attrs, _stat in [
        ("uniform", {"low": -1.0, "high": 3.0}, _stats(1.0, 4 / math.sqrt(12), -1, 3)),
        ("normal", {"loc": 1.0, "scale": 2.0}, _stats(1.0, 2.0)),
        ("gamma", {"alpha": 9.0, "beta": 0.5}, _stats(4.5, 1.5, 0)),
        ("exponential", {"lam": 4.0}, _stats(0.25, 0.25, 0)),
        ("poisson", {"lam": 4.0}, _stats(4.0, 2.0, 0, integer=True)),
        ("negative_binomial", {"k": 3, "p": 0.4}, _stats(4.5, math.sqrt(3 * 0.6) / 0.4, 0, integer=True)),
        ("generalized_negative_binomial", {"mu": 2.0, "alpha": 0.5}, _stats(2.0, 2.0, 0, integer=True))]:
    case(f"_random_{_dist}_like", [np.zeros(_N)], _attrs, check=_stat)
