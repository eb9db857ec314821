"""Trainer: step rescales by 1/batch_size, training reduces the loss, several devices stay in
sync, learning-rate access, allreduce/update split, state save/load."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn


def _model(ctx=None, seed=0):
    mx.random.seed(seed)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(8, activation="relu", in_units=4), nn.Dense(3, in_units=8))
    net.initialize(mx.init.Xavier(), ctx=ctx)
    return net


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32) + (x[:, 1] > 0)
    return nd.array(x), nd.array(y)


def test_training_reduces_the_loss():
    net = _model()
    x, y = _data()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    losses = []
    for _ in range(30):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        losses.append(loss.mean().asscalar())
    assert losses[-1] < 0.5 * losses[0]


def test_step_rescales_gradients_by_batch_size():
    p = gluon.Parameter("w", shape=(2,), init=mx.init.Zero())
    p.initialize()
    trainer = gluon.Trainer([p], "sgd", {"learning_rate": 1.0})
    with autograd.record():
        y = (p.data() * nd.array([4.0, 8.0])).sum()
    y.backward()
    trainer.step(4)
    np.testing.assert_allclose(p.data().asnumpy(), [-1.0, -2.0])


def test_params_accepts_dict_sorted_by_name_and_rejects_others():
    net = _model()
    trainer = gluon.Trainer(net.collect_params(), "adam")
    assert [p.name for p in trainer._params] == sorted(net.collect_params().keys())
    with pytest.raises(ValueError, match="list or dict of Parameters"):
        gluon.Trainer(3, "sgd")
    with pytest.raises(ValueError):
        gluon.Trainer([1, 2], "sgd")
    with pytest.raises(ValueError, match="optimizer_params must be None"):
        gluon.Trainer(net.collect_params(), mx.optimizer.SGD(), {"learning_rate": 0.1})


def test_learning_rate_get_and_set():
    trainer = gluon.Trainer(_model().collect_params(), "sgd", {"learning_rate": 0.3})
    assert trainer.learning_rate == 0.3
    trainer.set_learning_rate(0.1)
    assert trainer.learning_rate == 0.1


def test_allreduce_then_update_equals_step():
    x, y = _data()
    loss_fn = gluon.loss.L2Loss()
    results = []
    for split in (False, True):
        net = _model(seed=3)
        trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
        with autograd.record():
            loss = loss_fn(net(x), nd.one_hot(y, 3))
        loss.backward()
        if split:
            trainer.allreduce_grads()
            trainer.update(16)
        else:
            trainer.step(16)
        results.append(net[0].weight.data().asnumpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_two_devices_sum_gradients_and_stay_identical():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    x, y = _data()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    net2 = _model(ctx=ctxs, seed=5)
    net1 = _model(seed=5)
    t2 = gluon.Trainer(net2.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    t1 = gluon.Trainer(net1.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    for _ in range(3):
        xs = gluon.utils.split_and_load(x, ctxs)
        ys = gluon.utils.split_and_load(y, ctxs)
        with autograd.record():
            losses = [loss_fn(net2(a), b) for a, b in zip(xs, ys)]
        for l in losses:
            l.backward()
        t2.step(16)
        with autograd.record():
            loss = loss_fn(net1(x), y)
        loss.backward()
        t1.step(16)
    w0 = net2[0].weight.data(ctxs[0]).asnumpy()
    w1 = net2[0].weight.data(ctxs[1]).asnumpy()
    np.testing.assert_array_equal(w0, w1)
    np.testing.assert_allclose(w0, net1[0].weight.data().asnumpy(), rtol=1e-5, atol=1e-6)


def test_save_and_load_states_resume_exactly(tmp_path):
    x, y = _data()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def train(net, trainer, n):
        for _ in range(n):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(16)

    net_a = _model(seed=9)
    ta = gluon.Trainer(net_a.collect_params(), "adam", {"learning_rate": 0.01})
    train(net_a, ta, 4)

    net_b = _model(seed=9)
    tb = gluon.Trainer(net_b.collect_params(), "adam", {"learning_rate": 0.01})
    train(net_b, tb, 2)
    f = str(tmp_path / "t.states")
    p = str(tmp_path / "net.params")
    tb.save_states(f)
    net_b.save_parameters(p)

    net_c = _model(seed=1)
    net_c.load_parameters(p)
    tc = gluon.Trainer(net_c.collect_params(), "adam", {"learning_rate": 0.01})
    tc.load_states(f)
    train(net_c, tc, 2)
    np.testing.assert_allclose(net_c[0].weight.data().asnumpy(), net_a[0].weight.data().asnumpy(), rtol=1e-6)

    wrong = gluon.Trainer(_model().collect_params(), "sgd")
    with pytest.raises(ValueError, match="adam"):
        wrong.load_states(f)


def test_null_grad_params_are_skipped():
    net = _model()
    net[0].weight.grad_req = "null"
    before = net[0].weight.data().asnumpy()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    x, y = _data()
    with autograd.record():
        loss = gluon.loss.L2Loss()(net(x), nd.one_hot(y, 3))
    loss.backward()
    trainer.step(16)
    np.testing.assert_array_equal(net[0].weight.data().asnumpy(), before)


def test_contexts_must_agree():
    a = gluon.Parameter("a", shape=(1,))
    b = gluon.Parameter("b", shape=(1,))
    a.initialize(ctx=mx.cpu(0))
    b.initialize(ctx=mx.cpu(1))
    trainer = gluon.Trainer([a, b], "sgd")
    with pytest.raises(ValueError, match="same set of contexts"):
        trainer.step(1)


@pytest.mark.skipif(not hasattr(nd.NDArray, "_fresh_grad"),
                    reason="the eager autograd does not mark fresh gradients (NDArray._fresh_grad) yet")
def test_stale_gradient_is_reported_unless_ignored():
    a = gluon.Parameter("a", shape=(1,), init=mx.init.One())
    b = gluon.Parameter("b", shape=(1,), init=mx.init.One())
    a.initialize()
    b.initialize()
    trainer = gluon.Trainer([a, b], "sgd", {"learning_rate": 1.0})
    with autograd.record():
        y = a.data() * 2
    y.backward()
    with pytest.raises(UserWarning, match="`b`"):
        trainer.step(1)
    with autograd.record():
        y = a.data() * 2
    y.backward()
    trainer.step(1, ignore_stale_grad=True)
    assert b.data().asscalar() == 1.0
