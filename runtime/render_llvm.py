"""Kernel IR -> LLVM IR, through llvmlite's IR builder. The only file that knows llvmlite.ir.

Each Kernel becomes `void @name(i8** bufs, i64 start, i64 end)`: a thin wrapper that loads the
buffer pointers and calls an always-inlined body whose pointer arguments are `noalias` (an
in-place kernel reads and writes the same buffer name, so distinct names never alias). The
outermost loop of a parallel kernel runs over [start, end); `@graphc_pool_run` (runtime/threads.py:
one persistent pool of parked worker threads per process, native code built with llvmlite, no
compiler or OpenMP runtime needed) splits it across threads. Loops are plain counted loops over contiguous innermost dimensions so
LLVM's loop vectoriser widens them; floating-point ops carry 'contract' only (nan/inf semantics
stay exact), reductions add 'reassoc' so they vectorise. GEMMs call OpenBLAS's CBLAS
(`scipy_cblas_sgemm`/`dgemm`, `..._gemv` for one-row products) from the generated code, except
the float32 ones that runtime/gemm_kernel.py takes (graphc's own packed, register-blocked kernel
on the pool; GRAPHC_GEMM=blas|native|auto).

`ModuleBuilder` collects kernels and entry functions (one per native segment of the program):
`void @entry(i8** args)` runs its kernels in order over caller pointers plus arena offsets.
"""
from __future__ import annotations

import llvmlite.ir as ir

from graphc.ops import scalar as S

from . import gemm_kernel, gemv_kernel, module_split, stream_stores
from .llvm_jit import MODULE_BREAK
from .loop_metadata import no_unroll as _no_unroll
from .threads import POOL_RUN, POOL_RUN_FN
from .kernel_ir import (Kernel, Loop, Store, DeclareAcc, Accumulate, AccRef, Load, LoopVar, Gemm, MemCopy,
                        WRAP_LIMIT)

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
VOID = ir.VoidType()
I8P = I8.as_pointer()
I8PP = I8P.as_pointer()
MEM_TYPE = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I8}
# storage-only dtypes: kernels that move their bytes (a view's copy into an output) name them;
# no kernel computes on them (ops.fused.NATIVE_DTYPES keeps their arithmetic on the host)
MEM_TYPE.update({"float16": ir.HalfType(), "int8": I8, "uint8": I8})
REG_TYPE = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I1}
FLOATS = ("float32", "float64")
KERNEL_FN = ir.FunctionType(VOID, [I8PP, I64, I64])
BLAS_PREFIX = "scipy_cblas_"
ELEMENTWISE_FLAGS = ("contract",)
REDUCTION_FLAGS = ("contract", "reassoc")


# -- math: the shared vector math library when it is there, a thin fallback otherwise ---------

def _math_library():
    try:
        from . import llvm_math
    except Exception:       # not written yet, or mid-edit by its owner: use the fallback below
        return None
    return llvm_math if hasattr(llvm_math, "emit") else None


_LIBRARY_NAMES = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "erf", "sin", "cos", "pow",
                  "sqrt", "rsqrt", "floor", "ceil", "trunc", "round", "abs", "sign")


def emit_math(b: ir.IRBuilder, name: str, x, y=None):
    """Float math on a scalar (f32/f64): runtime/llvm_math.emit when available, else fallback."""
    lib = _math_library()
    if lib is not None and name in _LIBRARY_NAMES:
        try:
            return lib.emit(b, name, x, y) if y is not None else lib.emit(b, name, x)
        except NotImplementedError:
            pass
    return _fallback_math(b, name, x, y)


def _intrinsic(b, name, ty, n_args=1):
    suffix = "f32" if ty == F32 else "f64"
    mod = b.module
    full = f"llvm.{name}.{suffix}"
    try:
        return mod.get_global(full)
    except KeyError:
        return ir.Function(mod, ir.FunctionType(ty, [ty] * n_args), full)


def _libm(b, name, ty, n_args=1):
    full = name + ("f" if ty == F32 else "")
    try:
        return b.module.get_global(full)
    except KeyError:
        return ir.Function(b.module, ir.FunctionType(ty, [ty] * n_args), full)


def _c(ty, v):
    return ir.Constant(ty, v)


def _fast_exp(b, x):
    """exp for f32 as straight-line code (range reduction + degree-6 polynomial) so loops
    containing it vectorise; exact overflow to inf, underflow to 0, nan propagates."""
    ty = x.type
    if ty != F32:
        return b.call(_intrinsic(b, "exp", ty), [x])
    xc = b.call(_intrinsic(b, "minnum", ty, 2), [x, _c(ty, 88.72283)])
    xc = b.call(_intrinsic(b, "maxnum", ty, 2), [xc, _c(ty, -87.33654)])
    n = b.call(_intrinsic(b, "rint", ty), [b.fmul(xc, _c(ty, 1.4426950408889634))])
    r = b.fsub(xc, b.fmul(n, _c(ty, 0.693359375)))
    r = b.fsub(r, b.fmul(n, _c(ty, -2.12194440e-4)))
    p = _c(ty, 1.9875691500e-4)
    for coef in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        p = b.fadd(b.fmul(p, r), _c(ty, coef))
    p = b.fadd(b.fmul(b.fmul(p, r), r), b.fadd(r, _c(ty, 1.0)))
    ni = b.fptosi(n, I32)
    # 2^n built in two halves so n = 128 (x near 88.7) does not overflow the exponent field
    h = b.sdiv(ni, _c(I32, 2))
    s1 = b.bitcast(b.shl(b.add(h, _c(I32, 127)), _c(I32, 23)), F32)
    s2 = b.bitcast(b.shl(b.add(b.sub(ni, h), _c(I32, 127)), _c(I32, 23)), F32)
    res = b.fmul(b.fmul(p, s1), s2)
    res = b.select(b.fcmp_ordered(">", x, _c(ty, 88.72283)), _c(ty, float("inf")), res)
    res = b.select(b.fcmp_ordered("<", x, _c(ty, -87.33654)), _c(ty, 0.0), res)
    return b.select(b.fcmp_unordered("uno", x, x), x, res)


def _fallback_math(b, name, x, y=None):
    ty = x.type
    one = _c(ty, 1.0)
    if name == "exp":
        return _fast_exp(b, x)
    if name == "sigmoid":
        return b.fdiv(one, b.fadd(one, _fast_exp(b, b.fneg(x))))
    if name == "tanh":
        ax = b.call(_intrinsic(b, "fabs", ty), [x])
        e = _fast_exp(b, b.fmul(ax, _c(ty, 2.0)))
        big = b.fsub(one, b.fdiv(_c(ty, 2.0), b.fadd(e, one)))
        x2 = b.fmul(x, x)
        # odd Taylor series near 0, where 1 - 2/(e+1) loses relative precision
        p = _c(ty, -17.0 / 315.0)
        for coef in (2.0 / 15.0, -1.0 / 3.0, 1.0):
            p = b.fadd(b.fmul(p, x2), _c(ty, coef))
        small = b.fmul(p, ax)
        t = b.select(b.fcmp_ordered("<", ax, _c(ty, 0.125)), small, big)
        res = b.call(_intrinsic(b, "copysign", ty, 2), [t, x])
        return b.select(b.fcmp_unordered("uno", x, x), x, res)
    if name in ("log", "sin", "cos", "sqrt", "floor", "ceil", "trunc", "round", "exp2"):
        return b.call(_intrinsic(b, name, ty), [x])
    if name == "abs":
        return b.call(_intrinsic(b, "fabs", ty), [x])
    if name == "rsqrt":
        return b.fdiv(one, b.call(_intrinsic(b, "sqrt", ty), [x]))
    if name == "pow":
        return b.call(_intrinsic(b, "pow", ty, 2), [x, y])
    if name in ("log1p", "expm1", "erf"):
        return b.call(_libm(b, name, ty), [x])
    if name == "sign":
        zero = _c(ty, 0.0)
        s = b.select(b.fcmp_ordered(">", x, zero), one, b.select(b.fcmp_ordered("<", x, zero), _c(ty, -1.0), x))
        return s
    raise NotImplementedError(f"no LLVM lowering for float math {name!r}")


# -- scalar expressions --------------------------------------------------------------------------

def _flag(inst, flags):
    if hasattr(inst, "flags"):
        inst.flags.extend(flags)
    return inst


def _to_bool(b, v):
    if v.type == I1:
        return v
    if v.type in (F32, F64):
        return b.fcmp_unordered("!=", v, _c(v.type, 0.0))
    return b.icmp_signed("!=", v, _c(v.type, 0))


def emit_cast(b, v, src: str, dst: str):
    if src == dst:
        return v
    st, dt = REG_TYPE[src], REG_TYPE[dst]
    if dst == "bool":
        return _to_bool(b, v)
    if src == "bool":
        return b.uitofp(v, dt) if dst in FLOATS else b.zext(v, dt)
    if src in FLOATS and dst in FLOATS:
        return b.fpext(v, dt) if dst == "float64" else b.fptrunc(v, dt)
    if src in FLOATS:
        # numpy's float->int cast of nan/inf is undefined too; clamp so LLVM has no poison
        return b.fptosi(v, dt)
    if dst in FLOATS:
        return b.sitofp(v, dt)
    return b.sext(v, dt) if dt.width > st.width else b.trunc(v, dt)


_FCMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=="}


def _int_floordiv(b, x, y, mod=False):
    ty = x.type
    zero = _c(ty, 0)
    y = b.select(b.icmp_signed("==", y, zero), _c(ty, 1), y)
    q, r = b.sdiv(x, y), b.srem(x, y)
    adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, y), zero))
    if mod:
        return b.select(adjust, b.add(r, y), r)
    return b.select(adjust, b.sub(q, _c(ty, 1)), q)


def _hash32(b, x):
    """ops/scalar.py's hash32 (lowbias32) on the low word of an i64, zero-extended back."""
    h = b.trunc(x, I32)
    h = b.xor(h, b.lshr(h, _c(I32, 16)))
    h = b.mul(h, _c(I32, S.HASH32_MUL1))
    h = b.xor(h, b.lshr(h, _c(I32, 15)))
    h = b.mul(h, _c(I32, S.HASH32_MUL2))
    h = b.xor(h, b.lshr(h, _c(I32, 16)))
    return b.zext(h, I64)


def emit_call(b, op, args, arg_dtypes, out_dtype, flags):
    x = args[0]
    dt = arg_dtypes[0]
    isf = dt in FLOATS
    if op == "hash32":
        return _hash32(b, x)
    if op == "select":
        return b.select(_to_bool(b, x), args[1], args[2])
    if op in ("and", "or"):
        l, r = _to_bool(b, x), _to_bool(b, args[1])
        return b.and_(l, r) if op == "and" else b.or_(l, r)
    if op == "not":
        return b.xor(_to_bool(b, x), _c(I1, 1))
    if op in ("lt", "le", "gt", "ge", "eq", "ne"):
        y = args[1]
        if isf:
            return b.fcmp_unordered("!=", x, y) if op == "ne" else b.fcmp_ordered(_FCMP[op], x, y)
        sym = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}[op]
        return b.icmp_unsigned(sym, x, y) if dt == "bool" else b.icmp_signed(sym, x, y)
    if dt == "bool":
        # arithmetic on booleans: compute in i32 and narrow back
        wide = [b.zext(a, I32) if a.type == I1 else a for a in args]
        r = emit_call(b, op, wide, ["int32"] * len(args), "int32", flags)
        return _to_bool(b, r) if r.type != I1 else r
    if op == "neg":
        return b.fneg(x) if isf else b.sub(_c(x.type, 0), x)
    if op in ("add", "sub", "mul", "div", "mod", "max", "min", "pow"):
        y = args[1]
        if isf:
            if op == "add":
                return _flag(b.fadd(x, y), flags)
            if op == "sub":
                return _flag(b.fsub(x, y), flags)
            if op == "mul":
                return _flag(b.fmul(x, y), flags)
            if op == "div":
                return _flag(b.fdiv(x, y), flags)
            if op == "mod":
                return b.frem(x, y)
            if op in ("max", "min"):
                return b.call(_intrinsic(b, "maximum" if op == "max" else "minimum", x.type, 2), [x, y])
            return emit_math(b, "pow", x, y)
        if op == "add":
            return b.add(x, y)
        if op == "sub":
            return b.sub(x, y)
        if op == "mul":
            return b.mul(x, y)
        if op == "div":
            return _int_floordiv(b, x, y)
        if op == "mod":
            return _int_floordiv(b, x, y, mod=True)
        if op == "max":
            return b.select(b.icmp_signed(">", x, y), x, y)
        if op == "min":
            return b.select(b.icmp_signed("<", x, y), x, y)
        fx, fy = b.sitofp(x, F64), b.sitofp(y, F64)
        return b.fptosi(emit_math(b, "pow", fx, fy), x.type)
    if not isf:
        zero = _c(x.type, 0)
        if op == "abs":
            return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)
        if op == "sign":
            return b.select(b.icmp_signed(">", x, zero), _c(x.type, 1),
                            b.select(b.icmp_signed("<", x, zero), _c(x.type, -1), zero))
        if op in ("floor", "ceil", "round", "trunc"):
            return x
        return b.fptosi(emit_math(b, op, b.sitofp(x, F64)), x.type)
    return emit_math(b, op, x)


def emit_expr(b, expr, argvals, flags=ELEMENTWISE_FLAGS, memo=None):
    """Generate `expr` with `arg i` bound to argvals[i] (register-typed ir values)."""
    memo = {} if memo is None else memo
    for e in S.postorder(expr):   # operands first, without recursion (formulas may be deep)
        if e in memo:
            continue
        if e.kind == "arg":
            r = argvals[e.value]
        elif e.kind == "const":
            r = _c(REG_TYPE[e.dtype], e.value)
        elif e.kind == "cast":
            r = emit_cast(b, memo[e.args[0]], e.args[0].dtype, e.dtype)
        else:
            r = emit_call(b, e.op, [memo[a] for a in e.args], [a.dtype for a in e.args], e.dtype, flags)
        memo[e] = r
    return memo[expr]


# -- kernels ----------------------------------------------------------------------------------

def _identity(kind, dtype):
    ty = REG_TYPE[dtype]
    if kind == "sum":
        return _c(ty, 0.0 if dtype in FLOATS else 0)
    if kind == "prod":
        return _c(ty, 1.0 if dtype in FLOATS else 1)
    if dtype in FLOATS:
        return _c(ty, float("-inf") if kind == "max" else float("inf"))
    bits = ty.width
    return _c(ty, -(1 << (bits - 1)) if kind == "max" else (1 << (bits - 1)) - 1)


def _combine(b, kind, acc, v, dtype):
    if dtype in FLOATS:
        if kind == "sum":
            return _flag(b.fadd(acc, v), REDUCTION_FLAGS)
        if kind == "prod":
            return _flag(b.fmul(acc, v), REDUCTION_FLAGS)
        return b.call(_intrinsic(b, "maximum" if kind == "max" else "minimum", acc.type, 2), [acc, v])
    if kind == "sum":
        return b.add(acc, v)
    if kind == "prod":
        return b.mul(acc, v)
    cmp = b.icmp_signed(">" if kind == "max" else "<", v, acc)
    return b.select(cmp, v, acc)


class _KernelEmitter:
    def __init__(self, fn, kernel, ptrs, start, end):
        self.fn, self.k = fn, kernel
        self.ptrs = ptrs                       # buf name -> typed pointer
        self.start, self.end = start, end
        self.vars, self.accs = {}, {}
        self.entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.dtypes = {bf.name: bf.dtype for bf in kernel.bufs}
        # statements of one block with the same loads share them and their subexpressions
        # (a Winograd transform's 36 outputs of one patch: 36x less IR for LLVM to optimise)
        self._shared, self._shared_block = {}, None

    def _args_of(self, s):
        """(argument values, expression memo) of a Store: shared with earlier statements of the
        current block that had the same loads, unless a store since wrote a buffer they read."""
        if not all(isinstance(a, Load) for a in s.args):
            return [self.value(a) for a in s.args], None
        if self.b.block is not self._shared_block:
            self._shared, self._shared_block = {}, self.b.block
        key = tuple(s.args)
        if key not in self._shared:
            self._shared[key] = ([self.value(a) for a in s.args], {}, {a.buf for a in s.args})
        vals, memo, _ = self._shared[key]
        return vals, memo

    def _wrote(self, buf):
        """A store to `buf`: shared loads of it are stale."""
        self._shared = {k: v for k, v in self._shared.items() if buf not in v[2]}

    def index(self, idx):
        b = self.b
        acc = None
        for v, s in idx.terms:
            term = self.vars[v] if s == 1 else b.mul(self.vars[v], _c(I64, s), flags=["nsw"])
            acc = term if acc is None else b.add(acc, term, flags=["nsw"])
        for ind in idx.indirect:
            term = b.mul(self.row(ind), _c(I64, ind.stride), flags=["nsw"])
            acc = term if acc is None else b.add(acc, term, flags=["nsw"])
        if idx.offset or acc is None:
            acc = _c(I64, idx.offset) if acc is None else b.add(acc, _c(I64, idx.offset), flags=["nsw"])
        return acc

    def row(self, ind):
        """fix(buf[index]) as an i64 in [0, extent): floats are clamped before converting (no
        undefined conversion of NaN or huge values), integers after."""
        b = self.b
        v = self.load(Load(ind.buf, ind.index))
        n = ind.extent
        if self.dtypes[ind.buf] in FLOATS:
            # graphc.ops.declarations.slicing.fix_indices: NaN is 0, then clamp, then truncate
            lo, hi = (0.0, float(n - 1)) if ind.mode == "clip" else (-WRAP_LIMIT, WRAP_LIMIT)
            v = b.select(b.fcmp_unordered("uno", v, v), ir.Constant(v.type, 0.0), v)
            v = b.call(_intrinsic(b, "maxnum", v.type, 2), [v, ir.Constant(v.type, lo)])
            v = b.call(_intrinsic(b, "minnum", v.type, 2), [v, ir.Constant(v.type, hi)])
            v = b.fptosi(v, I64)
        elif self.dtypes[ind.buf] == "bool":
            v = b.zext(v, I64)
        elif v.type.width < 64:
            v = b.sext(v, I64)
        if ind.mode == "wrap":
            r = b.srem(v, _c(I64, n))
            return b.select(b.icmp_signed("<", r, _c(I64, 0)), b.add(r, _c(I64, n)), r)
        v = b.select(b.icmp_signed("<", v, _c(I64, 0)), _c(I64, 0), v)
        return b.select(b.icmp_signed(">", v, _c(I64, n - 1)), _c(I64, n - 1), v)

    def load(self, ld: Load):
        b = self.b
        p = b.gep(self.ptrs[ld.buf], [self.index(ld.index)], inbounds=True)
        v = b.load(p)
        if self.dtypes[ld.buf] == "bool":
            v = b.icmp_unsigned("!=", v, _c(I8, 0))
        return v

    def value(self, a):
        if isinstance(a, Load):
            return self.load(a)
        if isinstance(a, AccRef):
            return self.b.load(self.accs[a.name])
        if isinstance(a, LoopVar):
            return self.vars[a.name]
        raise TypeError(a)

    def stmt(self, s, outermost=False):
        b = self.b
        if isinstance(s, Loop):
            lo, hi = (self.start, self.end) if (outermost and s.parallel) else (_c(I64, 0), _c(I64, s.extent))
            self.loop(s.var, lo, hi, s.body)
        elif isinstance(s, Store):
            vals, memo = self._args_of(s)
            v = emit_expr(b, s.expr, vals, memo=memo)
            if self.dtypes[s.buf] == "bool":
                v = b.zext(v, I8)
            b.store(v, b.gep(self.ptrs[s.buf], [self.index(s.index)], inbounds=True))
            self._wrote(s.buf)
        elif isinstance(s, DeclareAcc):
            if s.name not in self.accs:
                with b.goto_block(self.entry):
                    b.position_at_start(self.entry)
                    self.accs[s.name] = b.alloca(REG_TYPE[s.dtype], name=s.name)
            b.store(_identity(s.kind, s.dtype), self.accs[s.name])
        elif isinstance(s, Accumulate):
            v = emit_expr(b, s.expr, [self.value(a) for a in s.args], REDUCTION_FLAGS)
            dtype = s.expr.dtype
            acc = b.load(self.accs[s.name])
            b.store(_combine(b, s.kind, acc, v, dtype), self.accs[s.name])
        elif isinstance(s, Gemm):
            emit_gemm(b, s, self.ptrs)
            self._shared = {}
        elif isinstance(s, MemCopy):
            self._shared = {}
            memcpy = _declare(b.module, "memcpy", ir.FunctionType(I8P, [I8P, I8P, I64]))
            b.call(memcpy, [b.bitcast(self.ptrs[s.dst], I8P), b.bitcast(self.ptrs[s.src], I8P), _c(I64, s.nbytes)])
        elif hasattr(s, "emit_llvm"):
            # a statement that emits itself (runtime/attention_kernel.py's AttentionBlock)
            s.emit_llvm(self)
            self._shared = {}
        else:
            raise TypeError(f"unknown kernel statement {s!r}")

    def loop(self, var, lo, hi, body):
        b = self.b
        pre = b.block
        header = self.fn.append_basic_block(f"{var}.body")
        exit_ = self.fn.append_basic_block(f"{var}.exit")
        b.cbranch(b.icmp_signed("<", lo, hi), header, exit_)
        b.position_at_end(header)
        phi = b.phi(I64, name=var)
        phi.add_incoming(lo, pre)
        self.vars[var] = phi
        for s in body:
            self.stmt(s)
        nxt = b.add(phi, _c(I64, 1), flags=["nuw", "nsw"])
        phi.add_incoming(nxt, b.block)
        latch = b.cbranch(b.icmp_signed("<", nxt, hi), header, exit_)
        if any(isinstance(s, Loop) for s in body) or _copies_only(body):
            latch.set_metadata("llvm.loop", _no_unroll(b.module))
        b.position_at_end(exit_)


def _copies_only(body) -> bool:
    """A loop that only moves values or sums them (im2col, padding, crops, col2im): vectorised,
    it is bound by memory, and unrolling it further was 0.8 of ResNet-18's 4.1 CPU-s of LLVM
    time in training."""
    return bool(body) and all(isinstance(s, Store) and _moves(s.expr) for s in body)


def _moves(expr) -> bool:
    return all(e.kind in ("arg", "const") or (e.kind == "call" and e.op == "add") for e in S.postorder(expr))


def _declare(module, name, fnty):
    try:
        return module.get_global(name)
    except KeyError:
        return ir.Function(module, fnty, name)


def gemm_split_dim(g: Gemm):
    """How a Gemm's work divides across threads: ('batch' | 'm' | 'n', extent), or None. Row
    blocks of C when it has at least as many rows as columns (the batch-256 layers of an MLP),
    column blocks otherwise (a convolution's output pixels, a one-row product's outputs)."""
    if g.batch > 1:
        return ("batch", g.batch)
    if g.m >= g.n and g.m > 1:
        return ("m", g.m)
    if g.n > 1:
        return ("n", g.n)
    return None


def emit_gemm(b, g: Gemm, ptrs, split=None):
    """The BLAS call(s) for `g`; split=(dim, lo, hi) (lo/hi: i64 IR values) computes only the
    slice [lo, hi) of dimension dim of gemm_split_dim(g): rows of C, columns of C, or matrices."""
    ty = MEM_TYPE[g.dtype]
    p = "s" if g.dtype == "float32" else "d"
    tp = ty.as_pointer()
    row_major, no_trans, trans = 101, 111, 112
    a, bm, c = ptrs[g.a], ptrs[g.b], ptrs[g.c]
    if g.off_a:
        a = b.gep(a, [_c(I64, g.off_a)], inbounds=True)
    if g.off_b:
        bm = b.gep(bm, [_c(I64, g.off_b)], inbounds=True)
    if g.off_c:
        c = b.gep(c, [_c(I64, g.off_c)], inbounds=True)
    gemv = g.m == 1 and g.batch == 1
    m_, n_ = _c(I32, g.m), _c(I32, g.n)
    batch_lo, batch_hi = _c(I64, 0), _c(I64, g.batch)
    if split is not None:
        dim, lo, hi = split
        cnt = b.trunc(b.sub(hi, lo), I32)
        if dim == "batch":
            batch_lo, batch_hi = lo, hi
        elif dim == "m":        # rows lo..hi of op(A) and of C
            a = b.gep(a, [lo if g.trans_a else b.mul(lo, _c(I64, g.lda))], inbounds=True)
            c = b.gep(c, [b.mul(lo, _c(I64, g.ldc))], inbounds=True)
            m_ = cnt
        else:                   # columns lo..hi of op(B) and of C
            bm = b.gep(bm, [b.mul(lo, _c(I64, g.ldb)) if g.trans_b else lo], inbounds=True)
            c = b.gep(c, [lo], inbounds=True)
            n_ = cnt

    def one(a_, b_, c_):
        if gemv:
            # one row: y[n] = op(B)ᵀ... as a matrix-vector product over B (faster than sgemm for M=1)
            fn = _declare(b.module, f"{BLAS_PREFIX}{p}gemv", ir.FunctionType(
                VOID, [I32, I32, I32, I32, ty, tp, I32, tp, I32, ty, tp, I32]))
            if g.trans_b:   # B stored n x k: y = B x
                rows, cols, tr = n_, _c(I32, g.k), no_trans
            else:           # B stored k x n: y = Bᵀ x
                rows, cols, tr = _c(I32, g.k), n_, trans
            incx = g.lda if g.trans_a else 1
            b.call(fn, [_c(I32, row_major), _c(I32, tr), rows, cols, _c(ty, g.alpha), b_,
                        _c(I32, g.ldb), a_, _c(I32, incx), _c(ty, g.beta), c_, _c(I32, 1)])
            return
        fn = _declare(b.module, f"{BLAS_PREFIX}{p}gemm", ir.FunctionType(
            VOID, [I32, I32, I32, I32, I32, I32, ty, tp, I32, tp, I32, ty, tp, I32]))
        b.call(fn, [_c(I32, row_major), _c(I32, trans if g.trans_a else no_trans),
                    _c(I32, trans if g.trans_b else no_trans), m_, n_, _c(I32, g.k),
                    _c(ty, g.alpha), a_, _c(I32, max(g.lda, 1)), b_, _c(I32, max(g.ldb, 1)), _c(ty, g.beta), c_,
                    _c(I32, max(g.ldc, 1))])

    if g.batch == 1:
        one(a, bm, c)
        return
    # batch loop in IR: one library call per matrix
    fn = b.function
    pre = b.block
    header = fn.append_basic_block("gemm.batch")
    exit_ = fn.append_basic_block("gemm.exit")
    b.cbranch(b.icmp_signed("<", batch_lo, batch_hi), header, exit_)
    b.position_at_end(header)
    i = b.phi(I64)
    i.add_incoming(batch_lo, pre)
    off = lambda s: b.mul(i, _c(I64, s))  # noqa: E731
    one(b.gep(a, [off(g.stride_a)]), b.gep(bm, [off(g.stride_b)]), b.gep(c, [off(g.stride_c)]))
    nxt = b.add(i, _c(I64, 1))
    i.add_incoming(nxt, b.block)
    b.cbranch(b.icmp_signed("<", nxt, batch_hi), header, exit_)
    b.position_at_end(exit_)


class ModuleBuilder:
    """Accumulates kernels and entry functions into an llvmlite module, and graphc's GEMM code
    into a second one (texts()), compiled apart and linked when loaded."""

    def __init__(self, name: str, nthreads: int = 1, triple: str = "", data_layout: str = "",
                 gemm_split_work=None, pool_symbol: str = POOL_RUN):
        self.module = ir.Module(name=name)
        # the worker pool of the program's device (threads.pool_symbol): cpu(k)'s programs run on cpu(k)'s cores
        self.pool_symbol = pool_symbol
        if triple:
            self.module.triple = triple
        if data_layout:
            self.module.data_layout = data_layout
        self.nthreads = max(1, int(nthreads))
        self.kernels = {}
        self._parallel = None
        # GEMMs of at least this many flops are split across the pool (BLAS runs single-threaded)
        self.gemm_split_work = gemm_split_work
        self._splits = {}
        # graphc's own GEMM (runtime/gemm_kernel.py) where native_plan takes it; GRAPHC_GEMM
        # is read here, when the program is built (cache_tag() puts it in the cache key)
        self.gemm_mode = gemm_kernel.gemm_mode()
        self._natives = {}
        self._scratch_floats = 0
        self._gemm_module = None

    @staticmethod
    def cache_tag() -> str:
        """The settings generated GEMM code depends on, for the program cache key."""
        return " ".join((gemm_kernel.cache_tag(), gemv_kernel.cache_tag(), stream_stores.cache_tag()))

    def add_kernel(self, kernel: Kernel) -> ir.Function:
        """`void @kernel.name(i8** bufs, i64 start, i64 end)`; bufs in kernel.bufs order."""
        if kernel.name in self.kernels:
            return self.kernels[kernel.name]
        m = self.module
        ptr_types = [MEM_TYPE[bf.dtype].as_pointer() for bf in kernel.bufs]
        impl = ir.Function(m, ir.FunctionType(VOID, ptr_types + [I64, I64]), kernel.name + ".body")
        impl.linkage = "internal"
        impl.attributes.add("alwaysinline")
        impl.attributes.add("nounwind")
        for a in impl.args[:len(ptr_types)]:
            a.add_attribute("noalias")
        ptrs = {bf.name: impl.args[i] for i, bf in enumerate(kernel.bufs)}
        em = _KernelEmitter(impl, kernel, ptrs, impl.args[-2], impl.args[-1])
        for s in kernel.body:
            em.stmt(s, outermost=True)
        em.b.ret_void()

        wrap = ir.Function(m, KERNEL_FN, kernel.name)
        wrap.attributes.add("nounwind")
        # entries call a kernel once per use (an unrolled RNN: hundreds of times); inlined at
        # every call site, the entry grows with the graph and LLVM's time with it
        wrap.attributes.add("noinline")
        b = ir.IRBuilder(wrap.append_basic_block("entry"))
        bufs, start, end = wrap.args
        args = []
        for i, t in enumerate(ptr_types):
            raw = b.load(b.gep(bufs, [_c(I64, i)], inbounds=True))
            args.append(b.bitcast(raw, t))
        b.call(impl, args + [start, end])
        b.ret_void()
        self.kernels[kernel.name] = wrap
        return wrap

    def gemm_split(self, kernel: Kernel):
        """(`void @name.split(i8** bufs, i64 start, i64 end)`, extent) computing slice [start, end)
        of a lone-GEMM kernel's split dimension, when it is worth splitting; else None."""
        if self.gemm_split_work is None or self.nthreads < 2 or kernel.work < self.gemm_split_work:
            return None
        if len(kernel.body) != 1 or not isinstance(kernel.body[0], Gemm):
            return None
        g = kernel.body[0]
        how = gemm_split_dim(g)
        if how is None:
            return None
        if kernel.name in self._splits:
            return self._splits[kernel.name], how[1]
        fn = ir.Function(self.module, KERNEL_FN, kernel.name + ".split")
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        bufs, start, end = fn.args
        ptrs = {}
        for i, bf in enumerate(kernel.bufs):
            raw = b.load(b.gep(bufs, [_c(I64, i)], inbounds=True))
            ptrs[bf.name] = b.bitcast(raw, MEM_TYPE[bf.dtype].as_pointer())
        emit_gemm(b, g, ptrs, split=(how[0], start, end))
        b.ret_void()
        self._splits[kernel.name] = fn
        return fn, how[1]

    def gemm_native(self, kernel: Kernel):
        """`void @name.native(i8** bufs, i64, i64)` running a lone-GEMM kernel with graphc's
        own kernel on the pool, when gemm_kernel.native_plan takes it; else None."""
        if len(kernel.body) != 1 or not isinstance(kernel.body[0], Gemm):
            return None
        if kernel.name in self._natives:
            return self._natives[kernel.name]
        g = kernel.body[0]
        plan = gemm_kernel.native_plan(g, self.nthreads, self.gemm_mode)
        if plan is None:
            self._natives[kernel.name] = None
            return None
        index = {bf.name: i for i, bf in enumerate(kernel.bufs)}

        def ptrs_of(b, bufs):
            out = []
            for name, off in ((g.a, g.off_a), (g.b, g.off_b), (g.c, g.off_c)):
                p = b.bitcast(b.load(b.gep(bufs, [_c(I64, index[name])], inbounds=True)), F32.as_pointer())
                out.append(b.gep(p, [_c(I64, off)], inbounds=True) if off else p)
            return out

        gm = self._gemm_mod()
        pool = _declare(gm, self.pool_symbol, POOL_RUN_FN)

        def fallback(b, bufs):
            split = self.gemm_split(kernel)
            if split is not None:
                b.call(pool, [_declare(gm, split[0].name, KERNEL_FN), bufs, _c(I64, split[1]), _c(I64, self.nthreads)])
            else:
                b.call(_declare(gm, self.add_kernel(kernel).name, KERNEL_FN), [bufs, _c(I64, 0), _c(I64, 0)])
        fn = gemm_kernel.emit_driver(gm, kernel.name, plan, ptrs_of, pool, self.nthreads, fallback)
        self._scratch_floats = max(self._scratch_floats, plan.scratch_floats)
        gemm_kernel.size_scratch(gm, self._scratch_floats)
        # the entries call it through a declaration: it is defined in the GEMM module (texts())
        self._natives[kernel.name] = _declare(self.module, fn.name, KERNEL_FN)
        return self._natives[kernel.name]

    def _gemm_mod(self) -> ir.Module:
        """The second module: graphc's GEMM drivers and the packing/tiling code they share
        (compiled beside the first, see texts())."""
        if self._gemm_module is None:
            self._gemm_module = ir.Module(name=self.module.name + ".gemm")
            self._gemm_module.triple = self.module.triple
            self._gemm_module.data_layout = self.module.data_layout
        return self._gemm_module

    def texts(self) -> list:
        """The program's LLVM IR as separately compiled modules, linked when loaded: the entries
        and kernels (in parts when large: runtime/module_split.py), then (when any GEMM runs on
        graphc's own kernel) the GEMM code; runtime/compile_pool.py shares them between two
        cores."""
        return [make() if callable(make) else make for make in self.text_makers()]

    def text_makers(self) -> list:
        """texts(), each a text or a function that prints it (the GEMM module's, printed when
        runtime/compile_pool.py gets to it)."""
        parts = module_split.split_module(self.module)
        return parts + ([lambda: str(self._gemm_module)] if self._gemm_module is not None else [])

    def parallel_runner(self) -> ir.Function:
        """`void @graphc_pool_run(kernel*, i8** bufs, i64 n, i64 nthreads)` (or the device's
        `graphc_pool_run_d{k}`): the device's worker pool (runtime/threads.py) splits [0, n)
        across nthreads; resolved at load time."""
        if self._parallel is None:
            self._parallel = _declare(self.module, self.pool_symbol, POOL_RUN_FN)
        return self._parallel

    def add_entry(self, name: str, calls) -> ir.Function:
        """`void @name(i8** args)`. calls: list of (kernel, [(arg slot, byte offset) per buf]) run
        in order; a buffer's pointer is args[slot] + offset.

        The calls are data, not code: two constant tables (per call: the function to run, how,
        its extent and where its bindings start; per binding: slot and offset) and one loop
        over them. Emitted as straight-line code, a ResNet-18 backward's entry was 11,000
        instructions that LLVM's -O3 spent 1.1 s of 2.6 s optimising and 0.6 s of 1.5 s
        selecting, to save an indirect call per kernel (nanoseconds against microseconds)."""
        m = self.module
        fn = ir.Function(m, ir.FunctionType(VOID, [I8PP]), name)
        fn.attributes.add("nounwind")
        rows, binds = [], []
        calls, folded = list(calls), set()
        for pos, (kernel, where) in enumerate(calls):
            if pos in folded:
                continue
            kfn = self.add_kernel(kernel)
            # a large elementwise output: written with streaming stores (runtime/stream_stores.py)
            kfn = stream_stores.emit(self.module, kernel) or kfn
            loop = kernel.parallel_loop
            # a few rows times a matrix: runtime/gemv_kernel.py, split by outputs over the pool
            pool = self.nthreads > 1 and self.gemm_split_work is not None and kernel.work >= self.gemm_split_work
            # and its bias/activation kernel, when next, computed in it (gemv_kernel.fold)
            ep = gemv_kernel.fold(kernel, where, *calls[pos + 1]) if pos + 1 < len(calls) else None
            gemv = gemv_kernel.emit(self.module, kernel, self.nthreads if pool else 1, ep)
            if gemv is not None and ep is not None:
                where = list(where) + list(calls[pos + 1][1])
                folded.add(pos + 1)
            native = self.gemm_native(kernel) if gemv is None else None
            split = self.gemm_split(kernel) if native is None and gemv is None else None
            if gemv is not None:
                target, pooled, extent = gemv[0], int(pool), gemv[1]
            elif native is not None:
                target, pooled, extent = native, 0, 0
            elif split is not None:
                target, pooled, extent = split[0], 1, split[1]
            elif loop is not None and self.nthreads > 1 and loop.extent > 1:
                target, pooled, extent = kfn, 1, loop.extent
            else:
                target, pooled, extent = kfn, 0, (loop.extent if loop is not None else 0)
            rows.append((target, pooled, extent, len(binds), len(where)))
            binds.extend(where)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        (args,) = fn.args
        if not rows:
            b.ret_void()
            return fn
        width = max(n for *_, n in rows)
        bufs = b.bitcast(b.alloca(ir.ArrayType(I8P, max(width, 1)), name="bufs"), I8PP)
        fns = self._table(f"{name}.fns", I8P, [r[0].bitcast(I8P) for r in rows])
        # per call: pooled (0/1), extent, first binding, binding count
        info = self._table(f"{name}.calls", I64, [_c(I64, v) for r in rows for v in r[1:]])
        where = self._table(f"{name}.binds", I64, [_c(I64, v) for slot, off in binds for v in (slot, off)])

        def at(table, i):
            return b.load(b.gep(table, [_c(I64, 0), i], inbounds=True))
        head, body, fill, fill_body, fill_end, run_pool, run_direct, step, done = (
            fn.append_basic_block(n) for n in ("call", "body", "fill", "fill_body", "fill_end", "pool", "direct",
                                              "next", "done"))
        b.branch(head)
        b.position_at_end(head)
        s = b.phi(I64, "s")
        s.add_incoming(_c(I64, 0), fn.basic_blocks[0])
        b.cbranch(b.icmp_unsigned("<", s, _c(I64, len(rows))), body, done)
        b.position_at_end(body)
        base = b.mul(s, _c(I64, 4))
        pooled = at(info, base)
        extent = at(info, b.add(base, _c(I64, 1)))
        first = at(info, b.add(base, _c(I64, 2)))
        count = at(info, b.add(base, _c(I64, 3)))
        target = b.bitcast(at(fns, s), KERNEL_FN.as_pointer())
        b.branch(fill)
        b.position_at_end(fill)
        i = b.phi(I64, "i")
        i.add_incoming(_c(I64, 0), body)
        b.cbranch(b.icmp_unsigned("<", i, count), fill_body, fill_end)
        b.position_at_end(fill_body)
        j = b.mul(b.add(first, i), _c(I64, 2))
        ptr = b.load(b.gep(args, [at(where, j)], inbounds=True))
        ptr = b.gep(ptr, [at(where, b.add(j, _c(I64, 1)))], inbounds=True)
        b.store(ptr, b.gep(bufs, [i], inbounds=True))
        i.add_incoming(b.add(i, _c(I64, 1)), fill_body)
        latch = b.branch(fill)
        latch.set_metadata("llvm.loop", _no_unroll(m))
        b.position_at_end(fill_end)
        b.cbranch(b.icmp_unsigned("!=", pooled, _c(I64, 0)), run_pool, run_direct)
        b.position_at_end(run_pool)
        b.call(self.parallel_runner(), [target, bufs, extent, _c(I64, self.nthreads)])
        b.branch(step)
        b.position_at_end(run_direct)
        b.call(target, [bufs, _c(I64, 0), extent])
        b.branch(step)
        b.position_at_end(step)
        s_next = b.add(s, _c(I64, 1))
        s.add_incoming(s_next, step)
        latch = b.branch(head)
        latch.set_metadata("llvm.loop", _no_unroll(m))
        b.position_at_end(done)
        b.ret_void()
        return fn

    def _table(self, name: str, ty, values) -> ir.GlobalVariable:
        """An internal constant array global of `values` (at least one element)."""
        values = values or [ir.Constant(ty, None)]
        arr = ir.ArrayType(ty, len(values))
        gv = ir.GlobalVariable(self.module, arr, name)
        gv.linkage = "internal"
        gv.global_constant = True
        gv.initializer = ir.Constant(arr, values)
        return gv

    def __str__(self):
        """All modules' text, separated by llvm_jit.MODULE_BREAK (runtime/cache.py splits it)."""
        return MODULE_BREAK.join(self.texts())


def render_llvm(kernel: Kernel) -> str:
    """The LLVM IR text of one kernel (for inspection and tests)."""
    mb = ModuleBuilder(kernel.name)
    mb.add_kernel(kernel)
    return str(mb)


__all__ = ["render_llvm", "ModuleBuilder", "emit_expr", "emit_math", "MEM_TYPE", "REG_TYPE"]
