"""Devices (MXNet calls them contexts): cpu(i), gpu(i), and the current default."""
from __future__ import annotations

import threading


class Context:
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
        """Nothing to free on the CPU; kept for MXNet compatibility."""


def cpu(device_id=0) -> Context:
    return Context("cpu", device_id)


def gpu(device_id=0) -> Context:
    return Context("gpu", device_id)


def cpu_pinned(device_id=0) -> Context:
    return Context("cpu_pinned", device_id)


def current_context() -> Context:
    return getattr(Context._local, "ctx", None) or Context("cpu", 0)


def num_gpus() -> int:
    try:
        import pycuda.driver as drv  # noqa: F401
        drv.init()
        return drv.Device.count()
    except Exception:
        return 0


def as_context(ctx) -> Context:
    if ctx is None:
        return current_context()
    if isinstance(ctx, Context):
        return ctx
    if isinstance(ctx, str):
        kind, _, rest = ctx.partition("(")
        return Context(kind, int(rest.rstrip(")") or 0))
    raise TypeError(f"expected a Context (mx.cpu(), mx.gpu()), got {ctx!r}")
