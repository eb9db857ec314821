"""gluon.loss against Apache MXNet 1.9.1: every loss MXNet 1.9.1's gluon.loss has (CTCLoss and
SDMLLoss included), its value and the gradient with respect to the prediction, eagerly and
hybridized. The cases are tests/compat/loss_cases.py; MXNet's answers are recorded in
mxnet_loss_reference.json, and the live test re-runs them under MXNet when its venv is installed
(skips elsewhere). Known difference, not in the cases: PoissonNLLLoss(compute_full=True) with a
zero target gives NaN in MXNet (0 * log 0) and a finite loss in graphc."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import loss_cases

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
with open(os.path.join(HERE, "mxnet_loss_reference.json")) as f:
    RECORDED = json.load(f)

# the loss classes of mxnet.gluon.loss in 1.9.1 (dir() filtered to classes, HybridBlock left out)
MXNET_LOSSES = ["CTCLoss", "CosineEmbeddingLoss", "HingeLoss", "HuberLoss", "KLDivLoss", "L1Loss", "L2Loss",
                "LogisticLoss", "Loss", "PoissonNLLLoss", "SDMLLoss", "SigmoidBCELoss",
                "SigmoidBinaryCrossEntropyLoss", "SoftmaxCELoss", "SoftmaxCrossEntropyLoss", "SquaredHingeLoss",
                "TripletLoss"]


@pytest.fixture(scope="module")
def graphc_answers():
    return loss_cases._jsonable(loss_cases.all_cases(mx))


def _assert_same(case, ours, theirs, what):
    assert set(ours) >= set(theirs), f"{case}: graphc lacks {sorted(set(theirs) - set(ours))}"
    for key, want in theirs.items():
        np.testing.assert_allclose(np.asarray(ours[key], np.float64), np.asarray(want, np.float64), rtol=1e-4,
                                   atol=1e-5, err_msg=f"{case}.{key}: graphc vs MXNet 1.9.1 ({what})")


def test_gluon_loss_has_every_mxnet_loss():
    missing = [name for name in MXNET_LOSSES if not isinstance(getattr(mx.gluon.loss, name, None), type)]
    assert not missing, f"graphc.gluon.loss lacks {missing}"
    assert mx.gluon.loss.SoftmaxCELoss is mx.gluon.loss.SoftmaxCrossEntropyLoss
    assert mx.gluon.loss.SigmoidBCELoss is mx.gluon.loss.SigmoidBinaryCrossEntropyLoss


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_graphc_matches_the_recorded_mxnet_answer(case, graphc_answers):
    _assert_same(case, graphc_answers[case], RECORDED[case], "recorded")


def test_every_case_is_recorded(graphc_answers):
    assert sorted(graphc_answers) == sorted(RECORDED)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers_and_graphc_matches(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "loss_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    assert sorted(live) == sorted(RECORDED)
    for case, answers in live.items():
        _assert_same(case, RECORDED[case], answers, "recording vs live MXNet")
        _assert_same(case, graphc_answers[case], answers, "live")


# -- without MXNet: the same losses against numpy formulas ----------------------------------------

def _log_softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def test_sdml_loss_is_the_kl_divergence_to_the_smoothed_identity():
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    smoothing = 0.2
    dist = ((x1[:, None, :] - x2[None, :, :]) ** 2).sum(-1)
    logp = _log_softmax(-dist, axis=1)
    target = np.where(np.eye(5) > 0, 1 - smoothing, smoothing / 4)
    want = (target * (np.log(target + 1e-12) - logp)).sum(1)
    got = mx.gluon.loss.SDMLLoss(smoothing_parameter=smoothing)(mx.nd.array(x1, dtype="float64"),
                                                               mx.nd.array(x2, dtype="float64"))
    np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-10)


def test_ctc_loss_layouts_give_the_same_losses_and_weights_scale_them():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(2, 5, 4)).astype(np.float32)            # N, T, C
    label = np.array([[0, 2], [1, -1]], np.float32)
    ntc = mx.gluon.loss.CTCLoss()(mx.nd.array(pred), mx.nd.array(label)).asnumpy()
    tnc = mx.gluon.loss.CTCLoss(layout="TNC", label_layout="TN", weight=3.0)(
        mx.nd.array(pred.transpose(1, 0, 2)), mx.nd.array(label.T)).asnumpy()
    weighted = mx.gluon.loss.CTCLoss()(mx.nd.array(pred), mx.nd.array(label), None, None,
                                       mx.nd.array([2.0, 0.5])).asnumpy()
    assert ntc.shape == (2,) and np.all(ntc > 0)
    np.testing.assert_allclose(tnc, 3 * ntc, rtol=1e-6)
    np.testing.assert_allclose(weighted, ntc * [2.0, 0.5], rtol=1e-6)
    # label 1 alone (the -1 pads it) over 5 steps of 4 classes, blank = 3: -log of the sum over
    # the alignments blank* 1+ blank*, by the forward recursion on probabilities
    p = np.exp(_log_softmax(pred[1]))
    blanks, on_label, after_label = p[0, 3], p[0, 1], 0.0
    for t in range(1, 5):
        blanks, on_label, after_label = (blanks * p[t, 3], (blanks + on_label) * p[t, 1],
                                         (on_label + after_label) * p[t, 3])
    seen = on_label + after_label
    np.testing.assert_allclose(ntc[1], -np.log(seen), rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"layout": "NCT"}, {"label_layout": "NTC"}])
def test_ctc_loss_rejects_unknown_layouts_by_name(kwargs):
    with pytest.raises(ValueError, match="CTCLoss"):
        mx.gluon.loss.CTCLoss(**kwargs)


def test_logistic_loss_soft_labels_follow_mxnets_cross_entropy_form():
    pred = np.array([[0.3, -2.0, 1.5]])
    label = np.array([[0.5, -1.0, 0.2]])
    z = (label + 1) / 2
    want = (np.maximum(pred, 0) - pred * z + np.log1p(np.exp(-np.abs(pred)))).mean(1)
    got = mx.gluon.loss.LogisticLoss()(mx.nd.array(pred, dtype="float64"), mx.nd.array(label, dtype="float64"))
    np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-10)
