"""What the two real drivers (pycuda_driver.py, bindings_driver.py) share: per-device state made
on first use, compiled modules cached per device and source, cuBLAS handles bound to each
device's stream, the kernel handles `launch` takes, and CUDA graph capture (runtime/cuda/graphs.py).

A subclass supplies the binding-specific primitives: `_open(device)` (context + stream),
`_activate(device)` (a context manager making that device's context current on this thread),
`_load_cubin`, `_get_function`, `_stream_handle`, `_release` (what close() gives back), the
copies, and for copies between GPUs `_peer_async`, `_record_event`, `_wait_event` and
`_drop_event`. Everything here is pure Python over those primitives.
"""
from __future__ import annotations

import atexit
import hashlib
import threading
import weakref

from . import cublas, graphs, toolchain
from .driver import CudaError, Driver


class Kernel:
    """A kernel of a loaded module, as `launch` takes it. `nargs` is fixed by the first launch
    (every parameter of a rendered kernel is a pointer; the count is in the kernel's signature,
    not in the handle), so a later launch with another count is refused before the GPU sees it."""

    __slots__ = ("name", "handle", "nargs", "prepared")

    def __init__(self, name: str, handle):
        self.name, self.handle, self.nargs, self.prepared = name, handle, None, None

    def check_args(self, args) -> None:
        if self.nargs is None:
            self.nargs = len(args)
        elif len(args) != self.nargs:
            raise CudaError(f"launch of kernel {self.name!r}: {len(args)} arguments, but it was launched with "
                            f"{self.nargs} before (one device pointer per parameter)")


class Module:
    """A module loaded on one device; `function(name)` gives the Kernel that `launch` takes."""

    def __init__(self, driver: "RealDriver", device: int, handle):
        self._driver, self.device, self.handle = driver, device, handle
        self._kernels: dict = {}

    def function(self, name: str) -> Kernel:
        k = self._kernels.get(name)
        if k is None:
            k = Kernel(name, self._driver._get_function(self.device, self.handle, name))
            self._kernels[name] = k
        return k


class RealDriver(Driver):
    """The shared half of the pycuda and cuda-bindings drivers (see the module docstring)."""

    def __init__(self):
        self._lock = threading.RLock()
        self._states: dict = {}
        self._modules: dict = {}
        self._blas: dict = {}
        self._closed = False
        ref = weakref.ref(self)
        atexit.register(lambda: ref() is not None and ref().close())

    def close(self) -> None:
        """Give back what this driver holds on every device (allocations, modules, cuBLAS
        handles) while CUDA is still up: at exit, or when the driver is dropped (reset_driver in
        tests makes a new one per test, so an old one must not keep its memory). Later frees
        are no-ops: their memory went with the rest."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for device, st in list(self._states.items()):
                blas = self._blas.pop(device, None)
                modules = [self._modules.pop(k) for k in [k for k in self._modules if k[0] == device]]
                try:
                    self._release(device, st, blas, modules)
                except Exception:
                    pass      # a device that already failed has nothing more to give back

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass          # interpreter teardown

    # ---- per-device state ------------------------------------------------------------------
    def _state(self, device: int):
        st = self._states.get(device)
        if st is None:
            with self._lock:
                st = self._states.get(device)
                if st is None:
                    if not 0 <= device < self.device_count():
                        raise CudaError(f"GPU {device} does not exist ({self.name} sees {self.device_count()})")
                    st = self._open(device)
                    self._states[device] = st
        return st

    # ---- compile and load ------------------------------------------------------------------
    def load_module(self, device: int, source: str):
        key = (device, hashlib.sha256(source.encode()).hexdigest())
        mod = self._modules.get(key)
        if mod is not None:
            return mod
        cubin = toolchain.compile_for(source, self.compute_capability(device))
        with self._lock:
            mod = self._modules.get(key)
            if mod is None:
                with self._activate(device):
                    mod = Module(self, device, self._load_cubin(device, cubin))
                self._modules[key] = mod
        return mod

    # ---- copies between GPUs ----------------------------------------------------------------
    def memcpy_peer(self, dst_device: int, dst: int, src_device: int, src: int, nbytes: int) -> None:
        """driver.py's optional peer copy. Ordering, by events and stream waits only (neither
        the host nor a whole device waits): the copy is queued on the destination's stream
        behind an event recorded on the source's stream (so it reads the source's final value);
        then the source's stream waits for an event recorded after the copy (so later work there,
        such as the caching allocator handing the source's memory out again, cannot overwrite it
        before it has been read). cuMemcpyPeerAsync works without peer access being enabled
        (the driver stages it) and is direct where the GPUs can reach each other."""
        if not nbytes:
            return
        if dst_device == src_device:
            self.memcpy_dtod(dst_device, dst, src, nbytes)
            return
        ready = self._record_event(src_device)
        self._wait_event(dst_device, ready)
        self._peer_async(dst_device, dst, src_device, src, nbytes)
        done = self._record_event(dst_device)
        self._wait_event(src_device, done)
        self._drop_event(src_device, ready)
        self._drop_event(dst_device, done)

    # ---- cuBLAS ----------------------------------------------------------------------------
    def gemm(self, device: int, g, a: int, b: int, c: int) -> None:
        with self._activate(device):
            self._blas_for(device).gemm(g, a, b, c)

    def _blas_for(self, device: int) -> cublas.Blas:
        """The device's cuBLAS handle, made on first use (its context current)."""
        blas = self._blas.get(device)
        if blas is None:
            with self._lock:
                blas = self._blas.get(device)
                if blas is None:
                    blas = cublas.Blas(self._stream_handle(device))
                    self._blas[device] = blas
        return blas

    # ---- CUDA graphs -----------------------------------------------------------------------
    def capture(self, device: int, fn) -> graphs.CudaGraph:
        """Record the work `fn()` queues on the device (launches, gemms, device copies and
        memsets; nothing that waits or allocates) as a graph that `.replay()` queues again in
        one call. Optional: callers check hasattr(driver, 'capture'); the simulator has none."""
        with self._activate(device):
            if cublas.available():
                self._blas_for(device)      # made outside the capture: creating a handle allocates
            return graphs.capture(self, device, self._stream_handle(device), fn)

    def _replay(self, device: int, exec_) -> None:
        with self._activate(device):
            graphs.launch(exec_, self._stream_handle(device), device)

    @staticmethod
    def _dims(what: str, dims) -> tuple:
        """A launch's grid or block as a 3-tuple of positive ints."""
        t = tuple(int(d) for d in (dims if isinstance(dims, (tuple, list)) else (dims,)))
        if not 1 <= len(t) <= 3 or any(d < 1 for d in t):
            raise CudaError(f"launch: {what} {dims!r} must be 1 to 3 positive sizes")
        return t + (1,) * (3 - len(t))
