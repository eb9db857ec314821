"""Run by tests/reliability/test_compile_cache.py in a fresh process (so a crash in loaded code
fails a test instead of killing pytest): build a small hybridized MLP with fixed parameters,
run it once and print one JSON line: where the program came from, the largest difference from
the numpy reference, and how many programs' machine code is loaded.

    python cache_child.py run ACT HIDDEN    ACT: relu | tanh | sigmoid, HIDDEN: units of layer 1
    python cache_child.py churn CYCLES N    CYCLES create/run/delete cycles over N model sizes
"""
import gc
import json
import sys
import weakref

import numpy as np

import graphc as mx
from graphc.gluon import nn
from graphc.runtime import cache

IN, OUT, BATCH = 8, 4, 3
ACTS = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}


def make(act: str, hidden: int):
    """(block, numpy reference output, input) with parameters drawn from a fixed seed."""
    rng = np.random.default_rng(hidden)
    w1 = rng.standard_normal((hidden, IN)).astype(np.float32)
    b1 = rng.standard_normal(hidden).astype(np.float32)
    w2 = rng.standard_normal((OUT, hidden)).astype(np.float32)
    b2 = rng.standard_normal(OUT).astype(np.float32)
    x = rng.standard_normal((BATCH, IN)).astype(np.float32)
    net = nn.HybridSequential(prefix="mlp_")      # the same names (so cache keys) in every process
    with net.name_scope():
        net.add(nn.Dense(hidden, activation=act, in_units=IN), nn.Dense(OUT, in_units=hidden))
    net.initialize()
    by_shape = {w1.shape: w1, b1.shape: b1, w2.shape: w2, b2.shape: b2}
    for p in net.collect_params().values():
        p.set_data(mx.nd.array(by_shape[p.shape]))
    net.hybridize()
    ref = ACTS[act](x @ w1.T + b1) @ w2.T + b2
    return net, ref, x


def run(act: str, hidden: int) -> dict:
    net, ref, x = make(act, hidden)
    y = net(mx.nd.array(x)).asnumpy()
    program = net._cached_op.last.forward[1]
    return {"source": program.source, "err": float(np.max(np.abs(y - ref))), "live": cache.live_engines()}


def churn(cycles: int, sizes: int) -> dict:
    """Create, run and delete hybridized blocks; report the most programs ever loaded at once
    after a deletion, and whether every deleted block's program was freed."""
    most, leaked, sources, worst = 0, 0, {}, 0.0
    for i in range(cycles):
        net, ref, x = make("relu", 8 + i % sizes)
        y = net(mx.nd.array(x)).asnumpy()
        worst = max(worst, float(np.max(np.abs(y - ref))))
        program = net._cached_op.last.forward[1]
        sources[program.source] = sources.get(program.source, 0) + 1
        gone = weakref.ref(program)
        del net, program
        gc.collect()
        leaked += gone() is not None
        most = max(most, cache.live_engines())
    return {"most_live": most, "leaked_programs": leaked, "sources": sources, "err": worst}


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "run":
        result = run(sys.argv[2], int(sys.argv[3]))
    else:
        result = churn(int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(result))
