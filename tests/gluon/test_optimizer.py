"""Optimizers: several steps of each update rule against an independent numpy transcription of
MXNet 1.9's formulas (float64, so the comparison is tight)."""
import math

import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon import optimizer as opt
from graphc.gluon import lr_scheduler, Parameter

SHAPE = (3, 4)
STEPS = 5


def _clip(g, c):
    return g if c is None or c < 0 else np.clip(g, -c, c)


def ref_sgd(w, grads, lr, wd, rescale, clip, momentum=0.0, **_):
    mom = np.zeros_like(w)
    for g in grads:
        g = _clip(rescale * g, clip)
        if momentum == 0:
            w = (1 - lr * wd) * w - lr * g
        else:
            mom = momentum * mom - lr * wd * w - lr * g
            w = w + mom
    return w


def ref_nag(w, grads, lr, wd, rescale, clip, momentum=0.0, **_):
    """MXNet 1.9.1's nag_mom_update with out=weight: the momentum's decay term reads the
    already-updated weight (checked against MXNet in tests/compat/test_optimizers_mxnet.py)."""
    if momentum == 0:
        return ref_sgd(w, grads, lr, wd, rescale, clip)
    mom = np.zeros_like(w)
    for g in grads:
        g = _clip(rescale * g, clip)
        w = w + momentum * momentum * mom - (1 + momentum) * lr * (g + wd * w)
        mom = momentum * mom - lr * (g + wd * w)
    return w


def ref_adam(w, grads, lr, wd, rescale, clip, beta1=0.9, beta2=0.999, epsilon=1e-8, **_):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = _clip(rescale * g + wd * w, clip)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        w = w - lr_t * m / (np.sqrt(v) + epsilon)
    return w


def ref_adamw(w, grads, lr, wd, rescale, clip, beta1=0.9, beta2=0.999, epsilon=1e-6, correct_bias=True, **_):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = _clip(rescale * g, clip)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        eta = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if correct_bias else lr
        w = w - eta * (m / (np.sqrt(v) + epsilon) + wd * w)
    return w


def ref_rmsprop(w, grads, lr, wd, rescale, clip, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False,
                clip_weights=None, **_):
    n, mg, delta = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        g = _clip(rescale * g + wd * w, clip)
        n = (1 - gamma1) * g * g + gamma1 * n
        if centered:
            mg = (1 - gamma1) * g + gamma1 * mg
            delta = gamma2 * delta - lr * g / np.sqrt(n - mg * mg + epsilon)
            w = w + delta
        else:
            w = w - lr * g / np.sqrt(n + epsilon)
        if clip_weights is not None:
            w = np.clip(w, -clip_weights, clip_weights)
    return w


def ref_adagrad(w, grads, lr, wd, rescale, clip, eps=1e-7, **_):
    h = np.zeros_like(w)
    for g in grads:
        g = _clip(rescale * g, clip)
        h = h + g * g
        w = w - lr * (g / np.sqrt(h + eps) + wd * w)
    return w


REFS = {"sgd": ref_sgd, "nag": ref_nag, "adam": ref_adam, "adamw": ref_adamw, "rmsprop": ref_rmsprop,
        "adagrad": ref_adagrad}

CONFIGS = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("nag", {"momentum": 0.9}),
    ("nag", {}),
    ("adam", {}),
    ("adam", {"beta1": 0.8, "epsilon": 1e-6}),
    ("adamw", {}),
    ("adamw", {"correct_bias": False}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True, "gamma2": 0.8}),
    ("rmsprop", {"clip_weights": 0.3}),
    ("adagrad", {}),
]


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{'-'.join(k)}" for n, k in CONFIGS])
@pytest.mark.parametrize("wd,rescale,clip", [(0.0, 1.0, None), (0.01, 0.5, 0.3)])
def test_update_matches_mxnet_formula(name, kw, wd, rescale, clip):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=SHAPE)
    grads = [rng.normal(size=SHAPE) for _ in range(STEPS)]
    lr = 0.05
    o = opt.create(name, learning_rate=lr, wd=wd, rescale_grad=rescale, clip_gradient=clip, **kw)
    weight = nd.array(w0, dtype="float64")
    state = o.create_state(0, weight)
    for g in grads:
        o.update(0, weight, nd.array(g, dtype="float64"), state)
    expected = REFS[name](w0.copy(), grads, lr, wd, rescale, clip, **kw)
    np.testing.assert_allclose(weight.asnumpy(), expected, rtol=1e-10, atol=1e-12)


def test_float32_update_agrees_with_float64_reference():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=SHAPE)
    grads = [rng.normal(size=SHAPE) for _ in range(STEPS)]
    o = opt.Adam(learning_rate=0.01, wd=0.001)
    weight = nd.array(w0, dtype="float32")
    state = o.create_state(0, weight)
    for g in grads:
        o.update(0, weight, nd.array(g, dtype="float32"), state)
    assert weight.dtype == np.float32
    np.testing.assert_allclose(weight.asnumpy(), ref_adam(w0, grads, 0.01, 0.001, 1.0, None), rtol=1e-5, atol=1e-6)


def test_update_is_in_place():
    o = opt.SGD(learning_rate=0.1, momentum=0.9)
    weight = nd.array(np.ones(SHAPE))
    buf = weight._data
    state = o.create_state(0, weight)
    o.update(0, weight, nd.ones(SHAPE), state)
    assert weight._data is buf
    np.testing.assert_allclose(buf, 0.9)


def test_lr_mult_and_wd_mult_from_param_dict():
    p = Parameter("w", shape=SHAPE, lr_mult=0.5, wd_mult=0.0)
    o = opt.SGD(learning_rate=0.2, wd=0.1, param_dict={0: p})
    assert o._get_lr(0) == pytest.approx(0.1)
    assert o._get_wd(0) == 0.0
    weight = nd.array(np.ones(SHAPE))
    o.update(0, weight, nd.ones(SHAPE), None)
    np.testing.assert_allclose(weight.asnumpy(), 1 - 0.1)


def test_scheduler_drives_the_learning_rate():
    sched = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    o = opt.SGD(lr_scheduler=sched)
    weight = nd.zeros((1,))
    lrs = []
    for _ in range(6):
        o.update(0, weight, nd.ones((1,)), None)
        lrs.append(o.learning_rate)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(UserWarning):
        o.set_learning_rate(0.1)


def test_learning_rate_overrides_the_scheduler_base():
    sched = lr_scheduler.FactorScheduler(step=10, base_lr=1.0)
    with pytest.warns(UserWarning):
        opt.SGD(learning_rate=0.3, lr_scheduler=sched)
    assert sched.base_lr == 0.3


def test_registry_and_defaults():
    assert isinstance(opt.create("SGD"), opt.SGD)
    assert opt.create("sgd").learning_rate == 0.01
    assert opt.create("adam").learning_rate == 0.001
    assert mx.optimizer.Adam is opt.Adam
    with pytest.raises(ValueError, match="Cannot find optimizer"):
        opt.create("nope")


def test_multi_precision_keeps_a_float32_master_copy():
    o = opt.SGD(learning_rate=0.1, multi_precision=True)
    weight = nd.array(np.ones(4), dtype="float16")
    state = o.create_state_multi_precision(0, weight)
    assert state[0].dtype == np.float32
    for _ in range(3):
        o.update_multi_precision(0, weight, nd.array(np.full(4, 1e-3), dtype="float16"), state)
    np.testing.assert_allclose(state[0].asnumpy(), 1 - 3e-4, rtol=1e-6)
    assert weight.dtype == np.float16


def test_updater_creates_state_once_per_index():
    o = opt.Adam()
    up = opt.get_updater(o)
    w = nd.ones((2,))
    up(0, nd.ones((2,)), w)
    first = up.states[0]
    up(0, nd.ones((2,)), w)
    assert up.states[0] is first
    assert o._index_update_count[0] == 2
