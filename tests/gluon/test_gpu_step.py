"""The compiled optimizer step on GPU weights (gluon/gpu_step.py) against the CPU's compiled step
(fused_update.py, fused_optimizers.py) on the same values: every rule and setting the GPU step
takes, two steps, weights and states compared (the GPU may contract a multiply and an add, so
float32 rounding, not bits)."""
import numpy as np
import pytest

from graphc import nd
import graphc as mx
from graphc.gluon import gpu_step, optimizer as opt


@pytest.fixture(autouse=True)
def gpu(cuda_device):
    yield cuda_device


SHAPES = [(1,), (7, 3), (300,)]

CASES = [
    ("sgd", {"learning_rate": 0.1}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "clip_gradient": 0.5}),
    ("nag", {"learning_rate": 0.1, "momentum": 0.8, "wd": 0.01}),
    ("adam", {"learning_rate": 0.01, "wd": 0.001, "clip_gradient": 1.0}),
    ("adamw", {"learning_rate": 0.01, "wd": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "centered": True, "clip_weights": 0.4}),
    ("rmsprop", {"learning_rate": 0.01, "wd": 0.001}),
    ("adagrad", {"learning_rate": 0.1, "wd": 0.001}),
]


def run(name, params, ctx, weights, grads):
    o = opt.create(name, rescale_grad=0.5, **params)
    o.set_lr_mult({1: 0.5})
    updater = opt.get_updater(o)
    w = [nd.array(a, ctx=ctx) for a in weights]
    for step in range(2):
        g = [nd.array(a * (step + 1), ctx=ctx) for a in grads]
        if ctx.device_type == "gpu":
            assert gpu_step.gpu_update(updater, [0, 1, 2], g, w)
        else:
            updater([0, 1, 2], g, w)
    states = []
    for i in range(3):
        s = updater.states[i]
        states += [] if s is None else [x.asnumpy() for x in (s if isinstance(s, tuple) else (s,))]
    return [x.asnumpy() for x in w], states


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_gpu_step_equals_the_cpu_step(name, params):
    rs = np.random.RandomState(0)
    weights = [rs.randn(*s).astype(np.float32) for s in SHAPES]
    grads = [rs.randn(*s).astype(np.float32) for s in SHAPES]
    before = gpu_step.stats()["compiled_steps"]
    got_w, got_s = run(name, params, mx.gpu(0), weights, grads)
    assert gpu_step.stats()["compiled_steps"] - before == 2
    want_w, want_s = run(name, params, mx.cpu(), weights, grads)
    assert len(got_s) == len(want_s)
    for k, (a, b) in enumerate(zip(got_w + got_s, want_w + want_s)):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=f"array {k}")
    assert not np.allclose(got_w[2], weights[2])        # the step did move the weights


def test_the_gpu_step_refuses_what_it_cannot_compile():
    o = opt.create("sgd", learning_rate=0.1)
    w = [nd.array(np.ones(3), ctx=mx.gpu(0), dtype="float64")]
    g = [nd.array(np.ones(3), ctx=mx.gpu(0), dtype="float64")]
    assert gpu_step.gpu_rule(o, w, g, [None]) is None                   # float64
    w32 = [nd.array(np.ones(3), ctx=mx.gpu(0))]
    assert gpu_step.gpu_rule(opt.create("sgld"), w32, w32, [None]) is None    # (host noise: gpu_rules.py)
    assert gpu_step.gpu_rule(o, [nd.array(np.ones(3))], [nd.array(np.ones(3))], [None]) is None   # CPU arrays
