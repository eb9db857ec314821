"""KVStore (`mx.kv`, `mx.kvstore`): where data-parallel gradients meet.

`kv.create('local' | 'device')` gives a store that sums the copies of a key pushed from several
devices of this process and hands the result back, optionally updating the stored weights with
an optimizer (MXNet 1.9.1's API, store.py). The layers, top down:

    store.KVStore       the API: init, push, pull, pushpull, broadcast, row_sparse_pull, ...
    local.DeviceReduction   the sum over this process's devices, in MXNet's order
    compression         2-bit quantisation with error feedback
    transport.Transport     the sum over processes: the seam for distributed stores

Distributed stores run one worker per MPI rank (launched by `graphc-launch -n 4 python
train.py` or `mpiexec -n 4 python train.py`; graphc.dist holds the MPI layer):
'dist_sync', 'dist_device_sync', 'dist_sync_device' sum over workers with mpi_transport's
bucketed all-reduce, so every worker applies the same update (a Trainer's all-reduces overlap
its backward: overlap.py); 'dist_async' sends gradients to parameter-server ranks that update
the weights (dist_async.py).
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


def create(name="local", group=None):
    """A new store: 'local' (sums on the CPU), 'device' (sums where the arrays are; allows
    gradient compression), their MXNet aliases, or a class registered with KVStoreBase.register.
    group (synchronous 'dist_*' kinds only): an mpi4py communicator of graphc.dist's World whose
    ranks are the workers, e.g. graphc.dist.pipeline_groups(stages=2).replicas (the data-parallel
    replicas of this rank's pipeline stage); default: every worker of the job."""
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    name = name.lower()
    if name in KVStoreBase.kv_registry:
        return KVStoreBase.kv_registry[name]()
    if "dist" in name:
        return _create_dist(name, group)
    if group is not None:
        raise GraphcError(f"kvstore {name!r}: group= is for distributed stores ('dist_sync'), not a local one")
    order = _LOCAL_KINDS.get(name)
    if name in ("horovod", "byteps"):
        raise GraphcError(f"kvstore {name!r} is not supported: graphc does not run on {name}; for training "
                          "over processes use kv.create('dist_sync') (MPI) instead")
    if order is None:
        known = sorted(set(_LOCAL_KINDS) | set(KVStoreBase.kv_registry))
        raise GraphcError(f"unknown kvstore type {name!r}; expected one of {known} (or a 'dist_*' kind)")
    return KVStore(name, SingleProcessTransport(), DeviceReduction(order))


_WORKER_COMMS: dict = {}


def _workers_comm(w, r, server):
    """The communicator of the worker ranks (made once: server ranks take part only once)."""
    if not r.num_servers:
        return w.comm
    if id(w) not in _WORKER_COMMS:
        _WORKER_COMMS[id(w)] = w.split(1 if server else 0, "splitting workers from servers")
    return _WORKER_COMMS[id(w)]


_DIST_KINDS = {"dist_sync": "cpu", "dist_device_sync": "device", "dist_sync_device": "device",
               "dist_async": "cpu", "dist": "cpu"}


def _create_dist(name, group=None):
    """A distributed store, joining the MPI job (graphc.dist) on first use. A server rank never
    returns from here: it serves (dist_async) or waits (synchronous kinds) until the workers
    finish, then exits."""
    order = _DIST_KINDS.get(name)
    if order is None:
        raise GraphcError(f"unknown distributed kvstore type {name!r}; expected one of {sorted(_DIST_KINDS)}")
    from ..dist import roles as dist_roles, world
    from .mpi_transport import MPITransport
    w = world()
    r = dist_roles(w.size)
    server = r.is_server(w.rank)
    if group is not None:
        if "async" in name or r.num_servers:
            raise GraphcError(f"kvstore {name!r}: group= works with synchronous stores in a job without "
                              f"server ranks (this one: {r.num_servers} servers)")
        return KVStore(name, MPITransport(w, group), DeviceReduction(order))
    workers = _workers_comm(w, r, server)
    if server:
        from .dist_async import serve
        serve(w, r)         # a synchronous job sends its servers no requests, only 'done'
    transport = MPITransport(w, workers)
    if "async" in name:
        from .dist_async import AsyncKVStore
        return AsyncKVStore(name, w, r, transport, DeviceReduction(order))
    if r.num_servers:
        # the servers of a synchronous job only wait for each worker's 'done'
        from .dist_async import _TAG_REQUEST
        w.at_finish(lambda: [w.wait([w.comm.isend(("bye",), dest=s, tag=_TAG_REQUEST)], "telling servers 'done'")
                             for s in r.server_ranks()])
    return KVStore(name, transport, DeviceReduction(order))
