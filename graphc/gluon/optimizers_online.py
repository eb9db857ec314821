"""Optimizers from online learning and their relatives (`mx.optimizer.FTML`, `Ftrl`,
`GroupAdaGrad`, `DCASGD`, `SGLD`, `ccSGD`): MXNet 1.9.1's update rules (ftml_update,
ftrl_update and the Python rules of optimizer.py/contrib.py), in place on the numpy buffers.
"""
from __future__ import annotations

import math

import numpy as np

from ..ndarray import NDArray
from . import optimizers_on_device as _device
from .optimizer import Optimizer, SGD, _zeros_like, register

__all__ = ["FTML", "Ftrl", "GroupAdaGrad", "DCASGD", "SGLD", "ccSGD"]


@register
class FTML(Optimizer):
    """Follow the Moving Leader (Zheng & Kwok, ICML 2017):
        g = clip(rescale_grad * grad + wd * weight)
        v = beta2 * v + (1 - beta2) * g^2
        d_t = (1 - beta1^t) / lr * (sqrt(v / (1 - beta2^t)) + epsilon)
        z = beta1 * z + (1 - beta1) * g - (d_t - beta1 * d) * weight;  d = d_t
        weight = -z / d_t
    State (d, v, z), as MXNet orders it."""

    def __init__(self, beta1=0.6, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        lr, wd, t = self._begin(index)
        w = weight._data
        d, v, z = (s._data for s in state)
        g = self._decayed(grad._data, w, wd)
        v *= self.beta2
        v += (1.0 - self.beta2) * np.square(g)     # ftml_update takes its betas in double precision
        d_t = np.sqrt(v / np.float32(1.0 - self.beta2 ** t))
        d_t += self.epsilon
        d_t *= np.float32((1.0 - self.beta1 ** t) / lr)
        z *= self.beta1
        z += (1.0 - self.beta1) * g
        z -= (d_t - self.beta1 * d) * w
        d[...] = d_t
        np.divide(z, d_t, out=w)
        np.negative(w, out=w)


@register
class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the Trenches"):
        g = clip(rescale_grad * grad)
        z += g - (sqrt(n + g^2) - sqrt(n)) * weight / lr;  n += g^2
        weight = (sign(z) * lamda1 - z) / ((beta + sqrt(n)) / lr + wd) * (|z| > lamda1)
    State (z, n)."""

    def __init__(self, lamda1=0.01, learning_rate=0.1, beta=1, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1, self.beta = lamda1, beta

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._begin(index)
        w = weight._data
        z, n = state[0]._data, state[1]._data
        g = self._rescaled(grad._data, self._scratch(w))
        g2 = np.square(g)
        z += g - (np.sqrt(n + g2) - np.sqrt(n)) * w / np.float32(lr)
        n += g2
        out = (np.sign(z) * np.float32(self.lamda1) - z) / ((np.float32(self.beta) + np.sqrt(n)) / np.float32(lr)
                                                         + np.float32(wd))
        w[...] = out * (np.abs(z) > self.lamda1)


@register
class GroupAdaGrad(Optimizer):
    """AdaGrad with one accumulator per row of a 2-D weight (embeddings; MXNet contrib):
        g = clip(rescale_grad * grad);  history += mean(g^2, axis=1)
        weight -= lr * g / sqrt(history + eps)
    No weight decay: a non-zero wd is an error, as in MXNet."""

    def __init__(self, eps=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        if len(weight.shape) != 2:
            raise ValueError(f"GroupAdaGrad: expected a 2-D weight (one accumulator per row), got shape "
                             f"{tuple(weight.shape)}")
        return _zeros_like(weight, shape=(weight.shape[0], 1))

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._begin(index)
        if wd != 0:
            raise ValueError(f"GroupAdaGrad: weight decay is not supported, expected wd == 0, got {wd}")
        if _device.on_gpu(weight):
            return _device.group_adagrad_update(self, lr, weight, grad, state)   # GPU operators
        w, history = weight._data, state._data
        g = self._rescaled_mx(grad._data)
        history += np.mean(np.square(g), axis=1, keepdims=True)
        w -= np.float32(lr) * g / np.sqrt(history + np.float32(self.float_stable_eps))

    def _rescaled_mx(self, grad):
        return _clip_if_given(grad * np.float32(self.rescale_grad), self.clip_gradient)


def _clip_if_given(g, clip_gradient):
    """MXNet's Python-side rules clip whenever clip_gradient is not None."""
    if clip_gradient is not None:
        np.clip(g, -clip_gradient, clip_gradient, out=g)
    return g


@register
class DCASGD(Optimizer):
    """Delay-compensated asynchronous SGD (Zheng et al., https://arxiv.org/abs/1609.08326):
        g = clip(rescale_grad * grad)
        step = -lr * (g + wd * weight + lamda * g^2 * (weight - previous_weight))
        mom = momentum * mom + step   (step alone when momentum == 0)
        previous_weight = weight;  weight += mom
    State (mom or None, previous_weight). MXNet 1.9.1 itself fails on momentum != 0 (it takes
    the truth value of a many-element array); this is the rule its code spells."""

    def __init__(self, momentum=0.0, lamda=0.04, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lamda = lamda

    def create_state(self, index, weight):
        prev = weight.copy() if weight.context.device_type == "gpu" else NDArray(weight._data.copy(), weight.context)
        return (None if self.momentum == 0.0 else _zeros_like(weight), prev)

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._begin(index)
        w = weight._data
        mom, prev = state
        g = _clip_if_given(grad._data * np.float32(self.rescale_grad), self.clip_gradient)
        step = -np.float32(lr) * (g + np.float32(wd) * w + np.float32(self.lamda) * g * g * (w - prev._data))
        if mom is not None:
            m = mom._data
            m *= self.momentum
            m += step
            step = m
        prev._data[...] = w
        w += step


@register
class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics (Welling & Teh):
        g = clip(rescale_grad * grad)
        weight += -lr / 2 * (g + wd * weight) + N(0, sqrt(lr))
    The noise comes from graphc.random's generator, so mx.random.seed makes a run repeatable."""

    def update(self, index, weight, grad, state):
        from .. import random as _random
        if _device.on_gpu(weight):
            return _device.sgld_update(self, index, weight, grad)          # GPU operators
        lr, wd, _ = self._begin(index)
        w = weight._data
        g = _clip_if_given(grad._data * np.float32(self.rescale_grad), self.clip_gradient)
        w += -np.float32(lr / 2) * (g + np.float32(wd) * w)
        w += _random.generator().normal(0.0, math.sqrt(lr), size=w.shape).astype(w.dtype)


@register
class ccSGD(SGD):  # noqa: N801 (MXNet's name)
    """[Deprecated in MXNet] the same as SGD, kept so old scripts' 'ccsgd' still resolves."""
