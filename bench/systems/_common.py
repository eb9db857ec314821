"""Shared helpers for the per-system benchmark scripts (stdlib + numpy only).

Each bench/systems/<system>_w.py runs inside its own system's virtualenv as
    python bench/systems/<system>_w.py --workload W1 [--quick]
and prints one line per measured variant:  @@BENCH {json}
A variant that fails prints {"error": "..."} instead of a median; the script goes on.

Import this module FIRST (before numpy or any framework): it pins every thread pool to
THREADS threads through the environment.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback

THREADS = 2

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS", "MXNET_CPU_WORKER_NTHREADS"):
    os.environ[_k] = str(THREADS)
os.environ.setdefault("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

N_W1 = 1 << 24          # elements for W1 / W1b
N_TRIAD = 1 << 25       # elements for the STREAM triad
MLP = (784, 512, 512, 10)
BATCH_W3 = 256
LR = 0.1
SEED = 0

PREFIX = "@@BENCH "

# Repeat counts: (warm-up, repeats) per workload; --quick uses the second tuple.
REPEATS = {
    "W1": ((3, 15), (2, 5)),      # calls; one call is one sample
    "W2": ((1, 15), (1, 5)),      # blocks of W2_BLOCK calls
    "W3": ((1, 10), (1, 4)),      # blocks of W3_BLOCK steps
}
W2_BLOCK = 1000
W3_BLOCK = 20


def parse_args(argv=None):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--variants", default="", help="comma list; empty = all")
    return ap.parse_args(argv)


def reps(workload: str, quick: bool) -> tuple[int, int]:
    key = "W1" if workload in ("W1", "W1b") else workload
    full, q = REPEATS[key]
    return q if quick else full


def emit(rec: dict) -> None:
    print(PREFIX + json.dumps(rec), flush=True)


def median(xs):
    return float(statistics.median(xs))


# --------------------------------------------------------------------- data
def w1_input() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return rng.standard_normal(N_W1, dtype=np.float32)


def w1_reference(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return np.tanh(x64 * 0.5 + 1.0) * (1.0 / (1.0 + np.exp(-x64))) + 0.1 * x64


def w1b_reference(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return np.maximum(x64 * 0.5 + 1.0, 0.0) * x64 - 0.25


def check_value(y) -> float:
    """A cheap fingerprint of an output, comparable across systems."""
    y = np.asarray(y, dtype=np.float64).ravel()
    return float(y[:4096].sum() + y[-4096:].sum())


def mlp_weights():
    """Seeded Xavier-uniform weights, layout (in, out), and zero biases."""
    rng = np.random.default_rng(SEED + 1)
    ws, bs = [], []
    for fan_in, fan_out in zip(MLP[:-1], MLP[1:]):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        ws.append(rng.uniform(-lim, lim, size=(fan_in, fan_out)).astype(np.float32))
        bs.append(np.zeros(fan_out, dtype=np.float32))
    return ws, bs


def mlp_inputs(batch: int):
    rng = np.random.default_rng(SEED + 2 + batch)
    x = rng.standard_normal((batch, MLP[0]), dtype=np.float32)
    y = rng.integers(0, MLP[-1], size=batch).astype(np.int64)
    return x, y


def mlp_forward_np(x, ws, bs):
    h = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w + b
        if i < len(ws) - 1:
            h = np.maximum(h, 0)
    return h


def softmax_ce_np(logits, labels) -> float:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float((lse - z[np.arange(len(labels)), labels]).mean())


# --------------------------------------------------------------------- timing
def time_calls(fn, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of fn() (fn must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def time_blocks(fn, block: int, warmup_blocks: int, repeats: int) -> list[float]:
    """Seconds per call, each sample the mean over a block of `block` calls."""
    for _ in range(warmup_blocks):
        for _ in range(block):
            fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(block):
            fn()
        out.append((time.perf_counter() - t0) / block)
    return out


def record(system: str, variant: str, workload: str, samples_s: list[float], **extra) -> dict:
    """Build the result record from per-call seconds, in the workload's unit."""
    med = median(samples_s)
    rec = {"system": system, "variant": variant, "workload": workload,
           "n_samples": len(samples_s)}
    if workload in ("W1", "W1b"):
        rec.update(unit="ms", median=med * 1e3, samples=[s * 1e3 for s in samples_s],
                   gbps=8.0 * N_W1 / med / 1e9, calls_per_sample=1)
    elif workload == "W2":
        rec.update(unit="us", median=med * 1e6, samples=[s * 1e6 for s in samples_s],
                   calls_per_sample=W2_BLOCK)
    elif workload == "W3":
        rec.update(unit="steps/s", median=1.0 / med, samples=[1.0 / s for s in samples_s],
                   steps_per_sample=W3_BLOCK)
    else:
        rec.update(unit="s", median=med, samples=samples_s)
    rec.update(extra)
    return rec


def run_variant(system: str, variant: str, workload: str, body) -> None:
    """Run body() -> record dict; on any exception emit an error record instead."""
    t0 = time.perf_counter()
    try:
        rec = body()
        rec.setdefault("setup_s", None)
        rec["wall_s"] = time.perf_counter() - t0
        emit(rec)
    except BaseException as e:  # noqa: BLE001 - harness must survive any failure
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = f"{type(e).__name__}: {e}".strip()
        tb = traceback.format_exc(limit=6)
        print(tb, file=sys.stderr, flush=True)
        emit({"system": system, "variant": variant, "workload": workload,
              "error": msg[:500], "wall_s": time.perf_counter() - t0})


def wanted(args, variant: str) -> bool:
    return not args.variants or variant in args.variants.split(",")
