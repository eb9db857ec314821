"""W10 (data-parallel training) pieces shared by graphc_w10.py and torch_w10.py: the CNN's
structure and seeded weights, the seeded batches, the configurations and a timer that every
rank runs the same number of times.

The configurations split 2 cores two ways at the same global batch: "2x1" = 2 ranks of 1 thread
(graphc: mpiexec -n 2 and kvstore 'dist_sync'; PyTorch: DDP over gloo), "1x2" = 1 process of 2
threads, and "1x1" = 1 process of 1 thread, the baseline of the scaling efficiency
(steps/s of a configuration / (2 x steps/s of 1x1)). Each configuration is a child process (two
for 2x1) started with CHILD_THREADS_ENV set; _common reads it to pin every thread pool.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

import _common as C

CHILD_THREADS_ENV = "BENCH_CHILD_THREADS"
CONFIGS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}        # name -> (processes, threads each)
CONFIG_LABEL = {"1x1": "1 process × 1 thread", "1x2": "1 process × 2 threads",
                "2x1": "2 ranks × 1 thread"}

# the image example's CNN (examples/image_classification.py resnet(), full width) and its batch
CNN_WIDTHS = (16, 32, 64)
CNN_BATCH = 64
CNN_IMAGE = (1, 16, 16)
CNN_CLASSES = 10
MLP_BATCH = C.BATCH_W3                   # 256, W3's
BLOCK = {"mlp": 10, "cnn": 5}            # steps per timed sample
ALLREDUCE_BLOCK = 20                     # all-reduces per timed sample
REPEATS = ((2, 8), (1, 3))               # (warm-up blocks, samples); --quick the second
CHECK_STEPS = 3                          # steps whose global losses are reported before timing


def reps(quick):
    return REPEATS[1] if quick else REPEATS[0]


def cnn_shapes():
    """(kind, shape) of the CNN's parameters in MXNet's collect_params order: the stem conv and
    BatchNorm, per BasicBlock body conv, BN, conv, BN then (stride 2) the shortcut conv, BN;
    Dense weight, bias."""
    out = [("conv", (CNN_WIDTHS[0], CNN_IMAGE[0], 3, 3)), ("bn", CNN_WIDTHS[0])]
    cin = CNN_WIDTHS[0]
    for i, ch in enumerate(CNN_WIDTHS):
        out += [("conv", (ch, cin, 3, 3)), ("bn", ch), ("conv", (ch, ch, 3, 3)), ("bn", ch)]
        if i > 0:
            out += [("conv", (ch, cin, 1, 1)), ("bn", ch)]
        cin = ch
    out.append(("dense", (CNN_CLASSES, cin)))
    return out


def cnn_params():
    """Seeded parameters as one flat list in that order (BatchNorm: gamma, beta, running mean,
    running variance)."""
    rng = np.random.default_rng(C.SEED + 100)
    flat = []
    for kind, shape in cnn_shapes():
        if kind == "conv":
            fan_in = int(np.prod(shape[1:]))
            flat.append((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        elif kind == "bn":
            flat.append(rng.uniform(0.8, 1.2, shape).astype(np.float32))
            flat.append((rng.standard_normal(shape) * 0.1).astype(np.float32))
            flat.append(np.zeros(shape, np.float32))
            flat.append(np.ones(shape, np.float32))
        else:
            lim = np.sqrt(6.0 / (shape[0] + shape[1]))
            flat.append(rng.uniform(-lim, lim, shape).astype(np.float32))
            flat.append(np.zeros(shape[0], np.float32))
    return flat


def cnn_inputs():
    rng = np.random.default_rng(C.SEED + 101)
    x = rng.standard_normal((CNN_BATCH,) + CNN_IMAGE, dtype=np.float32)
    y = rng.integers(0, CNN_CLASSES, size=CNN_BATCH).astype(np.int64)
    return x, y


def global_batch(case):
    """(x, y, global batch size) of a case: W3's batch for the MLP, the CNN's own."""
    if case == "mlp":
        x, y = C.mlp_inputs(MLP_BATCH)
        return x, y, MLP_BATCH
    x, y = cnn_inputs()
    return x, y, CNN_BATCH


def shard(x, y, rank, ranks):
    """Rank `rank`'s contiguous part of the global batch (x, y)."""
    n = len(x) // ranks
    return x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]


def mlp_param_shapes():
    """The MLP's parameter buffers (out, in) weights and biases: what W10's all-reduce sums."""
    shapes = []
    for fan_in, fan_out in zip(C.MLP[:-1], C.MLP[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


def allreduce_buffers():
    rng = np.random.default_rng(C.SEED + 102)
    return [rng.standard_normal(s, dtype=np.float32) for s in mlp_param_shapes()]


def time_fixed(fn, block, quick):
    """Seconds per call, each sample the mean over `block` calls, after a fixed number of warm-up
    blocks: every rank of a job calls fn the same number of times (time_blocks' time-bounded
    warm-up would let ranks disagree on the count and wait on each other forever)."""
    warm, n = reps(quick)
    for _ in range(warm * block):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        for _ in range(block):
            fn()
        out.append((time.perf_counter() - t0) / block)
    return out


def training_record(system, variant, case, config, samples, losses, **extra):
    rec = {"system": system, "variant": variant, "workload": "W10", "case": case, "config": config,
           "unit": "steps/s", "median": 1.0 / C.median(samples), "samples": [1.0 / s for s in samples],
           "n_samples": len(samples), "steps_per_sample": BLOCK[case], "losses": losses,
           "first_loss": losses[0] if losses else None}
    rec.update(extra)
    return rec


def allreduce_record(system, variant, samples, nbytes, **extra):
    rec = {"system": system, "variant": variant, "workload": "W10", "case": "allreduce", "config": "2x1",
           "unit": "GB/s", "median": nbytes / C.median(samples) / 1e9,
           "samples": [nbytes / s / 1e9 for s in samples], "n_samples": len(samples), "bytes": nbytes,
           "calls_per_sample": ALLREDUCE_BLOCK}
    rec.update(extra)
    return rec


def child_env(config):
    """The environment of a configuration's child: its thread count everywhere."""
    threads = CONFIGS[config][1]
    env = dict(os.environ)
    env[CHILD_THREADS_ENV] = str(threads)
    env["GRAPHC_NUM_THREADS"] = str(threads)
    return env


def run_children(system, runs, timeout):
    """Run each (config, cmd, env) and re-emit the @@BENCH records its processes print; a child
    that prints none becomes an error record for that configuration."""
    for config, cmd, env in runs:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            out, err, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err, rc = f"timed out after {timeout:.0f} s", "timeout"
        sys.stderr.write(f"--- W10 {config}: {' '.join(cmd)} [exit {rc}]\n{err[-4000:]}\n")
        got = [ln for ln in out.splitlines() if ln.startswith(C.PREFIX)]
        for ln in got:
            print(ln, flush=True)
        if not got or rc != 0:
            tail = " | ".join(ln for ln in err.strip().splitlines()[-3:])
            C.emit({"system": system, "variant": f"{config}", "workload": "W10", "case": "-",
                    "config": config, "error": f"{CONFIG_LABEL[config]}: exit {rc}: {tail}"[:500]})

