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

# a W10 child runs with its configuration's thread count (bench/systems/_w10.py sets this)
THREADS = int(os.environ.get("BENCH_CHILD_THREADS") or 2)
T_START = time.perf_counter()   # W6: import time of the framework = first call's start - this

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS"):
    os.environ[_k] = str(THREADS)
# MXNet: one engine worker whose operators use the THREADS OpenMP threads (issue 14: 2 workers
# x 2 OpenMP threads oversubscribed the 2 cores)
os.environ["MXNET_CPU_WORKER_NTHREADS"] = "1"
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
    "W4": ((1, 15), (1, 5)),      # blocks of W4_BLOCK images
    "W5": ((1, 8), (1, 3)),       # blocks of W5_BLOCK steps
    "W6": ((0, 3), (0, 1)),       # fresh processes (cold, then warm) per system
}
WARM_S = 2.0                   # warm-up time before every timed workload (time_blocks)
W2_BLOCK = 1000
W3_BLOCK = 20
W4_BLOCK = 10
W5_BLOCK = 5

# W4: ResNet-18 v1, batch 1, 3x224x224: 1.81 G multiply-adds = 3.63 GFLOP per image, the
# direct-convolution equivalent (graphc's Winograd 3x3 convolutions execute about 2.0 GFLOP)
W4_SHAPE = (1, 3, 224, 224)
W4_GFLOP = 3.63
RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))   # (channels, stride), 2 blocks each
W4_CLASSES = 1000

# W5: 2-layer LSTM language model (MXNet's / PyTorch's word_language_model, "small" size;
# no dropout, so that every system computes the same step)
W5_VOCAB, W5_EMBED, W5_HIDDEN, W5_LAYERS = 10000, 200, 200, 2
W5_SEQ, W5_BATCH = 35, 20
W5_LR = 20.0       # the examples' default learning rate
W5B_DROPOUT = 0.5  # W5b: word_language_model's dropout (embedding output, between the LSTM
                   # layers, before the decoder), training mode: each system draws its own masks
W5_CLIP = 0.25     # global-norm clip of the per-token mean gradient (PyTorch's example default);
                   # Gluon systems sum the loss and clip at W5_CLIP * W5_SEQ * W5_BATCH, as
                   # MXNet's example does, then step(W5_SEQ * W5_BATCH)


def parse_args(argv=None):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--variants", default="", help="comma list; empty = all")
    ap.add_argument("--child", action="store_true",
                    help="W6: this is the fresh process that measures one first call")
    return ap.parse_args(argv)


def reps(workload: str, quick: bool) -> tuple[int, int]:
    key = {"W1b": "W1", "W5b": "W5"}.get(workload, workload)
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


def check_weighted(y) -> float:
    """Fingerprint that also sees a permutation of the outputs: sum(y * cos(index))."""
    y = np.asarray(y, dtype=np.float64).ravel()
    return float(np.dot(y, np.cos(np.arange(y.size, dtype=np.float64))))


# --------------------------------------------------------------------- W4: ResNet-18 v1
def resnet18_shapes():
    """(kind, shapes) of ResNet-18 v1's parameters in MXNet model-zoo order (= the order of
    `collect_params()`, and of module registration in bench's torch model): conv weight;
    BatchNorm gamma, beta, running_mean, running_var; Dense weight, bias."""
    out = [("conv", (64, 3, 7, 7)), ("bn", 64)]
    cin = 64
    for ch, stride in RESNET18_STAGES:
        for b in range(2):
            s = stride if b == 0 else 1
            out += [("conv", (ch, cin, 3, 3)), ("bn", ch), ("conv", (ch, ch, 3, 3)), ("bn", ch)]
            if b == 0 and ch != cin:
                out += [("conv", (ch, cin, 1, 1)), ("bn", ch)]
            cin = ch
    out.append(("dense", (W4_CLASSES, 512)))
    return out


def resnet18_params() -> list:
    """Seeded ResNet-18 v1 parameters as one flat list of float32 arrays, in MXNet order:
    He-normal convolutions, BatchNorm statistics near (0, 1), Xavier-uniform Dense."""
    rng = np.random.default_rng(SEED + 40)
    flat = []
    for kind, shape in resnet18_shapes():
        if kind == "conv":
            fan_in = shape[1] * shape[2] * shape[3]
            flat.append((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        elif kind == "bn":
            flat.append(rng.uniform(0.8, 1.2, shape).astype(np.float32))          # gamma
            flat.append((rng.standard_normal(shape) * 0.1).astype(np.float32))    # beta
            flat.append((rng.standard_normal(shape) * 0.1).astype(np.float32))    # running_mean
            flat.append(rng.uniform(0.8, 1.6, shape).astype(np.float32))          # running_var
        else:
            lim = np.sqrt(6.0 / (shape[0] + shape[1]))
            flat.append(rng.uniform(-lim, lim, shape).astype(np.float32))
            flat.append((rng.standard_normal(shape[0]) * 0.01).astype(np.float32))
    return flat


def w4_input() -> np.ndarray:
    rng = np.random.default_rng(SEED + 41)
    return rng.standard_normal(W4_SHAPE, dtype=np.float32)


def assign_flat(targets, arrays, set_fn, what="parameters"):
    """set_fn(target, array) for each pair, after checking the count and every shape."""
    targets = list(targets)
    if len(targets) != len(arrays):
        raise ValueError(f"{what}: {len(targets)} in the model, {len(arrays)} seeded")
    for i, (t, a) in enumerate(zip(targets, arrays)):
        set_fn(t, a, i)


# --------------------------------------------------------------------- W5: LSTM LM
def lstm_lm_params() -> dict:
    """Seeded uniform(-0.1, 0.1) parameters (as the word_language_model examples initialise),
    by MXNet Gluon name suffix; gate order i, f, g(c), o in both MXNet and PyTorch."""
    rng = np.random.default_rng(SEED + 50)

    def u(*shape):
        return rng.uniform(-0.1, 0.1, shape).astype(np.float32)
    p = {"embedding.weight": u(W5_VOCAB, W5_EMBED)}
    for layer in range(W5_LAYERS):
        nin = W5_EMBED if layer == 0 else W5_HIDDEN
        p[f"l{layer}_i2h_weight"] = u(4 * W5_HIDDEN, nin)
        p[f"l{layer}_h2h_weight"] = u(4 * W5_HIDDEN, W5_HIDDEN)
        p[f"l{layer}_i2h_bias"] = u(4 * W5_HIDDEN)
        p[f"l{layer}_h2h_bias"] = u(4 * W5_HIDDEN)
    p["decoder.weight"] = u(W5_VOCAB, W5_HIDDEN)
    p["decoder.bias"] = np.zeros(W5_VOCAB, dtype=np.float32)
    return p


def lstm_lm_data():
    """Token ids (seq, batch) and next-token targets (seq, batch), int64."""
    rng = np.random.default_rng(SEED + 51)
    toks = rng.integers(0, W5_VOCAB, size=(W5_SEQ + 1, W5_BATCH)).astype(np.int64)
    return toks[:-1], toks[1:]


# --------------------------------------------------------------------- W6: fresh processes
def w6_children(script: str, variant_envs, quick: bool, timeout: float = 300.0):
    """Run `script --workload W6 --child --variants V` in fresh processes; variant_envs is a
    list of (variant, extra_env) run in that order (cold before warm). Returns
    {variant: [records]} and {variant: error}."""
    import subprocess
    recs, errors = {}, {}
    for variant, extra in variant_envs:
        env = dict(os.environ)
        env.update(extra)
        cmd = [sys.executable, script, "--workload", "W6", "--child", "--variants", variant]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            errors[variant] = f"first call timed out after {timeout:.0f} s"
            continue
        got = [json.loads(ln[len(PREFIX):]) for ln in p.stdout.splitlines()
               if ln.startswith(PREFIX)]
        sys.stderr.write(p.stderr[-3000:])
        if not got:
            tail = " | ".join(ln for ln in p.stderr.strip().splitlines()[-3:])
            errors[variant] = f"child exit {p.returncode}: {tail}"[:500]
        elif "error" in got[0]:
            errors[variant] = got[0]["error"]
        else:
            recs.setdefault(variant, []).append(got[0])
    return recs, errors


def w6_emit(system: str, runs: dict, errors: dict, order, note: str = "") -> None:
    """One record per variant: median first-call seconds over its fresh processes."""
    for variant in order:
        rs = runs.get(variant, [])
        if not rs:
            emit({"system": system, "variant": variant, "workload": "W6",
                  "error": errors.get(variant, "no measurement")})
            continue
        samples = [r["first_call_s"] for r in rs]
        rec = record(system, variant, "W6", samples,
                     import_s=median([r["import_s"] for r in rs]),
                     build_s=median([r["build_s"] for r in rs]),
                     check=rs[0].get("check"))
        if note or rs[0].get("note"):
            rec["note"] = (note + " " + rs[0].get("note", "")).strip()
        if variant in errors:
            rec["note"] = (rec.get("note", "") + f" (a further run failed: {errors[variant]})").strip()
        emit(rec)


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
    """Seconds per call, each sample the mean over a block of `block` calls, after warm-up
    blocks for at least WARM_S seconds: a process's first second ran slower on this machine
    (ResNet-18 batch 1 after its imperative shape-inference pass: 12-13 ms per image for the
    first ~0.5-1.5 s, then 8), and one warm-up block of 0.1 s measured that instead."""
    t0 = time.perf_counter()
    done = 0
    while done < warmup_blocks or time.perf_counter() - t0 < WARM_S:
        for _ in range(block):
            fn()
        done += 1
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
    elif workload == "W4":
        rec.update(unit="ms", median=med * 1e3, samples=[s * 1e3 for s in samples_s],
                   gflops=W4_GFLOP / med, calls_per_sample=W4_BLOCK)
    elif workload in ("W5", "W5b"):
        rec.update(unit="steps/s", median=1.0 / med, samples=[1.0 / s for s in samples_s],
                   steps_per_sample=W5_BLOCK)
    else:
        rec.update(unit="s", median=med, samples=samples_s)
    rec.update(extra)
    return rec


def run_variant(system: str, variant: str, workload: str, body, emit_fn=None, fields=None) -> None:
    """Run body() -> record dict; on any exception emit an error record instead. emit_fn
    replaces emit (W10: only rank 0 prints); fields are added to an error record."""
    emit = emit_fn or globals()["emit"]
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
        # where it was raised (a bare KeyError says little on its own)
        frames = traceback.extract_tb(e.__traceback__)
        if frames:
            f = frames[-1]
            here = os.path.dirname(os.path.abspath(__file__))
            where = os.path.relpath(f.filename, os.path.dirname(os.path.dirname(here))) \
                if f.filename.startswith("/") else f.filename
            msg += f" (at {where}:{f.lineno} in {f.name})"
        tb = traceback.format_exc(limit=12)
        print(tb, file=sys.stderr, flush=True)
        emit({"system": system, "variant": variant, "workload": workload,
              "error": msg[:500], "wall_s": time.perf_counter() - t0, **(fields or {})})


def wanted(args, variant: str) -> bool:
    return not args.variants or variant in args.variants.split(",")


def variants_in_children(script: str, workload: str, variants, quick: bool,
                         timeout: float = 900.0) -> None:
    """Run each variant in a fresh process of `script` and pass its records on, so that a
    per-process figure (W9's peak resident memory) belongs to that variant alone."""
    import subprocess
    for v in variants:
        cmd = [sys.executable, script, "--workload", workload, "--variants", v]
        if quick:
            cmd.append("--quick")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            emit({"system": os.path.basename(script).split("_")[0], "variant": v,
                  "workload": workload, "error": f"timed out after {timeout:.0f} s"})
            continue
        sys.stderr.write(p.stderr[-3000:])
        got = [ln for ln in p.stdout.splitlines() if ln.startswith(PREFIX)]
        for ln in got:
            print(ln, flush=True)
        if not got:
            tail = " | ".join(p.stderr.strip().splitlines()[-3:])
            emit({"system": os.path.basename(script).split("_")[0], "variant": v,
                  "workload": workload, "error": f"child exit {p.returncode}: {tail}"[:500]})
