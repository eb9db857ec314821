"""Model parallelism of hybridized blocks: one graph whose stages run on different CPU devices
(mx.AttrScope(ctx_group=...) + hybridize(group2ctx=...), or Gluon children initialised on
different contexts). A partitioned block must compute what the same block computes on one
device: forward, gradients (each on its parameter's device) and SGD training steps."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon
from graphc.passes.partition import COPY

RTOL, ATOL = 1e-5, 1e-6


def _symbol_mlp(groups):
    """An MLP whose layer k is built under AttrScope(ctx_group=groups[k])."""
    data = mx.sym.var("data")
    h, sizes, n_in = data, [16, 12, 4], 8
    for k, (group, n) in enumerate(zip(groups, sizes)):
        with mx.AttrScope(ctx_group=group):
            w = mx.sym.var(f"fc{k}_weight", shape=(n, n_in))
            b = mx.sym.var(f"fc{k}_bias", shape=(n,))
            h = mx.sym.FullyConnected(h, w, b, num_hidden=n, name=f"fc{k}")
            if k < len(sizes) - 1:
                h = mx.sym.Activation(h, act_type="relu")
        n_in = n
    return data, h


def _symbol_block(groups):
    data, out = _symbol_mlp(groups)
    net = gluon.SymbolBlock(out, data)
    mx.random.seed(3)
    net.initialize(mx.init.Normal(0.5))
    return net


def _train(net, x, y, steps=3):
    """Loss values, per-parameter gradients after each step, and the final parameters."""
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.L2Loss()
    losses, grads = [], []
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        losses.append(loss.asnumpy())
        # (in parameter order: two nets' parameter names differ by their prefix)
        grads.append([p.grad(p.list_ctx()[0]).asnumpy() for p in net.collect_params().values()])
    params = [p.data(p.list_ctx()[0]).asnumpy() for p in net.collect_params().values()]
    return losses, grads, params


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL, err_msg=k)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _assert_same(u, v)
    else:
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("devices", [2, 3])
def test_attrscope_group2ctx_forward_and_training_match_one_device(devices):
    groups = ["stage1", "stage2", "stage3"] if devices == 3 else ["stage1", "stage2", "stage2"]
    group2ctx = {f"stage{k + 1}": mx.cpu(k) for k in range(devices)}
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.standard_normal((6, 8)))
    y = mx.nd.array(rng.standard_normal((6, 4)))
    ref_net, net = _symbol_block(groups), _symbol_block(groups)
    ref_net.hybridize()
    net.hybridize(group2ctx=group2ctx)
    out = net(x)
    assert out.context == mx.cpu(devices - 1)          # the last stage makes the output
    _assert_same(out.asnumpy(), ref_net(x).asnumpy())
    graph = str(net._cached_op.last.model_parallel.forward[False][0])
    assert graph.count(COPY) == devices - 1 and f"@cpu({devices - 1})" in graph
    _assert_same(_train(net, x, y), _train(ref_net, x, y))


def _gluon_mlp(ctxs):
    """Dense layers, layer k's parameters on ctxs[k]; the same values whatever the contexts."""
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(16, activation="relu", in_units=8), gluon.nn.Dense(12, activation="tanh", in_units=16),
                gluon.nn.Dense(4, in_units=12))
    for k, child in enumerate(net):
        mx.random.seed(11 + k)
        child.initialize(mx.init.Xavier(), ctx=ctxs[k])
    return net


@pytest.mark.parametrize("ctxs", [[0, 1, 1], [0, 1, 2], [1, 0, 1]])
def test_children_on_different_contexts_match_one_device(ctxs):
    rng = np.random.default_rng(1)
    x = mx.nd.array(rng.standard_normal((5, 8)))
    y = mx.nd.array(rng.standard_normal((5, 4)))
    ref_net = _gluon_mlp([mx.cpu(0)] * 3)
    net = _gluon_mlp([mx.cpu(k) for k in ctxs])
    ref_net.hybridize()
    net.hybridize()
    out = net(x)
    assert out.context == mx.cpu(ctxs[-1])
    _assert_same(out.asnumpy(), ref_net(x).asnumpy())
    with autograd.record():
        net(x).sum().backward()
    for child, k in zip(net, ctxs):
        for p in child.collect_params().values():
            assert p.grad(mx.cpu(k)).context == mx.cpu(k)       # gradients sit with their parameter
    _assert_same(_train(net, x, y), _train(ref_net, x, y))


def test_group2ctx_stage_that_returns_to_the_first_device():
    """cpu(0) -> cpu(1) -> cpu(0) plus a residual read of the first stage's value: the stages
    cannot be one program per device, and the result must still be exact."""
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.Activation(mx.sym.FullyConnected(data, mx.sym.var("w0", shape=(6, 6)), mx.sym.var("b0", shape=(6,)),
                                                    num_hidden=6, name="fc0"), act_type="tanh")
    with mx.AttrScope(ctx_group="b"):
        g = mx.sym.FullyConnected(h, mx.sym.var("w1", shape=(6, 6)), mx.sym.var("b1", shape=(6,)),
                                  num_hidden=6, name="fc1")
    with mx.AttrScope(ctx_group="a"):
        out = g + h
    rng = np.random.default_rng(2)
    x = mx.nd.array(rng.standard_normal((3, 6)))
    nets = []
    for flags in ({}, {"group2ctx": {"a": mx.cpu(0), "b": mx.cpu(1)}}):
        net = gluon.SymbolBlock(out, data)
        mx.random.seed(5)
        net.initialize(mx.init.Normal(0.3))
        net.hybridize(**flags)
        nets.append(net)
    assert nets[1](x).context == mx.cpu(0)
    _assert_same(nets[1](x).asnumpy(), nets[0](x).asnumpy())
    for net in nets:
        with autograd.record():
            (net(x) * x).sum().backward()
    _assert_same({k: p.grad().asnumpy() for k, p in nets[1].collect_params().items()},
                 {k: p.grad().asnumpy() for k, p in nets[0].collect_params().items()})


def test_data_parallel_parameters_are_not_partitioned():
    """Parameters on every device (data parallelism) keep the one-program-per-device path."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(3, in_units=4))
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    net.hybridize()
    net(mx.nd.ones((2, 4), ctx=mx.cpu(1))).wait_to_read()
    assert not getattr(net._cached_op.last, "model_parallel", None)


class _Staged(gluon.HybridBlock):
    """A Gluon block that places its own layers with AttrScope inside hybrid_forward."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc0 = gluon.nn.Dense(10, activation="relu", in_units=6)
            self.fc1 = gluon.nn.Dense(3, in_units=10)

    def hybrid_forward(self, F, x):
        with mx.AttrScope(ctx_group="first"):
            h = self.fc0(x)
        with mx.AttrScope(ctx_group="second"):
            return self.fc1(h)


def test_hybrid_forward_attrscope_with_group2ctx_moves_parameters_to_their_stage():
    rng = np.random.default_rng(4)
    x = mx.nd.array(rng.standard_normal((4, 6)))
    y = mx.nd.array(rng.standard_normal((4, 3)))
    nets = []
    for flags in ({}, {"group2ctx": {"first": mx.cpu(0), "second": mx.cpu(1)}}):
        mx.random.seed(9)
        net = _Staged()
        net.initialize(mx.init.Xavier())
        net.hybridize(**flags)
        nets.append(net)
    _assert_same(nets[1](x).asnumpy(), nets[0](x).asnumpy())
    assert nets[1].fc1.weight.list_ctx() == [mx.cpu(1)] and nets[1].fc0.weight.list_ctx() == [mx.cpu(0)]
    graph = str(nets[1]._cached_op.last.model_parallel.forward[False][0])
    assert graph.count(COPY) == 1                 # the activation only: the weights moved to cpu(1)
    _assert_same(_train(nets[1], x, y), _train(nets[0], x, y))
