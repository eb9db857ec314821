"""KVStore: where data-parallel gradients meet. `kv.create('local' | 'device')` reduces the
copies of a key held on several devices in this process (sum) and broadcasts the result back.
Distributed stores ('dist_sync' over MPI) are later work and are refused clearly."""
from __future__ import annotations

import numpy as np

from .ops.errors import GraphcError


class KVStore:
    def __init__(self, kind="local"):
        self.type = kind
        self._store = {}
        self._updater = None
        self._optimizer = None

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1

    def _keys(self, key, value):
        if isinstance(key, (list, tuple)):
            return list(key), list(value)
        return [key], [value]

    @staticmethod
    def _reduce(value):
        from .ndarray import NDArray
        if isinstance(value, (list, tuple)):
            total = np.zeros_like(value[0]._data)
            for v in value:
                total += v._data
            return total
        if isinstance(value, NDArray):
            return value._data.copy()
        raise GraphcError(f"kvstore: expected NDArrays, got {type(value).__name__}")

    def init(self, key, value):
        for k, v in zip(*self._keys(key, value)):
            self._store[k] = self._reduce(v[0] if isinstance(v, (list, tuple)) else v)

    def push(self, key, value, priority=0):
        from .ndarray import NDArray
        for k, v in zip(*self._keys(key, value)):
            if k not in self._store:
                raise GraphcError(f"kvstore: key {k!r} was never initialised (call init first)")
            reduced = self._reduce(v)
            if self._updater is not None:
                stored = NDArray(self._store[k])
                self._updater(k, NDArray(reduced), stored)
                self._store[k] = stored._data
            else:
                self._store[k] = reduced

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        for k, o in zip(*self._keys(key, out)):
            if k not in self._store:
                raise GraphcError(f"kvstore: key {k!r} was never initialised (call init first)")
            for dst in (o if isinstance(o, (list, tuple)) else [o]):
                dst._data[...] = self._store[k]

    def pushpull(self, key, value, out=None, priority=0):
        self.push(key, value, priority)
        self.pull(key, out if out is not None else value, priority)

    def set_updater(self, updater):
        self._updater = updater

    def set_optimizer(self, optimizer):
        self._optimizer = optimizer

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise GraphcError("kvstore: optimizer states live in the Trainer here; use Trainer.save_states")


def create(name="local"):
    if name in ("local", "device", "local_allreduce_cpu", "local_allreduce_device", "nccl"):
        return KVStore(name)
    if name.startswith("dist"):
        raise GraphcError(f"kvstore {name!r}: distributed training over MPI is not built yet; "
                          "use 'local' or 'device' within one process")
    raise GraphcError(f"unknown kvstore type {name!r}; expected 'local' or 'device'")
