"""Scalar expressions: how an elementwise operator computes one element.

An elementwise operator declares its lowering as a Python function over `ScalarExpr`s
(`lambda x: x * 0.5 + 1.0`). Fusion strings these formulas together and the renderers
(LLVM, CUDA) turn them into code. This vocabulary is the whole contract between operators and
backends: a renderer must implement every name in UNARY, BINARY and TERNARY, nothing else.

`evaluate` runs a formula on numpy arrays, so an operator's formula can be checked against its
numpy reference without any backend.
"""
from __future__ import annotations

import math

import numpy as np

from .dtypes import canonical

UNARY = ("neg", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos",
         "erf", "floor", "ceil", "round", "trunc", "abs", "sign", "not", "hash32")
BINARY = ("add", "sub", "mul", "div", "pow", "max", "min", "mod",
          "lt", "le", "gt", "ge", "eq", "ne", "and", "or")
TERNARY = ("select",)
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not")


class ScalarExpr:
    """One node of a scalar formula. kind: 'arg' (input i), 'const', 'call' (op over args), 'cast'."""

    __slots__ = ("kind", "op", "args", "value", "dtype", "_hash")

    def __init__(self, kind, op=None, args=(), value=None, dtype="float32"):
        self.kind, self.op, self.args, self.value = kind, op, tuple(args), value
        self.dtype = canonical(dtype)
        self._hash = hash((kind, op, self.args, value if kind != "const" else float(value), self.dtype))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        # Iterative, not a recursive tuple comparison: two equal formulas fused from thousands
        # of operators are thousands of levels deep. Pairs already compared are not compared
        # again, so shared subexpressions cost once (a recursive walk is exponential on them).
        if self is other:
            return True
        if not isinstance(other, ScalarExpr):
            return False
        stack, done = [(self, other)], set()
        while stack:
            a, b = stack.pop()
            if a is b or (id(a), id(b)) in done:
                continue
            if (a._hash != b._hash or a.kind != b.kind or a.op != b.op or a.value != b.value
                    or a.dtype != b.dtype or len(a.args) != len(b.args)):
                return False
            done.add((id(a), id(b)))
            stack.extend(zip(a.args, b.args))
        return True

    def __repr__(self):
        lets, text = format_formula(self, lambda i: f"x{i}")
        return "".join(f"{name} = {value}; " for name, value in lets) + text

    # operator sugar, so formulas read like math
    def _lift(self, other):
        return other if isinstance(other, ScalarExpr) else const(other, self.dtype)

    def __add__(self, o): return call("add", self, self._lift(o))
    def __radd__(self, o): return call("add", self._lift(o), self)
    def __sub__(self, o): return call("sub", self, self._lift(o))
    def __rsub__(self, o): return call("sub", self._lift(o), self)
    def __mul__(self, o): return call("mul", self, self._lift(o))
    def __rmul__(self, o): return call("mul", self._lift(o), self)
    def __truediv__(self, o): return call("div", self, self._lift(o))
    def __rtruediv__(self, o): return call("div", self._lift(o), self)
    def __pow__(self, o): return call("pow", self, self._lift(o))
    def __rpow__(self, o): return call("pow", self._lift(o), self)
    def __neg__(self): return call("neg", self)
    def __lt__(self, o): return call("lt", self, self._lift(o))
    def __le__(self, o): return call("le", self, self._lift(o))
    def __gt__(self, o): return call("gt", self, self._lift(o))
    def __ge__(self, o): return call("ge", self, self._lift(o))


def postorder(expr: ScalarExpr) -> list:
    """Each distinct subexpression of `expr` once, every operand before its users, `expr` last.

    Every walk over a formula (evaluation, the renderers, printing) goes through this instead of
    recursing: a formula is as deep as the chain of operators fused into it, and Python's
    recursion limit (1000 frames) must not bound that."""
    order, seen = [], set()
    stack = [(expr, False)]
    while stack:
        e, expanded = stack.pop()
        if expanded:
            order.append(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        stack.append((e, True))
        stack.extend((a, False) for a in reversed(e.args) if a not in seen)
    return order


def format_formula(expr: ScalarExpr, arg_text, dtype_text=str, prefix="t") -> tuple:
    """(lets, text): `expr` as text, with every call used more than once written once as a
    named temporary (lets = [(name, text)], operands first) and referred to by name.

    Written inline, a formula in which y feeds two users at each of k steps (y + a*tanh(y),
    repeated) would print 2**k copies of y: a 100-operator kernel's text would not fit in
    memory. The text is assembled from tokens in one pass, so a formula n levels deep costs
    O(n), not the O(n**2) of building each level's string from its operands' strings.
    arg_text(i) spells argument i; dtype_text(dtype) the name a cast prints."""
    uses: dict = {}
    order = postorder(expr)
    for e in order:
        for a in e.args:
            uses[a] = uses.get(a, 0) + 1
    names: dict = {}

    def spell(root) -> str:
        out, stack = [], [root]
        while stack:
            e = stack.pop()
            if isinstance(e, str):
                out.append(e)
            elif e is not root and e in names:
                out.append(names[e])
            elif e.kind == "arg":
                out.append(arg_text(e.value))
            elif e.kind == "const":
                out.append(repr(e.value))
            else:
                out.append(f"{dtype_text(e.dtype)}(" if e.kind == "cast" else f"{e.op}(")
                stack.append(")")
                for k in reversed(range(len(e.args))):
                    stack.append(e.args[k])
                    if k:
                        stack.append(", ")
        return "".join(out)

    lets = []
    for e in order:
        if e.kind in ("call", "cast") and uses.get(e, 0) > 1 and e is not expr:
            lets.append((f"{prefix}{len(lets)}", spell(e)))
            names[e] = lets[-1][0]
    return lets, spell(expr)


def arg(index: int, dtype="float32") -> ScalarExpr:
    return ScalarExpr("arg", value=index, dtype=dtype)


def const(value, dtype="float32") -> ScalarExpr:
    dtype = canonical(dtype)
    value = bool(value) if dtype == "bool" else (float(value) if dtype.startswith(("float", "bfloat")) else int(value))
    return ScalarExpr("const", value=value, dtype=dtype)


def cast(x: ScalarExpr, dtype) -> ScalarExpr:
    dtype = canonical(dtype)
    return x if x.dtype == dtype else ScalarExpr("cast", args=(x,), dtype=dtype)


def call(op: str, *args) -> ScalarExpr:
    if op not in UNARY + BINARY + TERNARY:
        raise ValueError(f"unknown scalar function {op!r}")
    if op == "hash32" and args[0].dtype != "int64":
        raise TypeError(f"scalar hash32: takes an int64 counter, got {args[0].dtype}; cast first")
    if op in COMPARISONS:
        dtype = "bool"
    elif op == "select":
        dtype = args[1].dtype
    else:
        dtype = args[0].dtype
    if op in BINARY and op not in ("and", "or") and args[0].dtype != args[1].dtype:
        raise TypeError(f"scalar {op}: dtypes differ ({args[0].dtype} vs {args[1].dtype}); cast first")
    return ScalarExpr("call", op=op, args=args, dtype=dtype)


def select(cond, a, b):
    ref = a if isinstance(a, ScalarExpr) else b
    a = a if isinstance(a, ScalarExpr) else const(a, ref.dtype)
    b = b if isinstance(b, ScalarExpr) else const(b, ref.dtype)
    return call("select", cond, a, b)


def _fn(name):
    def f(*args):
        first = next(a for a in args if isinstance(a, ScalarExpr))
        return call(name, *[a if isinstance(a, ScalarExpr) else const(a, first.dtype) for a in args])
    f.__name__ = name
    return f


exp, log, log1p, expm1, sqrt, rsqrt, tanh, sigmoid = map(_fn, ("exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "tanh", "sigmoid"))
sin, cos, erf, floor, ceil, round_, trunc, abs_, sign = map(_fn, ("sin", "cos", "erf", "floor", "ceil", "round", "trunc", "abs", "sign"))
maximum, minimum, logical_not = _fn("max"), _fn("min"), _fn("not")


# -- hash32: the counter-based generator random operators compile to ---------------------------
# Chris Wellons' "lowbias32" finaliser (found by his hash-prospector search; bias ~0.17, below
# murmur3's fmix32 at ~0.26): an invertible map on 32-bit words in which every input bit flips
# each output bit with probability close to 1/2. Invertible means one seed's counters 0..2**32-1
# map to distinct words, so a mask drawn from consecutive counters has no repeated draws; two
# rounds keyed by the two 32-bit halves of a per-call seed (random.counter_uniform) decorrelate
# calls. Chosen over Philox-4x32-10 because it is five integer operations on one word, which
# every renderer spells directly (no 32x32->64 multiply, no four-word state to carry).
HASH32_MUL1, HASH32_MUL2 = 0x7FEB352D, 0x846CA68B


def hash32_numpy(x):
    """The reference every renderer must match bit for bit: the low 32 bits of an int64
    counter, mixed, returned as an int64 in [0, 2**32)."""
    h = (np.asarray(x).astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(HASH32_MUL1)
        h = h ^ (h >> np.uint32(15))
        h = h * np.uint32(HASH32_MUL2)
        h = h ^ (h >> np.uint32(16))
    return h.astype(np.int64)


def _erf(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x


_NUMPY = {
    "neg": np.negative, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "sin": np.sin, "cos": np.cos, "erf": _erf,
    "floor": np.floor, "ceil": np.ceil, "round": lambda x: np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(x.dtype),
    "trunc": np.trunc, "abs": np.abs, "sign": np.sign, "not": np.logical_not, "hash32": hash32_numpy,
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "div": lambda a, b: np.floor_divide(a, b) if a.dtype.kind in "iu" else np.divide(a, b),
    "pow": np.power, "max": np.maximum, "min": np.minimum, "mod": np.fmod,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal, "and": np.logical_and, "or": np.logical_or,
    "select": lambda c, a, b: np.where(c, a, b),
}


def evaluate(expr: ScalarExpr, inputs: list) -> np.ndarray:
    """Run a formula on numpy arrays (broadcasting), in the formula's own dtypes."""
    values = {}
    for e in postorder(expr):
        if e.kind == "arg":
            r = np.asarray(inputs[e.value])
        elif e.kind == "const":
            r = np.asarray(e.value, dtype=e.dtype)
        elif e.kind == "cast":
            r = values[e.args[0]].astype(e.dtype)
        else:
            with np.errstate(all="ignore"):
                r = np.asarray(_NUMPY[e.op](*[values[a] for a in e.args]))
        values[e] = r
    return values[expr]
