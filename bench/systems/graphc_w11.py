"""W11 for graphc: pipeline-parallel training of an MLP (8 ReLU layers 2048 wide on a 2048-wide
input, then 10 classes; batch 256) over 2 CPU devices of 1 core each, 4 micro-batches, against
the same net on 1 device of 1 core.

graphc_w.py --workload W11 (the parent) starts one child (graphc_w.py --workload W11 --child)
with GRAPHC_CPU_DEVICES set to two devices of one core each and every pool at 1 thread. The
child builds three copies of the net from the same seeded weights and trains them on the same
seeded batch: "1 device" (unpartitioned, on cpu(0): 1 core), "pipelined" (layers 0-3 on cpu(0),
the rest on cpu(1), hybridize(pipeline_microbatches=4), graphc's default schedule: backward
stages split at their handoff, weight gradients once over the whole batch) and "pipelined,
GPipe" (pipeline_schedule='gpipe': every stage whole, per micro-batch; recorded to show what
the default buys). It checks that the first steps' losses agree, then
times the three in alternation, a block of steps each, so that load from other processes on
the machine falls on all of them alike; the speed-up is reported per round (same moment), with
its spread, beside the machine's parallel headroom measured in the same round (two 1-thread
GEMM loops at once against one after the other: what 2 cores give at that moment). The
bubble is measured from timestamps around every stage program (graphc's pipeline timeline):
1 - busy / (2 devices x wall), over the block's forward and backward phases, and over the whole
step (the loss and the SGD update count as idle there).

PyTorch has no CPU pipeline built in (torch.distributed.pipelining targets GPUs and needs
processes), so W11 has no peer.
"""
import _common as C  # first: pins thread counts (to 1, in the child)

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SYSTEM = "graphc"
WIDTH, LAYERS, CLASSES, BATCH, MICRO = 2048, 8, 10, 256, 4
SPLIT = LAYERS // 2            # layers [0, SPLIT) on cpu(0), the rest and the classifier on cpu(1)
BLOCK = 3                      # steps per timed block
ROUNDS = (6, 2)                # rounds of (baseline, pipelined, GPipe) blocks; --quick the second
CHECK_STEPS = 3                # steps whose losses are compared before timing
VARIANTS = ("1 device", "pipelined", "pipelined, GPipe")


def parent(quick):
    cores = sorted(os.sched_getaffinity(0))
    script = str(Path(__file__).resolve().parent / "graphc_w.py")
    env = dict(os.environ, BENCH_CHILD_THREADS="1", GRAPHC_NUM_THREADS="1")
    if len(cores) < 2:
        C.emit({"system": SYSTEM, "variant": "pipelined", "workload": "W11", "error":
                f"needs 2 cores, this process may use {len(cores)}"})
        return
    env["GRAPHC_CPU_DEVICES"] = f"{cores[0]},{cores[1]}"
    cmd = [sys.executable, script, "--workload", "W11", "--child"] + (["--quick"] if quick else [])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = "timed out after 1500 s", "timeout"
    sys.stderr.write(f"--- W11: {' '.join(cmd)} [exit {rc}]\n{err[-4000:]}\n")
    got = [ln for ln in out.splitlines() if ln.startswith(C.PREFIX)]
    for ln in got:
        print(ln, flush=True)
    if not got or rc != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        C.emit({"system": SYSTEM, "variant": "pipelined", "workload": "W11", "error": f"exit {rc}: {tail}"[:500]})


def seeded():
    """Weights (out, in) and biases of the 9 Dense layers, the batch and its labels."""
    rng = np.random.default_rng(C.SEED + 110)
    sizes = [WIDTH] * (LAYERS + 1) + [CLASSES]
    ws = [(rng.standard_normal((o, i), dtype=np.float32) * np.float32(np.sqrt(1.0 / i)))
          for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    x = rng.standard_normal((BATCH, WIDTH), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=BATCH).astype(np.float32)
    return ws, bs, x, y


def make_net(mx, ctxs, micro, schedule="zero-bubble"):
    """The MLP with layer k's parameters on ctxs[k]; hybridized (pipelined when micro > 1)."""
    from graphc import gluon, nd
    ws, bs, _, _ = seeded()
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        for k in range(LAYERS):
            net.add(gluon.nn.Dense(WIDTH, activation="relu", in_units=WIDTH))
        net.add(gluon.nn.Dense(CLASSES, in_units=WIDTH))
    for k, child in enumerate(net):
        child.initialize(mx.init.Zero(), ctx=ctxs[k])
        child.weight.set_data(nd.array(ws[k], ctx=ctxs[k]))
        child.bias.set_data(nd.array(bs[k], ctx=ctxs[k]))
    flags = {"pipeline_microbatches": micro, "pipeline_schedule": schedule} if micro > 1 else {}
    net.hybridize(static_alloc=True, static_shape=True, **flags)
    return net


def _cpu_s() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def parallel_headroom(calls=6):
    """What 2 cores give right now: (time of two 1-thread GEMM loops one after the other) /
    (time of the two at once, on two threads). 2.0 on an idle machine; under other processes'
    load it drops, and no pipeline can beat it, so each round measures it beside the nets."""
    import threading
    a = np.ones((BATCH // MICRO * 4, WIDTH), np.float32)
    w = np.ones((WIDTH, WIDTH), np.float32)

    def loop():
        for _ in range(calls):
            a @ w
    t = time.perf_counter()
    loop()
    loop()
    serial = time.perf_counter() - t
    threads = [threading.Thread(target=loop) for _ in range(2)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return serial / (time.perf_counter() - t)


def child(quick):
    """Every record, or one error record naming where it failed (the harness goes on)."""
    try:
        for rec in measure(quick):
            C.emit(rec)
    except Exception as e:  # noqa: BLE001 - the harness must survive any failure
        import traceback
        traceback.print_exc()
        C.emit({"system": SYSTEM, "variant": "pipelined", "workload": "W11", "error": f"{type(e).__name__}: {e}"[:500]})


def quiet_step(wall, forward, backward, cpu):
    """The step's estimated seconds on 2 cores nothing else uses, from one step on a loaded
    machine: the forward's and the backward's pipelines replayed with each stage's CPU time
    (pipeline_schedule.replay), plus the rest of the step's CPU time (loss, autograd, the SGD
    update, Python) counted as if it ran on one core after them (it partly overlaps: the
    estimate errs on the slow side). The unpartitioned net's counterpart is its CPU time per
    step (one thread does all of it)."""
    from graphc.pipeline_schedule import replay
    rest = max(0.0, cpu - forward.busy_cpu() - backward.busy_cpu())
    return replay(forward) + replay(backward) + rest


def measure(quick):
    import graphc as mx
    from graphc import autograd, gluon, nd
    from graphc.pipeline_schedule import bubble_fraction
    _, _, xn, yn = seeded()
    one = [mx.cpu(0)] * (LAYERS + 1)
    two = [mx.cpu(0)] * SPLIT + [mx.cpu(1)] * (LAYERS + 1 - SPLIT)
    nets = {"1 device": make_net(mx, one, 1), "pipelined": make_net(mx, two, MICRO),
            "pipelined, GPipe": make_net(mx, two, MICRO, schedule="gpipe")}
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_fn.hybridize(static_alloc=True, static_shape=True)
    data = {"1 device": (nd.array(xn, ctx=mx.cpu(0)), nd.array(yn, ctx=mx.cpu(0))),
            "pipelined": (nd.array(xn, ctx=mx.cpu(0)), nd.array(yn, ctx=mx.cpu(1)))}
    data["pipelined, GPipe"] = data["pipelined"]
    trainers = {v: gluon.Trainer(n.collect_params(), "sgd", {"learning_rate": C.LR}) for v, n in nets.items()}
    phases = {v: [] for v in VARIANTS}
    step_cpu = {v: [] for v in VARIANTS}

    def step(v):
        net, (x, y) = nets[v], data[v]
        c0 = _cpu_s()
        t0 = time.perf_counter()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainers[v].step(BATCH)
        loss.wait_to_read()
        for p in net.collect_params().values():
            p.data(p.list_ctx()[0]).wait_to_read()
        t1 = time.perf_counter()
        step_cpu[v].append(_cpu_s() - c0)
        timelines = getattr(net._cached_op, "last_pipeline", None)
        if timelines:
            phases[v].append((t1 - t0, timelines["forward"], timelines["backward"], step_cpu[v][-1]))
        return loss

    t0 = time.perf_counter()
    losses = {v: [] for v in VARIANTS}
    for _ in range(CHECK_STEPS):
        for v in VARIANTS:
            losses[v].append(float(step(v).asnumpy().astype(np.float64).mean()))
    setup = time.perf_counter() - t0
    for v in VARIANTS[1:]:
        if not np.allclose(losses[v], losses["1 device"], rtol=1e-4, atol=1e-5):
            raise AssertionError(f"W11: {v} losses {losses[v]} differ from one device's {losses['1 device']}")
    rounds = ROUNDS[1] if quick else ROUNDS[0]
    samples = {v: [] for v in VARIANTS}
    headroom = []
    for v in VARIANTS:
        phases[v].clear()
        step_cpu[v].clear()
    cpu = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        headroom.append(parallel_headroom())
        for v in VARIANTS:
            c, t = _cpu_s(), time.perf_counter()
            for _ in range(BLOCK):
                step(v)
            samples[v].append(BLOCK / (time.perf_counter() - t))
            cpu[v].append((_cpu_s() - c) / BLOCK)
    base = samples["1 device"]
    records = []
    for v in VARIANTS:
        rec = {"system": SYSTEM, "variant": v, "workload": "W11", "unit": "steps/s",
               "median": C.median(samples[v]), "samples": samples[v], "n_samples": rounds,
               "steps_per_sample": BLOCK, "losses": losses[v], "setup_s": setup,
               "config": "1 device × 1 core" if v == "1 device" else f"2 devices × 1 core, {MICRO} micro-batches"}
        rec["cpu_s_per_step"] = C.median(cpu[v])        # the process's CPU time: work, not waiting
        rec["parallel_headroom"] = C.median(headroom)
        rec["parallel_headroom_samples"] = headroom
        if v != "1 device":
            ratios = [s / b for s, b in zip(samples[v], base)]
            walls = [w for w, _, _, _ in phases[v]]
            quiet = [quiet_step(*ph) for ph in phases[v]]
            rec.update(speedup=C.median(ratios), speedup_samples=ratios,
                       bubble_pipeline=C.median([bubble_fraction([f, b], devices=2) for _, f, b, _ in phases[v]]),
                       bubble_step=C.median([1 - sum(sum(tl.busy().values()) for tl in (f, b)) / (2 * w)
                                             for w, f, b, _ in phases[v]]),
                       phase_s={"forward": C.median([f.wall for _, f, _, _ in phases[v]]),
                                "backward": C.median([b.wall for _, _, b, _ in phases[v]]),
                                "step": C.median(walls)},
                       busy_s={str(d): C.median([f.busy().get(d, 0) + b.busy().get(d, 0)
                                                 for _, f, b, _ in phases[v]]) for d in (0, 1)},
                       quiet_step_s=C.median(quiet),
                       quiet_speedup=C.median(step_cpu["1 device"]) / C.median(quiet),
                       parallelism=C.median([ph[3] / q for ph, q in zip(phases[v], quiet)]))
        records.append(rec)
    return records
