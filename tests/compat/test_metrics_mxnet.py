"""mx.metric against Apache MXNet 1.9.1: every name mx.metric.create accepts, with MXNet's
arguments (average='macro'/'micro', top_k, eps, ignore_label, output_names/label_names), over
several batches with get/get_global/reset_local/reset, plus create() from functions, configs and
JSON. The cases are tests/compat/metric_cases.py; MXNet's answers are recorded in
mxnet_metric_reference.json, and the live test re-runs them under MXNet when its venv is
installed (skips elsewhere). The tests after those check the pooled metrics against numpy."""
import json
import math
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import metric_cases
from graphc.gluon import metric_base

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
with open(os.path.join(HERE, "mxnet_metric_reference.json")) as f:
    RECORDED = json.load(f)

# sorted(mxnet.registry._REGISTRY[mxnet.metric.EvalMetric]) in MXNet 1.9.1
MXNET_NAMES = ["acc", "accuracy", "caffe", "ce", "composite", "compositeevalmetric", "crossentropy", "custommetric",
               "f1", "loss", "mae", "mcc", "mse", "negativeloglikelihood", "nll_loss", "pcc", "pearsoncorrelation",
               "pearsonr", "perplexity", "rmse", "top_k_acc", "top_k_accuracy", "topkaccuracy", "torch"]


@pytest.fixture(scope="module")
def graphc_answers():
    return json.loads(json.dumps(metric_cases.all_cases(mx)))


def _assert_same(ours, theirs, where):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: graphc {ours}, MXNet {theirs}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float) and not isinstance(ours, str) and ours is not None:
        assert math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-9), f"{where}: graphc {ours}, MXNet {theirs}"
    else:
        assert ours == theirs, f"{where}: graphc {ours!r}, MXNet {theirs!r}"


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_graphc_matches_the_recorded_mxnet_answer(case, graphc_answers):
    for step, want in RECORDED[case].items():
        _assert_same(graphc_answers[case].get(step), want, f"{case}.{step}")


def test_every_case_is_recorded(graphc_answers):
    assert sorted(graphc_answers) == sorted(RECORDED)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers_and_graphc_matches(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "metric_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    assert sorted(live) == sorted(RECORDED)
    for case, steps in live.items():
        for step, want in steps.items():
            _assert_same(RECORDED[case][step], want, f"recorded {case}.{step}")
            _assert_same(graphc_answers[case].get(step), want, f"live {case}.{step}")


def test_create_accepts_exactly_mxnets_names():
    assert sorted(metric_base._REGISTRY) == MXNET_NAMES
    for name in MXNET_NAMES:
        if name not in ("custommetric", "perplexity", "top_k_acc", "top_k_accuracy", "topkaccuracy"):
            assert isinstance(mx.metric.create(name), mx.metric.EvalMetric), name


def test_create_names_the_unknown_metric_and_refuses_arguments_for_an_instance():
    with pytest.raises(ValueError, match="'accurac' is not a registered metric"):
        mx.metric.create("accurac")
    with pytest.raises(ValueError, match="already an EvalMetric"):
        mx.metric.create(mx.metric.MAE(), name="x")


# -- without MXNet: pooled metrics against numpy -----------------------------------------------------

def _batches(seed, n=3, size=12, classes=2):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, classes, size).astype(np.float32), rng.uniform(size=(size, classes)).astype(np.float32))
            for _ in range(n)]


def _confusion(batches):
    label = np.concatenate([b[0] for b in batches]).astype(int)
    pred = np.concatenate([b[1].argmax(axis=1) for b in batches])
    return {"tp": np.sum((pred == 1) & (label == 1)), "fp": np.sum((pred == 1) & (label == 0)),
            "fn": np.sum((pred == 0) & (label == 1)), "tn": np.sum((pred == 0) & (label == 0))}


def test_micro_f1_and_mcc_score_the_counts_pooled_over_batches():
    batches = _batches(3)
    c = _confusion(batches)
    precision, recall = c["tp"] / (c["tp"] + c["fp"]), c["tp"] / (c["tp"] + c["fn"])
    mcc = (c["tp"] * c["tn"] - c["fp"] * c["fn"]) / math.sqrt(
        (c["tp"] + c["fp"]) * (c["tp"] + c["fn"]) * (c["tn"] + c["fp"]) * (c["tn"] + c["fn"]))
    f1, m = mx.metric.F1(average="micro"), mx.metric.MCC(average="micro")
    for label, pred in batches:
        for metric in (f1, m):
            metric.update([mx.nd.array(label)], [mx.nd.array(pred)])
    assert math.isclose(f1.get()[1], 2 * precision * recall / (precision + recall), rel_tol=1e-12)
    assert math.isclose(m.get()[1], mcc, rel_tol=1e-12)


def test_pcc_of_two_classes_is_the_binary_matthews_correlation():
    batches = _batches(4)
    pcc, mcc = mx.metric.PCC(), mx.metric.MCC(average="micro")
    for label, pred in batches:
        pcc.update([mx.nd.array(label)], [mx.nd.array(pred)])
        mcc.update([mx.nd.array(label)], [mx.nd.array(pred)])
    assert math.isclose(pcc.get()[1], mcc.get()[1], rel_tol=1e-12)


def test_micro_pearson_correlates_everything_seen_since_reset():
    rng = np.random.default_rng(5)
    labels = [rng.normal(size=(7, 2)) for _ in range(3)]
    preds = [lab + rng.normal(size=(7, 2)) for lab in labels]
    metric = mx.metric.PearsonCorrelation(average="micro")
    for label, pred in zip(labels, preds):
        metric.update([mx.nd.array(label)], [mx.nd.array(pred)])
    want = np.corrcoef(np.concatenate([p.ravel() for p in preds]), np.concatenate([x.ravel() for x in labels]))[0, 1]
    assert math.isclose(metric.get()[1], want, rel_tol=1e-6)
    assert math.isclose(metric.get_global()[1], want, rel_tol=1e-6)


def test_perplexity_skips_the_ignored_label_and_handles_a_time_axis():
    rng = np.random.default_rng(6)
    probs = rng.uniform(0.1, 1.0, (2, 5, 4))
    probs /= probs.sum(axis=-1, keepdims=True)
    label = rng.integers(0, 4, (2, 5)).astype(np.float64)
    label[0, :2] = 3
    keep = label != 3
    picked = np.take_along_axis(probs, label.astype(int)[..., None], axis=-1)[..., 0]
    metric = mx.metric.Perplexity(ignore_label=3)
    metric.update([mx.nd.array(label)], [mx.nd.array(probs, dtype="float64")])
    assert math.isclose(metric.get()[1], math.exp(-np.log(picked[keep]).sum() / keep.sum()), rel_tol=1e-10)
    assert metric.get_global() == metric.get()


def test_binary_metrics_name_the_metric_when_labels_have_more_classes():
    with pytest.raises(ValueError, match="MCC currently only supports binary classification"):
        mx.metric.MCC().update([mx.nd.array([0, 1, 2])], [mx.nd.array(np.eye(3)[:, :2])])
