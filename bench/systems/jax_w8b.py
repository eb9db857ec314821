"""JAX's W8b: the Transformer LM step (forward, backward, Adam) as one jax.jit with the
parameters and optimiser state donated, on _w7_9's seeded flat parameter list (imported by
jax_w.py, which sets the platform first)."""
from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import _common as C
import _w7_9 as W

B1, B2, EPS = 0.9, 0.999, 1e-8      # Adam's defaults in PyTorch and MXNet


def _layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * g + b


def _encoder_layer(h, p, mask, heads, eps):
    wq, bq, wk, bk, wv, bv, wo, bo, g1, b1, w1, c1, w2, c2, g2, b2 = p
    bsz, t, d = h.shape
    dh = d // heads

    def split(y):
        return y.reshape(bsz, t, heads, dh).transpose(0, 2, 1, 3)
    q = split((h @ wq.T + bq) * (1.0 / math.sqrt(dh)))
    k, v = split(h @ wk.T + bk), split(h @ wv.T + bv)
    s = q @ k.transpose(0, 1, 3, 2)
    if mask is not None:        # W8a's encoder has none
        s = s + mask[:, None]
    a = jax.nn.softmax(s, axis=-1) @ v
    a = a.transpose(0, 2, 1, 3).reshape(bsz, t, d) @ wo.T + bo
    h = _layer_norm(h + a, g1, b1, eps)
    f = jax.nn.gelu(h @ w1.T + c1, approximate=False) @ w2.T + c2
    return _layer_norm(h + f, g2, b2, eps)


def loss_fn(flat, tokens, targets, mask):
    cfg = W.W8B
    h = flat[1][tokens] + flat[0][None]
    for i in range(cfg["layers"]):
        h = _encoder_layer(h, flat[2 + 16 * i:18 + 16 * i], mask, cfg["heads"], cfg["eps"])
    logits = h @ flat[-2].T + flat[-1]
    logp = jax.nn.log_softmax(logits.reshape(-1, cfg["vocab"]))
    return -jnp.mean(jnp.take_along_axis(logp, targets.reshape(-1, 1), axis=1))


def _step(flat, m, v, t, tokens, targets, mask):
    """One step with PyTorch's Adam (ε added after the bias correction)."""
    loss, g = jax.value_and_grad(loss_fn)(flat, tokens, targets, mask)
    t = t + 1
    m = [B1 * a + (1 - B1) * b for a, b in zip(m, g)]
    v = [B2 * a + (1 - B2) * b * b for a, b in zip(v, g)]
    c1, c2 = 1 - B1 ** t, 1 - B2 ** t
    flat = [p - W.W8B_LR / c1 * mm / (jnp.sqrt(vv / c2) + EPS) for p, mm, vv in zip(flat, m, v)]
    return flat, m, v, t, loss


def w8b(system, quick):
    def body():
        step = jax.jit(_step, donate_argnums=(0, 1, 2))
        tn, yn = W.w8b_data()
        tokens, targets = jnp.asarray(tn.astype(np.int32)), jnp.asarray(yn.astype(np.int32))
        mask = jnp.asarray(W.causal_mask(W.W8B["seq"]))
        flat = [jnp.asarray(a) for a in W.w8b_params()]
        st = {"p": flat, "m": [jnp.zeros_like(a) for a in flat],
              "v": [jnp.zeros_like(a) for a in flat], "t": jnp.asarray(0.0, jnp.float32)}
        trace = W.LossTrace()

        def one():
            st["p"], st["m"], st["v"], st["t"], loss = step(st["p"], st["m"], st["v"], st["t"],
                                                            tokens, targets, mask)
            trace.add(float(loss))
        t0 = time.perf_counter()
        one()
        setup = time.perf_counter() - t0
        warm, reps = W.reps("W8b", quick)
        samples = C.time_blocks(one, W.W8B_BLOCK, warm, reps)
        return W.record(system, "jit", "W8b", samples, setup_s=setup, weights="seeded",
                        **trace.fields())
    return body
