"""How Module turns gradients into new weights, with MXNet 1.9.1's choices:

* create_kvstore: no store for one device in one process (unless the kind is 'dist_*' or a
  KVStore object is given); 'local' over a parameter bigger than 16M elements updates on the
  devices instead of in the store; MXNET_UPDATE_ON_KVSTORE=0 turns store updates off.
* update_on_kvstore: push each gradient list, the store's optimizer updates its weight, every
  device pulls it back.
* otherwise: gradients are summed through the store when there is one, then each device's
  Updater updates its own copy, under index `i * num_device + k` (parameter i, device k) so
  every device keeps its own optimizer state, as MXNet does.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["create_kvstore", "initialize_kvstore", "update_params_on_kvstore", "update_params"]


def create_kvstore(kvstore, num_device, arg_params):
    """(store or None, update_on_kvstore)."""
    from .. import kvstore as kvs
    update_on_kvstore = bool(int(os.getenv("MXNET_UPDATE_ON_KVSTORE", "1")))
    if kvstore is None:
        kv = None
    elif isinstance(kvstore, kvs.KVStoreBase):
        kv = kvstore
    elif isinstance(kvstore, str):
        if num_device == 1 and "dist" not in kvstore:
            kv = None
        else:
            kv = kvs.create(kvstore)
            if kvstore == "local" and arg_params and \
                    max(int(np.prod(p.shape)) for p in arg_params.values()) > 1024 * 1024 * 16:
                update_on_kvstore = False
    else:
        raise TypeError(f"Module: kvstore must be a KVStore, a str or None, got {type(kvstore).__name__}")
    if kv is None:
        return None, False
    return kv, update_on_kvstore and kv.is_capable(kvs.KVStoreBase.OPTIMIZER)


def initialize_kvstore(kvstore, param_arrays, arg_params, param_names, update_on_kvstore):
    """Put every parameter into the store; when the store updates, hand its value to every device."""
    for name, on_devices in zip(param_names, param_arrays):
        if update_on_kvstore:
            kvstore.broadcast(name, arg_params[name], out=on_devices)
        else:
            kvstore.init(name, arg_params[name])


def update_params_on_kvstore(param_arrays, grad_arrays, kvstore, param_names):
    for index, (weights, grads) in enumerate(zip(param_arrays, grad_arrays)):
        if grads[0] is None:
            continue
        kvstore.pushpull(param_names[index], grads, out=weights, priority=-index)


def update_params(param_arrays, grad_arrays, updater, num_device, kvstore=None, param_names=None):
    per_device = [[] for _ in range(num_device)]
    for index, (weights, grads) in enumerate(zip(param_arrays, grad_arrays)):
        if grads[0] is None:
            continue
        if kvstore is not None:
            kvstore.pushpull(param_names[index], grads, out=grads, priority=-index)
        for k, (w, g) in enumerate(zip(weights, grads)):
            per_device[k].append((index * num_device + k, g, w))
    for updates in per_device:
        if updates:
            idx, grads, weights = zip(*updates)
            updater(list(idx), list(grads), list(weights))
