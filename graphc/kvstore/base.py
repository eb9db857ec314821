"""KVStoreBase: the interface every key-value store offers (MXNet 1.9.1's
python/mxnet/kvstore/base.py), the registry through which `kv.create(name)` finds stores that
Python code defines, and MXNet's `TestStore` registered under 'teststore'."""
from __future__ import annotations

import warnings

from ..ndarray import NDArray

__all__ = ["KVStoreBase", "TestStore"]


class KVStoreBase:
    """An abstract key-value store for data-parallel training. Subclasses registered with
    `KVStoreBase.register` are created by `kv.create(<lower-cased class name>)`."""

    OPTIMIZER = "optimizer"
    kv_registry: dict = {}

    def broadcast(self, key, value, out, priority=0):
        """Rank 0's `value` for `key` into every array of `out`."""
        raise NotImplementedError()

    def pushpull(self, key, value, out=None, priority=0):
        """Sum `value` (over devices and workers) and write the result to `out` (or `value`)."""
        raise NotImplementedError()

    def set_optimizer(self, optimizer):
        """Make the store apply `optimizer` to its stored values on every push."""
        raise NotImplementedError()

    def is_capable(self, capability):
        """Whether the store supports `capability` (only 'optimizer' is defined)."""
        raise NotImplementedError()

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise NotImplementedError()

    def load_optimizer_states(self, fname):
        raise NotImplementedError()

    @property
    def type(self):
        raise NotImplementedError()

    @property
    def rank(self):
        raise NotImplementedError()

    @property
    def num_workers(self):
        raise NotImplementedError()

    @staticmethod
    def register(klass):
        """Class decorator: `kv.create(klass.__name__.lower())` then returns `klass()`."""
        if not isinstance(klass, type):
            raise TypeError(f"KVStoreBase.register takes a class, got {type(klass).__name__}")
        name = klass.__name__.lower()
        if name in KVStoreBase.kv_registry:
            old = KVStoreBase.kv_registry[name]
            warnings.warn(f"WARNING: New kvstore {klass.__module__}.{klass.__name__} is overriding existing kvstore "
                          f"{old.__module__}.{old.__name__}")
        KVStoreBase.kv_registry[name] = klass
        return klass


@KVStoreBase.register
class TestStore(KVStoreBase):
    """MXNet's store for testing the Trainer's custom-store path: pushpull sums over devices,
    broadcast copies, and it cannot run an optimizer (so a Trainer updates on the devices)."""

    def broadcast(self, key, value, out, priority=0):
        for o in (out if isinstance(out, list) else [out]):
            o[:] = value

    def pushpull(self, key, value, out=None, priority=0):
        if isinstance(value, NDArray):
            if out is not None:
                for o in (out if isinstance(out, list) else [out]):
                    o[:] = value
            return
        reduced = value[0].asnumpy().copy()
        for v in value[1:]:
            reduced += v.asnumpy()
        for o in (value if out is None else out if isinstance(out, list) else [out]):
            o[:] = reduced

    @staticmethod
    def is_capable(capability):
        if capability.lower() == KVStoreBase.OPTIMIZER:
            return False
        raise ValueError(f"Unknown capability: {capability}")

    @property
    def type(self):
        return "teststore"

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1

    def set_optimizer(self, optimizer):
        raise NotImplementedError()

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise NotImplementedError()

    def load_optimizer_states(self, fname):
        raise NotImplementedError()
