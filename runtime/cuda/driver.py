"""The seam between graphc and a CUDA driver: what the GPU runtime may ask of a device.

Why a seam: the project's machines have no GPU, so the memory pool, the GPU programs and eager
GPU arrays must be testable without one. Everything above this file talks to a `Driver`; the
real ones (runtime/cuda/pycuda_driver.py, bindings_driver.py) call the CUDA driver API, the
simulator (runtime/cuda/sim.py) runs the same CUDA C source on the host. Numba's CUDA simulator
is the precedent.

The contract every driver keeps: pointers are ints; all work for a device is issued in order on
that device's one stream, so a buffer freed and handed out again is safe for later work on the
same device (the caching allocator relies on it); `memcpy_dtoh` and `synchronize` wait for the
work issued before them.

Selection (`get_driver`): `GRAPHC_CUDA_SIM=1` gives the simulator; otherwise pycuda when it
loads and sees a GPU, then cuda-bindings; otherwise None (no GPU: `num_gpus() == 0`).
"""
from __future__ import annotations

import os
import threading

import numpy as np

from graphc.ops.errors import GraphcError

SIM_ENV = "GRAPHC_CUDA_SIM"


class CudaError(GraphcError):
    """A driver call or a kernel compilation failed; the message names the call."""


class DeviceOutOfMemory(CudaError):
    """An allocation did not fit the device; the message names the device and the sizes."""


class Driver:
    """The operations the GPU runtime needs (see the module docstring for the ordering contract).
    Subclasses implement every method; this base only documents them."""

    name = "abstract"

    def device_count(self) -> int:
        raise NotImplementedError

    def device_name(self, device: int) -> str:
        raise NotImplementedError

    def total_memory(self, device: int) -> int:
        raise NotImplementedError

    def multiprocessor_count(self, device: int) -> int:
        """Sizes grid-stride ('auto') grids."""
        raise NotImplementedError

    def compute_capability(self, device: int) -> tuple:
        raise NotImplementedError

    def malloc(self, device: int, nbytes: int) -> int:
        """A device pointer to nbytes fresh bytes; DeviceOutOfMemory when they do not fit."""
        raise NotImplementedError

    def free(self, device: int, ptr: int) -> None:
        raise NotImplementedError

    def memcpy_htod(self, device: int, dst: int, src: np.ndarray) -> None:
        """src is C-contiguous; copies src.nbytes bytes."""
        raise NotImplementedError

    def memcpy_dtoh(self, device: int, dst: np.ndarray, src: int) -> None:
        """dst is C-contiguous and writable; waits for earlier work on the device."""
        raise NotImplementedError

    def memcpy_dtod(self, device: int, dst: int, src: int, nbytes: int) -> None:
        raise NotImplementedError

    def memset(self, device: int, ptr: int, nbytes: int) -> None:
        """Zero nbytes bytes."""
        raise NotImplementedError

    # Optional (callers check hasattr(driver, "memcpy_peer"); without it a copy between two GPUs
    # goes through the host):
    #
    # def memcpy_peer(self, dst_device: int, dst: int, src_device: int, src: int, nbytes: int) -> None:
    #     """Copy nbytes from src on GPU src_device to dst on GPU dst_device without the host.
    #     Ordering: the copy sees all work issued to src_device before the call (its source
    #     is final) and all work issued to dst_device before it; work issued to either device
    #     afterwards sees the copy finished (so the source may be freed and reused at once,
    #     and the destination read). The real drivers queue cuMemcpyPeerAsync on the
    #     destination's stream behind an event of the source's stream, and make the source's
    #     stream wait for an event after the copy, so neither the host nor the devices wait
    #     for more than these dependencies."""

    def load_module(self, device: int, source: str):
        """Compile CUDA C source (cached on disk by its hash) and load it on the device; the result
        has `.function(name)` giving a handle that `launch` takes."""
        raise NotImplementedError

    def launch(self, device: int, function, grid: tuple, block: tuple, args: list) -> None:
        """grid, block: 3-tuples; args: int device pointers, in the kernel's parameter order."""
        raise NotImplementedError

    def gemm(self, device: int, g, a: int, b: int, c: int) -> None:
        """The runtime.kernel_ir.Gemm `g` (row-major; offsets and batch strides in elements) on
        the buffers whose base pointers are a, b and c."""
        raise NotImplementedError

    def synchronize(self, device: int) -> None:
        raise NotImplementedError


_lock = threading.Lock()
_driver: Driver | None = None
_made = False


def simulating() -> bool:
    return os.environ.get(SIM_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def get_driver() -> Driver | None:
    """The process's driver, made on first use (see the module docstring); None without a GPU."""
    global _driver, _made
    if _made:
        return _driver
    with _lock:
        if not _made:
            _driver = _make()
            _made = True
    return _driver


def _make() -> Driver | None:
    if simulating():
        from .sim import SimDriver
        return SimDriver()
    for module in ("pycuda_driver", "bindings_driver"):
        try:
            mod = __import__(f"{__package__}.{module}", fromlist=["make"])
        except ImportError:
            continue
        driver = mod.make()
        if driver is not None:
            return driver
    return None


def require_driver(what: str = "this operation") -> Driver:
    d = get_driver()
    if d is None:
        raise CudaError(f"{what} needs a CUDA GPU, and none is available (no GPU, driver or CUDA "
                        f"binding; set {SIM_ENV}=1 for the host simulator)")
    return d


def reset_driver() -> None:
    """Forget the driver and every device's memory pool (tests switch the simulator on and off).
    Arrays still holding device memory of the old driver must not be used afterwards."""
    global _driver, _made
    with _lock:
        old, _driver, _made = _driver, None, False
    from . import memory
    memory.reset()
    if old is not None and hasattr(old, "close"):
        old.close()             # a real driver's contexts and cuBLAS handles
    try:
        from graphc import device
        device._cuda_device_count.cache_clear()
    except (ImportError, AttributeError):
        pass
