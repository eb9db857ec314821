"""Handlers that watch a metric across epochs: CheckpointHandler (periodic and best-so-far
saves of the parameters and trainer states, resuming from the latest) and EarlyStoppingHandler.

mode='auto' picks 'max' for accuracy and F1 metrics and 'min' for the rest, as MXNet 1.9
documents. (MXNet 1.9's code tests `'acc' or 'f1' in name`, which is always true, so it picks
'max' for every metric, a loss included; graphc does what the documentation says. Pass mode
explicitly to get the same behaviour on both.)"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ....metric import CompositeEvalMetric, EvalMetric
from .events import BatchEnd, EpochEnd, TrainBegin, TrainEnd

__all__ = ["CheckpointHandler", "EarlyStoppingHandler"]


def _comparison(mode, monitor, who):
    """np.greater or np.less: whether a new value of `monitor` is an improvement."""
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{who} mode {mode} is unknown, fallback to auto mode. {who} will use max mode for f1 and "
                      f"accuracy metric comparison and use min mode other wise", RuntimeWarning)
        mode = "auto"
    if mode == "min":
        return np.less
    if mode == "max":
        return np.greater
    name = monitor.get()[0]
    if any(key in str(name).lower() for key in ("acc", "f1")):
        warnings.warn(f"`greater` operator will be used to determine if {name} has improved. Please specify "
                      f"`mode='min'` to use the `less` operator. Specify `mode='max' to disable this warning.`")
        return np.greater
    warnings.warn(f"`less` operator will be used to determine if {name} has improved. Please specify "
                  f"`mode='max'` to use the `greater` operator. Specify `mode='min' to disable this warning.`")
    return np.less


def _worst(op):
    return np.inf if op is np.less else -np.inf


class CheckpointHandler(TrainBegin, BatchEnd, EpochEnd):
    """Saves `<model_prefix>-epoch<E>batch<B>.params` and `.states` (trainer) in model_dir every
    epoch_period epochs and/or batch_period batches, keeping the last max_checkpoints; with
    save_best, also `<model_prefix>-best.*` whenever `monitor` improves. A hybridized net's
    graph is written once as `<model_prefix>-symbol.json`. resume_from_checkpoint loads the
    latest checkpoint in model_dir at train_begin and shortens the run by what it had done."""

    def __init__(self, model_dir, model_prefix="model", monitor=None, verbose=0, save_best=False, mode="auto",
                 epoch_period=1, batch_period=None, max_checkpoints=5, resume_from_checkpoint=False):
        self.monitor = monitor
        self.verbose = verbose
        os.makedirs(model_dir, exist_ok=True)
        self.model_dir = model_dir
        self.model_prefix = model_prefix
        self.save_best = save_best
        if save_best and not isinstance(monitor, EvalMetric):
            raise ValueError("To save best model only, please provide one of the metric objects from "
                             "estimator.train_metrics and estimator.val_metrics as monitor.")
        self.epoch_period = epoch_period
        self.batch_period = batch_period
        self.current_batch = 0
        self.current_epoch = 0
        self.max_checkpoints = max_checkpoints
        self.resume_from_checkpoint = resume_from_checkpoint
        self.saved_checkpoints = []
        self.trained_epoch = self.trained_batch = -1
        if save_best:
            self.monitor_op = _comparison(mode, monitor, "CheckpointHandler")
            self.best = _worst(self.monitor_op)

    def train_begin(self, estimator, *args, **kwargs):
        self.current_epoch = 0
        self.current_batch = 0
        if self.save_best:
            self.best = _worst(self.monitor_op)
        if self.resume_from_checkpoint:
            if (estimator.max_batch and (not self.batch_period or self.epoch_period)) or \
                    (estimator.max_epoch and (not self.epoch_period or self.batch_period)):
                raise ValueError("To use resume from checkpoint, you must only specify the same type of period you "
                                 "used for training. For example, if you are training based on number of epochs, "
                                 "you must save only based on epochs, and set batch_period to None.")
            self._resume_from_checkpoint(estimator)

    def batch_end(self, estimator, *args, **kwargs):
        if self.current_batch == 0:
            self._save_symbol(estimator)
        if self.batch_period and (self.current_batch + 1) % self.batch_period == 0:
            self._save_checkpoint(estimator)
        self.current_batch += 1

    def epoch_end(self, estimator, *args, **kwargs):
        if self.epoch_period and (self.current_epoch + 1) % self.epoch_period == 0:
            self._save_checkpoint(estimator)
        self.current_epoch += 1

    def _save_checkpoint(self, estimator):
        if self.resume_from_checkpoint:
            epoch = self.current_epoch + self.trained_epoch + 1
            batch = self.current_batch + self.trained_batch + (0 if estimator.max_epoch else 1)
        else:
            epoch, batch = self.current_epoch, self.current_batch
        prefix = "%s-epoch%dbatch%d" % (self.model_prefix, epoch, batch)
        self._save_params_and_trainer(estimator, prefix)
        if self.verbose > 0:
            estimator.logger.info("[Epoch %d] CheckpointHandler: trained total %d batches, saving model at %s with "
                                  "prefix: %s", self.current_epoch, self.current_batch + 1, self.model_dir, prefix)
        if self.save_best:
            self._save_if_best(estimator)

    def _save_if_best(self, estimator):
        name, value = self.monitor.get()
        if np.isnan(value):
            warnings.warn(RuntimeWarning(f"Skipping save best because {name} is not updated, make sure you pass one "
                                         f"of the metric objects estimator.train_metrics and estimator.val_metrics "
                                         f"as monitor"))
            return
        if self.monitor_op(value, self.best):
            prefix = self.model_prefix + "-best"
            self._save_params_and_trainer(estimator, prefix)
            if self.verbose > 0:
                estimator.logger.info("[Epoch %d] CheckpointHandler: %s improved from %0.5f to %0.5f, updating best "
                                      "model at %s with prefix: %s", self.current_epoch, name, self.best, value,
                                      self.model_dir, prefix)
            self.best = value
        elif self.verbose > 0:
            estimator.logger.info("[Epoch %d] CheckpointHandler: %s did not improve from %0.5f, skipping updating "
                                  "best model", self.current_epoch, name, self.best)

    def _save_symbol(self, estimator):
        """The traced graph of a hybridized net, through HybridBlock.export (its parameters file
        is dropped: the checkpoints hold the parameters)."""
        symbol_file = os.path.join(self.model_dir, self.model_prefix + "-symbol.json")
        cached = getattr(estimator.net, "_cached_op", None)
        if cached is None or getattr(cached, "last", None) is None:
            estimator.logger.info("Model architecture(symbol file) is not saved, please use HybridBlock to construct "
                                  "your model, and call net.hybridize() before passing to Estimator in order to save "
                                  "model architecture as %s.", symbol_file)
            return
        _, params_file = estimator.net.export(os.path.join(self.model_dir, self.model_prefix), epoch=0)
        os.remove(params_file)

    def _save_params_and_trainer(self, estimator, file_prefix):
        estimator.net.save_parameters(os.path.join(self.model_dir, file_prefix + ".params"))
        estimator.trainer.save_states(os.path.join(self.model_dir, file_prefix + ".states"))
        if "best" not in file_prefix:
            self.saved_checkpoints.append(file_prefix)
        if len(self.saved_checkpoints) > self.max_checkpoints:
            oldest = self.saved_checkpoints.pop(0)
            for ext in (".params", ".states"):
                path = os.path.join(self.model_dir, oldest + ext)
                if os.path.exists(path):
                    os.remove(path)

    def _resume_from_checkpoint(self, estimator):
        """Load the checkpoint with the highest epoch, and in it the highest batch. Checkpoints
        found on disk are not added to saved_checkpoints (as in MXNet 1.9), so max_checkpoints
        never deletes files an earlier run left."""
        self.trained_epoch = self._find_max_iteration(self.model_prefix + "-epoch", "epoch", "batch")
        self.trained_batch = self._find_max_iteration(f"{self.model_prefix}-epoch{self.trained_epoch}batch", "batch",
                                                      ".params")
        if self.trained_epoch == -1:
            what = "%d batches" % estimator.max_batch if estimator.max_batch else "%d epochs" % estimator.max_epoch
            estimator.logger.info("CheckpointHandler: No checkpoint found, training from scratch for " + what)
            return
        msg = "CheckpointHandler: Checkpoint resumed from epoch %d batch %d, continue to train for " % (
            self.trained_epoch, self.trained_batch)
        if estimator.max_epoch:
            if self.trained_epoch >= estimator.max_epoch - 1:
                raise ValueError("Found checkpoint with maximum number of epoch %d reached, please specify "
                                 "resume_from_checkpoint=False (default value) if you wan to train from scratch."
                                 % estimator.max_epoch)
            estimator.max_epoch = estimator.max_epoch - self.trained_epoch - 1
            msg += "%d epochs " % estimator.max_epoch
        if estimator.max_batch:
            if self.trained_batch >= estimator.max_batch - 1:
                raise ValueError("Found checkpoint with maximum number of batch %d reached, please specify "
                                 "resume_from_checkpoint=False (default value) if you wan to train from scratch."
                                 % self.trained_batch)
            estimator.max_batch = estimator.max_batch - self.trained_batch - 1
            msg += "%d batches " % estimator.max_batch
        stem = os.path.join(self.model_dir, "%s-epoch%dbatch%d" % (self.model_prefix, self.trained_epoch,
                                                                   self.trained_batch))
        for ext in (".params", ".states"):
            if not os.path.exists(stem + ext):
                raise ValueError(f"CheckpointHandler: failed to load checkpoint, {stem + ext} does not exist")
        estimator.net.load_parameters(stem + ".params", ctx=estimator.context)
        estimator.trainer.load_states(stem + ".states")
        estimator.logger.warning(msg)

    def _find_max_iteration(self, prefix, start, end):
        """The largest number between `start` and `end` in the names of model_dir's
        `<prefix>*.params` files; -1 when there is none."""
        best = -1
        for fname in os.listdir(self.model_dir):
            if not (fname.startswith(prefix) and fname.endswith(".params")):
                continue
            digits = fname[fname.find(start) + len(start):fname.find(end, fname.find(start) + len(start))]
            if not digits.isdigit():
                raise ValueError(f"Error parsing checkpoint file {fname!r}, please check your checkpoints have the "
                                 f"format: {{model_name}}-epoch{{epoch_number}}batch{{batch_number}}.params, there "
                                 f"should also be a .states file for each .params file")
            best = max(best, int(digits))
        return best


class EarlyStoppingHandler(TrainBegin, EpochEnd, TrainEnd):
    """Stops training when `monitor` has not improved by more than min_delta for `patience`
    epochs (checked at each epoch's end); `baseline`, when given, is the value to beat first."""

    def __init__(self, monitor, min_delta=0, patience=0, mode="auto", baseline=None):
        if not isinstance(monitor, EvalMetric):
            raise ValueError("Please provide one of the metric objects from estimator.train_metrics and "
                             "estimator.val_metrics as monitor.")
        if isinstance(monitor, CompositeEvalMetric):
            raise ValueError("CompositeEvalMetric is not supported for EarlyStoppingHandler, please specify a "
                             "simple metric instead.")
        self.monitor = monitor
        self.baseline = baseline
        self.patience = patience
        self.wait = 0
        self.stopped_epoch = 0
        self.current_epoch = 0
        self.stop_training = False
        self.monitor_op = _comparison(mode, monitor, "EarlyStopping")
        self.min_delta = min_delta if self.monitor_op is np.greater else -min_delta

    def train_begin(self, estimator, *args, **kwargs):
        self.wait = 0
        self.stopped_epoch = 0
        self.current_epoch = 0
        self.stop_training = False
        self.best = self.baseline if self.baseline is not None else _worst(self.monitor_op)

    def epoch_end(self, estimator, *args, **kwargs):
        name, value = self.monitor.get()
        if np.isnan(value):
            warnings.warn(RuntimeWarning(f"{name} is not updated, make sure you pass one of the metric objects from "
                                         f"estimator.train_metrics and estimator.val_metrics as monitor."))
        elif self.monitor_op(value - self.min_delta, self.best):
            self.best = value
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = self.current_epoch
                self.stop_training = True
        self.current_epoch += 1
        return self.stop_training

    def train_end(self, estimator, *args, **kwargs):
        if self.stopped_epoch > 0:
            estimator.logger.info("[Epoch %d] EarlyStoppingHanlder: early stopping due to %s not improving",
                                  self.stopped_epoch, self.monitor.get()[0])
