"""W10's 2x1 training with the all-reduce overlapped with backward against not, paired in one
MPI job: two copies of the model, one Trainer built with GRAPHC_DIST_OVERLAP=1 and one with 0,
timed in alternating blocks, so both see the same load from whatever else runs on the machine
(separate runs on a shared 2-core host differed by 2x from one minute to the next).

    cd bench/systems && BENCH_CHILD_THREADS=1 GRAPHC_NUM_THREADS=1 \\
        ../../.venv/bin/mpiexec -n 2 ../../.venv/bin/python graphc_w10_overlap_ab.py [--pairs N]

Rank 0 prints, per model, each pair's seconds per step (on, off) and the median of on/off;
then, the same way (rounds of alternating blocks), the all-reduce of the MLP's parameter buffers
by Trainer.allreduce_grads through the overlapped reducer, by the store's ordinary path
(overlap off), by kv.pushpull, and by raw mpi4py Allreduce per buffer, as time ratios to mpi4py.
"""
import _common as C  # first: pins thread counts

import argparse
import os
import time

import numpy as np

import _w10 as W
from graphc_w10 import make_net


def trainer_for(case, kv, rank, ranks, overlap):
    import graphc as mx
    from graphc import autograd, gluon, nd
    x, y, batch = W.global_batch(case)
    xs, ys = W.shard(x, y, rank, ranks)
    X, Y = nd.array(xs), nd.array(ys.astype(np.float32))
    net = make_net(case, len(xs))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": C.LR}, kvstore=kv, update_on_kvstore=False)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_fn.hybridize(static_alloc=True, static_shape=True)

    def step():
        with autograd.record():
            loss = loss_fn(net(X), Y)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
    os.environ["GRAPHC_DIST_OVERLAP"] = overlap     # read when the first step creates the reducer
    step()
    if (trainer._overlap is not None) != (overlap == "1"):
        raise RuntimeError(f"GRAPHC_DIST_OVERLAP={overlap} but the Trainer's reducer is {trainer._overlap}")
    return step, net


def allreduce_rounds(mx, comm, rounds):
    """Seconds per all-reduce of W10's buffers, per way, in `rounds` rounds of alternating blocks."""
    from graphc import gluon, nd
    from mpi4py import MPI
    bufs = W.allreduce_buffers()
    ways = {}
    for overlap in ("1", "0"):
        os.environ["GRAPHC_DIST_OVERLAP"] = overlap
        params = []
        for i, b in enumerate(bufs):
            p = gluon.Parameter(f"ab_{overlap}_{i}", shape=b.shape)
            p.initialize(mx.init.Zero())
            params.append(p)
        trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.0}, kvstore="dist_sync", update_on_kvstore=False)
        trainer.allreduce_grads()
        if (trainer._overlap is not None) != (overlap == "1"):
            raise RuntimeError("the overlap switch did not take")
        ways["Trainer.allreduce_grads, overlap " + ("on" if overlap == "1" else "off")] = trainer.allreduce_grads
    kv = mx.kv.create("dist_sync")
    keys = list(range(len(bufs)))
    kv.init(keys, [nd.array(b) for b in bufs])
    vals, outs = [nd.array(b) for b in bufs], [nd.zeros(b.shape) for b in bufs]
    ways["kv.pushpull into out"] = lambda: kv.pushpull(keys, vals, out=outs)
    routs = [np.empty_like(b) for b in bufs]

    def raw():
        for b, o in zip(bufs, routs):
            comm.Allreduce(b, o, op=MPI.SUM)
    ways["mpi4py Allreduce per buffer"] = raw
    times = {name: [] for name in ways}
    for fn in ways.values():
        for _ in range(20):
            fn()
    for r in range(rounds):
        for name, fn in (ways.items() if r % 2 == 0 else reversed(ways.items())):
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(W.ALLREDUCE_BLOCK):
                fn()
            times[name].append((time.perf_counter() - t0) / W.ALLREDUCE_BLOCK)
    return times, sum(b.nbytes for b in bufs)


def main():
    import graphc as mx
    from graphc.dist import world
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--allreduce-rounds", type=int, default=10)
    parser.add_argument("--cases", default="mlp,cnn")
    args = parser.parse_args()
    comm = world().comm
    rank, ranks = comm.Get_rank(), comm.Get_size()
    for case in [c for c in args.cases.split(",") if c]:
        on, net_on = trainer_for(case, mx.kv.create("dist_sync"), rank, ranks, "1")
        off, net_off = trainer_for(case, mx.kv.create("dist_sync"), rank, ranks, "0")
        block = W.BLOCK[case]
        for fn in (on, off):
            for _ in range(2 * block):
                fn()
        pairs = []
        for _ in range(args.pairs):
            got = []
            for fn in (on, off) if len(pairs) % 2 == 0 else (off, on):
                comm.Barrier()
                t0 = time.perf_counter()
                for _ in range(block):
                    fn()
                got.append((time.perf_counter() - t0) / block)
            pairs.append(tuple(got) if len(pairs) % 2 == 0 else tuple(got[::-1]))
        same = all(np.array_equal(a.data().asnumpy(), b.data().asnumpy())
                   for a, b in zip(net_on.collect_params().values(), net_off.collect_params().values()))
        if rank == 0:
            ratios = [a / b for a, b in pairs]
            print(f"{case}: seconds/step (on, off) per pair: " + ", ".join(f"({a * 1e3:.1f} ms, {b * 1e3:.1f} ms)"
                                                                      for a, b in pairs))
            print(f"{case}: median time ratio on/off {float(np.median(ratios)):.3f} "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f}); median steps/s on "
                  f"{1 / np.median([a for a, _ in pairs]):.1f}, off {1 / np.median([b for _, b in pairs]):.1f}; "
                  f"same weights after equal steps: {same}", flush=True)

    if args.allreduce_rounds:
        times, nbytes = allreduce_rounds(mx, comm, args.allreduce_rounds)
        if rank == 0:
            base = np.array(times["mpi4py Allreduce per buffer"])
            for name, t in times.items():
                t = np.array(t)
                print(f"allreduce {name}: median {np.median(t) * 1e3:.3f} ms ({nbytes / np.median(t) / 1e9:.2f} GB/s), "
                      f"median ratio to mpi4py in the same round {np.median(t / base):.3f}", flush=True)


if __name__ == "__main__":
    main()
