"""Kernel IR -> CUDA C source. The only file that knows CUDA syntax.

One `extern "C" __global__` function per Kernel, parameters in kernel.bufs order
(`T* __restrict__`); the renderer's own locals are named gc_* so a buffer may be called t, c or
v. Shapes of kernels:

- a perfect loop nest ending in stores (elementwise, copies, a row-accumulating reduction): a
  grid-stride loop over the loops the stores own (runtime/gpu_parallel.py); each thread recovers
  those variables by division and runs the remaining loops itself, in order.
- independent outer iterations (kept dimensions of a reduction, planes of im2col/col2im/pooling,
  or rows gpu_parallel.independent_iterations proves disjoint, such as a sort network's) around a
  sequence: a thread per iteration, or a block per iteration when it has enough work (a long row
  reduction: a shared-memory tree per row; col2im's overlapping windows: threads split the
  innermost one-to-one loops, a barrier after each pass). See _Block.
- anything else (a full reduction, nests that must run in order): one block steps through it
  (_Block; a nest no split keeps safe, such as a scatter through an index array, is thread 0's),
  a large full reduction many blocks, and a body with nothing to spread one thread.
- Gemm: a 16x16 shared-memory tiled kernel (cuBLAS runs lone GEMMs on a real GPU).
- MemCopy: a grid-stride byte copy.

`render_cuda(kernel)` returns (source, launch) where launch says how the host should size the
grid: {'block': threads or (x, y), 'grid': blocks, (x, y, z) or 'auto', 'total': the flattened
iterations its grid-stride loop covers}. 'auto' means any grid is correct; the host picks
min(ceil(total / block), 32 * multiprocessors). One-block shapes (grid 1) say total = block.
A body mixing loops with Gemm/MemCopy statements is first split by `cuda_pieces`
(runtime/kernel_pieces.py). Running the source is runtime/cuda's business, not this file's.
"""
from __future__ import annotations

import math

from graphc.ops.scalar import ScalarExpr, postorder

from .kernel_ir import (Kernel, Loop, Store, DeclareAcc, Accumulate, AccRef, Load, LoopVar, Gemm, MemCopy,
                        WRAP_LIMIT)
from .kernel_pieces import cuda_pieces  # noqa: F401  (part of this module's API)
from .gpu_parallel import independent_iterations, split_for_threads, thread_suffix

CTYPE = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "unsigned char",
         "float16": "gc_half", "int8": "signed char", "uint8": "unsigned char"}
RTYPE = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "bool"}
FLOATS = ("float32", "float64")
# storage-only dtypes (render_llvm.MEM_TYPE): values are computed in the wider type, and a cast
# to them rounds (float16) or wraps (int8, uint8) as storing would
_COMPUTED_AS = {"float16": "float32", "int8": "int32", "uint8": "int32"}


def _calc(dtype):
    return _COMPUTED_AS.get(dtype, dtype)
BLOCK = 256
TILE = 16

PRELUDE = r"""
#include <math.h>
__device__ __forceinline__ int gc_floordiv_i(int a, int b) { if (b == 0) b = 1; int q = a / b, r = a % b; return (r != 0 && ((r ^ b) < 0)) ? q - 1 : q; }
__device__ __forceinline__ long long gc_floordiv_l(long long a, long long b) { if (b == 0) b = 1; long long q = a / b, r = a % b; return (r != 0 && ((r ^ b) < 0)) ? q - 1 : q; }
__device__ __forceinline__ int gc_mod_i(int a, int b) { if (b == 0) b = 1; int r = a % b; return (r != 0 && ((r ^ b) < 0)) ? r + b : r; }
__device__ __forceinline__ long long gc_mod_l(long long a, long long b) { if (b == 0) b = 1; long long r = a % b; return (r != 0 && ((r ^ b) < 0)) ? r + b : r; }
__device__ __forceinline__ long long gc_hash32(long long x) { unsigned h = (unsigned)x; h ^= h >> 16; h *= 0x7feb352du; h ^= h >> 15; h *= 0x846ca68bu; h ^= h >> 16; return (long long)h; }
__device__ __forceinline__ float gc_max_f(float a, float b) { return (isnan(a) || isnan(b)) ? a + b : fmaxf(a, b); }
__device__ __forceinline__ float gc_min_f(float a, float b) { return (isnan(a) || isnan(b)) ? a + b : fminf(a, b); }
__device__ __forceinline__ double gc_max_d(double a, double b) { return (isnan(a) || isnan(b)) ? a + b : fmax(a, b); }
__device__ __forceinline__ double gc_min_d(double a, double b) { return (isnan(a) || isnan(b)) ? a + b : fmin(a, b); }
// float16 buffers hold IEEE binary16 bits; arithmetic happens in float. The GPU converts with one
// PTX instruction; the portable form (the simulator's g++) rounds to nearest even the same way.
typedef unsigned short gc_half;
__device__ __forceinline__ float gc_h2f(gc_half h) {
#ifdef __CUDA_ARCH__
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
#else
  unsigned int s = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
  if (e == 0 && m == 0) bits = s;
  else if (e == 0) { e = 113; while (!(m & 0x400u)) { m <<= 1; --e; } bits = s | (e << 23) | ((m & 0x3ffu) << 13); }
  else if (e == 31) bits = s | 0x7f800000u | (m << 13);
  else bits = s | ((e + 112) << 23) | (m << 13);
  union { unsigned int u; float f; } c; c.u = bits; return c.f;
#endif
}
__device__ __forceinline__ gc_half gc_f2h(float f) {
#ifdef __CUDA_ARCH__
  gc_half h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
#else
  union { float f; unsigned int u; } c; c.f = f; const unsigned int x = c.u;
  unsigned int s = (x >> 16) & 0x8000u, m = x & 0x7fffffu;
  int e = (int)((x >> 23) & 0xffu) - 112;
  if (((x >> 23) & 0xffu) == 0xffu) return (gc_half)(s | 0x7c00u | (m ? 0x200u : 0u));
  if (e >= 31) return (gc_half)(s | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (gc_half)s;
    m |= 0x800000u; unsigned int shift = (unsigned int)(14 - e), hm = m >> shift;
    unsigned int rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (hm & 1u))) ++hm;
    return (gc_half)(s | hm);
  }
  unsigned int h = s | ((unsigned int)e << 10) | (m >> 13), rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return (gc_half)h;
#endif
}
"""

_UNARY_F = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt",
            "rsqrt": "rsqrt", "tanh": "tanh", "sin": "sin", "cos": "cos", "erf": "erf",
            "floor": "floor", "ceil": "ceil", "round": "round", "trunc": "trunc", "abs": "fabs"}
_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_ARITH = {"add": "+", "sub": "-", "mul": "*"}


def _fn(name, dtype):
    return name + ("f" if _calc(dtype) == "float32" else "")


def _lit(value, dtype):
    dtype = _calc(dtype)
    if dtype == "bool":
        return "true" if value else "false"
    if dtype in FLOATS:
        if math.isnan(value):
            return "(0.0/0.0)" if dtype == "float64" else "(0.0f/0.0f)"
        if math.isinf(value):
            inf = "(1.0/0.0)" if dtype == "float64" else "(1.0f/0.0f)"
            return inf if value > 0 else "(-" + inf + ")"
        return repr(float(value)) + ("f" if dtype == "float32" else "")
    return f"({value}LL)" if dtype == "int64" else f"({value})"


class _Expr:
    """Emits one ScalarExpr as SSA-style `const T vN = ...;` lines."""

    def __init__(self, lines, indent, counter):
        self.lines, self.indent, self.counter = lines, indent, counter

    def tmp(self, dtype, text):
        self.counter[0] += 1
        name = f"gc_v{self.counter[0]}"
        self.lines.append(f"{self.indent}const {RTYPE[_calc(dtype)]} {name} = {text};")
        return name

    def emit(self, expr: ScalarExpr, args):
        memo = {}
        for e in postorder(expr):   # operands first, without recursion (formulas may be deep)
            if e.kind == "arg":
                r = args[e.value]
            elif e.kind == "const":
                r = _lit(e.value, e.dtype)
            elif e.kind == "cast":
                src = e.args[0].dtype
                inner = memo[e.args[0]]
                if e.dtype == "bool":
                    r = self.tmp("bool", f"({inner} != 0)")
                else:
                    text = f"({RTYPE[_calc(e.dtype)]})({inner})" if src != "bool" else \
                        f"({RTYPE[_calc(e.dtype)]})({inner} ? 1 : 0)"
                    if e.dtype == "float16":
                        text = f"gc_h2f(gc_f2h({text}))"
                    elif e.dtype in ("int8", "uint8"):
                        text = f"(int)({CTYPE[e.dtype]})({inner})"
                    r = self.tmp(e.dtype, text)
            else:
                r = self.tmp(e.dtype, self.call(e, [memo[a] for a in e.args]))
            memo[e] = r
        return memo[expr]

    def call(self, e, a):
        op = e.op
        dt = _calc(e.args[0].dtype)
        isf = dt in FLOATS
        if op == "select":
            return f"({a[0]} ? {a[1]} : {a[2]})"
        if op == "hash32":
            return f"gc_hash32({a[0]})"      # ops/scalar.py's lowbias32; PRELUDE spells it
        if op in ("and", "or"):
            return f"(({a[0]} != 0) {'&&' if op == 'and' else '||'} ({a[1]} != 0))"
        if op == "not":
            return f"(!({a[0]} != 0))"
        if op in _CMP:
            return f"({a[0]} {_CMP[op]} {a[1]})"
        if op in _ARITH:
            return f"({a[0]} {_ARITH[op]} {a[1]})"
        if op == "neg":
            return f"(-{a[0]})"
        if op == "div":
            if isf:
                return f"({a[0]} / {a[1]})"
            return f"gc_floordiv_{'l' if dt == 'int64' else 'i'}({a[0]}, {a[1]})"
        if op == "mod":
            if isf:
                return f"{_fn('fmod', dt)}({a[0]}, {a[1]})"
            return f"gc_mod_{'l' if dt == 'int64' else 'i'}({a[0]}, {a[1]})"
        if op in ("max", "min"):
            if isf:
                return f"gc_{op}_{'f' if dt == 'float32' else 'd'}({a[0]}, {a[1]})"
            return f"({a[0]} {'>' if op == 'max' else '<'} {a[1]} ? {a[0]} : {a[1]})"
        if op == "pow":
            if isf:
                return f"{_fn('pow', dt)}({a[0]}, {a[1]})"
            return f"({RTYPE[dt]})pow((double){a[0]}, (double){a[1]})"
        if op == "sign":
            zero = _lit(0, dt)
            return f"({a[0]} > {zero} ? {_lit(1, dt)} : ({a[0]} < {zero} ? {_lit(-1, dt)} : {a[0]}))"
        if not isf:
            if op == "abs":
                return f"({a[0]} < 0 ? -{a[0]} : {a[0]})"
            if op in ("floor", "ceil", "round", "trunc"):
                return a[0]
            return f"({RTYPE[dt]}){_UNARY_F.get(op, op)}((double){a[0]})" if op != "sigmoid" else \
                f"({RTYPE[dt]})(1.0 / (1.0 + exp(-(double){a[0]})))"
        if op == "sigmoid":
            one = _lit(1.0, dt)
            return f"({one} / ({one} + {_fn('exp', dt)}(-{a[0]})))"
        return f"{_fn(_UNARY_F[op], dt)}({a[0]})"


def _index(idx, names, dtypes=None):
    parts = [(names[v] if s == 1 else f"{names[v]} * {s}LL") for v, s in idx.terms]
    for ind in idx.indirect:
        parts.append(f"{_row(ind, names, dtypes)} * {ind.stride}LL")
    if idx.offset or not parts:
        parts.append(f"{idx.offset}LL")
    return " + ".join(parts)


def _row(ind, names, dtypes):
    """fix(buf[index]) in [0, extent) as a long long (see kernel_ir.Indirect)."""
    v = f"{ind.buf}[{_index(ind.index, names, dtypes)}]"
    n = ind.extent
    if dtypes is not None and dtypes[ind.buf] in ("float16", "float32", "float64"):
        lo, hi = (0.0, float(n - 1)) if ind.mode == "clip" else (-WRAP_LIMIT, WRAP_LIMIT)
        # (fmax with a NaN operand returns the other one: NaN becomes lo, then... see fix_indices)
        v = f"(isnan((double){v}) ? 0.0 : fmin(fmax((double){v}, {lo!r}), {hi!r}))"
        v = f"(long long)({v})"
    else:
        v = f"(long long)({v})"
    if ind.mode == "wrap":
        return f"((({v}) % {n}LL + {n}LL) % {n}LL)"
    return f"min(max({v}, 0LL), {n - 1}LL)"


def _params(kernel: Kernel):
    written = set()

    def walk(stmts):
        for s in stmts:
            if isinstance(s, Store):
                written.add(s.buf)
            elif isinstance(s, Loop):
                walk(s.body)
            elif isinstance(s, Gemm):
                written.add(s.c)
            elif isinstance(s, MemCopy):
                written.add(s.dst)
    walk(kernel.body)
    ps = []
    for b in kernel.bufs:
        const = "" if b.name in written else "const "
        ps.append(f"{const}{CTYPE[b.dtype]}* __restrict__ {b.name}")
    return ", ".join(ps), written


class _Emitter:
    def __init__(self, kernel):
        self.k = kernel
        self.dtypes = {b.name: b.dtype for b in kernel.bufs}
        self.counter = [0]
        self.names = {}
        self.accs = {}          # accumulator -> its C variable (a kernel may declare a name again)

    def declare(self, name) -> str:
        """A fresh C variable for a DeclareAcc: the IR may reuse an accumulator's name for a
        later reduction in the same scope (a grid generator's gradient: acc0 per output)."""
        c = name if name not in self.accs else f"{name}_{len(self.accs)}"
        while c in self.accs.values():
            c += "_"
        self.accs[name] = c
        return c

    def acc(self, name) -> str:
        return self.accs.get(name, name)

    def value(self, a, lines, indent):
        if isinstance(a, Load):
            v = f"{a.buf}[{_index(a.index, self.names, self.dtypes)}]"
            if self.dtypes[a.buf] == "float16":
                return f"gc_h2f({v})"
            return f"({v} != 0)" if self.dtypes[a.buf] == "bool" else v
        if isinstance(a, AccRef):
            return self.acc(a.name)
        if isinstance(a, LoopVar):
            return self.names[a.name]
        raise TypeError(a)

    def stmts(self, stmts, lines, indent):
        for s in stmts:
            if isinstance(s, Loop):
                self.names[s.var] = s.var
                lines.append(f"{indent}for (long long {s.var} = 0; {s.var} < {s.extent}LL; ++{s.var}) {{")
                self.stmts(s.body, lines, indent + "  ")
                lines.append(f"{indent}}}")
            elif isinstance(s, Store):
                ex = _Expr(lines, indent, self.counter)
                v = ex.emit(s.expr, [self.value(a, lines, indent) for a in s.args])
                if self.dtypes[s.buf] == "bool":
                    v = f"(unsigned char)({v} ? 1 : 0)"
                elif self.dtypes[s.buf] == "float16":
                    v = f"gc_f2h({v})"
                lines.append(f"{indent}{s.buf}[{_index(s.index, self.names, self.dtypes)}] = {v};")
            elif isinstance(s, DeclareAcc):
                lines.append(f"{indent}{RTYPE[_calc(s.dtype)]} {self.declare(s.name)} = {_identity(s.kind, s.dtype)};")
            elif isinstance(s, Accumulate):
                ex = _Expr(lines, indent, self.counter)
                v = ex.emit(s.expr, [self.value(a, lines, indent) for a in s.args])
                lines.append(f"{indent}{self.acc(s.name)} = {_combine(s.kind, self.acc(s.name), v, s.expr.dtype)};")
            else:
                raise TypeError(f"statement {s!r} cannot appear inside a CUDA loop body")


def _identity(kind, dtype):
    dtype = _calc(dtype)
    if kind == "sum":
        return _lit(0, dtype)
    if kind == "prod":
        return _lit(1, dtype)
    if dtype in FLOATS:
        return _lit(float("-inf") if kind == "max" else float("inf"), dtype)
    bits = 64 if dtype == "int64" else 32
    return _lit(-(1 << (bits - 1)) if kind == "max" else (1 << (bits - 1)) - 1, dtype)


def _combine(kind, acc, v, dtype):
    dtype = _calc(dtype)
    if kind == "sum":
        return f"{acc} + {v}"
    if kind == "prod":
        return f"{acc} * {v}"
    if dtype in FLOATS:
        return f"gc_{kind}_{'f' if dtype == 'float32' else 'd'}({acc}, {v})"
    return f"({v} {'>' if kind == 'max' else '<'} {acc} ? {v} : {acc})"


def _perfect_nest(body):
    """(loops, innermost statements) when body is a perfect loop nest, else None."""
    loops = []
    while len(body) == 1 and isinstance(body[0], Loop):
        loops.append(body[0])
        body = body[0].body
    if any(isinstance(s, (Loop, DeclareAcc, Gemm, MemCopy)) for s in body):
        return None
    return loops, body


def render_cuda(kernel: Kernel):
    """(CUDA C source with its helper prelude, launch) for one kernel."""
    src, launch = _render(kernel)
    return PRELUDE.lstrip() + "\n" + src, launch


def render_cuda_module(kernels) -> str:
    """One translation unit holding every kernel (the helper prelude once)."""
    return PRELUDE.lstrip() + "\n" + "\n".join(_render(k)[0] for k in kernels)


# a block per outer iteration (rather than a thread) once an iteration has this many inner
# iterations, or this many over fewer outer iterations than FEW_OUTER: a row sum of 3025 values
# per channel, col2im's plane, a pooling gradient's plane would otherwise be one thread each
BLOCK_WORK, SMALL_BLOCK_WORK, FEW_OUTER = 256, 32, 1024


def _render(kernel: Kernel):
    """(CUDA C source, launch) for one kernel, in the first shape that fits:
    - a perfect nest: a thread per iteration of the loops its stores own (gpu_parallel);
    - outer loops whose iterations are independent (marked so, kept dimensions of a reduction,
      or proved so by gpu_parallel.independent_iterations) around a sequence: a thread per outer
      iteration running the sequence, or a block per outer iteration when an iteration has
      enough work (see _Block);
    - anything else: one block runs the body (_Block), or failing that one thread.
    A fused attention kernel has its own rendering (runtime/render_cuda_attention.py)."""
    from .render_cuda_attention import attention_of, render_attention   # (it imports this module)
    if attention_of(kernel) is not None:
        return render_attention(kernel, attention_of(kernel))
    params, _ = _params(kernel)
    head = f'extern "C" __global__ void {kernel.name}({params})'
    em = _Emitter(kernel)
    body = kernel.body
    if any(isinstance(s, (Gemm, MemCopy)) for s in body) and len(body) > 1:
        raise NotImplementedError(f"kernel {kernel.name} mixes loops with a Gemm or MemCopy: render the pieces "
                                  "runtime.kernel_pieces.cuda_pieces gives, one launch each")
    if len(body) == 1 and isinstance(body[0], Gemm):
        return _render_gemm(kernel, body[0], head)
    if len(body) == 1 and isinstance(body[0], MemCopy):
        return _render_memcopy(body[0], head)
    nest = _perfect_nest(body)
    if nest is not None:
        return _render_perfect_nest(kernel, head, em, *nest)
    kept, inner = [], body
    while len(inner) == 1 and isinstance(inner[0], Loop):
        kept.append(inner[0])
        inner = inner[0].body
    reduction = any(isinstance(s, DeclareAcc) for s in inner)
    if kept and (reduction or kept[0].independent or kept[0].parallel or
                 all(independent_iterations(l, kept[:j]) for j, l in enumerate(kept) if l.extent > 1)):
        # independent outer iterations: the kept dimensions of a reduction, an image-channel
        # plane of im2col or col2im, pooling, a depthwise convolution
        return _render_outer(kernel, head, kept, inner)
    return _render_one_block(kernel, head, body)


def _render_memcopy(c: MemCopy, head):
    lines = [head, "{",
             "  const long long gc_n = %dLL;" % c.nbytes,
             f"  unsigned char* gc_d = (unsigned char*){c.dst};",
             f"  const unsigned char* gc_s = (const unsigned char*){c.src};",
             "  for (long long gc_t = blockIdx.x * (long long)blockDim.x + threadIdx.x; gc_t < gc_n; "
             "gc_t += (long long)gridDim.x * blockDim.x) gc_d[gc_t] = gc_s[gc_t];", "}"]
    return "\n".join(lines) + "\n", {"block": BLOCK, "grid": "auto", "total": c.nbytes}


def _grid_stride(loops, total, em, lines):
    """Open a grid-stride loop over `total` flattened iterations and recover each loop's
    variable from the flat index gc_t (innermost fastest); the caller closes the brace."""
    lines.append(f"  for (long long gc_t = blockIdx.x * (long long)blockDim.x + threadIdx.x; gc_t < {total}LL; "
                 f"gc_t += (long long)gridDim.x * blockDim.x) {{")
    _unflatten("gc_t", loops, em, lines)


def _unflatten(flat, loops, em, lines, indent="    ", tag=""):
    """Each loop's variable from the flat iteration index `flat` (innermost fastest). Under 2^31
    iterations the divisions are 32-bit: by a constant, one multiply-high and a shift, where the
    64-bit form takes several (a 6-deep im2col nest divides 5 times per element)."""
    if math.prod(l.extent for l in loops) < (1 << 31) and len(loops) > 1:
        lines.append(f"{indent}const unsigned int gc_u{tag} = (unsigned int){flat};")
        flat, suffix, qtype = f"gc_u{tag}", "u", "unsigned int"
    else:
        suffix, qtype = "LL", "long long"
    rest = flat
    for d in reversed(range(len(loops))):
        l = loops[d]
        em.names[l.var] = l.var
        if d == 0:
            lines.append(f"{indent}const long long {l.var} = {rest};")
        else:
            lines.append(f"{indent}const long long {l.var} = {rest} % {l.extent}{suffix};")
            lines.append(f"{indent}const {qtype} gc_q{tag}{d} = {rest} / {l.extent}{suffix};")
            rest = f"gc_q{tag}{d}"


def _render_perfect_nest(kernel, head, em, loops, inner):
    """A thread per iteration of the loops every store indexes one-to-one (all of them for an
    elementwise kernel); each thread runs the other loops itself, in nest order, so an output
    accumulated across iterations (out[j] += x[i, j]) sees the CPU's order. A nest no thread
    split keeps safe runs on one block (stepping its loops together, see _Block)."""
    split = split_for_threads(loops, inner)
    if split is None:
        return _render_one_block(kernel, head, kernel.body)
    par, ser = split
    lines = [head, "{"]
    total = math.prod(l.extent for l in par)
    _grid_stride(par, total, em, lines)
    _serial_loops(ser, inner, em, lines, "    ")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n", {"block": BLOCK, "grid": "auto", "total": total}


def _serial_loops(loops, inner, em, lines, indent):
    for l in loops:
        em.names[l.var] = l.var
        lines.append(f"{indent}for (long long {l.var} = 0; {l.var} < {l.extent}LL; ++{l.var}) {{")
        indent += "  "
    em.stmts(inner, lines, indent)
    for _ in loops:
        indent = indent[:-2]
        lines.append(f"{indent}}}")


def _iterations(stmts) -> int:
    n = 0
    for s in stmts:
        n += s.extent * max(1, _iterations(s.body)) if isinstance(s, Loop) else 1
    return n


def _render_outer(kernel, head, kept, inner):
    """Independent outer iterations, each running `inner` in order: a block per iteration when
    one has enough work and _Block can spread it over the block's threads, else a thread."""
    total = math.prod(l.extent for l in kept)
    work = _iterations(inner)
    if work >= BLOCK_WORK or (total < FEW_OUTER and work >= SMALL_BLOCK_WORK):
        em = _Emitter(kernel)
        lines = [head, "{"]
        lines.append(f"  for (long long gc_b = blockIdx.x; gc_b < {total}LL; gc_b += gridDim.x) {{")
        _unflatten("gc_b", kept, em, lines)
        block = _Block(em, lines)
        # a tree per iteration of a serial loop (a pooling window's reduction per output pixel,
        # for each pixel of the plane) costs more barriers than the work is worth: a thread each
        if block.stmts(inner, "    ") and not block.trees_in_loops:
            lines += ["  }", "}"]
            return "\n".join(_declare_shared(lines)) + "\n", {"block": BLOCK, "grid": "auto", "total": total * BLOCK}
    em = _Emitter(kernel)
    lines = [head, "{"]
    _grid_stride(kept, total, em, lines)
    em.stmts(inner, lines, "    ")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n", {"block": BLOCK, "grid": "auto", "total": total}


# a full reduction over at least this many iterations spreads over GRID_BLOCKS blocks (one block
# would leave all but one multiprocessor idle); each block leaves its partial total in a static
# device array and the last block to finish combines them (CUDA's threadFenceReduction sample)
GRID_REDUCTION_WORK, GRID_BLOCKS = 1 << 15, 1024


def _full_reduction(body):
    """(declarations, the accumulating nest's loops and statements, the stores after it) when
    body is exactly a full reduction, else None."""
    decls = [s for s in body if isinstance(s, DeclareAcc)]
    rest = body[len(decls):]
    if not decls or len(rest) < 2 or not isinstance(rest[0], Loop):
        return None
    nest = _perfect_nest([rest[0]])
    names = {d.name for d in decls}
    if len(names) != len(decls) or nest is None:
        return None
    if not all(isinstance(a, Accumulate) and a.name in names for a in nest[1]):
        return None
    if not all(isinstance(st, Store) for st in rest[1:]):
        return None
    return decls, nest[0], nest[1], rest[1:]


def _render_grid_reduction(kernel, head, decls, loops, accs, stores):
    """A full reduction over many blocks. The partials array and the finished-blocks counter are
    per module (each device loads its own); the last block resets the counter, so the kernel
    may run again. Two launches of it must not overlap (one stream per device guarantees it).
    The grid is fixed, so the combining order, hence the result, is the same on every run."""
    em = _Emitter(kernel)
    total = math.prod(l.extent for l in loops)
    grid = min(GRID_BLOCKS, -(-total // BLOCK))
    done = f"gc_done_{kernel.name}"
    lines = [f"__device__ unsigned int {done} = 0;"]
    lines += [f"__device__ {RTYPE[_calc(d.dtype)]} gc_blocks_{kernel.name}_{d.name}[{GRID_BLOCKS}];" for d in decls]
    lines += [head, "{"]
    for d in decls:
        lines.append(f"  {RTYPE[_calc(d.dtype)]} {d.name} = {_identity(d.kind, d.dtype)};")
    _grid_stride(loops, total, em, lines)
    em.stmts(accs, lines, "    ")
    lines.append("  }")
    lines.append("  __shared__ bool gc_last;")
    for d in decls:
        lines.append("  {")
        _block_tree(lines, "    ", d.name, d)
        lines.append("  }")
    lines.append("  if (threadIdx.x == 0) {")
    for d in decls:
        lines.append(f"    gc_blocks_{kernel.name}_{d.name}[blockIdx.x] = {d.name};")
    lines.append("    __threadfence();   // the partials are visible before the count says so")
    lines.append(f"    gc_last = atomicAdd(&{done}, 1u) == gridDim.x - 1;")
    lines.append("  }")
    lines.append("  __syncthreads();")
    lines.append("  if (!gc_last) return;")
    for d in decls:
        rt = RTYPE[_calc(d.dtype)]
        lines.append(f"  {d.name} = {_identity(d.kind, d.dtype)};")
        lines.append("  for (unsigned int gc_k = threadIdx.x; gc_k < gridDim.x; gc_k += blockDim.x)")
        part = f"((volatile {rt}*)gc_blocks_{kernel.name}_{d.name})[gc_k]"
        lines.append(f"    {d.name} = {_combine(d.kind, d.name, part, d.dtype)};")
        lines.append("  {")
        _block_tree(lines, "    ", d.name, d)
        lines.append("  }")
    lines.append("  if (threadIdx.x == 0) {")
    em.stmts(stores, lines, "    ")
    lines.append(f"    {done} = 0;")
    lines.append("  }")
    lines.append("}")
    return "\n".join(_declare_shared(lines)) + "\n", {"block": BLOCK, "grid": grid, "total": grid * BLOCK}


def _render_one_block(kernel, head, body):
    """Statements that must run in order with no independent outer loop (a full reduction,
    nests one after another, overlapping writes): one block steps through them together
    (_Block); where it cannot spread any statement over its threads, one thread runs it all. A
    large full reduction takes many blocks instead."""
    full = _full_reduction(body)
    if full is not None and math.prod(l.extent for l in full[1]) >= GRID_REDUCTION_WORK:
        return _render_grid_reduction(kernel, head, *full)
    em = _Emitter(kernel)
    lines = [head, "{"]
    block = _Block(em, lines)
    if block.stmts(body, "  ") and block.count:     # (count: loops spread over the threads)
        lines.append("}")
        return "\n".join(_declare_shared(lines)) + "\n", {"block": BLOCK, "grid": 1, "total": BLOCK}
    em = _Emitter(kernel)
    lines = [head, "{", "  if (blockIdx.x != 0 || threadIdx.x != 0) return;"]
    em.stmts(body, lines, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n", {"block": 1, "grid": 1, "total": 1}


class _Block:
    """One block's threads running a statement list in step (every thread takes the same path,
    so barriers are legal): a loop nest of stores is spread over the threads (the innermost
    loops gpu_parallel.thread_suffix allows), a barrier after each pass; a nest of Accumulates
    gives each thread a partial result over a share of the iterations, combined by a shared-
    memory tree when the total is first read; a loop around a sequence is stepped by all
    threads; a lone store is thread 0's. stmts() says False for anything else (the caller
    then picks another shape)."""

    def __init__(self, em, lines):
        self.em, self.lines = em, lines
        self.partial = {}           # accumulator -> DeclareAcc, while threads hold partial values
        self.count = 0
        self.serial_depth = 0       # loops every thread steps around the current statement
        self.trees_in_loops = 0     # trees emitted inside such loops

    def stmts(self, stmts, indent) -> bool:
        for s in stmts:
            if not self.stmt(s, indent):
                return False
        return True

    def stmt(self, s, indent) -> bool:
        em, lines = self.em, self.lines
        self.combine_read(s, indent)
        if isinstance(s, DeclareAcc):
            lines.append(f"{indent}{RTYPE[_calc(s.dtype)]} {em.declare(s.name)} = {_identity(s.kind, s.dtype)};")
            self.partial[s.name] = s
            return True
        if isinstance(s, Store):
            lines.append(f"{indent}if (threadIdx.x == 0) {{")
            em.stmts([s], lines, indent + "  ")
            lines.append(f"{indent}}}")
            lines.append(f"{indent}__syncthreads();")
            return True
        if isinstance(s, Accumulate):
            if s.name not in self.partial:
                return False
            lines.append(f"{indent}if (threadIdx.x == 0) {{")
            em.stmts([s], lines, indent + "  ")
            lines.append(f"{indent}}}")
            return True
        if not isinstance(s, Loop):
            return False
        nest = _perfect_nest([s])
        if nest is None:
            # a loop around a sequence: every thread steps it
            em.names[s.var] = s.var
            lines.append(f"{indent}for (long long {s.var} = 0; {s.var} < {s.extent}LL; ++{s.var}) {{")
            self.serial_depth += 1
            if not self.stmts(s.body, indent + "  "):
                return False
            self.serial_depth -= 1
            lines.append(f"{indent}}}")
            return True
        loops, inner = nest
        if inner and all(isinstance(a, Accumulate) and a.name in self.partial for a in inner):
            self.spread(loops, inner, indent)
            return True
        k = thread_suffix(loops, inner)
        if k is None:
            # no split keeps it safe (a scatter through an index array): thread 0 runs it
            lines.append(f"{indent}if (threadIdx.x == 0) {{")
            em.stmts([s], lines, indent + "  ")
            lines.append(f"{indent}}}")
            lines.append(f"{indent}__syncthreads();")
            return True
        outer = loops[:-k]
        for l in outer:
            em.names[l.var] = l.var
            lines.append(f"{indent}for (long long {l.var} = 0; {l.var} < {l.extent}LL; ++{l.var}) {{")
            indent += "  "
        self.spread(loops[-k:], inner, indent)
        lines.append(f"{indent}__syncthreads();")
        for _ in outer:
            indent = indent[:-2]
            lines.append(f"{indent}}}")
        return True

    def spread(self, loops, inner, indent):
        """The threads of the block take the flattened iterations of `loops` in turn."""
        self.count += 1
        tag = f"b{self.count}_"
        total = math.prod(l.extent for l in loops)
        flat = f"gc_i{self.count}"
        self.lines.append(f"{indent}for (long long {flat} = threadIdx.x; {flat} < {total}LL; {flat} += blockDim.x) {{")
        _unflatten(flat, loops, self.em, self.lines, indent + "  ", tag)
        self.em.stmts(inner, self.lines, indent + "  ")
        self.lines.append(f"{indent}}}")

    def combine_read(self, s, indent):
        """Before a statement reads an accumulator the threads still hold in parts: the tree
        that gives every thread the total."""
        for name in sorted(_acc_reads(s) & set(self.partial)):
            d = self.partial.pop(name)
            self.trees_in_loops += self.serial_depth > 0
            self.lines.append(f"{indent}{{")
            _block_tree(self.lines, indent + "  ", self.em.acc(name), d)
            self.lines.append(f"{indent}}}")


def _block_tree(lines, indent, name, d: DeclareAcc):
    """Combine the block's per-thread values of accumulator `name` (blockDim.x == BLOCK) by a
    shared-memory tree; afterwards every thread's `name` holds the block's total. Every tree of
    a kernel over one type uses the same shared array (declared once by _declare_shared), so
    a kernel with many reductions stays far from the 48 KB of static shared memory; the barrier
    after the last read lets the next tree overwrite it."""
    part = f"gc_part_{_calc(d.dtype)}"
    lines.append(f"{indent}{part}[threadIdx.x] = {name};")
    lines.append(f"{indent}__syncthreads();")
    lines.append(f"{indent}for (int gc_s = {BLOCK // 2}; gc_s > 0; gc_s >>= 1) {{")
    both = _combine(d.kind, f"{part}[threadIdx.x]", f"{part}[threadIdx.x + gc_s]", d.dtype)
    lines.append(f"{indent}  if (threadIdx.x < gc_s) {part}[threadIdx.x] = {both};")
    lines.append(f"{indent}  __syncthreads();")
    lines.append(f"{indent}}}")
    lines.append(f"{indent}{name} = {part}[0];")
    lines.append(f"{indent}__syncthreads();   // {part} is rewritten by the next tree")


def _declare_shared(lines) -> list:
    """The function's lines with one shared array per accumulator type its trees use, declared
    at the top of its body."""
    text = "\n".join(lines)
    decls = [f"  __shared__ {RTYPE[dt]} gc_part_{dt}[{BLOCK}];" for dt in RTYPE if f"gc_part_{dt}[" in text]
    at = lines.index("{") + 1
    return lines[:at] + decls + lines[at:]


def _acc_reads(stmt) -> set:
    """Accumulators a statement reads (AccRef) anywhere inside it."""
    if isinstance(stmt, Loop):
        out = set()
        for s in stmt.body:
            out |= _acc_reads(s)
        return out
    if isinstance(stmt, (Store, Accumulate)):
        return {a.name for a in stmt.args if isinstance(a, AccRef)}
    return set()


def _render_gemm(kernel, g: Gemm, head):
    """A 16x16 shared-memory tiled GEMM (the fallback where no cuBLAS runs it); blockIdx.z walks
    the batch. Locals carry the gc_ prefix: the operands may be named a, b, c."""
    if g.dtype not in FLOATS:
        raise NotImplementedError(f"kernel {kernel.name}: a {g.dtype} GEMM has no CUDA rendering "
                                  f"(float32 and float64 only)")
    t = CTYPE[g.dtype]
    a_at = (f"(gc_ta ? {g.a}[gc_a_off + (long long)gc_kk * {g.lda} + gc_row] : "
            f"{g.a}[gc_a_off + (long long)gc_row * {g.lda} + gc_kk])")
    b_at = (f"(gc_tb ? {g.b}[gc_b_off + (long long)gc_col * {g.ldb} + gc_kk] : "
            f"{g.b}[gc_b_off + (long long)gc_kk * {g.ldb} + gc_col])")
    src = f"""{head}
{{
  // C[m,n] = alpha * op(A)[m,k] @ op(B)[k,n] + beta * C, row-major, {TILE}x{TILE} shared tiles
  const int gc_M = {g.m}, gc_N = {g.n}, gc_K = {g.k};
  const bool gc_ta = {str(g.trans_a).lower()}, gc_tb = {str(g.trans_b).lower()};
  const long long gc_a_off = {g.off_a}LL + (long long)blockIdx.z * {g.stride_a}LL;
  const long long gc_b_off = {g.off_b}LL + (long long)blockIdx.z * {g.stride_b}LL;
  const long long gc_c_off = {g.off_c}LL + (long long)blockIdx.z * {g.stride_c}LL;
  __shared__ {t} gc_As[{TILE}][{TILE} + 1];
  __shared__ {t} gc_Bs[{TILE}][{TILE} + 1];
  const int gc_ty = threadIdx.y, gc_tx = threadIdx.x;
  const int gc_r = blockIdx.y * {TILE} + gc_ty, gc_c = blockIdx.x * {TILE} + gc_tx;
  {t} gc_acc = 0;
  for (int gc_k0 = 0; gc_k0 < gc_K; gc_k0 += {TILE}) {{
    {{ const int gc_row = gc_r, gc_kk = gc_k0 + gc_tx;
       gc_As[gc_ty][gc_tx] = (gc_row < gc_M && gc_kk < gc_K) ? {a_at} : ({t})0; }}
    {{ const int gc_kk = gc_k0 + gc_ty, gc_col = gc_c;
       gc_Bs[gc_ty][gc_tx] = (gc_kk < gc_K && gc_col < gc_N) ? {b_at} : ({t})0; }}
    __syncthreads();
    #pragma unroll
    for (int gc_j = 0; gc_j < {TILE}; ++gc_j) gc_acc += gc_As[gc_ty][gc_j] * gc_Bs[gc_j][gc_tx];
    __syncthreads();
  }}
  if (gc_r < gc_M && gc_c < gc_N) {{
    {t}* gc_out = {g.c} + gc_c_off + (long long)gc_r * {g.ldc} + gc_c;
    *gc_out = ({t}){g.alpha!r} * gc_acc{'' if g.beta == 0 else f' + ({t}){g.beta!r} * *gc_out'};
  }}
}}
"""
    launch = {"block": (TILE, TILE), "grid": ((g.n + TILE - 1) // TILE, (g.m + TILE - 1) // TILE, g.batch),
              "total": g.m * g.n * g.batch}
    return src, launch


__all__ = ["render_cuda", "render_cuda_module", "cuda_pieces", "CTYPE"]
