"""nn layers against numpy formulas (eager)."""
import math

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 6)).astype(np.float32)


def _run(layer, x=X):
    layer.initialize()
    return layer(nd.array(x)).asnumpy()


def test_dense_matches_numpy_with_activation():
    layer = nn.Dense(3, activation="tanh", in_units=6)
    out = _run(layer)
    w, b = layer.weight.data().asnumpy(), layer.bias.data().asnumpy()
    np.testing.assert_allclose(out, np.tanh(X @ w.T + b), rtol=1e-5, atol=1e-6)


def test_dense_without_bias_has_no_bias_parameter():
    layer = nn.Dense(3, use_bias=False, in_units=6)
    assert layer.bias is None and len(layer.params) == 1
    out = _run(layer)
    np.testing.assert_allclose(out, X @ layer.weight.data().asnumpy().T, rtol=1e-5)


def test_dense_initializers():
    layer = nn.Dense(3, in_units=6, weight_initializer="ones", bias_initializer=mx.init.Constant(2.0))
    out = _run(layer)
    np.testing.assert_allclose(out, X.sum(axis=1, keepdims=True) + 2.0 + np.zeros((1, 3)), rtol=1e-5)


@pytest.mark.parametrize("act,fn", [
    ("relu", lambda x: np.maximum(x, 0)),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", np.tanh),
    ("softrelu", lambda x: np.log1p(np.exp(x))),
    ("softsign", lambda x: x / (1 + np.abs(x))),
])
def test_activation(act, fn):
    np.testing.assert_allclose(_run(nn.Activation(act)), fn(X), rtol=1e-5, atol=1e-6)


def test_leaky_relu_elu_selu_gelu_swish():
    np.testing.assert_allclose(_run(nn.LeakyReLU(0.1)), np.where(X > 0, X, 0.1 * X), rtol=1e-6)
    np.testing.assert_allclose(_run(nn.ELU(0.5)), np.where(X > 0, X, 0.5 * (np.exp(X) - 1)), rtol=1e-5, atol=1e-6)
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    np.testing.assert_allclose(_run(nn.SELU()), scale * np.where(X > 0, X, alpha * (np.exp(X) - 1)),
                               rtol=1e-5, atol=1e-6)
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(_run(nn.GELU()), 0.5 * X * (1 + erf(X / np.sqrt(2))), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_run(nn.Swish(2.0)), X / (1 + np.exp(-2.0 * X)), rtol=1e-5, atol=1e-6)


def test_leaky_relu_refuses_negative_slope():
    with pytest.raises(ValueError):
        nn.LeakyReLU(-1)


def test_prelu_learns_its_slope():
    layer = nn.PReLU()
    assert layer.alpha.name.endswith("alpha")
    out = _run(layer)
    np.testing.assert_allclose(out, np.where(X > 0, X, 0.25 * X), rtol=1e-6)
    with autograd.record():
        y = layer(nd.array(X)).sum()
    y.backward()
    np.testing.assert_allclose(layer.alpha.grad().asnumpy(), [np.minimum(X, 0).sum()], rtol=1e-5)


def test_dropout_is_identity_in_inference_and_scales_in_training():
    layer = nn.Dropout(0.5)
    x = np.ones((100, 100), np.float32)
    np.testing.assert_array_equal(_run(layer, x), x)
    with autograd.record():
        out = layer(nd.array(x)).asnumpy()
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert 0.4 < (out == 0).mean() < 0.6


def test_dropout_axes_share_the_mask():
    layer = nn.Dropout(0.5, axes=(1,))
    with autograd.train_mode():
        out = layer(nd.ones((50, 8))).asnumpy()
    assert all(len(set(row)) == 1 for row in out)


def test_flatten_identity_lambda_hybridlambda():
    x = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    assert _run(nn.Flatten(), x).shape == (2, 12)
    np.testing.assert_array_equal(_run(nn.Identity(), x), x)
    np.testing.assert_allclose(_run(nn.HybridLambda("tanh"), x), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(_run(nn.HybridLambda(lambda F, a: F.relu(a) * 2), x), np.maximum(x, 0) * 2,
                               rtol=1e-6)
    np.testing.assert_allclose(_run(nn.Lambda(lambda a: a + 1), x), x + 1, rtol=1e-6)
    with pytest.raises(ValueError):
        nn.Lambda("no_such_op")


def test_sequential_passes_extra_outputs_on():
    class Two(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return x, x * 2

    class Add(gluon.HybridBlock):
        def hybrid_forward(self, F, a, b):
            return a + b

    net = nn.HybridSequential()
    net.add(Two(), Add())
    np.testing.assert_allclose(net(nd.array([1.0, 2.0])).asnumpy(), [3.0, 6.0])
