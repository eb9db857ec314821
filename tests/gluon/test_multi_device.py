"""Data parallelism over CPU devices in one process, written as MXNet users write it:
initialize on a list of contexts, split_and_load, forward and backward per device, Trainer.step
summing the gradients through a kvstore. The result must be one device's step on the whole
batch, and the devices' work must run at the same time (each on its own dispatcher thread)."""
import threading

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, engine, gluon, nd

TWO = [mx.cpu(0), mx.cpu(1)]


def _mlp():
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(16, activation="relu"), gluon.nn.Dense(5))
    return net


def _cnn():
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(4, 3, padding=1, activation="relu"), gluon.nn.MaxPool2D(2),
                gluon.nn.Conv2D(6, 3, activation="relu"), gluon.nn.Flatten(), gluon.nn.Dense(5))
    return net


def _setup(make, ctxs, hybridize=True, kvstore="device", update_on_kvstore=None):
    mx.random.seed(7)
    net = make()
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    if hybridize:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3},
                            kvstore=kvstore, update_on_kvstore=update_on_kvstore)
    return net, trainer


def _step(net, trainer, ctxs, x, y, loss_fn=gluon.loss.SoftmaxCrossEntropyLoss()):
    """The standard MXNet data-parallel step."""
    xs = gluon.utils.split_and_load(x, ctxs)
    ys = gluon.utils.split_and_load(y, ctxs)
    with autograd.record():
        losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
    for l in losses:
        l.backward()
    trainer.step(x.shape[0])


def _train(make, ctxs, x, y, hybridize=True, kvstore="device", update_on_kvstore=None, steps=3):
    net, trainer = _setup(make, ctxs, hybridize, kvstore, update_on_kvstore)
    for _ in range(steps):
        _step(net, trainer, ctxs, x, y)
    return net


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return nd.array(rng.normal(size=shape)), nd.array(rng.integers(0, 5, size=shape[0]))


def _assert_same_as_one_device(one, two, ctxs):
    for (name, p1), p2 in zip(one.collect_params().items(), two.collect_params().values()):
        want = p1.data(mx.cpu(0)).asnumpy()
        for ctx in ctxs:
            np.testing.assert_allclose(p2.data(ctx).asnumpy(), want, rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("kvstore, update_on_kvstore", [("device", None), ("local", None), ("local", False),
                                                        ("device", False), ("device", True)])
@pytest.mark.parametrize("hybridize", [True, False])
def test_mlp_on_two_devices_trains_like_one_device_with_the_whole_batch(kvstore, update_on_kvstore, hybridize):
    x, y = _data((8, 12))
    one = _train(_mlp, [mx.cpu(0)], x, y, hybridize)
    two = _train(_mlp, TWO, x, y, hybridize, kvstore, update_on_kvstore)
    _assert_same_as_one_device(one, two, TWO)


@pytest.mark.parametrize("hybridize", [True, False])
def test_cnn_on_two_devices_trains_like_one_device_with_the_whole_batch(hybridize):
    x, y = _data((4, 3, 8, 8), seed=1)
    one = _train(_cnn, [mx.cpu(0)], x, y, hybridize, steps=2)
    two = _train(_cnn, TWO, x, y, hybridize, "local", steps=2)
    _assert_same_as_one_device(one, two, TWO)


def test_parameters_hold_one_copy_and_one_gradient_per_device():
    x, y = _data((8, 12))
    net = _train(_mlp, TWO, x, y, steps=1)
    for p in net.collect_params().values():
        datas, grads = p.list_data(), p.list_grad()
        assert [d.context for d in datas] == TWO and [g.context for g in grads] == TWO
        assert p.data(mx.cpu(1)) is datas[1] and p.grad(mx.cpu(1)) is grads[1]
        assert datas[0]._data is not datas[1]._data        # separate memory
        # each device's gradient is its own half's (before the trainer's sum): they differ
    w = net.collect_params()[next(iter(net.collect_params()))]
    assert not np.allclose(w.grad(mx.cpu(0)).asnumpy(), w.grad(mx.cpu(1)).asnumpy())


def test_a_hybridized_block_compiles_one_program_per_device():
    x, y = _data((8, 12))
    net = _train(_mlp, TWO, x, y, steps=1)
    entries = {key[2]: e for key, e in net._cached_op._cache.items()}
    assert set(entries) == set(TWO)
    for ctx, entry in entries.items():
        for fwd, bwd, *_ in entry.train.values():
            assert fwd.device == ctx.device_id and bwd.device == ctx.device_id


def test_each_devices_work_runs_on_its_own_thread_at_the_same_time():
    """Structural, not timed: every job of a device ran on that device's dispatcher, and the
    forward/backward programs of the two devices were in flight at the same time."""
    def make():
        net = gluon.nn.HybridSequential()
        with net.name_scope():
            net.add(gluon.nn.Dense(512, activation="relu"), gluon.nn.Dense(512, activation="relu"),
                    gluon.nn.Dense(10))
        return net
    x, y = _data((256, 512))
    net, trainer = _setup(make, TWO)
    _step(net, trainer, TWO, x, y)                 # traced and compiled: the steps below only run
    with engine.trace() as events:
        for _ in range(3):
            _step(net, trainer, TWO, x, y)
    mine = "-" + threading.current_thread().name      # this thread's queues (others' may exist)
    threads = {k: [tid for name, tid in v if name.endswith(mine)] for k, v in engine.dispatcher_threads().items()}
    assert len(threads[0]) == len(threads[1]) == 1 and threads[0] != threads[1]    # one queue each
    threads = {k: v[0] for k, v in threads.items()}
    assert events and all(tid == threads[dev] for dev, _, tid, _, _ in events)
    programs = [e for e in events if e[1].endswith((".forward", ".backward")) and "hybridsequential" in e[1]]
    assert {e[0] for e in programs} == {0, 1}
    overlapping = [(a, b) for a in programs for b in programs
                   if a[0] == 0 and b[0] == 1 and a[3] < b[4] and b[3] < a[4]]
    assert overlapping, "no forward/backward of cpu(0) was in flight while one of cpu(1) was"
