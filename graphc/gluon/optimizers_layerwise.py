"""Layer-wise adaptive optimizers (`mx.optimizer.LAMB`, `mx.optimizer.LARS`): each scales its
step by a trust ratio ||weight|| / ||update|| computed per parameter, which is what lets large
batches train. MXNet 1.9.1's formulas (lamb_update_phase1/2, multi_lars + sgd_mom_update),
applied in place on the numpy buffers like the rules in optimizer.py.

The norms are taken in float64 and rounded to float32, as MXNet's float32 norm kernels deliver
them (a float32 running sum drifts on large tensors).
"""
from __future__ import annotations

import numpy as np

from ..ndarray import NDArray
from . import optimizers_on_device as _device
from .optimizer import Optimizer, _one_minus, _zeros_like, register, sgd_step

__all__ = ["LAMB", "LARS"]


def _l2norm(a) -> np.float32:
    """||a||_2 of a float array, as float32."""
    return np.float32(np.sqrt(np.dot(a.ravel().astype(np.float64), a.ravel().astype(np.float64))))


@register
class LAMB(Optimizer):
    """LAMB (You et al., https://arxiv.org/abs/1904.00962):
        g = clip(rescale_grad * grad)
        mean = beta1 * mean + (1 - beta1) * g;  var = beta2 * var + (1 - beta2) * g^2
        bias_correction: mean /= 1 - beta1^t;  var /= 1 - beta2^t   (on copies)
        r = mean / (sqrt(var) + epsilon) + wd * weight
        r1 = ||weight||, clamped to [lower_bound, upper_bound] where they are given;  r2 = ||r||
        weight -= lr * (r1 / r2 if r1 and r2 are non-zero else 1) * r"""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-6, lower_bound=None,
                 upper_bound=None, bias_correction=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.lower_bound, self.upper_bound = lower_bound, upper_bound
        self.bias_correction = bias_correction

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        if _device.on_gpu(weight):
            return _device.lamb_update(self, index, weight, grad, state)     # GPU operators
        lr, wd, t = self._begin(index)
        w = weight._data
        mean, var = state[0]._data, state[1]._data
        g = self._rescaled(grad._data, self._scratch(w))
        mean *= self.beta1
        mean += _one_minus(self.beta1, w) * g
        var *= self.beta2
        var += _one_minus(self.beta2, w) * np.square(g)
        if self.bias_correction:
            f = w.dtype.type       # the kernel's precision: 1 - beta^t in float32 for float32 weights
            mean_hat = mean / (f(1.0) - f(self.beta1) ** f(t))
            var_hat = var / (f(1.0) - f(self.beta2) ** f(t))
        else:
            mean_hat, var_hat = mean, var
        np.sqrt(var_hat, out=g)
        g += self.epsilon
        np.divide(mean_hat, g, out=g)
        if wd != 0:
            g += wd * w
        r1, r2 = _l2norm(w), _l2norm(g)
        # MXNet passes a bound only when it is truthy; both clamp r1 from their side
        if self.lower_bound:
            r1 = max(r1, np.float32(self.lower_bound))
        if self.upper_bound:
            r1 = min(r1, np.float32(self.upper_bound))
        if r1 != 0 and r2 != 0:
            lr = np.float32(lr) * (r1 / r2)
        g *= lr
        w -= g


@register
class LARS(Optimizer):
    """LARS (You et al., https://arxiv.org/abs/1708.03888): SGD with momentum whose rate is
    scaled per layer (except parameters named *gamma, *beta or *bias) by the trust ratio
        lr_layer = lr * eta * ||w|| / (||rescale_grad * grad|| + wd * ||w|| + eps)
    (lr where either norm is zero), then the SGD rule of optimizer.SGD with lr_layer.
    momentum_correction scales the momentum by lr_now / lr_previous when a schedule changes the
    rate (Goyal et al., https://arxiv.org/abs/1706.02677)."""

    def __init__(self, momentum=0.0, lazy_update=True, eta=0.001, eps=0, momentum_correction=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update
        self.eta, self.eps = eta, eps
        self.momentum_correction = momentum_correction
        self.last_lr = self.cur_lr = None

    def set_wd_mult(self, args_wd_mult):
        # by name (module API): LARS decays only weights (MXNet's LARS leaves gammas out too)
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith("_weight")}
        self.wd_mult.update(args_wd_mult)

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def create_state_multi_precision(self, index, weight):
        """float16 weights under multi_precision: (momentum, float32 master), MXNet's order for LARS."""
        if self.multi_precision and weight._data.dtype == np.float16:
            master = NDArray(weight._data.astype(np.float32), weight.context)
            return (self.create_state(index, master), master)
        return super().create_state_multi_precision(index, weight)

    def update_multi_precision(self, index, weight, grad, state):
        if not (self.multi_precision and weight._data.dtype == np.float16):
            return self.update(index, weight, grad, state)
        mom, master = state
        self._update_count(index)
        self._track_lr()
        lr, wd = self._get_lr(index), self._get_wd(index)
        # MXNet takes the trust ratio's norms on the float16 weight and gradient
        lr = self._layer_lr(index, weight._data, grad._data, lr, wd)
        sgd_step(self, master._data, grad._data.astype(np.float32), mom, lr, wd, self._momentum())
        weight._data[...] = master._data

    def _momentum(self):
        if self.momentum > 0 and self.momentum_correction and self.last_lr != 0:
            return self.momentum * (self.cur_lr / self.last_lr)
        return self.momentum

    def _track_lr(self):
        """Remember the global rate of the previous and this update (for momentum_correction)."""
        if self.cur_lr is not None:
            self.last_lr = self.cur_lr
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        if self.cur_lr is None:
            self.last_lr = lr
        self.cur_lr = lr

    def _layer_wise(self, index) -> bool:
        name = self.idx2name.get(index, str(index))
        return not (name.endswith("gamma") or name.endswith("beta") or name.endswith("bias"))

    def _layer_lr(self, index, w, g, lr, wd):
        if not self._layer_wise(index):
            return lr
        return self._trust_lr(_l2norm(w), _l2norm(g), lr, wd)

    def _trust_lr(self, w_norm, g_norm, lr, wd):
        """lr scaled by the trust ratio, from ||w|| and ||grad|| (float32 scalars; the GPU step
        takes them on the device: gluon/gpu_rules.py)."""
        w_norm = np.float32(w_norm)
        g_norm = np.float32(g_norm) * np.float32(self.rescale_grad)
        if w_norm > 0 and g_norm > 0:
            # float32 arithmetic, as MXNet's multi_lars kernel
            lr32, wd32 = np.float32(lr), np.float32(wd)
            return float(lr32 * np.float32(self.eta) * w_norm / (g_norm + wd32 * w_norm + np.float32(self.eps)))
        return lr

    def update(self, index, weight, grad, state):
        self._update_count(index)
        self._track_lr()
        lr, wd = self._get_lr(index), self._get_wd(index)
        lr = self._layer_lr(index, weight._data, grad._data, lr, wd)
        sgd_step(self, weight._data, grad._data, state, lr, wd, self._momentum())


