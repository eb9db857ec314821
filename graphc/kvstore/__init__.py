"""KVStore (`mx.kv`, `mx.kvstore`): where data-parallel gradients meet.

`kv.create('local' | 'device')` gives a store that sums the copies of a key pushed from several
devices of this process and hands the result back, optionally updating the stored weights with
an optimizer (MXNet 1.9.1's API, store.py). The layers, top down:

    store.KVStore       the API: init, push, pull, pushpull, broadcast, row_sparse_pull, ...
    local.DeviceReduction   the sum over this process's devices, in MXNet's order
    compression         2-bit quantisation with error feedback
    transport.Transport     the sum over processes: the seam for distributed stores

Distributed stores ('dist_sync', 'dist_device_sync', 'dist_async') need a Transport over MPI
(mpi4py, launched under mpiexec); until one exists, create() refuses them clearly.
"""
from __future__ import annotations

from ..ops.errors import GraphcError
from .base import KVStoreBase, TestStore
from .compression import TwoBitCompression
from .local import DeviceReduction, SingleProcessTransport
from .store import KVStore
from .transport import Transport

__all__ = ["create", "KVStore", "KVStoreBase", "TestStore", "Transport", "SingleProcessTransport",
           "DeviceReduction", "TwoBitCompression"]

# single-process kinds -> the order in which MXNet sums devices (see local.py)
_LOCAL_KINDS = {"local": "cpu", "local_update_cpu": "cpu", "local_allreduce_cpu": "cpu",
                "device": "device", "local_allreduce_device": "device", "nccl": "device"}


def create(name="local"):
    """A new store: 'local' (sums on the CPU), 'device' (sums where the arrays are; allows
    gradient compression), their MXNet aliases, or a class registered with KVStoreBase.register."""
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    name = name.lower()
    if name in KVStoreBase.kv_registry:
        return KVStoreBase.kv_registry[name]()
    if "dist" in name:
        raise GraphcError(f"kvstore {name!r}: distributed stores run over MPI (mpi4py, launched under mpiexec), "
                          "and that transport is not built yet; use 'local' or 'device' within one process")
    order = _LOCAL_KINDS.get(name)
    if order is None:
        known = sorted(set(_LOCAL_KINDS) | set(KVStoreBase.kv_registry))
        raise GraphcError(f"unknown kvstore type {name!r}; expected one of {known} (or a 'dist_*' kind)")
    return KVStore(name, SingleProcessTransport(), DeviceReduction(order))
