"""CUDA graphs: a device's queued work recorded once and replayed with one launch.

Why: a GPU program step is tens to hundreds of small launches, each paying the binding's Python
cost and the driver's launch latency; a captured graph replays them all from one call. The real
drivers record what a function queues on the device's stream (stream capture) and return a
`CudaGraph`. Called directly on libcuda with ctypes, because pycuda has no graph API and both
drivers expose the raw stream handle.

What may run inside a capture: launches, cuBLAS products, device-to-device copies and memsets on
buffers that stay allocated while the graph lives (the graph holds their addresses). Anything
that waits for the device (memcpy_dtoh, synchronize) or allocates fails the capture with a
CudaError, and the stream is left usable.
"""
from __future__ import annotations

import ctypes
import threading

from .driver import CudaError

CAPTURE_THREAD_LOCAL = 1      # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: other threads' calls unaffected
_lock = threading.Lock()
_lib = None


def libcuda():
    """The driver library with the graph calls' argument types; CudaError when it is missing."""
    global _lib
    with _lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL("libcuda.so.1")
            except OSError as exc:
                raise CudaError(f"CUDA graphs need libcuda.so.1, which does not load: {exc}") from None
            P = ctypes.c_void_p
            sig = {"cuStreamBeginCapture_v2": [P, ctypes.c_int], "cuStreamEndCapture": [P, ctypes.POINTER(P)],
                   "cuGraphInstantiateWithFlags": [ctypes.POINTER(P), P, ctypes.c_ulonglong],
                   "cuGraphLaunch": [P, P], "cuGraphExecDestroy": [P], "cuGraphDestroy": [P],
                   "cuGetErrorName": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]}
            for name, argtypes in sig.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = argtypes, ctypes.c_int
            _lib = lib
        return _lib


def _check(lib, result: int, call: str) -> None:
    if result != 0:
        name = ctypes.c_char_p()
        text = name.value.decode() if lib.cuGetErrorName(result, ctypes.byref(name)) == 0 and name.value else "?"
        raise CudaError(f"{call} failed: {text} ({result})")


class CudaGraph:
    """Work captured on one device's stream; `replay()` queues all of it again on that stream
    (ordered after earlier work, like any launch). Free with `close()` or by dropping it."""

    def __init__(self, driver, device: int, graph, exec_):
        self._driver, self.device, self._graph, self._exec = driver, device, graph, exec_

    def replay(self) -> None:
        if not self._exec:
            raise CudaError(f"replay of a closed CUDA graph (GPU {self.device})")
        self._driver._replay(self.device, self._exec)

    def close(self) -> None:
        lib = _lib
        if lib is not None and self._exec:
            lib.cuGraphExecDestroy(self._exec)
            lib.cuGraphDestroy(self._graph)
        self._exec = self._graph = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass       # interpreter teardown: the driver may be gone already


def capture(driver, device: int, stream: int, fn) -> CudaGraph:
    """Record what `fn()` queues on `stream` (the device's context current) as a CudaGraph."""
    lib = libcuda()
    _check(lib, lib.cuStreamBeginCapture_v2(stream, CAPTURE_THREAD_LOCAL), f"cuStreamBeginCapture (GPU {device})")
    graph = ctypes.c_void_p()
    try:
        fn()
    except BaseException:
        lib.cuStreamEndCapture(stream, ctypes.byref(graph))        # leaves capture mode; the graph is discarded
        if graph.value:
            lib.cuGraphDestroy(graph)
        raise
    _check(lib, lib.cuStreamEndCapture(stream, ctypes.byref(graph)),
           f"cuStreamEndCapture (GPU {device}; a call inside the capture waited for the device or allocated)")
    exec_ = ctypes.c_void_p()
    try:
        _check(lib, lib.cuGraphInstantiateWithFlags(ctypes.byref(exec_), graph, 0),
               f"cuGraphInstantiate (GPU {device})")
    except CudaError:
        lib.cuGraphDestroy(graph)
        raise
    return CudaGraph(driver, device, graph, exec_)


def launch(exec_, stream: int, device: int) -> None:
    lib = libcuda()
    _check(lib, lib.cuGraphLaunch(exec_, stream), f"cuGraphLaunch (GPU {device})")
