"""LLVM IR building blocks shared by graphc's GEMM modules (gemm_micro.py: the register-level
kernels; gemm_kernel.py: packing, the pool phases and the driver): types, loops, vector
helpers, in-register transposes."""
from __future__ import annotations

import llvmlite.ir as ir

from .loop_metadata import no_unroll as _no_unroll

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32 = ir.FloatType()
VOID = ir.VoidType()
I8P = I8.as_pointer()
I8PP = I8P.as_pointer()
F32P = F32.as_pointer()
KERNEL_FN = ir.FunctionType(VOID, [I8PP, I64, I64])


# -- IR helpers ---------------------------------------------------------------------------------

def _c(t, v):
    return ir.Constant(t, v)


def _i(v):
    return ir.Constant(I64, v)


def _declare(module, name, fnty):
    try:
        return module.get_global(name)
    except KeyError:
        return ir.Function(module, fnty, name)


def _fn(module, name, args):
    """(function, True) for a new internal, noinline `void name(args)`, or (the module's
    existing one, False): helpers are emitted once per module, whichever GEMM asks first."""
    try:
        return module.get_global(name), False
    except KeyError:
        fn = ir.Function(module, ir.FunctionType(VOID, args), name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.attributes.add("noinline")
        return fn, True


def _loop(b, lo, hi, step, body, name="l", unroll: bool = False):
    """for i in range(lo, hi, step): body(i); lo/hi: i64 values or ints. Not unrolled unless
    asked: the work is in the (hand-unrolled) microkernels and vector pack helpers, and
    unrolling the loops around them only cost compile time."""
    _carrying_loop(b, lo, hi, step, [], lambda i, _: (body(i), [])[1], name, unroll)


def _carrying_loop(b, lo, hi, step, init, body, name, unroll: bool = True):
    """for i in range(lo, hi, step) carrying values: body(i, vals) -> new vals; returns the
    values after the loop (init when it runs zero times). lo/hi: i64 values or ints."""
    lo = _i(lo) if isinstance(lo, int) else lo
    hi = _i(hi) if isinstance(hi, int) else hi
    fn = b.function
    pre = b.block
    head = fn.append_basic_block(name)
    done = fn.append_basic_block(name + ".end")
    b.cbranch(b.icmp_signed("<", lo, hi), head, done)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(lo, pre)
    phis = []
    for v in init:
        p = b.phi(v.type)
        p.add_incoming(v, pre)
        phis.append(p)
    new = body(i, phis)
    nxt = b.add(i, _i(step), flags=["nsw"])
    i.add_incoming(nxt, b.block)
    for p, v in zip(phis, new):
        p.add_incoming(v, b.block)
    last = b.block
    latch = b.cbranch(b.icmp_signed("<", nxt, hi), head, done)
    if not unroll:
        latch.set_metadata("llvm.loop", _no_unroll(b.module))
    b.position_at_end(done)
    out = []
    for v0, v in zip(init, new):
        r = b.phi(v0.type)
        r.add_incoming(v0, pre)
        r.add_incoming(v, last)
        out.append(r)
    return out


def _min(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _vptr(b, p, n):
    return b.bitcast(p, ir.VectorType(F32, n).as_pointer())


def _at(b, p, off):
    return b.gep(p, [off if not isinstance(off, int) else _i(off)], inbounds=True)


def _splat(b, x, n):
    vt = ir.VectorType(F32, n)
    v = b.insert_element(ir.Constant(vt, ir.Undefined), x, _c(I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, n), [0] * n))


def _fma(b, x, y, z):
    t = x.type
    fn = _declare(b.module, f"llvm.fma.v{t.count}f32", ir.FunctionType(t, [t, t, t]))
    return b.call(fn, [x, y, z])


def _shuffle(b, x, y, mask):
    return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, len(mask)), list(mask)))


def _transpose(b, rows):
    """W vectors of W floats (rows) -> their transpose (W vectors): log2(W) rounds of
    interleaving row i with row i + W/2 (a perfect shuffle), each a two-input shuffle."""
    w = len(rows)
    h = w // 2
    lo = [x for i in range(h) for x in (i, w + i)]
    hi = [x for i in range(h, w) for x in (i, w + i)]
    for _ in range(w.bit_length() - 1):
        out = []
        for i in range(h):
            out += [_shuffle(b, rows[i], rows[i + h], lo), _shuffle(b, rows[i], rows[i + h], hi)]
        rows = out
    return rows
