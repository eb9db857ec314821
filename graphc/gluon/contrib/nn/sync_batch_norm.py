"""SyncBatchNorm: batch normalization whose batch is the union of the slices that several
devices of one process hold (data parallelism with split_and_load), as MXNet's SyncBatchNorm
does across GPUs (Zhang et al., "Context Encoding for Semantic Segmentation", CVPR 2018).

What is done, by case:
- num_devices=1, inference, or use_global_stats: it is BatchNorm (the same operator, compiled
  when hybridized); nothing crosses devices.
- num_devices > 1 in training, eagerly: each device's forward is a job on that device's
  dispatcher (graphc/engine.py) that sums x and x*x per channel over its slice, exchanges the
  sums with the other devices (device_rendezvous.py), normalizes with the mean and (biased)
  variance of the whole batch, and moves running_mean/running_var toward them, so every device
  ends with the same statistics. Its backward exchanges the per-channel sums of dy and
  dy * x_hat the same way, so dx is the gradient of the whole batch's normalization; gamma's and
  beta's gradients are each device's own share (the Trainer's kvstore sums them, as in MXNet).
  Because the work is queued per device, the usual loop (`[net(x) for x in parts]`, then
  `backward()` per loss) runs the devices concurrently and they meet at each exchange.
- num_devices > 1 while hybridized: refused with an explanation. A compiled program runs
  without returning to Python, so it cannot meet the other devices halfway through; keep the
  block (or the net) eager, or use num_devices=1 for per-device statistics.
"""
from __future__ import annotations

import warnings

import numpy as np

from .... import autograd
from ....ops.errors import GraphcError
from ...nn import BatchNorm
from . import device_rendezvous

__all__ = ["SyncBatchNorm"]


class SyncBatchNorm(BatchNorm):
    """Cross-device batch normalization over axis 1 (see the module docstring). num_devices
    defaults, as in MXNet, to the number of GPUs (1 when there is none), with a warning."""

    def __init__(self, in_channels=0, num_devices=None, momentum=0.9, epsilon=1e-5, center=True, scale=True,
                 use_global_stats=False, beta_initializer="zeros", gamma_initializer="ones",
                 running_mean_initializer="zeros", running_variance_initializer="ones", **kwargs):
        super().__init__(axis=1, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
                         use_global_stats=use_global_stats, beta_initializer=beta_initializer,
                         gamma_initializer=gamma_initializer, running_mean_initializer=running_mean_initializer,
                         running_variance_initializer=running_variance_initializer, in_channels=in_channels,
                         **kwargs)
        if num_devices is None:
            warnings.warn("Caution using SyncBatchNorm: if not using all the GPUs, please manually set "
                          "num_devices", UserWarning, stacklevel=2)
            from ....context import num_gpus
            num_devices = max(num_gpus(), 1)
        self._ndev = int(num_devices)
        self._kwargs = {"eps": epsilon, "momentum": momentum, "fix_gamma": not scale,
                        "use_global_stats": use_global_stats, "ndev": self._ndev, "key": self.prefix}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        in_channels = self.gamma.shape[0]
        return f"{self.__class__.__name__}({args}, in_channels={in_channels if in_channels else None})"

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        k = self._kwargs
        local = self._ndev == 1 or k["use_global_stats"] or not autograd.is_training()
        if local:
            out = F.BatchNorm(x, gamma, beta, running_mean, running_var, name=self.prefix + "fwd", axis=1,
                              eps=k["eps"], momentum=k["momentum"], fix_gamma=k["fix_gamma"],
                              use_global_stats=k["use_global_stats"])
            return out[0] if isinstance(out, (list, tuple)) else out
        if not F.__name__.endswith("ndarray"):
            raise GraphcError(f"SyncBatchNorm '{self.prefix}': num_devices={self._ndev} needs the devices to meet "
                              f"in the middle of the forward and backward, which a compiled (hybridized) "
                              f"program cannot do; leave this block eager (do not hybridize it or its "
                              f"parents), or use num_devices=1 for per-device statistics")
        return _sync_forward(x, gamma, beta, running_mean, running_var, key=self.prefix, ndev=self._ndev,
                             eps=k["eps"], momentum=k["momentum"], fix_gamma=k["fix_gamma"])


def _reduce_axes(ndim):
    return (0,) + tuple(range(2, ndim))


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _sync_forward(x, gamma, beta, running_mean, running_var, key, ndev, eps, momentum, fix_gamma):
    from .... import device
    from ....ndarray import pending
    ctx = x.context
    if not device.MULTI:       # fail now rather than after the rendezvous deadline
        raise GraphcError(f"SyncBatchNorm '{key}': num_devices={ndev} but only {ctx} has held data in this "
                          f"process; split the batch over {ndev} devices (gluon.utils.split_and_load) or use "
                          f"num_devices=1")
    if ctx.device_type != "cpu":
        raise GraphcError(f"SyncBatchNorm '{key}': synchronising across devices needs CPU devices (each with "
                          f"its own dispatcher); the input is on {ctx}")
    args = [pending.local_value(a, ctx) for a in (x, gamma, beta)]
    saved = {}

    def forward():
        xv, g, b = (np.asarray(a._data) for a in args)
        axes = _reduce_axes(xv.ndim)
        count = xv.size // xv.shape[1]
        x64 = xv.astype(np.float64)
        total_sum, total_sq, total_count = device_rendezvous.exchange(
            (key, "forward"), ctx.device_id, ndev, [x64.sum(axis=axes), (x64 * x64).sum(axis=axes), count],
            f"SyncBatchNorm '{key}' forward")
        mean = total_sum / total_count
        var = np.maximum(total_sq / total_count - mean * mean, 0.0)
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = (x64 - _per_channel(mean, xv.ndim)) * _per_channel(inv_std, xv.ndim)
        scale = np.ones_like(mean) if fix_gamma else g.astype(np.float64)
        y = x_hat * _per_channel(scale, xv.ndim) + _per_channel(b.astype(np.float64), xv.ndim)
        rm, rv = running_mean._data, running_var._data
        rm[...] = rm * momentum + mean * (1 - momentum)
        rv[...] = rv * momentum + var * (1 - momentum)
        saved.update(x_hat=x_hat, inv_std=inv_std, scale=scale, count=total_count)
        return [y.astype(xv.dtype)]

    out = pending.new_output(x.shape, x.dtype, ctx)
    job = pending.run_async(ctx, forward, reads=args, writes=[running_mean, running_var], outputs=[out],
                            name=f"SyncBatchNorm {key}")
    if autograd.is_recording() and any(autograd.needs_grad(a) for a in (x, gamma, beta)):
        def backward(F, ins, outs, ograds):
            return _sync_backward(ograds[0], saved, job, ctx, key, ndev, fix_gamma, x.dtype)
        autograd.record_custom([x, gamma, beta], [out], backward, "SyncBatchNorm")
    return out


def _sync_backward(dy, saved, forward_job, ctx, key, ndev, fix_gamma, dtype):
    from ....ndarray import pending
    dy = pending.local_value(dy, ctx)
    channels = dy.shape[1]
    dx = pending.new_output(dy.shape, dtype, ctx)
    dgamma = pending.new_output((channels,), dtype, ctx)
    dbeta = pending.new_output((channels,), dtype, ctx)

    def backward():
        d = np.asarray(dy._data, np.float64)
        x_hat, inv_std, scale, count = saved["x_hat"], saved["inv_std"], saved["scale"], saved["count"]
        axes = _reduce_axes(d.ndim)
        local_dbeta = d.sum(axis=axes)
        local_dgamma = (d * x_hat).sum(axis=axes)
        sum_dy, sum_dy_xhat = device_rendezvous.exchange((key, "backward"), ctx.device_id, ndev,
                                                         [local_dbeta, local_dgamma], f"SyncBatchNorm '{key}' backward")
        nd_ = d.ndim
        grad_x = _per_channel(scale * inv_std / count, nd_) * (
            count * d - _per_channel(sum_dy, nd_) - x_hat * _per_channel(sum_dy_xhat, nd_))
        grad_gamma = np.zeros_like(local_dgamma) if fix_gamma else local_dgamma
        return [grad_x.astype(dtype), grad_gamma.astype(dtype), local_dbeta.astype(dtype)]

    pending.run_async(ctx, backward, reads=[dy], outputs=[dx, dgamma, dbeta], name=f"SyncBatchNorm {key} backward",
                      after=[forward_job])
    return [dx, dgamma, dbeta]
