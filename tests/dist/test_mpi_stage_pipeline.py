"""Pipelined micro-batches across MPI ranks (graphc/dist/stage_pipeline.py, rank_microbatches.py)
and owner-only parameter memory (graphc/dist/param_memory.py): 2 ranks with M in {1, 2, 4}
(6 rows in 4 micro-batches: sizes 2, 2, 1, 1) against the block unpartitioned in this process,
BatchNorm against the block called on each micro-batch in turn, a 2x2 grid (stages x replicas)
with M=2 against one process on the whole batch, each rank's parameter bytes (after the first
call, and with initialize_owned before it), gather_parameters onto one rank and onto all, and
the order every rank walks (the handoff first, a topological order)."""
import os

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import graphc as mx  # noqa: E402
from graphc import gluon  # noqa: E402
from graphc.dist import param_memory  # noqa: E402
from graphc.dist.stage_pipeline import global_order  # noqa: E402
from graphc.partitioned import _Copy, _Stage  # noqa: E402

from test_mpi_stages import GFORKER, _close, _ok, _positions, _reference, _run, sw  # noqa: E402

needs_mpi = pytest.mark.skipif(not os.access(GFORKER, os.X_OK), reason="MPICH's mpiexec.gforker is not installed")


@needs_mpi
def test_pipelined_micro_batches_equal_the_unpartitioned_block(tmp_path):
    proc, _ = _run(2, "micro", tmp_path, limit=120)
    _ok(proc)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for label in ("mlp", "res"):
        build, _, data = sw.CASES[label]
        x, y = data()
        out, dx, grads, losses, params = _reference(build, x, y)
        for m in sw.MICROS:
            tag = f"{label}/{m}"
            owners = {}
            for r, got in enumerate(ranks):
                _close(got[f"{tag}/out"], out, f"{tag} output on rank {r}")
                _close(got[f"{tag}/dx"], dx, f"{tag} data gradient on rank {r}")
                _close(got[f"{tag}/losses"], losses, f"{tag} losses on rank {r}")
                for i in _positions(got, f"{tag}/param/"):
                    owners.setdefault(i, []).append(r)
                    _close(got[f"{tag}/grad/{i}"], grads[i], f"{tag} gradient of parameter {i} on rank {r}")
                    _close(got[f"{tag}/param/{i}"], params[i], f"{tag} parameter {i} after 3 steps on rank {r}")
                # M > 1: weight gradients once on the whole batch (passes/batch_sums.py)
                assert bool(got[f"{tag}/whole"]) == (m > 1), (tag, r)
            assert sorted(owners) == list(range(len(params))) and all(len(v) == 1 for v in owners.values()), owners
            assert {v[0] for v in owners.values()} == {0, 1}, owners


@needs_mpi
def test_batchnorm_statistics_follow_the_micro_batches(tmp_path):
    proc, _ = _run(2, "batchnorm", tmp_path)
    _ok(proc)
    out, grads, params = sw.micro_reference(sw.build_gluon(), sw.batch(seed=5)[0], 2)
    initial = [p.data().asnumpy() for p in sw.params(sw.build_gluon())]
    trained = []
    for r in range(2):
        got = dict(np.load(tmp_path / f"rank{r}.npz"))
        _close(got["out"], out, f"output on rank {r}")
        for i in _positions(got, "param/"):
            trained.append(i)
            _close(got[f"param/{i}"], params[i], f"parameter {i} on rank {r} after the call")
            if grads[i] is not None:
                _close(got[f"grad/{i}"], grads[i], f"gradient of parameter {i} on rank {r}")
    assert sorted(trained) == list(range(8)), trained
    # BatchNorm's running mean and variance (positions 4, 5) moved twice, once per micro-batch
    for i in (4, 5):
        assert not np.allclose(params[i], initial[i])


@needs_mpi
def test_two_pipelined_stages_by_two_replicas_equal_one_process(tmp_path):
    proc, _ = _run(4, "grid_micro", tmp_path, limit=120)
    _ok(proc)
    x, y = sw.batch(rows=2 * sw.BATCH, seed=3)
    net = sw.build_mlp()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": sw.LR, "momentum": 0.9}, kvstore=None)
    losses = sw.train(net, x, y, trainer, sw.BATCH)
    params = [p.data().asnumpy() for p in sw.params(net)]
    for r in range(4):
        got = dict(np.load(tmp_path / f"rank{r}.npz"))
        stage, replica = r % 2, r // 2
        _close(got["losses"], losses[:, replica * sw.BATCH:(replica + 1) * sw.BATCH], f"losses on rank {r}")
        trained = _positions(got, "param/")
        assert trained == ([0, 1] if stage == 0 else [2, 3, 4, 5]), f"rank {r} trains parameters {trained}"
        # the replicas' store holds copies of this stage's parameters only
        assert list(got["stored"]) == trained, (r, list(got["stored"]))
        for i in trained:
            _close(got[f"param/{i}"], params[i], f"parameter {i} on rank {r} (stage {stage}, replica {replica})")


@needs_mpi
def test_each_rank_holds_only_its_own_parameters(tmp_path):
    proc, _ = _run(2, "memory", tmp_path)
    _ok(proc)
    net = sw.build_wide()
    whole = param_memory.held_bytes(net.collect_params())
    x, y = sw.batch(rows=sw.BATCH, seed=6)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": sw.LR}, kvstore=None)
    losses = sw.train(net, np.tile(x, (1, sw.WIDE // sw.IN)), np.tile(y, (1, sw.WIDE // sw.SIZES[-1])), trainer,
                      sw.BATCH)
    params = [p.data().asnumpy() for p in sw.params(net)]
    data_bytes = sum(p.nbytes for p in params)
    got = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for r, g in enumerate(got):
        assert int(g["before"]) == whole, (r, int(g["before"]), whole)   # allocated until the first call
        # weights and gradients of its own two layers: half the model's
        assert abs(int(g["after"]) - whole / 2) <= 0.01 * whole, (r, int(g["after"]), whole)
        _close(g["losses"], losses, f"losses on rank {r}")
        for i, want in enumerate(params):
            _close(g[f"gathered/{i}"], want, f"parameter {i} gathered on rank {r}")
    assert list(got[0]["owned"]) == [0, 1, 2, 3] and list(got[1]["owned"]) == [4, 5, 6, 7]
    # gathered on rank 0 only: rank 0 now holds the other half's weights (not their gradients)
    assert int(got[0]["after_root_gather"]) == int(got[0]["after"]) + data_bytes // 2
    assert int(got[1]["after_root_gather"]) == int(got[1]["after"])
    assert all(int(g["after_gather"]) == int(g["after"]) + data_bytes // 2 for g in got)
    saved = mx.nd.load(str(tmp_path / "wide.params"))       # saved on rank 0 after gathering there
    structured = net._collect_params_with_prefix()
    assert sorted(saved) == sorted(structured)
    for key, value in saved.items():
        _close(value.asnumpy(), structured[key].data().asnumpy(), f"saved parameter {key}")


@needs_mpi
def test_initialize_owned_allocates_only_this_ranks_share(tmp_path):
    proc, _ = _run(2, "owned_init", tmp_path)
    _ok(proc)
    net = sw.build_wide()           # net.initialize(Xavier()) after the same seed, in one process
    whole = param_memory.held_bytes(net.collect_params())
    initial = [p.data().asnumpy() for p in sw.params(net)]
    x, y = sw.batch(rows=sw.BATCH, seed=6)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": sw.LR}, kvstore=None)
    losses = sw.train(net, np.tile(x, (1, sw.WIDE // sw.IN)), np.tile(y, (1, sw.WIDE // sw.SIZES[-1])), trainer,
                      sw.BATCH)
    params = [p.data().asnumpy() for p in sw.params(net)]
    for r in range(2):
        got = dict(np.load(tmp_path / f"rank{r}.npz"))
        # before any call: only its own half was ever kept
        assert abs(int(got["before"]) - whole / 2) <= 0.01 * whole, (r, int(got["before"]), whole)
        assert list(got["owned"]) == ([0, 1, 2, 3] if r == 0 else [4, 5, 6, 7])
        _close(got["losses"], losses, f"losses on rank {r}")
        for i in got["owned"]:
            np.testing.assert_array_equal(got[f"initial/{i}"], initial[i], f"initial parameter {i} on rank {r}")
            _close(got[f"param/{i}"], params[i], f"parameter {i} after 3 steps on rank {r}")


def test_placeholders_hold_no_bytes_and_come_back_full():
    p = gluon.Parameter("w", shape=(64, 32))
    p.initialize(mx.init.One())
    full = param_memory.held_bytes([p])
    assert full == 2 * 64 * 32 * 4           # data and gradient
    param_memory.release(p)
    assert param_memory.held_bytes([p]) == 0 and p.data().shape == (64, 32) and p.grad().dtype == np.float32
    p.zero_grad()                            # the Trainer's bookkeeping still works on a placeholder
    param_memory.hold(p, np.full((64, 32), 2.0, np.float32))
    np.testing.assert_array_equal(p.data().asnumpy(), 2.0)
    assert param_memory.held_bytes([p]) == 64 * 32 * 4


class _Program:
    """What global_order reads of a StageProgram: steps, who holds each value, a name."""

    def __init__(self, steps, holder):
        self.steps, self.holder, self.name = steps, holder, "fake"


def _backward(m):
    """A two-stage backward of micro-batch m, split at its handoff: rank(1) makes the input
    gradient (part 0) and its weight gradient (part 1); the input gradient goes to rank(0),
    which makes its own weight gradient from it."""
    k = lambda name: (name, m)  # noqa: E731
    steps = [_Stage("rank(1)", 0, None, [k("head")], [k("dx1")], 0),
             _Stage("rank(1)", 0, None, [k("head")], [k("dw1")], 1),
             _Copy("rank(0)", 1, k("dx1"), k("dx1@0")),
             _Stage("rank(0)", 1, None, [k("dx1@0")], [k("dw0"), k("dx0")], 0)]
    holder = {k("head"): "rank(1)", k("dx1"): "rank(1)", k("dw1"): "rank(1)", k("dx1@0"): "rank(0)"}
    return _Program(steps, holder)


def test_the_order_sends_every_input_gradient_before_any_weight_gradient():
    programs = [_backward(m) for m in range(4)]
    order = global_order(programs)
    assert sorted((t.micro, t.index) for t in order) == [(m, i) for m in range(4) for i in range(4)]
    on_one = [(t.micro, t.index) for t in order if t.device == 1]
    # rank(1): every micro-batch's input gradient and its send, then the weight gradients
    assert on_one == [(0, 0), (0, 2), (1, 0), (1, 2), (2, 0), (2, 2), (3, 0), (3, 2),
                      (0, 1), (1, 1), (2, 1), (3, 1)], on_one
    # a topological order: every task after the tasks it reads from
    seen = set()
    for t in order:
        assert all(r not in seen for r in t.readers), t
        seen.add(t)
    # rank(0) starts micro-batch 0 before rank(1) has finished: the ranks overlap
    position = {(t.micro, t.index): n for n, t in enumerate(order)}
    assert position[(0, 3)] < position[(3, 0)]
