"""The three examples with `--gpu 0` (the CUDA simulator here, the GPU under
GRAPHC_TEST_REAL_GPU=1): a smoke run of a step or two per epoch trains on the device, exports
the model and reloads it onto the device with identical predictions. Learning itself is
test_examples.py's business (full --quick runs on the CPU)."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
SMOKE = ["--quick", "--gpu", "0", "--max-steps", "1", "--epochs", "1"]


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"graphc_gpu_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def gpu(cuda_device):
    yield cuda_device


@pytest.mark.slow
def test_recommendation_on_gpu(tmp_path):
    pytest.importorskip("scipy")
    result = load_example("recommendation").main(SMOKE + ["--batch-size", "64", "--out-dir", str(tmp_path)])
    assert result["identical"]
    assert result["test_rmse"] < 5.0          # a rating scale of 1..5: a finite, sane prediction
    assert (tmp_path / "mf-symbol.json").exists() and (tmp_path / "mf-0001.params").exists()


@pytest.mark.slow
def test_language_model_on_gpu(tmp_path):
    result = load_example("nlp_language_model").main(SMOKE + ["--batch-size", "4", "--out-dir", str(tmp_path)])
    assert result["identical"]
    assert 1.0 < result["valid_perplexity"] < float("inf")        # trained a step, did not diverge
    assert (tmp_path / "lstm_lm-symbol.json").exists()


@pytest.mark.slow
def test_image_classification_on_gpu(tmp_path):
    pytest.importorskip("sklearn")
    result = load_example("image_classification").main(SMOKE + ["--batch-size", "8", "--out-dir", str(tmp_path)])
    assert result["identical"]
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert (tmp_path / "resnet_digits-symbol.json").exists()
