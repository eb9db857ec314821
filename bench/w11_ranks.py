"""W11's shape pipelined over 2 MPI ranks (one stage each, 1 thread each) against one process
with one thread: steps/s of each, measured in alternating runs.

    .venv/bin/python bench/w11_ranks.py [--rounds 3] [--steps 6]

The driver alternates `mpiexec.gforker -n 2 python bench/w11_ranks.py --run ranks` and
`python bench/w11_ranks.py --run single` (GRAPHC_NUM_THREADS=1 in each process), so that load
from other processes on the machine falls on both alike, and prints the steps/s of each run and
their ratio per round. A run trains the MLP (8 Dense layers of 2048, ReLU, then 10 classes;
batch 256; layers 0-3 on rank(0), the rest on rank(1); pipeline_microbatches=4 for the ranks)
for 2 warm-up steps (compiling), then times --steps steps; the losses of the first steps are
printed so the two can be compared. The ranks' line also gives the last step's stage timeline
summary (both ranks busy at once, bubble) and a replay of its stages' CPU times (what the
forward and backward would take on cores nothing else uses). W11_PROFILE=PREFIX writes a
cProfile of each process's timed steps to PREFIX.KIND.PID.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

WIDTH, LAYERS, CLASSES, BATCH, MICRO, SPLIT = 2048, 8, 10, 256, 4, 4
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


def build(ranks):
    import graphc as mx
    from graphc import gluon

    class MLP(gluon.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.layers = [gluon.nn.Dense(WIDTH, activation="relu", in_units=WIDTH) for _ in range(LAYERS)]
                self.layers.append(gluon.nn.Dense(CLASSES, in_units=WIDTH))
                for k, layer in enumerate(self.layers):
                    self.register_child(layer, f"fc{k}")

        def hybrid_forward(self, F, x):
            for k, layer in enumerate(self.layers):
                with mx.AttrScope(ctx_group="first" if k < SPLIT else "second"):
                    x = layer(x)
            return x

    mx.random.seed(0)
    net = MLP()
    net.initialize(mx.init.Xavier())
    if ranks:
        import graphc.dist
        net.hybridize(group2ctx={"first": graphc.dist.rank(0), "second": graphc.dist.rank(1)},
                      pipeline_microbatches=MICRO)
    else:
        net.hybridize()
    return net


def run(kind, steps):
    import graphc as mx
    from graphc import autograd, gluon
    net = build(kind == "ranks")
    rng = np.random.default_rng(1)
    x = mx.nd.array(rng.standard_normal((BATCH, WIDTH)).astype(np.float32))
    y = mx.nd.array(rng.integers(0, CLASSES, BATCH).astype(np.float32))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01}, kvstore=None)
    losses = []

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(BATCH)
        losses.append(float(loss.asnumpy().mean()))

    for _ in range(2):
        step()
    profile = None
    if os.environ.get("W11_PROFILE"):
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if profile is not None:
        profile.disable()
        profile.dump_stats(f"{os.environ['W11_PROFILE']}.{kind}.{os.getpid()}")
    rank = 0
    if kind == "ranks":
        import graphc.dist
        rank = graphc.dist.world().rank
    timeline = getattr(net._cached_op, "last_rank_pipeline", None)      # the last step's stages
    print(json.dumps({"kind": kind, "rank": rank, "steps_per_s": steps / wall, "cpu_s_per_step": cpu / steps,
                      "losses": losses[:3], "timeline": timeline}), flush=True)


def launch(kind, steps):
    env = dict(os.environ, GRAPHC_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    me = [sys.executable, os.path.abspath(__file__), "--run", kind, "--steps", str(steps)]
    cmd = ([os.path.join(BIN, "mpiexec.gforker"), "-n", "2"] + me) if kind == "ranks" else me
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    got = [json.loads(ln) for ln in lines]
    first = next(g for g in got if g["rank"] == 0)
    first["cpu_s_per_step"] = [g["cpu_s_per_step"] for g in sorted(got, key=lambda g: g["rank"])]
    if kind == "ranks":
        first["overlap"] = _overlap([g["timeline"] for g in sorted(got, key=lambda g: g["rank"])])
    return first


def _replay(timelines):
    """Seconds the last step's forward and backward would take on two cores nothing else uses:
    each stage taking the CPU time it took, each rank running its stages in the order it ran
    them, a downstream stage of micro-batch m (rank 1 forward, rank 0 backward) starting only
    after the upstream rank's last stage of m. Communication counts as free (shared memory)."""
    total = 0.0
    for phase, upstream in (("forward", 0), ("backward", 1)):
        ends, done = {}, [0.0, 0.0]
        t = 0.0
        for event in timelines[upstream][phase]:
            t += event[4]
            if event[0] != "whole batch":
                ends[event[1]] = t
        done[upstream] = t
        t = 0.0
        for event in timelines[1 - upstream][phase]:
            t = max(t, ends.get(event[1], 0.0) if event[0] != "whole batch" else 0.0) + event[4]
        done[1 - upstream] = t
        total += max(done)
    return total


def _overlap(timelines):
    """Over the last step's forward and backward (each from its first stage start to its last
    stage end on either rank): the share of that time both ranks computed at once, and the
    bubble 1 - busy / (2 x wall)."""
    both = wall = busy = 0.0
    for phase in ("forward", "backward"):
        spans = [[(e[2], e[3]) for e in tl[phase]] for tl in timelines]
        start = min(a for s in spans for a, _ in s)
        end = max(b for s in spans for _, b in s)
        wall += end - start
        busy += sum(b - a for s in spans for a, b in s)
        both += sum(max(0.0, min(b0, b1) - max(a0, a1)) for a0, b0 in spans[0] for a1, b1 in spans[1])
    return {"both_busy_share": round(both / wall, 3), "bubble": round(1 - busy / (2 * wall), 3),
            "replayed_s": round(_replay(timelines), 3),
            "forward_and_backward_s": round(wall, 3),
            "stage_busy_s": [round(sum(e[3] - e[2] for p in ("forward", "backward") for e in tl[p]), 3)
                             for tl in timelines]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", choices=("ranks", "single"))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.run:
        return run(args.run, args.steps)
    ratios = []
    for r in range(args.rounds):
        pair = [launch(kind, args.steps) for kind in (("single", "ranks") if r % 2 == 0 else ("ranks", "single"))]
        got = {p["kind"]: p for p in pair}
        ratio = got["ranks"]["steps_per_s"] / got["single"]["steps_per_s"]
        ratios.append(ratio)
        single, ranks = got["single"], got["ranks"]
        print(f"round {r}: 1 process x 1 thread {single['steps_per_s']:.2f} steps/s, 2 ranks x 1 thread "
              f"(M={MICRO}) {ranks['steps_per_s']:.2f} steps/s, ratio {ratio:.2f}; idle-core estimate from CPU "
              f"times: 1 process {single['cpu_s_per_step'][0]:.3f} s/step, 2 ranks' forward+backward "
              f"{ranks['overlap']['replayed_s']:.3f} s; ranks' last step {ranks['overlap']}; CPU s/step per "
              f"process {single['cpu_s_per_step']} / {[round(c, 3) for c in ranks['cpu_s_per_step']]}; "
              f"first losses {single['losses']} / {ranks['losses']}", flush=True)
    print(f"steps/s ratio (2 ranks / 1 process): median {np.median(ratios):.2f}, range "
          f"{min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} rounds")


if __name__ == "__main__":
    main()
