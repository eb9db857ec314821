"""Sparse arrays written in place, gradients in sparse storage, sym.sparse graphs and
nd.load_frombuffer, each checked against numpy (MXNet's answers for the same features are in
test_sparse_namespace_mxnet.py)."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd
from graphc.ops.errors import GraphcError
from graphc.symbol_sparse import MXNET_NAMES


def _sparse_dense(rng, shape, density=0.5):
    return (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(np.float32)


@pytest.mark.parametrize("stype", ["row_sparse", "csr"])
@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_in_place_arithmetic_keeps_the_array_and_its_storage(stype, op):
    rng = np.random.default_rng(1)
    a, b = _sparse_dense(rng, (5, 4)), _sparse_dense(rng, (5, 4)) + (op == "/=") * 3
    x = nd.array(a).tostype(stype)
    same = x
    other = nd.array(b).tostype(stype) if op != "/=" else 2.0
    want = {"+=": a + b, "-=": a - b, "*=": a * b, "/=": a / 2.0}[op]
    if op == "+=":
        x += other
    elif op == "-=":
        x -= other
    elif op == "*=":
        x *= other
    else:
        x /= other
    assert x is same and x.stype == stype
    np.testing.assert_allclose(x.asnumpy(), want, rtol=1e-6)


def test_in_place_on_a_recorded_sparse_array_is_refused():
    x = nd.array(np.eye(3, dtype=np.float32)).tostype("row_sparse")
    x.attach_grad()
    with autograd.record(), pytest.raises(GraphcError, match="in-place add on a row_sparse array"):
        x += x


@pytest.mark.parametrize("stype", ["row_sparse", "csr"])
def test_copyto_between_storage_types(stype):
    rng = np.random.default_rng(2)
    a, b = _sparse_dense(rng, (6, 3)), _sparse_dense(rng, (6, 3))
    target = nd.array(b).tostype(stype)
    assert nd.array(a).copyto(target) is target
    assert target.stype == stype
    np.testing.assert_array_equal(target.asnumpy(), a)
    dense = nd.zeros((6, 3))
    nd.array(b).tostype(stype).copyto(dense)
    np.testing.assert_array_equal(dense.asnumpy(), b)
    with pytest.raises(GraphcError, match=r"target shape \(2, 3\) differs from source \(6, 3\)"):
        nd.array(a).copyto(nd.zeros((2, 3)).tostype(stype))


def test_a_row_sparse_array_storing_every_row_is_written_through_its_dense_view():
    x = nd.array(np.arange(6, dtype=np.float32).reshape(3, 2)).tostype("row_sparse")
    x._data[1] = 7
    np.testing.assert_array_equal(x.asnumpy()[1], [7, 7])
    partial = nd.array(np.diag([1, 0, 2]).astype(np.float32)).tostype("row_sparse")
    with pytest.raises(ValueError, match="read-only"):
        partial._data[0, 0] = 5


def test_aux_accessors_and_check_format():
    c = nd.array(np.array([[0, 1], [2, 0]], np.float32)).tostype("csr")
    r = c.tostype("default").tostype("row_sparse")
    assert (c._num_aux, r._num_aux) == (2, 1)
    assert c._aux_types == [np.int64, np.int64] and r._aux_type(0) is np.int64
    np.testing.assert_array_equal(c._aux_data(0).asnumpy(), [0, 1, 2])
    c.check_format()
    r.check_format()
    r._aux = (np.array([1, 0], np.int64),)
    with pytest.raises(GraphcError, match="sorted and unique"):
        r.check_format()


@pytest.mark.parametrize("stype", ["row_sparse", "csr"])
def test_gradient_of_a_sparse_array_matches_finite_differences(stype):
    rng = np.random.default_rng(3)
    a = _sparse_dense(rng, (4, 3), 0.6).astype(np.float64)
    w = rng.standard_normal((3, 2))

    def f(values):
        return float(np.sum(np.tanh(values @ w) * values.sum(axis=1, keepdims=True)))

    x = nd.array(a, dtype="float64").tostype(stype)
    x.attach_grad()
    with autograd.record():
        y = (nd.tanh(nd.dot(x, nd.array(w, dtype="float64"))) * x.sum(axis=1, keepdims=True)).sum()
    y.backward()
    assert x.grad.stype == stype
    eps, numeric = 1e-6, np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (f(up) - f(down)) / (2 * eps)
    np.testing.assert_allclose(x.grad.asnumpy(), numeric, rtol=1e-5, atol=1e-7)


def test_attach_grad_storage_follows_the_array_unless_given():
    for stype in ("default", "row_sparse", "csr"):
        x = nd.zeros((2, 3), stype=stype)
        x.attach_grad()
        assert x.grad.stype == stype
        x.attach_grad(stype="row_sparse")
        assert x.grad.stype == "row_sparse" and x.detach().stype == stype
    with pytest.raises(ValueError, match="storage type must be one of"):
        nd.zeros((2, 2), stype="csr").attach_grad(stype="coo")


def test_dot_with_a_csr_lhs_gives_a_row_sparse_gradient_of_the_touched_rows():
    lhs_np = np.array([[0, 2, 0, 0, 1], [0, 0, 0, 0, 3]], np.float32)
    rhs = nd.array(np.ones((5, 2), np.float32)).tostype("row_sparse")
    rhs.attach_grad()
    with autograd.record():
        y = nd.dot(nd.array(lhs_np).tostype("csr"), rhs)
    y.backward()
    assert rhs.grad.stype == "row_sparse"
    np.testing.assert_array_equal(rhs.grad.indices.asnumpy(), [1, 4])
    np.testing.assert_allclose(rhs.grad.asnumpy(), lhs_np.T @ np.ones((2, 2), np.float32))


def test_lazy_sgd_momentum_touches_only_the_gradient_rows():
    rng = np.random.default_rng(4)
    w0, m0 = rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)
    g = np.zeros((6, 3), np.float32)
    g[[1, 4]] = rng.standard_normal((2, 3))
    w, m = nd.array(w0), nd.array(m0)
    nd.sparse.sgd_mom_update(w, nd.array(g).tostype("row_sparse"), m, lr=0.1, momentum=0.9, wd=0.01, out=w)
    want_m, want_w = m0.copy(), w0.copy()
    rows = [1, 4]
    want_m[rows] = 0.9 * m0[rows] - 0.1 * 0.01 * w0[rows] - 0.1 * g[rows]
    want_w[rows] = w0[rows] + want_m[rows]
    np.testing.assert_allclose(m.asnumpy(), want_m, rtol=1e-6)
    np.testing.assert_allclose(w.asnumpy(), want_w, rtol=1e-6)
    with pytest.raises(GraphcError, match="without every row stored"):
        partial = nd.array(np.diag([1, 0, 1]).astype(np.float32)).tostype("row_sparse")
        nd.sparse.sgd_update(partial, nd.array(np.eye(3, dtype=np.float32)).tostype("row_sparse"), lr=0.1,
                             out=partial)


def test_sym_sparse_has_every_mxnet_name_and_retain_matches_numpy():
    missing = [n for n in MXNET_NAMES if not hasattr(mx.sym.sparse, n)]
    assert not missing, f"sym.sparse lacks {missing}"
    rng = np.random.default_rng(5)
    data = rng.standard_normal((7, 2, 3)).astype(np.float32)
    idx = np.array([5, 0, 5, 3], np.int64)
    x, i = mx.sym.var("x"), mx.sym.var("i")
    for dtype in ("float32", "int32", "float64"):
        values = (data * 10).astype(dtype)
        out = mx.sym.sparse.retain(x, i).bind(mx.cpu(), {"x": nd.array(values, dtype=dtype),
                                                         "i": nd.array(idx, dtype="int64")}).forward()
        want = np.zeros_like(values)
        want[np.unique(idx)] = values[np.unique(idx)]
        assert out[0].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out[0].asnumpy(), want)
    with pytest.raises(GraphcError, match="storage type must be one of"):
        mx.sym.sparse.cast_storage(x, stype="coo")
    with pytest.raises(GraphcError, match="nd.sparse.adagrad_update"):
        mx.sym.sparse.adagrad_update(x, x, x, lr=0.1)
    assert mx.sym.var("w", stype="csr").attr("__storage_type__") == "2"


def test_load_frombuffer_reads_what_save_wrote_and_refuses_truncation(tmp_path):
    rng = np.random.default_rng(6)
    arrays = {"a": nd.array(rng.standard_normal((3, 2))), "b": nd.array(_sparse_dense(rng, (4, 4))).tostype("csr")}
    path = tmp_path / "x.params"
    nd.save(str(path), arrays)
    loaded = nd.load_frombuffer(path.read_bytes())
    assert sorted(loaded) == ["a", "b"] and loaded["b"].stype == "csr"
    for k in arrays:
        np.testing.assert_array_equal(loaded[k].asnumpy(), arrays[k].asnumpy())
    with pytest.raises(mx.base.MXNetError, match=r"nd.load_frombuffer\(\d+ bytes\): byte \d+"):
        nd.load_frombuffer(path.read_bytes()[:-10])
    with pytest.raises(TypeError, match="expects bytes"):
        nd.load_frombuffer("x.params")


def test_row_sparse_parameter_is_held_sparse_and_updated_in_place_by_a_trainer():
    p = mx.gluon.Parameter("w", shape=(4, 2), stype="row_sparse", grad_stype="row_sparse", init=mx.init.One())
    p.initialize(ctx=mx.cpu())
    held = p._data[0]
    assert held.stype == "row_sparse" and p.var().attr("__storage_type__") == "1"
    with pytest.raises(RuntimeError, match="no Trainer"):
        p.row_sparse_data(nd.array([0]))
    trainer = mx.gluon.Trainer([p], "sgd", {"learning_rate": 0.5})
    with autograd.record():
        y = nd.sparse.Embedding(nd.array([1, 1]), held, input_dim=4, output_dim=2).sum()
    y.backward()
    assert p.grad().stype == "row_sparse"
    np.testing.assert_array_equal(p.grad().indices.asnumpy(), [1])
    trainer.step(1)
    assert p._data[0] is held
    np.testing.assert_allclose(held.asnumpy(), [[1, 1], [0, 0], [1, 1], [1, 1]])
    rows = p.row_sparse_data(nd.array([1, 1, 3]))
    np.testing.assert_array_equal(rows.indices.asnumpy(), [1, 3])
    with pytest.raises(AssertionError, match="Invalid stype"):
        mx.gluon.Parameter("bad", shape=(2,), stype="coo")


def test_cast_storage_at_the_top_level_and_with_out():
    dense = np.array([[0, 1], [0, 0], [2, 0]], np.float32)
    c = nd.cast_storage(nd.array(dense), stype="csr")
    assert c.stype == "csr"
    np.testing.assert_array_equal(c.indptr.asnumpy(), [0, 1, 1, 2])
    out = nd.zeros((3, 2))
    assert nd.sparse.cast_storage(c, "default", out=out) is out
    np.testing.assert_array_equal(out.asnumpy(), dense)
    with pytest.raises(GraphcError, match="cast_storage from csr to row_sparse is not supported"):
        nd.cast_storage(c, stype="row_sparse")
    graph = mx.sym.cast_storage(mx.sym.var("x"), stype="row_sparse")
    np.testing.assert_array_equal(graph.bind(mx.cpu(), {"x": nd.array(dense)}).forward()[0].asnumpy(), dense)
