"""graphc's GEMM kernels at the register level, as LLVM IR: the MR x NR microkernel (packed or
in-place A, packed B panels) and the dot-product kernel for a few columns past the last full
vector. gemm_kernel.py packs the operands and calls them from its tile loops."""
from __future__ import annotations

import llvmlite.ir as ir

from .gemm_ir import (F32, F32P, I1, I8P, I32, I64, VOID, _at, _c, _declare, _fma, _fn, _i, _loop, _min,
                      _shuffle, _splat, _vptr)
from .gemm_plan import Geometry, KU

def _close_acc_loop(b, k, step, bound, accs, cur, zero, entry, body, after):
    """Close a one-block k loop over a grid of vector accumulators (phis `accs`, updated to
    `cur`): the latch (k += step while k < bound), then, in `after`, the accumulators' values
    (zero when the loop never ran: `entry` branched there directly)."""
    nxt = b.add(k, _i(step), flags=["nsw"])
    k.add_incoming(nxt, b.block)
    for row_phi, row in zip(accs, cur):
        for phi, v in zip(row_phi, row):
            phi.add_incoming(v, b.block)
    b.cbranch(b.icmp_signed("<", nxt, bound), body, after)
    b.position_at_end(after)
    res = []
    for row in cur:
        out = []
        for v in row:
            phi = b.phi(v.type)
            phi.add_incoming(zero, entry)
            phi.add_incoming(v, body)
            out.append(phi)
        res.append(out)
    return res


# -- the microkernel -----------------------------------------------------------------------------

# C = alpha*AB (C never read: it may hold nan) | C = alpha*AB + beta*C (beta = 1 after the first
# K slice: fma(1, c, x) rounds as c + x does)
MODE_SET, MODE_ACC = 0, 1


def microkernel(module, geo: Geometry, nv: int, direct_a: bool = False) -> ir.Function:
    """`void uk(i64 kc, float* ap, float* bp, float* c, i64 ldc, float alpha, float beta, i32 mode,
    i64 mr, i64 nr, i64 lda)`: C[0:mr, 0:nr] = alpha * A @ B (+ beta * C in MODE_ACC) for one A
    panel and one packed B panel (kc x nv*W); kc a multiple of KU. A is a packed panel (kc x MR,
    lda unused) or, direct_a, A's own rows (row r at ap + r*lda, contiguous in k; rows past mr
    re-read row mr-1, whose results are never stored). One per (geometry, nv, direct_a) per
    module, made only when some GEMM needs it."""
    w, mr_ = geo.lanes, geo.mr
    nr_ = nv * w
    fn, new = _fn(module, f"graphc.gemm.uk.{mr_}x{nr_}.w{w}" + (".da" if direct_a else ""),
                  [I64, F32P, F32P, F32P, I64, F32, F32, I32, I64, I64, I64])
    if not new:
        return fn
    vt = ir.VectorType(F32, w)
    kc, ap, bp, c, ldc, alpha, beta, mode, mr, nr, lda = fn.args
    for a in (ap, bp, c):
        a.add_attribute("noalias")
    entry = fn.append_basic_block("entry")
    body = fn.append_basic_block("k")
    after = fn.append_basic_block("store")
    b = ir.IRBuilder(entry)
    zero = ir.Constant(vt, None)
    # the C tile's cache lines, for writing, while the k loop runs (its rows are ldc apart: each
    # a miss to L2 or L3 that would otherwise stall the stores at the end; never faults)
    prefetch = _declare(module, "llvm.prefetch.p0", ir.FunctionType(VOID, [I8P, I32, I32, I32]))
    for r in range(mr_):
        row = _at(b, c, b.mul(ldc, _i(r)))
        for off in sorted({*range(0, nr_, 16), nr_ - 1}):
            b.call(prefetch, [b.bitcast(_at(b, row, off), I8P), _c(I32, 1), _c(I32, 3), _c(I32, 1)])
    a_rows = [_at(b, ap, b.mul(_min(b, _i(r), b.sub(mr, _i(1))), lda)) for r in range(mr_)] if direct_a else None
    b.cbranch(b.icmp_signed(">", kc, _i(0)), body, after)
    b.position_at_end(body)
    k = b.phi(I64, name="k")
    k.add_incoming(_i(0), entry)
    accs = [[b.phi(vt) for _ in range(nv)] for _ in range(mr_)]
    for row in accs:
        for p in row:
            p.add_incoming(zero, entry)
    cur = [[p for p in row] for row in accs]
    a_k = _at(b, ap, b.mul(k, _i(mr_), flags=["nsw"]))
    b_k = _at(b, bp, b.mul(k, _i(nr_), flags=["nsw"]))
    for u in range(KU):
        bv = [b.load(_vptr(b, _at(b, b_k, u * nr_ + v * w), w), align=4) for v in range(nv)]
        for r in range(mr_):
            a_at = _at(b, a_rows[r], b.add(k, _i(u))) if direct_a else _at(b, a_k, u * mr_ + r)
            av = _splat(b, b.load(a_at, align=4), w)
            for v in range(nv):
                cur[r][v] = _fma(b, av, bv[v], cur[r][v])
    res = _close_acc_loop(b, k, KU, kc, accs, cur, zero, entry, body, after)
    av = _splat(b, alpha, w)
    bv = _splat(b, beta, w)
    scaled = [[b.fmul(res[r][v], av) for v in range(nv)] for r in range(mr_)]
    overwrite = b.icmp_signed("==", mode, _c(I32, MODE_SET))
    full = b.and_(b.icmp_signed("==", mr, _i(mr_)), b.icmp_signed("==", nr, _i(nr_)))
    with b.if_else(full) as (then, otherwise):
        with then:
            # every row and column is inside C: vector loads and stores
            with b.if_else(overwrite) as (set_, acc_):
                for blk, reads in ((set_, False), (acc_, True)):
                    with blk:
                        for r in range(mr_):
                            row = _at(b, c, b.mul(ldc, _i(r)))
                            for v in range(nv):
                                p = _vptr(b, _at(b, row, v * w), w)
                                x = _fma(b, bv, b.load(p, align=4), scaled[r][v]) if reads else scaled[r][v]
                                b.store(x, p, align=4)
        with otherwise:
            # an edge tile: the accumulators go to the stack, then the valid part element-wise
            tmp = b.alloca(ir.ArrayType(F32, mr_ * nr_))
            t0 = b.bitcast(tmp, F32P)
            for r in range(mr_):
                for v in range(nv):
                    b.store(scaled[r][v], _vptr(b, _at(b, t0, r * nr_ + v * w), w), align=4)

            def row(i):
                def col(j):
                    x = b.load(_at(b, t0, b.add(b.mul(i, _i(nr_)), j)))
                    p = _at(b, c, b.add(b.mul(i, ldc), j))
                    old = b.load(b.select(overwrite, t0, p))      # C is never read when overwritten
                    b.store(b.select(overwrite, x, b.fadd(b.fmul(beta, old), x)), p)
                _loop(b, 0, nr, 1, col, "ej")
            _loop(b, 0, mr, 1, row, "ei")
    b.ret_void()
    return fn


# -- the dot-product tail ----------------------------------------------------------------------------

def _sum_lanes(b, vecs):
    """Vectors of W floats (at most W of them) -> one vector whose lane r holds the sum of
    vecs[r]'s lanes: pairs of vectors fold together (each level halves the lanes a row keeps and
    doubles the rows a vector holds: two shuffles and an add per pair), then the last vector's
    rows fold in place; about 2 shuffles + 1 add per vector in all."""
    w = vecs[0].type.count
    p = 1
    while p < len(vecs):
        p *= 2
    assert p <= w
    vecs = list(vecs) + [ir.Constant(vecs[0].type, None)] * (p - len(vecs))
    seg = w                      # lanes per row: row s of a vector in lanes [s*seg, (s+1)*seg)

    def halves(h, rows, off):
        return [s * 2 * h + i + off for s in range(rows) for i in range(h)]
    while seg > 1:
        h, rows = seg // 2, w // seg
        if len(vecs) > 1:
            lo = halves(h, rows, 0) + [w + x for x in halves(h, rows, 0)]
            hi = halves(h, rows, h) + [w + x for x in halves(h, rows, h)]
            vecs = [b.fadd(_shuffle(b, x, y, lo), _shuffle(b, x, y, hi)) for x, y in zip(vecs[::2], vecs[1::2])]
        else:
            x = vecs[0]
            lo, hi = halves(h, rows, 0), halves(h, rows, h)
            vecs = [b.fadd(_shuffle(b, x, x, lo + lo), _shuffle(b, x, x, hi + hi))]
        seg = h
    return vecs[0]


def dot_kernel(module, geo: Geometry, cols: int) -> ir.Function:
    """`void dot(i64 kc, float* a, i64 lda, float* bt, i64 ldbt, float* c, i64 ldc, float alpha,
    float beta, i32 mode, i64 mr)`: C[0:mr, 0:cols] = alpha * A @ B (+ beta * C in MODE_ACC), as
    MR x cols dot products of length kc vectorised along k: A's rows in place (row r at a +
    r*lda; rows past mr re-read row mr-1, never stored), B's columns packed contiguous in k
    (column j at bt + j*ldbt). A last partial vector of k is loaded masked (nothing past kc is
    read). One per (geometry, cols) per module."""
    w, mr_ = geo.lanes, geo.mr
    fn, new = _fn(module, f"graphc.gemm.dot.{mr_}x{cols}.w{w}",
                  [I64, F32P, I64, F32P, I64, F32P, I64, F32, F32, I32, I64])
    if not new:
        return fn
    vt = ir.VectorType(F32, w)
    kc, ap, lda, bt, ldbt, c, ldc, alpha, beta, mode, mr = fn.args
    for a in (ap, bt, c):
        a.add_attribute("noalias")
    entry = fn.append_basic_block("entry")
    body = fn.append_basic_block("k")
    after = fn.append_basic_block("rest")
    b = ir.IRBuilder(entry)
    zero = ir.Constant(vt, None)
    a_rows = [_at(b, ap, b.mul(_min(b, _i(r), b.sub(mr, _i(1))), lda)) for r in range(mr_)]
    b_cols = [_at(b, bt, b.mul(_i(j), ldbt)) for j in range(cols)]
    k_vec = b.and_(kc, _i(-w))
    b.cbranch(b.icmp_signed(">", k_vec, _i(0)), body, after)
    b.position_at_end(body)
    k = b.phi(I64, name="k")
    k.add_incoming(_i(0), entry)
    accs = [[b.phi(vt) for _ in range(cols)] for _ in range(mr_)]
    for row in accs:
        for p in row:
            p.add_incoming(zero, entry)
    bv = [b.load(_vptr(b, _at(b, col, k), w), align=4) for col in b_cols]
    cur = []
    for r in range(mr_):
        av = b.load(_vptr(b, _at(b, a_rows[r], k), w), align=4)
        cur.append([_fma(b, av, bv[j], accs[r][j]) for j in range(cols)])
    res = _close_acc_loop(b, k, w, k_vec, accs, cur, zero, entry, body, after)
    # k in [k_vec, kc): one masked step (an empty mask reads nothing and adds zeros)
    lanes = ir.Constant(ir.VectorType(I64, w), list(range(w)))
    rest = b.sub(kc, k_vec)
    mask = b.icmp_signed("<", lanes, b.shuffle_vector(
        b.insert_element(ir.Constant(ir.VectorType(I64, w), ir.Undefined), rest, _c(I32, 0)),
        ir.Constant(ir.VectorType(I64, w), ir.Undefined), ir.Constant(ir.VectorType(I32, w), [0] * w)))
    masked = _declare(module, f"llvm.masked.load.v{w}f32.p0",
                      ir.FunctionType(vt, [vt.as_pointer(), I32, ir.VectorType(I1, w), vt]))

    def load_rest(p):
        return b.call(masked, [_vptr(b, _at(b, p, k_vec), w), _c(I32, 4), mask, zero])
    bv = [load_rest(col) for col in b_cols]
    for r in range(mr_):
        av = load_rest(a_rows[r])
        res[r] = [_fma(b, av, bv[j], res[r][j]) for j in range(cols)]
    overwrite = b.icmp_signed("==", mode, _c(I32, MODE_SET))
    for j in range(cols):
        sums = b.fmul(_sum_lanes(b, [res[r][j] for r in range(mr_)]), _splat(b, alpha, w))

        def row(i):
            x = b.extract_element(sums, i)
            p = _at(b, c, b.add(b.mul(i, ldc), _i(j)))
            with b.if_else(overwrite) as (set_, acc_):
                with set_:          # C is never read when overwritten: it may hold nan
                    b.store(x, p)
                with acc_:
                    b.store(b.call(_declare(module, "llvm.fma.f32", ir.FunctionType(F32, [F32] * 3)),
                                   [beta, b.load(p), x]), p)
        _loop(b, 0, mr, 1, row, f"dr{j}")
    b.ret_void()
    return fn


def _dot_group(geo: Geometry) -> int:
    """Columns one dot kernel takes: MR x cols accumulators + cols B vectors + an A vector in
    the register file (32 vectors with AVX-512, 16 with AVX2)."""
    regs = 32 if geo.lanes == 16 else 16
    return max(1, (regs - 1) // (geo.mr + 1))
