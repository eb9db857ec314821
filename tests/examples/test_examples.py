"""Smoke tests of the example programs: each runs end to end with --quick (tiny data, one or two
epochs), learns something, exports its model and reloads it with identical predictions.

The examples are scripts, not modules of the package; they are loaded from their files so the
repository root never lands on sys.path (see tests/conftest.py)."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"graphc_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recommendation_beats_the_bias_only_baseline_and_reloads_identically(tmp_path):
    pytest.importorskip("scipy")
    result = load_example("recommendation").main(["--quick", "--out-dir", str(tmp_path)])
    assert result["identical"]
    assert result["noise_floor"] < result["test_rmse"] < result["baseline_rmse"] - 0.1
    assert (tmp_path / "mf-symbol.json").exists()
