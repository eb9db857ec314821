"""W10 for graphc: data-parallel training steps of W3's MLP and the image example's CNN, and the
kvstore's all-reduce against raw mpi4py Allreduce on the same buffers.

graphc_w.py --workload W10 (the parent) starts one child per configuration (_w10.py): 1x1 and 1x2
as plain processes, 2x1 under MPICH's mpiexec -n 2, where each rank trains on its half of the
global batch with a Trainer over kvstore 'dist_sync'. Only rank 0 prints records. Each 2x1 run
goes twice, with the all-reduce overlapped with backward (kvstore/overlap.py,
GRAPHC_DIST_OVERLAP=1) and without (0), one after the other; graphc_w10_overlap_ab.py pairs
them in one job, which a loaded machine needs for a fair ratio.
"""
import _common as C  # first: pins thread counts (to the configuration's, in a child)

import os
import sys
import time
from pathlib import Path

import numpy as np

import _w10 as W

SYSTEM = "graphc"
ROOT = Path(__file__).resolve().parents[2]
# update_on_kvstore for dist_sync: False (the Trainer's fused update after the all-reduce) was
# faster here than the store's per-key optimizer (MXNet's default, True); both are recorded
UPDATE_ON_KVSTORE_ENV = "BENCH_W10_UPDATE_ON_KVSTORE"
# graphc's own switch (kvstore/overlap.py); its default (auto) is off for 2 ranks x 1 thread on 2
# cores, so both settings are named explicitly here
OVERLAP_ENV = "GRAPHC_DIST_OVERLAP"


def parent(quick):
    script = str(Path(__file__).resolve().parent / "graphc_w.py")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    base = [sys.executable, script, "--workload", "W10", "--child"] + (["--quick"] if quick else [])
    runs = []
    for config in ("1x1", "1x2"):
        runs.append((config, base + ["--variants", config], W.child_env(config)))
    env = W.child_env("2x1")
    env.setdefault("GRAPHC_DIST_TIMEOUT", "300")     # the ranks compile before their first all-reduce
    if os.access(mpiexec, os.X_OK):
        for uok in ("0", "1"):
            for overlap in ("1", "0"):
                runs.append(("2x1", [str(mpiexec), "-n", "2"] + base + ["--variants", "2x1"],
                             dict(env, **{UPDATE_ON_KVSTORE_ENV: uok, OVERLAP_ENV: overlap})))
    else:
        C.emit({"system": SYSTEM, "variant": "dist_sync", "workload": "W10", "case": "-", "config": "2x1",
                "error": f"not available: no MPICH mpiexec next to {sys.executable} (pip install 'graphc[dist]')"})
    W.run_children(SYSTEM, runs, timeout=600)


def child(config, quick):
    import graphc as mx
    ranks = W.CONFIGS[config][0]
    rank, comm = 0, None
    if ranks > 1:
        from graphc.dist import world
        comm = world().comm
        rank = comm.Get_rank()
    emit = C.emit if rank == 0 else (lambda rec: None)
    uok = os.environ.get(UPDATE_ON_KVSTORE_ENV, "0") == "1"
    overlap = {"1": "on", "0": "off"}.get(os.environ.get(OVERLAP_ENV, "auto"), "auto")
    variant = (f"dist_sync, update_on_kvstore={uok}, overlap {overlap}" if ranks > 1 else "hybrid")
    for case in ("mlp", "cnn"):
        # a store per model: a store's keys are the parameters of the one Trainer that uses it
        C.run_variant(SYSTEM, variant, "W10",
                      lambda case=case: train(case, config, mx.kv.create("dist_sync") if ranks > 1 else None,
                                              rank, ranks, comm, uok, variant, quick),
                      emit_fn=emit, fields={"case": case, "config": config})
    if ranks > 1 and not uok:
        for rec in allreduce(mx, comm, quick, overlap):
            emit(rec)


def make_net(case, batch):
    import graphc as mx
    from graphc import nd
    if case == "mlp":
        from graphc_w import make_mlp
        net, weights = make_mlp()
        if weights != "seeded":
            raise RuntimeError(f"MLP weights: {weights}")
        return net
    sys.path.insert(0, str(ROOT / "examples"))
    from image_classification import resnet
    net = resnet(widths=W.CNN_WIDTHS, classes=W.CNN_CLASSES)
    net.initialize(mx.init.Xavier())
    net(nd.zeros((batch,) + W.CNN_IMAGE)).wait_to_read()

    def put(p, a, i):
        if tuple(p.shape) != a.shape:
            raise ValueError(f"parameter {i} {p.name}: shape {p.shape} vs seeded {a.shape}")
        p.set_data(nd.array(a))
    C.assign_flat(net.collect_params().values(), W.cnn_params(), put, "CNN parameters")
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def train(case, config, kv, rank, ranks, comm, uok, variant, quick):
    from graphc import autograd, gluon, nd
    x, y, batch = W.global_batch(case)
    xs, ys = W.shard(x, y, rank, ranks)
    X, Y = nd.array(xs), nd.array(ys.astype(np.float32))
    net = make_net(case, len(xs))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": C.LR},
                            kvstore=kv if kv is not None else "device",
                            update_on_kvstore=uok if kv is not None else None)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_fn.hybridize(static_alloc=True, static_shape=True)

    def step():
        with autograd.record():
            loss = loss_fn(net(X), Y)
        loss.backward()
        trainer.step(batch)          # the gradients are summed over ranks: / the global batch
        loss.wait_to_read()
        return loss

    t0 = time.perf_counter()
    losses = []
    for _ in range(W.CHECK_STEPS):
        local = float(step().asnumpy().astype(np.float64).sum())
        losses.append((comm.allreduce(local) if comm is not None else local) / batch)
    setup = time.perf_counter() - t0
    samples = W.time_fixed(step, W.BLOCK[case], quick)
    return W.training_record(SYSTEM, variant, case, config, samples, losses, setup_s=setup,
                             threads=W.CONFIGS[config][1], ranks=ranks)


def allreduce(mx, comm, quick, overlap):
    """GB/s (bytes of the buffers / seconds per all-reduce) of kv.pushpull over the MLP's
    parameter buffers, of mpi4py Allreduce on each of those buffers, and on one flat buffer.
    Trainer.allreduce_grads goes through the overlapped reducer's flush when overlap is on."""
    from graphc import nd
    from mpi4py import MPI
    bufs = W.allreduce_buffers()
    nbytes = sum(b.nbytes for b in bufs)
    out = []
    try:
        kv = mx.kv.create("dist_sync")
        keys = list(range(len(bufs)))
        kv.init(keys, [nd.array(b) for b in bufs])
        vals = [nd.array(b) for b in bufs]
        outs = [nd.zeros(b.shape) for b in bufs]

        def kv_call():
            kv.pushpull(keys, vals, out=outs)
        kv_call()
        for o, b in zip(outs, bufs):
            if not np.array_equal(o.asnumpy(), b * 2):
                raise AssertionError("kv.pushpull did not return the sum over the 2 ranks")
        samples = W.time_fixed(kv_call, W.ALLREDUCE_BLOCK, quick)
        out.append(W.allreduce_record(SYSTEM, "kvstore dist_sync pushpull", samples, nbytes,
                                      buffers=len(bufs)))
    except Exception as e:  # noqa: BLE001
        out.append({"system": SYSTEM, "variant": "kvstore dist_sync pushpull", "workload": "W10",
                    "case": "allreduce", "config": "2x1", "error": f"{type(e).__name__}: {e}"[:500]})
    trainer_variant = ("Trainer.allreduce_grads (overlap reducer's flush)" if overlap == "on"
                       else "Trainer.allreduce_grads (in place)" if overlap == "off"
                       else "Trainer.allreduce_grads (overlap auto)")
    try:
        out.append(trainer_allreduce(mx, bufs, nbytes, quick, trainer_variant))
    except Exception as e:  # noqa: BLE001
        out.append({"system": SYSTEM, "variant": trainer_variant, "workload": "W10",
                    "case": "allreduce", "config": "2x1", "error": f"{type(e).__name__}: {e}"[:500]})
    routs = [np.empty_like(b) for b in bufs]

    def raw_call():
        for b, o in zip(bufs, routs):
            comm.Allreduce(b, o, op=MPI.SUM)
    flat = np.concatenate([b.ravel() for b in bufs])
    flat_out = np.empty_like(flat)

    def flat_call():
        comm.Allreduce(flat, flat_out, op=MPI.SUM)
    for name, fn in (("mpi4py Allreduce, per buffer", raw_call), ("mpi4py Allreduce, one flat buffer", flat_call)):
        fn()
        samples = W.time_fixed(fn, W.ALLREDUCE_BLOCK, quick)
        out.append(W.allreduce_record("mpi4py", name, samples, nbytes, buffers=len(bufs)))
    return out


def trainer_allreduce(mx, bufs, nbytes, quick, variant):
    """GB/s of Trainer.allreduce_grads (kvstore 'dist_sync', update_on_kvstore=False: what a
    training step sums) with the MLP's parameter buffers as gradients: the store sums each big
    gradient in its own memory and keeps no copy (kvstore/mpi_transport.py). The gradients
    double on every call (they are summed in place); the timing does not depend on the values."""
    from graphc import gluon
    params = []
    for i, b in enumerate(bufs):
        p = gluon.Parameter(f"w10_allreduce_{i}", shape=b.shape)
        p.initialize(mx.init.Zero())
        params.append(p)
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.0}, kvstore="dist_sync", update_on_kvstore=False)
    for p, b in zip(params, bufs):
        p.grad()[:] = mx.nd.array(b)
    trainer.allreduce_grads()
    for p, b in zip(params, bufs):
        if not np.array_equal(p.grad().asnumpy(), b * 2):
            raise AssertionError("Trainer.allreduce_grads did not return the sum over the 2 ranks")
    for p in params:
        p.grad()[:] = 0.0       # the timed calls sum zeros (no overflow to inf, same work)
    samples = W.time_fixed(trainer.allreduce_grads, W.ALLREDUCE_BLOCK, quick)
    return W.allreduce_record(SYSTEM, variant, samples, nbytes, buffers=len(bufs))
