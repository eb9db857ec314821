"""Model parallelism over MPI ranks (graphc.dist.rank, stage_program, gluon/model_parallel_ranks):
each test launches mpi_stages_worker.py on 2 or 4 local ranks under MPICH's gforker with a
subprocess timeout, and compares what every rank wrote with the same block run unpartitioned
in this process: forward, data and parameter gradients, and SGD steps; a 2x2 grid (pipeline
stages x data-parallel replicas) against one process on the whole batch; a killed stage rank
named by its peer, and a stage rank that stops calling the block named at the deadline."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import graphc as mx  # noqa: E402
import graphc.dist as gdist  # noqa: E402
from graphc import gluon  # noqa: E402
from graphc.ops.errors import GraphcError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_stages_worker.py")
GFORKER = os.path.join(os.path.dirname(sys.executable), "mpiexec.gforker")
sys.path.insert(0, HERE)
import mpi_stages_worker as sw  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(GFORKER, os.X_OK), reason="MPICH's mpiexec.gforker is not installed")
RTOL, ATOL = 1e-5, 1e-6


def _run(ranks, scenario, out, timeout_s=20, launcher=False, limit=90):
    env = dict(os.environ, GRAPHC_DIST_TIMEOUT=str(timeout_s), PYTHONUNBUFFERED="1", GRAPHC_NUM_THREADS="1",
               GRAPHC_DIST_LOG_DIR=str(out / "logs"))
    env.pop("GRAPHC_NUM_SERVERS", None)
    program = [sys.executable, WORKER, scenario, str(out)]
    if launcher:
        cmd = [sys.executable, "-m", "graphc.dist.launch", "-n", str(ranks)] + program
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


def _close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def _reference(build, x, y):
    """The block unpartitioned in this process: probe, then 3 SGD steps (parameters by position)."""
    net = build()
    out, dx, grads = sw.probe(net, x)
    for p in sw.params(net):
        p.zero_grad()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": sw.LR, "momentum": 0.9}, kvstore=None)
    losses = sw.train(net, x, y, trainer, len(x))
    return out, dx, grads, losses, [p.data().asnumpy() for p in sw.params(net)]


def _positions(saved, prefix):
    return sorted(int(k[len(prefix):]) for k in saved if k.startswith(prefix))


def test_two_stage_ranks_equal_the_unpartitioned_block(tmp_path):
    proc, _ = _run(2, "pipeline", tmp_path)
    _ok(proc)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    owners = {}
    for label, (build, _, data) in sw.CASES.items():
        x, y = data()
        out, dx, grads, losses, params = _reference(build, x, y)
        initial = [p.data().asnumpy() for p in sw.params(build())]
        owners[label] = {}
        for r, got in enumerate(ranks):
            # every rank sees the outputs, the data gradient and the loss
            _close(got[f"{label}/out"], out, f"{label} output on rank {r}")
            _close(got[f"{label}/dx"], dx, f"{label} data gradient on rank {r}")
            _close(got[f"{label}/losses"], losses, f"{label} losses on rank {r}")
            for i in _positions(got, f"{label}/param/"):
                owners[label].setdefault(i, []).append(r)
                if grads[i] is not None:
                    _close(got[f"{label}/grad/{i}"], grads[i], f"{label} gradient of parameter {i} on rank {r}")
                _close(got[f"{label}/param/{i}"], params[i], f"{label} parameter {i} after the steps on rank {r}")
                assert not np.allclose(params[i], initial[i]), f"{label} parameter {i} never moved"
            for i, want in enumerate(params):       # gather_parameters: the whole model everywhere
                _close(got[f"{label}/gathered/{i}"], want, f"{label} parameter {i} gathered on rank {r}")
        # each parameter is trained on exactly one rank, and both ranks train some
        assert sorted(owners[label]) == list(range(len(params))), owners
        assert all(len(v) == 1 for v in owners[label].values()) and \
            {v[0] for v in owners[label].values()} == {0, 1}, owners
    # (weight, bias) of each layer on the rank of its ctx_group
    assert owners["mlp"] == {0: [0], 1: [0], 2: [1], 3: [1], 4: [1], 5: [1]}, owners
    # fc0 (weight, bias); BatchNorm's gamma, beta, running mean and variance; fc1
    assert owners["gluon"] == {0: [0], 1: [0], 2: [1], 3: [1], 4: [1], 5: [1], 6: [1], 7: [1]}, owners


def test_two_stages_by_two_replicas_equal_one_process_on_the_whole_batch(tmp_path):
    proc, _ = _run(4, "grid", tmp_path)
    _ok(proc)
    x, y = sw.batch(rows=2 * sw.BATCH, seed=3)
    net = sw.build_mlp()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": sw.LR, "momentum": 0.9}, kvstore=None)
    # dist_sync sums the replicas' gradients: stepping with the per-replica batch size
    losses = sw.train(net, x, y, trainer, sw.BATCH)
    params = [p.data().asnumpy() for p in sw.params(net)]
    got = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(4)]
    for r, g in enumerate(got):
        stage, replica = r % 2, r // 2
        _close(g["losses"], losses[:, replica * sw.BATCH:(replica + 1) * sw.BATCH], f"losses on rank {r}")
        trained = _positions(g, "param/")
        assert trained == ([0, 1] if stage == 0 else [2, 3, 4, 5]), f"rank {r} trains parameters {trained}"
        for i in trained:
            _close(g[f"param/{i}"], params[i], f"parameter {i} on rank {r} (stage {stage}, replica {replica})")


def test_a_killed_stage_rank_makes_the_other_fail_naming_it(tmp_path):
    proc, elapsed = _run(2, "kill", tmp_path, timeout_s=30, launcher=True)
    assert proc.returncode != 0
    log = _log(tmp_path, 0)
    assert re.search(r"rank 0 \(pid \d+ on host [^)]*\)\S*: rank 1 \(pid \d+ on host [^)]*\) died", log), \
        proc.stderr
    assert elapsed < 30, f"the job took {elapsed:.1f} s to end after rank 1 died (the deadline is 30 s)"


def test_a_stage_rank_that_stops_calling_is_named_at_the_deadline(tmp_path):
    proc, elapsed = _run(2, "skip", tmp_path, timeout_s=3, launcher=True, limit=60)
    assert proc.returncode != 0
    log = _log(tmp_path, 0)
    assert re.search(r"SymbolBlock: broadcasting output 0 from rank\(1\) to the pipeline "
                     r"did not complete within 3 s \(GRAPHC_DIST_TIMEOUT\): rank\(1\) of the pipeline, rank 1 "
                     r"\(pid \d+ on host [^)]*\), has not sent it", log), proc.stderr
    assert elapsed < 30


def test_rank_placements_and_their_refusals():
    from graphc.dist import DistributedError
    from graphc.dist.placement import is_rank_device, rank_index
    from graphc.passes.partition import device_name
    assert device_name(gdist.rank(2)) == "rank(2)"
    assert is_rank_device("rank(1)") and not is_rank_device("cpu(1)") and rank_index("rank(3)") == 3
    with pytest.raises(DistributedError, match="rank number"):
        gdist.rank(-1)
    net = sw.build_mlp({"stage1": gdist.rank(0), "stage2": mx.cpu(1)})
    with pytest.raises(GraphcError, match=r"\['stage2'\] on devices"):
        net(mx.nd.array(sw.batch()[0]))
    with pytest.raises(GraphcError, match="group= is for distributed stores"):
        mx.kv.create("local", group=object())
