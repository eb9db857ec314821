"""Writes into GPU arrays that skip the host mirror (ndarray/gpu.py): zeroing a gradient and
setting a value from the host.

Why not `x._data[...] = v`: reading `_data` downloads the old value first and leaves the host
copy authoritative until the next device use uploads it again, two transfers of data that is
about to be overwritten. These write the device memory directly, in order on the device's
stream, and leave the device copy authoritative. Zeroing gradients (zero_grad with
grad_req='add', every step) and kvstore pulls onto a GPU from another device use them.
"""
from __future__ import annotations

import numpy as np


def _own_buffer(st):
    from ..runtime.cuda.memory import allocator
    if st.buf is None or st.buf.nbytes != st.nbytes:
        st.buf = allocator(st.device).allocate(st.nbytes)
    return st.buf


def zero_on_device(arr) -> None:
    """arr (a GpuNDArray) set to zero where it lives: a memset."""
    from ..ndarray.gpu import storage
    from ..runtime.cuda.driver import require_driver
    st = storage(arr)
    buf = _own_buffer(st)
    if st.nbytes:
        require_driver(f"zeroing an array on gpu({st.device})").memset(st.device, buf.ptr, st.nbytes)
    st.written_on_device()


def upload_into(arr, value) -> None:
    """arr's value (on its GPU, in its own memory, so arrays sharing it see the write) becomes
    `value` (anything numpy broadcasts to arr's shape), cast to arr's dtype."""
    from ..ndarray.gpu import storage
    from ..runtime.cuda.driver import require_driver
    st = storage(arr)
    host = np.ascontiguousarray(np.broadcast_to(np.asarray(value), st.shape), dtype=st.dtype)
    buf = _own_buffer(st)
    if st.nbytes:
        require_driver(f"copying to gpu({st.device})").memcpy_htod(st.device, buf.ptr, host)
    st.written_on_device()


__all__ = ["zero_on_device", "upload_into"]
