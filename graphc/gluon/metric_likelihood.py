"""Likelihood metrics of MXNet 1.9.1 (`mx.metric`): CrossEntropy and NegativeLogLikelihood of
predicted probabilities, Perplexity, and Loss (with its old names Torch and Caffe), the mean of
loss values a network already computed."""
from __future__ import annotations

import math

import numpy

from ..ndarray import NDArray
from .metric_base import EvalMetric, alias, check_label_shapes, host, register


class _LabelLikelihood(EvalMetric):
    """The sum over samples of -log(pred[i, label[i]] + eps), counted per sample."""

    def __init__(self, eps, name, output_names, label_names):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = host(label).ravel(), host(pred)
            if label.shape[0] != pred.shape[0]:
                raise ValueError(f"{type(self).__name__}: {label.shape[0]} labels for {pred.shape[0]} predictions "
                                 f"(pred shape {pred.shape})")
            prob = pred[numpy.arange(label.shape[0], dtype=numpy.int64), numpy.int64(label)]
            self._accumulate(float((-numpy.log(prob + self.eps)).sum()), label.shape[0])


@alias("ce")
class CrossEntropy(_LabelLikelihood):
    """Cross-entropy of predicted class probabilities (N, classes) and class labels."""

    def __init__(self, eps=1e-12, name="cross-entropy", output_names=None, label_names=None):
        super().__init__(eps, name, output_names, label_names)


@alias("nll_loss")
class NegativeLogLikelihood(_LabelLikelihood):
    """Negative log-likelihood of the labels under the predicted class probabilities."""

    def __init__(self, eps=1e-12, name="nll-loss", output_names=None, label_names=None):
        super().__init__(eps, name, output_names, label_names)


@register
class Perplexity(EvalMetric):
    """exp(mean -log pred[label]) over the labels that are not `ignore_label` (None: all);
    probabilities below 1e-10 count as 1e-10. Labels out of range are clipped, as MXNet's pick."""

    def __init__(self, ignore_label, axis=-1, name="perplexity", output_names=None, label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels, preds):
        if len(labels) != len(preds):
            raise ValueError(f"Perplexity: {len(labels)} labels for {len(preds)} predictions")
        loss, num = 0.0, 0
        for label, pred in zip(labels, preds):
            label, pred = host(label), host(pred)
            axis = self.axis % pred.ndim
            if label.size * pred.shape[axis] != pred.size:
                raise ValueError(f"Perplexity: shape mismatch: label {tuple(label.shape)} vs. pred {pred.shape} "
                                 f"(one label per prediction along axis {self.axis})")
            label = label.ravel()
            index = numpy.clip(label.astype("int64"), 0, pred.shape[axis] - 1)
            index = index.reshape(pred.shape[:axis] + (1,) + pred.shape[axis + 1:])
            prob = numpy.take_along_axis(pred, index, axis=axis).ravel()
            if self.ignore_label is not None:
                ignore = (label == self.ignore_label).astype(prob.dtype)
                num -= float(ignore.sum())
                prob = prob * (1 - ignore) + ignore
            loss -= float(numpy.log(numpy.maximum(prob.dtype.type(1e-10), prob)).sum())
            num += prob.size
        self._accumulate(loss, num)

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.sum_metric / self.num_inst))

    def get_global(self):
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.global_sum_metric / self.global_num_inst))


@register
class Loss(EvalMetric):
    """Mean of the loss values passed as predictions; labels are ignored."""

    def __init__(self, name="loss", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, _, preds):
        if isinstance(preds, (NDArray, numpy.ndarray)):
            preds = [preds]
        for pred in preds:
            values = host(pred)
            self._accumulate(float(values.sum()), values.size)


@register
class Torch(Loss):
    """Loss under the name MXNet's Torch plugin used."""

    def __init__(self, name="torch", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class Caffe(Loss):
    """Loss under the name MXNet's Caffe plugin used."""

    def __init__(self, name="caffe", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)
