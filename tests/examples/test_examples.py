"""Smoke tests of the example programs: each runs end to end with --quick (tiny data, one or two
epochs), learns something, exports its model and reloads it with identical predictions.

The examples are scripts, not modules of the package; they are loaded from their files so the
repository root never lands on sys.path (see tests/conftest.py)."""
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
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


# -- distributed_training.py: the same training over MPI ranks, devices and one device ----------
MPIEXEC = pathlib.Path(sys.executable).parent / "mpiexec"
DIST_ARGS = ["--quick", "--epochs", "2", "--train-size", "640", "--batch-size", "64"]


def run_distributed(tmp_path, mode, *extra, ranks=None, timeout=240):
    """Run distributed_training.py in fresh processes (a run over devices changes the process's
    device layout for good); returns rank 0's result, its trained parameters and the output."""
    out, params = tmp_path / f"{mode}.json", tmp_path / f"{mode}.params"
    cmd = [sys.executable, str(EXAMPLES / "distributed_training.py"), "--mode", mode, *DIST_ARGS,
           "--result-json", str(out), "--save-params", str(params), *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRAPHC_DIST_TIMEOUT="60")
    if ranks:
        cmd = [str(MPIEXEC), "-n", str(ranks)] + cmd
        env["GRAPHC_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from graphc import nd
    return json.loads(out.read_text()), {k: v.asnumpy() for k, v in nd.load(str(params)).items()}, proc.stdout


def assert_same_training(got, want, what):
    (res, params, _), (ref_res, ref_params, _) = got, want
    assert res["test_accuracy"] == ref_res["test_accuracy"], (what, res, ref_res)
    assert sorted(params) == sorted(ref_params)
    for name, value in ref_params.items():
        # bit for bit in practice; the tolerance leaves room for a GEMM that splits its sums by thread count
        np.testing.assert_allclose(params[name], value, rtol=1e-4, atol=1e-5, err_msg=f"{what}: {name}")
    assert ref_res["final_train_loss"] < 2.25, ref_res      # it learned (chance: ln 10 = 2.30)


@pytest.mark.slow
def test_distributed_training_over_two_mpi_ranks_equals_the_single_process_run(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("mpi4py")
    if not os.access(MPIEXEC, os.X_OK):
        pytest.skip(f"MPICH's mpiexec is not installed next to {sys.executable}")
    single = run_distributed(tmp_path, "single", "--parts", "2")
    mpi = run_distributed(tmp_path, "mpi", ranks=2)
    assert mpi[0]["num_workers"] == 2
    assert_same_training(mpi, single, "2 MPI ranks vs 1 process")
    for rank in (0, 1):
        assert re.search(rf"\[rank {rank}/2\] [0-9.]+ samples/s", mpi[2]), mpi[2]


@pytest.mark.slow
def test_distributed_training_over_two_devices_equals_the_single_process_run(tmp_path):
    pytest.importorskip("sklearn")
    single = run_distributed(tmp_path, "single", "--parts", "2")
    devices = run_distributed(tmp_path, "devices", "--num-devices", "2")
    assert_same_training(devices, single, "2 devices vs 1 device")
    assert re.search(r"\[devices \(2 device\(s\)\)\] [0-9.]+ samples/s", devices[2]), devices[2]
