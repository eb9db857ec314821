"""Regression metrics of MXNet 1.9.1 (`mx.metric`): MAE, MSE, RMSE (each the mean over batches
of a per-batch error: num_inst counts update() batches, as MXNet 1.x) and PearsonCorrelation."""
from __future__ import annotations

import numpy

from .metric_base import EvalMetric, alias, check_label_shapes, host, register


def _column(x):
    return x.reshape(x.shape[0], 1) if x.ndim == 1 else x


class _BatchError(EvalMetric):
    """An error computed per (label, pred) pair and averaged over pairs."""

    def __init__(self, name, output_names, label_names):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    @staticmethod
    def _error(diff):
        raise NotImplementedError

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            # (N,) against (N, 1) compares row by row, not as an (N, N) broadcast
            self._accumulate(float(self._error(_column(host(label)) - _column(host(pred)))), 1)


@register
class MAE(_BatchError):
    """Mean absolute error."""

    def __init__(self, name="mae", output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _error(diff):
        return numpy.abs(diff).mean()


@register
class MSE(_BatchError):
    """Mean squared error."""

    def __init__(self, name="mse", output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _error(diff):
        return (diff ** 2.0).mean()


@register
class RMSE(_BatchError):
    """Root mean squared error of each batch, averaged over batches (not the root of the pooled MSE)."""

    def __init__(self, name="rmse", output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _error(diff):
        return numpy.sqrt((diff ** 2.0).mean())


class _PooledMoments:
    """Running means, sums of squared deviations and co-moment of two series fed in batches
    (Chan et al.'s pairwise update), so the correlation of everything seen needs no history."""

    def __init__(self):
        self.count, self.mean_x, self.mean_y, self.m2_x, self.m2_y, self.c_xy = 0, 0.0, 0.0, 0.0, 0.0, 0.0

    def add(self, x, y):
        self.count += len(x)
        delta_x, delta_y = x - self.mean_x, y - self.mean_y
        new_mean_x = self.mean_x + numpy.sum(delta_x / self.count)
        new_mean_y = self.mean_y + numpy.sum(delta_y / self.count)
        self.m2_x += numpy.sum(delta_x * (x - new_mean_x))
        self.m2_y += numpy.sum(delta_y * (y - new_mean_y))
        self.c_xy += numpy.sum((x - new_mean_x) * delta_y)
        self.mean_x, self.mean_y = new_mean_x, new_mean_y

    def correlation(self):
        return self.c_xy / numpy.sqrt(self.m2_x * self.m2_y)


@alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of labels and predictions: average 'macro' averages each batch's
    correlation, 'micro' correlates everything seen since reset() (reset_local does not clear
    it, as in MXNet). MXNet's get_global() in 'micro' returns 0.0 (a sum it never fills);
    graphc's returns the pooled correlation, the same as get()."""

    def __init__(self, name="pearsonr", output_names=None, label_names=None, average="macro"):
        if average not in ("macro", "micro"):
            raise ValueError(f"PearsonCorrelation: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def reset(self):
        super().reset()
        self._moments = _PooledMoments()

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            check_label_shapes(label, pred, False, True)
            label = host(label).ravel().astype(numpy.float64)
            pred = host(pred).ravel().astype(numpy.float64)
            if self.average == "macro":
                self._accumulate(float(numpy.corrcoef(pred, label)[0, 1]), 1)
            else:
                self._moments.add(label, pred)
                self.num_inst += 1
                self.global_num_inst += 1

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        if self.average == "macro":
            return (self.name, self.sum_metric / self.num_inst)
        return (self.name, float(self._moments.correlation()))

    def get_global(self):
        if self.average == "macro":
            return super().get_global()
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, float(self._moments.correlation()))
