"""Row-sparse gradients end to end: Embedding(sparse_grad=True) under autograd, lazy optimizer
updates (graphc/gluon/optimizer_lazy.py) against a numpy reference, Parameter grad_stype and
row_sparse_data, Trainer over one and two devices through the kvstore, and row_sparse_pull.
Exact agreement with MXNet 1.9.1 is tests/compat/test_sparse_mxnet.py."""
import warnings

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd
from graphc.gluon import nn
from graphc.ops.errors import GraphcError

INDICES = np.array([[4, 0, 4], [2, 1, 0]], np.float32)


def _embedding_grads(sparse_grad, indices=INDICES, req="write", passes=1):
    w = nd.array(np.linspace(-1, 1, 28, dtype=np.float32).reshape(7, 4))
    w.attach_grad(req, stype="row_sparse" if sparse_grad else None)
    head = nd.array(np.linspace(0.5, 2, indices.size * 4, dtype=np.float32).reshape(indices.shape + (4,)))
    for _ in range(passes):
        with autograd.record():
            y = nd.sparse.embedding(nd.array(indices), w, 7, 4, sparse_grad=sparse_grad)
            loss = (y * head).sum()
        loss.backward()
    return w.grad


def test_sparse_grad_holds_the_rows_looked_up_with_the_dense_values():
    sparse, dense = _embedding_grads(True), _embedding_grads(False)
    assert sparse.stype == "row_sparse" and dense.stype == "default"
    np.testing.assert_array_equal(sparse.indices.asnumpy(), [0, 1, 2, 4])
    np.testing.assert_allclose(sparse.asnumpy(), dense.asnumpy(), rtol=1e-6)


def test_grad_req_add_merges_the_rows_of_each_pass():
    first = _embedding_grads(True, req="add", passes=1).asnumpy()
    w = nd.array(np.linspace(-1, 1, 28, dtype=np.float32).reshape(7, 4))
    w.attach_grad("add", stype="row_sparse")
    for idx in (INDICES, np.array([[6, 6, 6], [6, 6, 6]], np.float32)):
        head = nd.array(np.linspace(0.5, 2, 24, dtype=np.float32).reshape(2, 3, 4))
        with autograd.record():
            loss = (nd.sparse.embedding(nd.array(idx), w, 7, 4) * head).sum()
        loss.backward()
    np.testing.assert_array_equal(w.grad.indices.asnumpy(), [0, 1, 2, 4, 6])
    np.testing.assert_allclose(w.grad.asnumpy()[[0, 1, 2, 4]], first[[0, 1, 2, 4]], rtol=1e-6)
    np.testing.assert_allclose(w.grad.asnumpy()[6], np.linspace(0.5, 2, 24).reshape(6, 4).sum(0), rtol=1e-5)


def test_two_lookups_of_one_weight_sum_their_sparse_gradients():
    net = nn.Embedding(7, 4, sparse_grad=True)
    net.initialize()
    with autograd.record():
        loss = (net(nd.array([1, 2])) * 2).sum() + (net(nd.array([2, 5])) * 3).sum()
    loss.backward()
    grad = net.weight.grad()
    assert grad.stype == "row_sparse"
    np.testing.assert_array_equal(grad.indices.asnumpy(), [1, 2, 5])
    np.testing.assert_allclose(grad.data.asnumpy(), np.array([[2] * 4, [5] * 4, [3] * 4]))


def test_an_out_of_range_index_is_refused_by_the_sparse_backward():
    with pytest.raises(GraphcError, match=r"index 9.0 is out of range \[0, 7\)"):
        _embedding_grads(True, indices=np.array([[9, 0]], np.float32))


def test_hybridized_embedding_warns_and_stores_the_dense_gradient_as_rows():
    net = nn.Embedding(7, 4, sparse_grad=True)
    net.initialize()
    eager = _grad_of(net)
    net.hybridize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _grad_of(net)
    assert any("sparse_grad=True" in str(w.message) for w in caught)
    assert compiled.stype == "row_sparse"
    np.testing.assert_array_equal(compiled.indices.asnumpy(), eager.indices.asnumpy())
    np.testing.assert_allclose(compiled.asnumpy(), eager.asnumpy(), rtol=1e-6)


def _grad_of(net):
    with autograd.record():
        loss = (net(nd.array(INDICES)) * nd.array(np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 1)).sum()
    loss.backward()
    return net.weight.grad().copy()


# -- lazy updates against numpy -----------------------------------------------------------------------------
def _rsp(rows, seed, shape=(6, 3)):
    values = np.random.default_rng(seed).uniform(-1, 1, (len(rows),) + shape[1:]).astype(np.float32)
    return nd.sparse.row_sparse_array((values, np.array(rows)), shape=shape), values


@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.0, 0.1), (0.9, 0.05)])
def test_lazy_sgd_matches_a_numpy_reference_and_leaves_other_rows(momentum, wd):
    opt = mx.optimizer.create("sgd", learning_rate=0.2, momentum=momentum, wd=wd, rescale_grad=0.5)
    w0 = np.linspace(-1, 1, 18, dtype=np.float32).reshape(6, 3)
    w, ref_w, ref_m = nd.array(w0), w0.copy(), np.zeros_like(w0)
    state = opt.create_state(0, w)
    for step, rows in enumerate([[1, 4], [0, 4], [4]]):
        g, values = _rsp(rows, step)
        opt.update(0, w, g, state)
        for r, v in zip(rows, values):
            grad = 0.5 * v
            if momentum:
                ref_m[r] = momentum * ref_m[r] - 0.2 * wd * ref_w[r] - 0.2 * grad
                ref_w[r] += ref_m[r]
            else:
                ref_w[r] = (1 - 0.2 * wd) * ref_w[r] - 0.2 * grad
    np.testing.assert_allclose(w.asnumpy(), ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w.asnumpy()[[2, 3, 5]], w0[[2, 3, 5]])


def test_standard_update_equals_the_dense_update_of_the_dense_gradient():
    for kind in ("sgd", "adam"):
        kw = dict(learning_rate=0.1, wd=0.05, lazy_update=False)
        a, b = mx.optimizer.create(kind, **kw), mx.optimizer.create(kind, **kw)
        wa, wb = nd.ones((6, 3)), nd.ones((6, 3))
        sa, sb = a.create_state(0, wa), b.create_state(0, wb)
        for step in range(2):
            g, _ = _rsp([1, 3], step)
            a.update(0, wa, g, sa)
            b.update(0, wb, g.tostype("default"), sb)
        np.testing.assert_allclose(wa.asnumpy(), wb.asnumpy(), rtol=1e-6)
        assert not np.allclose(wa.asnumpy()[0], 1)          # decayed although row 0 had no gradient


def test_lazy_adam_counts_steps_and_keeps_moments_of_absent_rows():
    opt = mx.optimizer.create("adam", learning_rate=0.1)
    w = nd.ones((6, 3))
    mean, var = opt.create_state(0, w)
    for step, rows in enumerate([[0, 2], [2]]):
        opt.update(0, w, _rsp(rows, step)[0], (mean, var))
    assert np.all(mean.asnumpy()[[1, 3, 4, 5]] == 0) and np.all(mean.asnumpy()[0] != 0)
    assert opt._index_update_count[0] == 2


def test_sparse_adagrad_refuses_weight_decay_as_mxnet():
    opt = mx.optimizer.create("adagrad", learning_rate=0.1, wd=0.1)
    w = nd.ones((6, 3))
    with pytest.raises(GraphcError, match="weight decay"):
        opt.update(0, w, _rsp([1], 0)[0], opt.create_state(0, w))


def test_multi_precision_lazy_update_keeps_float32_master_rows():
    opt = mx.optimizer.create("sgd", learning_rate=0.5, momentum=0.9, multi_precision=True)
    w = nd.ones((6, 3), dtype="float16")
    state = opt.create_state_multi_precision(0, w)
    g, values = _rsp([2], 0)
    opt.update_multi_precision(0, w, g.astype("float16"), state)
    np.testing.assert_allclose(state[0].asnumpy()[2], 1 - 0.5 * values[0].astype(np.float16), rtol=1e-3)
    assert np.all(state[0].asnumpy()[[0, 1, 3, 4, 5]] == 1) and w.dtype == np.float16


# -- parameters, trainer, kvstore ------------------------------------------------------------------------------
def test_parameter_storage_options():
    p = mx.gluon.Parameter("w", shape=(5, 2), grad_stype="row_sparse", stype="row_sparse")
    p.initialize(mx.init.Constant(3))
    assert p.grad().stype == "row_sparse" and p.grad().data.shape == (0, 2)
    with pytest.raises(RuntimeError, match="no Trainer"):     # as MXNet: rows come through a Trainer
        p.row_sparse_data(nd.array([4, 1, 4]))
    mx.gluon.Trainer([p], "sgd")
    rows = p.row_sparse_data(nd.array([4, 1, 4]))
    assert rows.stype == "row_sparse"
    np.testing.assert_array_equal(rows.indices.asnumpy(), [1, 4])
    np.testing.assert_array_equal(rows.data.asnumpy(), np.full((2, 2), 3))
    p.grad()[:] = nd.ones((5, 2))
    p.zero_grad()
    assert p.grad().data.shape == (0, 2)
    with pytest.raises(GraphcError, match="grad_stype='csr'"):
        mx.gluon.Parameter("c", shape=(2, 2), grad_stype="csr")
    with pytest.raises(RuntimeError, match="storage type is default"):
        mx.gluon.Parameter("d", shape=(2, 2)).row_sparse_data(nd.array([0]))


def _train(ctxs, update_on_kvstore=None, kind="sgd", params=None):
    net = nn.Embedding(8, 3, sparse_grad=True)
    net.initialize(mx.init.Constant(0.5), ctx=ctxs)
    trainer = mx.gluon.Trainer(net.collect_params(), kind, params or {"learning_rate": 0.1, "momentum": 0.9,
                                                                       "wd": 0.01},
                               kvstore="device", update_on_kvstore=update_on_kvstore)
    halves = [nd.array([[2, 0], [2, 2]]), nd.array([[1, 0], [6, 6]])]
    for step in range(3):
        with autograd.record():
            if len(ctxs) == 1:
                losses = [(net(nd.concat(*halves, dim=0)) ** 2 * (step + 1)).sum()]
            else:
                losses = [(net(h.as_in_context(c)) ** 2 * (step + 1)).sum() for h, c in zip(halves, ctxs)]
        for loss in losses:
            loss.backward()
        trainer.step(4)
    return [net.weight.data(c).asnumpy() for c in ctxs]


@pytest.mark.parametrize("update_on_kvstore", [None, False])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_two_devices_through_the_kvstore_equal_one_device(update_on_kvstore, kind):
    params = {"learning_rate": 0.1} if kind == "adam" else None
    (one,) = _train([mx.cpu(0)], kind=kind, params=params)
    two = _train([mx.cpu(0), mx.cpu(1)], update_on_kvstore, kind=kind, params=params)
    for w in two:
        np.testing.assert_allclose(w, one, rtol=1e-6)
    np.testing.assert_array_equal(one[[3, 4, 5, 7]], 0.5)     # rows never looked up: untouched


def test_row_sparse_pull_into_a_row_sparse_array_gives_the_rows_asked_for():
    kv = mx.kv.create("local")
    stored = np.arange(12, dtype=np.float32).reshape(6, 2)
    kv.init("w", nd.array(stored))
    out = nd.sparse.zeros("row_sparse", (6, 2))
    kv.row_sparse_pull("w", out=out, row_ids=nd.array([5, 1, 5]))
    np.testing.assert_array_equal(out.indices.asnumpy(), [1, 5])
    np.testing.assert_array_equal(out.data.asnumpy(), stored[[1, 5]])
    dense_out = nd.zeros((6, 2))
    kv.row_sparse_pull("w", out=dense_out, row_ids=nd.array([0]))
    np.testing.assert_array_equal(dense_out.asnumpy()[0], stored[0])
    assert dense_out.asnumpy()[1:].sum() == 0


def test_pushing_row_sparse_values_sums_them_as_row_sparse():
    kv = mx.kv.create("device")
    kv.init(0, nd.zeros((5, 2)))
    a = nd.sparse.row_sparse_array((np.ones((2, 2), np.float32), np.array([0, 3])), shape=(5, 2))
    b = nd.sparse.row_sparse_array((np.full((1, 2), 2, np.float32), np.array([3])), shape=(5, 2)).copyto(mx.cpu(1))
    kv.pushpull(0, [a, b])
    for out in (a, b):
        assert out.stype == "row_sparse"
        np.testing.assert_array_equal(out.indices.asnumpy(), [0, 3])
        np.testing.assert_array_equal(out.asnumpy(), [[1, 1], [0, 0], [0, 0], [3, 3], [0, 0]])


def test_a_hybridized_block_reads_sparse_inputs_densely():
    """A sparse input to a compiled block is MXNet's storage fallback: its dense form goes in."""
    net = nn.Dense(3, in_units=5)
    net.initialize()
    dense = np.where(np.random.default_rng(0).random((4, 5)) < 0.3, 1.0, 0).astype(np.float32)
    want = net(nd.array(dense)).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(nd.array(dense).tostype("csr")).asnumpy(), want, rtol=1e-6)


_MULTI_DEVICE_SCRIPT = r"""
import numpy as np, graphc as mx
from graphc import nd, autograd
nd.ones((2, 2), ctx=mx.cpu(1)).__add__(1).wait_to_read()      # several devices in use: work is queued
w = nd.ones((5, 2)); w.attach_grad()                          # a dense buffer receiving a row_sparse gradient
r = nd.array(np.eye(5, 2, dtype=np.float32)).tostype("row_sparse")
for _ in range(3):
    with autograd.record():
        loss = (nd.sparse.embedding(nd.array([1, 3]), w, 5, 2) * 2).sum()
    loss.backward()
    y = nd.exp(r) + w
nd.waitall()
assert type(r).__name__ == "RowSparseNDArray", type(r)
print("sum", float(w.grad.asnumpy().sum()), float(y.asnumpy().sum()))
"""


def test_sparse_arrays_in_queued_multi_device_work_stay_sparse_and_the_queue_lives():
    import os
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _MULTI_DEVICE_SCRIPT], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0 and "Exception" not in proc.stderr, proc.stderr[-3000:]
    assert "sum 8.0" in proc.stdout


def test_a_sparse_gradient_flows_through_operators_before_the_lookup_like_the_dense_one():
    grads = []
    for sparse_grad in (True, False):
        w, v, s = nd.array(np.arange(10, dtype=np.float32).reshape(5, 2)), nd.ones((5, 2)), nd.array([1.5])
        for x in (w, v, s):
            x.attach_grad()
        with autograd.record():
            table = w * 2 + v * s          # the row_sparse gradient meets broadcast_mul and add
            loss = (nd.sparse.embedding(nd.array([1, 3, 3]), table, 5, 2, sparse_grad=sparse_grad) ** 2).sum()
        loss.backward()
        grads.append([x.grad.asnumpy() for x in (w, v, s)])
    for sparse, dense in zip(*grads):
        np.testing.assert_allclose(sparse, dense, rtol=1e-6)
    assert grads[0][1][[0, 2, 4]].sum() == 0 and grads[0][2][0] != 0


@pytest.mark.parametrize("transpose_a", [False, True])
def test_sparse_dot_gives_its_dense_side_the_dense_gradient(transpose_a):
    rng = np.random.default_rng(3)
    a = np.where(rng.random((6, 4)) < 0.3, rng.standard_normal((6, 4)), 0).astype(np.float32)
    a[:, 2] = 0                                               # a column no value meets
    w0 = rng.standard_normal((6 if transpose_a else 4, 3)).astype(np.float32)
    head = rng.standard_normal((4 if transpose_a else 6, 3)).astype(np.float32)
    grads = []
    for lhs in (nd.array(a).tostype("csr"), nd.array(a)):
        w = nd.array(w0)
        w.attach_grad()
        with autograd.record():
            loss = (nd.sparse.dot(lhs, w, transpose_a=transpose_a) * nd.array(head)).sum()
        loss.backward()
        grads.append(w.grad.asnumpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[0], (a if transpose_a else a.T) @ head, rtol=1e-5, atol=1e-6)
    w = nd.array(w0)
    w.attach_grad(stype="row_sparse")
    with autograd.record():
        loss = (nd.sparse.dot(nd.array(a).tostype("csr"), w, transpose_a=transpose_a) * nd.array(head)).sum()
    loss.backward()
    if not transpose_a:                                       # csr^T . g: only the rows some value met
        assert 2 not in w.grad.indices.asnumpy().tolist()
    np.testing.assert_allclose(w.grad.asnumpy(), grads[1], rtol=1e-5, atol=1e-6)


def test_dense_dot_csr_gives_the_dense_side_its_gradient():
    rng = np.random.default_rng(4)
    c = np.where(rng.random((5, 3)) < 0.4, 1.0, 0).astype(np.float32)
    x = nd.array(rng.standard_normal((2, 5)).astype(np.float32))
    x.attach_grad()
    with autograd.record():
        loss = (nd.sparse.dot(x, nd.array(c).tostype("csr")) ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * (x.asnumpy() @ c) @ c.T, rtol=1e-5, atol=1e-6)
