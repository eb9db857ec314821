"""`graphc viz` draws a model file (SVG by graphc, DOT text, after passes, partitioned) and
`graphc inspect` starts with the model's summary (graphc/cli.py)."""
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import graphc as mx
from graphc.cli import main
from graphc.formats.mxnet_params import load_params

from dot_reader import read_dot

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def cnn_file():
    sym = os.path.join(FIXTURES, "cnn-symbol.json")
    if not os.path.exists(sym):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    return sym


def svg_parts(path):
    root = ET.parse(path).getroot()
    nodes = {g.get("data-key"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    edges = [g for g in root.iter(f"{SVG}g") if g.get("data-from")]
    return nodes, edges


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("graphc: error: "), err
    for f in fragments:
        assert f in err, (f, err)


def test_viz_draws_the_file_as_mxnet_would(cnn_file, tmp_path, capsys):
    out = tmp_path / "cnn.svg"
    assert main(["viz", cnn_file, "--shape", "data=2,3,16,16", "-o", str(out)]) == 0
    nodes, edges = svg_parts(out)
    graph = mx.sym.load(cnn_file)._graph()
    assert set(nodes) == {n.name for n in graph.op_nodes()} | {"data"}
    assert len(edges) == sum(1 for n in graph.op_nodes() for v in n.inputs
                             if not v.node.is_var or v.node.name == "data")
    assert capsys.readouterr().out == f"wrote {out}: {len(nodes)} boxes, {len(edges)} edges\n"


def test_viz_writes_dot_text_when_asked(cnn_file, tmp_path):
    out = tmp_path / "cnn.dot"
    assert main(["viz", cnn_file, "-o", str(out), "--show-weights"]) == 0
    dot = read_dot(out.read_text())
    assert "cnn_conv0_weight" in dot.nodes and dot.name == "cnn"


def test_viz_after_passes_draws_fused_kernels(cnn_file, tmp_path, capsys):
    out = tmp_path / "low.svg"
    assert main(["viz", cnn_file, "--shape", "data=2,3,16,16", "--after-passes", "-o", str(out)]) == 0
    nodes, _ = svg_parts(out)
    ops = {g.get("data-op") for g in nodes.values()}
    assert "_fused_conv" in ops and "Convolution" not in ops
    assert main(["viz", cnn_file, "--after-passes", "-o", str(out)]) == 2
    one_line_error(capsys, "--after-passes needs", "--shape")


def test_viz_partition_marks_cuts_and_prints_the_report(tmp_path, capsys):
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="front"):
        h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=32, name="fc1"), act_type="relu", name="r1")
    with mx.AttrScope(ctx_group="back"):
        out_sym = mx.sym.FullyConnected(h, num_hidden=4, name="fc2")
    model = tmp_path / "two-symbol.json"
    out_sym.save(str(model))
    out = tmp_path / "two.svg"
    assert main(["viz", str(model), "--shape", "data=5,16", "--partition", "front=cpu(0)",
                 "--partition", "back=cpu(1)", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 cut between devices" in text
    assert "cpu(0) -> cpu(1): 1 copy, 640 B (640 bytes)" in text
    nodes, edges = svg_parts(out)
    assert {k: g.get("data-device") for k, g in nodes.items()} == \
        {"data": "cpu(0)", "fc1": "cpu(0)", "r1": "cpu(0)", "fc2": "cpu(1)"}
    [cut] = [e for e in edges if "cut" in e.get("class").split()]
    assert (cut.get("data-from"), cut.get("data-to"), cut.get("data-bytes")) == ("r1", "fc2", str(5 * 32 * 4))
    assert main(["viz", str(model), "--partition", "middle=cpu(1)", "-o", str(out)]) == 1
    one_line_error(capsys, "middle", "back", "front")
    assert main(["viz", str(model), "--partition", "front=cpu1", "-o", str(out)]) == 2
    one_line_error(capsys, "--partition", "front=cpu1")


def test_viz_refuses_what_it_cannot_make_in_one_line(cnn_file, tmp_path, capsys, monkeypatch):
    assert main(["viz", cnn_file, "-o", str(tmp_path / "x.jpeg")]) == 2
    one_line_error(capsys, "x.jpeg", ".svg")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["viz", cnn_file, "-o", str(tmp_path / "x.pdf")]) == 1
    one_line_error(capsys, "'dot' program")
    assert main(["viz", os.path.join(FIXTURES, "cnn-0000.params")]) == 1
    one_line_error(capsys, ".params", "--params")


def test_viz_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["viz", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--partition GROUP=DEVICE" in out and "--after-passes" in out


def test_inspect_starts_with_the_model_summary(cnn_file, capsys):
    assert main(["inspect", cnn_file, "--shape", "data=2,3,16,16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    params = load_params(os.path.join(FIXTURES, "cnn-0000.params"))
    values = sum(int(np.prod(v.shape)) for v in params.values())
    assert lines[0].startswith("model: cnn (") and lines[0].endswith("9 operators, 11 variables, 1 output")
    assert lines[1] == "inputs: data f32[2,3,16,16]"
    assert lines[2] == f"parameters: {len(params)} arrays, {values:,} values, {values * 4 / 1024:.1f} KiB"
    assert lines[5] == "outputs: f32[2,10]"
    assert lines[6].startswith("operators: Convolution x2, Activation x2, Pooling x2")
    assert any(line.startswith("graph cnn(data: f32[2,3,16,16]") for line in lines)
    assert main(["inspect", cnn_file]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("parameters: sizes unknown")
