"""graphc on one GPU (`mx.gpu(0)`): the CPU harness's workload bodies, run with gpu(0) as the
default context, so that every array, parameter and compiled program of the body lands there.

Why reuse the bodies rather than port them: the CPU harness's graphc bodies already build the
seeded models, check themselves against numpy (W2, W3, W8a, W8b) or the imperative run (W4), and
time with the harness's method; every per-call `wait_to_read()` / per-step `asnumpy()` of those
bodies is a device synchronization on a GPU, which is what a GPU timing needs. Only W1/W1b are
timed here (throughput: one synchronization per block of calls, as the copy bandwidth they are
compared with is measured). Under GRAPHC_CUDA_SIM=1 gpu(0) is the host simulator (--smoke).
"""
from __future__ import annotations

import gpu_common as G  # first: sys.path, thread pins

import time

import numpy as np

C = G.C
SYSTEM = "graphc"
VARIANT = "gpu hybrid"


def _import():
    import graphc as mx
    return mx


def device_info(mx) -> dict:
    """The driver graphc picked and the device it sees (for the report's header)."""
    info = {"graphc_num_gpus": mx.num_gpus()}
    try:
        from graphc.runtime.cuda.driver import get_driver
        d = get_driver()
        if d is not None:
            info.update(graphc_driver=d.name, graphc_device=d.device_name(0),
                        graphc_cc=list(d.compute_capability(0)))
    except Exception as e:  # noqa: BLE001 - informational only
        info["graphc_driver_error"] = f"{type(e).__name__}: {e}"[:300]
    return info


def gpu_peak_mib() -> float | None:
    """Peak device memory allocated through graphc's caching allocator on gpu(0) since the
    process started (the pool keeps no resettable peak), if known."""
    try:
        from graphc.runtime.cuda import memory
        return memory.memory_stats(0)["peak_allocated"] / 2 ** 20
    except Exception:  # noqa: BLE001 - optional figure
        return None


def elementwise(mx, wl: str, quick: bool):
    def body():
        import graphc_w
        W1Block, W1bBlock = graphc_w.make_blocks()
        xn = C.w1_input()
        x = mx.nd.array(xn)
        net = W1Block() if wl == "W1" else W1bBlock()
        t0 = time.perf_counter()
        net.hybridize(static_alloc=True, static_shape=True)
        y = net(x)
        yn = y.asnumpy()
        setup = time.perf_counter() - t0
        err = G.check_w1(wl, xn, yn)
        warm, reps = C.reps(wl, quick)
        last = [y]

        def call():
            last[0] = net(x)

        def sync():     # the device's one stream runs in order: the last output is the block's
            last[0].wait_to_read()
        samples = G.time_throughput(call, sync, G.W1_BLOCK_GPU, warm, reps)
        # a new input must give a new result (no stale output from a reused buffer)
        x2n = (xn * np.float32(-0.75)).astype(np.float32)
        G.check_w1(wl, x2n, net(mx.nd.array(x2n)).asnumpy())
        return G.w1_record(SYSTEM, VARIANT, wl, samples, check=C.check_value(yn),
                           max_abs_err=err, setup_s=setup)
    return body


def plan(mx, workloads, quick: bool):
    """[(workload, variant, body)] in the order given."""
    import graphc_w
    import gluon_w7_9
    out = []
    for wl in workloads:
        if wl in ("W1", "W1b"):
            out.append((wl, VARIANT, elementwise(mx, wl, quick)))
        elif wl in ("W2", "W3", "W4", "W5"):
            body = {"W2": graphc_w.w2, "W3": graphc_w.w3, "W4": graphc_w.w4,
                    "W5": graphc_w.w5}[wl](quick)
            out.append((wl, VARIANT, body))
        elif wl in ("W8a", "W8b", "W9"):
            for _variant, body in gluon_w7_9.plan(mx, SYSTEM, wl, quick, check=True):
                out.append((wl, VARIANT, body))
    return out


def _on_gpu(mx, body, wl):
    """body() with gpu(0) as the default context; the record says so and carries the peak
    device memory (W9's figure on a GPU, where the host's peak RSS says little)."""
    def run():
        with mx.gpu(0):
            rec = body()
        rec["variant"] = VARIANT
        rec["ctx"] = "gpu(0)"
        if wl == "W9":
            rec["gpu_peak_mib"] = gpu_peak_mib()
            rec["gpu_peak_scope"] = "process (graphc's pool has no resettable peak)"
        return rec
    return run


def run(workloads, quick: bool) -> None:
    try:
        mx = _import()
    except BaseException as e:  # noqa: BLE001 - reported, never fatal
        for wl in workloads:
            C.emit({"system": SYSTEM, "variant": VARIANT, "workload": wl,
                    "error": f"import graphc failed: {type(e).__name__}: {e}"[:500]})
        return
    C.emit({"info": device_info(mx), "system": SYSTEM})
    for wl, variant, body in plan(mx, workloads, quick):
        G.start(SYSTEM, wl)
        if G.skip_for_budget(SYSTEM, variant, wl):
            continue
        C.run_variant(SYSTEM, variant, wl, _on_gpu(mx, body, wl))
