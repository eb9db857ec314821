"""The operator test table: for every registered operator, inputs, attributes and an expected
result written here in plain numpy (independent of the op's own reference), or a `check` for
ops whose result is random. tests/ops/test_op_*.py run these cases."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

_rng = np.random.default_rng(1234)


def U(*shape, lo=-2.0, hi=2.0):
    return _rng.uniform(lo, hi, shape)


def A(*shape, lo=0.2, hi=2.0):
    """Values away from zero (both signs): keeps |x|, sign, relu differentiable."""
    return _rng.uniform(lo, hi, shape) * _rng.choice([-1.0, 1.0], shape)


def I(*shape, n=3):
    """Integer-valued floats in [0, n): indices and truth values."""
    return _rng.integers(0, n, shape).astype(np.float64)


def D(*shape):
    """Distinct values (no ties for max/min/argmax), shuffled."""
    n = int(np.prod(shape))
    return (_rng.permutation(n) * 0.37 - n * 0.15).reshape(shape).astype(np.float64)


@dataclass
class Case:
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    expect: Callable | None = None      # (*inputs) -> array or tuple of arrays
    check: Callable | None = None       # (outputs, inputs) -> None, for random results
    wrt: tuple | None = None            # inputs to differentiate (default: all)
    fd: bool = True                     # run the finite-difference gradient check
    training: bool = False
    rtol: float = 1e-7
    f32: bool = True                    # also run the forward in float32

    @property
    def id(self):
        return f"{self.op}[{','.join(f'{k}={v}' for k, v in self.attrs.items())}]"

    def differentiable_inputs(self):
        return tuple(range(len(self.inputs))) if self.wrt is None else self.wrt


CASES: list = []


def case(op, inputs, attrs=None, expect=None, **kw):
    CASES.append(Case(op, list(inputs), dict(attrs or {}), expect, **kw))


def _vec(fn):
    return lambda x: np.vectorize(fn, otypes=[np.float64])(x)


def _digamma_fd(x, h=1e-5):
    lg = _vec(math.lgamma)
    return (lg(x + h) - lg(x - h)) / (2 * h)


def _trigamma_sum(x, n=2000):
    k = np.arange(n)[:, None]
    z = x.reshape(-1)[None, :] + n
    s = (1.0 / (x.reshape(-1)[None, :] + k) ** 2).sum(0) + 1 / z + 1 / (2 * z * z) + 1 / (6 * z ** 3)
    return s.reshape(x.shape)


# -- unary math: name -> (expected, input maker, rtol) ------------------------------------------
_SIG = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
UNARY = {
    "negative": (lambda x: -x, U), "abs": (lambda x: np.where(x < 0, -x, x), A),
    "sign": (lambda x: (x > 0) * 1.0 - (x < 0), A), "exp": (lambda x: math.e ** x, U),
    "log": (lambda x: np.log(x), lambda *s: U(*s, lo=0.2, hi=3)),
    "log1p": (lambda x: np.log(1 + x), lambda *s: U(*s, lo=-0.5, hi=2)),
    "expm1": (lambda x: np.exp(x) - 1, U), "sqrt": (lambda x: x ** 0.5, lambda *s: U(*s, lo=0.2, hi=3)),
    "rsqrt": (lambda x: x ** -0.5, lambda *s: U(*s, lo=0.2, hi=3)), "square": (lambda x: x * x, U),
    "reciprocal": (lambda x: 1 / x, A), "sin": (np.sin, U), "cos": (np.cos, U),
    "tanh": (lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), U), "sigmoid": (_SIG, U),
    "relu": (lambda x: x * (x > 0), A), "softsign": (lambda x: x / (1 + np.abs(x)), A),
    "softrelu": (lambda x: np.log(1 + np.exp(x)), U), "erf": (_vec(math.erf), U),
    "floor": (np.floor, U), "ceil": (np.ceil, U),
    "round": (lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5), U), "trunc": (lambda x: np.sign(x) * np.floor(np.abs(x)), U),
    "fix": (lambda x: np.sign(x) * np.floor(np.abs(x)), U),
    "log2": (lambda x: np.log(x) / np.log(2), lambda *s: U(*s, lo=0.2, hi=3)),
    "log10": (lambda x: np.log(x) / np.log(10), lambda *s: U(*s, lo=0.2, hi=3)),
    "tan": (lambda x: np.sin(x) / np.cos(x), lambda *s: U(*s, lo=-1.2, hi=1.2)),
    "arcsin": (_vec(math.asin), lambda *s: U(*s, lo=-0.8, hi=0.8)),
    "arccos": (_vec(math.acos), lambda *s: U(*s, lo=-0.8, hi=0.8)),
    "arctan": (_vec(math.atan), U), "sinh": (_vec(math.sinh), U), "cosh": (_vec(math.cosh), U),
    "arcsinh": (_vec(math.asinh), lambda *s: U(*s, lo=-3, hi=3)),
    "arccosh": (_vec(math.acosh), lambda *s: U(*s, lo=1.2, hi=3)),
    "arctanh": (_vec(math.atanh), lambda *s: U(*s, lo=-0.8, hi=0.8)),
    "degrees": (lambda x: x / math.pi * 180, U), "radians": (lambda x: x / 180 * math.pi, U),
    "cbrt": (lambda x: np.sign(x) * np.abs(x) ** (1 / 3), A), "rcbrt": (lambda x: np.sign(x) * np.abs(x) ** (-1 / 3), A),
    "logical_not": (lambda x: (x == 0) * 1.0, lambda *s: I(*s, n=2)),
    "gamma": (_vec(math.gamma), lambda *s: U(*s, lo=0.5, hi=3)),
    "gammaln": (_vec(math.lgamma), lambda *s: U(*s, lo=0.5, hi=3)),
    "_digamma": (_digamma_fd, lambda *s: U(*s, lo=0.5, hi=3), 1e-6),
    "_trigamma": (_trigamma_sum, lambda *s: U(*s, lo=0.5, hi=3), 1e-6),
}
for _name, (_f, _mk, *_tol) in UNARY.items():
    case(_name, [_mk(2, 3)], {}, _f, rtol=_tol[0] if _tol else 1e-7)
    # the near-zero regime where naive formulas cancel (sinh, arcsinh, expm1, log1p, tan ...)
    if _name in ("sinh", "arcsinh", "expm1", "log1p", "tan", "arctanh", "softrelu", "erf"):
        case(_name, [U(5, lo=-1e-3, hi=1e-3)], {}, _f, fd=False)


def _mxmod(a, b):
    with np.errstate(all="ignore"):
        return np.where(b == 0, 0.0, a - b * np.floor(a / np.where(b == 0, 1, b)))


# -- binary: name -> (expected, lhs maker, rhs maker) ---------------------------------------------
_POS = lambda *s: U(*s, lo=0.5, hi=2.0)  # noqa: E731
BINARY = {
    "add": (lambda a, b: a + b, U, U), "sub": (lambda a, b: a - b, U, U), "mul": (lambda a, b: a * b, U, U),
    "div": (lambda a, b: a / b, U, A), "mod": (_mxmod, lambda *s: U(*s, lo=-5, hi=5), A),
    "power": (lambda a, b: np.exp(b * np.log(a)), _POS, U), "maximum": (lambda a, b: np.where(a > b, a, b), U, U),
    "minimum": (lambda a, b: np.where(a < b, a, b), U, U), "hypot": (lambda a, b: np.sqrt(a * a + b * b), A, A),
    "equal": (lambda a, b: (a == b) * 1.0, I, I), "not_equal": (lambda a, b: (a != b) * 1.0, I, I),
    "greater": (lambda a, b: (a > b) * 1.0, I, I), "greater_equal": (lambda a, b: (a >= b) * 1.0, I, I),
    "lesser": (lambda a, b: (a < b) * 1.0, I, I), "lesser_equal": (lambda a, b: (a <= b) * 1.0, I, I),
    "logical_and": (lambda a, b: ((a != 0) & (b != 0)) * 1.0, I, I),
    "logical_or": (lambda a, b: ((a != 0) | (b != 0)) * 1.0, I, I),
    "logical_xor": (lambda a, b: ((a != 0) != (b != 0)) * 1.0, I, I),
}
_COMPARE = {"equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal",
            "logical_and", "logical_or", "logical_xor"}
for _k, (_f, _ma, _mb) in BINARY.items():
    # comparisons: integer values exercise ties in the forward; their (zero) gradient is
    # checked on random reals, where no tie sits within the finite-difference step
    case(f"broadcast_{_k}", [_ma(2, 3), _mb(1, 3)], {}, _f, fd=_k not in _COMPARE)
    case(f"broadcast_{_k}", [_ma(4, 1), _mb(3)], {}, _f, f32=_k != "mod", fd=_k not in _COMPARE)
    if _k in _COMPARE:
        case(f"broadcast_{_k}", [U(2, 3), U(3)], {}, _f)
ELEMWISE = {"elemwise_add": "add", "elemwise_sub": "sub", "elemwise_mul": "mul", "elemwise_div": "div",
            "_maximum": "maximum", "_minimum": "minimum", "_power": "power", "_mod": "mod",
            "_equal": "equal", "_not_equal": "not_equal", "_greater": "greater",
            "_greater_equal": "greater_equal", "_lesser": "lesser", "_lesser_equal": "lesser_equal"}
for _name, _k in ELEMWISE.items():
    _f, _ma, _mb = BINARY[_k]
    case(_name, [_ma(2, 3), _mb(2, 3)], {}, _f, fd=_k not in _COMPARE)
    if _k in _COMPARE:
        case(_name, [U(2, 3), U(2, 3)], {}, _f)
# mod takes the divisor's sign (MXNet, like Python's %), and is 0 where the divisor is 0
case("broadcast_mod", [np.array([5.5, -5.5, 5.5, -5.5, 3.0]), np.array([2.0, 2.0, -2.0, -2.0, 0.0])], {},
     lambda a, b: np.array([1.5, 0.5, -0.5, -1.5, 0.0]), fd=False)

# -- array-scalar -------------------------------------------------------------------------------
SCALAR = {
    "_plus_scalar": (lambda x, s: x + s, U, 1.5), "_minus_scalar": (lambda x, s: x - s, U, 1.5),
    "_rminus_scalar": (lambda x, s: s - x, U, 1.5), "_mul_scalar": (lambda x, s: x * s, U, -2.5),
    "_div_scalar": (lambda x, s: x / s, U, -2.5), "_rdiv_scalar": (lambda x, s: s / x, A, 1.5),
    "_power_scalar": (lambda x, s: x ** s, _POS, 2.5), "_rpower_scalar": (lambda x, s: s ** x, U, 1.7),
    "_mod_scalar": (_mxmod, lambda *s: U(*s, lo=-5, hi=5), 1.3),
    "_rmod_scalar": (lambda x, s: _mxmod(s, x), A, 3.3),
    "_maximum_scalar": (lambda x, s: np.where(x > s, x, s), A, 0.1), "_minimum_scalar": (lambda x, s: np.where(x < s, x, s), A, 0.1),
    "_equal_scalar": (lambda x, s: (x == s) * 1.0, I, 1.0), "_not_equal_scalar": (lambda x, s: (x != s) * 1.0, I, 1.0),
    "_greater_scalar": (lambda x, s: (x > s) * 1.0, I, 1.0), "_greater_equal_scalar": (lambda x, s: (x >= s) * 1.0, I, 1.0),
    "_lesser_scalar": (lambda x, s: (x < s) * 1.0, I, 1.0), "_lesser_equal_scalar": (lambda x, s: (x <= s) * 1.0, I, 1.0),
}
for _name, (_f, _mk, _s) in SCALAR.items():
    case(_name, [_mk(2, 3)], {"scalar": _s}, lambda x, _f=_f, _s=_s: _f(x, _s), fd=_mk is not I)
    if _mk is I:
        case(_name, [U(2, 3)], {"scalar": 0.3}, lambda x, _f=_f: _f(x, 0.3))
case("_rmod_scalar", [np.array([2.0, -2.0, 0.0])], {"scalar": -5.5}, lambda x: np.array([0.5, -1.5, 0.0]), fd=False)

# -- where, clip, Cast, Activation, LeakyReLU ---------------------------------------------------
case("where", [I(2, 3, n=2), U(2, 3), U(2, 3)], {}, lambda c, x, y: np.where(c != 0, x, y), wrt=(1, 2))
case("where", [np.array([1.0, 0.0]), U(2, 3), U(2, 3)], {}, lambda c, x, y: np.where(c[:, None] != 0, x, y), wrt=(1, 2))
case("clip", [A(3, 4)], {"a_min": -0.5, "a_max": 0.7}, lambda x: np.minimum(np.maximum(x, -0.5), 0.7))
case("Cast", [U(2, 3)], {"dtype": "float64"}, lambda x: x, f32=False)
case("Cast", [U(2, 3) * 10], {"dtype": "int32"}, lambda x: np.trunc(x).astype(np.int32), fd=False)
for _t, _f in {"relu": lambda x: x * (x > 0), "sigmoid": _SIG, "tanh": np.tanh,
               "softrelu": lambda x: np.log1p(np.exp(x)), "softsign": lambda x: x / (1 + abs(x))}.items():
    case("Activation", [A(2, 3)], {"act_type": _t}, _f)
_SELU_A, _SELU_L = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
for _t, _attrs, _f in [
        ("leaky", {"slope": 0.1}, lambda x: np.where(x > 0, x, 0.1 * x)),
        ("rrelu", {}, lambda x: np.where(x > 0, x, x * (0.125 + 0.334) / 2)),
        ("elu", {"slope": 0.7}, lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
        ("selu", {}, lambda x: _SELU_L * np.where(x > 0, x, _SELU_A * (np.exp(x) - 1))),
        ("gelu", {}, lambda x: 0.5 * x * (1 + _vec(math.erf)(x / math.sqrt(2))))]:
    case("LeakyReLU", [A(2, 3)], {"act_type": _t, **_attrs}, _f)
case("LeakyReLU", [A(2, 3, 2), U(3, lo=0.1, hi=0.5)], {"act_type": "prelu"},
     lambda x, g: np.where(x > 0, x, x * g[None, :, None]))
case("LeakyReLU", [A(2, 3), U(1, lo=0.1, hi=0.5)], {"act_type": "prelu"}, lambda x, g: np.where(x > 0, x, x * g[0]))

# -- reductions -----------------------------------------------------------------------------------
for _name, _f in {"sum": np.sum, "mean": np.mean, "prod": np.prod, "max": np.max, "min": np.min}.items():
    _mk = (lambda *s: U(*s, lo=0.5, hi=1.5)) if _name == "prod" else D
    # a full reduction gives shape (1,) (MXNet 1.x), not numpy's 0-d
    case(_name, [_mk(2, 3, 2)], {}, lambda x, _f=_f: _f(x).reshape(1))
    case(_name, [_mk(2, 3, 2)], {"axis": 1}, lambda x, _f=_f: _f(x, axis=1))
    case(_name, [_mk(2, 3, 2)], {"axis": (0, 2), "keepdims": True}, lambda x, _f=_f: _f(x, axis=(0, 2), keepdims=True))
    case(_name, [_mk(2, 3, 2)], {"axis": 1, "exclude": True}, lambda x, _f=_f: _f(x, axis=(0, 2)))
case("_sum_to", [U(2, 3, 4)], {"shape": (3, 1)}, lambda x: x.sum(axis=(0, 2)).reshape(3, 1))
case("norm", [A(2, 3)], {}, lambda x: np.sqrt((x * x).sum()).reshape(1))
case("norm", [A(2, 3)], {"ord": 1, "axis": 1}, lambda x: np.abs(x).sum(1))
case("norm", [A(2, 3, 2)], {"axis": (0, 2), "keepdims": True}, lambda x: np.sqrt((x * x).sum((0, 2), keepdims=True)))
for _name, _f in {"argmax": np.argmax, "argmin": np.argmin}.items():
    case(_name, [D(3, 4)], {"axis": 1}, lambda x, _f=_f: _f(x, 1).astype(x.dtype))
    case(_name, [D(3, 4)], {"axis": 0, "keepdims": True}, lambda x, _f=_f: _f(x, 0)[None, :].astype(x.dtype))
    case(_name, [D(3, 4)], {}, lambda x, _f=_f: np.array([_f(x.ravel())], x.dtype))
    # ties: the first position; NaN: the first NaN (numpy's rule); a middle axis; int32 data
    case(_name, [np.array([[1.0, 3.0, 3.0, -2.0], [np.nan, 0.0, np.nan, 5.0], [-1.0, -1.0, 4.0, -1.0]])],
         {"axis": 1}, lambda x, _f=_f: _f(x, 1).astype(x.dtype), fd=False)
    case(_name, [D(2, 5, 3)], {"axis": -2, "keepdims": True},
         lambda x, _f=_f: _f(x, 1)[:, None, :].astype(x.dtype))
    case(_name, [np.array([[4, -7, 9], [9, 2, -7]], np.int32)], {"axis": 0},
         lambda x, _f=_f: _f(x, 0).astype(np.int32), fd=False)
case("norm", [A(3, 4, 2)], {"ord": 1}, lambda x: np.abs(x).sum().reshape(1))
case("norm", [A(3, 4, 2)], {"axis": (1,), "keepdims": True}, lambda x: np.sqrt((x * x).sum(1, keepdims=True)))
case("norm", [np.zeros((2, 3))], {"axis": 1}, lambda x: np.zeros(2), fd=False)

# -- matrix products -------------------------------------------------------------------------------
case("dot", [U(2, 3), U(3, 4)], {}, lambda a, b: np.einsum("ik,kj->ij", a, b))
case("dot", [U(3, 2), U(3, 4)], {"transpose_a": True}, lambda a, b: np.einsum("ki,kj->ij", a, b))
case("dot", [U(2, 3), U(4, 3)], {"transpose_b": True}, lambda a, b: np.einsum("ik,jk->ij", a, b))
case("dot", [U(3, 2), U(4, 3)], {"transpose_a": True, "transpose_b": True}, lambda a, b: np.einsum("ki,jk->ij", a, b))
case("dot", [U(3), U(3, 2)], {}, lambda a, b: np.einsum("k,kj->j", a, b))
case("dot", [U(2, 2, 3), U(3, 2)], {}, lambda a, b: np.einsum("abk,kj->abj", a, b))
for _ta in (False, True):
    for _tb in (False, True):
        case("batch_dot", [U(2, 3, 2) if _ta else U(2, 2, 3), U(2, 4, 3) if _tb else U(2, 3, 4)],
             {"transpose_a": _ta, "transpose_b": _tb},
             lambda a, b, _ta=_ta, _tb=_tb: np.einsum(("bki" if _ta else "bik") + "," + ("bjk" if _tb else "bkj") + "->bij", a, b))
case("FullyConnected", [U(2, 3), U(4, 3), U(4)], {"num_hidden": 4}, lambda x, w, b: np.einsum("nk,hk->nh", x, w) + b)
case("FullyConnected", [U(2, 3, 2), U(4, 6)], {"num_hidden": 4, "no_bias": True},
     lambda x, w: np.einsum("nk,hk->nh", x.reshape(2, 6), w))
case("FullyConnected", [U(2, 3, 2), U(4, 2), U(4)], {"num_hidden": 4, "flatten": False},
     lambda x, w, b: np.einsum("abk,hk->abh", x, w) + b)

# -- shape ---------------------------------------------------------------------------------------
for _spec, _rev, _want in [((3, -1), False, (3, 8)), ((0, -1), False, (2, 12)), ((-2,), False, (2, 3, 4)),
                           ((-3, 4), False, (6, 4)), ((-4, 1, 2, -2), False, (1, 2, 3, 4)),
                           ((0, -4, -1, 3, 4), False, (2, 1, 3, 4)), ((-1, 0), True, (6, 4)),
                           ((2, 0, -1), False, (2, 3, 4))]:
    case("Reshape", [U(2, 3, 4)], {"shape": _spec, "reverse": _rev}, lambda x, _w=_want: x.reshape(_w))
case("Flatten", [U(2, 3, 2)], {}, lambda x: x.reshape(2, 6))
case("expand_dims", [U(2, 3)], {"axis": 1}, lambda x: x[:, None, :])
case("expand_dims", [U(2, 3)], {"axis": -1}, lambda x: x[:, :, None])
case("transpose", [U(2, 3, 4)], {}, lambda x: np.einsum("abc->cba", x))
case("transpose", [U(2, 3, 4)], {"axes": (1, 2, 0)}, lambda x: np.einsum("abc->bca", x))
case("broadcast_to", [U(3, 1)], {"shape": (2, 3, 4)}, lambda x: x[None] * np.ones((2, 3, 4)))
case("broadcast_to", [U(1, 3)], {"shape": (2, 0)}, lambda x: x * np.ones((2, 3)))
case("squeeze", [U(1, 3, 1)], {}, lambda x: x.reshape(3))
case("squeeze", [U(1, 3, 1)], {"axis": 2}, lambda x: x.reshape(1, 3))
case("SwapAxis", [U(2, 3, 4)], {"dim1": 0, "dim2": 2}, lambda x: np.einsum("abc->cba", x))
case("broadcast_axis", [U(2, 1, 1)], {"axis": (1, 2), "size": (3, 2)}, lambda x: x * np.ones((2, 3, 2)))
case("broadcast_like", [U(1, 3), U(2, 3)], {}, lambda a, b: a * np.ones((2, 3)), wrt=(0,))
case("broadcast_like", [U(2, 1), U(4, 5)], {"lhs_axes": (1,), "rhs_axes": (0,)}, lambda a, b: a * np.ones((2, 4)), wrt=(0,))
case("tile", [U(2, 3)], {"reps": (2, 2)}, lambda x: np.block([[x, x], [x, x]]))
case("tile", [U(3)], {"reps": (2, 2)}, lambda x: np.array([np.concatenate([x, x])] * 2))
case("repeat", [U(2, 3)], {"repeats": 2, "axis": 1}, lambda x: x[:, [0, 0, 1, 1, 2, 2]])
case("repeat", [U(2, 2)], {"repeats": 3}, lambda x: np.array([v for v in x.ravel() for _ in range(3)]))

# -- indexing, slicing, joining ---------------------------------------------------------------
case("slice", [U(4, 5)], {"begin": (1, 0), "end": (3, 5)}, lambda x: x[1:3, 0:5])
case("slice", [U(4, 5)], {"begin": (None, 4), "end": (None, None), "step": (2, -2)}, lambda x: x[::2, 4::-2])
case("slice", [U(4, 5, 2)], {"begin": (-3,), "end": (-1,)}, lambda x: x[1:3])
case("_slice_assign", [U(4, 5), U(2, 5)], {"begin": (1, 0), "end": (3, 5)},
     lambda a, b: np.concatenate([a[:1], b, a[3:]]))
case("_slice_assign_scalar", [U(4, 3)], {"begin": (None, 1), "end": (None, 2), "scalar": 2.5},
     lambda x: np.stack([x[:, 0], np.full(4, 2.5), x[:, 2]], axis=1))
case("slice_axis", [U(3, 5)], {"axis": 1, "begin": 1, "end": -1}, lambda x: x[:, 1:4])
case("slice_axis", [U(3, 5)], {"axis": 0, "begin": 1, "end": None}, lambda x: x[1:])
case("slice_like", [U(4, 5), U(2, 3)], {}, lambda x, y: x[:2, :3], wrt=(0,))
case("slice_like", [U(4, 5), U(2, 3)], {"axes": (1,)}, lambda x, y: x[:, :3], wrt=(0,))
case("take", [U(4, 3), np.array([[0.0, 3.0], [3.0, 1.0]])], {}, lambda a, i: a[i.astype(int)], wrt=(0,))
case("take", [U(2, 4), np.array([-1.0, 5.0, 2.0])], {"axis": 1, "mode": "wrap"},
     lambda a, i: a[:, [3, 1, 2]], wrt=(0,))
case("take", [U(2, 4), np.array([-1.0, 5.0, 2.0])], {"axis": -1}, lambda a, i: a[:, [0, 3, 2]], wrt=(0,))
case("_backward_take", [U(3, 2), np.array([2.0, 0.0, 2.0])], {"axis": 0, "shape": (4, 2)},
     lambda g, i: np.stack([g[1], 0 * g[0], g[0] + g[2], 0 * g[0]]), wrt=(0,))
case("pick", [U(3, 4), np.array([0.0, 3.0, 1.0])], {}, lambda x, i: x[[0, 1, 2], [0, 3, 1]], wrt=(0,))
case("pick", [U(3, 4), np.array([0.0, 2.0, 5.0, 1.0])], {"axis": 0, "keepdims": True},
     lambda x, i: x[[0, 2, 2, 1], [0, 1, 2, 3]][None, :], wrt=(0,))
case("pick", [U(2, 4), np.array([-1.0, 6.0])], {"mode": "wrap"}, lambda x, i: x[[0, 1], [3, 2]], wrt=(0,))
case("one_hot", [np.array([1.0, 0.0, 2.0, 5.0])], {"depth": 3},
     lambda i: np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32), wrt=())
# fractions truncate (-0.5 names class 0), NaN/inf/negative/too large name none; int indices, int output
case("one_hot", [np.array([[2.9, -0.5], [np.nan, np.inf], [-1.0, 3.0]])], {"depth": 4, "on_value": 2.5, "off_value": -1.0},
     lambda i: np.array([[[-1, -1, 2.5, -1], [2.5, -1, -1, -1]], [[-1] * 4, [-1] * 4], [[-1] * 4, [-1, -1, -1, 2.5]]],
                        np.float32), wrt=())
case("one_hot", [np.array([0, 3, -2, 1], np.int64)], {"depth": 3, "on_value": 5.0, "dtype": "int32"},
     lambda i: np.array([[5, 0, 0], [0, 0, 0], [0, 0, 0], [0, 5, 0]], np.int32), wrt=())
case("Concat", [U(2, 1), U(2, 3)], {"num_args": 2, "dim": 1}, lambda a, b: np.hstack([a, b]))
case("Concat", [U(1, 2), U(2, 2), U(1, 2)], {"num_args": 3, "dim": 0}, lambda a, b, c: np.vstack([a, b, c]))
case("stack", [U(2, 3), U(2, 3)], {"num_args": 2, "axis": 1}, lambda a, b: np.array([a.T, b.T]).transpose(2, 0, 1))
case("stack", [U(3), U(3), U(3)], {"num_args": 3}, lambda a, b, c: np.array([a, b, c]))
case("add_n", [U(2, 3), U(2, 3), U(2, 3)], {"num_args": 3}, lambda a, b, c: a + b + c)
case("split", [U(2, 6)], {"num_outputs": 3}, lambda x: (x[:, :2], x[:, 2:4], x[:, 4:]))
case("split", [U(3, 2)], {"num_outputs": 3, "axis": 0, "squeeze_axis": True}, lambda x: (x[0], x[1], x[2]))
case("_basic_index", [U(3, 4)], {"key": (("s", 1, None, None), ("i", 2))}, lambda x: x[1:, 2])
case("_basic_index", [U(3, 4)], {"key": (("n",), ("e",), ("s", None, None, -2))}, lambda x: x[None, :, ::-2])
case("_basic_index_backward", [U(2), U(3, 4)], {"key": (("s", 1, None, None), ("i", 2))},
     lambda g, like: np.pad(g[:, None], ((1, 0), (2, 1))), wrt=(0,))

# -- nn, losses ------------------------------------------------------------------------------------
def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


case("softmax", [U(2, 4)], {}, lambda x: _softmax(x, -1))
case("softmax", [U(3, 2)], {"axis": 0, "temperature": 2.0}, lambda x: _softmax(x / 2, 0))
case("log_softmax", [U(2, 4)], {}, lambda x: np.log(_softmax(x, -1)))
case("log_softmax", [U(3, 2)], {"axis": 0, "temperature": 0.5}, lambda x: np.log(_softmax(x * 2, 0)))
case("softmax_cross_entropy", [U(3, 4), np.array([0.0, 3.0, 1.0])], {},
     lambda x, y: np.array([-np.log(_softmax(x, 1))[[0, 1, 2], [0, 3, 1]].sum()]), wrt=(0,))
case("smooth_l1", [U(3, 4, lo=-3, hi=3)], {"scalar": 1.0},
     lambda x: np.where(abs(x) < 1, 0.5 * x * x, abs(x) - 0.5))
case("smooth_l1", [U(3, 4)], {"scalar": 2.0}, lambda x: np.where(abs(x) < 0.25, 2 * x * x, abs(x) - 0.125))
case("_copy", [U(2, 3)], {}, lambda x: x)
case("_CrossDeviceCopy", [U(2, 3)], {"device": "cpu(1)"}, lambda x: x)
case("BlockGrad", [U(2, 3)], {}, lambda x: x)
case("make_loss", [U(2, 3)], {}, lambda x: x, fd=False)
case("MakeLoss", [U(2, 3)], {"grad_scale": 2.0, "normalization": "batch"}, lambda x: x, fd=False)
case("Dropout", [U(2, 3)], {"p": 0.5}, lambda x: x)


def _check_dropout(outs, ins):
    y, x = outs[0], ins[0]
    kept = y != 0
    assert 0 < kept.sum() < y.size
    np.testing.assert_allclose(y[kept], x[kept] / 0.5, rtol=1e-6)


case("Dropout", [U(20, 30)], {"p": 0.5}, check=_check_dropout, training=True, f32=False)

# -- creation --------------------------------------------------------------------------------------
case("_zeros", [], {"shape": (2, 3)}, lambda: np.zeros((2, 3), np.float32))
case("_ones", [], {"shape": (2,), "dtype": "int32"}, lambda: np.array([1, 1], np.int32))
case("_full", [], {"shape": (2, 2), "value": 3.5, "dtype": "float64"}, lambda: 3.5 * np.ones((2, 2)))
case("_arange", [], {"start": 1.0, "stop": 4.0}, lambda: np.array([1, 2, 3], np.float32))
case("_arange", [], {"start": 3.0}, lambda: np.array([0, 1, 2], np.float32))
case("_arange", [], {"start": 0.0, "stop": 2.0, "step": 0.5, "repeat": 2},
     lambda: np.array([0, 0, .5, .5, 1, 1, 1.5, 1.5], np.float32))
case("zeros_like", [U(2, 3)], {}, lambda x: 0 * x)
case("ones_like", [U(2, 3)], {}, lambda x: 0 * x + 1)


# -- random: statistical checks on seeded draws -----------------------------------------------------
def _stats(mean, std, lo=-np.inf, hi=np.inf, integer=False):
    def check(outs, ins):
        y = outs[0].astype(np.float64)
        assert y.min() >= lo and y.max() <= hi, (y.min(), y.max())
        assert abs(y.mean() - mean) < 4 * std / math.sqrt(y.size) + 1e-9, (y.mean(), mean)
        assert abs(y.std() - std) < 0.1 * std, (y.std(), std)
        if integer:
            assert np.all(y == np.round(y))
    return check


_N = (4000,)
case("_random_uniform", [], {"shape": _N, "low": -1.0, "high": 3.0}, check=_stats(1.0, 4 / math.sqrt(12), -1, 3))
case("_random_normal", [], {"shape": _N, "loc": 1.0, "scale": 2.0}, check=_stats(1.0, 2.0))
case("_random_exponential", [], {"shape": _N, "lam": 4.0}, check=_stats(0.25, 0.25, 0))
case("_random_gamma", [], {"shape": _N, "alpha": 9.0, "beta": 0.5}, check=_stats(4.5, 1.5, 0))
case("_random_poisson", [], {"shape": _N, "lam": 4.0}, check=_stats(4.0, 2.0, 0, integer=True))
case("_random_randint", [], {"shape": _N, "low": -2, "high": 3}, check=_stats(0.0, math.sqrt(2.0), -2, 2, integer=True))


def _check_multinomial(outs, ins):
    idx, p = outs[0], ins[0]
    assert idx.shape == (2, 3000)
    for row, probs in zip(idx, p):
        freq = np.bincount(row, minlength=3) / row.size
        np.testing.assert_allclose(freq, probs, atol=0.04)


def _check_multinomial_prob(outs, ins):
    idx, logp = outs
    np.testing.assert_allclose(logp, np.log(ins[0][np.arange(2)[:, None], idx]), rtol=1e-6)


def _check_shuffle(outs, ins):
    y, x = outs[0], ins[0]
    assert sorted(map(tuple, y)) == sorted(map(tuple, x)) and not np.array_equal(y, x)


_P = np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])
case("_sample_multinomial", [_P], {"shape": (3000,)}, check=_check_multinomial, f32=False)
case("_sample_multinomial", [_P], {"shape": (4,), "get_prob": True}, check=_check_multinomial_prob, f32=False)
case("_shuffle", [np.arange(40.0).reshape(20, 2)], {}, check=_check_shuffle)

# Exempt from the finite-difference check, with the reason.
FD_EXEMPT = {
    "one_hot": "its only input holds indices: nothing differentiable flows into it",
    "BlockGrad": "blocks the gradient by definition (tested on its own)",
    "make_loss": "its gradient is ones by definition, whatever the head gradient (tested on its own)",
    "MakeLoss": "its gradient is a scaled constant by definition (tested on its own)",
    "_sample_multinomial": "random: each evaluation draws new classes (REINFORCE rule tested on its own)",
}


# -- RNN (MXNet's fused op), its BPTT gradient, and _rnn_param_concat ------------------------------
# The reference below is written from MXNet's documented formulas, one sample and one step at a
# time with column vectors, independent of the vectorised one in ops/declarations/rnn.py. It reads
# the flat parameter vector with a cursor in cuDNN's order: all weights (layer, direction, W_i2h
# then W_h2h), then all biases in the same order.
def rnn_loop_reference(x, params, h0, c0, mode, layers, bidirectional, hidden, clip=None):
    gates = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}[mode]
    dirs = 2 if bidirectional else 1
    seq, batch, feat = x.shape
    cursor = [0]

    def take(rows, cols=None):
        n = rows * (cols or 1)
        block = params[cursor[0]:cursor[0] + n]
        cursor[0] += n
        return block.reshape(rows, cols) if cols else block

    mats = [(take(gates * hidden, feat if l == 0 else dirs * hidden), take(gates * hidden, hidden))
            for l in range(layers) for _ in range(dirs)]
    biases = [(take(gates * hidden), take(gates * hidden)) for _ in range(layers * dirs)]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    hy, cy = np.zeros_like(h0), np.zeros_like(h0)
    inp = x
    for l in range(layers):
        out = np.zeros((seq, batch, dirs * hidden))
        for d in range(dirs):
            row = l * dirs + d
            (wi, wh), (bi, bh) = mats[row], biases[row]
            for b in range(batch):
                h, c = h0[row, b].copy(), (c0[row, b].copy() if c0 is not None else None)
                for t in (reversed(range(seq)) if d == 1 else range(seq)):
                    gx = wi @ inp[t, b] + bi
                    gh = wh @ h + bh
                    blk = lambda v, k: v[k * hidden:(k + 1) * hidden]  # noqa: E731
                    if mode == "lstm":
                        i, f = sig(blk(gx, 0) + blk(gh, 0)), sig(blk(gx, 1) + blk(gh, 1))
                        g, o = np.tanh(blk(gx, 2) + blk(gh, 2)), sig(blk(gx, 3) + blk(gh, 3))
                        c = f * c + i * g
                        if clip is not None:
                            c = np.minimum(np.maximum(c, clip[0]), clip[1])
                        h = o * np.tanh(c)
                    elif mode == "gru":
                        r, z = sig(blk(gx, 0) + blk(gh, 0)), sig(blk(gx, 1) + blk(gh, 1))
                        n = np.tanh(blk(gx, 2) + r * blk(gh, 2))
                        h = (1 - z) * n + z * h
                    else:
                        a = gx + gh
                        h = np.maximum(a, 0) if mode == "rnn_relu" else np.tanh(a)
                    out[t, b, d * hidden:(d + 1) * hidden] = h
                hy[row, b] = h
                if c is not None:
                    cy[row, b] = c
        inp = out
    return inp, hy, cy


def rnn_param_count(mode, layers, dirs, feat, hidden):
    gates = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}[mode]
    return sum(dirs * gates * hidden * ((feat if l == 0 else dirs * hidden) + hidden + 2) for l in range(layers))


def rnn_case_inputs(mode, layers, bidirectional, seq=3, batch=2, feat=3, hidden=2, scale=0.6, rng=None):
    """data, parameters, state (and state_cell); from `rng` when given (tests that must not
    depend on the order they run in), else from this table's generator."""
    dirs = 2 if bidirectional else 1
    draw = (lambda *s, lo, hi: rng.uniform(lo, hi, s)) if rng is not None else U
    ins = [draw(seq, batch, feat, lo=-1, hi=1),
           draw(rnn_param_count(mode, layers, dirs, feat, hidden), lo=-scale, hi=scale),
           draw(layers * dirs, batch, hidden, lo=-1, hi=1)]
    if mode == "lstm":
        ins.append(draw(layers * dirs, batch, hidden, lo=-1, hi=1))
    return ins


def _rnn_expect(mode, layers, bidirectional, hidden, state_outputs, clip=None):
    def expect(x, w, h0, *c0):
        out, hy, cy = rnn_loop_reference(x, w, h0, c0[0] if c0 else None, mode, layers, bidirectional, hidden, clip)
        if not state_outputs:
            return out
        return (out, hy, cy) if mode == "lstm" else (out, hy)
    return expect


for _mode in ("rnn_relu", "rnn_tanh", "lstm", "gru"):
    for _bi in (False, True):
        case("RNN", rnn_case_inputs(_mode, 2, _bi),
             {"mode": _mode, "state_size": 2, "num_layers": 2, "bidirectional": _bi, "state_outputs": True},
             _rnn_expect(_mode, 2, _bi, 2, True))
    case("RNN", rnn_case_inputs(_mode, 1, False, seq=4, feat=2, hidden=3),
         {"mode": _mode, "state_size": 3, "num_layers": 1}, _rnn_expect(_mode, 1, False, 3, False))
case("RNN", rnn_case_inputs("lstm", 1, True, scale=1.5),
     {"mode": "lstm", "state_size": 2, "num_layers": 1, "bidirectional": True, "state_outputs": True,
      "lstm_state_clip_min": -0.4, "lstm_state_clip_max": 0.5},
     _rnn_expect("lstm", 1, True, 2, True, clip=(-0.4, 0.5)))
# p > 0 outside training: no dropout, the hidden mask output is ones
case("RNN", rnn_case_inputs("gru", 2, False),
     {"mode": "gru", "state_size": 2, "num_layers": 2, "p": 0.5}, _rnn_expect("gru", 2, False, 2, False))


def _check_rnn_dropout(outs, ins):
    """Training with p > 0 drops some of layer 0's outputs: the result differs from the
    dropout-free one (the mask itself is checked in tests/ops/test_rnn_op.py)."""
    (out,) = outs
    clean = rnn_loop_reference(*ins, None, "rnn_tanh", 2, True, 2)[0]
    assert out.shape == clean.shape and np.all(np.abs(out) < 1)
    assert not np.allclose(out, clean)


case("RNN", rnn_case_inputs("rnn_tanh", 2, True, seq=8, batch=3),
     {"mode": "rnn_tanh", "state_size": 2, "num_layers": 2, "bidirectional": True, "p": 0.5},
     check=_check_rnn_dropout, training=True, f32=False)


def _rnn_backward_case(mode, bidirectional):
    """_backward_RNN's outputs against central differences of the loop reference."""
    attrs = {"mode": mode, "state_size": 2, "num_layers": 2, "bidirectional": bidirectional, "state_outputs": True}
    fwd = rnn_case_inputs(mode, 2, bidirectional)
    c0 = fwd[3] if mode == "lstm" else None
    outs = [o for o in rnn_loop_reference(*fwd[:3], c0, mode, 2, bidirectional, 2)][:3 if mode == "lstm" else 2]
    heads = [U(*o.shape) for o in outs]

    def loss(arrays):
        got = rnn_loop_reference(*arrays[:3], arrays[3] if mode == "lstm" else None, mode, 2, bidirectional, 2)
        return sum(float(np.sum(o * h)) for o, h in zip(got, heads))

    def check(results, ins):
        for k, g in enumerate(results):
            num = np.zeros_like(fwd[k])
            for idx in np.ndindex(*fwd[k].shape):
                arrs = [a.copy() for a in fwd]
                arrs[k][idx] += 1e-6
                up = loss(arrs)
                arrs[k][idx] -= 2e-6
                num[idx] = (up - loss(arrs)) / 2e-6
            np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8, err_msg=f"_backward_RNN {mode}: input {k}")

    case("_backward_RNN", fwd + outs + heads, attrs, check=check, f32=False)


_rnn_backward_case("lstm", True)
_rnn_backward_case("gru", False)
case("_rnn_param_concat", [U(6), U(4), U(2)], {"num_args": 3, "dim": 0}, lambda a, b, c: np.concatenate([a, b, c]))
case("_rnn_param_concat", [U(2, 3), U(1, 3)], {"num_args": 2, "dim": 0}, lambda a, b: np.concatenate([a, b]))

# -- convolution, pooling, normalisation, sequences, sorting (expectations: tests/ops/naive_nn.py) --
import naive_nn as NN  # noqa: E402


def _cv(x, w, b=None, **kw):
    return NN.conv(x, w, b, **kw)


# Convolution: 1-D/2-D/3-D, several stride/pad/dilate/group combinations (each also FD-checked)
_CONV = [
    ((1, 2, 5, 5), (2, 2, 3, 3), {}),
    ((2, 2, 6, 5), (4, 2, 3, 2), {"stride": (2, 1), "pad": (1, 0)}),
    ((1, 4, 6, 6), (4, 2, 2, 3), {"stride": (1, 2), "pad": (1, 1), "dilate": (2, 1), "num_group": 2}),
    ((1, 3, 7), (3, 1, 3), {"stride": (2,), "pad": (2,), "dilate": (2,), "num_group": 3}),
    ((1, 2, 3, 4, 3), (2, 2, 2, 2, 2), {"pad": (1, 0, 1)}),
]
for _xs, _ws, _a in _CONV:
    _kw = dict(stride=_a.get("stride", ()), pad=_a.get("pad", ()), dilate=_a.get("dilate", ()), groups=_a.get("num_group", 1))
    _attrs = {"kernel": _ws[2:], "num_filter": _ws[0], **_a}
    case("Convolution", [U(*_xs), U(*_ws), U(_ws[0])], _attrs, lambda x, w, b, _kw=_kw: _cv(x, w, b, **_kw))
    case("Convolution", [U(*_xs), U(*_ws)], {**_attrs, "no_bias": True}, lambda x, w, _kw=_kw: _cv(x, w, **_kw), fd=False)

# Deconvolution: the scatter definition (weight (C_in, F/group, *kernel))
_DECONV = [
    ((1, 2, 3, 3), (2, 3, 3, 3), {}),
    ((1, 2, 3, 2), (2, 2, 3, 2), {"stride": (2, 2), "pad": (1, 0), "adj": (1, 1)}),
    ((1, 4, 3, 3), (4, 1, 2, 2), {"stride": (2, 1), "dilate": (1, 2), "num_group": 2}),
    ((2, 2, 4), (2, 2, 3), {"stride": (3,), "pad": (1,), "adj": (2,)}),
]
for _xs, _ws, _a in _DECONV:
    _kw = dict(stride=_a.get("stride", ()), pad=_a.get("pad", ()), dilate=_a.get("dilate", ()),
               adj=_a.get("adj", ()), groups=_a.get("num_group", 1))
    _nf = _ws[1] * _a.get("num_group", 1)
    _attrs = {"kernel": _ws[2:], "num_filter": _nf, **_a}
    case("Deconvolution", [U(*_xs), U(*_ws), U(_nf)], {**_attrs, "no_bias": False},
         lambda x, w, b, _kw=_kw: NN.deconv(x, w, b, **_kw))
    case("Deconvolution", [U(*_xs), U(*_ws)], _attrs, lambda x, w, _kw=_kw: NN.deconv(x, w, **_kw), fd=False)
# target_shape picks pad and adj: out (7, 8) from a 3x4 input, kernel 3, stride 2
case("Deconvolution", [U(1, 1, 3, 4), U(1, 1, 3, 3)], {"kernel": (3, 3), "stride": (2, 2), "num_filter": 1,
                                                       "target_shape": (7, 8)},
     lambda x, w: NN.deconv(x, w, stride=(2, 2), pad=(0, 1), adj=(0, 1)), fd=False)

# the gradient operators: _conv_data_grad is a deconvolution with the convolution's geometry
case("_conv_data_grad", [U(1, 4, 3, 2), U(4, 1, 3, 3)],
     {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "num_group": 2, "in_spatial": (6, 4)},
     lambda g, w: NN.deconv(g, w, stride=(2, 2), pad=(1, 1), adj=(1, 1), groups=2))
case("_conv_weight_grad", [U(2, 2, 3, 2), U(2, 4, 6, 4)],
     {"kernel": (2, 3), "stride": (2, 1), "pad": (0, 0), "dilate": (1, 1), "num_group": 2},
     lambda g, x: NN.conv_weight_grad(g, x, (2, 3), stride=(2, 1), groups=2))
case("_conv_weight_grad", [U(1, 3, 3), U(1, 2, 5)], {"kernel": (2,), "stride": (2,), "pad": (1,), "dilate": (1,)},
     lambda g, x: NN.conv_weight_grad(g, x, (2,), stride=(2,), pad=(1,)))

# Pooling: distinct values (no ties within a finite-difference step)
_POOL = [
    ((1, 2, 5, 6), {"kernel": (2, 2), "stride": (2, 2)}),
    ((1, 2, 5, 6), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "pooling_convention": "full"}),
    ((1, 2, 5, 6), {"kernel": (3, 2), "stride": (2, 1), "pad": (1, 1), "pool_type": "avg", "pooling_convention": "full"}),
    ((1, 2, 5, 5), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "pool_type": "avg", "count_include_pad": False}),
    ((1, 2, 4, 5), {"kernel": (2, 3), "pad": (1, 0), "pool_type": "sum"}),
    ((1, 2, 4, 4), {"kernel": (2, 2), "pool_type": "lp", "p_value": 2}),
    ((1, 2, 4, 3), {"kernel": (1, 1), "global_pool": True, "pool_type": "avg", "pooling_convention": "full"}),
    ((2, 2, 3, 4), {"kernel": (1, 1), "global_pool": True}),
    ((1, 2, 7), {"kernel": (3,), "stride": (2,), "pool_type": "max"}),
    ((1, 2, 7), {"kernel": (3,), "stride": (2,), "pooling_convention": "same"}),
    ((1, 2, 7, 6), {"kernel": (3, 2), "stride": (2, 3), "pad": (1, 0), "pool_type": "avg",
                    "pooling_convention": "same"}),
    # (no window wholly in the padding: naive_nn divides 0 by 0 there, the reference by 1)
    ((1, 2, 5, 5), {"kernel": (2, 3), "stride": (2, 2), "pool_type": "avg",
                    "count_include_pad": False, "pooling_convention": "same"}),
    ((2, 1, 6, 5), {"kernel": (3, 3), "stride": (2, 2), "pool_type": "sum", "pooling_convention": "same"}),
    ((1, 2, 6, 8), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "pooling_convention": "same"}),
    ((1, 1, 3, 4, 4), {"kernel": (2, 2, 2), "stride": (1, 2, 2), "pad": (0, 1, 0), "pool_type": "avg"}),
]
for _xs, _a in _POOL:
    _kw = dict(kernel=_a["kernel"], pool_type=_a.get("pool_type", "max"), stride=_a.get("stride", ()),
               pad=_a.get("pad", ()), convention=_a.get("pooling_convention", "valid"),
               count_include_pad=_a.get("count_include_pad", True), global_pool=_a.get("global_pool", False),
               p_value=_a.get("p_value"))
    _mk = (lambda *s: U(*s, lo=0.5, hi=2.0)) if _kw["pool_type"] == "lp" else D
    case("Pooling", [_mk(*_xs)], _a, lambda x, _kw=_kw: NN.pool(x, **_kw))


def _scatter_max(g, x, kernel, stride):
    """Max pooling's gradient from the definition: each output's gradient goes to the first maximum."""
    out = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*g.shape):
        win = x[n, c, i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]]
        a, b = np.unravel_index(np.argmax(win), win.shape)
        out[n, c, i * stride[0] + a, j * stride[1] + b] += g[n, c, i, j]
    return out


_TIES = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 1.0, 3.0], [0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 5.0, 5.0]]]])
case("_pooling_grad", [U(1, 1, 2, 2), _TIES, NN.pool(_TIES, (2, 2), stride=(2, 2))],
     {"kernel": (2, 2), "stride": (2, 2)}, lambda g, x, y: _scatter_max(g, x, (2, 2), (2, 2)), wrt=(0,))
def _spread(g):
    """Average 2x2 pooling with stride 1 on 3x3, backwards: each output's gradient / 4 over its window."""
    out = np.zeros(g.shape[:2] + (3, 3))
    for i, j in np.ndindex(2, 2):
        out[:, :, i:i + 2, j:j + 2] += g[:, :, i:i + 1, j:j + 1] / 4
    return out


case("_pooling_grad", [U(1, 1, 2, 2), U(1, 1, 3, 3), U(1, 1, 2, 2)], {"kernel": (2, 2), "pool_type": "avg"},
     lambda g, x, y: _spread(g), wrt=(0,))


def _gather_max(h, x):
    """h at each 2x2 (stride 2) window's first maximum of x."""
    out = np.zeros(x.shape[:2] + (2, 2))
    for n, c, i, j in np.ndindex(*out.shape):
        win = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        a, b = np.unravel_index(np.argmax(win), (2, 2))
        out[n, c, i, j] = h[n, c, 2 * i + a, 2 * j + b]
    return out


case("_max_pool_gather", [U(1, 1, 4, 4), _TIES], {"kernel": (2, 2), "stride": (2, 2)}, _gather_max, wrt=(0,))

# BatchNorm: inference and training, fix_gamma both ways; outputs (out, mean, inv std, new moving stats)
_BN_IN = lambda c, *s: [U(*s), U(c, lo=0.5, hi=1.5), U(c), U(c), U(c, lo=0.5, hi=1.5)]  # noqa: E731
for _training in (False, True):
    for _fix in (True, False):
        # the mean and inverse-std outputs carry no gradient (MXNet blocks it): FD-check without them
        case("BatchNorm", _BN_IN(3, 4, 3, 2), {"fix_gamma": _fix, "output_mean_var": True, "eps": 1e-3},
             lambda x, g, b, m, v, _f=_fix, _t=_training: NN.batch_norm(x, g, b, m, v, fix_gamma=_f, training=_t)[:3],
             training=_training, fd=False)
        case("BatchNorm", _BN_IN(3, 4, 3, 2), {"fix_gamma": _fix},
             lambda x, g, b, m, v, _f=_fix, _t=_training: NN.batch_norm(x, g, b, m, v, fix_gamma=_f, training=_t)[0],
             training=_training, wrt=(0, 1, 2))
case("BatchNorm", _BN_IN(2, 2, 3, 2, 2), {"fix_gamma": False, "axis": -1, "momentum": 0.8, "eps": 1e-5},
     lambda x, g, b, m, v: NN.batch_norm(x, g, b, m, v, 1e-5, 0.8, False, True, axis=-1)[0], training=True, wrt=(0, 1, 2))
case("BatchNorm", _BN_IN(2, 3, 2), {"fix_gamma": False, "use_global_stats": True},
     lambda x, g, b, m, v: NN.batch_norm(x, g, b, m, v, fix_gamma=False)[0], training=True, wrt=(0, 1, 2))
case("_is_training", [U(2)], {}, lambda x: np.array([0.0]))
case("_is_training", [U(2)], {}, lambda x: np.array([1.0]), training=True)


def _ln(x, g, b, axis, eps):
    m = x.mean(axis, keepdims=True)
    s = np.sqrt(((x - m) ** 2).mean(axis, keepdims=True) + eps)
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - m) / s * g.reshape(shape) + b.reshape(shape), m, s


case("LayerNorm", [U(2, 3, 4), U(4), U(4)], {}, lambda x, g, b: _ln(x, g, b, -1, 1e-5)[0])
case("LayerNorm", [U(3, 4, 2), U(4), U(4)], {"axis": 1, "eps": 1e-3, "output_mean_var": True},
     lambda x, g, b: _ln(x, g, b, 1, 1e-3), fd=False)
case("LayerNorm", [U(3, 4, 2), U(4), U(4)], {"axis": 1, "eps": 1e-3}, lambda x, g, b: _ln(x, g, b, 1, 1e-3)[0])


def _inorm(x, g, b, eps):
    m = x.mean((2, 3), keepdims=True)
    v = ((x - m) ** 2).mean((2, 3), keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g[None, :, None, None] + b[None, :, None, None]


case("InstanceNorm", [U(2, 3, 2, 3), U(3), U(3)], {"eps": 1e-3}, lambda x, g, b: _inorm(x, g, b, 1e-3))


def _gnorm(x, g, b, G, eps):
    xr = x.reshape(x.shape[0], G, -1)
    m = xr.mean(2, keepdims=True)
    s = np.sqrt(((xr - m) ** 2).mean(2, keepdims=True) + eps)
    out = ((xr - m) / s * g[None, :, None] + b[None, :, None]).reshape(x.shape)
    return out, m[..., 0], s[..., 0]


case("GroupNorm", [U(2, 4, 3), U(2), U(2)], {"num_groups": 2, "output_mean_var": True},
     lambda x, g, b: _gnorm(x, g, b, 2, 1e-5), fd=False)
case("GroupNorm", [U(2, 4, 3), U(2), U(2)], {"num_groups": 2}, lambda x, g, b: _gnorm(x, g, b, 2, 1e-5)[0])
for _mode, _axes in (("instance", (1, 2, 3)), ("channel", (1,)), ("spatial", (2, 3))):
    case("L2Normalization", [U(2, 3, 2, 2)], {"mode": _mode, "eps": 1e-6},
         lambda x, _ax=_axes: x / np.sqrt((x * x).sum(_ax, keepdims=True) + 1e-6))

# SoftmaxOutput: forward is softmax; its gradient ignores the head gradient (tested in test_nn_ops.py)
case("SoftmaxOutput", [U(3, 4), np.array([0.0, 3.0, 1.0])], {}, lambda x, y: _softmax(x, 1), fd=False)
case("SoftmaxOutput", [U(2, 3, 2), I(2, 2)], {"multi_output": True}, lambda x, y: _softmax(x, 1), fd=False)
case("SoftmaxOutput", [U(2, 2, 3), I(2, 2)], {"preserve_shape": True}, lambda x, y: _softmax(x, -1), fd=False)

# Embedding, sequences
case("Embedding", [np.array([[0.0, 2.0], [3.0, 2.0]]), U(4, 3)], {"input_dim": 4, "output_dim": 3},
     lambda i, w: w[i.astype(int)], wrt=(1,))
_LEN = np.array([2.0, 4.0, 1.0])
case("SequenceMask", [U(4, 3, 2), _LEN], {"use_sequence_length": True, "value": -1.5},
     lambda x, n: np.where(np.arange(4)[:, None, None] < n[None, :, None], x, -1.5), wrt=(0,))
case("SequenceMask", [U(3, 4), _LEN], {"use_sequence_length": True, "axis": 1},
     lambda x, n: np.where(np.arange(4)[None, :] < n[:, None], x, 0.0), wrt=(0,))
case("SequenceMask", [U(2, 3)], {}, lambda x: x)
# compiled with the time step as a loop counter (runtime/index_kernels.py): fractional lengths
# truncate, lengths beyond T keep everything, negative and NaN lengths mask everything
case("SequenceMask", [U(5, 4, 3), np.array([2.7, 9.0, -1.0, np.nan])], {"use_sequence_length": True, "value": 7.0},
     lambda x, n: np.where(np.arange(5)[:, None, None] < np.array([2, 5, 0, 0])[None, :, None], x, 7.0), wrt=(0,))
case("SequenceMask", [U(3, 4, 2), np.array([3, 0, 1], np.int32)], {"use_sequence_length": True, "axis": 1},
     lambda x, n: np.where(np.arange(4)[None, :, None] < n[:, None, None], x, 0.0), wrt=(0,))
case("SequenceLast", [U(4, 3, 2), _LEN], {"use_sequence_length": True},
     lambda x, n: np.stack([x[int(n[b]) - 1, b] for b in range(3)]), wrt=(0,))
case("SequenceLast", [U(3, 4, 2), _LEN], {"use_sequence_length": True, "axis": 1},
     lambda x, n: np.stack([x[b, int(n[b]) - 1] for b in range(3)]), wrt=(0,))
case("SequenceLast", [U(4, 3)], {}, lambda x: x[-1])
case("SequenceReverse", [U(4, 3, 2), _LEN], {"use_sequence_length": True},
     lambda x, n: np.stack([np.concatenate([x[:int(n[b]), b][::-1], x[int(n[b]):, b]]) for b in range(3)], axis=1),
     wrt=(0,))
case("SequenceReverse", [U(4, 3)], {}, lambda x: x[::-1])

# sorting (distinct values: no ties)
case("topk", [D(3, 5)], {"k": 2, "ret_typ": "value"}, lambda x: -np.sort(-x, axis=-1)[:, :2])
case("topk", [D(4, 3)], {"k": 2, "axis": 0, "ret_typ": "both", "is_ascend": True},
     lambda x: (np.sort(x, axis=0)[:2], np.argsort(x, axis=0)[:2].astype(np.float32)), f32=False)
case("topk", [D(3, 4)], {"k": 3}, lambda x: np.argsort(-x, axis=-1)[:, :1 * 3].astype(np.float32))
case("topk", [D(2, 3)], {"k": 2, "ret_typ": "mask", "axis": None},
     lambda x: (x >= np.sort(x.reshape(-1))[-2]).astype(x.dtype))
case("sort", [D(3, 4)], {}, lambda x: np.sort(x, axis=-1))
case("sort", [D(3, 4)], {"axis": 0, "is_ascend": False}, lambda x: -np.sort(-x, axis=0))
case("argsort", [D(3, 4)], {}, lambda x: np.argsort(x, axis=-1).astype(np.float32))
case("argsort", [D(3, 4)], {"axis": None, "is_ascend": False, "dtype": "int32"},
     lambda x: np.argsort(-x.reshape(-1)).astype(np.int32))

# UpSampling, Pad
case("UpSampling", [U(1, 2, 2, 3)], {"scale": 2, "sample_type": "nearest"},
     lambda x: np.kron(x, np.ones((1, 1, 2, 2))))
case("UpSampling", [U(1, 2, 2, 2), U(1, 1, 4, 4)], {"scale": 2, "sample_type": "nearest", "num_args": 2},
     lambda a, b: np.concatenate([np.kron(a, np.ones((1, 1, 2, 2))), b], axis=1))
case("UpSampling", [U(1, 2, 1, 1), U(1, 2, 2, 2)], {"scale": 4, "num_args": 2, "multi_input_mode": "sum"},
     lambda a, b: np.kron(a, np.ones((1, 1, 4, 4))) + np.kron(b, np.ones((1, 1, 2, 2))))
_PW = (0, 0, 0, 0, 1, 2, 2, 1)
case("Pad", [U(1, 2, 3, 4)], {"mode": "constant", "pad_width": _PW, "constant_value": 0.5},
     lambda x: np.pad(x, ((0, 0), (0, 0), (1, 2), (2, 1)), constant_values=0.5))
case("Pad", [U(1, 2, 3, 4)], {"mode": "edge", "pad_width": _PW},
     lambda x: x[:, :, [0, 0, 1, 2, 2, 2]][:, :, :, [0, 0, 0, 1, 2, 3, 3]])
case("Pad", [U(1, 2, 3, 4)], {"mode": "reflect", "pad_width": _PW},
     lambda x: x[:, :, [1, 0, 1, 2, 1, 0]][:, :, :, [2, 1, 0, 1, 2, 3, 2]])
case("_pad_grad", [U(1, 2, 6, 7)], {"mode": "edge", "pad_width": _PW},
     lambda g: _fold(g, [0, 0, 1, 2, 2, 2], [0, 0, 0, 1, 2, 3, 3], 3, 4))


def _fold(g, rows, cols, n, m):
    """The adjoint of x -> x[rows][:, cols]: add each padded entry to the element it copied."""
    out = np.zeros(g.shape[:2] + (n, m))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[:, :, r, c] += g[:, :, i, j]
    return out


case("_pad_grad", [U(1, 1, 6, 7)], {"mode": "reflect", "pad_width": _PW},
     lambda g: _fold(g, [1, 0, 1, 2, 1, 0], [2, 1, 0, 1, 2, 3, 2], 3, 4))
case("_pad_grad", [U(1, 2, 6, 7)], {"mode": "constant", "pad_width": _PW}, lambda g: g[:, :, 1:4, 2:6])
# compiled as copies (graphc/ops/copy_pieces.py): 5-D, both bands of several axes, integers
case("Pad", [U(1, 2, 3, 4, 5)], {"mode": "reflect", "pad_width": (0, 0, 0, 0, 2, 1, 1, 3, 0, 2)},
     lambda x: np.pad(x, ((0, 0), (0, 0), (2, 1), (1, 3), (0, 2)), mode="reflect"))
case("Pad", [U(2, 1, 2, 3, 2)], {"mode": "edge", "pad_width": (0, 0, 0, 0, 3, 0, 0, 2, 1, 1)},
     lambda x: np.pad(x, ((0, 0), (0, 0), (3, 0), (0, 2), (1, 1)), mode="edge"))
case("Pad", [np.arange(24, dtype=np.int32).reshape(1, 2, 3, 4)],
     {"mode": "constant", "pad_width": (0, 0, 1, 0, 0, 2, 1, 1), "constant_value": 3.0},
     lambda x: np.pad(x, ((0, 0), (1, 0), (0, 2), (1, 1)), constant_values=3), fd=False)
case("tile", [U(2, 3)], {"reps": (2,)}, lambda x: np.concatenate([x, x], axis=1))
case("tile", [U(2, 1, 3)], {"reps": (2, 1, 3, 1)}, lambda x: np.tile(x, (2, 1, 3, 1)))
case("repeat", [U(2, 3, 2)], {"repeats": 2, "axis": -2}, lambda x: x[:, [0, 0, 1, 1, 2, 2]])
case("broadcast_like", [U(3, 1, 2), U(5, 4, 7)], {"lhs_axes": (1,), "rhs_axes": (1,)},
     lambda a, b: a * np.ones((3, 4, 2)), wrt=(0,))
case("UpSampling", [U(2, 1, 1, 2), U(2, 2, 3, 6)], {"scale": 3, "num_args": 2},
     lambda a, b: np.concatenate([np.kron(a, np.ones((1, 1, 3, 3))), b], axis=1))

FD_EXEMPT.update({
    "SoftmaxOutput": "a loss layer: its gradient ignores the head gradient by definition (tested on its own)",
    "argsort": "returns indices: piecewise constant, so no gradient flows into the data",
    "_is_training": "returns the run's training flag: a constant with no gradient",
})


def _adaptive(x, oh, ow):
    """Bins [floor(i H / oh), ceil((i + 1) H / oh)) averaged one output at a time."""
    H, W = x.shape[2:]
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i, j in np.ndindex(oh, ow):
        h0, h1 = (i * H) // oh, math.ceil((i + 1) * H / oh)
        w0, w1 = (j * W) // ow, math.ceil((j + 1) * W / ow)
        out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


case("_contrib_AdaptiveAvgPooling2D", [U(1, 2, 5, 7)], {"output_size": (3, 2)}, lambda x: _adaptive(x, 3, 2))
case("_contrib_AdaptiveAvgPooling2D", [U(2, 1, 4, 4)], {"output_size": 1}, lambda x: _adaptive(x, 1, 1))
case("_adaptive_avg_pool_grad", [U(1, 2, 3, 2)], {"in_size": (5, 7)},
     lambda g: sum(np.pad(np.full((1, 2, math.ceil((i + 1) * 5 / 3) - (i * 5) // 3, math.ceil((j + 1) * 7 / 2) - (j * 7) // 2),
                                  1.0) * g[:, :, i:i + 1, j:j + 1]
                          / ((math.ceil((i + 1) * 5 / 3) - (i * 5) // 3) * (math.ceil((j + 1) * 7 / 2) - (j * 7) // 2)),
                          ((0, 0), (0, 0), ((i * 5) // 3, 5 - math.ceil((i + 1) * 5 / 3)),
                           ((j * 7) // 2, 7 - math.ceil((j + 1) * 7 / 2))))
                   for i in range(3) for j in range(2)))


# MXNet 1.x compatibility round 2 (indexing by coordinates, linalg, array-parameter samplers):
# their cases live beside this file and append themselves to CASES and FD_EXEMPT
import op_cases_round2  # noqa: E402,F401
import op_cases_contrib  # noqa: E402,F401  (contrib operators and traced control flow's pieces)
import op_cases_stats_custom  # noqa: E402,F401  (nansum, moments, diag..., and Custom through a registered op)
import op_cases_gap  # noqa: E402,F401  (MXNet 1.x gap fillers: legacy outputs, updates, spatial, image)
