"""RowSparseNDArray and CSRNDArray (graphc/ndarray/sparse*.py) against numpy / scipy references
on random shapes and densities: conversions, creation, dot, slicing, reductions, element-wise
rules, and the dense fallback. MXNet's storage types are checked in tests/compat/test_sparse_mxnet.py."""
import pickle

import numpy as np
import pytest

import graphc as mx
from graphc.ops.errors import GraphcError, ShapeError

nd, sp = mx.nd, mx.nd.sparse
SHAPES = [(1, 1), (4, 7), (9, 3), (16, 33)]


def _random(shape, density, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    values = rng.uniform(-2, 2, shape).astype(dtype)
    return np.where(rng.random(shape) < density, values, 0).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_tostype_round_trips_and_stores_only_nonzeros(shape, density):
    dense = _random(shape, density, hash((shape, density)) % 1000)
    csr = nd.array(dense).tostype("csr")
    rsp = nd.array(dense).tostype("row_sparse")
    assert csr.stype == "csr" and rsp.stype == "row_sparse"
    np.testing.assert_array_equal(csr.asnumpy(), dense)
    np.testing.assert_array_equal(rsp.asnumpy(), dense)
    np.testing.assert_array_equal(csr.tostype("default").asnumpy(), dense)
    assert csr.data.shape == (np.count_nonzero(dense),)
    np.testing.assert_array_equal(rsp.indices.asnumpy(), np.flatnonzero(dense.any(axis=1)))
    np.testing.assert_array_equal(np.diff(csr.indptr.asnumpy()), np.count_nonzero(dense, axis=1))
    assert csr.indices.dtype == np.int64 and rsp.indices.dtype == np.int64


def test_row_sparse_keeps_trailing_dimensions():
    dense = _random((6, 2, 3), 0.4, 1)
    dense[3] = 0
    rsp = nd.array(dense).tostype("row_sparse")
    assert rsp.data.shape[1:] == (2, 3) and 3 not in rsp.indices.asnumpy().tolist()
    np.testing.assert_array_equal(rsp.asnumpy(), dense)
    with pytest.raises(ShapeError, match="csr storage is 2-D"):
        nd.array(dense).tostype("csr")


def test_creation_from_parts_coordinates_scipy_and_shapes():
    csr = sp.csr_matrix((np.array([1, 2, 3], np.float32), np.array([2, 0, 1]), np.array([0, 1, 1, 3])), shape=(3, 4))
    np.testing.assert_array_equal(csr.asnumpy(), [[0, 0, 1, 0], [0, 0, 0, 0], [2, 3, 0, 0]])
    coo = sp.csr_matrix((np.array([1., 5., 2.]), (np.array([0, 2, 0]), np.array([1, 0, 1]))), shape=(3, 2))
    np.testing.assert_array_equal(coo.asnumpy(), [[0, 3], [0, 0], [5, 0]])     # duplicates summed
    assert coo.dtype == np.float64
    rsp = sp.row_sparse_array((np.ones((2, 3)), np.array([4, 1])), shape=(6, 3))
    np.testing.assert_array_equal(rsp.indices.asnumpy(), [1, 4])              # sorted, rows follow
    assert sp.zeros("csr", (2, 5)).asnumpy().sum() == 0 and sp.zeros("row_sparse", (3, 2)).data.shape == (0, 2)
    assert sp.row_sparse_array((4, 2)).shape == (4, 2)
    assert nd.zeros((2, 3), stype="csr").stype == "csr" and nd.zeros((2, 3), stype="default").stype == "default"
    scipy_sparse = pytest.importorskip("scipy.sparse")
    m = scipy_sparse.random(7, 5, density=0.3, format="csr", random_state=3, dtype=np.float32)
    from_scipy = sp.csr_matrix(m)
    np.testing.assert_array_equal(from_scipy.asnumpy(), m.toarray())
    np.testing.assert_array_equal(from_scipy.asscipy().toarray(), m.toarray())
    np.testing.assert_array_equal(sp.array(m).asnumpy(), m.toarray())


@pytest.mark.parametrize("bad, message", [
    (lambda: sp.csr_matrix((np.ones(2), np.array([0, 1]), np.array([0, 3, 2])), shape=(2, 2)), "indptr"),
    (lambda: sp.csr_matrix((np.ones(2), np.array([0, 5]), np.array([0, 1, 2])), shape=(2, 3)), r"\[0, 3\)"),
    (lambda: sp.row_sparse_array((np.ones((2, 2)), np.array([1, 1])), shape=(3, 2)), "unique"),
    (lambda: sp.row_sparse_array((np.ones((2, 2)), np.array([0, 3])), shape=(3, 2)), r"\[0, 3\)"),
    (lambda: sp.row_sparse_array((np.ones((2, 3)), np.array([0, 1])), shape=(3, 2)), "rows of"),
    (lambda: nd.array(np.eye(2)).tostype("row_sparse").tostype("csr"), "cast_storage"),
    (lambda: nd.ones((2, 2)).tostype("dense"), "storage type"),
])
def test_malformed_parts_are_refused_with_the_reason(bad, message):
    # parts of the right lengths but wrong values are accepted at creation, as MXNet's, and
    # refused by check_format() (and by anything that computes with them)
    with pytest.raises((GraphcError, ShapeError), match=message):
        bad().check_format()


@pytest.mark.parametrize("shape", [(4, 7), (9, 3), (16, 33)])
@pytest.mark.parametrize("density", [0.0, 0.2, 0.9])
def test_dot_matches_numpy(shape, density):
    seed = shape[0] * 10 + int(density * 10)
    a = _random(shape, density, seed)
    a[1] = 0                                             # an empty row
    csr = nd.array(a).tostype("csr")
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((shape[1], 5)).astype(np.float32)
    bt = rng.standard_normal((shape[0], 5)).astype(np.float32)
    left = rng.standard_normal((3, shape[0])).astype(np.float32)
    out = sp.dot(csr, nd.array(b))
    assert out.stype == "default"
    np.testing.assert_allclose(out.asnumpy(), a @ b, rtol=1e-5, atol=1e-5)
    out_t = sp.dot(csr, nd.array(bt), transpose_a=True)
    assert out_t.stype == "row_sparse"
    np.testing.assert_allclose(out_t.asnumpy(), a.T @ bt, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out_t.indices.asnumpy(), np.flatnonzero(a.any(axis=0)))
    out_l = sp.dot(nd.array(left), csr)
    assert out_l.stype == "csr"
    np.testing.assert_allclose(out_l.asnumpy(), left @ a, rtol=1e-5, atol=1e-5)
    vec = rng.standard_normal(shape[1]).astype(np.float32)
    np.testing.assert_allclose(sp.dot(csr, nd.array(vec)).asnumpy(), a @ vec, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sp.dot(csr, nd.array(b.T), transpose_b=True).asnumpy(), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nd.dot(csr, nd.array(b)).asnumpy(), a @ b, rtol=1e-5, atol=1e-5)   # dense fallback
    with pytest.raises(ShapeError, match="rhs needs"):
        sp.dot(csr, nd.ones((shape[1] + 1, 2)))


@pytest.mark.parametrize("rows, cols", [((0, 4), (0, 7)), ((1, 3), (2, 5)), ((2, 2), (0, 7)), ((-3, 6), (6, 7))])
def test_csr_slices_match_numpy(rows, cols):
    a = _random((6, 7), 0.4, 11)
    a[2] = 0
    csr = nd.array(a).tostype("csr")
    got = sp.slice(csr, begin=(rows[0], cols[0]), end=(rows[1], cols[1]))
    assert got.stype == "csr"
    np.testing.assert_array_equal(got.asnumpy(), a[rows[0]:rows[1], cols[0]:cols[1]])
    np.testing.assert_array_equal(csr[rows[0]:rows[1]].asnumpy(), a[rows[0]:rows[1]])
    np.testing.assert_array_equal(csr[-1].asnumpy(), a[-1:])
    with pytest.raises(IndexError):
        csr[6]


@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_and_mean_of_csr_match_numpy(axis, keepdims):
    a = _random((7, 5), 0.3, 5)
    a[3] = 0
    csr = nd.array(a).tostype("csr")
    want = a.sum(axis=axis, keepdims=keepdims)
    want = want.reshape(1, 1) if axis is None and keepdims else np.atleast_1d(want)
    np.testing.assert_allclose(sp.sum(csr, axis=axis, keepdims=keepdims).asnumpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(csr.mean(axis=axis, keepdims=keepdims).asnumpy(),
                               np.atleast_1d(a.mean(axis=axis, keepdims=keepdims)).reshape(want.shape), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(nd.sum(csr, axis=axis, keepdims=keepdims).asnumpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_elementwise_rules_match_numpy(seed):
    a, b = _random((8, 3), 0.4, seed), _random((8, 3), 0.4, seed + 100)
    d = np.random.default_rng(seed).standard_normal((8, 3)).astype(np.float32)
    ra, rb, ca, cb = (nd.array(x).tostype(s) for x, s in ((a, "row_sparse"), (b, "row_sparse"), (a, "csr"), (b, "csr")))
    for got, want, stype in [(ra + rb, a + b, "row_sparse"), (ra - rb, a - b, "row_sparse"), (ra * rb, a * b, "row_sparse"),
                             (ca + cb, a + b, "csr"), (ca - cb, a - b, "csr"), (ca * cb, a * b, "csr"),
                             (ra * nd.array(d), a * d, "row_sparse"), (ca * nd.array(d), a * d, "csr"),
                             (ra + nd.array(d), a + d, "default"), (nd.array(d) - ca, d - a, "default"),
                             (ca * 3, a * 3, "csr"), (ra / 2, a / 2, "row_sparse"), (sp.divide(ca, 4), a / 4, "csr"), (ra + 1, a + 1, "default"),
                             (sp.elemwise_mul(nd.array(d), ra), a * d, "row_sparse"), (sp.sqrt(abs(ca)), np.sqrt(abs(a)), "csr"),
                             (sp.negative(ra), -a, "row_sparse"), (sp.clip(ra, -1, 1), np.clip(a, -1, 1), "row_sparse"),
                             (sp.clip(ra, 0.5, 1), np.clip(a, 0.5, 1), "default"), (nd.exp(ra), np.exp(a), "default")]:
        assert got.stype == stype
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6, atol=1e-6)


def test_retain_keeps_exactly_the_rows_asked_for():
    a = _random((6, 2), 0.5, 2)
    a[[0, 4]] = 0
    a[[1, 3]] = 1
    rsp = nd.array(a).tostype("row_sparse")
    kept = sp.retain(rsp, nd.array([3, 0, 3]))
    np.testing.assert_array_equal(kept.indices.asnumpy(), [0, 3])
    want = np.zeros_like(a)
    want[3] = a[3]
    np.testing.assert_array_equal(kept.asnumpy(), want)
    with pytest.raises(GraphcError, match="row_sparse"):
        sp.retain(nd.array(a).tostype("csr"), nd.array([0]))


def test_copies_devices_dtypes_and_pickling_keep_the_storage():
    a = _random((5, 4), 0.4, 9)
    for x in (nd.array(a).tostype("csr"), nd.array(a).tostype("row_sparse")):
        y = x.copy()
        assert y.stype == x.stype and y is not x
        np.testing.assert_array_equal(x.as_in_context(mx.cpu(1)).asnumpy(), a)
        assert x.as_in_context(mx.cpu(1)).context == mx.cpu(1)
        assert x.astype("float64").dtype == np.float64 and x.astype("float64").stype == x.stype
        back = pickle.loads(pickle.dumps(x))
        assert back.stype == x.stype
        np.testing.assert_array_equal(back.asnumpy(), a)
        dense = nd.zeros((5, 4))
        x.copyto(dense)
        np.testing.assert_array_equal(dense.asnumpy(), a)
        target = sp.zeros(x.stype, (5, 4))
        x.copyto(target)
        np.testing.assert_array_equal(target.asnumpy(), a)
        assert repr(x).strip().startswith("<RowSparseNDArray 5x4" if x.stype == "row_sparse" else "<CSRNDArray 5x4")


def test_writes_through_the_dense_view_are_refused_not_lost():
    rsp = nd.array(np.diag([1, 0, 1]).astype(np.float32)).tostype("row_sparse")    # row 1 not stored
    with pytest.raises(ValueError, match="read-only"):
        rsp._data[0, 0] = 5
    whole = nd.array(np.eye(3, dtype=np.float32)).tostype("row_sparse")     # every row stored: kept
    whole._data[0, 1] = 5
    assert whole.asnumpy()[0, 1] == 5
    rsp[:] = 0
    assert rsp.data.shape == (0, 3) and rsp.asnumpy().sum() == 0
    rsp[:] = nd.array(np.diag([0, 2, 0]).astype(np.float32))
    np.testing.assert_array_equal(rsp.indices.asnumpy(), [1])
    with pytest.raises(GraphcError, match=r"x\[:\] = value"):
        rsp[1] = 3
