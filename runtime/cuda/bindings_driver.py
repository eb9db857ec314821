"""The real driver over NVIDIA's cuda-bindings (`cuda.bindings.driver`), used where pycuda is not
installed (it ships only as source, and the lent GPU machine may not build it).

Same model as pycuda_driver.py: each GPU's primary context and one stream of ours per device.
The CUDA driver keeps the current context per thread, so each call makes the device's context
current (cuCtxSetCurrent) when another one (or none) is; nothing is pushed, so nothing has to be
popped when a thread ends. Every call's CUresult is checked and a failure raises CudaError (or
DeviceOutOfMemory for an allocation) naming the call, the device and the sizes.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

import numpy as np

from .driver import CudaError, DeviceOutOfMemory
from .real_driver import RealDriver


def _import_binding():
    """cuda.bindings.driver (cuda-python >= 12.6), or the older cuda.cuda module."""
    try:
        from cuda.bindings import driver
    except ImportError:
        from cuda import cuda as driver
    return driver


class _Device:
    __slots__ = ("dev", "ctx", "stream", "allocations")

    def __init__(self, dev, ctx, stream):
        self.dev, self.ctx, self.stream, self.allocations = dev, ctx, stream, set()


class BindingsDriver(RealDriver):
    name = "cuda-bindings"

    def __init__(self, cu):
        super().__init__()
        self._cu = cu
        self._count = self._call("cuDeviceGetCount")
        self._param_blocks = threading.local()

    def _call(self, fn: str, *args, what: str = ""):
        """cu.<fn>(*args) with its CUresult checked; the remaining results (None, one, or a tuple)."""
        out = getattr(self._cu, fn)(*args)
        err, rest = out[0], out[1:]
        if err != self._cu.CUresult.CUDA_SUCCESS:
            raise self._error(fn, err, what)
        return rest[0] if len(rest) == 1 else (rest or None)

    def _error(self, fn: str, err, what: str) -> CudaError:
        name = self._cu.cuGetErrorName(err)
        text = name[1].decode() if name[0] == self._cu.CUresult.CUDA_SUCCESS else str(err)
        message = f"{fn}{' (' + what + ')' if what else ''} failed: {text}"
        if err == self._cu.CUresult.CUDA_ERROR_OUT_OF_MEMORY and fn == "cuMemAlloc":
            return DeviceOutOfMemory(message)
        return CudaError(message)

    # ---- devices ---------------------------------------------------------------------------
    def device_count(self) -> int:
        return self._count

    def _dev(self, device: int):
        if not 0 <= device < self._count:
            raise CudaError(f"GPU {device} does not exist (cuda-bindings sees {self._count})")
        return self._call("cuDeviceGet", device)

    def _attribute(self, device: int, name: str) -> int:
        attr = getattr(self._cu.CUdevice_attribute, name)
        return int(self._call("cuDeviceGetAttribute", attr, self._dev(device)))

    def device_name(self, device: int) -> str:
        raw = self._call("cuDeviceGetName", 256, self._dev(device))
        return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")

    def total_memory(self, device: int) -> int:
        return int(self._call("cuDeviceTotalMem", self._dev(device)))

    def multiprocessor_count(self, device: int) -> int:
        return self._attribute(device, "CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT")

    def compute_capability(self, device: int) -> tuple:
        return (self._attribute(device, "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR"),
                self._attribute(device, "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR"))

    def _open(self, device: int) -> _Device:
        dev = self._dev(device)
        ctx = self._call("cuDevicePrimaryCtxRetain", dev, what=f"GPU {device}")
        self._call("cuCtxSetCurrent", ctx, what=f"GPU {device}")
        stream = self._call("cuStreamCreate", self._cu.CUstream_flags.CU_STREAM_DEFAULT.value, what=f"GPU {device}")
        return _Device(dev, ctx, stream)

    def _make_current(self, device: int, st: _Device) -> None:
        """The device's primary context current on this thread (set only when another is)."""
        if int(self._call("cuCtxGetCurrent")) != int(st.ctx):
            self._call("cuCtxSetCurrent", st.ctx, what=f"GPU {device}")

    @contextlib.contextmanager
    def _activate(self, device: int):
        st = self._states.get(device) or self._state(device)
        self._make_current(device, st)
        yield st

    def _stream_handle(self, device: int) -> int:
        return int(self._state(device).stream)

    # ---- memory ----------------------------------------------------------------------------
    def malloc(self, device: int, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        with self._activate(device) as st:
            try:
                ptr = int(self._call("cuMemAlloc", nbytes, what=f"{nbytes} bytes on GPU {device}"))
            except DeviceOutOfMemory as exc:
                raise DeviceOutOfMemory(f"{exc} ({self.device_name(device)}, {self.total_memory(device)} bytes "
                                        "in all)") from None
            st.allocations.add(ptr)
            return ptr

    def free(self, device: int, ptr: int) -> None:
        if ptr == 0 or self._closed:
            return          # after close(), the memory was given back already
        with self._activate(device) as st:
            if ptr not in st.allocations:
                raise CudaError(f"free of {ptr:#x} on GPU {device}: not a live allocation of this driver")
            st.allocations.discard(ptr)
            self._call("cuMemFree", self._cu.CUdeviceptr(ptr), what=f"{ptr:#x} on GPU {device}")

    def memcpy_htod(self, device: int, dst: int, src: np.ndarray) -> None:
        if src.nbytes:
            with self._activate(device) as st:
                self._call("cuMemcpyHtoDAsync", self._cu.CUdeviceptr(dst), src.ctypes.data, src.nbytes, st.stream,
                           what=f"{src.nbytes} bytes to GPU {device}")

    def memcpy_dtoh(self, device: int, dst: np.ndarray, src: int) -> None:
        with self._activate(device) as st:
            if dst.nbytes:
                self._call("cuMemcpyDtoHAsync", dst.ctypes.data, self._cu.CUdeviceptr(src), dst.nbytes, st.stream,
                           what=f"{dst.nbytes} bytes from GPU {device}")
            self._call("cuStreamSynchronize", st.stream, what=f"GPU {device}")

    def memcpy_dtod(self, device: int, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            with self._activate(device) as st:
                self._call("cuMemcpyDtoDAsync", self._cu.CUdeviceptr(dst), self._cu.CUdeviceptr(src), nbytes,
                           st.stream, what=f"{nbytes} bytes on GPU {device}")

    def memset(self, device: int, ptr: int, nbytes: int) -> None:
        if nbytes:
            with self._activate(device) as st:
                self._call("cuMemsetD8Async", self._cu.CUdeviceptr(ptr), 0, nbytes, st.stream,
                           what=f"{nbytes} bytes on GPU {device}")

    # ---- copies between GPUs (real_driver.RealDriver.memcpy_peer orders them) ----------------
    def _peer_async(self, dst_device: int, dst: int, src_device: int, src: int, nbytes: int) -> None:
        src_ctx = self._state(src_device).ctx
        with self._activate(dst_device) as st:
            self._call("cuMemcpyPeerAsync", self._cu.CUdeviceptr(dst), st.ctx, self._cu.CUdeviceptr(src), src_ctx,
                       nbytes, st.stream, what=f"{nbytes} bytes from GPU {src_device} to GPU {dst_device}")

    def _record_event(self, device: int):
        with self._activate(device) as st:
            flags = self._cu.CUevent_flags.CU_EVENT_DISABLE_TIMING.value
            event = self._call("cuEventCreate", flags, what=f"GPU {device}")
            self._call("cuEventRecord", event, st.stream, what=f"GPU {device}")
            return event

    def _wait_event(self, device: int, event) -> None:
        with self._activate(device) as st:
            self._call("cuStreamWaitEvent", st.stream, event, 0, what=f"GPU {device}")

    def _drop_event(self, device: int, event) -> None:
        """cuEventDestroy of an event a stream still waits on returns at once; CUDA frees it
        when the wait completes."""
        with self._activate(device):
            self._call("cuEventDestroy", event, what=f"GPU {device}")

    # ---- kernels ---------------------------------------------------------------------------
    def _load_cubin(self, device: int, cubin: bytes):
        image = ctypes.create_string_buffer(cubin, len(cubin))
        return self._call("cuModuleLoadData", ctypes.addressof(image), what=f"{len(cubin)}-byte cubin on GPU {device}")

    def _get_function(self, device: int, module, name: str):
        with self._activate(device):
            return self._call("cuModuleGetFunction", module, name.encode(), what=f"kernel {name!r} on GPU {device}")

    def launch(self, device: int, function, grid: tuple, block: tuple, args: list) -> None:
        # the hot path of every GPU program step: no context manager, one reused parameter block
        function.check_args(args)
        if not (type(grid) is tuple and len(grid) == 3):
            grid = self._dims("grid", grid)
        if not (type(block) is tuple and len(block) == 3):
            block = self._dims("block", block)
        st = self._states.get(device) or self._state(device)
        self._make_current(device, st)
        params = self._params(args)
        err = self._cu.cuLaunchKernel(function.handle, *grid, *block, 0, st.stream, params, 0)[0]
        if err != self._cu.CUresult.CUDA_SUCCESS:
            raise self._error("cuLaunchKernel", err,
                              f"kernel {function.name!r} grid {grid} block {block} on GPU {device}")

    def _params(self, args) -> int:
        """The address of a kernelParams array for `args`: n pointers, each to one parameter's
        value (a device pointer). cuLaunchKernel copies the values, so each thread reuses one
        block per parameter count."""
        n = len(args)
        if n == 0:
            return 0
        blocks = self._param_blocks.__dict__
        block = blocks.get(n)
        if block is None:
            values = (ctypes.c_uint64 * n)()
            base = ctypes.addressof(values)
            params = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])
            block = blocks[n] = (values, params, ctypes.addressof(params))
        block[0][:] = args
        return block[2]

    def synchronize(self, device: int) -> None:
        with self._activate(device) as st:
            self._call("cuStreamSynchronize", st.stream, what=f"GPU {device}")

    def _release(self, device: int, st: _Device, blas, modules) -> None:
        self._make_current(device, st)
        self._cu.cuStreamSynchronize(st.stream)
        if blas is not None:
            blas.close()
        for ptr in st.allocations:
            self._cu.cuMemFree(self._cu.CUdeviceptr(ptr))
        st.allocations.clear()
        for m in modules:
            self._cu.cuModuleUnload(m.handle)
        self._cu.cuStreamDestroy(st.stream)
        # not current on this thread while its last holder may release it (a later driver then
        # makes the re-activated primary context current explicitly)
        self._cu.cuCtxSetCurrent(self._cu.CUcontext(0))
        self._cu.cuDevicePrimaryCtxRelease(st.dev)


def make() -> BindingsDriver | None:
    """The cuda-bindings driver when the binding imports, cuInit succeeds and a GPU is there;
    None otherwise (never raises: no binding, no libcuda and no GPU all mean 'not this one')."""
    try:
        cu = _import_binding()
        err, = cu.cuInit(0)
        if err != cu.CUresult.CUDA_SUCCESS:
            return None
        driver = BindingsDriver(cu)
        return driver if driver.device_count() > 0 else None
    except Exception:
        return None
