"""JAX's W9: ResNet-18 v1 (MXNet model-zoo structure, NCHW) training step, BatchNorm on batch
statistics, SGD with momentum and weight decay, as one jax.jit with parameters and momentum
donated; the seeded weights of _common.resnet18_params() (imported by jax_w.py)."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import _common as C
import _w7_9 as W

BN_EPS = 1e-5          # MXNet's and PyTorch's BatchNorm default


def _conv(x, w, stride, pad):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _bn(x, g, b):
    """Training-mode BatchNorm: the batch's mean and biased variance per channel."""
    mu = x.mean((0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean((0, 2, 3), keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + BN_EPS) * g[None, :, None, None] + b[None, :, None, None]


def split(flat):
    """(trainable, frozen) from the flat list: BatchNorm running statistics are frozen (they do
    not enter a training-mode forward), everything else trains."""
    train, frozen, i = [], [], 0
    for kind, _ in C.resnet18_shapes():
        if kind == "conv":
            train.append(flat[i])
            i += 1
        elif kind == "bn":
            train += flat[i:i + 2]
            frozen += flat[i + 2:i + 4]
            i += 4
        else:
            train += flat[i:i + 2]
            i += 2
    return train, frozen


def forward(p, x):
    """p: the trainable list in model-zoo order: conv w; BN gamma, beta; ...; dense w, b."""
    it = iter(p)

    def conv_bn(h, stride, pad, relu):
        h = _conv(h, next(it), stride, pad)
        h = _bn(h, next(it), next(it))
        return jax.nn.relu(h) if relu else h
    h = conv_bn(x, 2, 3, True)
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 3, 3), (1, 1, 2, 2),
                              ((0, 0), (0, 0), (1, 1), (1, 1)))
    cin = 64
    for ch, stride in C.RESNET18_STAGES:
        for b in range(2):
            s = stride if b == 0 else 1
            body = conv_bn(conv_bn(h, s, 1, True), 1, 1, False)
            short = conv_bn(h, s, 0, False) if (b == 0 and ch != cin) else h
            h = jax.nn.relu(body + short)
            cin = ch
    h = h.mean((2, 3))
    w, bias = next(it), next(it)
    return h @ w.T + bias


def loss_fn(p, x, y):
    logp = jax.nn.log_softmax(forward(p, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _step(p, mom, x, y):
    """PyTorch's SGD: buf = m·buf + (g + wd·p); p -= lr·buf (= MXNet's update for a fixed lr)."""
    loss, g = jax.value_and_grad(loss_fn)(p, x, y)
    mom = [W.W9_MOMENTUM * b + ga + W.W9_WD * a for b, ga, a in zip(mom, g, p)]
    p = [a - W.W9_LR * b for a, b in zip(p, mom)]
    return p, mom, loss


def w9(system, quick):
    def body():
        step = jax.jit(_step, donate_argnums=(0, 1))
        xn, yn = W.w9_data()
        x, y = jnp.asarray(xn), jnp.asarray(yn.astype(np.int32))
        train, _ = split(C.resnet18_params())
        st = {"p": [jnp.asarray(a) for a in train]}
        st["m"] = [jnp.zeros_like(a) for a in st["p"]]
        trace = W.LossTrace()

        def one():
            st["p"], st["m"], loss = step(st["p"], st["m"], x, y)
            trace.add(float(loss))
        t0 = time.perf_counter()
        one()
        setup = time.perf_counter() - t0
        warm, reps = W.reps("W9", quick)
        samples = C.time_blocks(one, W.W9_BLOCK, warm, reps)
        return W.record(system, "jit", "W9", samples, setup_s=setup, weights="seeded",
                        peak_rss_mib=W.peak_rss_mib(), **trace.fields())
    return body
