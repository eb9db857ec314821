"""float16 and float64 training as MXNet 1.9 does it (its GPU behaviour: MXNet's CPU build
refuses float16 GEMMs, graphc runs them): parameter dtypes after `net.cast`, BatchNorm's float32
statistics under float16 data, float16/float64 Dense, Conv+BatchNorm and LSTM training eager
and hybridized against a float32 run of the same weights, multi_precision master weights, and
dtype errors that name the user's layer."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn, rnn
from graphc.ops.errors import DTypeError

STEPS = 3


def _dense():
    net = nn.HybridSequential()
    net.add(nn.Dense(8, activation="relu"), nn.Dense(3))
    return net, (6, 5), (6, 3)


def _conv_bn():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Activation("relu"), nn.Dense(3))
    return net, (4, 3, 6, 6), (4, 3)


def _lstm():
    return rnn.LSTM(6), (5, 3, 4), (5, 3, 6)


NETS = {"dense": _dense, "conv_bn": _conv_bn, "lstm": _lstm}


def _twin_nets(make, dtype, seed=0):
    """Two copies of one architecture with the same starting weights: one cast to `dtype`, the
    float32 reference."""
    rng = np.random.default_rng(seed)
    nets = []
    for _ in range(2):
        net, xshape, yshape = make()
        net.initialize(mx.init.Xavier())
        net(nd.zeros(xshape))                           # finish deferred shapes
        nets.append(net)
    for p, q in zip(nets[0].collect_params().values(), nets[1].collect_params().values()):
        value = rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)
        if p.name.endswith("running_var"):
            value = np.abs(value) + 0.5
        p.set_data(nd.array(value))
        q.set_data(nd.array(value))
    nets[0].cast(dtype)
    return nets[0], nets[1], xshape, yshape


def _train(net, x, y, dtype, hybridize, multi_precision):
    if hybridize:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": 0.1, "momentum": 0.9, "multi_precision": multi_precision})
    loss_fn = gluon.loss.L2Loss()
    xs, ys = x.astype(dtype), y.astype(dtype)
    losses = []
    for _ in range(STEPS):
        with autograd.record():
            out = net(xs)
            loss = loss_fn(out, ys)
        loss.backward()
        trainer.step(x.shape[0])
        assert out.dtype == np.dtype(dtype), f"output is {np.dtype(out.dtype).name}, input {dtype}"
        losses.append(loss.asnumpy().astype(np.float64))
    return np.array(losses), [p.data().asnumpy().astype(np.float64) for p in net.collect_params().values()]


# float16 keeps ~3 significant digits; a few SGD steps with momentum compound that
TOLERANCE = {"float16": dict(rtol=3e-2, atol=3e-2), "float64": dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "hybridized"])
@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("name", list(NETS))
def test_low_and_high_precision_training_tracks_float32(name, dtype, hybridize):
    net, ref, xshape, yshape = _twin_nets(NETS[name], dtype)
    rng = np.random.default_rng(1)
    x, y = nd.array(rng.uniform(-1, 1, xshape)), nd.array(rng.uniform(-1, 1, yshape))
    losses, params = _train(net, x, y, dtype, hybridize, multi_precision=dtype == "float16")
    ref_losses, ref_params = _train(ref, x, y, "float32", hybridize, multi_precision=False)
    assert np.isfinite(losses).all()
    np.testing.assert_allclose(losses, ref_losses, **TOLERANCE[dtype])
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p, q, **TOLERANCE[dtype])
    assert ref_losses[-1].mean() < ref_losses[0].mean(), "the reference run did not learn: the test says nothing"


def test_eager_and_hybridized_float64_training_agree_to_float64_precision():
    runs = []
    for hybridize in (False, True):
        net, _, xshape, yshape = _twin_nets(_conv_bn, "float64", seed=3)
        rng = np.random.default_rng(2)
        x, y = nd.array(rng.uniform(-1, 1, xshape)), nd.array(rng.uniform(-1, 1, yshape))
        runs.append(_train(net, x, y, "float64", hybridize, multi_precision=False))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-9, atol=1e-12)
    for p, q in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)


def _dtypes(net):
    return {name.split("_", 1)[1]: np.dtype(p.dtype).name for name, p in net.collect_params().items()}


def test_cast_float16_keeps_batchnorm_parameters_and_statistics_in_float32():
    net, *_ = _conv_bn()
    net.initialize()
    net(nd.zeros((1, 3, 6, 6)))
    net.cast("float16")
    got = {k: v for k, v in net.collect_params().items()}
    for name, p in got.items():
        want = "float32" if "batchnorm" in name else "float16"
        assert np.dtype(p.dtype).name == want, f"{name}: {np.dtype(p.dtype).name}, MXNet keeps {want}"
        assert p.data().dtype == np.dtype(want)
    net.cast("float64")
    assert {np.dtype(p.data().dtype).name for p in net.collect_params().values()} == {"float64"}


def test_batchnorm_running_statistics_move_in_float32_under_float16_data():
    bn = nn.BatchNorm(in_channels=2)
    bn.initialize()
    bn.cast("float16")
    x = nd.array(np.random.default_rng(0).normal(3.0, 2.0, (64, 2, 3, 3))).astype("float16")
    with autograd.record():
        y = bn(x)
    y.backward()
    assert y.dtype == np.float16 and bn.running_mean.data().dtype == np.float32
    batch_mean = x.asnumpy().astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), 0.1 * batch_mean, rtol=1e-3)
    assert bn.gamma.grad().dtype == np.float32


def test_lstm_cast_and_dtype_argument_make_states_of_that_dtype():
    layer = rnn.LSTM(4, dtype="float64")
    layer.initialize()
    assert [np.dtype(s.dtype).name for s in layer.begin_state(2)] == ["float64", "float64"]
    layer.cast("float16")
    assert [np.dtype(s.dtype).name for s in layer.begin_state(2)] == ["float16", "float16"]
    x = nd.array(np.random.default_rng(0).uniform(-1, 1, (3, 2, 5))).astype("float16")
    out, states = layer(x, layer.begin_state(2))
    assert out.dtype == np.float16 and all(s.dtype == np.float16 for s in states)
    layer.hybridize()
    out2, _ = layer(x, layer.begin_state(2))
    np.testing.assert_allclose(out2.asnumpy(), out.asnumpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["rnn_tanh", "gru", "lstm"])
def test_float16_rnn_operator_matches_float32_forward_and_backward(kind):
    cls = {"rnn_tanh": lambda: rnn.RNN(5, activation="tanh"), "gru": lambda: rnn.GRU(5), "lstm": lambda: rnn.LSTM(5)}
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (7, 2, 3))
    grads = []
    for dtype in ("float32", "float16"):
        layer = cls[kind]()
        layer.initialize(mx.init.Uniform(0.3))
        layer(nd.zeros((7, 2, 3)))
        for i, p in enumerate(layer.collect_params().values()):
            p.set_data(nd.array(np.random.default_rng(i).uniform(-0.3, 0.3, p.shape)))
        layer.cast(dtype)
        xs = nd.array(x).astype(dtype)
        xs.attach_grad()
        with autograd.record():
            out = layer(xs)
        out.backward(nd.ones(out.shape, dtype=dtype))
        grads.append((out.asnumpy().astype(np.float64), xs.grad.asnumpy().astype(np.float64),
                      list(layer.collect_params().values())[0].grad().asnumpy().astype(np.float64)))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("optimizer", ["sgd", "nag", "adam"])
def test_multi_precision_keeps_float32_master_weights(optimizer):
    """1 + 1e-4 rounds back to 1 in float16: only a float32 master copy accumulates small steps."""
    finals = {}
    for mp in (False, True):
        net = nn.Dense(1, in_units=1, use_bias=False)
        net.initialize(mx.init.One())
        net.cast("float16")
        trainer = gluon.Trainer(net.collect_params(), optimizer,
                                {"learning_rate": 1e-4 if optimizer != "adam" else 1e-4, "multi_precision": mp})
        x = nd.ones((1, 1), dtype="float16")
        for _ in range(20):
            with autograd.record():
                loss = -net(x).sum()                 # gradient -1: each step adds the learning rate
            loss.backward()
            with pytest.warns(UserWarning, match="multi_precision") if (not mp and _ == 0) else _no_warning():
                trainer.step(1)
        assert net.weight.data().dtype == np.float16
        finals[mp] = float(net.weight.data().asnumpy().ravel()[0])
        if mp:
            master = trainer._updaters[0].states[0][0]
            assert master.dtype == np.float32
            assert master.asnumpy().ravel()[0] > 1.0015, "the float32 master copy did not accumulate"
    assert finals[False] == 1.0, "float16 accumulation was expected to lose every step"
    assert finals[True] > 1.001


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_batchnorm_refuses_float16_parameters_naming_the_input_as_mxnet():
    x = nd.ones((2, 3, 4, 4), dtype="float16")
    half = [nd.ones(3, dtype="float16") for _ in range(4)]
    with pytest.raises(DTypeError, match=r"BatchNorm: gamma is float16 but float16 data needs float32"):
        nd.BatchNorm(x, *half)


def test_hybridized_float64_data_into_a_float32_batchnorm_names_the_layer():
    net = nn.HybridSequential()
    net.add(nn.Dense(4, dtype="float64", in_units=3), nn.BatchNorm(in_channels=4))
    net.initialize()
    net.hybridize()
    with pytest.raises(DTypeError) as info:
        net(nd.ones((2, 3), dtype="float64"))
    msg = str(info.value)
    assert "BatchNorm" in msg and "batchnorm" in msg and "float64" in msg
    assert "broadcast" not in msg.splitlines()[0]


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "hybridized"])
def test_user_dtype_mismatch_names_the_users_layer(hybridize):
    net = nn.Dense(4, in_units=3)
    net.initialize()
    if hybridize:
        net.hybridize()
    with pytest.raises(DTypeError) as info:
        net(nd.ones((2, 3), dtype="float16"))
    first = str(info.value).splitlines()[0]
    assert first.startswith("FullyConnected") and "float16" in first and "float32" in first


def test_layernorm_refuses_mixed_dtypes_as_mxnet():
    x = nd.ones((2, 4), dtype="float16")
    with pytest.raises(DTypeError, match=r"LayerNorm.*data float16, gamma float32"):
        nd.LayerNorm(x, nd.ones(4), nd.zeros(4))
