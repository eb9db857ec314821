"""`graphc convert`: MXNet files (-symbol.json + .params) to ONNX and back; the converted files
compute what the originals compute; mistakes are one-line errors."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import graphc as mx  # noqa: E402
from graphc.cli import main  # noqa: E402
from graphc.gluon import nn  # noqa: E402


@pytest.fixture
def exported(tmp_path):
    """A small conv net with BatchNorm (statistics randomised), exported in MXNet's formats."""
    rng = np.random.default_rng(0)
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dense(3))
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize()
    x = rng.uniform(-1, 1, (2, 1, 6, 6)).astype(np.float32)
    net(mx.nd.array(x))
    for p in net.collect_params().values():
        if p.name.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.uniform(-0.2, 0.2, p.shape)))
        elif p.name.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
    net.export(str(tmp_path / "net"))
    return tmp_path, net, x


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def test_mxnet_to_onnx_with_dynamic_batch_runs_in_onnxruntime(exported, capsys):
    folder, net, x = exported
    out = folder / "net.onnx"
    assert main(["convert", str(folder / "net-symbol.json"), str(out), "--shape", "data=2,1,6,6",
                 "--dynamic-batch"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (x, np.concatenate([x, x[::-1], x])):
        close(session.run(None, {"data": batch})[0], net(mx.nd.array(batch)).asnumpy())


def test_onnx_to_mxnet_writes_files_symbolblock_loads(exported, capsys):
    folder, net, x = exported
    assert main(["convert", str(folder / "net-symbol.json"), str(folder / "net.onnx"), "--shape", "data=2,1,6,6"]) == 0
    assert main(["convert", str(folder / "net.onnx"), str(folder / "back-symbol.json")]) == 0
    printed = capsys.readouterr().out
    assert "back-symbol.json" in printed and "back-0000.params" in printed
    back = mx.gluon.SymbolBlock.imports(str(folder / "back-symbol.json"), ["data"], str(folder / "back-0000.params"))
    close(back(mx.nd.array(x)).asnumpy(), net(mx.nd.array(x)).asnumpy())


def test_missing_shape_is_a_one_line_error(exported, capsys):
    folder, _, _ = exported
    assert main(["convert", str(folder / "net-symbol.json"), str(folder / "net.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: ") and err.count("\n") == 1
    assert "data" in err and "--shape" in err


def test_two_epochs_beside_the_symbol_need_params(exported, capsys):
    folder, _, _ = exported
    (folder / "net-0001.params").write_bytes((folder / "net-0000.params").read_bytes())
    assert main(["convert", str(folder / "net-symbol.json"), str(folder / "n.onnx"), "--shape", "data=2,1,6,6"]) == 1
    assert "--params" in capsys.readouterr().err
    assert main(["convert", str(folder / "net-symbol.json"), str(folder / "n.onnx"), "--shape", "data=2,1,6,6",
                 "--params", str(folder / "net-0001.params")]) == 0


def test_wrong_output_kind_is_a_usage_error(exported, capsys):
    folder, _, _ = exported
    assert main(["convert", str(folder / "net-symbol.json"), str(folder / "net.json"), "--shape", "data=1,1,6,6"]) == 2
    assert ".onnx" in capsys.readouterr().err
