"""Checkpoints cross between graphc and Apache MXNet 1.9.1 both ways: a Module checkpoint written
by graphc loads in MXNet's Module and predicts what graphc predicts, and one written by MXNet
loads in graphc. Runs only where MXNet is installed (bench/.venvs/mxnet or $GRAPHC_MXNET_PYTHON);
test_module.py covers graphc's own round trip without it."""
import os
import subprocess
import textwrap

import numpy as np
import pytest

import graphc as mx
from module_scenarios import dataset, mlp, mlp_params

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
pytestmark = pytest.mark.skipif(not os.path.exists(MXNET_PYTHON),
                                reason="Apache MXNet 1.9.1 is not installed here (make bench installs it)")

# run by MXNet's Python: argv = mode, prefix, data.npy, out.npy
_MXNET_SIDE = textwrap.dedent("""
    import sys
    import numpy as np
    import mxnet as mx
    sys.path.insert(0, {here!r})
    from module_scenarios import dataset, mlp, mlp_params
    mode, prefix, data, out = sys.argv[1:]
    X = np.load(data)
    if mode == "write":
        X_train, Y = dataset(n=24)
        mod = mx.mod.Module(mlp(mx))
        mod.fit(mx.io.NDArrayIter(X_train, Y, batch_size=6), num_epoch=2, arg_params=mlp_params(mx, seed=8),
                optimizer_params={{"learning_rate": 0.3}})
        mod.save_checkpoint(prefix, 2)
    else:
        mod = mx.mod.Module.load(prefix, 2)
        mod.bind([("data", X.shape)], for_training=False)
    np.save(out, mod.predict(mx.io.NDArrayIter(X, batch_size=len(X))).asnumpy())
""")


def _mxnet(mode, prefix, X, tmp_path):
    script = tmp_path / "side.py"
    script.write_text(_MXNET_SIDE.format(here=HERE))
    np.save(tmp_path / "x.npy", X)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([MXNET_PYTHON, str(script), mode, prefix, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(tmp_path / "y.npy")


def test_graphc_checkpoint_loads_in_mxnet_and_predicts_the_same(tmp_path):
    X, Y = dataset(n=24)
    mod = mx.mod.Module(mlp(mx))
    mod.fit(mx.io.NDArrayIter(X, Y, batch_size=6), num_epoch=2, arg_params=mlp_params(mx, seed=8),
            optimizer_params={"learning_rate": 0.3})
    prefix = str(tmp_path / "graphc_mlp")
    mod.save_checkpoint(prefix, 2)
    ours = mod.predict(mx.io.NDArrayIter(X[:7], batch_size=7)).asnumpy()
    np.testing.assert_allclose(_mxnet("read", prefix, X[:7], tmp_path), ours, rtol=1e-5, atol=1e-6)


def test_mxnet_checkpoint_loads_in_graphc_and_predicts_the_same(tmp_path):
    X = dataset(n=6, seed=9)[0]      # the batch size MXNet trained with: its reshape refuses others here
    prefix = str(tmp_path / "mxnet_mlp")
    theirs = _mxnet("write", prefix, X, tmp_path)
    mod = mx.mod.Module.load(prefix, 2)
    mod.bind([("data", X.shape)], for_training=False)
    np.testing.assert_allclose(mod.predict(mx.io.NDArrayIter(X, batch_size=6)).asnumpy(), theirs,
                               rtol=1e-5, atol=1e-6)
