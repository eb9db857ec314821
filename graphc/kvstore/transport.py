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

Two members have defaults that suit one process: `allreduce_stream(items, compression)` (many
keys at once, so a transport can bucket them and overlap their transfer with the caller's work;
the default sums key by key) and `agree(op, entries)` (fail on every worker when workers
describe a collective call differently; nothing to compare in one process).
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

    def allreduce_stream(self, items, compression=None):
        """Yield (key, sum over workers) for each (key, array) or (key, array, dest) of the
        iterable `items`, in any order; a transport may start a key's transfer before the next
        item is produced. `dest` (None, or an array of the key's shape and dtype) is where the
        caller would like the sum (`dest is array`: in the array's own memory); a transport may
        write it there and yield `dest` itself, or ignore it (the caller checks with `is`)."""
        for key, array, *_ in items:
            yield key, self.allreduce(key, array, compression)

    def agree(self, op, entries) -> None:
        """Raise on every worker unless all pass equal `entries` ((key, description) pairs)."""
        return None
