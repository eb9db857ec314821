"""graphc and Apache MXNet 1.9.1 read each other's model-zoo files. Runs where MXNet is
installed (bench/.venvs/mxnet, made by `make bench`, or $GRAPHC_MXNET_PYTHON); skips elsewhere."""
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon.model_zoo import vision

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))

pytestmark = pytest.mark.skipif(not os.path.exists(MXNET_PYTHON),
                                reason="Apache MXNet 1.9.1 is not installed here (make bench installs it)")

NETWORKS = [("resnet18_v1", 32), ("resnet18_v2", 32), ("mobilenetv2_0.25", 32), ("squeezenet1.1", 224),
            ("densenet121", 224), ("vgg11_bn", 32), ("inceptionv3", 299)]


def mxnet(*args):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "mxnet_side.py"), *args], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("name, size", NETWORKS)
def test_mxnet_files_load_into_graphc_and_graphc_exports_load_into_mxnet(name, size, tmp_path):
    mxnet("make", name, str(size), str(tmp_path))
    io = np.load(tmp_path / "io.npz")
    x = nd.array(io["input"])

    # MXNet's save_parameters file (structural names) into graphc's network of the same name
    net = vision.get_model(name)
    net.load_parameters(str(tmp_path / f"{name}.params"))
    net.hybridize()
    ours = net(x).asnumpy()
    np.testing.assert_allclose(ours, io["output"], rtol=1e-3, atol=1e-4)

    # MXNet's export (prefixed names, its JSON) as a graphc SymbolBlock
    block = mx.gluon.SymbolBlock.imports(str(tmp_path / "mx-symbol.json"), ["data"], str(tmp_path / "mx-0000.params"))
    np.testing.assert_allclose(block(x).asnumpy(), io["output"], rtol=1e-3, atol=1e-4)

    # graphc's export read back by MXNet's own SymbolBlock.imports
    sym, params = net.export(str(tmp_path / "gc"))
    mxnet("run", sym, params, str(tmp_path / "io.npz"), str(tmp_path / "back.npz"))
    np.testing.assert_allclose(np.load(tmp_path / "back.npz")["output"], ours, rtol=1e-3, atol=1e-4)
