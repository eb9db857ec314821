"""graphc's own float32 GEMM, emitted as LLVM IR (Goto/BLIS design) and run on the shared pool.

For a lone-Gemm kernel that `native_plan` accepts, render_llvm's ModuleBuilder asks this module
for a driver `void @<kernel>.native(i8** bufs, i64, i64)` in place of OpenBLAS calls. Per matrix
of the batch the driver makes two `graphc_pool_run` dispatches:

1. pack: op(A) into MR-row micro-panels and op(B) into NR-column micro-panels, each stored
   k-major (`panel[k * width + r]`) over the whole of K rounded up to KU, zero-padded past M, N
   and K. The packed operands are SHARED: every element is packed once, by whichever thread
   claims its panel (tasks are claimed one at a time from a counter, so the four layouts'
   different costs balance). Rows that are contiguous in k (A not transposed, B transposed) go
   through W x W in-register transposes; the others are vector copies; edges are scalar.
   When C has a single row of tiles (M <= 2 MC) each B block has one user, and B is instead
   packed by that tile, KC rows at a time, into its thread's slot (Plan.b_in_tile).
2. tiles: C is cut into MC x NC tiles claimed dynamically from a counter. A tile walks K in KC
   slices, then MR-row panels of A (whose kc x MR slice stays in L1) and NR-column panels of B
   (the kc x NC block stays in L2) and calls the microkernel: MR x NR accumulators held in
   vector registers (8 x 48 = 24 zmm on AVX-512, 6 x 16 on AVX2), `llvm.fma` on vectors, the k
   loop unrolled by KU, C's lines prefetched for writing. Edge tiles go through a stack copy of
   the accumulators. One thread runs at the FMA units' peak (~210 GFLOP/s here, as OpenBLAS).
   When A is read in place, a few columns past the last full vector (Plan.n_dot: ResNet-18's
   49 = 48 + 1) are dot products along K instead: B's tail columns packed contiguous in k, MR x
   t vector accumulators, reduced across lanes at the end of each K slice (dot_kernel).

The pool calls each phase's function once per thread (n = nthreads) and each call claims work
until none is left; the same function run once serially (pool busy, one thread) does it all.

Scratch: one module-level global per program (`graphc.gemm.pack`, the largest packed A + B, or
A + one KC x NC slot per thread, of its native GEMMs, at most MAX_PACK_FLOATS per GEMM)
guarded by a try-lock (`graphc.gemm.lock`). Concurrent calls of one program (each on its own
arena, executor.py) and Program objects built from the same graph share one engine and so this
global: a caller that finds the lock taken runs the OpenBLAS path instead.
The claim counter lives on the caller's stack (it waits in graphc_pool_run until the phase ends).

This module emits the packing, the phases and the driver; gemm_micro.py the microkernel and
the dot kernel they call, gemm_ir.py the IR helpers all three share; gemm_plan.py decides when
the native kernel is used and how a GEMM is tiled. It never calls OpenBLAS itself (the fallback is render_llvm's, passed in) and knows
nothing about graphs.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from .gemm_ir import (F32, F32P, I8P, I8PP, I32, I64, KERNEL_FN, _at, _c, _fn, _i, _loop,  # noqa: F401
                      _min, _shuffle, _transpose, _vptr)
from .gemm_micro import MODE_ACC, MODE_SET, _dot_group, dot_kernel, microkernel
from .gemm_plan import (AVX2, AVX512, DOT_MAX_COLS, KU, MAX_PACK_FLOATS, VERSION, Geometry, Plan,  # noqa: F401
                        auto_takes, cache_tag, gemm_mode, host_geometry, native_plan, _round)

SCRATCH, LOCK = "graphc.gemm.pack", "graphc.gemm.lock"


# -- packing ---------------------------------------------------------------------------------------
#
# A panel of `width` outer indices (rows of op(A), columns of op(B)) is stored k-major:
# panel[k * width + lane]. Packing works on W-blocks (W consecutive outer indices): the shared
# helpers below take runtime sizes, so a module holds one copy of each whatever its GEMMs.

def _pack_scalar_fn(module):
    """`scalar(src, so, sk, valid, count, K, kp, k_lo, dst, width)`: outer indices [0, count) of
    a block, k in [k_lo, kp): src[o*so + k*sk] when o < valid and k < K, else 0, stored at
    dst[o/width * width*kp + k*width + o%width]. Edges and layouts without a vector path."""
    fn, new = _fn(module, "graphc.gemm.pack.scalar", [F32P, I64, I64, I64, I64, I64, I64, I64, F32P, I64])
    if not new:
        return fn
    src, so, sk, valid, count, K, kp, k_lo, dst, width = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def body_o(o):
        oin = b.icmp_signed("<", o, valid)
        pbase = _at(b, dst, b.add(b.mul(b.udiv(o, width), b.mul(width, kp)), b.urem(o, width)))

        def body_k(k):
            ok = b.and_(oin, b.icmp_signed("<", k, K))
            idx = b.add(b.mul(o, so), b.mul(k, sk))
            x = b.load(_at(b, src, b.select(ok, idx, _i(0))))
            b.store(b.select(ok, x, _c(F32, 0.0)), _at(b, pbase, b.mul(k, width)))
        _loop(b, k_lo, kp, 1, body_k, "pk")
    _loop(b, 0, count, 1, body_o, "po")
    b.ret_void()
    return fn


def _store_lanes(b, geo, dst, x, k, width, kp):
    """W lanes of outer indices at k: into one panel (dst points at the first lane, width a
    multiple of W) or, when width < W, into W/width consecutive panels from dst."""
    w = geo.lanes
    if not isinstance(width, int):
        b.store(x, _vptr(b, _at(b, dst, b.mul(k, width)), w), align=4)
        return
    for q in range(w // width):
        piece = _shuffle(b, x, x, range(q * width, (q + 1) * width))
        off = b.add(b.mul(_i(q * width), kp), b.mul(k, _i(width)))
        b.store(piece, _vptr(b, _at(b, dst, off), width), align=4)


def _pack_vector_fn(module, geo: Geometry, transpose: bool, narrow: bool):
    """`(src, stride, K, kp, dst, width)` for a full W-block. transpose: the block's W outer
    indices are rows contiguous in k (src + j*stride), moved by W x W in-register transposes;
    else each k's W outer indices are contiguous (src + k*stride), a vector copy. narrow: the
    block fills W/MR panels of MR (width ignored), else it sits inside one panel of `width`."""
    w = geo.lanes
    name = f"graphc.gemm.pack.{'trans' if transpose else 'copy'}.w{w}" + (f".n{geo.mr}" if narrow else "")
    fn, new = _fn(module, name, [F32P, I64, I64, I64, F32P, I64])
    if not new:
        return fn
    src, stride, K, kp, dst, width = fn.args
    width_ = geo.mr if narrow else width
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    if transpose:
        k_vec = b.mul(b.udiv(K, _i(w)), _i(w))

        def blk(k0):
            rows = [b.load(_vptr(b, _at(b, src, b.add(b.mul(_i(j), stride), k0)), w), align=4) for j in range(w)]
            for kk, x in enumerate(_transpose(b, rows)):
                _store_lanes(b, geo, dst, x, b.add(k0, _i(kk)), width_, kp)
        _loop(b, 0, k_vec, w, blk, "kb")
        # the last partial k block and the zero padding past K, element by element
        scalar = _pack_scalar_fn(module)
        b.call(scalar, [src, stride, _i(1), _i(w), _i(w), K, kp, k_vec, dst, _i(geo.mr) if narrow else width])
    else:
        def cp(k):
            x = b.load(_vptr(b, _at(b, src, b.mul(k, stride)), w), align=4)
            _store_lanes(b, geo, dst, x, k, width_, kp)
        _loop(b, 0, K, 1, cp, "kc")
        zero = ir.Constant(ir.VectorType(F32, w), None)
        _loop(b, K, kp, 1, lambda k: _store_lanes(b, geo, dst, zero, k, width_, kp), "kz")
    b.ret_void()
    return fn


def _pack_blocks(b, module, geo, transposed, narrow, src, so, sk, extent, o0, dst, nblocks, width, K, kp):
    """Pack W-blocks [0, nblocks) of outer indices from o0 into panels of `width` from dst: full
    blocks with the vector helper, the operand's edge element by element (all i64 values)."""
    w = geo.lanes
    vec = _pack_vector_fn(module, geo, transposed, narrow)
    scalar = _pack_scalar_fn(module)

    def blk(s):
        first = b.add(o0, b.mul(s, _i(w)))
        valid = b.sub(extent, first)
        s_src = _at(b, src, b.mul(first, so))
        # narrow: one block per task, its W/MR panels start at dst; else lanes s*W of one panel
        s_dst = dst if narrow else _at(b, dst, b.mul(s, _i(w)))
        with b.if_else(b.icmp_signed(">=", valid, _i(w))) as (then, otherwise):
            with then:
                b.call(vec, [s_src, so if transposed else sk, K, kp, s_dst, width])
            with otherwise:
                b.call(scalar, [s_src, so, sk, valid, _i(w), K, kp, _i(0), s_dst, width])
    _loop(b, 0, nblocks, 1, blk, "wb")


# -- the phases and the driver ------------------------------------------------------------------

def _scratch(module):
    try:
        return module.get_global(SCRATCH)
    except KeyError:
        gv = ir.GlobalVariable(module, ir.ArrayType(F32, 16), SCRATCH)
        gv.linkage = "internal"
        gv.initializer = ir.Constant(gv.value_type, None)
        gv.align = 64
        return gv


def size_scratch(module, floats: int) -> None:
    """Give the module's packing scratch its final size (the largest plan's); typed-pointer IR
    text is parsed as opaque pointers, so uses printed with the first type stay valid."""
    gv = _scratch(module)
    gv.value_type = ir.ArrayType(F32, max(16, _round(floats, 16)))
    gv.initializer = ir.Constant(gv.value_type, None)


def _claim_loop(b, counter, count, body):
    """while (t = counter++) < count: body(t)."""
    fn = b.function
    top = fn.append_basic_block("claim")
    work = fn.append_basic_block("claimed")
    out = fn.append_basic_block("drained")
    b.branch(top)
    b.position_at_end(top)
    t = b.atomic_rmw("add", counter, _i(1), "monotonic")
    b.cbranch(b.icmp_signed("<", t, count if not isinstance(count, int) else _i(count)), work, out)
    b.position_at_end(work)
    body(t)
    b.branch(top)
    b.position_at_end(out)


# A GEMM's sizes travel to the shared phase functions as an i64 parameter block (a constant
# global per GEMM), so a module holds one copy of the packing and tiling code whatever its
# number of GEMMs (ResNet-18: 31 of them; per-GEMM code cost +0.4 s of compile time).
PARAMS = ("m", "n", "k", "kp", "a_so", "a_sk", "b_so", "b_sk", "ldc", "a_tasks", "b_panels", "nr_last",
          "mc", "nc", "tn", "ntiles", "mode0", "a_floats", "alpha", "beta", "b_in_tile", "b_slot", "n_main",
          "n_dot", "matrices", "stride_a", "stride_b", "stride_c")
_P = {name: i for i, name in enumerate(PARAMS)}
# local argument block of both phases: a, b, c, the claim counter, the parameters, pack-A flag
_NARGS = 6


def _params(p: Plan) -> list:
    g = p.g
    bits = lambda x: int(np.float32(x).view(np.uint32))  # noqa: E731
    a_so, a_sk = (1, g.lda) if g.trans_a else (g.lda, 1)
    b_so, b_sk = (g.ldb, 1) if g.trans_b else (1, g.ldb)
    tn = p.tn
    v = dict(m=g.m, n=g.n, k=g.k, kp=p.kp, a_so=a_so, a_sk=a_sk, b_so=b_so, b_sk=b_sk, ldc=g.ldc,
             a_tasks=p.a_tasks, b_panels=p.b_panels, nr_last=p.nr_last, mc=p.mc, nc=p.nc, tn=tn,
             ntiles=-(-g.m // p.mc) * tn, mode0=MODE_SET if g.beta == 0 else MODE_ACC,
             a_floats=p.a_floats, alpha=bits(g.alpha), beta=bits(g.beta), b_in_tile=int(p.b_in_tile), b_slot=p.b_slot,
             n_main=p.n_main, n_dot=p.n_dot, matrices=g.batch if p.one_dispatch else 1,
             stride_a=g.stride_a, stride_b=g.stride_b, stride_c=g.stride_c)
    return [v[name] for name in PARAMS]


def _phase_args(b, fn):
    bufs = fn.args[0]
    ptrs = [b.bitcast(b.load(_at(b, bufs, j)), F32P) for j in range(3)]
    counter = b.bitcast(b.load(_at(b, bufs, 3)), I64.as_pointer())
    params = b.bitcast(b.load(_at(b, bufs, 4)), I64.as_pointer())
    get = lambda name: b.load(_at(b, params, _P[name]))  # noqa: E731
    return ptrs, counter, get, b.load(_at(b, bufs, 5))


def _phase_fn(module, name):
    """(function, builder at its entry) for a new internal phase function `void name(i8**, i64,
    i64)`, or (the existing function, None): one copy per module, shared by its GEMMs."""
    try:
        return module.get_global(name), None
    except KeyError:
        pass
    fn = ir.Function(module, KERNEL_FN, name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _pack_tail(b, module, bm, b_so, b_sk, n_main, n_dot, K, kp, dst):
    """B's dot-product tail columns [n_main, n_main + n_dot) each contiguous in k (column j at
    dst + j*kp, zero past K): a panel of width 1 per column, element by element (a few
    columns: a few K-long gathers)."""
    b.call(_pack_scalar_fn(module), [_at(b, bm, b.mul(n_main, b_so)), b_so, b_sk, n_dot, n_dot, K, kp, _i(0),
                                     dst, _i(1)])


def _pack_fn(module, geo: Geometry, trans_a: bool, trans_b: bool):
    """`void @graphc.gemm.pack.<ta><tb>(i8** args, i64, i64)`: A's row groups (when args[5] is
    not null) and B's panels, claimed one at a time from the counter, into the scratch."""
    fn, b = _phase_fn(module, f"graphc.gemm.pack.{int(trans_a)}{int(trans_b)}.w{geo.lanes}")
    if b is None:
        return fn
    (a, bm, _), counter, get, pack_a = _phase_args(b, fn)
    K, kp = get("k"), get("kp")
    base = b.bitcast(_scratch(module), F32P)
    ap, bp = base, _at(b, base, get("a_floats"))
    a_tasks = b.select(b.icmp_unsigned("==", b.ptrtoint(pack_a, I64), _i(0)), _i(0), get("a_tasks"))
    w, mr, nr = geo.lanes, geo.mr, geo.nr
    a_group = w if w % mr == 0 else mr
    a_so, a_sk, b_so, b_sk = get("a_so"), get("a_sk"), get("b_so"), get("b_sk")
    m, n, b_panels, nr_last = get("m"), get("n"), get("b_panels"), get("nr_last")
    n_main, n_dot = get("n_main"), get("n_dot")

    def task(t):
        with b.if_else(b.icmp_signed("<", t, a_tasks)) as (then, otherwise):
            with then:
                o0 = b.mul(t, _i(a_group))
                dst = _at(b, ap, b.mul(o0, kp))
                if a_group == w:       # W rows transposed (or copied) together into W/MR panels
                    _pack_blocks(b, module, geo, not trans_a, True, a, a_so, a_sk, m, o0, dst, _i(1), _i(mr), K, kp)
                else:                  # MR does not divide W (AVX2's 6): element by element
                    b.call(_pack_scalar_fn(module), [_at(b, a, b.mul(o0, a_so)), a_so, a_sk, b.sub(m, o0),
                                                     _i(mr), K, kp, _i(0), dst, _i(mr)])
            with otherwise:
                j = b.sub(t, a_tasks)
                with b.if_else(b.icmp_signed("<", j, b_panels)) as (panel, tail):
                    with panel:
                        o0 = b.mul(j, _i(nr))
                        width = b.select(b.icmp_signed("==", j, b.sub(b_panels, _i(1))), nr_last, _i(nr))
                        dst = _at(b, bp, b.mul(o0, kp))
                        _pack_blocks(b, module, geo, trans_b, False, bm, b_so, b_sk, n, o0, dst,
                                     b.udiv(width, _i(w)), width, K, kp)
                    with tail:
                        _pack_tail(b, module, bm, b_so, b_sk, n_main, n_dot, K, kp, _at(b, bp, b.mul(n_main, kp)))
    b_tasks = b.add(b_panels, b.zext(b.icmp_signed(">", n_dot, _i(0)), I64))
    b_tasks = b.select(b.icmp_signed("!=", get("b_in_tile"), _i(0)), _i(0), b_tasks)
    _claim_loop(b, counter, b.add(a_tasks, b_tasks), task)
    b.ret_void()
    return fn


def _tiles_fn(module, geo: Geometry, nv_last: int, trans_b: bool, direct_a: bool = False, dot: bool = False):
    """`void @graphc.gemm.tiles(i8** args, i64, i64)`: MC x NC tiles of C claimed from the
    counter, each over all of K in KC slices: A's MR-row panels outside (a kc x MR slice stays in
    L1), B's NR-column panels inside (the kc x NC block stays in L2). direct_a: the microkernel
    reads A's rows where they are (Plan.a_direct). dot (with direct_a): the last n_dot columns
    are dot products (Plan.n_dot), done by the last column of tiles after each A panel's
    microkernel calls, while the panel's kc-slice is in L1."""
    name = f"graphc.gemm.tiles.w{geo.lanes}.v{nv_last}.t{int(trans_b)}" + (".da" if direct_a else "")
    fn, b = _phase_fn(module, name + (".dt" if dot else ""))
    if b is None:
        return fn
    (a0, bm0, c0), counter, get, _ = _phase_args(b, fn)
    lda = get("a_so")
    m, n, kp, ldc, mc, nc, tn = (get(x) for x in ("m", "n", "kp", "ldc", "mc", "nc", "tn"))
    ntiles = get("ntiles")
    n_main, n_dot = get("n_main"), get("n_dot")
    K, b_so, b_sk = get("k"), get("b_so"), get("b_sk")
    b_in_tile = b.icmp_signed("!=", get("b_in_tile"), _i(0))
    nr_last, mode0 = get("nr_last"), b.trunc(get("mode0"), I32)
    alpha = b.bitcast(b.trunc(get("alpha"), I32), F32)
    beta = b.bitcast(b.trunc(get("beta"), I32), F32)
    base = b.bitcast(_scratch(module), F32P)
    ap, bp = base, _at(b, base, get("a_floats"))
    w, mr_, nr_ = geo.lanes, geo.mr, geo.nr
    uk, uk_last = microkernel(module, geo, geo.nv, direct_a), microkernel(module, geo, nv_last, direct_a)
    group = _dot_group(geo)

    def dot_cols(rest, cols, args):
        """The dot kernel for min(rest, cols) columns."""
        if cols == 1:
            b.call(dot_kernel(module, geo, 1), args)
            return
        with b.if_else(b.icmp_signed(">=", rest, _i(cols))) as (then, otherwise):
            with then:
                b.call(dot_kernel(module, geo, cols), args)
            with otherwise:
                dot_cols(rest, cols - 1, args)
    last_j0 = b.mul(b.sub(get("b_panels"), _i(1)), _i(nr_))
    # this call's slot (the pool runs call i as [i, i+1); run serially, [0, nthreads): slot 0)
    slot = _at(b, bp, b.mul(fn.args[1], get("b_slot")))

    def task(tk):
        """Task tk: tile tk % ntiles of matrix tk / ntiles (Plan.one_dispatch runs a whole batch
        as one claim loop; otherwise there is one matrix and its pointers are the args')."""
        mat = b.udiv(tk, ntiles)
        ptrs = [_at(b, p0, b.mul(mat, get(f"stride_{x}"))) for p0, x in ((a0, "a"), (bm0, "b"), (c0, "c"))]
        tile(b.urem(tk, ntiles), *ptrs)

    def tile(t, a, bm, c):
        i0 = b.mul(b.udiv(t, tn), mc)
        j0 = b.mul(b.urem(t, tn), nc)
        i1 = _min(b, b.add(i0, mc), m)
        # the main columns [j0, j1); the last column of tiles also has the dot tail [n_main, n)
        j1 = _min(b, b.add(j0, nc), n_main)
        last_col = b.icmp_signed("==", b.urem(t, tn), b.sub(tn, _i(1)))
        tail = b.and_(last_col, b.icmp_signed(">", n_dot, _i(0))) if dot else None

        def slice_k(pc):
            kc = b.sub(_min(b, kp, b.add(pc, _i(geo.kc))), pc)
            first = b.icmp_signed("==", pc, _i(0))
            mode = b.select(first, mode0, _c(I32, MODE_ACC))
            beta_k = b.select(first, beta, _c(F32, 1.0))

            def b_panel(jr, width):
                """Where the kc-row slice of B's panel at column jr is: in this call's slot (panels
                of kc rows from j0), or in the shared packing (panels of all kp rows)."""
                local = _at(b, slot, b.mul(b.sub(jr, j0), kc))
                return b.select(b_in_tile, local, _at(b, bp, b.add(b.mul(jr, kp), b.mul(pc, width))))
            with b.if_then(b_in_tile):
                # this tile is B's only user: pack its kc x NC block here, into this core's L2
                k_here = _min(b, b.sub(K, pc), kc)

                def panel(jr):
                    width = b.select(b.icmp_signed("==", jr, last_j0), nr_last, _i(nr_))
                    _pack_blocks(b, module, geo, trans_b, False, _at(b, bm, b.mul(pc, b_sk)), b_so, b_sk, n,
                                 jr, _at(b, slot, b.mul(b.sub(jr, j0), kc)), b.udiv(width, _i(w)), width,
                                 k_here, kc)
                _loop(b, j0, j1, nr_, panel, "pb")
                if dot:
                    with b.if_then(tail):
                        _pack_tail(b, module, _at(b, bm, b.mul(pc, b_sk)), b_so, b_sk, n_main, n_dot, k_here, kc,
                                   _at(b, slot, b.mul(b.sub(n_main, j0), kc)))

            def rows(ir_):
                a_ = _at(b, a, b.add(b.mul(ir_, lda), pc)) if direct_a else \
                    _at(b, ap, b.add(b.mul(ir_, kp), b.mul(pc, _i(mr_))))
                mr = _min(b, _i(mr_), b.sub(m, ir_))
                c_row = _at(b, c, b.mul(ir_, ldc))

                def cols(jr):
                    nr = _min(b, _i(nr_), b.sub(n_main, jr))
                    cp = _at(b, c_row, jr)
                    args = [kc, a_, None, cp, ldc, alpha, beta_k, mode, mr, nr, lda]
                    with b.if_else(b.icmp_signed("<", jr, last_j0)) as (t1, t2):
                        with t1:
                            args[2] = b_panel(jr, _i(nr_))
                            b.call(uk, args)
                        with t2:
                            # the last panel: nr_last = nv_last * W wide, its own microkernel
                            args[2] = b_panel(jr, nr_last)
                            b.call(uk_last, args)
                _loop(b, j0, j1, nr_, cols, "jr")
                if dot:
                    with b.if_then(tail):
                        bt = b_panel(n_main, _i(1))
                        ldbt = b.select(b_in_tile, kc, kp)
                        for g0 in range(0, min(DOT_MAX_COLS, w - 1), group):
                            rest = b.sub(n_dot, _i(g0))
                            with b.if_then(b.icmp_signed(">", rest, _i(0))):
                                dot_cols(rest, group, [kc, a_, lda, _at(b, bt, b.mul(ldbt, _i(g0))), ldbt,
                                                       _at(b, c_row, b.add(n_main, _i(g0))), ldc, alpha, beta_k,
                                                       mode, mr])
            _loop(b, i0, i1, mr_, rows, "ir")
        _loop(b, 0, kp, geo.kc, slice_k, "pc")
    _claim_loop(b, counter, b.mul(ntiles, get("matrices")), task)
    b.ret_void()
    return fn


def emit_driver(module, kernel_name: str, p: Plan, ptrs_of, pool_run, nthreads: int, fallback) -> ir.Function:
    """`void @<kernel_name>.native(i8** bufs, i64, i64)`: pack and multiply each matrix of the
    batch on the pool. ptrs_of(b, bufs) -> (a, b, c) float* (offsets applied); fallback(b,
    bufs) emits the OpenBLAS path, taken when another caller holds this module's scratch."""
    g = p.g
    pack = _pack_fn(module, p.geo, g.trans_a, g.trans_b)
    nv_last = p.nr_last // p.geo.lanes if p.b_panels else p.geo.nv
    tiles = _tiles_fn(module, p.geo, nv_last, g.trans_b, p.a_direct, p.n_dot > 0)
    lock = _declare_lock(module)
    values = _params(p)
    pty = ir.ArrayType(I64, len(values))
    params = ir.GlobalVariable(module, pty, kernel_name + ".gemm")
    params.linkage = "internal"
    params.global_constant = True
    params.initializer = ir.Constant(pty, values)
    fn = ir.Function(module, KERNEL_FN, kernel_name + ".native")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    bufs = fn.args[0]
    local = b.alloca(ir.ArrayType(I8P, _NARGS))
    counter = b.alloca(I64)
    args = b.bitcast(local, I8PP)
    got = b.extract_value(b.cmpxchg(lock, _c(I32, 0), _c(I32, 1), "acquire", "monotonic"), 1)
    with b.if_else(got) as (then, otherwise):
        with then:
            a, bm, c = ptrs_of(b, bufs)
            b.store(b.bitcast(counter, I8P), _at(b, args, 3))
            b.store(b.bitcast(params, I8P), _at(b, args, 4))
            nt = _i(max(1, nthreads))

            if p.one_dispatch:
                # nothing to pack and tiles that pack their own B: the batch's tiles are claimed
                # from one counter in one pool dispatch (a Winograd convolution's 16-36 small
                # products would otherwise wait for each other)
                for j, ptr in enumerate((a, bm, c)):
                    b.store(b.bitcast(ptr, I8P), _at(b, args, j))
                b.store(b.bitcast(counter, I8P), _at(b, args, 5))
                b.store_atomic(_i(0), counter, "monotonic", 8)
                b.call(pool_run, [tiles, args, nt, nt])

            def one(i):
                for j, (ptr, stride) in enumerate(((a, g.stride_a), (bm, g.stride_b), (c, g.stride_c))):
                    q = _at(b, ptr, b.mul(i, _i(stride))) if g.batch > 1 else ptr
                    b.store(b.bitcast(q, I8P), _at(b, args, j))
                # a batch that shares A (a convolution's weights) packs it with the first matrix only
                again = g.batch > 1 and g.stride_a == 0
                flag = b.select(b.icmp_signed("==", i, _i(0)), counter, ir.Constant(I64.as_pointer(), None)) \
                    if again else counter
                b.store(b.bitcast(flag, I8P), _at(b, args, 5))
                b.store_atomic(_i(0), counter, "monotonic", 8)
                if p.a_direct and p.b_in_tile:  # nothing to pack: A is read in place, B by its tile
                    pass
                elif again and p.b_in_tile:     # nothing left to pack after the first matrix
                    with b.if_then(b.icmp_signed("==", i, _i(0))):
                        b.call(pool_run, [pack, args, nt, nt])
                else:
                    b.call(pool_run, [pack, args, nt, nt])
                b.store_atomic(_i(0), counter, "monotonic", 8)
                b.call(pool_run, [tiles, args, nt, nt])
            if not p.one_dispatch:
                _loop(b, 0, g.batch, 1, one, "mat")
            b.store_atomic(_c(I32, 0), lock, "release", 4)
        with otherwise:
            fallback(b, bufs)
    b.ret_void()
    return fn


def _declare_lock(module):
    try:
        return module.get_global(LOCK)
    except KeyError:
        gv = ir.GlobalVariable(module, I32, LOCK)
        gv.linkage = "internal"
        gv.initializer = _c(I32, 0)
        gv.align = 64
        return gv


__all__ = ["Geometry", "Plan", "native_plan", "auto_takes", "emit_driver", "size_scratch", "gemm_mode",
           "cache_tag", "host_geometry"]
