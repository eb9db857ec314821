"""Elementwise operators: unary math, binary (broadcast_*, elemwise_*, *_scalar), comparisons,
where, Cast, clip, Activation, LeakyReLU. Table-driven: a family shares one shape rule and its
members differ in their numpy reference, scalar formula and derivative."""
from __future__ import annotations

import math

import numpy as np

from .. import inverse_trig as _inverse_trig
from .. import scalar as S
from .. import special_formulas as _special
from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, Elementwise, register
from .common import broadcast_shape, same_dtype, like
from .special import gamma_np, gammaln_np, digamma_np, trigamma_np


def sum_to(F, g, shape):
    """Reduce a broadcast gradient back to an input's shape."""
    if tuple(g.shape) == tuple(shape):
        return g
    return F._sum_to(g, shape=tuple(shape))


def _erf_np(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def _round_np(x):
    # MXNet rounds half away from zero (numpy rounds half to even)
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(x.dtype)


# Formulas that stay finite where the textbook one overflows (found by compiling every op over
# extreme inputs, tests/ops/test_op_compiled.py): for |x| >= 2**28, sqrt(x*x + 1) is |x| to the
# last bit of a double, so asinh/acosh are log(2|x|) there, and x*x (which overflows from 1.8e19
# in float32) is never formed.
_LOG_BIG = 2.0 ** 28
_LN2 = math.log(2.0)


def _finfo(dtype):
    """numpy's limits of a float dtype; None for dtypes it does not know as floats (the
    formulas below then keep their textbook form)."""
    try:
        return np.finfo(dtype) if np.dtype(dtype).kind == "f" else None
    except TypeError:
        return None


def _exp_edge(x):
    """Above this |x|, exp(|x|) overflows though cosh/sinh (half of it) do not."""
    info = _finfo(x.dtype)
    return math.floor(math.log(float(info.max))) - 1.0 if info is not None else float("inf")


def _arcsinh_formula(x):
    # odd symmetry avoids the cancellation of log(x + sqrt(x*x + 1)) for negative x
    a = S.abs_(x)
    mid = S.log1p(a + x * x / (S.sqrt(x * x + 1.0) + 1.0))
    return S.sign(x) * S.select(a >= _LOG_BIG, S.log(a) + _LN2, mid)


def _arccosh_formula(x):
    # log1p(t + sqrt(t (t + 2))), t = x - 1: no cancellation of x*x - 1 near 1; sqrt(t) is NaN
    # for every x < 1 (also where t (t + 2) would be positive or overflow)
    t = x - 1.0
    return S.select(x >= _LOG_BIG, S.log(x) + _LN2, S.log1p(t + S.sqrt(t) * S.sqrt(t + 2.0)))


def _arctanh_formula(x):
    # on |x|: 1 - |x| is exact near 1, where log1p(2x / (1 - x)) for x near -1 loses digits
    a = S.abs_(x)
    return S.sign(x) * S.log1p(a * 2.0 / (1.0 - a)) * 0.5


def _cbrt_formula(x):
    # pow's exponent is 1/3 rounded, which is off by ln|x| * 2**-55 relatively (58 ulp at 1e300
    # in float64): one Newton step, written so that nothing overflows, brings it to about 1 ulp.
    # Zeros pass through with their sign, so that rcbrt(+-0) = 1 / cbrt(+-0) = +-inf.
    a = S.abs_(x)
    y = a ** (1.0 / 3.0)
    y = S.select(a < float("inf"), y + (a / (y * y) - y) * (1.0 / 3.0), y)
    return S.select(S.call("eq", x, S.const(0, x.dtype)), x, S.sign(x) * y)


def _cosh_formula(x):
    a = S.abs_(x)
    h = S.exp(a * 0.5)
    return S.select(a > _exp_edge(x), h * 0.5 * h, (S.exp(x) + S.exp(-x)) * 0.5)


def _sinh_formula(x):
    # expm1 keeps sinh accurate near zero, where exp(x) - exp(-x) cancels
    a = S.abs_(x)
    h = S.exp(a * 0.5)
    return S.select(a > _exp_edge(x), S.sign(x) * (h * 0.5 * h), (S.expm1(x) - S.expm1(-x)) * 0.5)


def _hypot_formula(a, b):
    """sqrt(a*a + b*b), rescaled by the larger magnitude where the squares overflow or fall
    into the subnormals (hypot's point is to avoid exactly that); an infinite side gives inf
    even beside a NaN (IEEE 754 and numpy)."""
    naive = S.sqrt(a * a + b * b)
    info = _finfo(a.dtype)
    if info is None:
        return naive
    inf = float("inf")
    m = S.maximum(S.abs_(a), S.abs_(b))
    r = S.minimum(S.abs_(a), S.abs_(b)) / m
    scaled = m * S.sqrt(r * r + 1.0)
    out_of_range = S.call("or", naive > float(info.max), naive < float(np.sqrt(info.tiny)) * 2.0 ** 26)
    rescale = S.call("and", out_of_range, S.call("and", m > 0.0, m < inf))
    either_inf = S.call("or", S.call("eq", S.abs_(a), S.const(inf, a.dtype)),
                        S.call("eq", S.abs_(b), S.const(inf, b.dtype)))
    return S.select(either_inf, inf, S.select(rescale, scaled, naive))


def _unary_infer(x, **_):
    return x


def _float_only(name):
    def infer(x, **_):
        return x
    return infer


# name: (numpy reference, scalar formula, gradient(F, x, y, g) or None for zero gradient)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
UNARY = {
    "negative": (np.negative, lambda x: -x, lambda F, x, y, g: -g),
    "abs": (np.abs, S.abs_, lambda F, x, y, g: g * F.sign(x)),
    "sign": (np.sign, S.sign, None),
    "exp": (np.exp, S.exp, lambda F, x, y, g: g * y),
    "log": (np.log, S.log, lambda F, x, y, g: g / x),
    "log1p": (np.log1p, S.log1p, lambda F, x, y, g: g / (x + 1.0)),
    "expm1": (np.expm1, S.expm1, lambda F, x, y, g: g * (y + 1.0)),
    "sqrt": (np.sqrt, S.sqrt, lambda F, x, y, g: g / (y * 2.0)),
    "rsqrt": (lambda x: (1 / np.sqrt(x)).astype(x.dtype), S.rsqrt, lambda F, x, y, g: g * (y * y * y) * -0.5),
    "square": (np.square, lambda x: x * x, lambda F, x, y, g: g * x * 2.0),
    "reciprocal": (np.reciprocal, lambda x: 1.0 / x, lambda F, x, y, g: -(g * y * y)),
    "sin": (np.sin, S.sin, lambda F, x, y, g: g * F.cos(x)),
    "cos": (np.cos, S.cos, lambda F, x, y, g: -(g * F.sin(x))),
    "tanh": (np.tanh, S.tanh, lambda F, x, y, g: g * (1.0 - y * y)),
    "sigmoid": (lambda x: (1 / (1 + np.exp(-x))).astype(x.dtype), S.sigmoid, lambda F, x, y, g: g * y * (1.0 - y)),
    # (relu's mask from its output: y > 0 exactly where x > 0, and y is what the backward keeps)
    "relu": (lambda x: np.maximum(x, 0).astype(x.dtype), lambda x: S.maximum(x, 0.0), lambda F, x, y, g: g * (y > 0.0)),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: x / (S.abs_(x) + 1.0),
                 lambda F, x, y, g: g / F.square(F.abs(x) + 1.0)),
    "softrelu": (lambda x: np.logaddexp(0, x).astype(x.dtype),
                 lambda x: S.maximum(x, 0.0) + S.log1p(S.exp(-S.abs_(x))),
                 lambda F, x, y, g: g * F.sigmoid(x)),
    "erf": (_erf_np, S.erf, lambda F, x, y, g: g * F.exp(-F.square(x)) * _TWO_OVER_SQRT_PI),
    "floor": (np.floor, S.floor, None),
    "ceil": (np.ceil, S.ceil, None),
    "round": (_round_np, S.round_, None),
    "trunc": (np.trunc, S.trunc, None),
    "fix": (np.fix, S.trunc, None),
    "log2": (np.log2, lambda x: S.log(x) * (1.0 / math.log(2.0)), lambda F, x, y, g: g / (x * math.log(2.0))),
    "log10": (np.log10, lambda x: S.log(x) * (1.0 / math.log(10.0)), lambda F, x, y, g: g / (x * math.log(10.0))),
    "tan": (np.tan, lambda x: S.sin(x) / S.cos(x), lambda F, x, y, g: g * (y * y + 1.0)),
    # through Cephes' arctan (graphc/ops/inverse_trig.py), accurate at the ends of [-1, 1]
    "arcsin": (np.arcsin, _inverse_trig.arcsin, lambda F, x, y, g: g * F.rsqrt(1.0 - x * x)),
    "arccos": (np.arccos, _inverse_trig.arccos, lambda F, x, y, g: -(g * F.rsqrt(1.0 - x * x))),
    "arctan": (np.arctan, _inverse_trig.arctan, lambda F, x, y, g: g / (x * x + 1.0)),
    "sinh": (np.sinh, _sinh_formula, lambda F, x, y, g: g * F.cosh(x)),
    "cosh": (np.cosh, _cosh_formula, lambda F, x, y, g: g * F.sinh(x)),
    "arcsinh": (np.arcsinh, _arcsinh_formula, lambda F, x, y, g: g * F.rsqrt(x * x + 1.0)),
    "arccosh": (np.arccosh, _arccosh_formula, lambda F, x, y, g: g * F.rsqrt(x * x - 1.0)),
    "arctanh": (np.arctanh, _arctanh_formula, lambda F, x, y, g: g / (1.0 - x * x)),
    "degrees": (np.degrees, lambda x: x * (180.0 / math.pi), lambda F, x, y, g: g * (180.0 / math.pi)),
    "radians": (np.radians, lambda x: x * (math.pi / 180.0), lambda F, x, y, g: g * (math.pi / 180.0)),
    "cbrt": (np.cbrt, _cbrt_formula, lambda F, x, y, g: g / (y * y * 3.0)),
    "rcbrt": (lambda x: 1.0 / np.cbrt(x), lambda x: 1.0 / _cbrt_formula(x),
              lambda F, x, y, g: -(g * y / (x * 3.0))),
    "logical_not": (lambda x: (x == 0).astype(x.dtype), lambda x: S.cast(S.logical_not(S.call("ne", x, S.const(0, x.dtype))), x.dtype), None),
    # special functions: gamma and gammaln host only (graphc/ops/special_formulas.py says why),
    # digamma/trigamma compiled for float inputs; the derivatives need them, declared here too
    "gamma": (gamma_np, None, lambda F, x, y, g: g * y * F._digamma(x)),
    "gammaln": (gammaln_np, None, lambda F, x, y, g: g * F._digamma(x)),
    "_digamma": (digamma_np, _special.digamma, lambda F, x, y, g: g * F._trigamma(x)),
    "_trigamma": (trigamma_np, _special.trigamma, None),
}


def _unary_grad(deriv):
    def grad(F, ins, outs, gs, attrs):
        x, y, g = ins[0], outs[0], gs[0]
        if deriv is None:
            return [None]
        return [deriv(F, x, y, g)]
    return grad


def _unary_compute(fn):
    def compute(x):
        with np.errstate(all="ignore"):
            return np.asarray(fn(x)).astype(x.dtype, copy=False)
    return compute


_APPLIES = {name: _special.float_only for name in ("_digamma", "_trigamma")}
_NO_DERIVATIVE = {"_trigamma"}  # its derivative (tetragamma) is not declared: refuse, not zero
for _name, (_np_fn, _formula, _deriv) in UNARY.items():
    register(OpDef(_name, infer=_unary_infer, compute=_unary_compute(_np_fn),
                   gradient=None if _name in _NO_DERIVATIVE else _unary_grad(_deriv), lowering=Elementwise(_formula, _APPLIES.get(_name)) if _formula else None,
                   doc=f"Elementwise {_name}."))


# -- binary with broadcasting ---------------------------------------------------------------

def _binary_infer(name):
    def infer(a, b, **_):
        dtype = same_dtype(name, a, b)
        return like(a, broadcast_shape(a.shape, b.shape, name), dtype)
    return infer


def _cmp(np_fn):
    return lambda a, b: np_fn(a, b).astype(np.result_type(a, b))


def _div_np(a, b):
    if a.dtype.kind in "iu":
        return np.floor_divide(a, np.where(b == 0, 1, b))
    with np.errstate(all="ignore"):
        return np.divide(a, b)


def _mod_np(a, b):
    # MXNet's mod takes the sign of the divisor (Python's %), and gives 0 where b == 0
    with np.errstate(all="ignore"):
        b = np.asarray(b, dtype=np.result_type(a, b))
        safe = np.where(b == 0, 1, b)
        return np.where(b == 0, 0, np.mod(a, safe)).astype(np.result_type(a, b), copy=False)


def _mod_formula(a, b):
    """Floor modulo from the vocabulary's C-style `mod` (fmod): shift by b when the signs of
    the remainder and the divisor differ."""
    zero = S.const(0, a.dtype)
    r = S.call("mod", a, b)
    fix = S.call("and", S.call("ne", r, zero), S.call("ne", S.call("lt", r, zero), S.call("lt", b, zero)))
    return S.select(S.call("eq", b, zero), zero, S.select(fix, r + b, r))


def _pow_np(a, b):
    with np.errstate(all="ignore"):
        return np.power(a, b)


def _sel_ge(F, a, b):
    return F.broadcast_greater_equal(a, b)


BINARY = {
    # name: (numpy, formula, grad(F, a, b, y, g) -> (ga, gb) before reduction, aliases)
    "broadcast_add": (np.add, lambda a, b: a + b, lambda F, a, b, y, g: (g, g), ("broadcast_plus",)),
    "broadcast_sub": (np.subtract, lambda a, b: a - b, lambda F, a, b, y, g: (g, -g), ("broadcast_minus",)),
    "broadcast_mul": (np.multiply, lambda a, b: a * b, lambda F, a, b, y, g: (g * b, g * a), ()),
    "broadcast_div": (_div_np, lambda a, b: a / b, lambda F, a, b, y, g: (g / b, -(g * y / b)), ()),
    "broadcast_mod": (_mod_np, _mod_formula,
                      lambda F, a, b, y, g: (g, -(g * F.floor(a / b))), ()),
    "broadcast_power": (_pow_np, lambda a, b: a ** b,
                        lambda F, a, b, y, g: (g * b * a ** (b - 1.0), g * y * F.log(a)), ()),
    "broadcast_maximum": (np.maximum, S.maximum,
                          lambda F, a, b, y, g: (g * F.broadcast_greater_equal(a, b), g * F.broadcast_lesser(a, b)), ()),
    "broadcast_minimum": (np.minimum, S.minimum,
                          lambda F, a, b, y, g: (g * F.broadcast_lesser_equal(a, b), g * F.broadcast_greater(a, b)), ()),
    "broadcast_hypot": (np.hypot, _hypot_formula,
                        lambda F, a, b, y, g: (g * a / y, g * b / y), ()),
}
COMPARE = {
    "broadcast_equal": (np.equal, "eq"), "broadcast_not_equal": (np.not_equal, "ne"),
    "broadcast_greater": (np.greater, "gt"), "broadcast_greater_equal": (np.greater_equal, "ge"),
    "broadcast_lesser": (np.less, "lt"), "broadcast_lesser_equal": (np.less_equal, "le"),
    "broadcast_logical_and": (np.logical_and, "and"), "broadcast_logical_or": (np.logical_or, "or"),
    "broadcast_logical_xor": (np.logical_xor, "xor"),
}


def _binary_grad(rule):
    def grad(F, ins, outs, gs, attrs):
        a, b = ins
        ga, gb = rule(F, a, b, outs[0], gs[0])
        return [sum_to(F, ga, a.shape), sum_to(F, gb, b.shape)]
    return grad


def _cmp_formula(op):
    def formula(a, b):
        if op in ("and", "or", "xor"):
            # logical ops look at truth values: xor(2, 1) is false although 2 != 1
            c = S.call("ne" if op == "xor" else op,
                       S.call("ne", a, S.const(0, a.dtype)), S.call("ne", b, S.const(0, b.dtype)))
        else:
            c = S.call(op, a, b)
        return S.cast(c, a.dtype)
    return formula


def _zero_grads(F, ins, outs, gs, attrs):
    return [None] * len(ins)


for _name, (_np_fn, _formula, _rule, _aliases) in BINARY.items():
    register(OpDef(_name, infer=_binary_infer(_name), compute=_np_fn, inputs=("lhs", "rhs"),
                   gradient=_binary_grad(_rule), lowering=Elementwise(_formula), aliases=_aliases))
for _name, (_np_fn, _sop) in COMPARE.items():
    register(OpDef(_name, infer=_binary_infer(_name), compute=_cmp(_np_fn), inputs=("lhs", "rhs"),
                   gradient=_zero_grads, lowering=Elementwise(_cmp_formula(_sop))))


# elemwise_*: the same arithmetic without broadcasting (MXNet's `a + b` on symbols)
def _same_shape_infer(name):
    def infer(a, b, **_):
        if a.shape != b.shape:
            raise ShapeError(f"{name}: shapes {a.shape} and {b.shape} differ (use broadcast_* to broadcast)")
        return like(a, dtype=same_dtype(name, a, b))
    return infer


ELEMWISE = {
    "elemwise_add": ("broadcast_add", ("_plus", "_add", "_Plus", "_grad_add")),
    "elemwise_sub": ("broadcast_sub", ("_minus", "_sub", "_Minus")),
    "elemwise_mul": ("broadcast_mul", ("_mul", "_Mul")),
    "elemwise_div": ("broadcast_div", ("_div", "_Div")),
    "_maximum": ("broadcast_maximum", ("_Maximum",)),
    "_minimum": ("broadcast_minimum", ("_Minimum",)),
    "_power": ("broadcast_power", ("_Power",)),
    "_mod": ("broadcast_mod", ("_Mod",)),
    "_equal": ("broadcast_equal", ()), "_not_equal": ("broadcast_not_equal", ()),
    "_greater": ("broadcast_greater", ()), "_greater_equal": ("broadcast_greater_equal", ()),
    "_lesser": ("broadcast_lesser", ()), "_lesser_equal": ("broadcast_lesser_equal", ()),
}
for _name, (_base, _aliases) in ELEMWISE.items():
    if _base in BINARY:
        _np_fn, _formula, _rule, _ = BINARY[_base]
        _grad = _binary_grad(_rule)
        _lower = Elementwise(_formula)
    else:
        _np_fn, _sop = COMPARE[_base]
        _np_fn, _grad, _lower = _cmp(_np_fn), _zero_grads, Elementwise(_cmp_formula(_sop))
    register(OpDef(_name, infer=_same_shape_infer(_name), compute=_np_fn, inputs=("lhs", "rhs"),
                   gradient=_grad, lowering=_lower, aliases=_aliases))


# -- array (op) scalar ------------------------------------------------------------------------

def _scalar_const(x, scalar):
    return S.const(scalar, x.dtype)


def _np_scalar(fn):
    def compute(x, scalar):
        s = np.asarray(scalar).astype(x.dtype)
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, s)).astype(x.dtype, copy=False)
    return compute


SCALAR = {
    # name: (numpy(x, s), formula(x, s), grad(F, x, y, g, s), aliases)
    "_plus_scalar": (np.add, lambda x, s: x + s, lambda F, x, y, g, s: g, ("_PlusScalar",)),
    "_minus_scalar": (np.subtract, lambda x, s: x - s, lambda F, x, y, g, s: g, ("_MinusScalar",)),
    "_rminus_scalar": (lambda x, s: s - x, lambda x, s: s - x, lambda F, x, y, g, s: -g, ("_RMinusScalar",)),
    "_mul_scalar": (np.multiply, lambda x, s: x * s, lambda F, x, y, g, s: g * s, ("_MulScalar",)),
    "_div_scalar": (_div_np, lambda x, s: x / s, lambda F, x, y, g, s: g / s, ("_DivScalar",)),
    "_rdiv_scalar": (lambda x, s: _div_np(s, x), lambda x, s: s / x, lambda F, x, y, g, s: -(g * y / x), ("_RDivScalar",)),
    "_power_scalar": (_pow_np, lambda x, s: x ** s, lambda F, x, y, g, s: g * s * x ** (s - 1.0), ("_PowerScalar",)),
    "_rpower_scalar": (lambda x, s: _pow_np(s, x), lambda x, s: s ** x, lambda F, x, y, g, s: g * y * math.log(s), ("_RPowerScalar",)),
    "_mod_scalar": (_mod_np, _mod_formula, lambda F, x, y, g, s: g, ("_ModScalar",)),
    "_rmod_scalar": (lambda x, s: _mod_np(s, x), lambda x, s: _mod_formula(s, x),
                     lambda F, x, y, g, s: -(g * F.floor(F._rdiv_scalar(x, scalar=s))), ("_RModScalar",)),
    "_maximum_scalar": (np.maximum, S.maximum, lambda F, x, y, g, s: g * (x >= s), ("_MaximumScalar",)),
    "_minimum_scalar": (np.minimum, S.minimum, lambda F, x, y, g, s: g * (x <= s), ("_MinimumScalar",)),
}
SCALAR_COMPARE = {
    "_equal_scalar": (np.equal, "eq"), "_not_equal_scalar": (np.not_equal, "ne"),
    "_greater_scalar": (np.greater, "gt"), "_greater_equal_scalar": (np.greater_equal, "ge"),
    "_lesser_scalar": (np.less, "lt"), "_lesser_equal_scalar": (np.less_equal, "le"),
}
_SCALAR_ATTRS = {"scalar": Attr("float", 1.0), "is_int": Attr("bool", True)}


def _scalar_grad(rule):
    def grad(F, ins, outs, gs, attrs):
        return [rule(F, ins[0], outs[0], gs[0], attrs["scalar"])]
    return grad


def _scalar_formula(fn):
    return lambda x, scalar, is_int=True: fn(x, _scalar_const(x, scalar))


for _name, (_np_fn, _formula, _rule, _aliases) in SCALAR.items():
    register(OpDef(_name, infer=_unary_infer, compute=lambda x, scalar, is_int=True, _f=_np_scalar(_np_fn): _f(x, scalar),
                   attrs=_SCALAR_ATTRS, gradient=_scalar_grad(_rule),
                   lowering=Elementwise(_scalar_formula(_formula)), aliases=_aliases))
for _name, (_np_fn, _sop) in SCALAR_COMPARE.items():
    register(OpDef(_name, infer=_unary_infer,
                   compute=lambda x, scalar, is_int=True, _f=_np_fn: _f(x, np.asarray(scalar).astype(x.dtype)).astype(x.dtype),
                   attrs=_SCALAR_ATTRS, gradient=_zero_grads,
                   lowering=Elementwise(lambda x, scalar, is_int=True, _o=_sop: S.cast(S.call(_o, x, _scalar_const(x, scalar)), x.dtype))))


# -- where, clip, Cast ---------------------------------------------------------------------------

def _where_infer(c, x, y, **_):
    dtype = same_dtype("where", x, y)
    if x.shape != y.shape:
        raise ShapeError(f"where: x has shape {x.shape} but y has shape {y.shape}")
    if c.shape != x.shape and not (c.ndim == 1 and c.shape[0] == x.shape[0]):
        raise ShapeError(f"where: condition has shape {c.shape}, expected {x.shape} or ({x.shape[0] if x.shape else 1},)")
    return like(x, dtype=dtype)


def _where_np(c, x, y):
    if c.shape != x.shape:
        c = c.reshape(c.shape + (1,) * (x.ndim - 1))
    return np.where(c != 0, x, y)


def _where_grad(F, ins, outs, gs, attrs):
    c, x, y = ins
    g = gs[0]
    z = F.zeros_like(g)
    return [None, F.where(c, g, z), F.where(c, z, g)]


register(OpDef("where", infer=_where_infer, compute=_where_np, inputs=("condition", "x", "y"),
               gradient=_where_grad,
               lowering=Elementwise(lambda c, x, y: S.select(S.call("ne", c, S.const(0, c.dtype)), x, y),
                                    applies=lambda types, attrs: types[0].shape == types[1].shape)))


def _clip_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    return [gs[0] * (x >= attrs["a_min"]) * (x <= attrs["a_max"])]


register(OpDef("clip", infer=_unary_infer, compute=lambda x, a_min, a_max: np.clip(x, a_min, a_max).astype(x.dtype),
               attrs={"a_min": Attr("float"), "a_max": Attr("float")}, gradient=_clip_grad,
               lowering=Elementwise(lambda x, a_min, a_max: S.minimum(S.maximum(x, a_min), a_max))))


def _cast_grad(F, ins, outs, gs, attrs):
    return [F.Cast(gs[0], dtype=ins[0].dtype)]


register(OpDef("Cast", infer=lambda x, dtype: like(x, dtype=dtype),
               compute=lambda x, dtype: x.astype(dtype), attrs={"dtype": Attr("dtype")},
               gradient=_cast_grad, aliases=("cast",),
               lowering=Elementwise(lambda x, dtype: S.cast(x, dtype))))


# -- Activation and LeakyReLU ----------------------------------------------------------------

_ACT = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softrelu": "softrelu", "softsign": "softsign"}


def _activation_grad(F, ins, outs, gs, attrs):
    name = _ACT[attrs["act_type"]]
    return _unary_grad(UNARY[name][2])(F, ins, outs, gs, attrs)


register(OpDef("Activation", infer=_unary_infer,
               compute=lambda x, act_type: _unary_compute(UNARY[_ACT[act_type]][0])(x),
               attrs={"act_type": Attr("str", choices=tuple(_ACT))}, gradient=_activation_grad,
               lowering=Elementwise(lambda x, act_type: UNARY[_ACT[act_type]][1](x))))

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_LAMBDA = 1.0507009873554804934193349852946
_LEAKY_ATTRS = {"act_type": Attr("str", "leaky", choices=("leaky", "elu", "selu", "gelu", "prelu", "rrelu")),
                "slope": Attr("float", 0.25), "lower_bound": Attr("float", 0.125),
                "upper_bound": Attr("float", 0.334)}


def _leaky_inputs(attrs):
    return ("data", "gamma") if attrs["act_type"] == "prelu" else ("data",)


def _leaky_infer(x, *rest, act_type, **_):
    if act_type == "prelu":
        (gamma,) = rest
        if gamma.size not in (1,) and (x.ndim < 2 or gamma.size != x.shape[1]):
            raise ShapeError(f"LeakyReLU(prelu): gamma has shape {gamma.shape}, expected (1,) or ({x.shape[1] if x.ndim > 1 else 1},) for data {x.shape}")
    return x


def _leaky_infer_missing(in_types, attrs):
    """PReLU's untyped gamma: one slope per channel, (data.shape[1],), as MXNet infers it (a
    1-D data has one channel). Without this the elementwise rule would give gamma data's shape."""
    x = in_types[0]
    if attrs["act_type"] != "prelu" or x is None or len(in_types) < 2 or in_types[1] is not None:
        return in_types
    return [x, like(x, (x.shape[1] if len(x.shape) > 1 else 1,))]


def _prelu_gamma(gamma, ndim):
    if gamma.size == 1 or ndim < 2:
        return gamma.reshape(())
    return gamma.reshape((1, -1) + (1,) * (ndim - 2))


def _gelu_np(x):
    return (0.5 * x * (1.0 + _erf_np(x / np.sqrt(2.0).astype(x.dtype)))).astype(x.dtype)


def _leaky_np(x, *rest, act_type, slope, lower_bound, upper_bound):
    if act_type in ("leaky", "rrelu"):
        s = slope if act_type == "leaky" else (lower_bound + upper_bound) / 2
        return np.where(x > 0, x, x * x.dtype.type(s))
    if act_type == "elu":
        return np.where(x > 0, x, x.dtype.type(slope) * np.expm1(np.minimum(x, 0)))
    if act_type == "selu":
        return (_SELU_LAMBDA * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))).astype(x.dtype)
    if act_type == "gelu":
        return _gelu_np(x)
    g = _prelu_gamma(rest[0], x.ndim)
    return np.where(x > 0, x, x * g)


def _leaky_formula(x, *rest, act_type, slope, lower_bound, upper_bound):
    zero = S.const(0.0, x.dtype)
    pos = S.call("gt", x, zero)
    if act_type in ("leaky", "rrelu"):
        s = slope if act_type == "leaky" else (lower_bound + upper_bound) / 2
        return S.select(pos, x, x * s)
    if act_type == "elu":
        return S.select(pos, x, S.expm1(S.minimum(x, 0.0)) * slope)
    if act_type == "selu":
        return S.select(pos, x, S.expm1(S.minimum(x, 0.0)) * _SELU_ALPHA) * _SELU_LAMBDA
    if act_type == "gelu":
        return x * (S.erf(x * (1 / math.sqrt(2.0))) + 1.0) * 0.5
    return S.select(pos, x, x * rest[0])


def _leaky_grad(F, ins, outs, gs, attrs):
    x, y, g = ins[0], outs[0], gs[0]
    t = attrs["act_type"]
    pos = x > 0.0
    if t in ("leaky", "rrelu"):
        s = attrs["slope"] if t == "leaky" else (attrs["lower_bound"] + attrs["upper_bound"]) / 2
        return [g * (pos * (1.0 - s) + s)]
    if t == "elu":
        return [g * F.where(pos, F.ones_like(x), y + attrs["slope"])]
    if t == "selu":
        return [g * F.where(pos, F.ones_like(x) * _SELU_LAMBDA, y + _SELU_LAMBDA * _SELU_ALPHA)]
    if t == "gelu":
        pdf = F.exp(F.square(x) * -0.5) * (1.0 / math.sqrt(2 * math.pi))
        cdf = (F.erf(x * (1 / math.sqrt(2.0))) + 1.0) * 0.5
        return [g * (cdf + x * pdf)]
    gamma = ins[1]
    gshape = (1, -1) + (1,) * (x.ndim - 2) if gamma.size > 1 else None
    gam = F.Reshape(gamma, shape=gshape) if gshape else F.Reshape(gamma, shape=())
    neg = 1.0 - pos
    dx = g * (pos + neg * gam)
    dgamma = sum_to(F, g * x * neg, (1,) * (x.ndim - 2 + 2) if gamma.size == 1 else (1, gamma.size) + (1,) * (x.ndim - 2))
    return [dx, F.Reshape(dgamma, shape=gamma.shape)]


register(OpDef("LeakyReLU", infer=_leaky_infer, compute=_leaky_np, inputs=_leaky_inputs,
               attrs=_LEAKY_ATTRS, gradient=_leaky_grad, infer_missing=_leaky_infer_missing,
               lowering=Elementwise(_leaky_formula,
                                    applies=lambda types, attrs: attrs["act_type"] != "prelu" or types[1].size == 1)))


# -- identity and gradient control -----------------------------------------------------------

register(OpDef("_copy", infer=_unary_infer, compute=lambda x: x.copy(),
               gradient=lambda F, ins, outs, gs, attrs: [gs[0]], lowering=Elementwise(lambda x: x),
               aliases=("identity",), doc="A copy of the input."))
register(OpDef("BlockGrad", infer=_unary_infer, compute=lambda x: x.copy(),
               gradient=lambda F, ins, outs, gs, attrs: [None], lowering=Elementwise(lambda x: x),
               aliases=("stop_gradient",), doc="The input, with no gradient flowing back through it."))
