"""Sparse storage against Apache MXNet 1.9.1: result storage types, values and stored indices of
the sparse operators, Embedding(sparse_grad=True)'s row_sparse gradient, the lazy updates of
SGD / Adam / AdaGrad (and their standard updates with lazy_update=False), and a gluon.Trainer
run. The cases are tests/compat/sparse_cases.py; MXNet's answers are recorded in
mxnet_sparse_reference.json, and the live test re-runs them under MXNet when its venv exists."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import sparse_cases

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
with open(os.path.join(HERE, "mxnet_sparse_reference.json")) as f:
    RECORDED = json.load(f)
EXACT = ("stype", "shape", "indices", "indptr", "last_grad_rows")


@pytest.fixture(scope="module")
def graphc_answers():
    return json.loads(json.dumps(sparse_cases.all_cases(mx)))


def _assert_same(where, ours, theirs):
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: graphc gave {ours!r}, MXNet a dict"
        for key, want in theirs.items():
            assert key in ours, f"{where}: graphc lacks {key!r} (MXNet has {want!r})"
            if key in EXACT:
                assert ours[key] == want, f"{where}.{key}: graphc {ours[key]}, MXNet {want}"
            else:
                _assert_same(f"{where}.{key}", ours[key], want)
        return
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=1e-5, atol=1e-6,
                               err_msg=f"{where}: graphc vs MXNet 1.9.1")


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_graphc_matches_the_recorded_mxnet_answer(case, graphc_answers):
    _assert_same(case, graphc_answers[case], RECORDED[case])


def test_every_case_is_recorded(graphc_answers):
    assert sorted(graphc_answers) == sorted(RECORDED)


def test_the_recording_holds_sparse_results_and_lazy_rows():
    """Guards the fixture itself: it must exercise sparse outputs and rows left alone."""
    assert RECORDED["op_dot_csr_t_dense"]["stype"] == "row_sparse"
    assert RECORDED["op_rsp_plus_rsp"]["stype"] == "row_sparse" and RECORDED["op_csr_plus_dense"]["stype"] == "default"
    start = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    # row 2 never has a gradient: lazy updates leave it, standard updates decay it
    np.testing.assert_allclose(RECORDED["opt_sgd_lazy_momentum_wd"]["weight"][2], start[2])
    assert not np.allclose(RECORDED["opt_sgd_standard_update"]["weight"][2], start[2])


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers_and_graphc_matches(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "sparse_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    assert sorted(live) == sorted(RECORDED)
    for case, answers in live.items():
        _assert_same(f"{case} (recording vs live MXNet)", RECORDED[case], answers)
        _assert_same(f"{case} (live)", graphc_answers[case], answers)
