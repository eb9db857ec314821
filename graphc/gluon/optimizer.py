"""Optimizers (`mx.optimizer`): MXNet 1.9's update rules, applied in place on the numpy
buffers of the weights (these run every step, so they reuse scratch buffers instead of
allocating temporaries, and never go through the operator dispatcher or the autograd tape).

Each rule states its formula; the order of floating-point operations follows MXNet's kernels
(e.g. SGD clips the rescaled gradient but not the weight-decay term; Adam adds weight decay
before clipping). `clip_gradient` follows MXNet's kernels too: None or a negative value means
no clipping.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..ndarray import NDArray

__all__ = ["Optimizer", "SGD", "NAG", "Adam", "AdamW", "RMSProp", "AdaGrad", "AdaDelta", "Adamax", "Nadam",
           "Signum", "Updater", "get_updater", "create", "register"]


def _one_minus(x, like):
    """1 - x as MXNet's kernels compute it for weights like `like`: in the weight's precision
    (1.f - beta for float32), not rounded from a double. For beta2 = 0.999 the two differ by
    5e-5 relatively in float32, which shows after a few steps."""
    one = like.dtype.type(1.0)
    return one - like.dtype.type(x)


def _zeros_like(weight, dtype=None, shape=None):
    """A zero state beside `weight` (of its shape unless given): on a GPU weight's device,
    zeroed there (reading `_data` would download the weight, and uploading zeros moves its
    size again)."""
    dtype = np.dtype(dtype or weight.dtype)
    shape = tuple(weight.shape) if shape is None else shape
    if weight.context.device_type == "gpu":
        from ..ndarray import gpu as _gpu
        return _gpu.zeros(shape, dtype, weight.context)
    return NDArray(np.zeros(shape, dtype), weight.context)


class Optimizer:
    """Base class. `update(index, weight, grad, state)` applies one step to `weight` in place.

    learning_rate (default 0.01, or the scheduler's base_lr), wd, rescale_grad (the Trainer sets
    it to 1/batch_size), clip_gradient, lr_scheduler, param_dict (index -> Parameter, whose
    lr_mult/wd_mult scale the rate and decay), begin_num_update, multi_precision (float16 weights
    get a float32 master copy)."""

    opt_registry: dict = {}

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None, learning_rate=None,
                 lr_scheduler=None, sym=None, begin_num_update=0, multi_precision=False, param_dict=None):
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None and lr_scheduler.base_lr != learning_rate:
            warnings.warn("learning rate from ``lr_scheduler`` has been overwritten by ``learning_rate`` in optimizer.")
            lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.lr_mult = {}
        self.wd_mult = {}
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._all_index_update_counts = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        self.aggregate_num = 0
        self.idx2name = dict(param_idx2name or {})
        self.param_dict = param_dict if param_dict else {}
        self._buffers = {}
        # MXNet's sym_info: the variables' __lr_mult__/__wd_mult__ attributes scale them
        self.sym_info = (sym.attr_dict(), sym.list_arguments()) if sym is not None else ()
        self.set_lr_mult({})
        self.set_wd_mult({})

    # -- registry ---------------------------------------------------------------------------
    @staticmethod
    def register(klass):
        name = klass.__name__.lower()
        if name in Optimizer.opt_registry:
            warnings.warn(f"WARNING: New optimizer {klass.__module__}.{klass.__name__} is overriding existing "
                          f"optimizer {name}")
        Optimizer.opt_registry[name] = klass
        return klass

    @staticmethod
    def create_optimizer(name, **kwargs):
        klass = Optimizer.opt_registry.get(name.lower())
        if klass is None:
            raise ValueError(f"Cannot find optimizer {name}: graphc supports "
                             f"{', '.join(sorted(Optimizer.opt_registry))}")
        return klass(**kwargs)

    # -- learning rate and weight decay ------------------------------------------------------
    @property
    def learning_rate(self):
        return self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr

    def set_learning_rate(self, lr):
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined. Note that "
                              "set_learning_rate can mutate the value of the learning rate of the optimizer "
                              "only when the LRScheduler of the optimizer is undefined.")
        self.lr = lr

    def set_lr_mult(self, args_lr_mult):
        self.lr_mult = self._symbol_mults("__lr_mult__")
        self.lr_mult.update(args_lr_mult)

    def _symbol_mults(self, key) -> dict:
        if not getattr(self, "sym_info", ()):
            return {}
        attrs, names = self.sym_info
        return {n: float(attrs[n][key]) for n in names if key in attrs.get(n, {})}

    def set_wd_mult(self, args_wd_mult):
        # by name (module API): only weights and gammas decay unless told otherwise
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not (n.endswith("_weight") or n.endswith("_gamma"))}
        self.wd_mult.update(self._symbol_mults("__wd_mult__"))
        self.wd_mult.update(args_wd_mult)

    def _set_current_context(self, device_id):
        """Update counts are kept per device, so several devices' updaters count alike."""
        if device_id not in self._all_index_update_counts:
            self._all_index_update_counts[device_id] = {}
        self._index_update_count = self._all_index_update_counts[device_id]

    def _update_count(self, index):
        for idx in (index if isinstance(index, (list, tuple)) else [index]):
            if idx not in self._index_update_count:
                self._index_update_count[idx] = self.begin_num_update
            self._index_update_count[idx] += 1
            self.num_update = max(self._index_update_count[idx], self.num_update)

    def _begin(self, index):
        """Count this update of `index` and return (lr, wd, t): its rate and decay (with their
        multipliers and the schedule) and how many times it has now been updated."""
        self._update_count(index)
        return self._get_lr(index), self._get_wd(index), self._index_update_count[index]

    def _get_lr(self, index):
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        if index in self.param_dict:
            lr *= self.param_dict[index].lr_mult
        elif index in self.lr_mult:
            lr *= self.lr_mult[index]
        elif index in self.idx2name:
            lr *= self.lr_mult.get(self.idx2name[index], 1.0)
        return lr

    def _get_wd(self, index):
        wd = self.wd
        if index in self.param_dict:
            wd *= self.param_dict[index].wd_mult
        elif index in self.wd_mult:
            wd *= self.wd_mult[index]
        elif index in self.idx2name:
            wd *= self.wd_mult.get(self.idx2name[index], 1.0)
        return wd

    # -- helpers for the in-place rules ------------------------------------------------------
    def _scratch(self, like, slot=0):
        key = (like.shape, like.dtype.str, slot)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty_like(like)
        return buf

    def _clipping(self):
        return self.clip_gradient is not None and self.clip_gradient >= 0

    def _decayed(self, g, w, wd):
        """clip(rescale_grad * g + wd * w) in scratch space: the gradient most MXNet update
        kernels start from (coupled weight decay, clipped after it is added)."""
        out = self._scratch(w)
        np.multiply(g, self.rescale_grad, out=out)
        if wd != 0:
            tmp = self._scratch(w, 1)
            np.multiply(w, wd, out=tmp)
            out += tmp
        if self._clipping():
            np.clip(out, -self.clip_gradient, self.clip_gradient, out=out)
        return out

    def _rescaled(self, g, out):
        """out = clip(rescale_grad * g)."""
        np.multiply(g, self.rescale_grad, out=out)
        if self._clipping():
            np.clip(out, -self.clip_gradient, self.clip_gradient, out=out)
        return out

    # -- state -------------------------------------------------------------------------------
    def create_state(self, index, weight):
        return None

    def create_state_multi_precision(self, index, weight):
        if self.multi_precision and weight.dtype == np.float16:
            master = NDArray(weight._data.astype(np.float32), weight.context)
            return (master, self.create_state(index, master))
        if weight.dtype == np.float16 and not self.multi_precision:
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or slow convergence. "
                          "Consider using multi_precision=True option of the optimizer")
        return self.create_state(index, weight)

    def update(self, index, weight, grad, state):
        raise NotImplementedError()

    def update_multi_precision(self, index, weight, grad, state):
        if getattr(weight, "stype", "default") != "default":
            # a sparse weight (row_sparse, as a Trainer pulls it): MXNet's kernels write it in
            # place; graphc's sparse arrays are immutable views, so the step runs on a dense copy
            # (lazily when the gradient is row_sparse, as MXNet's) and the result is assigned back
            dense = NDArray(np.array(weight._data), weight.context)
            self.update_multi_precision(index, dense, grad, state)
            weight[:] = dense
            return
        if getattr(grad, "stype", "default") == "row_sparse" and _lazy.applies(self, weight, grad):
            return _lazy.lazy_update(self, index, weight, grad, state)     # only the gradient's rows
        if self.multi_precision and weight.dtype == np.float16:
            master, inner = state
            grad32 = NDArray(grad._data.astype(np.float32), grad.context)
            self.update(index, master, grad32, inner)
            weight._data[...] = master._data
        else:
            self.update(index, weight, grad, state)

    def __getstate__(self):
        raise TypeError("optimizers are not pickled in graphc; Trainer.save_states writes their state")


register = Optimizer.register
create = Optimizer.create_optimizer


@register
class SGD(Optimizer):
    """SGD with optional momentum:
        g = clip(rescale_grad * grad)
        momentum == 0: weight = (1 - lr * wd) * weight - lr * g
        else:          mom = momentum * mom - lr * wd * weight - lr * g;  weight += mom"""

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def update(self, index, weight, grad, state):
        if grad.stype == "row_sparse" and _lazy.applies(self, weight, grad):
            return _lazy.lazy_update(self, index, weight, grad, state)
        lr, wd, _ = self._begin(index)
        sgd_step(self, weight._data, grad._data, state, lr, wd, self.momentum)


def sgd_step(opt, w, grad, state, lr, wd, momentum):
    """MXNet's sgd_update / sgd_mom_update on numpy arrays with an explicit rate and momentum
    (SGD, and LARS with its layer-wise rate): in place on `w` and the momentum `state`."""
    if opt._clipping():
        g = opt._rescaled(grad, opt._scratch(w))
        g *= lr
    else:
        # lr * rescale_grad * grad in one pass (a pass over every weight is what this costs)
        g = np.multiply(grad, lr * opt.rescale_grad, out=opt._scratch(w))
    if state is None:
        if wd != 0:
            w *= 1.0 - lr * wd
        w -= g
        return
    m = state._data
    m *= momentum
    if wd != 0:
        tmp = opt._scratch(w, 1)
        np.multiply(w, lr * wd, out=tmp)
        m -= tmp
    m -= g
    w += m


@register
class NAG(Optimizer):
    """Nesterov momentum, as MXNet 1.9.1's nag_mom_update (called with out=weight):
        g = clip(rescale_grad * grad) + wd * weight
        weight = weight + momentum^2 * mom - (1 + momentum) * lr * g
        mom = momentum * mom - lr * (clip(rescale_grad * grad) + wd * weight)
    The kernel writes the weight before the momentum and MXNet aliases the output with the
    weight, so the momentum's decay term sees the *updated* weight; that is kept here, since
    it is what MXNet computes. (momentum == 0: plain SGD.)"""

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def update(self, index, weight, grad, state):
        if state is None:
            return SGD.update(self, index, weight, grad, None)
        lr, wd, _ = self._begin(index)
        w, m = weight._data, state._data
        momentum = self.momentum
        g = self._rescaled(grad._data, self._scratch(w))
        tmp = self._scratch(w, 1)
        np.multiply(w, wd, out=tmp)
        tmp += g
        tmp *= (1.0 + momentum) * lr
        w += (momentum * momentum) * m
        w -= tmp
        np.multiply(w, wd, out=tmp)
        tmp += g
        tmp *= lr
        m *= momentum
        m -= tmp


@register
class Adam(Optimizer):
    """Adam (Kingma & Ba), bias correction folded into the rate:
        g = clip(rescale_grad * grad + wd * weight)
        mean = beta1 * mean + (1 - beta1) * g;  var = beta2 * var + (1 - beta2) * g^2
        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        weight -= lr_t * mean / (sqrt(var) + epsilon)"""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.lazy_update = lazy_update

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        if grad.stype == "row_sparse" and _lazy.applies(self, weight, grad):
            return _lazy.lazy_update(self, index, weight, grad, state)
        lr, wd, t = self._begin(index)
        lr *= math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        w = weight._data
        mean, var = state[0]._data, state[1]._data
        g = self._decayed(grad._data, w, wd)
        _adam_direction(g, mean, var, self.beta1, self.beta2, self.epsilon)
        g *= lr
        w -= g


def _adam_direction(g, mean, var, beta1, beta2, epsilon):
    """Update Adam's moments with gradient g, then overwrite g with mean / (sqrt(var) + eps):
    the step direction Adam and AdamW share (they differ in where weight decay enters)."""
    mean *= beta1
    mean += _one_minus(beta1, g) * g
    var *= beta2
    np.square(g, out=g)
    g *= _one_minus(beta2, g)
    var += g
    np.sqrt(var, out=g)
    g += epsilon
    np.divide(mean, g, out=g)


@register
class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as MXNet's adamw_update:
        g = clip(rescale_grad * grad)
        mean = beta1 * mean + (1 - beta1) * g;  var = beta2 * var + (1 - beta2) * g^2
        eta = lr * sqrt(1 - beta2^t) / (1 - beta1^t)   (lr when correct_bias=False)
        weight -= eta * (mean / (sqrt(var) + epsilon) + wd * weight)"""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-6, correct_bias=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.correct_bias = correct_bias

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        lr, wd, t = self._begin(index)
        if self.correct_bias:
            lr *= math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        w = weight._data
        mean, var = state[0]._data, state[1]._data
        g = self._rescaled(grad._data, self._scratch(w))
        _adam_direction(g, mean, var, self.beta1, self.beta2, self.epsilon)
        if wd != 0:
            tmp = self._scratch(w, 1)
            np.multiply(w, wd, out=tmp)
            g += tmp
        g *= lr
        w -= g


@register
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton); centered=True is Graves' variant:
        g = clip(rescale_grad * grad + wd * weight)
        n = (1 - gamma1) * g^2 + gamma1 * n
        plain:    weight -= lr * g / sqrt(n + epsilon)
        centered: m = (1 - gamma1) * g + gamma1 * m
                  delta = gamma2 * delta - lr * g / sqrt(n - m^2 + epsilon);  weight += delta
        then clip the weight to [-clip_weights, clip_weights] when given."""

    def __init__(self, learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False,
                 clip_weights=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1, self.gamma2 = gamma1, gamma2
        self.centered = centered
        self.epsilon = epsilon
        self.clip_weights = clip_weights

    def create_state(self, index, weight):
        if self.centered:
            return (_zeros_like(weight), _zeros_like(weight), _zeros_like(weight))
        return (_zeros_like(weight),)

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._begin(index)
        w = weight._data
        g = self._decayed(grad._data, w, wd)
        n = state[0]._data
        tmp = self._scratch(w, 1)
        np.square(g, out=tmp)
        tmp *= _one_minus(self.gamma1, w)
        n *= self.gamma1
        n += tmp
        if not self.centered:
            np.add(n, self.epsilon, out=tmp)
            np.sqrt(tmp, out=tmp)
            np.divide(g, tmp, out=tmp)
            tmp *= lr
            w -= tmp
        else:
            m, delta = state[1]._data, state[2]._data
            m *= self.gamma1
            m += _one_minus(self.gamma1, w) * g
            np.square(m, out=tmp)
            np.subtract(n, tmp, out=tmp)
            tmp += self.epsilon
            np.sqrt(tmp, out=tmp)
            np.divide(g, tmp, out=tmp)
            tmp *= lr
            delta *= self.gamma2
            delta -= tmp
            w += delta
        if self.clip_weights is not None and self.clip_weights >= 0:
            np.clip(w, -self.clip_weights, self.clip_weights, out=w)


@register
class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al.):
        g = clip(rescale_grad * grad);  history += g^2
        weight -= lr * (g / sqrt(history + eps) + wd * weight)"""

    def __init__(self, eps=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        return _zeros_like(weight)

    def update(self, index, weight, grad, state):
        if grad.stype == "row_sparse" and _lazy.applies(self, weight, grad):
            return _lazy.lazy_update(self, index, weight, grad, state)
        lr, wd, _ = self._begin(index)
        w, history = weight._data, state._data
        g = self._rescaled(grad._data, self._scratch(w))
        tmp = self._scratch(w, 1)
        np.square(g, out=tmp)
        history += tmp
        np.add(history, self.float_stable_eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=g)
        if wd != 0:
            np.multiply(w, wd, out=tmp)
            g += tmp
        g *= lr
        w -= g


@register
class AdaDelta(Optimizer):
    """AdaDelta (Zeiler), as MXNet 1.9.1's AdaDelta.update (weight decay outside the ratio):
        g = clip(rescale_grad * grad)
        acc_g = rho * acc_g + (1 - rho) * g^2
        delta = sqrt(acc_delta + epsilon) / sqrt(acc_g + epsilon) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta^2;  weight -= delta + wd * weight"""

    def __init__(self, rho=0.90, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho, self.epsilon = rho, epsilon

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        self._update_count(index)
        wd = self._get_wd(index)
        w = weight._data
        acc_g, acc_delta = state[0]._data, state[1]._data
        g = grad._data * np.float32(self.rescale_grad)
        if self.clip_gradient is not None:      # MXNet clips here whenever it is given
            np.clip(g, -self.clip_gradient, self.clip_gradient, out=g)
        acc_g *= self.rho
        acc_g += (1.0 - self.rho) * g * g
        delta = np.sqrt(acc_delta + self.epsilon) / np.sqrt(acc_g + self.epsilon) * g
        acc_delta *= self.rho
        acc_delta += (1.0 - self.rho) * delta * delta
        w -= delta + np.float32(wd) * w


@register
class Adamax(Optimizer):
    """AdaMax (Kingma & Ba, the infinity norm):
        g = clip(rescale_grad * grad + wd * weight)
        m = beta1 * m + (1 - beta1) * g;  u = max(beta2 * u, |g|)
        weight -= lr / (1 - beta1^t) * m / u"""

    def __init__(self, learning_rate=0.002, beta1=0.9, beta2=0.999, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2 = beta1, beta2

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        lr, wd, t = self._begin(index)
        lr /= 1.0 - self.beta1 ** t
        w = weight._data
        g = grad._data * self.rescale_grad + wd * w
        if self._clipping():
            np.clip(g, -self.clip_gradient, self.clip_gradient, out=g)
        m, u = state[0]._data, state[1]._data
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        u *= self.beta2
        np.maximum(u, np.abs(g), out=u)
        w -= lr * m / u


@register
class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat), with the momentum schedule of MXNet:
        momentum_t = beta1 * (1 - 0.5 * 0.96^(t * schedule_decay))"""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    def create_state(self, index, weight):
        return (_zeros_like(weight), _zeros_like(weight))

    def update(self, index, weight, grad, state):
        lr, wd, t = self._begin(index)
        w = weight._data
        g = grad._data * self.rescale_grad + wd * w
        if self._clipping():
            np.clip(g, -self.clip_gradient, self.clip_gradient, out=g)
        momentum_t = self.beta1 * (1.0 - 0.5 * (pow(0.96, t * self.schedule_decay)))
        momentum_t_1 = self.beta1 * (1.0 - 0.5 * (pow(0.96, (t + 1) * self.schedule_decay)))
        self.m_schedule = self.m_schedule * momentum_t
        m_schedule_next = self.m_schedule * momentum_t_1
        m_t, v_t = state[0]._data, state[1]._data
        m_t *= self.beta1
        m_t += (1.0 - self.beta1) * g
        v_t *= self.beta2
        v_t += (1.0 - self.beta2) * g * g
        grad_prime = g / (1.0 - self.m_schedule)
        m_t_prime = m_t / (1.0 - m_schedule_next)
        v_t_prime = v_t / (1.0 - pow(self.beta2, t))
        m_t_bar = (1.0 - momentum_t) * grad_prime + momentum_t_1 * m_t_prime
        w -= lr * m_t_bar / (np.sqrt(v_t_prime) + self.epsilon)


@register
class Signum(Optimizer):
    """signSGD with momentum (Bernstein et al.):
        momentum == 0 (MXNet's signsgd_update, decoupled decay):
              weight = (1 - lr * wd) * (1 - lr * wd_lh) * weight - lr * sign(rescale_grad * grad)
        else: mom = momentum * mom - (1 - momentum) * (clip(rescale_grad * grad) + wd * weight)
              weight = (1 - lr * wd_lh) * weight + lr * sign(mom)"""

    def __init__(self, learning_rate=0.01, momentum=0.9, wd_lh=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index, weight):
        return None if self.momentum == 0.0 else _zeros_like(weight)

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._begin(index)
        w = weight._data
        if state is None:
            step = -lr * np.sign(grad._data * self.rescale_grad)
            if wd != 0:
                w *= 1.0 - lr * wd
        else:
            g = self._rescaled(grad._data, self._scratch(w)) + wd * w
            m = state._data
            m *= self.momentum
            m -= (1.0 - self.momentum) * g
            step = lr * np.sign(m)
        if self.wd_lh:
            w *= 1.0 - lr * self.wd_lh
        w += step.astype(w.dtype, copy=False)


# -- Updater: per-device optimizer states -------------------------------------------------------
class Updater:
    """Applies an optimizer to (index, grad, weight) triples, creating each index's state on
    first use. The Trainer keeps one per device."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.states = {}
        self.states_synced = {}

    def __call__(self, index, grad, weight):
        if not isinstance(index, (list, tuple)):
            index, grad, weight = [index], [grad], [weight]
        # a store hands a str key over as bytes (as MXNet's C API does); MXNet's Updater turns it
        # back into the str, so lr_mult/wd_mult and the states are found by the parameter's name
        index = [i.decode() if isinstance(i, bytes) else i for i in index]
        if weight:
            self.optimizer._set_current_context(weight[0].context.device_id)
        for idx, w in zip(index, weight):
            if idx not in self.states:
                self.states[idx] = self.optimizer.create_state_multi_precision(idx, w)
                self.states_synced[idx] = True
        if len(index) > 1 and all(g.stype == "default" for g in grad) and self._fused_step(index, grad, weight):
            return
        for idx, g, w in zip(index, grad, weight):
            self.optimizer.update_multi_precision(idx, w, g, self.states[idx])

    def _fused_step(self, index, grad, weight) -> bool:
        """All of SGD's (fused_update.py) or Adam's, AdamW's, NAG's, RMSProp's, AdaGrad's
        (fused_optimizers.py) updates as one compiled program; False where it does not apply
        (then each parameter updates on its own)."""
        from .fused_optimizers import FusedStep, fused_rule
        from .fused_update import fused_sgd_applies, sgd_rule
        opt = self.optimizer
        states = [self.states[i] for i in index]
        if fused_sgd_applies(opt, weight, grad, states):
            rule = sgd_rule(opt)
        else:
            rule = fused_rule(opt, weight, grad, states)
            if rule is None:
                return False
        shapes = tuple(w._data.shape for w in weight)
        key = (shapes, rule.key)
        cache = self.__dict__.setdefault("_fused", {})
        fused = cache.get(key)
        if fused is None:
            if len(cache) >= 8:         # e.g. changing subsets under ignore_stale_grad: keep a few
                cache.pop(next(iter(cache)))
            fused = cache[key] = FusedStep(shapes, rule)
        opt._update_count(list(index))
        fused(opt, index, weight, grad, states)
        return True


def get_updater(optimizer):
    return Updater(optimizer)


# -- the other MXNet 1.9.1 optimizers, registered on import (their modules import this one) ---------
from . import optimizer_lazy as _lazy  # noqa: E402  (row_sparse gradients: lazy updates)
from .optimizers_layerwise import LAMB, LARS  # noqa: E402
from .optimizers_online import FTML, Ftrl, GroupAdaGrad, DCASGD, SGLD, ccSGD  # noqa: E402
from .optimizer_lbsgd import LBSGD  # noqa: E402

__all__ += ["LAMB", "LARS", "FTML", "Ftrl", "GroupAdaGrad", "DCASGD", "SGLD", "ccSGD", "LBSGD"]
