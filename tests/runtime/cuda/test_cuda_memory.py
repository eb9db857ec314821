"""The caching allocator against a driver that only counts bytes: no GPU or simulator needed."""
import pytest
from hypothesis import given, strategies as st

from graphc.runtime.cuda import memory
from graphc.runtime.cuda.driver import DeviceOutOfMemory


class CountingDriver:
    """Hands out disjoint address ranges up to `capacity` bytes; records every call."""

    def __init__(self, capacity=1 << 30):
        self.capacity, self.used, self.next, self.live = capacity, 0, 1 << 20, {}
        self.mallocs = self.frees = self.syncs = 0

    def malloc(self, device, nbytes):
        if self.used + nbytes > self.capacity:
            raise DeviceOutOfMemory(f"fake: {nbytes} bytes do not fit")
        ptr, self.next = self.next, self.next + nbytes
        self.live[ptr] = nbytes
        self.used += nbytes
        self.mallocs += 1
        return ptr

    def free(self, device, ptr):
        self.used -= self.live.pop(ptr)
        self.frees += 1

    def synchronize(self, device):
        self.syncs += 1

    def total_memory(self, device):
        return self.capacity


def test_rounding_groups_nearby_sizes():
    assert memory.rounded(1) == 512 and memory.rounded(512) == 512 and memory.rounded(513) == 1024
    assert memory.rounded((1 << 20) + 1) == (1 << 20) + (128 << 10)


def test_a_freed_block_is_handed_out_again_without_the_driver():
    drv = CountingDriver()
    pool = memory.CachingAllocator(drv, 0)
    a = pool.allocate(1000)
    ptr = a.ptr
    a.free()
    a.free()                                   # idempotent
    b = pool.allocate(900)                     # same rounded size (1024)
    assert b.ptr == ptr and drv.mallocs == 1
    s = pool.stats()
    assert s["cache_hits"] == 1 and s["allocated"] == 1024 and s["reserved"] == 1024


def test_collection_returns_the_block():
    drv = CountingDriver()
    pool = memory.CachingAllocator(drv, 0)
    pool.allocate(4096)                        # dropped at once
    assert pool.stats()["allocated"] == 0 and pool.stats()["reserved"] == 4096


def test_large_requests_take_a_slightly_larger_cached_block_but_not_a_much_larger_one():
    drv = CountingDriver()
    pool = memory.CachingAllocator(drv, 0)
    big = pool.allocate(10 << 20)
    big.free()
    near = pool.allocate(9 << 20)              # within 25%
    assert near.ptr == big.ptr
    near.free()
    small = pool.allocate(2 << 20)             # 5x smaller: a new block
    assert small.ptr != big.ptr and drv.mallocs == 2


def test_out_of_memory_empties_the_cache_and_retries_then_names_the_sizes():
    drv = CountingDriver(capacity=4 << 20)
    pool = memory.CachingAllocator(drv, 0)
    a = pool.allocate(3 << 20)
    a.free()                                   # cached: the driver still holds 3 MiB
    b = pool.allocate(3 << 20 | 1)             # does not fit beside the cached block
    assert drv.frees == 1 and b.nbytes == (3 << 20 | 1)
    with pytest.raises(DeviceOutOfMemory, match=r"gpu\(0\).*out of memory allocating \d+ bytes"):
        pool.allocate(2 << 20)


def test_empty_cache_gives_cached_blocks_back():
    drv = CountingDriver()
    pool = memory.CachingAllocator(drv, 0)
    bufs = [pool.allocate(n) for n in (100, 5000, 3 << 20)]
    keep = pool.allocate(700)
    for b in bufs:
        b.free()
    pool.empty_cache()
    assert drv.used == 1024 - 0 and pool.stats()["reserved"] == pool.stats()["allocated"] == 1024
    assert drv.syncs == 1 and keep.ptr in drv.live


def test_zero_bytes_needs_no_block():
    pool = memory.CachingAllocator(CountingDriver(), 0)
    z = pool.allocate(0)
    assert z.ptr == 0 and pool.stats()["allocs"] == 0
    with pytest.raises(ValueError):
        pool.allocate(-1)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3 << 20)), min_size=1, max_size=60))
def test_live_buffers_never_overlap_and_the_books_balance(ops):
    drv = CountingDriver()
    pool = memory.CachingAllocator(drv, 0)
    live = []
    for alloc, n in ops:
        if alloc or not live:
            live.append(pool.allocate(n))
        else:
            live.pop(n % len(live)).free()
        spans = sorted((b.ptr, b.ptr + b.nbytes) for b in live)
        assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:]))
        s = pool.stats()
        assert s["allocated"] == sum(b._block for b in live)
        assert s["reserved"] == drv.used >= s["allocated"]
        assert all(b.nbytes <= b._block for b in live)
    pool.empty_cache()
    assert drv.used == pool.stats()["allocated"]
