"""LBSGD against MXNet 1.9.1 (live, when bench/.venvs/mxnet exists) and against a plain numpy
statement of its rule: gradients summed over batch_scale updates, the weight moved every
batch_scale-th update by SGD with their mean and the warm-up (or LARS) rate multiplier."""
import json
import math
import os
import subprocess
import textwrap

import numpy as np
import pytest

import graphc as mx
from graphc import nd

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))

CONFIGS = [
    dict(learning_rate=0.1, momentum=0.9, wd=0.01, batch_scale=2, warmup_strategy="linear", warmup_epochs=1,
         updates_per_epoch=4),
    dict(learning_rate=0.05, momentum=0.0, wd=0.0, batch_scale=3, warmup_strategy="sqrt", warmup_epochs=2,
         updates_per_epoch=2, begin_epoch=1),
    dict(learning_rate=0.1, momentum=0.5, wd=0.001, batch_scale=2, warmup_strategy="lars", rescale_grad=0.5),
    dict(learning_rate=0.1, momentum=0.9, batch_scale=1, warmup_strategy="power2", warmup_epochs=1,
         updates_per_epoch=3, clip_gradient=0.3),
]
STEPS = 7


def _data():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(STEPS)]
    return w, grads


def _run_graphc(config):
    w, grads = _data()
    opt = mx.optimizer.create("lbsgd", **config)
    updater = mx.optimizer.get_updater(opt)
    weight = nd.array(w)
    out = []
    for g in grads:
        updater(0, nd.array(g), weight)
        out.append(weight.asnumpy().copy())
    return out


def _reference(config):
    """The rule written out plainly in float64."""
    w, grads = _data()
    w = w.astype(np.float64)
    lr, mom, wd = config["learning_rate"], config.get("momentum", 0.0), config.get("wd", 0.0)
    scale, strategy = config["batch_scale"], config["warmup_strategy"]
    ramp = config.get("warmup_epochs", 5) * config.get("updates_per_epoch", 32)
    count = config.get("begin_epoch", 0) * config.get("updates_per_epoch", 32)
    rescale, clip = config.get("rescale_grad", 1.0), config.get("clip_gradient")
    m, total, out = np.zeros_like(w), None, []
    for g in grads:
        g = g.astype(np.float64)
        total = g if total is None else total + g
        count += 1
        if count % scale == 0:
            mean = total / scale
            if strategy == "lars":
                w2, g2 = (w * w).sum(), (mean * mean).sum()
                mult = min(max(math.sqrt(w2 / (g2 + wd * w2 + 1e-18)), 0.01), 100.0)
            elif count >= ramp:
                mult = float(scale)
            else:
                f = count / ramp
                mult = 1 + (scale - 1) * {"linear": f, "power2": f * f, "sqrt": math.sqrt(f)}[strategy]
            step = mean * rescale
            if clip is not None:
                step = np.clip(step, -clip, clip)
            m = mom * m - lr * mult * (step + wd * w)
            w = w + m
            total = None
        out.append(w.copy())
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=[c["warmup_strategy"] for c in CONFIGS])
def test_lbsgd_follows_its_rule(config):
    for got, want in zip(_run_graphc(config), _reference(config)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_lbsgd_equals_mxnet():
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, mxnet as mx
        configs = json.loads(sys.argv[1])
        rng = np.random.default_rng(3)
        w = rng.standard_normal((4, 3)).astype(np.float32)
        grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range({STEPS})]
        result = []
        for config in configs:
            opt = mx.optimizer.create("lbsgd", **config)
            updater = mx.optimizer.get_updater(opt)
            weight = mx.nd.array(w)
            steps = []
            for g in grads:
                updater(0, mx.nd.array(g), weight)
                steps.append(weight.asnumpy().tolist())
            result.append(steps)
        print(json.dumps(result))
    """)
    proc = subprocess.run([MXNET_PYTHON, "-c", script, json.dumps(CONFIGS)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = json.loads(proc.stdout.strip().splitlines()[-1])
    for config, want in zip(CONFIGS, expected):
        for got, w in zip(_run_graphc(config), want):
            np.testing.assert_allclose(got, np.array(w, np.float32), rtol=1e-5, atol=1e-6)
