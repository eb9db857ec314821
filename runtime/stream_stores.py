"""Non-temporal (streaming) stores for elementwise kernels with a large output.

Why: a kernel like W1b (`y = relu(x*0.5 + 1) * x - 0.25` over 2^24 floats) is bound by memory
traffic. An ordinary store first reads the output's cache line from memory (write-allocate), so
each element costs a read of x, a read of y's old line and a write of y: 12 bytes for the 8 that
matter. A streaming store writes whole lines without reading them. Measured on the 2-core Xeon
with a hand-written C twin of W1b (2 threads, 2^24 floats, under SCHED_FIFO): 3.5 ms with
ordinary stores, 2.6 ms with `_mm512_stream_ps`; graphc's W1b, the two builds interleaved in one
process, 3.72-3.83 -> 3.08-3.20 ms (STREAM triad 28-29 GB/s in the same window).

How: LLVM's loop vectorizer does not vectorize a loop whose store carries `!nontemporal` unless
the target can store that vector unaligned non-temporally (x86 cannot), and the kernels' stores
are only element-aligned. So the kernel keeps its ordinary vectorized body, computing blocks of
BLOCK elements into a 64-byte aligned stack buffer (L1-resident), and a copy loop streams each
block out: scalar stores up to the first 64-byte boundary of the output, then aligned vector
stores marked `!nontemporal` (vmovntps on x86, stnp on AArch64), then a scalar tail. A
`fence seq_cst` at the end orders the streamed lines before the pool's completion counter.

Which kernels: `emit` takes a kernel whose body is one parallel loop of one Store to a float32
output of at least GRAPHC_STREAM_STORE_BYTES bytes (default 16 MiB: an output that large is not
going to stay in cache for its reader anyway), at index `i` of the loop variable, whose loads are
at index `i` too (rebased per block) or loop-invariant (broadcast), and whose output is not also
an input (in-place kernels read the output). GRAPHC_STREAM_STORE_BYTES=0 turns it off. The
setting is read when a program is built and is part of the cache key (cache_tag).
"""
from __future__ import annotations

import os

import llvmlite.ir as ir

from .gemm_ir import _loop
from .kernel_ir import Index, Kernel, Load, Loop, Store

F32 = ir.FloatType()
I32, I64 = ir.IntType(32), ir.IntType(64)
I8P = ir.IntType(8).as_pointer()
KERNEL_FN = ir.FunctionType(ir.VoidType(), [I8P.as_pointer(), I64, I64])

BLOCK = 2048            # elements computed into the stack buffer per step (8 KiB: stays in L1)
VEC = 16                # floats per streamed store: one 64-byte cache line
DEFAULT_MIN_BYTES = 16 << 20


def min_bytes() -> int:
    """GRAPHC_STREAM_STORE_BYTES: output size from which stores stream (0: never)."""
    v = os.environ.get("GRAPHC_STREAM_STORE_BYTES", "").strip()
    return int(v) if v.isdigit() else DEFAULT_MIN_BYTES


def cache_tag() -> str:
    return f"stream_stores>={min_bytes()} v1"


def takes(kernel: Kernel) -> bool:
    """Whether `kernel` is the one-loop, one-store elementwise shape emit() handles (see the
    module docstring)."""
    lim = min_bytes()
    loop = kernel.parallel_loop
    if lim <= 0 or loop is None or kernel.inplace or len(loop.body) != 1 or not isinstance(loop.body[0], Store):
        return False
    s = loop.body[0]
    out = kernel.buf(s.buf)
    if out.dtype != "float32" or out.size * 4 < lim or loop.extent != out.size:
        return False
    if s.index != Index(((loop.var, 1),)):
        return False
    for a in s.args:
        if not isinstance(a, Load) or a.buf == s.buf or a.index.indirect:
            return False
        if a.index.terms not in ((), ((loop.var, 1),)) or (a.index.terms and a.index.offset):
            return False
    return True


def emit(module: ir.Module, kernel: Kernel):
    """`void @<kernel>.stream(i8** bufs, i64 start, i64 end)`, a drop-in for the kernel's own
    function over the same range, or None when the kernel is not of the handled shape. The
    kernel's `<name>.body` (render_llvm.ModuleBuilder.add_kernel) must be in `module`."""
    if not takes(kernel):
        return None
    name = kernel.name + ".stream"
    try:
        return module.get_global(name)
    except KeyError:
        pass
    impl = module.get_global(kernel.name + ".body")
    loop = kernel.parallel_loop
    store = loop.body[0]
    rebased = {a.buf for a in store.args if a.index.terms}
    fn = ir.Function(module, KERNEL_FN, name)
    fn.attributes.add("nounwind")
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    bufs, start, end = fn.args
    tmp = b.alloca(ir.ArrayType(F32, BLOCK), name="block")
    tmp.align = 64
    tmp = b.bitcast(tmp, F32.as_pointer())
    ptrs = []
    for i, (bf, ty) in enumerate(zip(kernel.bufs, impl.args)):
        ptrs.append(b.bitcast(b.load(b.gep(bufs, [ir.Constant(I64, i)], inbounds=True)), ty.type))
    out_at = [bf.name for bf in kernel.bufs].index(store.buf)

    def block(s0):
        n = b.sub(end, s0)
        n = b.select(b.icmp_signed("<", n, ir.Constant(I64, BLOCK)), n, ir.Constant(I64, BLOCK))
        args = []
        for bf, p in zip(kernel.bufs, ptrs):
            if bf.name == store.buf:
                args.append(tmp)
            elif bf.name in rebased:
                args.append(b.gep(p, [s0], inbounds=True))
            else:
                args.append(p)
        b.call(impl, args + [ir.Constant(I64, 0), n])
        _stream_copy(b, tmp, b.gep(ptrs[out_at], [s0], inbounds=True), n)

    _loop(b, start, end, BLOCK, block, "stream.blk", unroll=True)
    b.fence("seq_cst")
    b.ret_void()
    return fn


def _stream_copy(b, src, dst, n):
    """dst[0:n] = src[0:n]: scalar up to dst's first 64-byte boundary, aligned non-temporal
    vector stores, a scalar tail."""
    vt = ir.VectorType(F32, VEC)
    nt = b.module.add_metadata([ir.Constant(I32, 1)])
    addr = b.ptrtoint(dst, I64)
    head = b.lshr(b.and_(b.sub(ir.Constant(I64, 0), addr), ir.Constant(I64, 63)), ir.Constant(I64, 2))
    head = b.select(b.icmp_signed("<", head, n), head, n)       # dst is float-aligned: 0..15 floats
    body_end = b.add(head, b.and_(b.sub(n, head), ir.Constant(I64, -VEC)))

    def scalar(j):
        b.store(b.load(b.gep(src, [j], inbounds=True)), b.gep(dst, [j], inbounds=True))

    def vector(j):
        v = b.load(b.bitcast(b.gep(src, [j], inbounds=True), vt.as_pointer()), align=4)
        st = b.store(v, b.bitcast(b.gep(dst, [j], inbounds=True), vt.as_pointer()), align=64)
        st.set_metadata("nontemporal", nt)

    _loop(b, ir.Constant(I64, 0), head, 1, scalar, "stream.head", unroll=True)
    _loop(b, head, body_end, VEC, vector, "stream.vec", unroll=True)
    _loop(b, body_end, n, 1, scalar, "stream.tail", unroll=True)


__all__ = ["emit", "takes", "cache_tag", "min_bytes", "BLOCK"]
