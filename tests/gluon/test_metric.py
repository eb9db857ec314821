"""Metrics: values on small hand-checked inputs, accumulation, composites, create()."""
import math

import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon import metric


def test_accuracy_argmaxes_class_scores():
    m = metric.Accuracy()
    m.update([nd.array([0, 1, 1])], [nd.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])])
    assert m.get() == ("accuracy", pytest.approx(2 / 3))
    m.update(nd.array([1]), nd.array([1]))  # single arrays and label-shaped predictions
    assert m.get()[1] == pytest.approx(3 / 4)
    m.reset()
    assert math.isnan(m.get()[1])


def test_top_k_accuracy():
    m = metric.TopKAccuracy(top_k=2)
    pred = nd.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    m.update([nd.array([2, 2, 0])], [pred])
    assert m.get() == ("top_k_accuracy_2", pytest.approx(1 / 3))
    with pytest.raises(ValueError):
        metric.TopKAccuracy(top_k=1)


def test_regression_metrics_average_per_batch():
    label = nd.array([1.0, 2.0, 3.0])
    pred = nd.array([1.5, 2.0, 1.0])
    mae, mse, rmse = metric.MAE(), metric.MSE(), metric.RMSE()
    for m in (mae, mse, rmse):
        m.update([label], [pred])
        m.update([nd.array([0.0])], [nd.array([1.0])])
    assert mae.get()[1] == pytest.approx((2.5 / 3 + 1) / 2)
    assert mse.get()[1] == pytest.approx((4.25 / 3 + 1) / 2)
    assert rmse.get()[1] == pytest.approx((math.sqrt(4.25 / 3) + 1) / 2)


def test_cross_entropy_and_nll():
    prob = np.array([[0.2, 0.8], [0.6, 0.4]])
    for m in (metric.CrossEntropy(), metric.NegativeLogLikelihood()):
        m.update([nd.array([1, 1])], [nd.array(prob)])
        assert m.get()[1] == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2, rel=1e-6)


def test_perplexity():
    m = metric.Perplexity(ignore_label=None)
    m.update([nd.array([1, 0])], [nd.array([[0.2, 0.8], [0.6, 0.4]])])
    assert m.get()[1] == pytest.approx(math.exp(-(math.log(0.8) + math.log(0.6)) / 2), rel=1e-6)


def test_f1_binary():
    m = metric.F1()
    m.update([nd.array([1, 0, 1, 1])], [nd.array([[0.2, 0.8], [0.3, 0.7], [0.9, 0.1], [0.1, 0.9]])])
    # tp=2, fp=1, fn=1 -> precision = recall = 2/3
    assert m.get()[1] == pytest.approx(2 / 3)


def test_loss_metric_averages_all_elements():
    m = metric.Loss()
    m.update(None, [nd.array([1.0, 3.0])])
    m.update(None, nd.array([[2.0]]))
    assert m.get() == ("loss", pytest.approx(2.0))


def test_composite_and_create():
    m = metric.create(["acc", "mse"])
    assert isinstance(m, metric.CompositeEvalMetric)
    m.update([nd.array([1.0, 0.0])], [nd.array([1.0, 1.0])])
    names, values = m.get()
    assert names == ["accuracy", "mse"]
    assert values == pytest.approx([0.5, 0.5])
    assert m.get_name_value() == [("accuracy", pytest.approx(0.5)), ("mse", pytest.approx(0.5))]
    assert isinstance(metric.create("ce"), metric.CrossEntropy)
    assert isinstance(metric.create("top_k_accuracy", top_k=3), metric.TopKAccuracy)
    assert mx.metric.Accuracy is metric.Accuracy
    with pytest.raises(ValueError):
        metric.create("nonsense")


def test_custom_metric_from_function():
    def my_err(label, pred):
        return float(np.abs(label - pred).sum()), label.size

    m = metric.create(my_err)
    assert m.name == "my_err"
    m.update([nd.array([1.0, 2.0])], [nd.array([1.0, 4.0])])
    assert m.get()[1] == pytest.approx(1.0)
    anon = metric.CustomMetric(lambda l, p: 0.5)
    assert anon.name == "custom(<lambda>)"


def test_mismatched_counts_are_refused():
    with pytest.raises(ValueError, match="does not match"):
        metric.Accuracy().update([nd.array([1]), nd.array([1])], [nd.array([1])])
