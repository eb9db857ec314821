"""Devices (MXNet calls them contexts): cpu(i), gpu(i), and the current default.

A Context is only a name: `mx.gpu(0)` exists on any machine (MXNet allows it). Placing data on
one is what needs the device, so array creation calls `require_device`, which refuses a GPU
that the CUDA runtime (pycuda) does not report, as MXNet refuses one its build or machine lacks.

CPU devices are real: cpu(k) owns a share of the cores (runtime/cpu_devices.py) with its own
worker pool and dispatcher thread. `require_device` also records that cpu(k) holds data; once a
second device does (MULTI), work runs asynchronously per device (graphc/engine.py) and eager
operators check that their inputs share a device type. Array creation on cpu(0) skips all of
this (one attribute test), so a single-device process pays nothing.
"""
from __future__ import annotations

import functools
import threading

from .ops.errors import GraphcError


class _DefaultContext(type):
    """Gives the class a settable `Context.default_ctx` (MXNet's, a per-thread default)."""

    @property
    def default_ctx(cls):
        return current_context()

    @default_ctx.setter
    def default_ctx(cls, ctx):
        cls._local.ctx = ctx


class Context(metaclass=_DefaultContext):
    """A device: type ('cpu' or 'gpu') and id. `with mx.gpu(0):` makes it the default."""

    _local = threading.local()
    devtype2str = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
    devstr2type = {v: k for k, v in devtype2str.items()}

    def __init__(self, device_type, device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if device_type not in ("cpu", "gpu", "cpu_pinned", "cpu_shared"):
            raise ValueError(f"unknown device type {device_type!r}; expected 'cpu' or 'gpu'")
        self.device_type, self.device_id = device_type, int(device_id)
        self._old = None

    @property
    def device_typeid(self):
        return self.devstr2type[self.device_type]

    def __eq__(self, other):
        return isinstance(other, Context) and (self.device_type, self.device_id) == (other.device_type, other.device_id)

    def __hash__(self):
        return hash((self.device_type, self.device_id))

    def __str__(self):
        return f"{self.device_type}({self.device_id})"

    __repr__ = __str__

    def __enter__(self):
        self._old = current_context()
        Context._local.ctx = self
        return self

    def __exit__(self, *exc):
        Context._local.ctx = self._old

    def empty_cache(self):
        """A GPU's cached free blocks go back to the driver (runtime/cuda/memory.py); nothing to
        free on the CPU (kept for MXNet compatibility)."""
        if self.device_type == "gpu" and self.device_id < num_gpus():
            from .runtime.cuda import memory
            memory.empty_cache(self.device_id)


def cpu(device_id=0) -> Context:
    return Context("cpu", device_id)


def gpu(device_id=0) -> Context:
    return Context("gpu", device_id)


def cpu_pinned(device_id=0) -> Context:
    return Context("cpu_pinned", device_id)


def current_context() -> Context:
    return getattr(Context._local, "ctx", None) or Context("cpu", 0)


def num_gpus() -> int:
    """The number of CUDA GPUs the CUDA driver sees (pycuda, else cuda-bindings; the host
    simulator's under GRAPHC_CUDA_SIM=1: runtime/cuda/driver.py); 0 without one."""
    return _cuda_device_count()


@functools.lru_cache(maxsize=1)
def _cuda_device_count() -> int:
    # asked once per process (runtime.cuda.driver.reset_driver clears it): array creation
    # checks every GPU placement against it
    from .runtime.cuda.driver import get_driver
    driver = get_driver()
    return driver.device_count() if driver is not None else 0


# more than one device (a cpu(k > 0) or a GPU) has held data in this process: arrays carry
# pending work (graphc/engine.py) and eager operators check their inputs' devices. Only grows.
MULTI = False
_placed = {("cpu", 0)}


def require_device(ctx: Context) -> Context:
    """`ctx` when data can be placed on it; a GPU context needs that GPU to exist, a cpu(k) needs
    GRAPHC_CPU_DEVICES (when set) to define it. Records that the device now holds data."""
    if (ctx.device_type, ctx.device_id) not in _placed:
        _place(ctx)
    return ctx


def _place(ctx: Context) -> None:
    global MULTI
    if ctx.device_type == "gpu":
        _check_gpu(ctx)
    elif ctx.device_type == "cpu":
        from .runtime import cpu_devices
        cpu_devices.use(ctx.device_id)      # grows the core split, or refuses a device it lacks
    else:               # cpu_pinned / cpu_shared: host memory of cpu(0)'s kind, not devices
        _placed.add((ctx.device_type, ctx.device_id))
        return
    _placed.add((ctx.device_type, ctx.device_id))
    MULTI = True


def release_devices() -> None:
    """Wait for every device's queued work, then forget which devices held data: the process is
    single-device again (no queued work, cpu(0) on every core, unless GRAPHC_CPU_DEVICES fixes
    the split) until data is next placed on a second device. For notebooks and test suites that
    are done with a multi-device part; arrays already on cpu(k) stay usable."""
    global MULTI
    from . import engine
    from .runtime import cpu_devices
    engine.waitall_quiet()
    MULTI = False
    _placed.intersection_update({("cpu", 0)})
    cpu_devices.reset()


def _check_gpu(ctx: Context) -> None:
    n = num_gpus()
    if n == 0:
        raise GraphcError(f"cannot place an array on {ctx}: no CUDA GPU is available "
                          f"(num_gpus() = 0); use mx.cpu()")
    if ctx.device_id >= n:
        raise GraphcError(f"cannot place an array on {ctx}: only {n} CUDA GPU(s) are available "
                          f"(gpu(0) .. gpu({n - 1}))")


def as_context(ctx) -> Context:
    if ctx is None:
        return current_context()
    if isinstance(ctx, Context):
        return ctx
    if isinstance(ctx, str):
        kind, _, rest = ctx.partition("(")
        return Context(kind, int(rest.rstrip(")") or 0))
    raise TypeError(f"expected a Context (mx.cpu(), mx.gpu()), got {ctx!r}")
