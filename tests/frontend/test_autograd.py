"""Eager autograd: record/pause/modes, backward with head gradients, grad_req, grad(),
gradients of gradients, custom Functions. Checked against finite differences."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd, autograd


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def test_backward_matches_finite_differences_float64():
    x0 = np.random.rand(3, 4) + 0.5
    w0 = np.random.rand(4, 2)

    def f(x):
        return np.sum(np.tanh(x @ w0) * np.log(x).sum(axis=1, keepdims=True))

    x = nd.array(x0, dtype="float64")
    w = nd.array(w0, dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = (nd.tanh(nd.dot(x, w)) * nd.log(x).sum(axis=1, keepdims=True)).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), numeric_grad(f, x0), rtol=1e-6, atol=1e-8)


def test_record_sets_training_and_pause_stops_recording():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        with autograd.pause():
            assert not autograd.is_recording()
        with autograd.predict_mode():
            assert not autograd.is_training()
    with autograd.train_mode():
        assert autograd.is_training()


def test_head_gradients_and_grad_req_add():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            y = x * x
        y.backward(nd.array([1.0, 0.5, 0.0]))
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * np.array([2.0, 2.0, 0.0]))


def test_grad_write_overwrites():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    for _ in range(2):
        with autograd.record():
            y = (x * 3).sum()
        y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [3.0, 3.0])


def test_grad_returns_without_touching_dot_grad():
    x = nd.array([0.3, -0.7])
    x.attach_grad()
    with autograd.record():
        y = nd.sigmoid(x)
    (g,) = autograd.grad([y], [x])
    s = 1 / (1 + np.exp(-x.asnumpy()))
    np.testing.assert_allclose(g.asnumpy(), s * (1 - s), rtol=1e-6)
    assert np.all(x.grad.asnumpy() == 0)


def test_gradient_of_gradient():
    x = nd.array([0.2, 1.1], dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = nd.sin(x) * x
        (dy,) = autograd.grad([y], [x], create_graph=True)
        z = dy.sum()
    z.backward()
    v = x.asnumpy()
    np.testing.assert_allclose(dy.asnumpy(), np.cos(v) * v + np.sin(v), rtol=1e-10)
    np.testing.assert_allclose(x.grad.asnumpy(), -np.sin(v) * v + 2 * np.cos(v), rtol=1e-10)


def test_value_used_twice_accumulates():
    x = nd.array([2.0])
    x.attach_grad()
    with autograd.record():
        y = x * x + x
    y.backward()
    assert x.grad.asscalar() == 5.0


def test_backward_twice_without_retain_graph_fails_clearly():
    x = nd.array([2.0])
    x.attach_grad()
    with autograd.record():
        y = x * x
    y.backward()
    with pytest.raises(mx.GraphcError, match="nothing to differentiate"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = nd.array([2.0])
    x.attach_grad(grad_req="add")
    with autograd.record():
        y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.asscalar() == 8.0


def test_dropout_follows_training_mode():
    x = nd.ones((1000,))
    with autograd.record():
        y = nd.Dropout(x, p=0.5)
    kept = y.asnumpy()
    assert set(np.unique(kept)) <= {0.0, 2.0} and 300 < (kept > 0).sum() < 700
    np.testing.assert_array_equal(nd.Dropout(x, p=0.5).asnumpy(), x.asnumpy())


def test_custom_function():
    class Square(autograd.Function):
        def forward(self, x):
            self.save_for_backward(x)
            return x * x

        def backward(self, dy):
            (x,) = self.saved_tensors
            return dy * 2 * x

    x = nd.array([3.0])
    x.attach_grad()
    with autograd.record():
        y = Square()(x)
    y.backward()
    assert x.grad.asscalar() == 6.0
