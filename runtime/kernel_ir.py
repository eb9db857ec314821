"""The loop-level kernel IR: what a fused group of the graph becomes before a renderer turns it
into code (LLVM IR in render_llvm, CUDA C in render_cuda).

A `Kernel` names its buffers (`Buf`: dtype and element count) and holds a body of statements:
`Loop` (a counted loop over `var` in [0, extent); the outermost may be marked parallel),
`Store` (buf[index] = formula over loaded values), `Accumulate`/`DeclareAcc` (a reduction into
a scalar accumulator), and `Gemm` (a library matrix product over strided buffers). Index
expressions are affine: sum of loop variable times stride plus an offset, so broadcasting is a
stride of 0. Scalar computation reuses `graphc.ops.scalar`: a `Store` carries a ScalarExpr whose
`arg i` is the statement's `args[i]` (a `Load` or an `AccRef`).

This module knows nothing about llvmlite, CUDA or the graph; it is plain data that prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graphc.ops.declarations.slicing import WRAP_LIMIT  # noqa: F401  (Indirect's float rule)
from graphc.ops.scalar import ScalarExpr, format_formula
from graphc.ops.dtypes import SHORT


@dataclass(frozen=True)
class Buf:
    """A kernel parameter: a pointer to `size` elements of `dtype`."""
    name: str
    dtype: str
    size: int

    def __str__(self):
        return f"{self.name}: {SHORT[self.dtype]}*[{self.size}]"


@dataclass(frozen=True)
class Index:
    """sum(var * stride for var, stride in terms) + offset, plus any `indirect` terms (rows
    picked by an index array), in elements."""
    terms: tuple = ()
    offset: int = 0
    indirect: tuple = ()        # Indirect terms

    def __str__(self):
        parts = [v if s == 1 else f"{v}*{s}" for v, s in self.terms if s != 0]
        parts += [str(t) for t in self.indirect]
        if self.offset or not parts:
            parts.append(str(self.offset))
        return " + ".join(parts)


@dataclass(frozen=True)
class Indirect:
    """An index term read from memory: stride * fix(buf[index]) where fix maps the stored
    value (any dtype; floats truncate) into [0, extent): mode 'clip' clamps, 'wrap' takes it
    modulo extent (Embedding and take, MXNet's modes). Float indices follow
    graphc.ops.declarations.slicing.fix_indices (NaN is 0; clamped before converting)."""
    buf: str
    index: Index
    stride: int
    extent: int
    mode: str = "clip"

    def __str__(self):
        return f"{self.mode}({self.buf}[{self.index}], {self.extent})*{self.stride}"


@dataclass(frozen=True)
class Load:
    buf: str
    index: Index

    def __str__(self):
        return f"{self.buf}[{self.index}]"


@dataclass(frozen=True)
class AccRef:
    """The current value of accumulator `name` (after its loop)."""
    name: str

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class LoopVar:
    """A loop counter used as a value (converted to the dtype of the formula's arg)."""
    name: str

    def __str__(self):
        return self.name


def _formula_lines(indent: str, target: str, expr: ScalarExpr, args) -> list:
    """`target expr`, after one `let tN = ...` line per subexpression the formula uses twice
    (printed inline they would double at every reuse)."""
    lets, text = format_formula(expr, lambda i: str(args[i]), lambda dt: SHORT[dt])
    return [f"{indent}let {name} = {value}" for name, value in lets] + [f"{indent}{target}{text}"]


@dataclass
class Store:
    """buf[index] = expr(args...)."""
    buf: str
    index: Index
    expr: ScalarExpr
    args: tuple

    def lines(self, indent):
        return _formula_lines(indent, f"{self.buf}[{self.index}] = ", self.expr, self.args)


@dataclass
class DeclareAcc:
    """A scalar accumulator of `kind` (sum/prod/max/min), set to its identity."""
    name: str
    dtype: str
    kind: str

    def lines(self, indent):
        return [f"{indent}{self.name}: {SHORT[self.dtype]} = identity({self.kind})"]


@dataclass
class Accumulate:
    """acc = combine_kind(acc, expr(args...))."""
    name: str
    kind: str
    expr: ScalarExpr
    args: tuple

    def lines(self, indent):
        return _formula_lines(indent, f"{self.name} {self.kind}= ", self.expr, self.args)


@dataclass
class Loop:
    """parallel: worth splitting across CPU threads (its iterations are independent).
    independent: iterations are independent whether or not threading pays on the CPU (a GPU
    renderer may give each iteration its own thread)."""
    var: str
    extent: int
    body: list
    parallel: bool = False
    independent: bool = False

    def lines(self, indent):
        head = f"{indent}{'parallel ' if self.parallel else ''}for {self.var} in 0..{self.extent}:"
        out = [head]
        for s in self.body:
            out.extend(s.lines(indent + "  "))
        return out


@dataclass
class Gemm:
    """For b in 0..batch: C_b[m,n] = alpha * op(A_b)[m,k] @ op(B_b)[k,n] + beta * C_b, row-major,
    with leading dimensions lda/ldb/ldc and batch strides (elements) between matrices."""
    a: str
    b: str
    c: str
    m: int
    n: int
    k: int
    trans_a: bool
    trans_b: bool
    lda: int
    ldb: int
    ldc: int
    dtype: str
    batch: int = 1
    stride_a: int = 0
    stride_b: int = 0
    stride_c: int = 0
    alpha: float = 1.0
    beta: float = 0.0
    # element offsets of the first matrix in a, b and c (one image or group of a convolution)
    off_a: int = 0
    off_b: int = 0
    off_c: int = 0

    def lines(self, indent):
        ta = "ᵀ" if self.trans_a else ""
        tb = "ᵀ" if self.trans_b else ""
        bt = f"batch {self.batch} " if self.batch > 1 else ""

        def at(name, off):
            return f"{name}+{off}" if off else name
        acc = f" + {self.beta!r}*{self.c}" if self.beta else ""
        return [f"{indent}{bt}gemm {at(self.c, self.off_c)}[{self.m}x{self.n}] = {at(self.a, self.off_a)}{ta} @ "
                f"{at(self.b, self.off_b)}{tb}{acc}  (k={self.k}, ld={self.lda}/{self.ldb}/{self.ldc}, {SHORT[self.dtype]})"]


@dataclass
class MemCopy:
    """Copy `nbytes` bytes from buffer `src` to buffer `dst` (outputs that are views or inputs)."""
    dst: str
    src: str
    nbytes: int

    def lines(self, indent):
        return [f"{indent}memcpy({self.dst}, {self.src}, {self.nbytes} bytes)"]


@dataclass
class Kernel:
    """One generated function. `work` estimates scalar operations (for the threading threshold);
    the executor splits the outermost loop across cores only when it is marked parallel."""
    name: str
    bufs: list
    body: list
    work: int = 0
    inplace: frozenset = field(default_factory=frozenset)  # buffer names that may alias each other

    def __post_init__(self):
        # one namespace in the CUDA source: a loop variable named like a buffer shadows it
        names = {b.name for b in self.bufs}
        clash = sorted(names & _loop_vars(self.body))
        if clash:
            raise ValueError(f"kernel {self.name}: loop variables named like its buffers: {clash}")

    def buf(self, name) -> Buf:
        for b in self.bufs:
            if b.name == name:
                return b
        raise KeyError(name)

    @property
    def parallel_loop(self):
        """The outermost loop when the kernel may be split across threads, else None."""
        if len(self.body) == 1 and isinstance(self.body[0], Loop) and self.body[0].parallel:
            return self.body[0]
        return None

    def __str__(self):
        lines = [f"kernel {self.name}({', '.join(map(str, self.bufs))}):"]
        for s in self.body:
            lines.extend(s.lines("  "))
        return "\n".join(lines)


def _loop_vars(body) -> set:
    out = set()
    for s in body:
        if isinstance(s, Loop):
            out.add(s.var)
            out |= _loop_vars(s.body)
    return out


def loads_of(stmt) -> list:
    """Every Load under a statement (for renderers that hoist or check them)."""
    out = []
    if isinstance(stmt, (Store, Accumulate)):
        out.extend(a for a in stmt.args if isinstance(a, Load))
    elif isinstance(stmt, Loop):
        for s in stmt.body:
            out.extend(loads_of(s))
    return out


def unique_bufs(bufs) -> list:
    """Each buffer once, first occurrence kept: the same buffer may be an input twice
    (x @ x.T) or both an input and the in-place output."""
    seen, out = set(), []
    for b in bufs:
        if b.name not in seen:
            seen.add(b.name)
            out.append(b)
    return out
