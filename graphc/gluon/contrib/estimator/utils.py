"""Argument checks the Estimator and its handlers share: metrics as a flat list, the metric a
loss suggests, and that a handler only refers to metrics the Estimator updates."""
from __future__ import annotations

from ....metric import Accuracy, CompositeEvalMetric, EvalMetric
from ...loss import SoftmaxCrossEntropyLoss


def _check_metrics(metrics):
    """A metric, a CompositeEvalMetric (flattened into its parts) or a list of metrics -> list."""
    if isinstance(metrics, CompositeEvalMetric):
        return [m for part in metrics.metrics for m in _check_metrics(part)]
    if isinstance(metrics, EvalMetric):
        return [metrics]
    metrics = list(metrics or [])
    if not all(isinstance(m, EvalMetric) for m in metrics):
        raise ValueError(f"metrics must be a Metric or a list of Metric, refer to mxnet.metric.EvalMetric: {metrics}")
    return metrics


def _suggest_metric_for_loss(loss):
    """Accuracy for classification losses; None when no metric obviously fits."""
    return Accuracy() if isinstance(loss, SoftmaxCrossEntropyLoss) else None


def _check_handler_metric_ref(handler, known_metrics):
    """A handler attribute whose name contains 'metric' must hold metrics the Estimator knows
    (its train/val metrics): a copy would never be updated. MXNet 1.9 checks these attributes
    only (its test meant `'metric' or 'monitor'` but evaluates to 'metric'); graphc does the
    same, so a `monitor` outside the known metrics is accepted, as there."""
    for attribute in dir(handler):
        if "metric" not in attribute:
            continue
        reference = getattr(handler, attribute)
        if not reference:
            continue
        for metric in (reference if isinstance(reference, list) else [reference]):
            if metric not in known_metrics:
                raise ValueError(f"Event handler {type(handler).__name__} refers to a metric instance {metric} "
                                 f"outside of the known training and validation metrics. Please use the metrics "
                                 f"from estimator.train_metrics and estimator.val_metrics instead.")
