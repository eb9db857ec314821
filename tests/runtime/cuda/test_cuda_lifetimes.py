"""Device-memory lifetimes: who may free or unmap what, and when.

Why these tests exist: a W9 training run on the simulator died with SIGSEGV (2026-12-07 16:08,
dmesg: a write by glibc's makecontext to the top of a fiber stack that was no longer mapped).
The simulator of that time let a mapping be unmapped by something that did not own it any
more, so a later mapping at the same address (a fiber stack) vanished under a kernel; on a GPU
the same class of bug is silent corruption. The current simulator unmaps each allocation
exactly once and maps its fiber stacks once per process; these tests pin that down, together
with the caching allocator's behaviour when a buffer is collected inside the pool's own locked
code (it deadlocked the thread: DeviceBuffer.__del__ waited for a lock its thread held).
"""
import gc
import threading

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.runtime.cuda import driver as cuda_driver, memory, sim_memory
from graphc.runtime.cuda.driver import CudaError
from graphc.runtime.cuda.sim import SimDriver

BARRIER_KERNEL = r'''
extern "C" __global__ void k_lifetime_rev(float* __restrict__ y, const float* __restrict__ x)
{
  __shared__ float tile[64];
  tile[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}
'''


class _Cycle:
    """Something holding a buffer in a reference cycle: only the cyclic collector frees it."""


def _buffer_in_a_cycle(pool, nbytes):
    c = _Cycle()
    c.me, c.buf = c, pool.allocate(nbytes)
    return c.buf.ptr


def _run_with_timeout(fn, pool, seconds=10.0):
    """fn() in a daemon thread; fails (instead of hanging the suite) when it does not return.
    A thread stuck waiting for the lock it holds itself is let go (a Lock may be released by
    any thread), so that the teardown's pool reset does not hang too."""
    box = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if pool._lock.locked():
            pool._lock.release()
        t.join(seconds)
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s: deadlocked on the "
                    f"pool's lock")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def pool(cuda_device):
    memory.empty_cache()
    return memory.allocator(0)


def test_a_buffer_collected_while_its_pool_mallocs_is_cached_not_a_deadlock(pool, monkeypatch):
    """A collection can start at any allocation, also inside allocate -> driver.malloc, which
    runs under the pool's lock; the collected buffer must come back to the cache."""
    real_malloc = pool.driver.malloc

    def malloc_that_collects(device, nbytes):
        gc.collect()                 # what an automatic collection at that point does
        return real_malloc(device, nbytes)

    ptr = _buffer_in_a_cycle(pool, 3000)
    before = pool.stats()
    monkeypatch.setattr(pool.driver, "malloc", malloc_that_collects)
    big = _run_with_timeout(lambda: pool.allocate(3 << 20), pool)
    monkeypatch.undo()
    after = pool.stats()
    # the cycle's 3000-byte block is back in the cache: the same size is served from it
    assert after["allocated"] == before["allocated"] - memory.rounded(3000) + memory.rounded(3 << 20)
    again = pool.allocate(3000)
    assert again.ptr == ptr and pool.stats()["cache_hits"] == after["cache_hits"] + 1
    big.free()
    again.free()


def test_a_buffer_collected_while_the_cache_empties_neither_deadlocks_nor_leaks(pool, monkeypatch):
    """empty_cache hands blocks to driver.free under the lock; a buffer collected there is
    filed, and a later empty_cache gives it back to the driver."""
    real_free = pool.driver.free
    calls = []

    def free_that_collects(device, ptr):
        calls.append(ptr)
        gc.collect()
        return real_free(device, ptr)

    pool.allocate(5000).free()           # a cached block, so empty_cache calls driver.free
    cycle_ptr = _buffer_in_a_cycle(pool, 7000)
    monkeypatch.setattr(pool.driver, "free", free_that_collects)
    _run_with_timeout(pool.empty_cache, pool)
    _run_with_timeout(pool.empty_cache, pool)
    monkeypatch.undo()
    assert cycle_ptr in calls                     # returned to the driver by the second call
    assert pool.stats()["reserved"] == pool.stats()["allocated"]


def test_buffers_freed_from_another_thread_reach_the_cache(pool):
    bufs = [pool.allocate(4096) for _ in range(64)]
    ptrs = {b.ptr for b in bufs}
    allocated = pool.stats()["allocated"]

    def drop():
        while bufs:
            bufs.pop().free()
    workers = [threading.Thread(target=drop) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(20)
    assert pool.stats()["allocated"] == allocated - 64 * memory.rounded(4096)
    again = [pool.allocate(4096) for _ in range(64)]
    assert {b.ptr for b in again} == ptrs


@pytest.fixture
def sim(cuda_device):
    if cuda_device.name != "sim":
        pytest.skip("inspects the simulator's host mappings")
    return cuda_device


class _CountingLibc:
    """sim_memory's libc, counting munmap calls by address."""

    def __init__(self, real):
        self.real, self.unmapped = real, []

    def munmap(self, base, length):
        self.unmapped.append(base)
        return self.real.munmap(base, length)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_every_mapping_is_unmapped_exactly_once(sim, monkeypatch):
    """A second munmap of an address would unmap whatever was mapped there since (another
    allocation, the fiber stacks): the crash this file is about."""
    gc.collect()                         # (earlier tests' garbage unmaps before counting starts)
    libc = _CountingLibc(sim_memory._libc)
    monkeypatch.setattr(sim_memory, "_libc", libc)
    d = SimDriver()                      # (a driver of its own: the fixture holds the shared one)
    freed = [d.malloc(0, n) for n in (100, 5000, 70000)]
    kept = [d.malloc(0, n) for n in (300, 9000)]
    bases = {p: d._devices[0].allocs[p].base for p in freed + kept}
    for p in freed:
        d.free(0, p)
    del d                                # a dropped driver's live allocations go with it
    gc.collect()
    assert {p: libc.unmapped.count(b) for p, b in bases.items()} == {p: 1 for p in bases}


class _NoMoreMappings(_CountingLibc):
    """libc whose mprotect fails as it does past vm.max_map_count (ENOMEM)."""

    def mprotect(self, addr, length, prot):
        return -1


def test_an_allocation_that_cannot_get_its_guard_pages_is_out_of_memory(sim, monkeypatch):
    """Past the host's limit on mappings the guards cannot be made: the allocation is refused
    (and its mapping given back) rather than handed out unguarded."""
    libc = _NoMoreMappings(sim_memory._libc)
    monkeypatch.setattr(sim_memory, "_libc", libc)
    in_use = sim.memory_in_use(0)
    with pytest.raises(cuda_driver.DeviceOutOfMemory, match=r"gpu\(0\).*vm.max_map_count"):
        sim.malloc(0, 4096)
    assert len(libc.unmapped) == 1 and sim.memory_in_use(0) == in_use
    monkeypatch.undo()
    p = sim.malloc(0, 4096)          # and the driver goes on once mappings are available
    sim.free(0, p)


def test_fiber_kernels_run_after_the_driver_and_its_memory_are_gone(sim):
    """Fiber stacks belong to the process, not to a driver or its allocations: after a reset
    and new allocations filling the old addresses, a cached module's barrier kernel still runs."""
    x = np.arange(128, dtype=np.float32)
    want = x.reshape(2, 64)[:, ::-1].ravel()
    for _ in range(2):
        d = cuda_driver.get_driver()
        f = d.load_module(0, BARRIER_KERNEL).function("k_lifetime_rev")
        filler = [d.malloc(0, 1 << 18) for _ in range(16)]
        px, py = d.malloc(0, x.nbytes), d.malloc(0, x.nbytes)
        d.memcpy_htod(0, px, x)
        d.launch(0, f, (2, 1, 1), (64, 1, 1), [py, px])
        got = np.empty_like(x)
        d.memcpy_dtoh(0, got, py)
        np.testing.assert_array_equal(got, want)
        for p in filler + [px, py]:
            d.free(0, p)
        memory.reset()
        cuda_driver.reset_driver()
        del d, f
        gc.collect()


def test_a_freed_and_unmapped_block_is_a_cuda_error_for_every_call(sim):
    """A pointer kept past empty_cache (the block unmapped) fails as a CudaError naming the call,
    never as a fault of the process."""
    pool = memory.allocator(0)
    buf = pool.allocate(1024)
    stale = buf.ptr
    buf.free()
    pool.empty_cache()
    f = sim.load_module(0, BARRIER_KERNEL).function("k_lifetime_rev")
    good = sim.malloc(0, 512)
    with pytest.raises(CudaError, match="memcpy_dtoh"):
        sim.memcpy_dtoh(0, np.empty(4, np.float32), stale)
    with pytest.raises(CudaError, match="memcpy_htod"):
        sim.memcpy_htod(0, stale, np.ones(4, np.float32))
    with pytest.raises(CudaError, match="launch"):
        sim.launch(0, f, (1, 1, 1), (64, 1, 1), [good, stale])
    sim.free(0, good)


def _net(ctx):
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(8, activation="relu", in_units=5), gluon.nn.Dense(3, in_units=8))
    net.initialize(mx.init.Xavier(), ctx=ctx)
    return net


def _gradients(ctx, empty_between):
    mx.random.seed(7)
    net = _net(ctx)
    net.hybridize()
    x = nd.array(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5), ctx=ctx)
    y = nd.array(np.array([0, 2, 1, 2], np.float32), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        loss = loss_fn(net(x), y)
    if empty_between:
        gc.collect()
        mx.gpu(0).empty_cache()      # unmaps every block nobody holds (in the simulator)
    loss.backward()
    return [p.grad(ctx).asnumpy() for p in net.collect_params().values()]


def test_saved_values_outlive_empty_cache_between_forward_and_backward(cuda_device):
    """The forward's saved values, inputs and head gradients are held by the backward until it
    runs: emptying the cache in between frees none of them (the simulator would fault on a
    returned block; a GPU would read whatever reused it)."""
    from graphc.runtime.cuda.program import clear_program_cache
    clear_program_cache()
    want = _gradients(mx.cpu(), False)
    got = _gradients(mx.gpu(0), True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    clear_program_cache()
