"""examples/recommendation.py --sparse: Embedding(sparse_grad=True) + lazy Adam trains as well as
the dense model, prints the step times of the sparse and dense paths at two table sizes, and the
exported (dense, hybridized) model reloads identically."""
import importlib.util
import pathlib
import re

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "recommendation.py"


def test_sparse_variant_learns_prints_its_speedups_and_reloads(tmp_path, capsys):
    pytest.importorskip("scipy")
    spec = importlib.util.spec_from_file_location("graphc_example_recommendation_sparse", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--sparse", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert result["identical"]
    assert result["noise_floor"] < result["test_rmse"] < result["baseline_rmse"] - 0.1
    lines = re.findall(r"tables of (\d+) users .*sparse eager [\d.]+ ms; dense eager [\d.]+ ms \([\d.]+x", out)
    assert lines == ["2000", "200000"], out
