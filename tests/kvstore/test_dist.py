"""Distributed data parallelism over MPI (graphc.dist, kvstore 'dist_*'): each test launches
dist_worker.py on 2-4 local ranks under MPICH (gforker, through graphc-launch, or directly) with
a subprocess timeout, so a hang fails the test instead of stalling the suite."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

mpi4py = pytest.importorskip("mpi4py")

import graphc as mx  # noqa: E402
from graphc import autograd, gluon, nd  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "dist_worker.py")
BIN = os.path.dirname(sys.executable)
GFORKER = os.path.join(BIN, "mpiexec.gforker")
sys.path.insert(0, HERE)
import dist_worker as dw  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(GFORKER, os.X_OK), reason="MPICH's mpiexec.gforker is not installed")


# timeout_s (GRAPHC_DIST_TIMEOUT): 30 s for jobs that should succeed, since MPI_Init of 3 ranks
# took over 5 s on a loaded 2-core machine; the failure tests pass their own short timeouts
def _run(ranks, scenario, out, *args, timeout_s=30, launcher=False, servers=0, limit=60, env_extra=None):
    env = dict(os.environ, GRAPHC_DIST_TIMEOUT=str(timeout_s), PYTHONUNBUFFERED="1",
               GRAPHC_DIST_LOG_DIR=str(out / "logs"), **(env_extra or {}))
    env.pop("GRAPHC_NUM_SERVERS", None)
    program = [sys.executable, WORKER, scenario, str(out), *args]
    if launcher:
        cmd = [sys.executable, "-m", "graphc.dist.launch", "-n", str(ranks), "-s", str(servers)] + program
    else:
        cmd = [GFORKER, "-n", str(ranks)] + program
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit)
    return proc, time.monotonic() - start


def _log(out, rank):
    """What one rank reported (the launcher relays all ranks' stderr and may split their lines)."""
    path = out / "logs" / f"rank{rank}.log"
    return path.read_text() if path.exists() else ""


def _ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def _reference_weights(num_workers, update_on_kvstore):
    """One process, no store, stepping with the per-worker batch size on the workers' batches
    concatenated: what MXNet's dist_sync gives (the gradients are summed over workers)."""
    net = dw.build(seed=100)
    x, y = dw.data(num_workers)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9}, kvstore=None)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    part = len(x) // num_workers
    for step in range(dw.STEPS):
        rows = np.concatenate([np.arange(w * part + step * dw.LOCAL_BATCH, w * part + (step + 1) * dw.LOCAL_BATCH)
                               for w in range(num_workers)])
        with autograd.record():
            loss = loss_fn(net(nd.array(x[rows])), nd.array(y[rows]))
        loss.backward()
        trainer.step(dw.LOCAL_BATCH)
    return dw.weights(net)


@pytest.mark.parametrize("ranks,update_on_kvstore,mode", [(3, "none", "plain"), (2, "false", "hybrid")])
def test_dist_sync_training_equals_one_process_on_the_concatenated_batch(tmp_path, ranks, update_on_kvstore, mode):
    proc, _ = _run(ranks, "sync", tmp_path, update_on_kvstore, mode)
    _ok(proc)
    expected = _reference_weights(ranks, update_on_kvstore)
    got = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(ranks)]
    for name, want in expected.items():
        for r in range(ranks):
            np.testing.assert_allclose(got[r][name], want, rtol=1e-5, atol=1e-5, err_msg=f"rank {r} {name}")
            assert np.array_equal(got[r][name], got[0][name]), f"{name} differs between rank {r} and rank 0"
        assert not np.allclose(want, dw.weights(dw.build(seed=100))[name]), f"{name} never moved"


@pytest.mark.parametrize("update_on_kvstore,mode", [("false", "plain"), ("true", "hybrid"), ("false", "hybrid"),
                                                    ("false", "twice")])
def test_allreduce_overlapped_with_backward_equals_not_overlapped_and_one_process(tmp_path, update_on_kvstore, mode):
    """kvstore/overlap.py: the same bits with overlap on as off, on every rank, and one process's
    weights; and the overlap happened: a bucket started before backward handed over the first
    layer's gradients (for a hybridized block: before its last backward segment returned).
    'twice': two backward passes per step, the first on a wrong batch: the second overwrites
    gradients whose sums already started, and the step must sum the second's."""
    runs = {}
    for overlap in ("1", "0"):
        out = tmp_path / f"overlap{overlap}"
        out.mkdir()
        # tiny buckets: the test model has a few hundred bytes of gradients. Overlap needs the
        # op-by-op backward (gradient-ready hooks fire per gradient), while without it a repeated
        # eager tape compiles into one program (graphc/eager_tape_cache.py) that rounds
        # differently: the same-bits comparison is of the op-by-op walk both ways
        proc, _ = _run(2, "overlap", out, update_on_kvstore, mode, timeout_s=20,
                       env_extra={"GRAPHC_DIST_OVERLAP": overlap, "GRAPHC_DIST_BUCKET_MB": "0.0001",
                                  "GRAPHC_EAGER_TAPE": "0"})
        _ok(proc)
        runs[overlap] = [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]
    expected = _reference_weights(2, update_on_kvstore)
    for name, want in expected.items():
        for r in range(2):
            assert np.array_equal(runs["1"][r][name], runs["0"][r][name]), f"rank {r} {name}: overlap changed the bits"
            assert np.array_equal(runs["1"][r][name], runs["1"][0][name]), f"{name} differs between ranks"
            np.testing.assert_allclose(runs["1"][r][name], want, rtol=1e-5, atol=1e-5, err_msg=f"rank {r} {name}")
    assert runs["0"][0]["events"].size == 0, "GRAPHC_DIST_OVERLAP=0 still made an overlapped reducer"
    events = [str(e) for e in runs["1"][0]["events"]]
    plan = next(e for e in events if e.startswith("plan "))
    assert plan == "plan [[3, 2], [1], [0]]", plan     # keys in reverse order, cut by size only
    step = events[:events.index("flushed 3") + 1]       # the first overlapped step
    first_layer = max(step.index("ready 0"), step.index("ready 1"))
    assert step.index("start 0") < first_layer, step
    ready = sorted(e for e in step if e.startswith("ready"))
    assert ready == sorted(["ready 0", "ready 1", "ready 2", "ready 3"] * (2 if mode == "twice" else 1)), step
    if mode == "hybrid":
        assert "segments 2" in events, events[-2:]
    if mode == "twice":
        # the first pass's buckets had started when the second pass wrote their gradients
        assert step.index("start 0") < step.index("ready 3", step.index("ready 3") + 1), step


def test_two_bit_dist_sync_sums_every_workers_quantised_gradient(tmp_path):
    ranks, t = 3, np.float32(0.3)
    proc, _ = _run(ranks, "compressed", tmp_path)
    _ok(proc)
    runs = [np.load(tmp_path / f"rank{r}.npz") for r in range(ranks)]
    residuals = [np.zeros_like(runs[0]["pushed"][0]) for _ in range(ranks)]
    for step in range(runs[0]["pushed"].shape[0]):
        total = np.zeros_like(residuals[0])
        for r in range(ranks):      # the numpy model of MXNet's 2-bit scheme with error feedback
            res = residuals[r]
            res += runs[r]["pushed"][step]
            pos, neg = res >= t, res <= -t
            res[pos] -= t
            res[neg] += t
            total += np.where(pos, t, np.where(neg, -t, np.float32(0)))
        assert np.abs(total).max() > 0
        for r in range(ranks):
            np.testing.assert_array_equal(runs[r]["sums"][step], total, err_msg=f"rank {r} step {step}")


def test_dist_async_training_converges_with_a_server_rank(tmp_path):
    proc, _ = _run(2, "async", tmp_path, launcher=True, servers=1)
    _ok(proc)
    for r in range(2):          # ranks 0, 1 are the workers; rank 2 served
        losses = np.load(tmp_path / f"rank{r}.npy")
        assert losses[-5:].mean() < 0.9 * losses[:5].mean(), f"worker {r}'s loss did not drop: {losses}"
    assert not (tmp_path / "rank2.npy").exists()


@pytest.mark.parametrize("overlap", ["0", "1"])
def test_a_killed_rank_ends_the_job_and_every_survivor_names_it(tmp_path, overlap):
    # (with overlap, the survivors wait in the overlapped reducer: kvstore/overlap.py)
    proc, elapsed = _run(3, "kill", tmp_path, launcher=True, timeout_s=20, env_extra={"GRAPHC_DIST_OVERLAP": overlap})
    assert proc.returncode != 0
    for survivor in (0, 2):
        assert re.search(rf"rank {survivor} \(pid \d+ on host [^)]*\)\S*: rank 1 \(pid \d+ on host [^)]*\) died",
                         _log(tmp_path, survivor)), proc.stderr
    assert "graphc-launch: the job failed" in proc.stderr and "ranks [1] were killed" in proc.stderr
    assert elapsed < 20, f"the job took {elapsed:.1f} s to end after rank 1 died"


def test_mismatched_init_fails_on_every_rank_naming_key_and_shapes(tmp_path):
    proc, _ = _run(3, "mismatch", tmp_path)
    for r in range(3):
        log = _log(tmp_path, r)
        assert (f"rank {r} (pid" in log and "kvstore.init: the workers disagree about key 1: worker 0 has "
                "shape (4, 5) float32; worker 1 has shape (3, 5) float32; worker 2 has shape (4, 5) float32"
                in log), proc.stderr
        assert log.count("the workers disagree about key 1") == 1, log


def test_a_rank_that_never_joins_times_out_naming_it(tmp_path):
    proc, elapsed = _run(3, "nojoin", tmp_path, timeout_s=3, limit=40)
    for r in (0, 2):
        assert re.search(rf"rank {r} of 3 .*joining the job timed out after 3 s \(GRAPHC_DIST_TIMEOUT\): ranks \[1\] "
                         "never started", _log(tmp_path, r)), proc.stderr
    assert elapsed < 30


# -- pieces that need no MPI job ---------------------------------------------------------------------
def test_split_sampler_gives_each_worker_an_equal_disjoint_part():
    parts = [list(gluon.data.SplitSampler(10, 3, i, shuffle=False)) for i in range(3)]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    shuffled = list(gluon.data.SplitSampler(10, 3, 1))
    assert sorted(shuffled) == [3, 4, 5] and len(gluon.data.SplitSampler(10, 3, 1)) == 3
    with pytest.raises(ValueError, match="part_index"):
        gluon.data.SplitSampler(10, 3, 3)


def test_an_optimizer_travels_to_a_server_as_plain_data():
    from graphc.kvstore import optimizer_wire
    sched = mx.lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.1)
    params = {0: gluon.Parameter("w", shape=(3,), lr_mult=2.0)}
    opt = mx.optimizer.create("sgd", momentum=0.9, wd=0.01, lr_scheduler=sched, rescale_grad=0.25, param_dict=params)
    copy = optimizer_wire.loads(optimizer_wire.dumps(opt))
    assert type(copy) is type(opt) and copy.lr_scheduler is not sched
    w1, w2 = nd.array(np.ones(3, np.float32)), nd.array(np.ones(3, np.float32))
    up1, up2 = mx.optimizer.get_updater(opt), mx.optimizer.get_updater(copy)
    for step in range(4):
        g = nd.array(np.full(3, step + 1.0, np.float32))
        up1(0, g, w1)
        up2(0, g, w2)
    np.testing.assert_array_equal(w1.asnumpy(), w2.asnumpy())
