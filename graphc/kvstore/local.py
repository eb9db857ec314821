"""Inside one process: summing the copies of a key pushed from several devices, and the
transport of a store that has only this process as its worker.

The sum follows MXNet's order exactly, since float addition is not associative and users compare
runs bit for bit:

* 'cpu' order ('local', 'local_update_cpu', 'local_allreduce_cpu'; MXNet's CommCPU,
  ReduceSumCPU): the first copy plus each following group of up to four, the group summed
  left to right first: d0 + (d1 + d2 + d3 + d4) + (d5 + ...).
* 'device' order ('device', 'local_allreduce_device', 'nccl'; MXNet's CommDevice,
  ElementwiseSum): strictly left to right.

With 2-bit compression ('device' stores only, as in MXNet) every copy, even a lone one, is
quantised against its own residual (one per key and device slot), dequantised, and the
dequantised copies are summed left to right (CommDevice::ReduceCompressed).
"""
from __future__ import annotations

import numpy as np

from .transport import Transport

__all__ = ["SingleProcessTransport", "DeviceReduction"]


class SingleProcessTransport(Transport):
    """One worker: the sum over workers is the array itself, rank 0's array is this one's, and
    there is no one to wait for. Compression acts between workers only, so it has nothing to do
    here (device-to-device compression is DeviceReduction's)."""

    @property
    def rank(self) -> int:
        return 0

    @property
    def num_workers(self) -> int:
        return 1

    def allreduce(self, key, array, compression=None):
        return array

    def broadcast(self, key, array, root=0):
        return array

    def barrier(self):
        return None


class DeviceReduction:
    """Sums the per-device copies of one key into one array; owns the compression residuals."""

    def __init__(self, order: str):
        if order not in ("cpu", "device"):
            raise ValueError(f"DeviceReduction: order must be 'cpu' or 'device', got {order!r}")
        self.order = order
        self.compression = None
        self._residuals: dict = {}

    def set_compression(self, compression):
        """Install a compression (or None). Residuals survive a change of threshold, as MXNet's
        per-key buffers do."""
        self.compression = compression

    def residual(self, key, slot):
        """The residual of device slot `slot` for `key` (None before its first compressed push)."""
        return self._residuals.get((key, slot))

    def reduce(self, key, arrays, describe) -> np.ndarray:
        """The sum of `arrays` (numpy, one per device, already in the stored dtype and shape) as a
        new array. `describe(slot)` names a copy in error messages."""
        if self.compression is not None:
            arrays = [self._round_trip(key, slot, a, describe(slot)) for slot, a in enumerate(arrays)]
            return _sum_left_to_right(arrays)
        if len(arrays) == 1:
            return arrays[0].copy()
        if self.order == "device":
            return _sum_left_to_right(arrays)
        total = arrays[0].copy()
        for start in range(1, len(arrays), 4):
            group = arrays[start:start + 4]
            total += _sum_left_to_right(group) if len(group) > 1 else group[0]
        return total

    def _round_trip(self, key, slot, array, what):
        """What the merging device receives from `slot`: the dequantised 2-bit codes."""
        residual = self._residuals.get((key, slot))
        if residual is None:
            residual = self._residuals[(key, slot)] = np.zeros(array.shape, np.float32)
        words = self.compression.quantize(array, residual, what)
        return self.compression.dequantize(words, array.size).reshape(array.shape)


def _sum_left_to_right(arrays):
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    return total
