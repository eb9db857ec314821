"""Host memory laid out the way the CUDA simulator needs it: each device allocation in its own
mapping between inaccessible pages, and one pool of fiber stacks with a guard page below each.

Why mappings rather than numpy buffers: a kernel reading or writing outside its buffers, or
using a freed one, then faults, and sim_runtime.h turns the fault into an error naming the
thread and block, where a heap buffer would let it corrupt a neighbour silently.
"""
from __future__ import annotations

import ctypes
import mmap

ALIGN = 256         # cudaMalloc's alignment
POISON = 0xFF       # fresh memory: NaN for floats, -1 for integers
PROT_NONE = 0
# sim_runtime.h's STACK_STRIDE, GUARD_BYTES and MAX_THREADS
STACK_STRIDE, GUARD_BYTES, MAX_THREADS = 256 << 10, 4096, 1024


def _c_library():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


_libc = _c_library()


def _map(length: int) -> int:
    """Private read-write pages, reserving no swap: only the pages touched cost memory."""
    base = _libc.mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0), -1, 0)
    if base in (None, ctypes.c_void_p(-1).value):
        raise MemoryError(f"mmap of {length} bytes failed (errno {ctypes.get_errno()})")
    return base


class Allocation:
    """`nbytes` at `ptr`, 256-byte aligned and ending (up to the alignment) at an inaccessible
    page, with another before the mapping's first page."""
    __slots__ = ("ptr", "nbytes", "base", "length")

    def __init__(self, nbytes: int):
        page = mmap.PAGESIZE
        used = -(-nbytes // ALIGN) * ALIGN
        data = -(-used // page) * page
        self.length = data + 2 * page
        self.base, self.nbytes = _map(self.length), nbytes
        # each guard splits the mapping (3 kernel mappings per allocation); past
        # vm.max_map_count mprotect fails, and an allocation without its guards would let an
        # overrun reach a neighbour silently: refuse it (sim.py reports out of memory)
        if _libc.mprotect(self.base, page, PROT_NONE) or \
                _libc.mprotect(self.base + page + data, page, PROT_NONE):
            err = ctypes.get_errno()
            self.release()
            raise MemoryError(f"mprotect of a guard page failed (errno {err}; the host's limit on "
                              f"mappings, vm.max_map_count, allows about a third as many allocations)")
        self.ptr = self.base + page + data - used
        ctypes.memset(self.ptr, POISON, nbytes)

    def release(self) -> None:
        """Unmap (once): a kernel still using the pointer faults instead of reading stale bytes."""
        base, self.base = self.base, 0
        if base and _libc is not None:      # (None: the interpreter is shutting down)
            _libc.munmap(base, self.length)

    def __del__(self):
        # a driver dropped with live allocations (tests reset the driver) gives them back;
        # launches check their pointers, so no kernel can reach an address unmapped here
        self.release()


_stacks = None          # the fiber pool's base address


def fiber_stacks(threads: int):
    """The base of the pool holding a stack for each of up to MAX_THREADS fibers (None for more:
    sim_runtime.h refuses such a block itself). One pool per process, shared by every module and
    never unmapped, since a loaded module may run on it again."""
    global _stacks
    if threads > MAX_THREADS:
        return None
    if _stacks is None:
        base = _map(MAX_THREADS * STACK_STRIDE)
        for t in range(MAX_THREADS):
            _libc.mprotect(base + t * STACK_STRIDE, GUARD_BYTES, PROT_NONE)
        _stacks = base
    return _stacks


def in_fiber_stacks(address: int) -> bool:
    return _stacks is not None and _stacks <= address < _stacks + MAX_THREADS * STACK_STRIDE
