"""The CUDA simulator (`GRAPHC_CUDA_SIM=1`): a `Driver` that runs on the host, so the caching
allocator, GPU programs, eager GPU arrays and training above the driver seam are tested on
machines without a GPU. Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM) is the precedent.

- Memory is host memory (sim_memory.py): each allocation its own mapping, 256-byte aligned and
  ending (to the alignment) at an inaccessible page; freeing unmaps it. So a kernel that reads
  or writes outside its buffers, or uses a freed one, faults, and the launch fails with an
  illegal-memory-access CudaError naming the thread, block and nearest allocation. Fresh memory
  is 0xFF bytes (NaN for floats, -1 for integers): cudaMalloc promises nothing either, and zeros
  would hide a missing initialisation. Each simulated device holds GRAPHC_CUDA_SIM_MEMORY bytes
  (default 1 GiB; suffixes K, M, G); GRAPHC_CUDA_SIM_DEVICES (default 1) devices exist. Every
  copy, memset, launch argument and GEMM operand is checked to lie inside a live allocation of
  the device it is used on, so a freed, foreign or overrun pointer fails as a CudaError before
  any byte moves.
- Kernels are the rendered CUDA C itself (runtime/render_cuda.py), compiled by g++ with
  sim_runtime.h force-included (blocks and threads become loops and fibers, see there) and
  cached on disk (sim_build.py). A module is loaded for one device and launches only there; a
  launch must pass exactly the kernel's parameter count.
- GEMM is numpy on strided views (sim_gemm.py), under cuBLAS's rules: beta == 0 never reads C.

What passing here proves: the generated source's indexing, bounds, barriers and shared memory,
the launch shapes, and the host-side bookkeeping (streams in order, pointer lifetimes, which
device a buffer is on). What it cannot: speed, coalescing, warp-level behaviour, races between
blocks (blocks run one after another; a launch returns when it has finished, so no missing
synchronize shows either), overruns inside the 256-byte alignment slack, or nvcc's acceptance
of the source (tests/runtime/test_render_cuda.py compiles it with nvcc where there is one).
"""
from __future__ import annotations

import bisect
import ctypes
import mmap
import os
import re
import threading

import numpy as np

from .driver import CudaError, DeviceOutOfMemory, Driver
from .sim_build import compiled, kernel_sources
from .sim_gemm import run_gemm
from .sim_memory import GUARD_BYTES, STACK_STRIDE, Allocation, fiber_stacks, in_fiber_stacks

FAULT = 6           # gc_sim_run's code for a fault in the kernel
DEFAULT_MEMORY = 1 << 30
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

_launch_lock = threading.Lock()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    m = re.fullmatch(r"(\d+)\s*([kmg]?)(?:i?b)?", text, re.IGNORECASE)
    if m is None:
        raise CudaError(f"{name}={text!r} is not a whole number (bytes may end in K, M or G)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class _Device:
    """One simulated GPU's memory: live allocations sorted by address for range checks."""

    def __init__(self, capacity: int):
        self.capacity, self.in_use = capacity, 0
        self.starts: list = []
        self.allocs: dict = {}

    def find(self, ptr: int, nbytes: int):
        """The allocation holding [ptr, ptr + nbytes), or None."""
        i = bisect.bisect_right(self.starts, ptr) - 1
        if i < 0:
            return None
        a = self.allocs[self.starts[i]]
        return a if ptr + nbytes <= a.ptr + a.nbytes else None


class SimFunction:
    """A kernel in a loaded module: its address and whether it needs fibers (it has barriers)."""

    __slots__ = ("name", "device", "address", "uses_sync", "params", "module")

    def __init__(self, name, device, address, uses_sync, params, module):
        self.name, self.device, self.address, self.uses_sync, self.params, self.module = \
            name, device, address, uses_sync, params, module

    def __repr__(self):
        return f"<sim kernel {self.name} on gpu({self.device})>"


class SimModule:
    """A compiled source loaded for one device."""

    def __init__(self, device: int, lib, source: str):
        self.device, self.lib = device, lib
        self.kernels = kernel_sources(source)

    def function(self, name: str) -> SimFunction:
        if name not in self.kernels:
            raise CudaError(f"sim load_module: no __global__ kernel named {name!r} in the module "
                            f"(it has {sorted(self.kernels)})")
        text, params = self.kernels[name]
        address = ctypes.cast(getattr(self.lib, name), ctypes.c_void_p).value
        return SimFunction(name, self.device, address, "__syncthreads" in text, params, self)


class SimDriver(Driver):
    name = "sim"

    def __init__(self):
        count = _env_int("GRAPHC_CUDA_SIM_DEVICES", 1)
        capacity = _env_int("GRAPHC_CUDA_SIM_MEMORY", DEFAULT_MEMORY)
        self._devices = [_Device(capacity) for _ in range(count)]
        # memory bookkeeping; each device's work is in order anyway
        self._lock = threading.RLock()

    # ---- devices ----
    def _device(self, device: int, call: str) -> _Device:
        if not isinstance(device, (int, np.integer)) or not 0 <= device < len(self._devices):
            raise CudaError(f"sim {call}: no device {device!r} (the simulator has {len(self._devices)}; "
                            f"GRAPHC_CUDA_SIM_DEVICES sets how many)")
        return self._devices[device]

    def device_count(self) -> int:
        return len(self._devices)

    def device_name(self, device: int) -> str:
        self._device(device, "device_name")
        return "graphc CUDA simulator"

    def total_memory(self, device: int) -> int:
        return self._device(device, "total_memory").capacity

    def memory_in_use(self, device: int) -> int:
        """Bytes allocated on the device and not freed (a simulator extra, for tests)."""
        return self._device(device, "memory_in_use").in_use

    def multiprocessor_count(self, device: int) -> int:
        self._device(device, "multiprocessor_count")
        return 1        # 'auto' grids stay small: the blocks run one after another

    def compute_capability(self, device: int) -> tuple:
        self._device(device, "compute_capability")
        return (0, 0)

    def synchronize(self, device: int) -> None:
        self._device(device, "synchronize")       # every call finished before it returned

    # ---- memory ----
    def malloc(self, device: int, nbytes: int) -> int:
        nbytes = int(nbytes)
        if nbytes < 0:
            raise CudaError(f"sim malloc: gpu({device}) asked for {nbytes} bytes")
        with self._lock:
            dev = self._device(device, "malloc")
            if nbytes == 0:
                return 0        # cudaMalloc(0) gives NULL, and freeing NULL does nothing
            if dev.in_use + nbytes > dev.capacity:
                raise DeviceOutOfMemory(
                    f"sim malloc: gpu({device}) out of memory: asked {nbytes} bytes with {dev.in_use} of "
                    f"{dev.capacity} in use ({dev.capacity - dev.in_use} free; GRAPHC_CUDA_SIM_MEMORY sets "
                    f"the capacity)")
            try:
                a = Allocation(nbytes)
            except MemoryError as exc:      # the host's memory, or its limit on mappings
                raise DeviceOutOfMemory(f"sim malloc: gpu({device}) asked {nbytes} bytes, and the host "
                                        f"could not map them: {exc}") from None
            dev.allocs[a.ptr] = a
            bisect.insort(dev.starts, a.ptr)
            dev.in_use += nbytes
            return a.ptr

    def free(self, device: int, ptr: int) -> None:
        with self._lock:
            dev = self._device(device, "free")
            if ptr == 0:
                return
            a = dev.allocs.pop(ptr, None)
            if a is None:
                raise CudaError(f"sim free: {ptr:#x} is not an allocation on gpu({device})"
                                + self._elsewhere(ptr, device))
            dev.starts.remove(ptr)
            dev.in_use -= a.nbytes
            a.release()

    def _elsewhere(self, ptr, device) -> str:
        for d, other in enumerate(self._devices):
            if d != device and other.find(ptr, 0) is not None:
                return f" (it is gpu({d})'s memory)"
        return ""

    def _describe(self, device: int, address: int) -> str:
        """Where a faulting address lies relative to the device's allocations."""
        dev = self._devices[device]
        i = bisect.bisect_right(dev.starts, address) - 1
        below = dev.allocs[dev.starts[i]] if i >= 0 else None
        above = dev.allocs[dev.starts[i + 1]] if i + 1 < len(dev.starts) else None
        if below is not None and 0 <= address - below.ptr - below.nbytes < 2 * mmap.PAGESIZE:
            return f" ({address - below.ptr - below.nbytes} bytes past the end of the {below.nbytes}-byte " \
                   f"allocation at {below.ptr:#x})"
        if above is not None and above.ptr - address <= 2 * mmap.PAGESIZE:
            return f" ({above.ptr - address} bytes before the {above.nbytes}-byte allocation at {above.ptr:#x})"
        if in_fiber_stacks(address):
            return " (a thread overflowed its fiber stack: the simulator gives each " \
                   f"{STACK_STRIDE - GUARD_BYTES} bytes)"
        return " (no allocation of this device is near it)"

    def _check(self, device: int, ptr: int, nbytes: int, call: str, what: str, empty_ok: bool = True) -> None:
        """Raise unless [ptr, ptr + nbytes) lies in one live allocation of the device (an empty
        range anywhere when empty_ok: a copy of nothing touches nothing)."""
        dev = self._device(device, call)
        if (nbytes == 0 and empty_ok) or dev.find(ptr, nbytes) is not None:
            return
        inside = dev.find(ptr, 0)
        fact = (f"it runs {ptr + nbytes - inside.ptr - inside.nbytes} bytes past the end of the "
                f"{inside.nbytes}-byte allocation at {inside.ptr:#x}" if inside is not None
                else "no live allocation holds it" + self._elsewhere(ptr, device))
        raise CudaError(f"sim {call}: {what} [{ptr:#x}, +{nbytes} bytes) is not gpu({device}) memory: {fact}")

    @staticmethod
    def _host(array: np.ndarray, call: str, writable: bool) -> None:
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            raise CudaError(f"sim {call}: the host array must be a C-contiguous numpy array, "
                            f"got {type(array).__name__}")
        if writable and not array.flags.writeable:
            raise CudaError(f"sim {call}: the host array is read-only")

    def memcpy_htod(self, device: int, dst: int, src: np.ndarray) -> None:
        self._host(src, "memcpy_htod", False)
        with self._lock:
            self._check(device, dst, src.nbytes, "memcpy_htod", "destination")
            ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def memcpy_dtoh(self, device: int, dst: np.ndarray, src: int) -> None:
        self._host(dst, "memcpy_dtoh", True)
        with self._lock:
            self._check(device, src, dst.nbytes, "memcpy_dtoh", "source")
            ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def memcpy_dtod(self, device: int, dst: int, src: int, nbytes: int) -> None:
        with self._lock:
            self._check(device, dst, nbytes, "memcpy_dtod", "destination")
            self._check(device, src, nbytes, "memcpy_dtod", "source")
            ctypes.memmove(dst, src, nbytes)

    def memcpy_peer(self, dst_device: int, dst: int, src_device: int, src: int, nbytes: int) -> None:
        """Between two simulated GPUs (driver.py's optional call): both ranges checked on their
        own devices, then one memmove (each device's work is already finished in the simulator,
        so the ordering the real drivers arrange holds trivially)."""
        with self._lock:
            self._check(dst_device, dst, nbytes, "memcpy_peer", "destination")
            self._check(src_device, src, nbytes, "memcpy_peer", "source")
            if nbytes:
                ctypes.memmove(dst, src, nbytes)

    def memset(self, device: int, ptr: int, nbytes: int) -> None:
        with self._lock:
            self._check(device, ptr, nbytes, "memset", "range")
            ctypes.memset(ptr, 0, nbytes)

    # ---- kernels ----
    def load_module(self, device: int, source: str) -> SimModule:
        self._device(device, "load_module")
        return SimModule(device, compiled(source), source)

    def launch(self, device: int, function, grid, block, args) -> None:
        if not isinstance(function, SimFunction):
            raise CudaError(f"sim launch: {function!r} is not a function of a simulator module")
        if function.device != device:
            raise CudaError(f"sim launch: kernel {function.name} was loaded on gpu({function.device}), "
                            f"launched on gpu({device})")
        grid, block = _dims(grid, "grid", function), _dims(block, "block", function)
        if len(args) != function.params:
            raise CudaError(f"sim launch: kernel {function.name} takes {function.params} pointers, "
                            f"got {len(args)} arguments")
        # the module's scheduler state and the fiber stacks are shared: one launch at a time
        with self._lock, _launch_lock:
            for i, p in enumerate(args):
                if p != 0:
                    self._check(device, int(p), 0, "launch", f"kernel {function.name} argument {i}", False)
            argv = (ctypes.c_void_p * max(1, len(args)))(*[int(p) for p in args])
            lib = function.module.lib
            stacks = fiber_stacks(block[0] * block[1] * block[2]) if function.uses_sync else None
            rc = lib.gc_sim_run(function.address, len(args), argv, *grid, *block, stacks)
            if rc != 0:
                where = self._describe(device, lib.gc_sim_fault_address() or 0) if rc == FAULT else ""
                raise CudaError(f"sim launch of kernel {function.name} (grid {grid}, block {block}, "
                                f"{len(args)} arguments): {lib.gc_sim_error().decode()}{where}")

    def gemm(self, device: int, g, a: int, b: int, c: int) -> None:
        with self._lock:
            run_gemm(g, lambda ptr, nbytes, what: self._check(device, ptr, nbytes, "gemm", what), a, b, c)


def _dims(value, what, function) -> tuple:
    """A launch extent as (x, y, z); an int or a shorter tuple pads with 1."""
    t = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(t) <= 3 or not all(isinstance(v, (int, np.integer)) for v in t):
        raise CudaError(f"sim launch of kernel {function.name}: {what} {value!r} is not 1 to 3 ints")
    return tuple(int(v) for v in t) + (1,) * (3 - len(t))


__all__ = ["SimDriver", "SimModule", "SimFunction"]
