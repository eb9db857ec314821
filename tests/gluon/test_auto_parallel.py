"""Automatic model parallelism: hybridize(devices=[...]) places a block's operators with the cost
model (passes/auto_place.py) and must compute what the block computes on one device (forward,
gradients, SGD steps), with each parameter on the device that reads it; and under per-device
memory budgets (GRAPHC_DEVICE_MEMORY) a network too big for one device fails unpartitioned with
an error naming the block, the device, the budget and the need, and trains partitioned."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon
from graphc.device_memory import DeviceMemoryError
from graphc.passes.partition import COPY

RTOL, ATOL = 1e-5, 1e-6


def _mlp(widths, n_in, seed=3):
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        for k, n in enumerate(widths):
            net.add(gluon.nn.Dense(n, activation="tanh" if k < len(widths) - 1 else None, in_units=n_in))
            n_in = n
    mx.random.seed(seed)
    net.initialize(mx.init.Xavier())
    return net


def _train(net, x, y, steps=3):
    """Losses, gradients after each step and the final parameters (in parameter order)."""
    net(x)                     # places the parameters before the trainer sees them
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.L2Loss()
    losses, grads = [], []
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        losses.append(loss.asnumpy())
        grads.append([p.grad(p.list_ctx()[0]).asnumpy() for p in net.collect_params().values()])
    return losses, grads, [p.data(p.list_ctx()[0]).asnumpy() for p in net.collect_params().values()]


def _assert_same(a, b):
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _assert_same(u, v)
    else:
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("n_dev", [2, 3])
def test_devices_split_matches_one_device(n_dev):
    widths = [64, 256, 24, 192, 8]
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.standard_normal((6, 40)))
    y = mx.nd.array(rng.standard_normal((6, 8)))
    ref, net = _mlp(widths, 40), _mlp(widths, 40)
    ref.hybridize()
    net.hybridize(devices=[mx.cpu(k) for k in range(n_dev)])
    out = net(x)
    _assert_same(out.asnumpy(), ref(x).asnumpy())
    placed = net._cached_op.last.model_parallel
    graph = str(placed.forward[False][0])
    assert graph.count(COPY) >= n_dev - 1 and f"@cpu({n_dev - 1})" in graph
    assert out.context == mx.cpu(n_dev - 1)              # the last device makes the output
    for child in net:                                     # parameters live where they are read
        dev = placed.auto.node_devices[f"{child.name}_fwd"]
        for p in child.collect_params().values():
            assert [str(c) for c in p.list_ctx()] == [dev]
    with autograd.record():
        net(x).sum().backward()
    with autograd.record():
        ref(x).sum().backward()
    for p, q in zip(net.collect_params().values(), ref.collect_params().values()):
        g = p.grad(p.list_ctx()[0])
        assert g.context == p.list_ctx()[0]
        _assert_same(g.asnumpy(), q.grad().asnumpy())
    _assert_same(_train(net, x, y), _train(ref, x, y))


WIDE = [1024] * 4                # 16.8 MB of parameters: training needs twice that with gradients


def test_network_over_the_budget_fails_unpartitioned_and_trains_split(monkeypatch):
    rng = np.random.default_rng(1)
    x = mx.nd.array(rng.standard_normal((4, 1024)))
    y = mx.nd.array(rng.standard_normal((4, 1024)))
    monkeypatch.setenv("GRAPHC_DEVICE_MEMORY", "cpu(0):20MB,cpu(1):20MB")
    whole = _mlp(WIDE, 1024)
    whole.hybridize()
    with pytest.raises(DeviceMemoryError) as err:
        with autograd.record():
            whole(x).sum().backward()
    text = str(err.value)
    assert whole.name in text and "on cpu(0)" in text and "budget of 20.0 MB" in text
    assert "needs 2" in text and "hybridize(devices=[mx.cpu(0), mx.cpu(1)])" in text
    net = _mlp(WIDE, 1024)
    net.hybridize(devices=[mx.cpu(0), mx.cpu(1)])
    got = _train(net, x, y)
    auto = net._cached_op.last.model_parallel.auto
    assert all(m <= 20 * 10 ** 6 for m in auto.memory)
    assert {c for p in net.collect_params().values() for c in p.list_ctx()} == {mx.cpu(0), mx.cpu(1)}
    monkeypatch.delenv("GRAPHC_DEVICE_MEMORY")
    ref = _mlp(WIDE, 1024)
    ref.hybridize()
    _assert_same(got, _train(ref, x, y))


def test_no_split_fitting_the_budgets_names_them(monkeypatch):
    monkeypatch.setenv("GRAPHC_DEVICE_MEMORY", "cpu(0):6MB,cpu(1):6MB")
    net = _mlp(WIDE, 1024)
    net.hybridize(devices=[mx.cpu(0), mx.cpu(1)])
    with pytest.raises(DeviceMemoryError, match=r"no split over cpu\(0\), cpu\(1\) fits the memory budgets "
                                                r"\(cpu\(0\) 6.0 MB, cpu\(1\) 6.0 MB"):
        net(mx.nd.ones((4, 1024)))


def _convnet():
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(8, 3, padding=1, in_channels=3), gluon.nn.BatchNorm(in_channels=8),
                gluon.nn.Activation("relu"), gluon.nn.Conv2D(16, 3, strides=2, in_channels=8),
                gluon.nn.Activation("relu"), gluon.nn.Flatten(), gluon.nn.Dense(10, in_units=16 * 7 * 7))
    mx.random.seed(5)
    net.initialize(mx.init.Xavier())
    return net


def test_the_placement_estimate_bounds_every_compiled_program(monkeypatch):
    """Budgets set to exactly what the placement estimates per device: every program compiled
    for training (each checked against its device's budget) must still fit."""
    from graphc.gluon.cached_op import prepare
    from graphc.passes.auto_place import auto_place
    x = mx.nd.array(np.random.default_rng(2).standard_normal((2, 3, 16, 16)))
    probe = _convnet()
    probe.hybridize()
    probe(x)
    devices = ["cpu(0)", "cpu(1)", "cpu(2)"]
    estimate = auto_place(prepare(probe._cached_op.last.graph, True), devices, training=True)
    monkeypatch.setenv("GRAPHC_DEVICE_MEMORY", ",".join(f"{d}:{m}" for d, m in zip(devices, estimate.memory)
                                                         if m))
    net = _convnet()
    net.hybridize(devices=[mx.cpu(k) for k in range(3)])
    with autograd.record():
        net(x).sum().backward()
    assert net._cached_op.last.model_parallel.auto.memory == estimate.memory
