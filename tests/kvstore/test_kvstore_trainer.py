"""gluon.Trainer over a KVStore (graphc/gluon/trainer.py): update_on_kvstore as MXNet chooses
it, and states that resume exactly when the store owns the optimizer. The weights each
combination gives are compared with MXNet's in test_kvstore_vs_mxnet.py."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd

CTXS = [mx.cpu(0), mx.cpu(1)]


def _setup(seed, **kw):
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.Xavier(), ctx=CTXS)
    rng = np.random.RandomState(seed)
    net.weight.set_data(nd.array(rng.randn(3, 4).astype(np.float32)))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01}, **kw)
    return net, trainer


def _train(net, trainer, steps, skip=0):
    """Steps skip+1 .. skip+steps of one fixed sequence of batches."""
    rng = np.random.RandomState(0)
    for step in range(skip + steps):
        xs = [nd.array(rng.randn(2, 4).astype(np.float32), ctx=c) for c in CTXS]
        if step < skip:
            continue
        with autograd.record():
            losses = [(net(x) ** 2).sum() for x in xs]
        for loss in losses:
            loss.backward()
        trainer.step(4)


def test_multi_device_trainer_updates_on_the_store_by_default():
    net, trainer = _setup(0)
    _train(net, trainer, 1)
    assert trainer._update_on_kvstore is True and trainer._kvstore.type == "device"
    with pytest.raises(AssertionError, match="update_on_kvstore"):
        trainer.allreduce_grads()
    single = gluon.nn.Dense(2, in_units=2)
    single.initialize()
    t1 = gluon.Trainer(single.collect_params(), "sgd")
    t1._init_kvstore()
    assert t1._kvstore is None          # one device, kvstore='device': nothing to sum
    with pytest.raises(ValueError, match="update_on_kvstore=True needs a kvstore"):
        gluon.Trainer(single.collect_params(), "sgd", update_on_kvstore=True)._init_kvstore()


@pytest.mark.parametrize("on_kvstore", [True, False])
def test_states_resume_exactly_whoever_owns_the_optimizer(tmp_path, on_kvstore):
    net_a, ta = _setup(1, update_on_kvstore=on_kvstore)
    _train(net_a, ta, 4)
    net_b, tb = _setup(1, update_on_kvstore=on_kvstore)
    _train(net_b, tb, 2)
    f, p = str(tmp_path / "t.states"), str(tmp_path / "net.params")
    tb.save_states(f)
    net_b.save_parameters(p)
    net_c, tc = _setup(7, update_on_kvstore=on_kvstore)
    net_c.load_parameters(p, ctx=CTXS)
    tc.load_states(f)
    assert tc._update_on_kvstore is on_kvstore
    _train(net_c, tc, 2, skip=2)
    for ctx in CTXS:
        np.testing.assert_array_equal(net_c.weight.data(ctx).asnumpy(), net_a.weight.data(ctx).asnumpy())
