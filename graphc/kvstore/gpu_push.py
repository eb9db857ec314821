"""A single-process store's push and pull when the values live on GPUs (data parallelism over
`[mx.gpu(0), mx.gpu(1)]`): the copies of a key are summed on the GPU that holds the stored
value, in MXNet's order (local.py), and the stored value, the updater's work and the pulls stay
in device memory. MXNet's CommDevice does the same (its 'local' store sums on the CPU instead;
graphc sums both kinds on the device, in each kind's order, since the values are the same).

A copy pushed from another GPU is first copied to the summing GPU (ndarray/gpu.py moves it).
With an optimizer set, its update runs as the compiled GPU step (gluon/gpu_step.py) where that
applies, else as the Updater's usual call on the GPU arrays. 2-bit compression and row_sparse
values are host features: such pushes take the store's ordinary path.
"""
from __future__ import annotations

import numpy as np


def _on_gpu(x) -> bool:
    return x.context.device_type == "gpu" and x.stype == "default"


def applies(store, groups) -> bool:
    """Whether store._push can sum `groups` on the device: one worker, no compression, every
    pushed value and every stored value a dense GPU array."""
    if store.num_workers != 1 or store._reduction.compression is not None:
        return False
    return all(_on_gpu(store._store[k]) and all(_on_gpu(v) for v in values) for k, values in groups)


def device_sum(values, ctx, order: str):
    """The sum of `values` (NDArrays, any GPUs) on GPU ctx as a new array, added in the order
    of local.DeviceReduction ('device': left to right; 'cpu': the first copy plus each group of
    up to four, each group summed left to right first)."""
    from .. import autograd
    with autograd.pause():
        arrays = [v if v.context == ctx else v.as_in_context(ctx) for v in values]
        if len(arrays) == 1:
            return arrays[0].copy()
        if order == "device":
            return _left_to_right(arrays)
        total = arrays[0]
        for start in range(1, len(arrays), 4):
            total = total + _left_to_right(arrays[start:start + 4])
        return total


def _left_to_right(arrays):
    total = arrays[0]
    for a in arrays[1:]:
        total = total + a
    return total


def push(store, groups) -> set:
    """KVStore._push for groups that `applies` to; returns the keys written into their outputs
    here (none: the pull copies the stored value out)."""
    from ..ops.errors import ShapeError
    pending = []                    # (key, sum, stored value) for the updater
    for k, values in groups:
        stored = store._store[k]
        dtype = np.dtype(stored.dtype)
        values = [v if np.dtype(v.dtype) == dtype else v.astype(dtype) for v in values]
        merged = device_sum(values, stored.context, store._reduction.order)
        if store._updater is None:
            store._unkept.discard(k)
            stored[:] = merged            # a device copy (ndarray/gpu.py's __setitem__)
        else:
            pending.append((k.encode() if isinstance(k, str) else k, merged, stored))
    # every key's update as one compiled step per GPU (one call per key would compile a step per
    # parameter shape); each key's update reads only its own arrays, so the values are those of
    # the per-key calls of the host path, in any order
    by_device = {}
    for item in pending:
        by_device.setdefault(item[2].context, []).append(item)
    for items in by_device.values():
        if _compiled_update(store._updater, items):
            continue
        for key, merged, stored in items:
            store._updater(key, merged, stored)
    for key, merged, stored in pending:
        if tuple(stored.shape) != tuple(merged.shape):
            raise ShapeError(f"kvstore.push: the updater changed the shape of key {key!r} from "
                             f"{tuple(merged.shape)} to {tuple(stored.shape)}")
    return set()


def _compiled_update(updater, items) -> bool:
    from ..gluon.optimizer import Updater
    if not isinstance(updater, Updater):
        return False
    from ..gluon.gpu_step import gpu_update
    keys, grads, weights = (list(t) for t in zip(*items))
    return gpu_update(updater, keys, grads, weights)


def pull_into(out, stored) -> bool:
    """A pull of a GPU-held value into a dense `out` as a device copy (or a copy between
    devices); False where the store's host path must write it (sparse outputs)."""
    if out.stype != "default" or not _on_gpu(stored):
        return False
    if out.context == stored.context and out.dtype == stored.dtype:
        stored.copyto(out)
        return True
    value = stored.asnumpy()        # (leaves the stored value on its GPU)
    if out.context.device_type != "gpu":
        out._data[...] = value
        return True
    from ..gluon.gpu_values import upload_into
    upload_into(out, value)         # straight into out's memory, not through its host mirror
    return True


__all__ = ["applies", "device_sum", "push", "pull_into"]
