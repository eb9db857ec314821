"""Evaluation metrics (`mx.metric` / `gluon.metric`), MXNet 1.x behaviour: `update(labels,
preds)` accumulates a running sum and count, `get()` returns (name, sum / count).
Metrics run on the host (numpy); they never touch the autograd tape."""
from __future__ import annotations

import math

import numpy as np

from ..ndarray import NDArray

__all__ = ["EvalMetric", "CompositeEvalMetric", "Accuracy", "TopKAccuracy", "F1", "MAE", "MSE", "RMSE",
           "CrossEntropy", "NegativeLogLikelihood", "Perplexity", "PearsonCorrelation", "Loss", "CustomMetric",
           "create", "register", "np_metric", "check_label_shapes"]

_REGISTRY: dict[str, type] = {}


def register(klass, *aliases):
    for name in (klass.__name__.lower(),) + tuple(aliases):
        _REGISTRY[name] = klass
    return klass


def _alias(*aliases):
    def reg(klass):
        return register(klass, *aliases)
    return reg


def create(metric, *args, **kwargs):
    """A metric from an instance, a name ('acc', 'top_k_accuracy', 'ce', 'mse'...), a function
    feval(label, pred) (CustomMetric), or a list of these (CompositeEvalMetric)."""
    if isinstance(metric, EvalMetric):
        return metric
    if callable(metric) and not isinstance(metric, type):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    if isinstance(metric, type) and issubclass(metric, EvalMetric):
        return metric(*args, **kwargs)
    klass = _REGISTRY.get(str(metric).lower())
    if klass is None:
        raise ValueError(f"Metric must be either callable or in {sorted(_REGISTRY)}; got {metric!r}")
    return klass(*args, **kwargs)


def _np(x):
    return x.asnumpy() if isinstance(x, NDArray) else np.asarray(x)


def check_label_shapes(labels, preds, wrap=False, shape=False):
    """Raise if the numbers (or shapes) of labels and predictions differ; with wrap, single
    arrays become one-element lists."""
    if not shape:
        label_shape, pred_shape = len(labels), len(preds)
    else:
        label_shape, pred_shape = labels.shape, preds.shape
    if label_shape != pred_shape:
        raise ValueError(f"Shape of labels {label_shape} does not match shape of predictions {pred_shape}")
    if wrap:
        if isinstance(labels, (NDArray, np.ndarray)):
            labels = [labels]
        if isinstance(preds, (NDArray, np.ndarray)):
            preds = [preds]
    return labels, preds


class EvalMetric:
    """Base class: subclasses implement update(labels, preds)."""

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self):
        config = dict(self._kwargs)
        config.update({"metric": self.__class__.__name__, "name": self.name,
                       "output_names": self.output_names, "label_names": self.label_names})
        return config

    def update_dict(self, label, pred):
        preds = [pred[n] for n in self.output_names] if self.output_names is not None else list(pred.values())
        labels = [label[n] for n in self.label_names] if self.label_names is not None else list(label.values())
        self.update(labels, preds)

    def update(self, labels, preds):
        raise NotImplementedError()

    def reset(self):
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self):
        self.num_inst = 0
        self.sum_metric = 0.0

    def _add(self, value, count):
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.sum_metric / self.num_inst)

    def get_global(self):
        if self._has_global_stats:
            if self.global_num_inst == 0:
                return (self.name, float("nan"))
            return (self.name, self.global_sum_metric / self.global_num_inst)
        return self.get()

    def get_name_value(self):
        name, value = self.get()
        if not isinstance(name, list):
            name, value = [name], [value]
        return list(zip(name, value))

    def get_global_name_value(self):
        name, value = self.get_global()
        if not isinstance(name, list):
            name, value = [name], [value]
        return list(zip(name, value))


@_alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; get() returns lists of names and values."""

    def __init__(self, metrics=None, name="composite", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric):
        self.metrics.append(create(metric))

    def get_metric(self, index):
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(f"Metric index {index} is out of range 0 and {len(self.metrics)}") from None

    def update_dict(self, labels, preds):
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds):
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self):
        for metric in getattr(self, "metrics", []):
            metric.reset()

    def reset_local(self):
        for metric in self.metrics:
            metric.reset_local()

    def get(self):
        names, values = [], []
        for metric in self.metrics:
            name, value = metric.get()
            if isinstance(name, str):
                name, value = [name], [value]
            names.extend(name)
            values.extend(value)
        return (names, values)

    def get_global(self):
        names, values = [], []
        for metric in self.metrics:
            name, value = metric.get_global()
            if isinstance(name, str):
                name, value = [name], [value]
            names.extend(name)
            values.extend(value)
        return (names, values)


@_alias("acc")
class Accuracy(EvalMetric):
    """Fraction of correct predictions; predictions with a class axis are argmax'ed along `axis`."""

    def __init__(self, axis=1, name="accuracy", output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.axis = axis

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred_label in zip(labels, preds):
            pred = _np(pred_label)
            lab = _np(label)
            if pred.shape != lab.shape:
                pred = np.argmax(pred, axis=self.axis)
            pred = pred.astype("int32").ravel()
            lab = lab.astype("int32").ravel()
            check_label_shapes(lab, pred)
            self._add(int((pred == lab).sum()), len(pred))


@_alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the `top_k` highest-scored classes."""

    def __init__(self, top_k=1, name="top_k_accuracy", output_names=None, label_names=None):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.top_k = top_k
        if self.top_k <= 1:
            raise ValueError("Please use Accuracy if top_k is no more than 1")
        self.name += f"_{self.top_k}"

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred_label in zip(labels, preds):
            pred = _np(pred_label).astype("float32")
            if pred.ndim > 2:
                raise ValueError("Predictions should be no more than 2 dims")
            lab = _np(label).astype("int32")
            check_label_shapes(lab, pred)
            num_samples = pred.shape[0]
            if pred.ndim == 1:
                correct = int((pred.astype("int32").ravel() == lab.ravel()).sum())
            else:
                num_classes = pred.shape[1]
                top_k = min(num_classes, self.top_k)
                top = np.argpartition(pred, -top_k, axis=1)[:, -top_k:]
                correct = int((top == lab.reshape(-1, 1)).any(axis=1).sum())
            self._add(correct, num_samples)


@register
class F1(EvalMetric):
    """F1 score of binary classification (class 1 positive); average 'macro' (per-batch mean)
    or 'micro' (over all samples)."""

    def __init__(self, name="f1", output_names=None, label_names=None, average="macro"):
        self.average = average
        super().__init__(name=name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def reset(self):
        super().reset()
        self._tp = self._fp = self._fn = 0

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            p = _np(pred)
            lab = _np(label).astype("int32").ravel()
            p = np.argmax(p, axis=1) if p.ndim > 1 else (p > 0.5)
            p = p.astype("int32").ravel()
            tp = int(((p == 1) & (lab == 1)).sum())
            fp = int(((p == 1) & (lab == 0)).sum())
            fn = int(((p == 0) & (lab == 1)).sum())
            if self.average == "macro":
                self._add(_f1(tp, fp, fn), 1)
            else:
                self._tp += tp
                self._fp += fp
                self._fn += fn
                self.sum_metric = _f1(self._tp, self._fp, self._fn) * (self.num_inst + len(lab))
                self.global_sum_metric = self.sum_metric
                self.num_inst += len(lab)
                self.global_num_inst = self.num_inst


def _f1(tp, fp, fn):
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _as_2d(x):
    return x.reshape(x.shape[0], 1) if x.ndim == 1 else x


@register
class MAE(EvalMetric):
    """Mean absolute error, averaged per batch (num_inst counts batches, as MXNet 1.x)."""

    def __init__(self, name="mae", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            lab, p = _as_2d(_np(label)), _as_2d(_np(pred))
            self._add(float(np.abs(lab - p).mean()), 1)


@register
class MSE(EvalMetric):
    """Mean squared error, averaged per batch."""

    def __init__(self, name="mse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            lab, p = _as_2d(_np(label)), _as_2d(_np(pred))
            self._add(float(((lab - p) ** 2.0).mean()), 1)


@register
class RMSE(EvalMetric):
    """Root mean squared error of each batch, averaged over batches."""

    def __init__(self, name="rmse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            lab, p = _as_2d(_np(label)), _as_2d(_np(pred))
            self._add(float(np.sqrt(((lab - p) ** 2.0).mean())), 1)


@_alias("ce")
class CrossEntropy(EvalMetric):
    """Mean of -log(pred[label] + eps) over samples; pred are probabilities."""

    def __init__(self, eps=1e-12, name="cross-entropy", output_names=None, label_names=None):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            lab = _np(label).ravel()
            p = _np(pred)
            if lab.shape[0] != p.shape[0]:
                raise ValueError(f"{self.name}: {lab.shape[0]} labels for {p.shape[0]} predictions")
            prob = p[np.arange(lab.shape[0]), np.int64(lab)]
            self._add(float((-np.log(prob + self.eps)).sum()), lab.shape[0])


@_alias("nll_loss")
class NegativeLogLikelihood(CrossEntropy):
    def __init__(self, eps=1e-12, name="nll-loss", output_names=None, label_names=None):
        super().__init__(eps=eps, name=name, output_names=output_names, label_names=label_names)


@register
class Perplexity(EvalMetric):
    """exp(mean negative log-likelihood), skipping `ignore_label`."""

    def __init__(self, ignore_label, axis=-1, name="perplexity", output_names=None, label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels, preds):
        if len(labels) != len(preds):
            raise ValueError(f"{len(labels)} labels for {len(preds)} predictions")
        loss, num = 0.0, 0
        for label, pred in zip(labels, preds):
            p = _np(pred)
            lab = _np(label).astype("int64")
            lab = lab.reshape(p.shape[:self.axis % p.ndim] + p.shape[self.axis % p.ndim + 1:]) \
                if lab.size == p.size // p.shape[self.axis] else lab
            prob = np.take_along_axis(p, np.expand_dims(lab, self.axis % p.ndim), axis=self.axis % p.ndim)
            prob = prob.squeeze(self.axis % p.ndim)
            if self.ignore_label is not None:
                keep = lab != self.ignore_label
                num -= int((~keep).sum())
                prob = np.where(keep, prob, 1.0)
            loss -= float(np.log(np.maximum(1e-10, prob)).sum())
            num += prob.size
        self._add(loss, num)

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.sum_metric / self.num_inst))


@_alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of labels and predictions, averaged per batch."""

    def __init__(self, name="pearsonr", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            self._add(float(np.corrcoef(_np(pred).ravel(), _np(label).ravel())[0, 1]), 1)


@register
class Loss(EvalMetric):
    """Mean of the loss values passed as predictions (labels are ignored)."""

    def __init__(self, name="loss", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, _, preds):
        if isinstance(preds, (NDArray, np.ndarray)):
            preds = [preds]
        for pred in preds:
            p = _np(pred)
            self._add(float(p.sum()), p.size)


@register
class CustomMetric(EvalMetric):
    """feval(label, pred) -> value, or (sum, count), on numpy arrays."""

    def __init__(self, feval, name=None, allow_extra_outputs=False, output_names=None, label_names=None):
        if name is None:
            name = feval.__name__
            if "<" in name:
                name = f"custom({name})"
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs, output_names=output_names,
                         label_names=label_names, has_global_stats=True)
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels, preds):
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        for pred, label in zip(preds, labels):
            reval = self._feval(_np(label), _np(pred))
            if isinstance(reval, tuple):
                self._add(reval[0], reval[1])
            else:
                self._add(reval, 1)


def np_metric(numpy_feval, name=None, allow_extra_outputs=False):
    """A CustomMetric from a numpy function feval(label, pred)."""
    def feval(label, pred):
        return numpy_feval(label, pred)
    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)

