"""JAX's W8a: the BERT-base-shaped encoder's inference as one jax.jit, on _w7_9's seeded flat
parameter list (the layer is jax_w8b's, without a mask; imported by jax_w.py, which sets the
platform first). The output fingerprint must agree with the other systems'."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import _common as C
import _w7_9 as W
from jax_w8b import _encoder_layer


def encoder(flat, x):
    cfg = W.W8A
    for i in range(cfg["layers"]):
        x = _encoder_layer(x, flat[16 * i:16 * i + 16], None, cfg["heads"], cfg["eps"])
    return x


def w8a(system, quick):
    def body():
        flat = [jnp.asarray(a) for a in W.w8a_params()]
        if len(flat) != 16 * W.W8A["layers"]:
            raise ValueError(f"W8a: {len(flat)} seeded arrays, expected {16 * W.W8A['layers']}")
        x = jnp.asarray(W.w8a_input())
        fn = jax.jit(encoder)
        t0 = time.perf_counter()
        out = np.asarray(fn(flat, x).block_until_ready())
        setup = time.perf_counter() - t0
        warm, reps = W.reps("W8a", quick)
        samples = C.time_blocks(lambda: fn(flat, x).block_until_ready(), W.W8A_BLOCK, warm, reps)
        return W.record(system, "jit", "W8a", samples, check=C.check_weighted(out),
                        setup_s=setup, weights="seeded")
    return body
