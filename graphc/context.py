"""mxnet.context for graphc: devices by MXNet's module name (the code lives in device.py)."""
from __future__ import annotations

from .device import Context, cpu, gpu, cpu_pinned, current_context, num_gpus  # noqa: F401


def gpu_memory_info(device_id=0):
    """(free, total) bytes of GPU `device_id`, as MXNet reports them (needs pycuda and the GPU)."""
    from .device import require_device
    require_device(gpu(device_id))
    import pycuda.driver as cuda   # present whenever require_device accepted the GPU
    ctx = cuda.Device(device_id).retain_primary_context()
    ctx.push()
    try:
        return cuda.mem_get_info()
    finally:
        ctx.pop()
