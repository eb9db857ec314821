"""The optimizers whose GPU update only the GPU compiles (gluon/gpu_rules.py: AdaDelta, Adamax,
Nadam, Signum, FTML, Ftrl, DCASGD, LARS): a few steps on gpu(0) equal the numpy update on cpu(0),
weights and states, and a step moves no weight, gradient or state through the host."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon import gpu_step
from graphc.gluon.optimizer import Updater

SHAPES = [(5, 3), (7,), (2, 2, 3)]

CASES = [
    ("adadelta", {"rho": 0.9, "epsilon": 1e-5, "wd": 0.01}),
    ("adadelta", {"clip_gradient": 0.3}),
    ("adamax", {"learning_rate": 0.01, "wd": 0.02}),
    ("adamax", {"learning_rate": 0.01, "clip_gradient": 0.5}),
    ("nadam", {"learning_rate": 0.01, "wd": 0.01}),
    ("signum", {"learning_rate": 0.01, "momentum": 0.9, "wd": 0.01, "wd_lh": 0.02}),
    ("signum", {"learning_rate": 0.01, "momentum": 0.0, "wd": 0.01}),
    ("ftml", {"learning_rate": 0.05, "wd": 0.01}),
    ("ftrl", {"learning_rate": 0.1, "lamda1": 0.01, "wd": 0.01}),
    ("dcasgd", {"learning_rate": 0.05, "momentum": 0.0, "wd": 0.01}),
    ("dcasgd", {"learning_rate": 0.05, "momentum": 0.9, "clip_gradient": 0.4}),
    ("lars", {"learning_rate": 0.1, "momentum": 0.9, "eta": 0.01, "wd": 0.01}),
    ("lars", {"learning_rate": 0.1, "momentum": 0.0, "clip_gradient": 0.5, "eta": 0.01}),
    ("lars", {"momentum": 0.9, "eta": 0.01,     # (a scheduler per run: it keeps state)
              "lr_scheduler": lambda: mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.1)}),
]
# what a step may download: LARS's trust ratio takes ||w|| and ||grad|| (one float32 each)
DOWNLOADS = {"lars": 2 * 4 * len(SHAPES)}


def _flat_states(state):
    if state is None:
        return []
    if isinstance(state, (list, tuple)):
        return [a for s in state for a in _flat_states(s)]
    return [state]


def _run(name, kwargs, ctx, steps, weights0, grads, on_step=None):
    kwargs = {k: v() if callable(v) else v for k, v in kwargs.items()}
    opt = mx.optimizer.create(name, rescale_grad=0.5, **kwargs)
    updater = Updater(opt)
    idx = list(range(len(weights0)))
    ws = [nd.array(w, ctx=ctx) for w in weights0]
    for t in range(steps):
        gs = [nd.array(g, ctx=ctx) for g in grads[t]]
        if on_step is not None:
            on_step(t)
        if ctx.device_type == "gpu":
            assert gpu_step.gpu_update(updater, idx, gs, ws), f"{name}: no compiled GPU rule applied"
        else:
            updater(idx, gs, ws)
    return ws, [_flat_states(updater.states[i]) for i in idx]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_gpu_update_equals_the_cpu_and_stays_on_the_device(cuda_device, host_traffic, name, kwargs):
    rs = np.random.RandomState(7)
    steps = 3
    weights0 = [rs.randn(*s).astype(np.float32) for s in SHAPES]
    grads = [[rs.randn(*s).astype(np.float32) for s in SHAPES] for _ in range(steps)]
    cpu_w, cpu_s = _run(name, kwargs, mx.cpu(0), steps, weights0, grads)

    counted = []

    def on_step(t):
        if t == steps - 1:          # the last step: gradients are uploaded by now, count the rest
            counted.append(host_traffic(cuda_device))

    before = gpu_step.stats()
    gpu_w, gpu_s = _run(name, kwargs, mx.gpu(0), steps, weights0, grads, on_step)
    (moved,) = counted
    after = gpu_step.stats()
    assert after["compiled_steps"] - before["compiled_steps"] == steps
    assert after["host_updates"] == before["host_updates"]
    coefs = 6 * 4 * len(SHAPES)            # at most six float32 coefficients per parameter
    assert moved["dtoh"] == DOWNLOADS.get(name, 0), moved
    assert moved["htod"] <= coefs, moved

    for c, g in zip(cpu_w, gpu_w):
        assert g.context == mx.gpu(0)
        np.testing.assert_allclose(g.asnumpy(), c.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name} weight")
    for cs, gs in zip(cpu_s, gpu_s):
        assert len(cs) == len(gs)
        for c, g in zip(cs, gs):
            assert g.context == mx.gpu(0), f"{name}: a state was created on {g.context}"
            np.testing.assert_allclose(g.asnumpy(), c.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name} state")


@pytest.mark.parametrize("name,kwargs,downloads", [
    ("sgld", {"learning_rate": 0.01, "wd": 0.01}, 0),
    ("sgld", {"learning_rate": 0.01, "clip_gradient": 0.3}, 0),
    ("lamb", {"learning_rate": 0.01, "wd": 0.01}, 2 * 4),       # its two trust-ratio norms
    pytest.param("lamb", {"learning_rate": 0.01, "clip_gradient": 0.3, "bias_correction": False,
                          "lower_bound": 0.5, "upper_bound": 2.0}, 2 * 4, marks=pytest.mark.slow),
    ("groupadagrad", {"learning_rate": 0.1, "clip_gradient": 0.8}, 0),
    ("lbsgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "batch_scale": 2,
               "warmup_epochs": 1, "updates_per_epoch": 4}, 0),
    pytest.param("lbsgd", {"learning_rate": 0.1, "warmup_strategy": "lars", "clip_gradient": 0.5}, 2 * 4,
                 marks=pytest.mark.slow),
])
def test_operator_written_updates_run_on_the_device(cuda_device, monkeypatch, host_traffic, name, kwargs, downloads):
    """LAMB, GroupAdaGrad, LBSGD and SGLD have no one-kernel rule: the Trainer's fallback (the Updater)
    runs their GPU update as eager GPU operators (gluon/optimizers_on_device.py). Seeded, SGLD's noise is
    the CPU's; only LAMB's norms (LBSGD-lars's sums) come down, only SGLD's noise goes up."""
    shapes = [(5, 3), (5, 3)]         # (each eager operator compiles once per shape)
    rs = np.random.RandomState(3)
    weights0 = [rs.randn(*s).astype(np.float32) for s in shapes]
    grads = [[rs.randn(*s).astype(np.float32) for s in shapes] for _ in range(3)]
    results = []
    for ctx in (mx.cpu(0), mx.gpu(0)):
        mx.random.seed(11)
        opt = mx.optimizer.create(name, rescale_grad=0.5, **kwargs)
        updater = Updater(opt)
        idx = list(range(len(shapes)))
        ws = [nd.array(w, ctx=ctx) for w in weights0]
        for t, step_grads in enumerate(grads):
            gs = [nd.array(g, ctx=ctx) for g in step_grads]
            if ctx.device_type == "gpu":
                assert not gpu_step.gpu_update(updater, idx, gs, ws)      # (no compiled rule)
                if t == len(grads) - 1:
                    moved = host_traffic(cuda_device)
            updater(idx, gs, ws)
        results.append((ws, [_flat_states(updater.states[i]) for i in idx]))
    monkeypatch.undo()
    assert moved["dtoh"] == downloads * len(shapes), moved
    noise = sum(w.nbytes for w in weights0) if name == "sgld" else 0
    assert noise <= moved["htod"] <= noise + 64 * len(shapes), moved    # (and an operator's scalars)
    (cpu_w, cpu_s), (gpu_w, gpu_s) = results
    for c, g in zip(cpu_w + sum(cpu_s, []), gpu_w + sum(gpu_s, [])):
        assert g.context == mx.gpu(0)
        np.testing.assert_allclose(g.asnumpy(), c.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("optimizer,params", [("adadelta", {"learning_rate": 1.0, "wd": 1e-3}),
                                              ("nadam", {"learning_rate": 0.01})])
def test_trainer_steps_with_a_gpu_only_rule_train_as_on_the_cpu(cuda_device, optimizer, params):
    from graphc import autograd, gluon
    from graphc.gluon import nn
    rs = np.random.RandomState(1)
    data = [(rs.randn(8, 6).astype(np.float32), rs.randint(0, 3, 8).astype(np.float32)) for _ in range(2)]
    results = []
    for ctx in (mx.cpu(0), mx.gpu(0)):
        mx.random.seed(0)
        net = nn.HybridSequential()
        net.add(nn.Dense(16, activation="relu", in_units=6), nn.Dense(3, in_units=16))
        net.initialize(mx.init.Xavier(), ctx=ctx)
        lossf = gluon.loss.SoftmaxCrossEntropyLoss()
        trainer = gluon.Trainer(net.collect_params(), optimizer, dict(params))
        before = gpu_step.stats()["compiled_steps"]
        for x, y in data:
            with autograd.record():
                l = lossf(net(nd.array(x, ctx=ctx)), nd.array(y, ctx=ctx))
            l.backward()
            trainer.step(8)
        if ctx.device_type == "gpu":
            assert gpu_step.stats()["compiled_steps"] - before == len(data)
        results.append([p.data(ctx).asnumpy() for p in net.collect_params().values()])
    for c, g in zip(*results):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)
