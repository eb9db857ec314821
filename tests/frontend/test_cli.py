"""`graphc inspect` prints a model file's graph."""
import os

import pytest

from graphc.cli import main

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")


@pytest.fixture
def mlp_files():
    sym = os.path.join(FIXTURES, "mlp-symbol.json")
    if not os.path.exists(sym):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    return sym, os.path.join(FIXTURES, "mlp-0000.params")


def test_inspect_untyped_and_typed(mlp_files, capsys):
    sym, params = mlp_files
    assert main(["inspect", sym]) == 0
    assert "FullyConnected" in capsys.readouterr().out
    assert main(["inspect", sym, "--shape", "data=2,64", "--params", params]) == 0
    out = capsys.readouterr().out
    assert "%4: f32[2,10] = FullyConnected" in out


def test_inspect_reports_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad-symbol.json"
    bad.write_text('{"nodes": [{"op": "NoSuchOp", "name": "x", "inputs": []}], "heads": [[0, 0, 0]]}')
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad-symbol.json" in err and "NoSuchOp" in err
