"""Device memory: a caching allocator per GPU, and the buffers it hands out.

Why a cache: a device allocation (cuMemAlloc) is slow and synchronizes the device, and a
training step frees and asks for the same sizes every step (its activations, gradients and
program arenas). Freed blocks are kept by size and handed out again; `empty_cache()` gives them
back to the driver (MXNet's `ctx.empty_cache()`, PyTorch's `torch.cuda.empty_cache()`).

Reuse is safe without events because every driver issues a device's work in order on one stream
(runtime/cuda/driver.py): work queued after a block is handed out again runs after the work that
used it before.

Sizes round up to 512 bytes below 1 MiB and to 128 KiB above, so that shapes differing by a few
elements share blocks. A request is served by a cached block of its rounded size, or, for large
sizes, by the smallest cached block at most 25% larger (one block, never split: no
fragmentation bookkeeping). When the driver is out of memory, the cache is emptied and the
allocation tried once more before DeviceOutOfMemory reaches the caller, with the pool's sizes.
"""
from __future__ import annotations

import bisect
import threading

from .driver import CudaError, DeviceOutOfMemory, require_driver

SMALL = 1 << 20
SMALL_ROUND = 512
LARGE_ROUND = 128 << 10
LARGE_SLACK = 1.25


def rounded(nbytes: int) -> int:
    step = SMALL_ROUND if nbytes < SMALL else LARGE_ROUND
    return max(step, -(-nbytes // step) * step)


class DeviceBuffer:
    """`nbytes` bytes at `ptr` on GPU `device`, from that device's pool; back to the pool on
    `free()` or when collected. A zero-byte buffer has ptr 0 and no block."""

    __slots__ = ("ptr", "nbytes", "device", "_block", "_pool", "__weakref__")

    def __init__(self, ptr, nbytes, device, block, pool):
        self.ptr, self.nbytes, self.device, self._block, self._pool = ptr, nbytes, device, block, pool

    def free(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._release(self.ptr, self._block)

    def __del__(self):
        try:
            self.free()
        except Exception:       # noqa: BLE001 - interpreter shutdown: the driver may be gone
            pass

    def __repr__(self):
        return f"<DeviceBuffer gpu({self.device}) {self.nbytes} bytes at {self.ptr:#x}>"


class CachingAllocator:
    """One GPU's pool (see the module docstring)."""

    def __init__(self, driver, device: int):
        self.driver, self.device = driver, device
        self._lock = threading.Lock()
        self._free = {}             # block size -> [ptr, ...]
        self._sizes = []            # sorted block sizes with cached blocks
        self._live = True
        # blocks handed back and not yet filed into _free: see _release
        self._returned = []
        self._stats = {"allocated": 0, "reserved": 0, "peak_allocated": 0, "allocs": 0,
                       "cache_hits": 0, "device_mallocs": 0}

    def allocate(self, nbytes: int) -> DeviceBuffer:
        nbytes = int(nbytes)
        if nbytes < 0:
            raise ValueError(f"gpu({self.device}): cannot allocate {nbytes} bytes")
        if nbytes == 0:
            return DeviceBuffer(0, 0, self.device, 0, None)
        want = rounded(nbytes)
        with self._lock:
            self._file_returned()
            self._stats["allocs"] += 1
            block, ptr = self._take_cached(want)
            if ptr is None:
                block, ptr = want, self._malloc(want)
            s = self._stats
            s["allocated"] += block
            s["peak_allocated"] = max(s["peak_allocated"], s["allocated"])
        return DeviceBuffer(ptr, nbytes, self.device, block, self)

    def _take_cached(self, want):
        limit = want if want < SMALL else int(want * LARGE_SLACK)
        i = bisect.bisect_left(self._sizes, want)
        if i < len(self._sizes) and self._sizes[i] <= limit:
            size = self._sizes[i]
            ptrs = self._free[size]
            ptr = ptrs.pop()
            if not ptrs:
                del self._free[size]
                self._sizes.pop(i)
            self._stats["cache_hits"] += 1
            return size, ptr
        return None, None

    def _malloc(self, size):
        try:
            ptr = self.driver.malloc(self.device, size)
        except DeviceOutOfMemory:
            self._empty_locked()
            try:
                ptr = self.driver.malloc(self.device, size)
            except DeviceOutOfMemory as exc:
                s = self._stats
                raise DeviceOutOfMemory(
                    f"gpu({self.device}): out of memory allocating {size} bytes ({s['allocated']} bytes in "
                    f"use by graphc, cache emptied; device total {self.driver.total_memory(self.device)} "
                    f"bytes). Driver said: {exc}") from None
        self._stats["reserved"] += size
        self._stats["device_mallocs"] += 1
        return ptr

    def _release(self, ptr, block):
        # Never waits for the lock: DeviceBuffer.__del__ calls this, and a garbage collection
        # can run it in the middle of this pool's own locked code (any allocation inside
        # allocate -> driver.malloc, or empty_cache -> driver.free, may start one), where
        # waiting would deadlock the thread and filing the block would change _free/_sizes
        # under _take_cached's feet. So the block is queued (list.append is atomic), and
        # whoever holds the lock files the queue: this call when the lock is free, else the
        # holder's next allocate/empty_cache/stats.
        self._returned.append((ptr, block))
        if self._lock.acquire(blocking=False):
            try:
                self._file_returned()
            finally:
                self._lock.release()

    def _file_returned(self):
        """Move the queued blocks into the cache (the lock is held)."""
        while self._returned:
            ptr, block = self._returned.pop()
            if not self._live:
                continue
            self._stats["allocated"] -= block
            ptrs = self._free.get(block)
            if ptrs is None:
                self._free[block] = ptrs = []
                bisect.insort(self._sizes, block)
            ptrs.append(ptr)

    def empty_cache(self) -> None:
        """Give every cached (unused) block back to the driver."""
        with self._lock:
            self._empty_locked()

    def _empty_locked(self):
        self._file_returned()
        if self._free:
            self.driver.synchronize(self.device)     # a block may still be read by queued work
        for size, ptrs in self._free.items():
            for ptr in ptrs:
                self.driver.free(self.device, ptr)
                self._stats["reserved"] -= size
        self._free.clear()
        self._sizes.clear()

    def stats(self) -> dict:
        """allocated: bytes of blocks in use; reserved: bytes held from the driver (in use and
        cached); peak_allocated; allocs; cache_hits; device_mallocs."""
        with self._lock:
            self._file_returned()
            return dict(self._stats)

    def _close(self):
        with self._lock:
            self._live = False
            self._free.clear()
            self._sizes.clear()


_pools: dict = {}
_pools_lock = threading.Lock()


def allocator(device: int) -> CachingAllocator:
    pool = _pools.get(device)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(device)
            if pool is None:
                driver = require_driver(f"allocating memory on gpu({device})")
                n = driver.device_count()
                if not 0 <= device < n:
                    raise CudaError(f"gpu({device}) does not exist: {n} GPU(s) are available")
                pool = _pools[device] = CachingAllocator(driver, device)
    return pool


def empty_cache(device: int | None = None) -> None:
    """Give cached blocks back to the driver: one device's, or every device's."""
    for d, pool in list(_pools.items()):
        if device is None or d == device:
            pool.empty_cache()


def memory_stats(device: int) -> dict:
    return allocator(device).stats()


def synchronize_all() -> None:
    """Wait for the queued work of every GPU that holds graphc memory (mx.nd.waitall)."""
    for d, pool in list(_pools.items()):
        pool.driver.synchronize(d)


def reset() -> None:
    """Drop every pool without freeing (the driver they belong to is being forgotten)."""
    with _pools_lock:
        for pool in _pools.values():
            pool._close()
        _pools.clear()
