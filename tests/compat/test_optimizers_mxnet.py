"""Every MXNet 1.9.1 optimizer against MXNet itself: 5 updates of fixed float32 weights (vector,
matrix, 3-D) with fixed gradients, rescale_grad, clip_gradient, wd and per-parameter
lr_mult/wd_mult, compared with what MXNet computed (optimizer_fixtures.npz, written by
mxnet_optimizer_fixtures.py under MXNet's Python). Plus a Trainer step per optimizer and SGLD's
noise statistics (its noise cannot match MXNet's generator)."""
import json
import os

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optimizer_fixtures.npz")
DATA = np.load(FIXTURE)
META = json.loads(DATA["meta"].tobytes().decode())
CASES = META["cases"]


class _Param:
    def __init__(self, lr_mult, wd_mult):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


def _flatten(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _flatten(s)]
    return [state.asnumpy()]


def _run(case):
    spec = CASES[case]
    params = spec["params"]
    opt = mx.optimizer.create(spec["optimizer"], param_dict={i: _Param(*META["mults"][i]) for i in params},
                              **spec["kwargs"])
    ws = {i: mx.nd.array(DATA[f"weight{i}"], dtype=spec["dtype"]) for i in params}
    states = {i: opt.create_state_multi_precision(i, ws[i]) for i in params}
    for step in range(META["steps"]):
        for i in params:
            opt.update_multi_precision(i, ws[i], mx.nd.array(DATA[f"grad{step}_{i}"], dtype=spec["dtype"]), states[i])
    return spec, ws, states


@pytest.mark.parametrize("case", sorted(CASES))
def test_five_steps_match_mxnet(case):
    spec, ws, states = _run(case)
    rtol, atol = (1e-6, 1e-7) if spec["dtype"] == "float32" else (1e-3, 1e-3)
    for i, w in ws.items():
        assert w.dtype == np.dtype(spec["dtype"])
        np.testing.assert_allclose(w.asnumpy(), DATA[f"{case}/w{i}"], rtol=rtol, atol=atol,
                                   err_msg=f"{case}: weight {i}")
        got = _flatten(states[i])
        assert len(got) == spec["n_states"][str(i)], f"{case}: state layout of parameter {i}"
        for j, s in enumerate(got):
            np.testing.assert_allclose(s, DATA[f"{case}/s{i}_{j}"], rtol=rtol * 10, atol=atol * 10,
                                       err_msg=f"{case}: state {j} of parameter {i}")


def test_every_mxnet_optimizer_is_registered():
    mxnet_191 = {"adadelta", "adagrad", "adam", "adamax", "ccsgd", "dcasgd", "ftml", "ftrl", "groupadagrad",
                 "lamb", "lars", "nadam", "nag", "rmsprop", "sgd", "sgld", "signum"}
    assert mxnet_191 <= set(mx.optimizer.Optimizer.opt_registry)
    for name in mxnet_191:
        assert isinstance(mx.optimizer.create(name.upper()), mx.optimizer.Optimizer)


@pytest.mark.parametrize("name", ["lamb", "lars", "ftml", "ftrl", "dcasgd", "sgld", "ccsgd", "groupadagrad",
                                  "nag", "adadelta", "adagrad", "adamax", "nadam", "signum", "rmsprop"])
def test_trainer_step(name):
    """A Dense layer trains a step under gluon.Trainer(..., name): loss goes down, weights move."""
    mx.random.seed(1)
    net = gluon.nn.Dense(3, use_bias=name != "groupadagrad", in_units=4)
    net.initialize(mx.init.Xavier())
    params = {"learning_rate": 0.05}
    if name == "rmsprop":
        params["centered"] = True
    trainer = gluon.Trainer(net.collect_params(), name, params)
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (8, 4)).astype(np.float32))
    y = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (8, 3)).astype(np.float32))
    loss_fn = gluon.loss.L2Loss()
    before = net.weight.data().asnumpy().copy()
    losses = []
    for _ in range(5 if name != "sgld" else 1):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(8)
        losses.append(float(loss.mean().asscalar()))
    after = net.weight.data().asnumpy()
    assert np.all(np.isfinite(after)) and not np.allclose(after, before)
    if name not in ("sgld", "signum"):
        assert losses[-1] < losses[0], f"{name}: loss {losses}"


def test_sgld_noise_moments():
    """SGLD: weight += -lr/2 * (g + wd * w) + N(0, sqrt(lr)); with zero gradient and wd the
    step is the noise alone, so its mean is ~0 and its std sqrt(lr), seeded by mx.random.seed."""
    lr = 0.04
    opt = mx.optimizer.create("sgld", learning_rate=lr)
    mx.random.seed(3)
    w = mx.nd.zeros((200, 250))
    opt.update(0, w, mx.nd.zeros((200, 250)), None)
    noise = w.asnumpy()
    assert noise.dtype == np.float32 and noise.shape == (200, 250)
    assert abs(noise.mean()) < 5 * np.sqrt(lr) / np.sqrt(noise.size)
    assert abs(noise.std() - np.sqrt(lr)) < 0.01 * np.sqrt(lr)
    mx.random.seed(3)
    w2 = mx.nd.zeros((200, 250))
    opt.update(0, w2, mx.nd.zeros((200, 250)), None)
    np.testing.assert_array_equal(w2.asnumpy(), noise)


def test_sgld_drift_follows_the_gradient():
    """The deterministic half: the mean step over many weights is -lr/2 * clip(rescale * g + ...)."""
    lr, g = 0.01, 3.0
    opt = mx.optimizer.create("sgld", learning_rate=lr, rescale_grad=0.5, clip_gradient=1.0)
    mx.random.seed(0)
    w = mx.nd.zeros((400, 400))
    opt.update(0, w, mx.nd.full((400, 400), g), None)
    assert abs(w.asnumpy().mean() - (-lr / 2 * 1.0)) < 5 * np.sqrt(lr) / 400


def test_groupadagrad_rejects_bad_input():
    opt = mx.optimizer.create("groupadagrad")
    with pytest.raises(ValueError, match="2-D weight"):
        opt.create_state(0, mx.nd.zeros((3,)))
    opt = mx.optimizer.create("groupadagrad", wd=0.1)
    w = mx.nd.zeros((2, 3))
    with pytest.raises(ValueError, match="weight decay"):
        opt.update(0, w, mx.nd.ones((2, 3)), opt.create_state(0, w))
