"""Module.fit with a 'dist_sync' store over 2 MPI ranks (MPICH's gforker, with a subprocess
timeout): each rank trains on its half of every batch, rescale_grad is 1/(batch x workers), so
both ranks end with the weights one process gets from the whole batches."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import graphc as mx  # noqa: E402
from module_scenarios import dataset, mlp, mlp_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GFORKER = os.path.join(os.path.dirname(sys.executable), "mpiexec.gforker")
pytestmark = pytest.mark.skipif(not os.access(GFORKER, os.X_OK), reason="MPICH's mpiexec.gforker is not installed")


def test_dist_sync_fit_on_two_ranks_equals_one_process_on_whole_batches(tmp_path):
    env = dict(os.environ, GRAPHC_DIST_TIMEOUT="10", PYTHONUNBUFFERED="1")
    env.pop("GRAPHC_NUM_SERVERS", None)
    proc = subprocess.run([GFORKER, "-n", "2", sys.executable, os.path.join(HERE, "module_dist_worker.py"),
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    X, Y = dataset(n=36)
    mod = mx.mod.Module(mlp(mx))
    mod.fit(mx.io.NDArrayIter(X, Y, batch_size=12), num_epoch=2, arg_params=mlp_params(mx), optimizer="sgd",
            optimizer_params={"learning_rate": 0.3, "momentum": 0.9})
    expected = {k: v.asnumpy() for k, v in mod.get_params()[0].items()}
    for rank in (0, 1):
        got = np.load(tmp_path / f"rank{rank}.npz")
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}: {k}")
