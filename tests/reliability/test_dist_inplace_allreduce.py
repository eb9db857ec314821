"""The dist_sync kvstore's direct all-reduce: a big key is summed in its own memory (MPI_IN_PLACE
on the gradient for pushpull(keys, grads), straight into the store for push / separate
outputs), small keys are still packed, and every result is bit-identical to the packed path
(the previous one) and across ranks, for plain pushes and for every Trainer update_on_kvstore
mode. One 2-rank MPICH job (dist_inplace_child.py) under a subprocess timeout."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py")

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "dist_inplace_child.py")
GFORKER = os.path.join(os.path.dirname(sys.executable), "mpiexec.gforker")
sys.path.insert(0, HERE)
import dist_inplace_child as child  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(GFORKER, os.X_OK), reason="MPICH's mpiexec.gforker is not installed")

RANKS = 2
SMALL = [k for k in child.SHAPES if k not in child.BIG]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist_inplace")
    # (the runs compared bit for bit share a process: eager products compiled from their first
    # use, so that both runs round alike; graphc/eager_kernels.py)
    env = dict(os.environ, GRAPHC_DIST_TIMEOUT="20", PYTHONUNBUFFERED="1", GRAPHC_DIST_LOG_DIR=str(out / "logs"),
               GRAPHC_EAGER_COMPILE="1")
    env.pop(child.DIRECT_ENV, None)
    proc = subprocess.run([GFORKER, "-n", str(RANKS), sys.executable, CHILD, str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    facts = [json.loads((out / f"rank{r}.json").read_text()) for r in range(RANKS)]
    arrays = [dict(np.load(out / f"rank{r}.npz")) for r in range(RANKS)]
    return facts, arrays


def _sum(step, key):
    return sum(child.values(r, step)[key] for r in range(RANKS))


def test_a_big_gradient_is_summed_in_place_in_its_own_memory(job):
    facts, arrays = job
    for r in range(RANKS):
        f = facts[r]
        calls = {tuple(c) for c in f["direct_inplace_calls"]}
        for k in child.BIG:
            address = f["direct_grad_addresses"][k]
            size = int(np.prod(child.SHAPES[k][0]))
            assert ("in_place", address, size) in calls, f"rank {r} key {k}: {f['direct_inplace_calls']}"
            assert f["direct_grad_addresses_after"][k] == address
        # only the small keys went into a bucket: no copy of a big key
        assert f["direct_bucket_elements"] == sum(int(np.prod(child.SHAPES[k][0])) for k in SMALL)
        assert len(f["direct_inplace_calls"]) == len(child.BIG) + 1
        # the packed path packs every key (one bucket per dtype)
        assert f["packed_bucket_elements"] == sum(int(np.prod(s)) for s, _ in child.SHAPES.values())
        for k in child.SHAPES:
            np.testing.assert_array_equal(arrays[r][f"direct_inplace_{k}"], _sum(0, k), err_msg=f"rank {r} key {k}")
            np.testing.assert_array_equal(arrays[r][f"direct_inplace_pulled_{k}"], _sum(0, k))


def test_separate_outputs_and_push_sum_straight_into_the_store_and_leave_the_pushed_arrays(job):
    facts, arrays = job
    for r in range(RANKS):
        f = facts[r]
        for stage in ("outs", "push"):
            receivers = {c[1] for c in f[f"direct_{stage}_calls"] if c[0] != "in_place"}
            assert receivers == {f["direct_stored_addresses"][k] for k in child.BIG}, (stage, f)
        for k in child.SHAPES:
            np.testing.assert_array_equal(arrays[r][f"direct_outs_{k}"], _sum(1, k))
            np.testing.assert_array_equal(arrays[r][f"direct_outs_pushed_{k}"], child.values(r, 1)[k])
            np.testing.assert_array_equal(arrays[r][f"direct_push_{k}"], _sum(2, k))
            # with an updater the sum goes to the updater (stored * 0.5 + sum) and the output
            # (the pushed gradient itself) gets the updated value
            dtype = child.SHAPES[k][1]
            np.testing.assert_allclose(arrays[r][f"direct_updater_{k}"], _sum(2, k) * dtype(0.5) + _sum(3, k),
                                       rtol=1e-6, err_msg=f"rank {r} key {k}")


def test_every_result_equals_the_packed_path_bit_for_bit_on_every_rank(job):
    _, arrays = job
    direct = [name for name in arrays[0] if name.startswith("direct_") or
              (name.startswith("train_") and "_direct_" in name)]
    assert len(direct) > 40
    for r in range(RANKS):
        for name in direct:
            packed = name.replace("direct", "packed")
            assert arrays[r][name].dtype == arrays[r][packed].dtype
            np.testing.assert_array_equal(arrays[r][name], arrays[r][packed], err_msg=f"rank {r}: {name}")
    for name in arrays[0]:
        if "_outs_pushed_" in name:
            continue            # each rank's own gradient
        np.testing.assert_array_equal(arrays[0][name], arrays[1][name], err_msg=f"{name} differs between ranks")


def test_training_moves_the_weights_in_every_update_on_kvstore_mode(job):
    _, arrays = job
    initial = [p.data().asnumpy() for p in child.build(seed=11).collect_params().values()]
    for uok in (None, True, False):
        for own in ("own", "given"):
            for i, start in enumerate(initial):
                trained = arrays[0][f"train_{uok}_{own}_direct_{i}"]
                assert not np.allclose(trained, start), f"update_on_kvstore={uok} {own}: parameter {i} never moved"
    # the store's optimizer and the Trainer's compute the same SGD (to rounding)
    for i in range(len(initial)):
        np.testing.assert_allclose(arrays[0][f"train_True_given_direct_{i}"],
                                   arrays[0][f"train_False_given_direct_{i}"], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(arrays[0][f"train_False_own_direct_{i}"],
                                      arrays[0][f"train_False_given_direct_{i}"])


def test_a_trainers_own_store_keeps_no_copy_of_the_sums_and_says_so_on_pull(job):
    facts, _ = job
    message = facts[0]["unkept_pull"]
    assert message.startswith("GraphcError: kvstore.pull: key 0 holds no value"), message
    assert "update_on_kvstore=False" in message
