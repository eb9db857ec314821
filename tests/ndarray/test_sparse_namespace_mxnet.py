"""nd.sparse / sym.sparse / sparse gradients / row_sparse Parameters against Apache MXNet 1.9.1.
The cases are sparse_namespace_cases.py; MXNet's answers are recorded in
mxnet_sparse_namespace_reference.json, and the live test re-runs them under MXNet when its venv
exists."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import sparse_namespace_cases
from mxnet_oracle import MXNET_PYTHON, needs_mxnet

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "mxnet_sparse_namespace_reference.json")) as f:
    RECORDED = json.load(f)


@pytest.fixture(scope="module")
def graphc_answers():
    return json.loads(json.dumps(sparse_namespace_cases.all_cases(mx)))


def _assert_same(where, ours, theirs):
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(theirs), f"{where}: graphc {ours!r}, MXNet {theirs!r}"
        for key in theirs:
            _assert_same(f"{where}.{key}", ours[key], theirs[key])
    elif isinstance(theirs, list) and theirs and isinstance(theirs[0], dict):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: graphc {ours!r}, MXNet {theirs!r}"
        for k, (o, t) in enumerate(zip(ours, theirs)):
            _assert_same(f"{where}[{k}]", o, t)
    elif isinstance(theirs, (str, int)) or (isinstance(theirs, list) and theirs and isinstance(theirs[0], str)):
        assert ours == theirs, f"{where}: graphc {ours!r}, MXNet {theirs!r}"
    else:
        assert np.shape(ours) == np.shape(theirs), f"{where}: graphc shape {np.shape(ours)}, MXNet {np.shape(theirs)}"
        np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=1e-5,
                                   atol=1e-6, err_msg=f"{where}: graphc vs MXNet 1.9.1")


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_graphc_matches_the_recorded_mxnet_answer(case, graphc_answers):
    _assert_same(case, graphc_answers[case], RECORDED[case])


def test_every_case_is_recorded(graphc_answers):
    assert sorted(graphc_answers) == sorted(RECORDED)


def test_the_recording_holds_sparse_results_and_untouched_rows():
    """Guards the fixture itself: sparse storage where MXNet keeps it, rows a lazy update leaves."""
    assert RECORDED["grad.dot_csr_rsp"]["stype"] == "row_sparse"
    assert RECORDED["namespace.rsp_gt_0"]["stype"] == "row_sparse"
    assert RECORDED["namespace.rsp_ge_0"]["stype"] == "default"
    start = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(RECORDED["update.sgd_mom_lazy_True"]["weight"][0], start[0])
    assert not np.allclose(RECORDED["update.sgd_mom_lazy_False"]["weight"][0], start[0])
    assert RECORDED["parameter.rows_before_trainer"] == "RuntimeError"


@needs_mxnet
def test_live_mxnet_gives_the_recorded_answers_and_graphc_matches(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "sparse_namespace_cases.py"), "mxnet"],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    assert sorted(live) == sorted(RECORDED)
    for case, answer in live.items():
        _assert_same(f"{case} (recording vs live MXNet)", RECORDED[case], answer)
        _assert_same(f"{case} (live)", graphc_answers[case], answer)
