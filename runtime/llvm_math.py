"""Transcendental and rounding functions emitted as branch-free LLVM IR.

LLVM's loop vectoriser will not widen a call to libm's `expf` or `tanh`, so the CPU renderer
asks this module instead: `emit(builder, "exp", x)` calls a small internal `alwaysinline`
function built only from fadd/fmul/fdiv, fma, bit casts, compares and selects (plus the
llvm.sqrt/floor/... intrinsics, which vectorise). Once inlined into a loop the vectoriser turns
it into AVX2/AVX-512 code. Each body is written once, generic over float/double and over
vector types such as <8 x float>, so no branches: special cases are blended in with `select`.

Underflow: exp (and sigmoid, erf and pow through it) returns exactly 0 where the true result
is below the smallest normal number, never a subnormal. Producing or consuming subnormals runs
in microcode on x86 (tens to hundreds of cycles per element): a softmax over scores masked with
-1e9 spent most of its time there. The error is below the smallest normal number, and the
input is clamped first so that even the flushed lanes never compute a subnormal on the way.

Accuracy (measured against float64 / long double references, see the tests): exp, log,
log1p, erf, sin, cos within 1.6 ulp; expm1, tanh, sigmoid within 2.6 ulp; float32 pow 0.5 ulp
(computed in double); float64 pow within ~11 ulp when |y log x| nears 700 (its log is carried
in double-double; the remaining error is the rounding of log's s^3 tail). Schemes: Cody-Waite range reduction plus minimax polynomials whose
coefficients were fitted (Lawson/minimax in 60-digit arithmetic) for this module.

sin/cos reduce by pi/2 with a three-part fma Cody-Waite step, exact for |x| < 2**50; beyond
that (a double's spacing there is > 2**-3 of a period anyway) results are bounded but not
accurate. This module never knows about kernels or graphs; it only emits scalar expressions.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

UNARY = frozenset({
    "exp", "log", "log1p", "expm1", "tanh", "sigmoid", "erf", "sin", "cos", "sqrt", "rsqrt",
    "floor", "ceil", "trunc", "round", "abs", "sign",
})
BINARY = frozenset({"pow"})
SUPPORTED = UNARY | BINARY


@dataclass(frozen=True)
class _Format:
    tag: str            # LLVM intrinsic suffix of the scalar type
    bits: int
    mantissa: int       # explicit mantissa bits
    bias: int
    # exp/expm1: inputs are clamped to [exp_flush or expm1_lo, exp_hi] so 2**n stays in range
    exp_hi: float
    # exp(x < exp_flush) is returned as 0. exp_flush sits just above log(tiny), far enough that
    # exp(exp_flush) computes to a normal number despite exp's rounding (38 ulp for float, 600
    # for double): the flushed results are all below tiny * (1 + 5e-6)
    exp_flush: float
    tiny: float         # the smallest normal number
    expm1_lo: float     # below this expm1(x) rounds to -1
    expm1_kmax: int     # largest 2**k used directly in expm1 (k above: scaled path)
    ln2_hi: float       # ln2 with trailing zero bits, so k*ln2_hi is exact
    ln2_lo: float
    exp_poly: tuple     # exp(r) = 1 + r + r^2 P(r), |r| <= ln2/2
    log_poly: tuple     # log(1+f) = 2s + s z Q(z), s = f/(2+f), z = s^2
    tanh_sat: float     # tanh(|x| >= sat) rounds to 1
    erf_poly: tuple     # erf(x) = x E(x^2), |x| < 1
    erfc_center: float  # erfc(x) = exp(-x^2) G(t - center), t = 1/(1 + x/2), 1 <= x < erf_sat
    erfc_poly: tuple
    erf_sat: float      # erf(|x| >= sat) rounds to 1
    sin_poly: tuple     # sin(r) = r + r z S(z)
    cos_poly: tuple     # cos(r) = 1 - z/2 + z^2 C(z)
    denormal_scale: int  # log: multiply subnormals by 2**this first


F32 = _Format(
    tag="f32", bits=32, mantissa=23, bias=127,
    exp_hi=89.0, exp_flush=-87.33654022216797, tiny=2.0 ** -126, expm1_lo=-18.0, expm1_kmax=100,
    ln2_hi=0.693359375, ln2_lo=-0.00021219444170128554,
    exp_poly=(0.500000004433628, 0.1666666637042773, 0.04166636016495262,
              0.008333389247706003, 0.0013940689000496202, 0.00019846028185980285),
    log_poly=(0.6666677681910911, 0.39977473608193154, 0.2987387112628091),
    tanh_sat=9.0,
    erf_poly=(1.1283791657354336, -0.37612625843858966, 0.11283585271200883,
              -0.026853815042141217, 0.005188331129784863, -0.000801020782448588,
              7.853865118003154e-05),
    erfc_center=0.5,
    erfc_poly=(0.2553956762832505, 0.854371699134645, 0.96663282252634, 0.6318270064101281,
               0.05971643984445276, -0.22374786734692076, -0.053595246105085176,
               0.11901581971999686),
    erf_sat=4.0,
    sin_poly=(-0.1666666664057302, 0.008333329278828407, -0.00019839303880885768,
              2.7180414384095674e-06),
    cos_poly=(0.04166664554426687, -0.0013887309376012665, 2.4432357186889833e-05),
    denormal_scale=25,
)

F64 = _Format(
    tag="f64", bits=64, mantissa=52, bias=1023,
    exp_hi=710.0, exp_flush=-708.396418532264, tiny=2.0 ** -1022, expm1_lo=-38.0, expm1_kmax=1000,
    ln2_hi=0.6931471805598903, ln2_lo=5.497923018708371e-14,
    exp_poly=(0.5, 0.16666666666666677, 0.04166666666666651, 0.008333333333321648,
              0.0013888888888962524, 0.00019841269886092618, 2.4801587172430176e-05,
              2.755724423289275e-06, 2.7557402576018133e-07, 2.510903251901892e-08,
              2.087539842480576e-09),
    log_poly=(0.6666666666666666, 0.40000000000006314, 0.28571428569063373,
              0.22222222650271753, 0.18181775381466275, 0.15387103411307934,
              0.13249828032157335, 0.13254006758444667),
    tanh_sat=20.0,
    erf_poly=(1.1283791670955126, -0.3761263890318352, 0.11283791670944199,
              -0.02686617064311301, 0.005223977606127955, -0.0008548325929671152,
              0.00012055293585502043, -1.4924712437455899e-05, 1.6447132953551075e-06,
              -1.6206322543122062e-07, 1.3711011874763555e-08, -7.779516828554436e-10),
    erfc_center=0.4583333333333333,
    erfc_poly=(0.2214295402299318, 0.7770891265969198, 0.8884355425962066, 0.6180783702413782,
               0.1046496765260543, -0.2058617423537999, -0.089778868373608, 0.11621381603155395,
               0.046072917602313114, -0.09475499992153176, -0.0038200681856192346,
               0.0818045538012748, -0.0402337204178417, -0.053607392020336396,
               0.07685761173624198, 0.00778112056164676, -0.0776777372194783),
    erf_sat=6.0,
    sin_poly=(-0.1666666666666663, 0.008333333333322, -0.00019841269829491397,
              2.7557313586179243e-06, -2.5050742078795757e-08, 1.5895891231658242e-10),
    cos_poly=(0.041666666666666595, -0.0013888888888872889, 2.4801587288743978e-05,
              -2.755731414741195e-07, 2.087569640773953e-09, -1.135830192319467e-11),
    denormal_scale=54,
)

_LOG2E = 1.4426950408889634
# pi/2 as the unevaluated sum of three doubles (~160 bits)
_PIO2 = (1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33)
_TWO_OVER_PI = 0.6366197723675814
_SINCOS_LIMIT = 2.0 ** 50   # reduction exact below this


def emit(builder: ir.IRBuilder, name: str, x: ir.Value, y: ir.Value | None = None) -> ir.Value:
    """Emit `name(x)` (or `pow(x, y)`) at the builder; x is float/double or a vector of them."""
    if name not in SUPPORTED:
        raise ValueError(f"llvm_math.emit: unknown function {name!r}; supported: "
                         f"{', '.join(sorted(SUPPORTED))}")
    args = [x]
    if name in BINARY:
        if y is None:
            raise ValueError(f"llvm_math.emit: {name!r} takes two operands, got one")
        if y.type != x.type:
            raise TypeError(f"llvm_math.emit: {name!r} operands differ in type: {x.type} and {y.type}")
        args.append(y)
    elif y is not None:
        raise ValueError(f"llvm_math.emit: {name!r} takes one operand, got two")
    _Emitter.format_of(x.type)  # validates the type
    return builder.call(_function(builder.module, name, x.type), args)


def _function(module: ir.Module, name: str, ty: ir.Type) -> ir.Function:
    """The internal always-inline function computing `name` on `ty`, created on first use."""
    symbol = f"graphc.math.{name}.{_type_tag(ty)}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    arity = 2 if name in BINARY else 1
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * arity), symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    builder.ret(_BODIES[name](_Emitter(builder, ty), *fn.args))
    return fn


def _type_tag(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_Emitter.format_of(ty).tag}"
    return _Emitter.format_of(ty).tag


class _Emitter:
    """Arithmetic on one float type (scalar or vector) with splatted constants."""

    def __init__(self, builder: ir.IRBuilder, ty: ir.Type):
        self.b = builder
        self.ty = ty
        self.fmt = self.format_of(ty)
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else None
        self.ity = self._shaped(ir.IntType(self.fmt.bits))
        self.i32 = self._shaped(ir.IntType(32))

    @staticmethod
    def format_of(ty: ir.Type) -> _Format:
        scalar = ty.element if isinstance(ty, ir.VectorType) else ty
        if isinstance(scalar, ir.FloatType):
            return F32
        if isinstance(scalar, ir.DoubleType):
            return F64
        raise TypeError(f"llvm_math: expected float, double or a vector of them, got {ty}")

    def _shaped(self, scalar: ir.Type) -> ir.Type:
        return ir.VectorType(scalar, self.lanes) if self.lanes else scalar

    def other(self, fmt: _Format) -> "_Emitter":
        """The same lane count in another float format (pow and erf use wider arithmetic)."""
        scalar = ir.FloatType() if fmt is F32 else ir.DoubleType()
        return _Emitter(self.b, self._shaped(scalar))

    # constants and conversions
    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.ty, float(v))

    def ic(self, v: int, ty: ir.Type | None = None) -> ir.Constant:
        return ir.Constant(ty or self.ity, int(v))

    def to_bits(self, x):
        return self.b.bitcast(x, self.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def to_i32(self, x):
        return self.b.fptosi(x, self.i32)

    def from_i32(self, i):
        return self.b.sitofp(i, self.ty)

    def widen_i32(self, i):
        return i if self.fmt.bits == 32 else self.b.sext(i, self.ity)

    # arithmetic
    def add(self, a, b): return self.b.fadd(a, b)
    def sub(self, a, b): return self.b.fsub(a, b)
    def mul(self, a, b): return self.b.fmul(a, b)
    def div(self, a, b): return self.b.fdiv(a, b)
    def neg(self, a): return self.b.fneg(a)

    def intrinsic(self, name: str, *args):
        symbol = f"llvm.{name}.{_type_tag(self.ty)}"
        module = self.b.module
        fn = module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(self.ty, [self.ty] * len(args)), symbol)
        return self.b.call(fn, list(args))

    def madd(self, a, b, c):
        """a*b + c, fused where the target has fma (accuracy must not depend on it)."""
        return self.intrinsic("fmuladd", a, b, c)

    def fma(self, a, b, c):
        """a*b + c with a single rounding: used where exactness of a product is required."""
        return self.intrinsic("fma", a, b, c)

    def poly(self, x, coeffs):
        acc = self.c(coeffs[-1])
        for k in reversed(coeffs[:-1]):
            acc = self.madd(acc, x, self.c(k))
        return acc

    # comparisons (ordered: false on NaN) and selection
    def lt(self, a, b): return self.b.fcmp_ordered("<", a, b)
    def le(self, a, b): return self.b.fcmp_ordered("<=", a, b)
    def gt(self, a, b): return self.b.fcmp_ordered(">", a, b)
    def ge(self, a, b): return self.b.fcmp_ordered(">=", a, b)
    def eq(self, a, b): return self.b.fcmp_ordered("==", a, b)
    def isnan(self, a): return self.b.fcmp_unordered("uno", a, a)
    def sel(self, cond, a, b): return self.b.select(cond, a, b)

    def abs(self, x): return self.intrinsic("fabs", x)
    def copysign(self, mag, sign): return self.intrinsic("copysign", mag, sign)

    def clamp(self, x, lo: float, hi: float):
        """x limited to [lo, hi]; NaN becomes lo (callers restore NaN at the end)."""
        x = self.sel(self.gt(x, self.c(lo)), x, self.c(lo))
        return self.sel(self.lt(x, self.c(hi)), x, self.c(hi))

    def keep_nan(self, x, result):
        return self.sel(self.isnan(x), x, result)

    def pow2(self, k):
        """2**k as a float for an i32 k inside the normal exponent range."""
        biased = self.b.add(self.widen_i32(k), self.ic(self.fmt.bias))
        return self.from_bits(self.b.shl(biased, self.ic(self.fmt.mantissa)))

    def ldexp(self, p, k):
        """p * 2**k for |k| up to twice the exponent range: two steps, so huge or subnormal
        results round once, at the last multiply."""
        k1 = self.b.ashr(k, self.ic(1, self.i32))
        k2 = self.b.sub(k, k1)
        return self.mul(self.mul(p, self.pow2(k1)), self.pow2(k2))

    def call(self, name: str, *args):
        return self.b.call(_function(self.b.module, name, self.ty), list(args))


# ---------------------------------------------------------------- exponential family

def _exp_reduce(m: _Emitter, xc):
    """n = round(x / ln2) and r = x - n ln2 (|r| <= ln2/2) by Cody-Waite; also expm1(r)."""
    f = m.fmt
    n = m.intrinsic("rint", m.mul(xc, m.c(_LOG2E)))
    r = m.sub(xc, m.mul(n, m.c(f.ln2_hi)))            # exact: n*ln2_hi has spare bits
    r = m.madd(m.neg(n), m.c(f.ln2_lo), r)
    em1 = m.madd(m.mul(r, r), m.poly(r, f.exp_poly), r)
    return n, em1


def _flush_tiny(m: _Emitter, x, res):
    """0 where x is below exp's flush threshold (res was computed from the clamped x)."""
    return m.sel(m.lt(x, m.c(m.fmt.exp_flush)), m.c(0.0), res)


def _exp(m: _Emitter, x):
    # clamped at the flush threshold, not at the bottom of the subnormals: the flushed lanes then compute
    # exp(threshold), a normal number, instead of a subnormal that is thrown away
    xc = m.clamp(x, m.fmt.exp_flush, m.fmt.exp_hi)
    n, em1 = _exp_reduce(m, xc)
    res = m.ldexp(m.add(m.c(1.0), em1), m.to_i32(n))
    return m.keep_nan(x, _flush_tiny(m, x, res))


def _expm1(m: _Emitter, x):
    f = m.fmt
    xc = m.clamp(x, f.expm1_lo, f.exp_hi)
    n, em1 = _exp_reduce(m, xc)
    k = m.to_i32(n)
    big = m.b.icmp_signed(">", k, m.ic(f.expm1_kmax, m.i32))
    s = m.pow2(m.b.select(big, m.ic(f.expm1_kmax, m.i32), k))
    # expm1(x) = 2^k expm1(r) + (2^k - 1): exact pieces, one rounding when fused
    small = m.madd(em1, s, m.sub(s, m.c(1.0)))
    large = m.sub(m.ldexp(m.add(m.c(1.0), em1), k), m.c(1.0))
    res = m.sel(big, large, small)
    res = m.sel(m.eq(x, m.c(0.0)), x, res)  # keeps the sign of -0
    return m.keep_nan(x, res)


def _tanh(m: _Emitter, x):
    a = m.abs(x)
    a = m.sel(m.lt(a, m.c(m.fmt.tanh_sat)), a, m.c(m.fmt.tanh_sat))
    e = m.call("expm1", m.add(a, a))
    t = m.div(e, m.add(e, m.c(2.0)))   # tanh|x| = expm1(2|x|) / (expm1(2|x|) + 2)
    return m.keep_nan(x, m.copysign(t, x))


def _sigmoid(m: _Emitter, x):
    # one exp of -|x| never overflows; for x < 0, e/(1+e) keeps relative accuracy in the tail
    e = m.call("exp", m.neg(m.abs(x)))
    pos = m.div(m.c(1.0), m.add(m.c(1.0), e))
    return m.sel(m.ge(x, m.c(0.0)), pos, m.mul(e, pos))   # NaN takes the e*pos arm: NaN


# ---------------------------------------------------------------- logarithms

def _log_split(m: _Emitter, x):
    """x > 0 as 2^k * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)); returns (k as float, f)."""
    f = m.fmt
    tiny = m.lt(x, m.from_bits(m.ic(1 << f.mantissa)))       # subnormal (or <= 0)
    x = m.sel(tiny, m.mul(x, m.c(2.0 ** f.denormal_scale)), x)
    k_adjust = m.b.select(tiny, m.ic(-f.denormal_scale, m.i32), m.ic(0, m.i32))
    sqrt_half = m.ic(0x3F3504F3 if f is F32 else 0x3FE6A09E667F3BCD)
    ix = m.b.sub(m.to_bits(x), sqrt_half)
    k = m.b.ashr(ix, m.ic(f.mantissa))
    if f is F64:
        k = m.b.trunc(k, m.i32)
    k = m.b.add(k, k_adjust)
    mant = m.b.add(m.b.and_(ix, m.ic((1 << f.mantissa) - 1)), sqrt_half)
    return m.from_i32(k), m.sub(m.from_bits(mant), m.c(1.0))   # m - 1 is exact


def _log1p_of_reduced(m: _Emitter, f):
    """log(1+f) for f in [sqrt(1/2)-1, sqrt(2)-1]: s = f/(2+f), log(1+f) = 2 atanh(s)."""
    s = m.div(f, m.add(m.c(2.0), f))
    z = m.mul(s, s)
    r = m.mul(z, m.poly(z, m.fmt.log_poly))
    hfsq = m.mul(m.c(0.5), m.mul(f, f))
    # 2s = f - hfsq + s*hfsq, so log(1+f) = f - (hfsq - s*(hfsq + R)): f enters unrounded
    return hfsq, m.mul(s, m.add(hfsq, r))


def _log_finish(m: _Emitter, kf, f, correction=None):
    hfsq, tail = _log1p_of_reduced(m, f)
    lo = m.madd(kf, m.c(m.fmt.ln2_lo), tail)
    if correction is not None:
        lo = m.add(lo, correction)
    return m.madd(kf, m.c(m.fmt.ln2_hi), m.sub(f, m.sub(hfsq, lo)))


def _log_specials(m: _Emitter, u, res):
    """log's limits at u: +inf -> inf, 0 -> -inf, negative -> NaN, NaN stays NaN."""
    inf = m.c(float("inf"))
    res = m.sel(m.eq(u, inf), inf, res)
    res = m.sel(m.eq(u, m.c(0.0)), m.c(float("-inf")), res)
    res = m.sel(m.lt(u, m.c(0.0)), m.c(float("nan")), res)
    return m.keep_nan(u, res)


def _log(m: _Emitter, x):
    kf, f = _log_split(m, x)
    return _log_specials(m, x, _log_finish(m, kf, f))


def _log1p(m: _Emitter, x):
    u = m.add(m.c(1.0), x)
    c = m.div(m.sub(x, m.sub(u, m.c(1.0))), u)   # log1p(x) = log(u) + (x - (u-1))/u
    kf, f = _log_split(m, u)
    res = _log_specials(m, u, _log_finish(m, kf, f, correction=c))
    res = m.sel(m.eq(x, m.c(0.0)), x, res)   # keeps the sign of -0
    return m.keep_nan(x, res)


# ---------------------------------------------------------------- pow

def _log_double_double(m: _Emitter, x):
    """log(x) for x > 0 as hi + lo with ~2^-100 relative error bound on the pieces we add."""
    fmt = m.fmt
    kf, f = _log_split(m, x)
    d_hi = m.add(m.c(2.0), f)
    d_lo = m.sub(f, m.sub(d_hi, m.c(2.0)))                 # 2 + f exactly = d_hi + d_lo
    s = m.div(f, d_hi)
    resid = m.sub(m.fma(m.neg(s), d_hi, f), m.mul(s, d_lo))  # f - s*(d_hi + d_lo)
    s_lo = m.div(resid, d_hi)
    z = m.mul(s, s)
    q = m.poly(z, fmt.log_poly)
    sz = m.mul(s, z)
    tail = m.mul(sz, q)                                      # log(1+f) - 2s = s^3 Q(s^2)
    # tail is ~1% of the log near |s| = 0.17, so its own rounding and the neglected s_lo
    # would cost several ulp of pow at |y log x| ~ 700: add them back to first order
    z_lo = m.fma(s, s, m.neg(z))
    tail_lo = m.madd(q, m.madd(s, z_lo, m.mul(m.mul(m.c(3.0), z), s_lo)),
                     m.madd(m.fma(s, z, m.neg(sz)), q, m.fma(sz, q, m.neg(tail))))
    tail = m.add(tail, tail_lo)
    a = m.mul(kf, m.c(fmt.ln2_hi))                          # exact
    b = m.add(s, s)
    hi = m.add(a, b)                                        # two-sum of a and b
    bb = m.sub(hi, a)
    err = m.add(m.sub(a, m.sub(hi, bb)), m.sub(b, bb))
    lo = m.add(err, m.add(m.add(s_lo, s_lo), m.madd(kf, m.c(fmt.ln2_lo), tail)))
    top = m.add(hi, lo)
    return top, m.sub(lo, m.sub(top, hi))


def _exp_double_double(m: _Emitter, hi, lo):
    """exp(hi + lo) for |lo| <= ulp(hi); overflow -> inf, NaN stays NaN, and 0 below the
    smallest normal number (see _flush_tiny)."""
    fmt = m.fmt
    hc = m.clamp(hi, fmt.exp_flush, fmt.exp_hi)
    in_range = m.b.and_(m.gt(hi, m.c(fmt.exp_flush)), m.lt(hi, m.c(fmt.exp_hi)))
    lo = m.sel(in_range, lo, m.c(0.0))
    n = m.intrinsic("rint", m.mul(hc, m.c(_LOG2E)))
    r = m.sub(hc, m.mul(n, m.c(fmt.ln2_hi)))
    r = m.add(m.madd(m.neg(n), m.c(fmt.ln2_lo), r), lo)
    em1 = m.madd(m.mul(r, r), m.poly(r, fmt.exp_poly), r)
    res = m.ldexp(m.add(m.c(1.0), em1), m.to_i32(n))
    # hi + lo may sit below the threshold where hi does not: also flush on the result
    res = m.sel(m.lt(res, m.c(fmt.tiny)), m.c(0.0), res)
    return m.keep_nan(hi, _flush_tiny(m, hi, res))


def _pow(m: _Emitter, x, y):
    ax = m.abs(x)
    if m.fmt is F32:
        # float: exp(y log|x|) in double has error ~|y log x| 2^-53, far below float's ulp
        w = m.other(F64)
        y64 = m.b.fpext(y, w.ty)
        mag = w.call("exp", w.mul(y64, w.call("log", m.b.fpext(ax, w.ty))))
        # float's subnormal range is normal in double: flush before narrowing (see _flush_tiny)
        mag = w.sel(w.lt(mag, w.c(F32.tiny)), w.c(0.0), mag)
        mag = m.b.fptrunc(mag, m.ty)
    else:
        # double: y*log|x| reaches ~745, so log|x| is carried in double-double to keep
        # the product's absolute error (= exp's relative error) near 2^-60
        l_hi, l_lo = _log_double_double(m, ax)
        l_hi = _log_specials(m, ax, l_hi)
        p_hi = m.mul(y, l_hi)
        p_lo = m.madd(y, l_lo, m.fma(y, l_hi, m.neg(p_hi)))
        mag = _exp_double_double(m, p_hi, p_lo)
    one, zero = m.c(1.0), m.c(0.0)
    y_int = m.eq(m.intrinsic("trunc", y), y)
    half_y = m.mul(y, m.c(0.5))
    y_odd = m.b.and_(y_int, m.b.fcmp_unordered("!=", m.intrinsic("trunc", half_y), half_y))
    x_neg = m.b.icmp_signed("<", m.to_bits(x), m.ic(0))      # includes -0 and -inf
    res = m.sel(m.b.and_(x_neg, y_odd), m.neg(mag), mag)
    finite_neg = m.b.and_(m.lt(x, zero), m.gt(x, m.c(float("-inf"))))
    res = m.sel(m.b.and_(finite_neg, m.b.not_(y_int)), m.c(float("nan")), res)
    res = m.sel(m.b.and_(m.eq(ax, one), m.eq(m.abs(y), m.c(float("inf")))), one, res)
    res = m.sel(m.eq(x, one), one, res)
    return m.sel(m.eq(y, zero), one, res)


# ---------------------------------------------------------------- erf

def _erf(m: _Emitter, x):
    f = m.fmt
    a = m.abs(x)
    # |x| < 1: erf(x) = x + x (E(x^2) - 1), so E's rounded leading term costs little
    e_minus_1 = (f.erf_poly[0] - 1.0,) + f.erf_poly[1:]
    small = m.madd(x, m.poly(m.mul(x, x), e_minus_1), x)
    t = m.div(m.c(1.0), m.madd(a, m.c(0.5), m.c(1.0)))
    g = m.poly(m.sub(t, m.c(f.erfc_center)), f.erfc_poly)
    erfc = m.mul(m.call("exp", m.neg(m.mul(a, a))), g)
    large = m.sel(m.lt(a, m.c(f.erf_sat)), m.sub(m.c(1.0), erfc), m.c(1.0))
    res = m.sel(m.lt(a, m.c(1.0)), small, m.copysign(large, x))
    return m.keep_nan(x, res)


# ---------------------------------------------------------------- sin / cos

def _sincos(m: _Emitter, x, quadrant_shift: int):
    """sin(x) (shift 0) or cos(x) = sin(x + pi/2) (shift 1)."""
    # float reduces in double: exact for |x| < 2^50 and no fma in float precision to trust
    w = m.other(F64) if m.fmt is F32 else m
    xw = m.b.fpext(x, w.ty) if w is not m else x
    n = w.intrinsic("rint", w.mul(xw, w.c(_TWO_OVER_PI)))
    r = w.fma(w.neg(n), w.c(_PIO2[0]), xw)
    r = w.fma(w.neg(n), w.c(_PIO2[1]), r)
    r = w.fma(w.neg(n), w.c(_PIO2[2]), r)
    bound = 0.7854 * (1 + 2 ** -20)
    r = w.clamp(r, -bound, bound)   # only bites past _SINCOS_LIMIT or for inf/NaN
    q = w.sub(n, w.mul(w.intrinsic("floor", w.mul(n, w.c(0.25))), w.c(4.0)))   # n mod 4
    q = w.sel(w.isnan(q), w.c(0.0), q)
    q = m.b.add(w.to_i32(q), m.ic(quadrant_shift, m.i32))
    if w is not m:
        r = m.b.fptrunc(r, m.ty)
    z = m.mul(r, r)
    sin_r = m.madd(m.mul(r, z), m.poly(z, m.fmt.sin_poly), r)
    cos_r = m.madd(m.mul(z, z), m.poly(z, m.fmt.cos_poly), m.sub(m.c(1.0), m.mul(m.c(0.5), z)))
    odd = m.b.icmp_unsigned("!=", m.b.and_(q, m.ic(1, m.i32)), m.ic(0, m.i32))
    flip = m.b.icmp_unsigned("!=", m.b.and_(q, m.ic(2, m.i32)), m.ic(0, m.i32))
    v = m.sel(odd, cos_r, sin_r)
    v = m.sel(flip, m.neg(v), v)
    if quadrant_shift == 0:
        v = m.sel(m.eq(x, m.c(0.0)), x, v)   # sin(-0) = -0
    inf = m.c(float("inf"))
    v = m.sel(m.eq(m.abs(x), inf), m.c(float("nan")), v)
    return m.keep_nan(x, v)


# ---------------------------------------------------------------- simple ones

def _round(m: _Emitter, x):
    # half away from zero, exactly: x - trunc(x) is exact
    t = m.intrinsic("trunc", x)
    bump = m.ge(m.abs(m.sub(x, t)), m.c(0.5))
    return m.sel(bump, m.add(t, m.copysign(m.c(1.0), x)), t)


def _sign(m: _Emitter, x):
    zero = m.c(0.0)
    v = m.sel(m.eq(x, zero), zero, x)                     # +0 for both zeros, NaN stays
    v = m.sel(m.lt(x, zero), m.c(-1.0), v)
    return m.sel(m.gt(x, zero), m.c(1.0), v)


_BODIES = {
    "exp": _exp,
    "expm1": _expm1,
    "log": _log,
    "log1p": _log1p,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "erf": _erf,
    "sin": lambda m, x: _sincos(m, x, 0),
    "cos": lambda m, x: _sincos(m, x, 1),
    "pow": _pow,
    "sqrt": lambda m, x: m.intrinsic("sqrt", x),
    "rsqrt": lambda m, x: m.div(m.c(1.0), m.intrinsic("sqrt", x)),
    "floor": lambda m, x: m.intrinsic("floor", x),
    "ceil": lambda m, x: m.intrinsic("ceil", x),
    "trunc": lambda m, x: m.intrinsic("trunc", x),
    "round": _round,
    "abs": lambda m, x: m.abs(x),
    "sign": _sign,
}
assert set(_BODIES) == SUPPORTED
