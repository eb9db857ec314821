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


def test_image_classification_learns_the_digits_and_reloads_identically(tmp_path):
    pytest.importorskip("sklearn")
    result = load_example("image_classification").main(["--quick", "--out-dir", str(tmp_path)])
    assert result["identical"]
    assert result["test_accuracy"] > 0.3          # chance is 0.1; 2 quick epochs reach about 0.5
    assert (tmp_path / "resnet_digits-symbol.json").exists()


def test_language_model_beats_chance_and_reloads_identically(tmp_path):
    result = load_example("nlp_language_model").main(["--quick", "--out-dir", str(tmp_path)])
    assert result["identical"]
    assert result["valid_perplexity"] < 1.3 * result["unigram_perplexity"]
    assert (tmp_path / "lstm_lm-symbol.json").exists()
