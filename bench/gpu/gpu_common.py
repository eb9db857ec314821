"""What every GPU-bench child shares: the import path to the CPU harness (bench/systems), the
smoke-size shrink, the time budget, and the GPU timing variants of the CPU harness's methods.

The workloads themselves are the CPU harness's (bench/systems/_common.py, _w7_9.py, the model
builders of graphc_w.py / torch_w.py / gluon_w7_9.py): this folder only places them on a GPU and
times them with the device synchronized, so that a GPU figure and a CPU figure measure the same
work. Import this module FIRST in a child (it imports _common, which pins the host thread pools).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSTEMS = HERE.parent / "systems"
for _p in (str(SYSTEMS), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _common as C  # noqa: E402  (pins thread counts)
import _w7_9 as W  # noqa: E402

# Warm-up before each timed workload. The CPU harness waits 2 s for its first-second slowdown;
# on a GPU the first calls (module load, cuDNN's algorithm search, CUDA-graph capture) are
# covered by the warm-up blocks, and 1 s keeps the whole run inside one lease.
WARM_S_GPU = 1.0
W1_BLOCK_GPU = 20     # W1/W1b calls per sample (one kernel of ~50 us: a block spans ~1 ms)
DEADLINE_ENV = "BENCH_GPU_DEADLINE"      # epoch seconds after which a child starts nothing new


def setup_timing(smoke: bool) -> None:
    """The CPU harness's timing constants for a GPU run (or a --smoke run: no warm-up time)."""
    C.WARM_S = 0.0 if smoke else WARM_S_GPU


def shrink_for_smoke() -> None:
    """Tiny shapes for --smoke (the CUDA simulator runs kernels on one host core): the same
    workload code on sizes that take seconds, so the harness itself is tested without a GPU.
    Every shape is read from these module globals at call time."""
    C.N_W1 = 1 << 12
    C.W4_SHAPE = (1, 3, 32, 32)
    C.W2_BLOCK, C.W3_BLOCK, C.W4_BLOCK, C.W5_BLOCK = 5, 2, 1, 1
    C.W5_SEQ, C.W5_BATCH = 4, 2
    C.BATCH_W3 = 16
    W.W8A.update(layers=1, units=32, heads=2, ffn=64, seq=8)
    W.W8B.update(layers=1, units=32, heads=2, ffn=64, vocab=50, seq=8, batch=2)
    W.W9_BATCH, W.W9_IMAGE = 2, 32
    W.W8A_BLOCK = W.W8B_BLOCK = 1
    global W1_BLOCK_GPU
    W1_BLOCK_GPU = 2


def start(system: str, wl: str) -> None:
    """Tell the parent which workload runs now: if the process dies, that one is lost and the
    parent runs the ones after it in a fresh process."""
    C.emit({"start": wl, "system": system})


def time_left() -> float:
    """Seconds until this child's deadline (inf without one)."""
    d = os.environ.get(DEADLINE_ENV)
    return float("inf") if not d else float(d) - time.time()


def skip_for_budget(system: str, variant: str, wl: str, need_s: float = 5.0) -> bool:
    """Emit a skip record and return True when less than need_s seconds of budget are left: a
    variant started late would be killed by the parent's timeout and lose the records after it."""
    left = time_left()
    if left >= need_s:
        return False
    C.emit({"system": system, "variant": variant, "workload": wl,
            "skip": f"not run: the time budget had {max(left, 0):.0f} s left"})
    return True


def time_throughput(call, sync, block: int, warm: int, reps: int) -> list:
    """Seconds per call, each sample a block of `block` calls with ONE device synchronization
    at the block's end (a memory-bound kernel's rate, as a stream of calls achieves it). Same
    warm-up rule as _common.time_blocks (warm blocks and at least WARM_S seconds)."""
    def run_block():
        for _ in range(block):
            call()
        sync()
    return [s / block for s in C.time_blocks(run_block, 1, warm, reps)]


def w1_record(system: str, variant: str, wl: str, samples: list, **extra) -> dict:
    """_common.record for W1/W1b, with the block size of the GPU timing."""
    rec = C.record(system, variant, wl, samples, **extra)
    rec["calls_per_sample"] = W1_BLOCK_GPU
    rec["timing"] = "throughput: one synchronization per block of calls"
    return rec


def check_w1(wl: str, xn, yn) -> float:
    """Max abs error of a W1/W1b output against the float64 reference; raises past 1e-3."""
    import numpy as np
    ref = (C.w1_reference if wl == "W1" else C.w1b_reference)(xn)
    err = float(np.max(np.abs(np.asarray(yn, dtype=np.float64) - ref)))
    if not err < 1e-3:
        raise AssertionError(f"{wl}: wrong result, max abs error {err:g} vs the float64 "
                             f"reference")
    return err
