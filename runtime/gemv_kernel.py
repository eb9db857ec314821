"""Small-M float32 GEMMs (batch-1 inference: one or a few rows times a weight matrix) as LLVM IR
vector code, one function per kernel that the worker pool splits over the outputs.

Why not OpenBLAS's sgemv or graphc's packed GEMM: at M = 1 a layer is one pass over the weights
and nothing else, so what counts is streaming the weights once, in the order they are stored,
with no packing and no library call per pool chunk. W2's MLP (784-512-512-10 at batch 1) spent
most of its kernel time in cblas_sgemv slices; this kernel reads each weight once with as many
independent FMA chains as the FMA latency needs. Measured on the 2-core Xeon (2 MiB L2 per core),
SCHED_FIFO so that other processes stay off the cores, pool spin 3000: a 512x512 layer with its
weights in L2, one thread, 10.6 -> 7.8 us CPU; W2 per call, 2 threads, 33.7 / 37.5 -> 23.0 / 21.8
us (two alternating rounds; onnxruntime 25.3 / 24.6 in the same window).

The function `void @<kernel>.gemv(i8** bufs, i64 start, i64 end)` computes C's columns
[start, end) (every one of its M rows), so the pool splits the weight by output, each thread
streaming its own contiguous part of it. Two layouts:

- B transposed (FullyConnected's weight, n x k, each output's weights contiguous in k): blocks of
  R = 8 // M outputs; per block R x M vector accumulators over k (the FMA chains), one load of
  each B row vector shared by the M rows of A, reduced across lanes at the end; a scalar loop for
  K's tail (k mod lanes). A's rows must be contiguous in k (not transposed, or M = 1 with lda 1).
- B not transposed (k x n, outputs contiguous in a row of B): blocks of U vectors of outputs;
  per k, a broadcast of A[i, k] times U vectors of B's row k, M x U accumulators; then single
  vectors, then scalar columns for the tail.

C = alpha * op(A) op(B) + beta * C as in kernel_ir.Gemm. Taken under GRAPHC_GEMM=auto (the
default) only: 'blas' and 'native' ask for OpenBLAS or graphc's packed GEMM everywhere.
GRAPHC_GEMV=0 (read when a program is built; part of the cache key through cache_tag) leaves
these products to the previous path (OpenBLAS slices or graphc's GEMM), for A/B comparisons.

Epilogues (off by default; GRAPHC_GEMV_EPILOGUE=1 turns them on, read when a program is built,
in cache_tag): lowering follows a Dense layer's GEMM with an elementwise kernel over its output
in place (bias add, activation: runtime/lower.py), another call of the entry's table. When the
next call is such a kernel (fold() says when: one flat loop over exactly C's elements, reading C
and other buffers at the element's own index), each pool part can run it over the slice of C it
has just written (still in its L1), and the entry makes one call instead of two. Measured
(chrt'd): one 512x512 layer on one thread, the same time as the two calls (10.38 vs 10.36 us;
computed on each result before its store instead, 0.3 us slower); W2 per call on two threads,
15 alternating process pairs: slower in 10, faster in 5, by 0.3-4 us either way (best of 15
blocks, 18.7-24.4 us), which is what separate processes vary by, so no difference is resolved.
The separate epilogue call costs no time measurable over the folded loop: left off until a
measurement shows a gain.
"""
from __future__ import annotations

import os

import llvmlite.ir as ir

from .gemm_ir import F32, I32, I64, KERNEL_FN, _c, _carrying_loop as _loop, _fma, _i, _shuffle, _splat
from .gemm_plan import gemm_mode, host_geometry
from .kernel_ir import Gemm, Index, Kernel, Load, Loop, Store

VERSION = "gemv1"
MAX_M = 4           # rows of C up to which the GEMV path is taken
CHAINS = 8          # independent accumulators per block (FMA latency x FMA ports on current x86)


def enabled() -> bool:
    return os.environ.get("GRAPHC_GEMV", "1").strip().lower() not in ("0", "off", "no", "false")


def epilogues_enabled() -> bool:
    return os.environ.get("GRAPHC_GEMV_EPILOGUE", "0").strip().lower() not in ("0", "off", "no", "false")


def cache_tag() -> str:
    """What code this module generates depends on: goes into the program cache key."""
    geo = host_geometry()
    ep = "ep" if epilogues_enabled() else "noep"
    return f"gemv={'on' if enabled() else 'off'} {VERSION} {ep} lanes={geo.lanes if geo else 0}"


class Epilogue:
    """An elementwise kernel folded into a GEMV: `store` (a Store over C's flat index `var`)
    computed on each result; its buffers follow the GEMM kernel's in the combined bufs array.
    `c_bufs`: the epilogue's names for C (bound where the GEMM writes C), read as the result."""

    def __init__(self, kernel: Kernel, store: Store, var: str, c_bufs: frozenset):
        self.kernel, self.store, self.var, self.c_bufs = kernel, store, var, c_bufs


def fold(kernel: Kernel, where, nxt: Kernel, nxt_where):
    """The Epilogue that lets `nxt` (bound at nxt_where) run inside `kernel`'s GEMV (bound at
    where), else None. Only when nothing changes but the time: nxt is one loop over exactly C's
    elements that stores to C at the loop index, every value it reads is a float32 at that same
    index, and C is dense from its buffer's start (M = 1, or ldc = n), so the flat index of C's
    element (i, j) is the loop index that writes it. A buffer nxt reads that overlaps C without
    being C (other name, same place) keeps them apart."""
    g = lone_gemm(kernel)
    if g is None or not epilogues_enabled() or g.off_c != 0 or (g.m > 1 and g.ldc != g.n):
        return None
    if len(nxt.body) != 1 or not isinstance(nxt.body[0], Loop) or len(nxt.body[0].body) != 1:
        return None
    loop = nxt.body[0]
    st = loop.body[0]
    flat = Index(((loop.var, 1),), 0)
    if loop.extent != g.m * g.n or not isinstance(st, Store) or st.index != flat or st.expr.dtype != "float32":
        return None
    c_at = tuple(where[[bf.name for bf in kernel.bufs].index(g.c)])
    at = {bf.name: tuple(w) for bf, w in zip(nxt.bufs, nxt_where)}
    bufs = {bf.name: bf for bf in nxt.bufs}
    c_bufs = frozenset(n for n, w in at.items() if w == c_at)
    if st.buf not in c_bufs or bufs[st.buf].dtype != "float32":
        return None
    c_end = c_at[1] + 4 * g.m * g.n
    for a in st.args:
        if not isinstance(a, Load) or a.index != flat or bufs[a.buf].dtype != "float32":
            return None
        slot, off = at[a.buf]
        if a.buf not in c_bufs and slot == c_at[0] and off < c_end and c_at[1] < off + 4 * bufs[a.buf].size:
            return None   # overlaps C elsewhere than at the same element: the order would matter
    return Epilogue(nxt, st, loop.var, c_bufs)


def takes(g: Gemm) -> bool:
    """Whether `g` runs as a GEMV here: one float32 matrix with a few rows, A readable as rows."""
    if not enabled() or gemm_mode() != "auto" or host_geometry() is None:
        return False
    if g.dtype != "float32" or g.batch != 1 or not (1 <= g.m <= MAX_M) or g.n < 1 or g.k < 1:
        return False
    if g.trans_b:
        return not g.trans_a or (g.m == 1 and g.lda == 1)
    return True


def lone_gemm(kernel: Kernel):
    """The kernel's Gemm when it is its only statement and this module takes it, else None."""
    if len(kernel.body) != 1 or not isinstance(kernel.body[0], Gemm):
        return None
    g = kernel.body[0]
    return g if takes(g) else None


def emit(module: ir.Module, kernel: Kernel, parts: int = 1, epilogue: Epilogue | None = None):
    """(function, extent) running a lone-GEMM kernel this module takes, else None; emitted once
    per module. With `epilogue` (from fold()) the function also computes it, and its bufs array
    is the GEMM kernel's buffers followed by the epilogue kernel's. parts = 1: `@<kernel>.gemv` over outputs [0, n). parts > 1 (for the pool, one
    part per thread): `@<kernel>.gemv.p<parts>` over parts [0, parts), each a fixed range of
    outputs, so a thread reads the same rows of the weight every call and they stay in its L2
    (the pool's usual small chunks, claimed by whichever thread comes first, moved them between
    cores every call)."""
    g = lone_gemm(kernel)
    if g is None:
        return None
    rows = _rows_fn(module, kernel, g, epilogue)
    if parts <= 1:
        return rows, g.n
    name = f"{rows.name}.p{parts}"
    try:
        return module.get_global(name), parts
    except KeyError:
        pass
    fn = ir.Function(module, KERNEL_FN, name)
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    bufs, start, end = fn.args
    align = host_geometry().lanes

    def bound(p):
        # parts * n / parts, to the nearest multiple of a vector's outputs, within [0, n]
        x = b.sdiv(_mul(b, p, g.n), _i(parts))
        x = b.and_(b.add(x, _i(align // 2)), _i(-align))
        x = b.select(b.icmp_signed("<", x, _i(g.n)), x, _i(g.n))
        return b.select(b.icmp_signed(">=", p, _i(parts)), _i(g.n), x)
    lo, hi = bound(start), bound(end)
    with b.if_then(b.icmp_signed("<", lo, hi)):
        b.call(rows, [bufs, lo, hi])
    b.ret_void()
    return fn, parts


def _rows_fn(module, kernel, g, epilogue=None):
    """`@<kernel>.gemv(i8** bufs, i64 start, i64 end)`: outputs [start, end) of every row of C
    (`@<kernel>.<epilogue kernel>.gemv` with an epilogue)."""
    name = kernel.name + (f".{epilogue.kernel.name}" if epilogue is not None else "") + ".gemv"
    try:
        return module.get_global(name)
    except KeyError:
        pass
    lanes = host_geometry().lanes
    fn = ir.Function(module, KERNEL_FN, name)
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    bufs, start, end = fn.args
    index = {bf.name: i for i, bf in enumerate(kernel.bufs)}
    ptrs = []
    for buf, off in ((g.a, g.off_a), (g.b, g.off_b), (g.c, g.off_c)):
        p = b.bitcast(b.load(b.gep(bufs, [_i(index[buf])], inbounds=True)), F32.as_pointer())
        ptrs.append(b.gep(p, [_i(off)], inbounds=True) if off else p)
    ep = _epilogue_fn(b, bufs, len(kernel.bufs), epilogue) if epilogue is not None else None
    if g.trans_b:
        _rows_dot(b, g, *ptrs, start, end, lanes)
    else:
        _cols_axpy(b, g, *ptrs, start, end, lanes)
    if ep is not None:
        # over the slice just written (in L1), after it: a loop LLVM vectorises. Computed on
        # each result before its store instead, the scalar formula was 0.3 us slower per
        # 512-output layer (one thread, chrt'd), and the folded call no faster than two calls.
        c = ptrs[2]
        for i in range(g.m):
            def one(j, _, i=i):
                off = b.add(_i(i * g.ldc), j)
                b.store(ep(b.load(b.gep(c, [off], inbounds=True)), off), b.gep(c, [off], inbounds=True))
                return []
            _loop(b, start, end, 1, [], one, "gemv.ep")
    b.ret_void()
    return fn


def _epilogue_fn(b, bufs, first, ep: Epilogue):
    """f(value, flat index) -> the epilogue's value for that element of C: its formula with C's
    loads bound to the GEMM's result and every other load read at the same index (the epilogue
    kernel's buffer i is bufs[first + i]; pointers loaded once, in the entry block)."""
    from .render_llvm import emit_expr     # render_llvm imports this module
    ptrs = {}
    for i, bf in enumerate(ep.kernel.bufs):
        if bf.name not in ep.c_bufs and any(a.buf == bf.name for a in ep.store.args):
            ptrs[bf.name] = b.bitcast(b.load(b.gep(bufs, [_i(first + i)], inbounds=True)), F32.as_pointer())

    def apply(value, off):
        vals = [value if a.buf in ep.c_bufs else b.load(b.gep(ptrs[a.buf], [off], inbounds=True))
                for a in ep.store.args]
        return emit_expr(b, ep.store.expr, vals)
    return apply


# -- IR helpers --------------------------------------------------------------------------------


def _vload(b, p, off, lanes):
    q = b.bitcast(b.gep(p, [off], inbounds=True), ir.VectorType(F32, lanes).as_pointer())
    return b.load(q, align=4)


def _vstore(b, v, p, off):
    q = b.bitcast(b.gep(p, [off], inbounds=True), v.type.as_pointer())
    b.store(v, q, align=4)


def _hsum(b, v):
    """The sum of a vector's lanes: halves added until one lane is left."""
    n = v.type.count
    while n > 1:
        h = n // 2
        v = b.fadd(_shuffle(b, v, v, range(h)), _shuffle(b, v, v, range(h, n)))
        n = h
    return b.extract_element(v, _c(I32, 0))


def _finish(b, g, acc, c, off):
    """alpha * acc + beta * C[off] (scalar or vector), stored to C[off]."""
    ty = acc.type
    const = (lambda x: ir.Constant(ty, [x] * ty.count)) if isinstance(ty, ir.VectorType) else (lambda x: _c(F32, x))
    if g.alpha != 1.0:
        acc = b.fmul(acc, const(float(g.alpha)))
    if g.beta != 0.0:
        old = _vload(b, c, off, ty.count) if isinstance(ty, ir.VectorType) else b.load(b.gep(c, [off], inbounds=True))
        acc = b.fadd(acc, b.fmul(old, const(float(g.beta))))
    if isinstance(ty, ir.VectorType):
        _vstore(b, acc, c, off)
    else:
        b.store(acc, b.gep(c, [off], inbounds=True))


def _mul(b, x, k: int):
    return b.mul(x, _i(k), flags=["nsw"])


# -- B transposed: C[i, j] = dot(A[i, :], B[j, :]) -------------------------------------------------

def _rows_dot(b, g, a, bm, c, start, end, lanes):
    m, k = g.m, g.k
    a_ld = g.lda if not g.trans_a else 0     # M = 1 when A is transposed: its one row is contiguous
    k_vec = k // lanes * lanes
    vt = ir.VectorType(F32, lanes)
    zero_v, zero_s = ir.Constant(vt, [0.0] * lanes), _c(F32, 0.0)

    def block(j, rows):
        b_rows = [_mul(b, b.add(j, _i(r)), g.ldb) for r in range(rows)]

        def vec_step(kk, accs):
            av = [_vload(b, a, b.add(_i(i * a_ld), kk), lanes) for i in range(m)]
            out = []
            for r in range(rows):
                bv = _vload(b, bm, b.add(b_rows[r], kk), lanes)
                out += [_fma(b, av[i], bv, accs[r * m + i]) for i in range(m)]
            return out
        accs = _loop(b, 0, k_vec, lanes, [zero_v] * (rows * m), vec_step, "gemv.k") if k_vec else []
        sums = [_hsum(b, v) for v in accs] if k_vec else [zero_s] * (rows * m)
        if k_vec < k:
            def tail_step(kk, s):
                ai = [b.load(b.gep(a, [b.add(_i(i * a_ld), kk)], inbounds=True)) for i in range(m)]
                out = []
                for r in range(rows):
                    bv = b.load(b.gep(bm, [b.add(b_rows[r], kk)], inbounds=True))
                    out += [b.fadd(s[r * m + i], b.fmul(ai[i], bv)) for i in range(m)]
                return out
            sums = _loop(b, k_vec, k, 1, sums, tail_step, "gemv.kt")
        for r in range(rows):
            for i in range(m):
                _finish(b, g, sums[r * m + i], c, b.add(_i(i * g.ldc), b.add(j, _i(r))))

    rows = max(1, CHAINS // m)
    split = b.add(start, _mul(b, b.sdiv(b.sub(end, start), _i(rows)), rows))
    _loop(b, start, split, rows, [], lambda j, _: block(j, rows) or [], "gemv.j")
    _loop(b, split, end, 1, [], lambda j, _: block(j, 1) or [], "gemv.jt")


# -- B not transposed: C[i, j:j+w] = sum_k A[i, k] * B[k, j:j+w] -----------------------------------

def _cols_axpy(b, g, a, bm, c, start, end, lanes):
    m, k = g.m, g.k
    vt = ir.VectorType(F32, lanes)

    def a_at(i, kk):
        off = b.add(_mul(b, kk, g.lda), _i(i)) if g.trans_a else b.add(_i(i * g.lda), kk)
        return b.load(b.gep(a, [off], inbounds=True))

    def block(j, vecs):
        zero = ir.Constant(vt, [0.0] * lanes) if vecs else _c(F32, 0.0)

        def step(kk, accs):
            row = _mul(b, kk, g.ldb)
            if vecs:
                bv = [_vload(b, bm, b.add(row, b.add(j, _i(u * lanes))), lanes) for u in range(vecs)]
            else:
                bv = [b.load(b.gep(bm, [b.add(row, j)], inbounds=True))]
            out = []
            for i in range(m):
                ai = a_at(i, kk)
                if vecs:
                    ai = _splat(b, ai, lanes)
                    out += [_fma(b, ai, bv[u], accs[i * len(bv) + u]) for u in range(vecs)]
                else:
                    out.append(b.fadd(accs[i], b.fmul(ai, bv[0])))
            return out
        accs = _loop(b, 0, k, 1, [zero] * (m * max(vecs, 1)), step, "gemv.k")
        for i in range(m):
            for u in range(max(vecs, 1)):
                _finish(b, g, accs[i * max(vecs, 1) + u], c, b.add(_i(i * g.ldc), b.add(j, _i(u * lanes))))

    vecs = max(1, min(4, CHAINS * 2 // m))
    w = vecs * lanes
    s1 = b.add(start, _mul(b, b.sdiv(b.sub(end, start), _i(w)), w))
    _loop(b, start, s1, w, [], lambda j, _: block(j, vecs) or [], "gemv.j")
    s2 = b.add(s1, _mul(b, b.sdiv(b.sub(end, s1), _i(lanes)), lanes))
    _loop(b, s1, s2, lanes, [], lambda j, _: block(j, 1) or [], "gemv.jv")
    _loop(b, s2, end, 1, [], lambda j, _: block(j, 0) or [], "gemv.js")


__all__ = ["emit", "fold", "Epilogue", "takes", "lone_gemm", "cache_tag", "enabled", "epilogues_enabled",
           "MAX_M", "VERSION"]
