"""Evaluation metrics (`mx.metric` / `gluon.metric`), MXNet 1.9.1 behaviour: `update(labels,
preds)` accumulates running sums and counts, `get()` / `get_global()` divide them, and
`create(name)` accepts every name MXNet 1.9.1's registry does.

This module only gathers: the protocol and registry are metric_base.py, the metrics
metric_classification.py, metric_regression.py and metric_likelihood.py."""
from __future__ import annotations

from .metric_base import (EvalMetric, CompositeEvalMetric, CustomMetric, create, register, alias, np,  # noqa: F401
                          np_metric, check_label_shapes)
from .metric_classification import Accuracy, TopKAccuracy, F1, MCC, PCC  # noqa: F401
from .metric_regression import MAE, MSE, RMSE, PearsonCorrelation  # noqa: F401
from .metric_likelihood import CrossEntropy, NegativeLogLikelihood, Perplexity, Loss, Torch, Caffe  # noqa: F401

__all__ = ["EvalMetric", "CompositeEvalMetric", "CustomMetric", "create", "register", "alias", "np", "np_metric",
           "check_label_shapes", "Accuracy", "TopKAccuracy", "F1", "MCC", "PCC", "MAE", "MSE", "RMSE",
           "PearsonCorrelation", "CrossEntropy", "NegativeLogLikelihood", "Perplexity", "Loss", "Torch", "Caffe"]
