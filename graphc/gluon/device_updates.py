"""The SGD step of a model-parallel block's parameters: each device's share on that device, all
devices at the same time.

A partitioned block's parameters live on several devices, one copy each, and its Trainer keeps
one Updater for all of them (trainer._check_contexts). Run as one call, SGD's fused step updates
every weight on the calling thread, on one core, while the other devices sit idle (W11: about
17 ms of a step, a pass over 128 MB of weights and gradients). Here the step of each device's
weights is queued on that device's dispatcher (graphc/engine.py, through ndarray/pending.py so
that it runs after the queued work writing its gradients) and the Trainer waits for all of
them, so Trainer.step stays synchronous for its caller.

Who does what: the Updater's bookkeeping (creating optimizer states, counting the update) runs
on the caller's thread, in the order one Updater call does it; only the compiled steps run on
the devices, one program per device with its own coefficient buffer, and they read the
optimizer without changing it. Only plain SGD with dense gradients is split this way: the other
optimizers keep scratch buffers and per-device update counts in the optimizer object, which two
threads must not share, so they run as one call as before. The results are the same bits as
one call's: every weight's update reads only its own weight, gradient and momentum.
"""
from __future__ import annotations

from .. import device as _device, engine
from .fused_update import FusedSGD, fused_sgd_applies

__all__ = ["update_by_device"]


class _DeviceSGD(FusedSGD):
    """FusedSGD compiled for cpu(device): its kernels run on that device's worker pool."""

    def __init__(self, shapes, momentum, clip, device):
        super().__init__(shapes, momentum, clip, device=device)


def update_by_device(updater, entries) -> bool:
    """Apply `updater` (an optimizer.Updater) to entries [(index, grad, weight), ...], each
    device's weights on that device, concurrently; returns False, having updated nothing, where
    that does not apply (weights on one device, not plain SGD, sparse gradients, any case
    where the one call would not take the fused step), and the caller then makes its usual
    call."""
    from .optimizer import SGD
    if len(entries) < 2 or not _device.MULTI:
        return False
    groups = {}
    for index, grad, weight in entries:
        groups.setdefault(weight.context, []).append((index, grad, weight))
    opt = updater.optimizer
    if len(groups) < 2 or type(opt) is not SGD or any(c.device_type != "cpu" for c in groups) \
            or any(g.stype != "default" or isinstance(i, bytes) for i, g, _ in entries):
        return False
    opt._set_current_context(entries[0][2].context.device_id)      # (as the one call does)
    for index, _, weight in entries:
        if index not in updater.states:
            updater.states[index] = opt.create_state_multi_precision(index, weight)
            updater.states_synced[index] = True
    # only where the one call would take the fused step too (its per-parameter numpy updates,
    # past fused_update.MAX_PARAMETERS, round differently from a compiled step)
    if not fused_sgd_applies(opt, [w for _, _, w in entries], [g for _, g, _ in entries],
                             [updater.states[i] for i, _, _ in entries]):
        return False
    opt._update_count([i for i, _, _ in entries])
    clip = opt.clip_gradient if opt._clipping() else None
    cache = updater.__dict__.setdefault("_by_device", {})
    jobs = [_queue(cache, opt, ctx, group, updater.states, clip) for ctx, group in groups.items()]
    for job in jobs:
        job.wait()
    for job in jobs:
        if job.error is not None:
            engine.reported(job.error)        # raised here, not again at waitall
            raise job.error
    return True


def _queue(cache, opt, ctx, group, states, clip):
    """Queue the fused step of one device's share on that device; returns its Job."""
    from ..ndarray import pending
    index = [i for i, _, _ in group]
    grads = [g for _, g, _ in group]
    weights = [w for _, _, w in group]
    moms = [states[i] for i in index] if opt.momentum != 0.0 else []
    key = (ctx.device_id, tuple(w.shape for w in weights), opt.momentum, clip)
    fused = cache.get(key)
    if fused is None:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        fused = cache[key] = _DeviceSGD(key[1], opt.momentum, clip, ctx.device_id)
    state_list = [states[i] for i in index]

    def run():
        fused(opt, index, weights, grads, state_list)
        return ()
    return pending.run_async(ctx, run, reads=grads, writes=weights + moms, name=f"sgd step@{ctx}")
