"""CachedOp's hot path (a memo of the last inference call's signature) must give the same
results as the full path whenever anything the memo skips could have changed: the parameters'
arrays (replaced or written in place), the input's shape, dtype or layout, the training flag,
autograd recording. Every check compares with numpy computing the same network."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn


def _mlp(dropout=0.0):
    net = nn.HybridSequential()
    net.add(nn.Dense(8, activation="relu"))
    if dropout:
        net.add(nn.Dropout(dropout))
    net.add(nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def _reference(net, x):
    dense = [b for b in net if isinstance(b, nn.Dense)]
    h = x
    for i, d in enumerate(dense):
        h = h @ d.weight.data().asnumpy().T + d.bias.data().asnumpy()
        if i == 0:
            h = np.maximum(h, 0)
    return h


def _x(rows=2, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((rows, 5)).astype(dtype)


def _check(net, xn, **kw):
    out = net(nd.array(xn, **kw)).asnumpy()
    np.testing.assert_allclose(out, _reference(net, xn.astype(np.float64)), rtol=1e-5, atol=1e-5)
    return out


def test_repeated_calls_follow_new_inputs():
    net = _mlp()
    for seed in range(4):
        _check(net, _x(seed=seed))
    assert net._cached_op._memo is not None


def test_parameter_replaced_by_set_data():
    net = _mlp()
    xn = _x()
    before = _check(net, xn)
    w = net[0].weight
    w.set_data(nd.array(np.random.default_rng(1).standard_normal(w.shape).astype(np.float32)))
    after = _check(net, xn)
    assert not np.allclose(before, after)


def test_parameter_written_in_place():
    net = _mlp()
    xn = _x()
    before = _check(net, xn)
    net[1].bias.data()[:] = 3.0
    after = _check(net, xn)
    assert not np.allclose(before, after)


def test_trainer_step_then_inference():
    net = _mlp()
    xn = _x()
    before = _check(net, xn)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    with autograd.record():
        loss = (net(nd.array(xn)) ** 2).sum()
    loss.backward()
    trainer.step(1)
    after = _check(net, xn)
    assert not np.allclose(before, after)


def test_new_shape_then_back():
    net = _mlp()
    _check(net, _x(rows=2))
    _check(net, _x(rows=7, seed=3))
    _check(net, _x(rows=2, seed=4))


def test_non_contiguous_input():
    net = _mlp()
    _check(net, _x())
    wide = _x(rows=4, seed=5)
    x = nd.array(wide)
    x._data = x._data[::2]          # a strided view, as a slicing op can leave it
    assert not x._data.flags.c_contiguous
    out = net(x).asnumpy()
    np.testing.assert_allclose(out, _reference(net, wide[::2].astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_float64_input_after_float32():
    net = _mlp()
    _check(net, _x())
    net.cast("float64")
    _check(net, _x(seed=6, dtype=np.float64), dtype="float64")


def test_recording_after_inference_records_gradients():
    net = _mlp()
    xn = _x()
    _check(net, xn)
    x = nd.array(xn)
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward()
    # d(sum y)/dx of relu(x W0ᵀ + b0) W1ᵀ + b1
    w0, b0 = net[0].weight.data().asnumpy(), net[0].bias.data().asnumpy()
    w1 = net[1].weight.data().asnumpy()
    active = (xn @ w0.T + b0) > 0
    want = (active * w1.sum(axis=0)) @ w0
    np.testing.assert_allclose(x.grad.asnumpy(), want, rtol=1e-5, atol=1e-5)


def test_training_flag_switch_applies_dropout():
    net = _mlp(dropout=0.5)
    xn = _x(rows=64)
    infer = _check(net, xn)
    with autograd.train_mode():
        trained = net(nd.array(xn)).asnumpy()
    assert not np.allclose(trained, infer)
    np.testing.assert_array_equal(_check(net, xn), infer)


def test_outputs_of_successive_calls_stay_apart():
    """static_alloc's buffer pool: a held result must not be overwritten by the next call."""
    net = _mlp()
    a = net(nd.array(_x(seed=1)))
    b = net(nd.array(_x(seed=2)))
    np.testing.assert_allclose(a.asnumpy(), _reference(net, _x(seed=1).astype(np.float64)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.asnumpy(), _reference(net, _x(seed=2).astype(np.float64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_memo", [True, False])
def test_same_output_with_and_without_memo(use_memo):
    net = _mlp()
    xn = _x()
    first = net(nd.array(xn)).asnumpy()
    if not use_memo:
        net._cached_op._memo = None
    np.testing.assert_array_equal(net(nd.array(xn)).asnumpy(), first)
