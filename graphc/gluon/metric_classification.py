"""Classification metrics of MXNet 1.9.1 (`mx.metric`): Accuracy, TopKAccuracy, and the
confusion-count family F1, MCC (binary) and PCC (multiclass Matthews correlation).

F1 and MCC's `average`: 'macro' scores each update() call on its own and averages the scores;
'micro' scores the counts pooled since the last reset (reset_local for get(), reset for
get_global()). Predictions are class scores (N, classes), argmax'ed along axis 1."""
from __future__ import annotations

import math

import numpy

from .metric_base import EvalMetric, alias, check_label_shapes, host, register


@alias("acc")
class Accuracy(EvalMetric):
    """Fraction of correct predictions; predictions whose shape differs from the label's are
    class scores, argmax'ed along `axis`."""

    def __init__(self, axis=1, name="accuracy", output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.axis = axis

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred, label = host(pred), host(label)
            if pred.shape != label.shape:
                pred = numpy.argmax(pred, axis=self.axis)
            pred = pred.astype("int32").ravel()
            label = label.astype("int32").ravel()
            check_label_shapes(label, pred)
            self._accumulate(int((pred == label).sum()), len(pred))


@alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the `top_k` highest-scored classes (all of them
    when there are fewer classes). The name gains the suffix `_<top_k>`."""

    def __init__(self, top_k=1, name="top_k_accuracy", output_names=None, label_names=None):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.top_k = top_k
        if self.top_k <= 1:
            raise ValueError(f"TopKAccuracy: top_k is {top_k}; please use Accuracy if top_k is no more than 1")
        self.name += f"_{self.top_k}"

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred = host(pred).astype("float32")
            if pred.ndim > 2:
                raise ValueError(f"TopKAccuracy: predictions should be no more than 2 dims, got {pred.shape}")
            label = host(label).astype("int32")
            check_label_shapes(label, pred)
            if pred.ndim == 1:
                # MXNet compares the argpartition indices themselves with the labels here and leaves
                # the global sum out (so get_global() counts these samples as misses); graphc
                # does the same so that both give equal answers
                ranked = numpy.argpartition(pred, -self.top_k)
                correct = int((ranked.ravel() == label.ravel()).sum())
                self.sum_metric += correct
            else:
                top_k = min(pred.shape[1], self.top_k)
                top = numpy.argpartition(pred, -top_k, axis=1)[:, -top_k:]
                correct = int((top == label.reshape(-1, 1)).any(axis=1).sum())
                self.sum_metric += correct
                self.global_sum_metric += correct
            self.num_inst += pred.shape[0]
            self.global_num_inst += pred.shape[0]


class _ConfusionCounts:
    """True/false positives/negatives of a binary classifier (class 1 positive), local and global."""

    FIELDS = ("tp", "fp", "fn", "tn")

    def __init__(self):
        self.local = dict.fromkeys(self.FIELDS, 0)
        self.total = dict.fromkeys(self.FIELDS, 0)

    def add(self, owner, label, pred):
        pred, label = host(pred), host(label).astype("int32")
        pred_label = numpy.argmax(pred, axis=1)
        check_label_shapes(label, pred)
        if len(numpy.unique(label)) > 2:
            raise ValueError(f"{owner} currently only supports binary classification; labels hold "
                             f"{sorted(numpy.unique(label).tolist())}")
        pred_true, label_true = pred_label == 1, label.ravel() == 1
        counts = {"tp": int((pred_true & label_true).sum()), "fp": int((pred_true & ~label_true).sum()),
                  "fn": int((~pred_true & label_true).sum()), "tn": int((~pred_true & ~label_true).sum())}
        for key, value in counts.items():
            self.local[key] += value
            self.total[key] += value

    def reset_local(self):
        self.local = dict.fromkeys(self.FIELDS, 0)

    def reset(self):
        self.reset_local()
        self.total = dict.fromkeys(self.FIELDS, 0)


def _examples(c):
    return c["tp"] + c["fp"] + c["fn"] + c["tn"]


def _fscore(c):
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] > 0 else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _matthews(c):
    """(tp tn - fp fn) / sqrt of the product of the four margins, zero margins left out (so one
    class alone scores 0, not NaN)."""
    if not _examples(c):
        return 0.0
    tp, fp, fn, tn = (float(c[k]) for k in ("tp", "fp", "fn", "tn"))
    denom = 1.0
    for margin in (tp + fp, tp + fn, tn + fp, tn + fn):
        if margin != 0.0:
            denom *= margin
    return (tp * tn - fp * fn) / math.sqrt(denom)


class _BinaryScore(EvalMetric):
    """F1 and MCC: a score of confusion counts, per update ('macro') or pooled ('micro')."""

    _score = None

    def __init__(self, name, output_names, label_names, average):
        if average not in ("macro", "micro"):
            raise ValueError(f"{type(self).__name__}: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        self._counts = _ConfusionCounts()
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            self._counts.add(type(self).__name__, label, pred)
        score = type(self)._score
        if self.average == "macro":
            self.sum_metric += score(self._counts.local)
            self.global_sum_metric += score(self._counts.total)
            self.num_inst += 1
            self.global_num_inst += 1
            self._counts.reset()
        else:
            self.sum_metric = score(self._counts.local) * _examples(self._counts.local)
            self.global_sum_metric = score(self._counts.total) * _examples(self._counts.total)
            self.num_inst = _examples(self._counts.local)
            self.global_num_inst = _examples(self._counts.total)

    def reset(self):
        super().reset()
        self._counts.reset()

    def reset_local(self):
        super().reset_local()
        self._counts.reset_local()


@register
class F1(_BinaryScore):
    """F1 score (harmonic mean of precision and recall) of binary classification, class 1 positive."""

    _score = staticmethod(_fscore)

    def __init__(self, name="f1", output_names=None, label_names=None, average="macro"):
        super().__init__(name, output_names, label_names, average)


@register
class MCC(_BinaryScore):
    """Matthews correlation coefficient of binary classification, class 1 positive."""

    _score = staticmethod(_matthews)

    def __init__(self, name="mcc", output_names=None, label_names=None, average="macro"):
        super().__init__(name, output_names, label_names, average)


@register
class PCC(EvalMetric):
    """Multiclass Matthews correlation (Gorodkin's R_K) of a confusion matrix that grows with
    the largest class seen; pooled over all updates since reset_local (get) or reset
    (get_global). NaN while predictions or labels hold one class only."""

    def __init__(self, name="pcc", output_names=None, label_names=None, has_global_stats=True):
        self.k = 2
        super().__init__(name=name, output_names=output_names, label_names=label_names,
                         has_global_stats=has_global_stats)

    def _grow(self, inc):
        self.lcm = numpy.pad(self.lcm, ((0, inc), (0, inc)), "constant")
        self.gcm = numpy.pad(self.gcm, ((0, inc), (0, inc)), "constant")
        self.k += inc

    @staticmethod
    def _calc_mcc(cmat):
        n = cmat.sum()
        x, y = cmat.sum(axis=1), cmat.sum(axis=0)
        cov_xx, cov_yy = numpy.sum(x * (n - x)), numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        cov_xy = numpy.sum(cmat.diagonal() * n - x * y)
        return cov_xy / (cov_xx * cov_yy) ** 0.5

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = host(label).astype("int32"), host(pred)
            pred = pred.argmax(axis=1) if pred.shape != label.shape else pred.astype("int32")
            n = max(int(pred.max()), int(label.max()))
            if n >= self.k:
                self._grow(n + 1 - self.k)
            batch = numpy.zeros((self.k, self.k))
            numpy.add.at(batch, (pred.ravel(), label.ravel()), 1)
            self.lcm += batch
            self.gcm += batch
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self):
        return self._calc_mcc(self.lcm) * self.num_inst

    @property
    def global_sum_metric(self):
        return self._calc_mcc(self.gcm) * self.global_num_inst

    def reset(self):
        self.global_num_inst = 0.0
        self.gcm = numpy.zeros((self.k, self.k))
        self.reset_local()

    def reset_local(self):
        self.num_inst = 0.0
        self.lcm = numpy.zeros((self.k, self.k))
