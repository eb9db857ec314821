"""Transport: what a KVStore needs from the set of processes ("workers") it spans.

This is the seam for distributed stores. `SingleProcessTransport` (local.py) serves 'local' and
'device'; a distributed transport (MPI through mpi4py, one rank per worker, launched under
`mpiexec`) implements the same four members and `kvstore.create('dist_sync')` hands it to the
same `KVStore` class: keys, values, updaters, optimizers and states files do not change.

Contract (every method is collective: all workers call it, with the same keys, in the same
order; every blocking wait must have a deadline so a dead rank is an error, not a hang):

* `rank`, `num_workers`: this worker's index in [0, num_workers) and the group size.
* `allreduce(key, array, compression)`: the elementwise sum of `array` over all workers, as a
  new or the same numpy array of the same shape and dtype, on every worker. `compression` is
  None or a compression.TwoBitCompression; a transport that honours it quantises what it sends
  (keeping one residual per key, as MXNet's dist stores compress worker-to-server traffic and
  nothing else) and sums the dequantised values.
* `broadcast(key, array, root)`: rank `root`'s array on every worker (init uses root 0, so
  all workers start from the same weights, MXNet's "only the value of rank 0 is used").
* `barrier()`: return once every worker has reached it.
"""
from __future__ import annotations

import abc

import numpy as np

__all__ = ["Transport"]


class Transport(abc.ABC):
    """The collective operations a KVStore uses between workers (see the module docstring)."""

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        ...

    @property
    @abc.abstractmethod
    def num_workers(self) -> int:
        ...

    @abc.abstractmethod
    def allreduce(self, key, array: np.ndarray, compression=None) -> np.ndarray:
        ...

    @abc.abstractmethod
    def broadcast(self, key, array: np.ndarray, root: int = 0) -> np.ndarray:
        ...

    @abc.abstractmethod
    def barrier(self) -> None:
        ...
