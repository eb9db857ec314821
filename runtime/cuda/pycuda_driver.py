"""The real driver over pycuda (the project's CUDA binding; cuda-bindings is the fallback).

Each GPU is used through its primary context (the one the CUDA runtime, PyTorch and CuPy share)
and one stream of ours, on which every operation for that device is queued in order (the
contract in runtime/cuda/driver.py). The context is pushed for the length of each call and
popped after it, never left on a thread's stack: pycuda aborts the process when a thread (the
main one at exit included) ends with a context still pushed.

pycuda's exceptions become CudaError / DeviceOutOfMemory naming the call and its sizes.
Allocations are kept by pointer (pycuda frees device memory when its DeviceAllocation object
dies, so the object must live as long as graphc uses the pointer).
"""
from __future__ import annotations

import contextlib

import numpy as np

from .driver import CudaError, DeviceOutOfMemory
from .real_driver import RealDriver


class _Device:
    __slots__ = ("dev", "ctx", "stream", "allocations")

    def __init__(self, dev, ctx, stream):
        self.dev, self.ctx, self.stream, self.allocations = dev, ctx, stream, {}


class PycudaDriver(RealDriver):
    name = "pycuda"

    def __init__(self, cuda):
        super().__init__()
        self._cuda = cuda
        self._count = cuda.Device.count()

    # ---- devices ---------------------------------------------------------------------------
    def device_count(self) -> int:
        return self._count

    def _device(self, device: int):
        if not 0 <= device < self._count:
            raise CudaError(f"GPU {device} does not exist (pycuda sees {self._count})")
        return self._cuda.Device(device)

    def device_name(self, device: int) -> str:
        return self._device(device).name()

    def total_memory(self, device: int) -> int:
        return int(self._device(device).total_memory())

    def multiprocessor_count(self, device: int) -> int:
        return int(self._device(device).get_attribute(self._cuda.device_attribute.MULTIPROCESSOR_COUNT))

    def compute_capability(self, device: int) -> tuple:
        return tuple(self._device(device).compute_capability())

    def _open(self, device: int) -> _Device:
        dev = self._device(device)
        try:
            ctx = dev.retain_primary_context()
            ctx.push()
            try:
                stream = self._cuda.Stream()
            finally:
                self._cuda.Context.pop()
        except self._cuda.Error as exc:
            raise CudaError(f"pycuda: cannot open GPU {device} ({dev.name()}): {exc}") from None
        return _Device(dev, ctx, stream)

    @contextlib.contextmanager
    def _activate(self, device: int):
        """The device's primary context current on this thread for the block; pycuda errors
        raised inside become CudaError."""
        st = self._states.get(device) or self._state(device)
        st.ctx.push()
        try:
            yield st
        except self._cuda.Error as exc:
            raise CudaError(f"pycuda on GPU {device}: {exc}") from None
        finally:
            self._cuda.Context.pop()

    def _stream_handle(self, device: int) -> int:
        return int(self._state(device).stream.handle)

    # ---- memory ----------------------------------------------------------------------------
    def malloc(self, device: int, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        st = self._state(device)
        st.ctx.push()
        try:
            alloc = self._cuda.mem_alloc(nbytes)
        except self._cuda.MemoryError as exc:
            raise DeviceOutOfMemory(f"cuMemAlloc of {nbytes} bytes on GPU {device} ({self.device_name(device)}, "
                                    f"{self.total_memory(device)} bytes in all) failed: {exc}") from None
        except self._cuda.Error as exc:
            raise CudaError(f"cuMemAlloc of {nbytes} bytes on GPU {device} failed: {exc}") from None
        finally:
            self._cuda.Context.pop()
        ptr = int(alloc)
        st.allocations[ptr] = alloc
        return ptr

    def free(self, device: int, ptr: int) -> None:
        if ptr == 0:
            return
        if self._closed:
            return          # a buffer collected after close(): its memory was given back then
        alloc = self._state(device).allocations.pop(ptr, None)
        if alloc is None:
            raise CudaError(f"free of {ptr:#x} on GPU {device}: not a live allocation of this driver")
        with self._activate(device):
            alloc.free()

    def memcpy_htod(self, device: int, dst: int, src: np.ndarray) -> None:
        if src.nbytes:
            with self._activate(device) as st:
                self._cuda.memcpy_htod_async(dst, src, st.stream)

    def memcpy_dtoh(self, device: int, dst: np.ndarray, src: int) -> None:
        with self._activate(device) as st:
            if dst.nbytes:
                self._cuda.memcpy_dtoh_async(dst, src, st.stream)
            st.stream.synchronize()

    def memcpy_dtod(self, device: int, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            with self._activate(device) as st:
                self._cuda.memcpy_dtod_async(dst, src, nbytes, st.stream)

    def memset(self, device: int, ptr: int, nbytes: int) -> None:
        if nbytes:
            with self._activate(device) as st:
                self._cuda.memset_d8_async(ptr, 0, nbytes, st.stream)

    # ---- copies between GPUs (real_driver.RealDriver.memcpy_peer orders them) ----------------
    def _peer_async(self, dst_device: int, dst: int, src_device: int, src: int, nbytes: int) -> None:
        src_ctx = self._state(src_device).ctx
        with self._activate(dst_device) as st:
            self._cuda.memcpy_peer_async(dst, src, nbytes, st.ctx, src_ctx, st.stream)

    def _record_event(self, device: int):
        with self._activate(device) as st:
            event = self._cuda.Event(self._cuda.event_flags.DISABLE_TIMING)
            event.record(st.stream)
            return event

    def _wait_event(self, device: int, event) -> None:
        with self._activate(device) as st:
            st.stream.wait_for_event(event)

    def _drop_event(self, device: int, event) -> None:
        """pycuda destroys an event when its object is collected (safe while a stream waits)."""

    # ---- kernels ---------------------------------------------------------------------------
    def _load_cubin(self, device: int, cubin: bytes):
        return self._cuda.module_from_buffer(cubin)

    def _get_function(self, device: int, module, name: str):
        try:
            with self._activate(device):
                return module.get_function(name)
        except CudaError as exc:
            raise CudaError(f"kernel {name!r} is not in the module loaded on GPU {device}: {exc}") from None

    def launch(self, device: int, function, grid: tuple, block: tuple, args: list) -> None:
        # the hot path of every GPU program step: no context manager
        function.check_args(args)
        if function.prepared is None:
            function.prepared = function.handle.prepare("P" * len(args))
        # plain ints: boost.python's unsigned conversion is only certain to take Python ints
        grid = (int(grid[0]), int(grid[1]), int(grid[2])) if type(grid) is tuple and len(grid) == 3 \
            else self._dims("grid", grid)
        block = (int(block[0]), int(block[1]), int(block[2])) if type(block) is tuple and len(block) == 3 \
            else self._dims("block", block)
        st = self._states.get(device) or self._state(device)
        st.ctx.push()
        try:
            function.prepared.prepared_async_call(grid, block, st.stream, *args)
        except self._cuda.Error as exc:
            raise CudaError(f"launch of kernel {function.name!r} (grid {grid}, block {block}) on GPU {device}: "
                            f"{exc}") from None
        finally:
            self._cuda.Context.pop()

    def synchronize(self, device: int) -> None:
        with self._activate(device) as st:
            st.stream.synchronize()


    def _release(self, device: int, st: _Device, blas, modules) -> None:
        st.ctx.push()
        try:
            if blas is not None:
                blas.close()
            for alloc in st.allocations.values():
                alloc.free()
            st.allocations.clear()
            modules.clear()       # pycuda unloads a module when its object dies: here, context pushed
        finally:
            self._cuda.Context.pop()


def make() -> PycudaDriver | None:
    """The pycuda driver when pycuda imports and sees at least one GPU; None otherwise (never
    raises: get_driver then tries cuda-bindings)."""
    try:
        import pycuda.driver as cuda
        cuda.init()
        if cuda.Device.count() == 0:
            return None
        return PycudaDriver(cuda)
    except Exception:       # no pycuda, no libcuda, no GPU, a driver too old: all mean "not this one"
        return None
