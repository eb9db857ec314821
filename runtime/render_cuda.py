"""Kernel IR -> CUDA C source. The only file that knows CUDA syntax.

One `extern "C" __global__` function per Kernel, parameters in kernel.bufs order
(`T* __restrict__`). Shapes of kernels:

- loop nests ending in a Store (elementwise, copies): one grid-stride loop over the flattened
  iteration space; each thread recovers the loop variables by division.
- reductions with kept dimensions: one thread per output element (grid-stride), a serial loop
  over the reduced dimensions.
- full reductions (no kept dimension): one block; threads accumulate strided partial results,
  then a shared-memory tree combines them. Launch with <<<1, 256>>>.
- Gemm: a 16x16 shared-memory tiled kernel; blockIdx.z walks the batch.
- MemCopy: a grid-stride byte copy.

`render_cuda(kernel)` returns (source, launch) where launch says how the host should size the
grid. Running the source (pycuda) is the executor's business, not this file's.
"""
from __future__ import annotations

import math

from graphc.ops.scalar import ScalarExpr, postorder

from .kernel_ir import (Kernel, Loop, Store, DeclareAcc, Accumulate, AccRef, Load, LoopVar, Gemm, MemCopy,
                        WRAP_LIMIT)

CTYPE = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "unsigned char"}
RTYPE = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "bool"}
FLOATS = ("float32", "float64")
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
"""

_UNARY_F = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt",
            "rsqrt": "rsqrt", "tanh": "tanh", "sin": "sin", "cos": "cos", "erf": "erf",
            "floor": "floor", "ceil": "ceil", "round": "round", "trunc": "trunc", "abs": "fabs"}
_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_ARITH = {"add": "+", "sub": "-", "mul": "*"}


def _fn(name, dtype):
    return name + ("f" if dtype == "float32" else "")


def _lit(value, dtype):
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
        name = f"v{self.counter[0]}"
        self.lines.append(f"{self.indent}const {RTYPE[dtype]} {name} = {text};")
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
                    r = self.tmp(e.dtype, f"({RTYPE[e.dtype]})({inner})" if src != "bool" else f"({RTYPE[e.dtype]})({inner} ? 1 : 0)")
            else:
                r = self.tmp(e.dtype, self.call(e, [memo[a] for a in e.args]))
            memo[e] = r
        return memo[expr]

    def call(self, e, a):
        op = e.op
        dt = e.args[0].dtype
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

    def value(self, a, lines, indent):
        if isinstance(a, Load):
            v = f"{a.buf}[{_index(a.index, self.names, self.dtypes)}]"
            return f"({v} != 0)" if self.dtypes[a.buf] == "bool" else v
        if isinstance(a, AccRef):
            return a.name
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
                lines.append(f"{indent}{s.buf}[{_index(s.index, self.names, self.dtypes)}] = {v};")
            elif isinstance(s, DeclareAcc):
                lines.append(f"{indent}{RTYPE[s.dtype]} {s.name} = {_identity(s.kind, s.dtype)};")
            elif isinstance(s, Accumulate):
                ex = _Expr(lines, indent, self.counter)
                v = ex.emit(s.expr, [self.value(a, lines, indent) for a in s.args])
                lines.append(f"{indent}{s.name} = {_combine(s.kind, s.name, v, s.expr.dtype)};")
            else:
                raise TypeError(f"statement {s!r} cannot appear inside a CUDA loop body")


def _identity(kind, dtype):
    if kind == "sum":
        return _lit(0, dtype)
    if kind == "prod":
        return _lit(1, dtype)
    if dtype in FLOATS:
        return _lit(float("-inf") if kind == "max" else float("inf"), dtype)
    bits = 64 if dtype == "int64" else 32
    return _lit(-(1 << (bits - 1)) if kind == "max" else (1 << (bits - 1)) - 1, dtype)


def _combine(kind, acc, v, dtype):
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


def _owns_its_writes(nest: Loop) -> bool:
    """Whether threads splitting this nest's innermost loop write disjoint elements and read
    only what they write (so the nest needs no atomics): every Store indexes the innermost
    variable, and loads of a stored buffer use the store's own index."""
    loops, inner = [], [nest]
    while len(inner) == 1 and isinstance(inner[0], Loop):
        loops.append(inner[0])
        inner = inner[0].body
    var = loops[-1].var
    for st in inner:
        if not isinstance(st, Store) or not any(v == var and k != 0 for v, k in st.index.terms):
            return False
        for a in st.args:
            if isinstance(a, Load) and a.buf == st.buf and a.index != st.index:
                return False
    return True


def _render_nest_sequence(kernel: Kernel, head: str, em: "_Emitter"):
    """Kernels made of loop nests that must run one after another (e.g. a reduction that
    accumulates whole rows into its output, the form that vectorises on the CPU): one block
    runs the nests in order, its threads splitting each nest's innermost loop, with a barrier
    between nests. Correct for every such kernel; fast only for small ones."""
    lines = [head, "{"]
    for nest in kernel.body:
        if not isinstance(nest, Loop) or not _owns_its_writes(nest):
            raise NotImplementedError(f"kernel {kernel.name} has no CUDA rendering shape")
        loops, inner = [], [nest]
        while len(inner) == 1 and isinstance(inner[0], Loop):
            loops.append(inner[0])
            inner = inner[0].body
        indent = "  "
        opened = 0
        for l in loops[:-1]:
            em.names[l.var] = l.var
            lines.append(f"{indent}for (long long {l.var} = 0; {l.var} < {l.extent}LL; ++{l.var}) {{")
            indent += "  "
            opened += 1
        last = loops[-1]
        em.names[last.var] = last.var
        lines.append(f"{indent}for (long long {last.var} = threadIdx.x; {last.var} < {last.extent}LL; "
                     f"{last.var} += blockDim.x) {{")
        em.stmts(inner, lines, indent + "  ")
        lines.append(f"{indent}}}")
        for _ in range(opened):
            indent = indent[:-2]
            lines.append(f"{indent}}}")
        lines.append("  __syncthreads();")
    lines.append("}")
    return "\n".join(lines) + "\n", {"block": BLOCK, "grid": 1}


def _grid_stride(loops, total, em, lines):
    """Open a grid-stride loop over `total` flattened iterations and recover each loop's
    variable from the flat index t (innermost fastest); the caller closes the brace."""
    lines.append(f"  for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < {total}LL; "
                 f"t += (long long)gridDim.x * blockDim.x) {{")
    _unflatten("t", loops, em, lines)


def _unflatten(flat, loops, em, lines):
    """Each loop's variable from the flat iteration index `flat` (innermost fastest)."""
    rest = flat
    for d in reversed(range(len(loops))):
        l = loops[d]
        em.names[l.var] = l.var
        if d == 0:
            lines.append(f"    const long long {l.var} = {rest};")
        else:
            lines.append(f"    const long long {l.var} = {rest} % {l.extent}LL;")
            lines.append(f"    const long long q{d} = {rest} / {l.extent}LL;")
            rest = f"q{d}"


def _render_outer_independent(kernel, head, em, kept, inner):
    lines = [head, "{"]
    total = math.prod(l.extent for l in kept)
    _grid_stride(kept, total, em, lines)
    em.stmts(inner, lines, "    ")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n", {"block": BLOCK, "grid": "auto"}


def render_cuda_module(kernels) -> str:
    """One translation unit holding every kernel (the helper prelude once)."""
    return PRELUDE.lstrip() + "\n" + "\n".join(_render(k)[0] for k in kernels)


def _render(kernel: Kernel):
    """(CUDA C source, launch) for one kernel. launch: {'block': threads, 'grid': blocks or
    'auto' (size to the device for a grid-stride loop), 'grid_z': batch for GEMM}."""
    params, _ = _params(kernel)
    head = f'extern "C" __global__ void {kernel.name}({params})'
    lines = [head, "{"]
    em = _Emitter(kernel)
    body = kernel.body
    launch = {"block": BLOCK, "grid": "auto"}
    if len(body) == 1 and isinstance(body[0], Gemm):
        return _render_gemm(kernel, body[0], head)
    if len(body) == 1 and isinstance(body[0], MemCopy):
        c = body[0]
        lines += ["  const long long n = %dLL;" % c.nbytes,
                  f"  unsigned char* d = (unsigned char*){c.dst};",
                  f"  const unsigned char* s = (const unsigned char*){c.src};",
                  "  for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < n; "
                  "t += (long long)gridDim.x * blockDim.x) d[t] = s[t];", "}"]
        return "\n".join(lines) + "\n", launch
    nest = _perfect_nest(body)
    if nest is not None:
        loops, inner = nest
        total = math.prod(l.extent for l in loops) if loops else 1
        _grid_stride(loops, total, em, lines)
        em.stmts(inner, lines, "    ")
        lines += ["  }", "}"]
        return "\n".join(lines) + "\n", launch
    # reductions: kept loops outside, [DeclareAcc, reduced loops..., Store] inside
    kept = []
    inner = body
    while len(inner) == 1 and isinstance(inner[0], Loop):
        kept.append(inner[0])
        inner = inner[0].body
    decl = next((s for s in inner if isinstance(s, DeclareAcc)), None)
    if decl is None and kept and (kept[0].independent or kept[0].parallel):
        # independent outer iterations (an image-channel plane of im2col, pooling, a depthwise
        # convolution), each a sequence of nests: one thread per iteration runs them in order
        return _render_outer_independent(kernel, head, em, kept, inner)
    if decl is None:
        return _render_nest_sequence(kernel, head, em)
    if kept:
        total = math.prod(l.extent for l in kept)
        _grid_stride(kept, total, em, lines)
        em.stmts(inner, lines, "    ")
        lines += ["  }", "}"]
        return "\n".join(lines) + "\n", launch
    # a full reduction: one block, shared-memory tree
    red_loops, acc_stmt = [], None
    rest = [s for s in inner if not isinstance(s, DeclareAcc)]
    red, store = rest[0], rest[1]
    while isinstance(red, Loop):
        red_loops.append(red)
        red = red.body[0] if len(red.body) == 1 else None
    acc_stmt = red
    if not isinstance(acc_stmt, Accumulate) or not isinstance(store, Store):
        raise NotImplementedError(f"kernel {kernel.name} has no CUDA rendering shape")
    total = math.prod(l.extent for l in red_loops) if red_loops else 1
    rt = RTYPE[decl.dtype]
    lines.append(f"  __shared__ {rt} part[{BLOCK}];")
    lines.append(f"  {rt} {decl.name} = {_identity(decl.kind, decl.dtype)};")
    lines.append(f"  for (long long t = threadIdx.x; t < {total}LL; t += blockDim.x) {{")
    _unflatten("t", red_loops, em, lines)
    em.stmts([acc_stmt], lines, "    ")
    lines.append("  }")
    lines.append(f"  part[threadIdx.x] = {decl.name};")
    lines.append("  __syncthreads();")
    lines.append(f"  for (int s = {BLOCK // 2}; s > 0; s >>= 1) {{")
    lines.append(f"    if (threadIdx.x < s) part[threadIdx.x] = {_combine(decl.kind, 'part[threadIdx.x]', 'part[threadIdx.x + s]', decl.dtype)};")
    lines.append("    __syncthreads();")
    lines.append("  }")
    lines.append("  if (threadIdx.x == 0) {")
    lines.append(f"    const {rt} {decl.name}_total = part[0];")
    store2 = Store(store.buf, store.index, store.expr, tuple(AccRef(decl.name + "_total") if isinstance(a, AccRef) else a
                                                             for a in store.args))
    em.stmts([store2], lines, "    ")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n", {"block": BLOCK, "grid": 1}


def _render_gemm(kernel, g: Gemm, head):
    t = CTYPE[g.dtype]
    a_at = f"(ta ? {g.a}[a_off + (long long)kk * {g.lda} + row] : {g.a}[a_off + (long long)row * {g.lda} + kk])"
    b_at = f"(tb ? {g.b}[b_off + (long long)col * {g.ldb} + kk] : {g.b}[b_off + (long long)kk * {g.ldb} + col])"
    src = f"""{head}
{{
  // C[m,n] = alpha * op(A)[m,k] @ op(B)[k,n] + beta * C, row-major, {TILE}x{TILE} shared tiles
  const int M = {g.m}, N = {g.n}, K = {g.k};
  const bool ta = {str(g.trans_a).lower()}, tb = {str(g.trans_b).lower()};
  const long long a_off = {g.off_a}LL + (long long)blockIdx.z * {g.stride_a}LL;
  const long long b_off = {g.off_b}LL + (long long)blockIdx.z * {g.stride_b}LL;
  const long long c_off = {g.off_c}LL + (long long)blockIdx.z * {g.stride_c}LL;
  __shared__ {t} As[{TILE}][{TILE} + 1];
  __shared__ {t} Bs[{TILE}][{TILE} + 1];
  const int ty = threadIdx.y, tx = threadIdx.x;
  const int r = blockIdx.y * {TILE} + ty, c = blockIdx.x * {TILE} + tx;
  {t} acc = 0;
  for (int k0 = 0; k0 < K; k0 += {TILE}) {{
    {{ const int row = r, kk = k0 + tx;
       As[ty][tx] = (row < M && kk < K) ? {a_at} : ({t})0; }}
    {{ const int kk = k0 + ty, col = c;
       Bs[ty][tx] = (kk < K && col < N) ? {b_at} : ({t})0; }}
    __syncthreads();
    #pragma unroll
    for (int j = 0; j < {TILE}; ++j) acc += As[ty][j] * Bs[j][tx];
    __syncthreads();
  }}
  if (r < M && c < N) {{
    {t}* out = {g.c} + c_off + (long long)r * {g.ldc} + c;
    *out = ({t}){g.alpha!r} * acc{'' if g.beta == 0 else f' + ({t}){g.beta!r} * *out'};
  }}
}}
"""
    launch = {"block": (TILE, TILE), "grid": ((g.n + TILE - 1) // TILE, (g.m + TILE - 1) // TILE, g.batch)}
    return src, launch


__all__ = ["render_cuda", "render_cuda_module", "CTYPE"]
