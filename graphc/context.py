"""mxnet.context for graphc: devices by MXNet's module name (the code lives in device.py)."""
from __future__ import annotations

from .device import Context, cpu, gpu, cpu_pinned, current_context, num_gpus  # noqa: F401


def gpu_memory_info(device_id=0):
    """(free, total) bytes of GPU `device_id`, as MXNet's. The driver's own count when it has one
    (`mem_get_info`: what every process on the GPU left free); otherwise the total less what
    graphc's pool holds from the driver (the simulator: graphc is the only user)."""
    from .device import require_device
    from .runtime.cuda import memory
    from .runtime.cuda.driver import require_driver
    require_device(gpu(device_id))
    driver = require_driver("gpu_memory_info")
    info = getattr(driver, "mem_get_info", None)
    if info is not None:
        free, total = info(device_id)
        return int(free), int(total)
    total = int(driver.total_memory(device_id))
    return total - memory.memory_stats(device_id)["reserved"], total
