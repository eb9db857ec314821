"""The compiled backward of a repeated eager tape (graphc/eager_tape_cache.py): the gradients it
writes equal numpy references, finite differences and the op-by-op walk's, and a signature that
changes (shape, dtype, grad_req, which array is a leaf, head gradient) never reuses a program
compiled for another."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd as ag
from graphc import eager_kernels as ek
from graphc import eager_tape_cache as tc

nd = mx.nd


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")      # compiled from the first backward
    tc.clear()
    ek.clear()
    yield
    tc.clear()
    ek.clear()


def _rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _mlp_loss(x, y, params):
    """Two ReLU layers and softmax cross-entropy, as nd operators (the W7 shape of tape)."""
    (w1, b1), (w2, b2), (w3, b3) = params
    h = nd.relu(nd.FullyConnected(x, w1, b1, num_hidden=w1.shape[0]))
    h = nd.relu(nd.FullyConnected(h, w2, b2, num_hidden=w2.shape[0]))
    z = nd.FullyConnected(h, w3, b3, num_hidden=w3.shape[0])
    return -nd.pick(nd.log_softmax(z, axis=-1), y, axis=-1)


def _mlp_np(xn, yn, ps):
    """Loss per row and the gradients of its sum, in float64."""
    (w1, b1), (w2, b2), (w3, b3) = [(w.astype(np.float64), b.astype(np.float64)) for w, b in ps]
    a1 = xn @ w1.T + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ w2.T + b2
    h2 = np.maximum(a2, 0)
    z = h2 @ w3.T + b3
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    rows = np.arange(len(yn))
    loss = -np.log(p[rows, yn])
    dz = p.copy()
    dz[rows, yn] -= 1
    dh2 = dz @ w3 * (a2 > 0)
    dh1 = dh2 @ w2 * (a1 > 0)
    return loss, [(dh1.T @ xn, dh1.sum(0)), (dh2.T @ h1, dh2.sum(0)), (dz.T @ h2, dz.sum(0))]


def _params(rng, sizes):
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append((_rand(rng, fan_out, fan_in) * np.float32(1 / np.sqrt(fan_in)), _rand(rng, fan_out) * 0.1))
    return out


def _attached(ps, req="write"):
    out = []
    for w, b in ps:
        wn, bn = nd.array(w), nd.array(b)
        wn.attach_grad(req)
        bn.attach_grad(req)
        out.append((wn, bn))
    return out


def test_gradients_equal_numpy_reference():
    rng = np.random.default_rng(0)
    ps = _params(rng, [20, 16, 12, 5])
    xn, yn = _rand(rng, 7, 20), rng.integers(0, 5, 7)
    params = _attached(ps)
    want_loss, want = _mlp_np(xn, yn, ps)
    for _ in range(3):       # every call compiled (GRAPHC_EAGER_COMPILE=1): the first builds it
        with ag.record():
            loss = _mlp_loss(nd.array(xn), nd.array(yn), params)
        loss.backward()
        np.testing.assert_allclose(loss.asnumpy(), want_loss, rtol=1e-5, atol=1e-5)
        for (w, b), (gw, gb) in zip(params, want):
            np.testing.assert_allclose(w.grad.asnumpy(), gw, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(b.grad.asnumpy(), gb, rtol=1e-4, atol=1e-5)
    st = tc.stats()
    assert st["compiled"] == 1 and st["runs"] == 3, st


def test_gradients_match_finite_differences():
    """A tape of elementwise, broadcast, reduction and reuse (x read three times), float64."""
    rng = np.random.default_rng(1)
    xn, wn = _rand(rng, 4, 3, dtype=np.float64), _rand(rng, 3, dtype=np.float64)

    def f(x, w):
        t = nd.tanh(nd.broadcast_mul(x, w))
        return nd.sum(t * x + nd.exp(x * 0.5), axis=1)

    def value(a, b):
        return float(f(nd.array(a, dtype="float64"), nd.array(b, dtype="float64")).asnumpy().sum())
    x, w = nd.array(xn, dtype="float64"), nd.array(wn, dtype="float64")
    x.attach_grad()
    w.attach_grad()
    for _ in range(2):
        with ag.record():
            y = f(x, w)
        y.backward()
    assert tc.stats()["runs"] == 2
    eps = 1e-6
    for arr, got in ((xn, x.grad.asnumpy()), (wn, w.grad.asnumpy())):
        fd = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            up, down = arr.copy(), arr.copy()
            up[i] += eps
            down[i] -= eps
            fd[i] = (value(up, wn) - value(down, wn)) / (2 * eps) if arr is xn else \
                (value(xn, up) - value(xn, down)) / (2 * eps)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def _train(steps, momentum=0.9):
    """A few Gluon SGD steps of an imperative MLP; the losses and final weights."""
    rng = np.random.default_rng(2)
    net = mx.gluon.nn.Sequential()
    net.add(mx.gluon.nn.Dense(24, activation="relu", in_units=30), mx.gluon.nn.Dense(6, in_units=24))
    net.initialize(mx.init.Xavier())
    params = list(net.collect_params().values())
    values = [a for pair in _params(rng, [30, 24, 6]) for a in pair]
    for p, v in zip(params, values):
        p.set_data(nd.array(v))
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": momentum})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    x, y = nd.array(_rand(rng, 16, 30)), nd.array(rng.integers(0, 6, 16))
    losses = []
    for _ in range(steps):
        with ag.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(16)
        losses.append(loss.asnumpy())
    return np.array(losses), [p.data().asnumpy() for p in params]


def test_compiled_training_equals_op_by_op(monkeypatch):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "0")
    want_losses, want_weights = _train(6)
    assert tc.stats()["runs"] == 0
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    losses, weights = _train(6)
    assert tc.stats()["runs"] == 6
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-6)
    for got, want in zip(weights, want_weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_hot_after_policy(monkeypatch):
    """The default policy: op by op until the third backward of one signature."""
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "3")
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    x.attach_grad()
    for i in range(5):
        with ag.record():
            y = nd.sum(x * x)
        y.backward()
        np.testing.assert_allclose(x.grad.asnumpy(), 2 * x.asnumpy())
        assert tc.stats()["runs"] == max(0, i - 1)


def _grads_of(fn, arrays, reqs, steps=1, head=None):
    """Attach grads with `reqs`, run backward `steps` times; the .grad values (None: no grad)."""
    xs = [nd.array(a, dtype=a.dtype) for a in arrays]
    for x, r in zip(xs, reqs):
        if r is not None:
            x.attach_grad(r)
    for _ in range(steps):
        with ag.record():
            y = fn(*xs)
        y.backward(nd.array(head) if head is not None else None)
    return [x.grad.asnumpy() if r is not None else None for x, r in zip(xs, reqs)]


def _fn(a, b):
    return nd.sum(nd.dot(a, b) * a[:, :1], axis=0)


@pytest.mark.parametrize("change", ["shape", "dtype", "grad_req", "leaf", "head"])
def test_changed_signature_never_reuses_a_program(monkeypatch, change):
    """Compile for one signature, then change one part of it: the result must be the op-by-op
    walk's for the new signature (a cache keyed on less would give the old program's answer,
    or fail on a shape)."""
    rng = np.random.default_rng(3)
    a, b = _rand(rng, 5, 4), _rand(rng, 4, 3)
    _grads_of(_fn, [a, b], ["write", "write"], steps=2)        # compiled for this signature
    assert tc.stats()["compiled"] == 1
    arrays, reqs, steps, head = [a, b], ["write", "write"], 1, None
    if change == "shape":
        arrays = [_rand(rng, 6, 4), b]
    elif change == "dtype":
        arrays = [a.astype(np.float64), b.astype(np.float64)]
    elif change == "grad_req":
        reqs, steps = ["add", "write"], 2            # 'add' sums the two backward passes
    elif change == "leaf":
        reqs = [None, "write"]
    else:
        head = _rand(rng, 3)
    got = _grads_of(_fn, arrays, reqs, steps, head)
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "0")
    want = _grads_of(_fn, arrays, reqs, steps, head)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            assert g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # a changed signature gets its own program; a head gradient is a program input (a program
    # that took the ones of the first signature as constant would have failed above)
    assert tc.stats()["compiled"] == (1 if change == "head" else 2)


def test_grad_req_add_and_retain_graph():
    rng = np.random.default_rng(4)
    a = nd.array(_rand(rng, 3, 3))
    a.attach_grad("add")
    with ag.record():
        y = nd.sum(nd.exp(a) * a)
    y.backward(retain_graph=True)
    y.backward()            # the same tape again: it must still be there, and 'add' sums
    an = a.asnumpy()
    np.testing.assert_allclose(a.grad.asnumpy(), 2 * (np.exp(an) * (an + 1)), rtol=1e-5)
    assert y._entry is None          # released after the last backward
    assert tc.stats()["runs"] == 2


def test_gradient_buffer_read_by_the_tape():
    """A tape that reads a leaf's own .grad array (a matrix product of it): the program must not
    write that buffer while it still reads it (writing in place gives garbage here)."""
    rng = np.random.default_rng(5)
    wn, gn, hn = _rand(rng, 64, 64), _rand(rng, 64, 64), _rand(rng, 64, 64)
    w = nd.array(wn)
    w.attach_grad()
    w.grad[:] = nd.array(gn)
    with ag.record():
        y = nd.sum(nd.dot(w.grad, w) * nd.array(hn))
    y.backward()
    assert tc.stats()["runs"] == 1
    np.testing.assert_allclose(w.grad.asnumpy(), gn.T.astype(np.float64) @ hn, rtol=1e-4, atol=1e-4)


def test_leaf_without_gradient_keeps_its_buffer():
    """An index input with attach_grad gets no gradient from pick: its .grad is left alone."""
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    i = nd.array([0, 2])
    x.attach_grad()
    i.attach_grad()
    i.grad[:] = 7
    with ag.record():
        y = nd.pick(x, i, axis=1)
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(i.grad.asnumpy(), [7, 7])


def test_custom_function_in_tape_walks_op_by_op():
    class Twice(ag.Function):
        def forward(self, x):
            return x * 2

        def backward(self, dy):
            return dy * 2
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    for _ in range(2):
        with ag.record():
            y = nd.sum(Twice()(x) * x)
        y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 4 * x.asnumpy())
    assert tc.stats()["runs"] == 0


def _conv_train(steps):
    """Convolution, BatchNorm (training statistics), Dropout and pooling, a few SGD steps."""
    mx.random.seed(7)
    rng = np.random.default_rng(8)
    nn = mx.gluon.nn
    net = nn.Sequential()
    net.add(nn.Conv2D(4, 3, padding=1, in_channels=2), nn.BatchNorm(in_channels=4), nn.Activation("tanh"),
            nn.MaxPool2D(2), nn.Dropout(0.3), nn.Flatten(), nn.Dense(3, in_units=4 * 4 * 4))
    net.initialize(mx.init.Xavier())
    for p in net.collect_params().values():
        p.set_data(nd.array(rng.standard_normal(p.shape).astype(np.float32) * 0.3))
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05, "momentum": 0.5})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    x, y = nd.array(_rand(rng, 5, 2, 8, 8)), nd.array(rng.integers(0, 3, 5))
    losses = []
    for _ in range(steps):
        with ag.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(5)
        losses.append(loss.asnumpy())
    return np.array(losses), [p.data().asnumpy() for p in net.collect_params().values()]


def test_conv_batchnorm_dropout_compiled_equals_op_by_op(monkeypatch, recwarn):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "0")
    want_losses, want_weights = _conv_train(4)
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    losses, weights = _conv_train(4)
    assert tc.stats()["runs"] == 4 and not [w for w in recwarn if "compiled backward" in str(w.message)]
    np.testing.assert_allclose(losses, want_losses, rtol=1e-4, atol=1e-5)
    for got, want in zip(weights, want_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _predict_mode_grads():
    """Gradients of a BatchNorm/Dropout net recorded and differentiated in predict mode
    (moving statistics, Dropout the identity): the program is compiled for inference."""
    rng = np.random.default_rng(9)
    nn = mx.gluon.nn
    net = nn.Sequential()
    net.add(nn.Conv2D(3, 3, in_channels=2), nn.BatchNorm(in_channels=3), nn.Dropout(0.5), nn.Flatten(),
            nn.Dense(2, in_units=3 * 4 * 4))
    net.initialize(mx.init.Xavier())
    for p in net.collect_params().values():      # (positive: the moving variance among them)
        p.set_data(nd.array(np.abs(rng.standard_normal(p.shape)).astype(np.float32) + 0.1))
    x = nd.array(_rand(rng, 2, 2, 6, 6))
    out = []
    for _ in range(2):
        with ag.record(train_mode=False):
            y = nd.sum(net(x))
        y.backward(train_mode=False)
        out.append([p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != "null"])
    return out


def test_predict_mode_backward_equals_op_by_op(monkeypatch):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "0")
    want = _predict_mode_grads()
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    got = _predict_mode_grads()
    assert tc.stats()["runs"] == 2
    for gs, ws in zip(got, want):
        for g, w in zip(gs, ws):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)


def test_leaf_gradients_that_are_the_head_gradient():
    """a and b both get the head gradient itself (identity, then an add): each output of the
    program needs its own buffer, copied from a program input."""
    rng = np.random.default_rng(10)
    a, b = nd.array(_rand(rng, 3, 4)), nd.array(_rand(rng, 3, 4))
    a.attach_grad()
    b.attach_grad()
    for _ in range(2):
        head = _rand(rng, 3, 4)
        with ag.record():
            y = nd.identity(a) + b
        y.backward(nd.array(head))
        np.testing.assert_array_equal(a.grad.asnumpy(), head)
        np.testing.assert_array_equal(b.grad.asnumpy(), head)
    assert tc.stats()["runs"] == 2
