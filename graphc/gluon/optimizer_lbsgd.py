"""LBSGD (`mx.optimizer.LBSGD`): MXNet 1.9.1's large-batch SGD. It emulates a batch
`batch_scale` times bigger than the one each step sees: the gradients of `batch_scale`
consecutive updates of a parameter are summed, and only every `batch_scale`-th update moves the
weight, with their mean and the rate scaled by a warm-up multiplier (rising from 1 to
batch_scale over `warmup_epochs * updates_per_epoch` updates: 'linear', 'power2' or 'sqrt'; any
other name keeps 1) or, with warmup_strategy='lars', by the layer's trust ratio
sqrt(||w||^2 / (||g||^2 + wd ||w||^2)) clipped to [0.01, 100]. The move itself is SGD's
(optimizer.sgd_step: momentum, weight decay, rescale_grad, clip_gradient), as MXNet's is
sgd_update / sgd_mom_update. The updates in between leave the weight as it is (MXNet runs
sgd_update with lr 0 there).
"""
from __future__ import annotations

import math

import numpy as np

from ..ndarray import NDArray
from . import optimizers_on_device as _device
from .optimizer import Optimizer, _zeros_like, register, sgd_step

__all__ = ["LBSGD"]


@register
class LBSGD(Optimizer):
    def __init__(self, momentum=0.0, multi_precision=False, warmup_strategy="linear", warmup_epochs=5,
                 batch_scale=1, updates_per_epoch=32, begin_epoch=0, num_epochs=60, **kwargs):
        super().__init__(multi_precision=multi_precision, **kwargs)
        self.momentum = momentum
        self.warmup_strategy = warmup_strategy
        self.warmup_epochs = warmup_epochs
        self.batch_scale = batch_scale
        self.updates_per_epoch = updates_per_epoch
        self.init_updates = begin_epoch * updates_per_epoch
        self.num_epochs = num_epochs
        self._sums: dict = {}       # index -> [sum of the gradients since the last move or None, count]

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def create_state_multi_precision(self, index, weight):
        """float16 weights under multi_precision: (momentum, float32 master), MXNet's order here."""
        if self.multi_precision and weight.dtype == np.float16:
            master = NDArray(weight._data.astype(np.float32), weight.context)
            return (self.create_state(index, master), master)
        return super().create_state_multi_precision(index, weight)

    def _warmup_mult(self, count) -> float:
        """The rate multiplier after `count` updates (begin_epoch's included)."""
        ramp = self.warmup_epochs * self.updates_per_epoch
        top = float(self.batch_scale)
        if count >= ramp:
            return top
        if ramp <= 1:
            return 1.0
        fraction = count / ramp
        if self.warmup_strategy == "linear":
            return 1.0 + (top - 1) * fraction
        if self.warmup_strategy == "power2":
            return 1.0 + (top - 1) * fraction * fraction
        if self.warmup_strategy == "sqrt":
            return 1.0 + (top - 1) * math.sqrt(fraction)
        return 1.0

    @staticmethod
    def _lars_mult(w, g, wd) -> float:
        w2 = float(np.sum(np.square(w, dtype=np.float32)))
        g2 = float(np.sum(np.square(g, dtype=np.float32)))
        return LBSGD._lars_from_sums(w2, g2, wd)

    @staticmethod
    def _lars_from_sums(w2, g2, wd) -> float:
        """The 'lars' multiplier from sum(w^2) and sum(g^2) (the GPU update sums on the device)."""
        return min(max(math.sqrt(w2 / (g2 + wd * w2 + 1e-18)), 0.01), 100.0)

    def _accumulate(self, index, grad):
        """(sum of the gradients since the weight last moved, updates counted so far)."""
        entry = self._sums.get(index)
        if entry is None:
            entry = self._sums[index] = [None, self.init_updates]
        entry[0] = grad.copy() if entry[0] is None else entry[0] + grad
        entry[1] += 1
        return entry

    def _step(self, index, w, grad, momentum_state, weight_for_norms):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        entry = self._accumulate(index, grad)
        if entry[1] % self.batch_scale != 0:
            return False
        g = entry[0] / self.batch_scale
        mult = self._lars_mult(weight_for_norms, g, wd) if self.warmup_strategy == "lars" \
            else self._warmup_mult(entry[1])
        sgd_step(self, w, g.astype(w.dtype, copy=False), momentum_state, lr * mult, wd, self.momentum)
        entry[0] = None
        return True

    def update(self, index, weight, grad, state):
        if _device.on_gpu(weight):
            return _device.lbsgd_update(self, index, weight, grad, state)        # GPU operators
        self._step(index, weight._data, grad._data, state, weight._data)

    def update_multi_precision(self, index, weight, grad, state):
        if not (self.multi_precision and weight.dtype == np.float16):
            return self.update(index, weight, grad, state)
        momentum, master = state
        if self._step(index, master._data, grad._data.astype(np.float32), momentum, weight._data):
            weight._data[...] = master._data
