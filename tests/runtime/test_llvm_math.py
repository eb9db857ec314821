"""llvm_math: each function, JIT-compiled inside a loop at -O3, against numpy/math references.

Accuracy is measured in ulps of the result's type against a reference computed in higher
precision (float64 for float32 results, numpy's long double for float64 results where the
platform has one). The loops must also really vectorise: that is the module's reason to exist.
"""
from __future__ import annotations

import ctypes
import functools
import math
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from graphc.runtime import llvm_jit, llvm_math

F32, F64 = np.float32, np.float64
LONG = np.longdouble
DTYPES = [F32, F64]


@functools.cache
def _target_machine():
    return llvm_jit.create_target_machine(opt=3)


class _Kernel:
    """out[i] = name(a[i]) (or name(a[i], b[i])) over n elements, compiled with MCJIT."""

    def __init__(self, name: str, dtype, lanes: int | None = None):
        scalar = ir.FloatType() if dtype == F32 else ir.DoubleType()
        elem = ir.VectorType(scalar, lanes) if lanes else scalar
        i64 = ir.IntType(64)
        module = ir.Module(name=f"test_{name}")
        ptr = elem.as_pointer()
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64]), "kernel")
        for arg in fn.args[:3]:
            arg.add_attribute("noalias")
        out, a, b, n = fn.args
        entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
        bld = ir.IRBuilder(entry)
        bld.cbranch(bld.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        bld.position_at_end(loop)
        i = bld.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        align = np.dtype(dtype).itemsize   # numpy only promises element alignment
        x = bld.load(bld.gep(a, [i]), align=align)
        y = bld.load(bld.gep(b, [i]), align=align) if name in llvm_math.BINARY else None
        bld.store(llvm_math.emit(bld, name, x, y), bld.gep(out, [i]), align=align)
        nxt = bld.add(i, ir.Constant(i64, 1))
        i.add_incoming(nxt, loop)
        bld.cbranch(bld.icmp_signed("<", nxt, n), loop, done)
        bld.position_at_end(done)
        bld.ret_void()

        mod_ref = llvm.parse_assembly(str(module))
        mod_ref.verify()
        llvm_jit.optimize(mod_ref, _target_machine())
        self.optimized_ir = str(mod_ref)
        self._engine = llvm.create_mcjit_compiler(mod_ref, _target_machine())
        self._engine.finalize_object()
        proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_int64)
        self._fn = proto(self._engine.get_function_address("kernel"))
        self.dtype, self.lanes = dtype, lanes or 1

    def __call__(self, x, y=None):
        x = np.ascontiguousarray(x, self.dtype)
        y = x if y is None else np.ascontiguousarray(y, self.dtype)
        assert x.shape == y.shape and x.size % self.lanes == 0
        out = np.empty_like(x)
        self._fn(out.ctypes.data, x.ctypes.data, y.ctypes.data, x.size // self.lanes)
        return out


@functools.cache
def kernel(name: str, dtype, lanes: int | None = None) -> _Kernel:
    return _Kernel(name, dtype, lanes)


def max_ulp_error(out, ref, dtype) -> float:
    """Largest |out - ref| in units of the spacing of `dtype` at ref, over finite refs."""
    ref = np.asarray(ref, LONG)
    ok = np.isfinite(ref) & (np.abs(ref) <= np.finfo(dtype).max)
    spacing = np.spacing(np.abs(ref[ok]).astype(dtype)).astype(LONG)
    return float(np.max(np.abs(out[ok].astype(LONG) - ref[ok]) / spacing))


def reference_input(x, dtype):
    """The exact input values, widened: float64 for float32, long double for float64."""
    return x.astype(F64) if dtype == F32 else x.astype(LONG)


_erf = np.vectorize(math.erf, otypes=[F64])


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _flushed(f):
    """f, with results below float32's smallest normal number as 0: llvm_math's exp family
    returns 0 there rather than a subnormal (slow on x86), by contract."""
    def ref(x):
        y = f(x)
        tiny = np.finfo(F32 if x.dtype == F64 else F64).tiny
        return np.where(np.abs(y) < tiny, 0, y).astype(y.dtype)
    return ref


REFERENCE = {
    "exp": _flushed(np.exp), "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh,
    "sigmoid": _flushed(_sigmoid), "erf": lambda x: _erf(x.astype(F64)), "sin": np.sin, "cos": np.cos,
}


def _inputs(name: str, dtype) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, name)))
    big = 88.0 if dtype == F32 else 709.0
    both = lambda v: v * rng.choice([-1.0, 1.0], v.size)  # noqa: E731
    chunks = {
        "exp": [rng.uniform(-1, 1, 20000), rng.uniform(-big - 15, big, 40000)],
        "expm1": [rng.uniform(-1, 1, 20000), rng.uniform(-40, big, 40000),
                  both(np.exp(rng.uniform(-30, 0, 20000)))],
        "log": [rng.uniform(0, 4, 20000),
                np.exp(rng.uniform(-big - 10, big, 40000))],
        "log1p": [rng.uniform(-1, 4, 30000), np.exp(rng.uniform(-40, 40, 20000)),
                  -np.exp(rng.uniform(-40, 0, 20000))],
        "tanh": [rng.uniform(-10, 10, 30000), both(np.exp(rng.uniform(-30, 1, 20000)))],
        "sigmoid": [rng.uniform(-20, 20, 30000), rng.uniform(-big, big, 20000)],
        "erf": [rng.uniform(-7, 7, 40000), rng.uniform(-1.2, 1.2, 20000),
                both(np.exp(rng.uniform(-30, 0, 10000)))],
        "sin": [rng.uniform(-10, 10, 30000), rng.uniform(-1e5, 1e5, 20000),
                rng.uniform(-1e9, 1e9, 10000)],
    }
    chunks["cos"] = chunks["sin"]
    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-30, -1e-30, 3e-39, -3e-39]
    return np.concatenate(chunks[name] + [np.array(specials)]).astype(dtype)


# measured maxima are about half of these (see the module docstring of llvm_math)
ULP_LIMIT = {
    (F32, "exp"): 1.5, (F64, "exp"): 1.5, (F32, "log"): 1.5, (F64, "log"): 1.5,
    (F32, "log1p"): 1.5, (F64, "log1p"): 1.5, (F32, "expm1"): 2.5, (F64, "expm1"): 2.5,
    (F32, "tanh"): 3.5, (F64, "tanh"): 3.5, (F32, "sigmoid"): 3.5, (F64, "sigmoid"): 3.5,
    (F32, "erf"): 2.5, (F64, "erf"): 2.5, (F32, "sin"): 2.5, (F64, "sin"): 2.5,
    (F32, "cos"): 2.5, (F64, "cos"): 2.5,
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_transcendental_is_accurate_in_ulps(name, dtype):
    x = _inputs(name, dtype)
    with np.errstate(all="ignore"):
        out = kernel(name, dtype)(x)
        ref = REFERENCE[name](reference_input(x, dtype))
    err = max_ulp_error(out, ref, dtype)
    assert err <= ULP_LIMIT[dtype, name], f"{name} {dtype.__name__}: max error {err:.2f} ulp"


def _pow_inputs(dtype):
    rng = np.random.default_rng(7)
    lim = 85.0 if dtype == F32 else 700.0
    x1 = np.exp(rng.uniform(-20, 20, 30000))
    y1 = rng.uniform(-1, 1, x1.size) * lim / np.abs(np.log(x1))
    x2 = 1 + rng.uniform(-1e-3, 1e-3, 10000)                     # near 1, huge exponents
    y2 = rng.uniform(-1, 1, x2.size) * lim / np.abs(np.log(x2))
    x3 = -np.exp(rng.uniform(-5, 5, 10000))                      # negative base, integer y
    y3 = np.round(rng.uniform(-30, 30, x3.size))
    x4 = rng.uniform(0, 3, 10000)
    y4 = rng.uniform(-3, 3, x4.size)
    return (np.concatenate([x1, x2, x3, x4]).astype(dtype),
            np.concatenate([y1, y2, y3, y4]).astype(dtype))


@pytest.mark.parametrize("dtype,limit", [(F32, 1.0), (F64, 16.0)], ids=["f32", "f64"])
def test_pow_is_accurate_in_ulps_up_to_the_overflow_threshold(dtype, limit):
    # float64's worst case is |y log x| ~ 700, where log x must be right to ~2^-64
    x, y = _pow_inputs(dtype)
    out = kernel("pow", dtype)(x, y)
    with np.errstate(all="ignore"):
        ref = np.power(reference_input(x, dtype), reference_input(y, dtype))
    finite = np.abs(ref) > np.finfo(dtype).tiny
    assert max_ulp_error(out[finite], ref[finite], dtype) <= limit


def _c99_pow(x: float, y: float) -> float:
    """C99 Annex F pow, from math.pow plus its documented exceptions."""
    odd = float(y).is_integer() and abs(y) < 2 ** 53 and int(y) % 2 == 1
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if (x < 0 and odd) else math.inf
    except ValueError:
        if x == 0 and y < 0:
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pow_special_cases_follow_c99(dtype):
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, 1e10, -1e10,
            1e-10, math.inf, -math.inf, math.nan]
    xs, ys = (np.array(v, dtype) for v in zip(*[(a, b) for a in vals for b in vals]))
    out = kernel("pow", dtype)(xs, ys)
    for x, y, got in zip(xs, ys, out):
        want = dtype(_c99_pow(float(x), float(y)))
        if np.isnan(want):
            assert np.isnan(got), (x, y, got)
        elif want == 0 or np.isinf(want):
            assert got == want and np.signbit(got) == np.signbit(want), (x, y, got, want)
        else:
            assert abs(got - want) <= 2 * np.spacing(abs(want)), (x, y, got, want)


def _same(got, want):
    """Equal values, NaN where NaN, and the same sign on zeros."""
    np.testing.assert_array_equal(got, want)
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))


SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e300, 1e30, -1e30, 1e-45, -1e-45]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "tanh", "sin", "cos"])
def test_limits_match_numpy(name, dtype):
    """inf, nan, zeros of both signs, overflow, underflow: exp(huge) = inf, log(0) = -inf,
    log(negative) = nan, expm1(-huge) = -1, tanh(huge) = +-1, sin(inf) = nan..."""
    values = SPECIAL + [-1.0, -2.0, 1000.0, -1000.0, 89.0, -104.0, 710.0, -746.0]
    if name in ("sin", "cos"):   # past 2**50 see test_sin_cos_of_huge_arguments_stay_bounded
        values = [v for v in values if not 2.0 ** 50 < abs(v) < math.inf]
    with np.errstate(all="ignore"):
        x = np.array(values, dtype)
        got, want = kernel(name, dtype)(x), getattr(np, name)(x)
    exact = ~np.isfinite(want) | (want == 0) | (np.abs(want) == 1)
    _same(got[exact], want[exact])
    np.testing.assert_allclose(got[~exact], want[~exact], rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_saturating_functions_reach_their_limits_without_nan(dtype):
    sat = [9, 9.5] if dtype == F32 else [20, 25]   # tanh rounds to 1 from here on
    x = np.array(sat + [50, 1e10, 1e30, np.inf], dtype)
    x = np.concatenate([x, -x])
    one = np.sign(x)
    _same(kernel("tanh", dtype)(x), one)
    _same(kernel("erf", dtype)(x), one)
    big = np.array([800, 1e10, 1e30, np.inf], dtype)
    _same(kernel("sigmoid", dtype)(np.concatenate([big, -big])),
          np.array([1] * 4 + [0] * 4, dtype))
    _same(kernel("erf", dtype)(np.array([0.0, -0.0, np.nan], dtype)),
          np.array([0.0, -0.0, np.nan], dtype))
    assert np.isnan(kernel("sigmoid", dtype)(np.array([np.nan], dtype))[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_subnormal_results_flush_and_subnormal_inputs_stay_accurate(dtype):
    info = np.finfo(dtype)
    lo = np.log(float(info.smallest_subnormal))
    x = np.linspace(lo + 0.5, np.log(float(info.tiny)) + 2, 5001).astype(dtype)  # exp underflows
    ref = np.exp(reference_input(x, dtype))
    out = kernel("exp", dtype)(x)
    assert np.all(out[ref < info.tiny] == 0)
    assert max_ulp_error(out[ref >= info.tiny], ref[ref >= info.tiny], dtype) <= 1.0
    sub = (np.arange(1, 5001) * info.smallest_subnormal * 977).astype(dtype)  # log of subnormals
    assert max_ulp_error(kernel("log", dtype)(sub), np.log(reference_input(sub, dtype)),
                         dtype) <= 1.5


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sin_cos_of_huge_arguments_stay_bounded(dtype):
    # beyond 2**50 the reduction is not exact; results must still be finite and in [-1, 1]
    x = np.array([2.0 ** 60, -2.0 ** 80, 1e30, 3e38, -3e38], dtype)
    for name in ("sin", "cos"):
        out = kernel(name, dtype)(x)
        assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1)


def _round_half_away(x):
    a = np.abs(x)
    return np.copysign(np.floor(a) + (a - np.floor(a) >= 0.5), x)


EXACT = {
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "floor": np.floor, "ceil": np.ceil,
    "trunc": np.trunc, "round": _round_half_away, "abs": np.abs, "sign": np.sign,
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_functions_match_numpy_bit_for_bit(name, dtype):
    rng = np.random.default_rng(3)
    halves = np.arange(-20, 21) / 2
    with np.errstate(all="ignore"):   # 1e300 overflows to inf in float32, on purpose
        x = np.concatenate([rng.uniform(-100, 100, 5000), halves, SPECIAL,
                            [0.49999997, -0.49999997, 0.49999999999999994, 2.0 ** 52 + 1,
                             2.0 ** 23 + 0.5]]).astype(dtype)
        _same(kernel(name, dtype)(x), EXACT[name](x).astype(dtype))


@pytest.mark.parametrize("dtype,lanes", [(F32, 8), (F32, 16), (F64, 4)])
@pytest.mark.parametrize("name", ["exp", "log", "tanh", "erf", "sin", "pow"])
def test_vector_typed_operands_give_the_scalar_results(name, dtype, lanes):
    x, y = _pow_inputs(dtype)
    x, y = np.abs(x[:4096]), y[:4096]
    scalar = kernel(name, dtype)
    vector = kernel(name, dtype, lanes)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(vector(x, y), scalar(x, y), rtol=4 * np.finfo(dtype).eps)


_VECTOR_TYPE = re.compile(r"<(\d+) x (float|double)>")
_CALL = re.compile(r"call [^@]*@([\w.]+)")


def test_exp_loop_vectorises_for_float32():
    ir_text = kernel("exp", F32).optimized_ir
    widths = {int(n) for n, t in _VECTOR_TYPE.findall(ir_text) if t == "float"}
    assert widths & {4, 8, 16}, "the exp loop was not vectorised"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(llvm_math.SUPPORTED))
def test_every_function_inlines_and_vectorises(name, dtype):
    ir_text = kernel(name, dtype).optimized_ir
    assert _VECTOR_TYPE.search(ir_text), f"{name} {dtype.__name__}: loop stayed scalar"
    callees = {c for c in _CALL.findall(ir_text) if not c.startswith("llvm.")}
    assert not callees, f"{name}: calls survive optimisation: {callees}"


def test_each_function_is_emitted_once_per_module_and_type():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.FloatType()]), "f")
    bld = ir.IRBuilder(fn.append_basic_block())
    v = llvm_math.emit(bld, "tanh", llvm_math.emit(bld, "tanh", fn.args[0]))
    bld.ret(v)
    names = [g.name for g in module.functions]
    assert names.count("graphc.math.tanh.f32") == 1
    assert "graphc.math.expm1.f32" in names      # tanh reuses expm1


def test_bad_requests_name_the_problem():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.FloatType(), ir.IntType(32)]), "f")
    bld = ir.IRBuilder(fn.append_basic_block())
    x, i = fn.args
    with pytest.raises(ValueError, match="unknown function 'gamma'"):
        llvm_math.emit(bld, "gamma", x)
    with pytest.raises(ValueError, match="two operands"):
        llvm_math.emit(bld, "pow", x)
    with pytest.raises(ValueError, match="one operand"):
        llvm_math.emit(bld, "exp", x, x)
    with pytest.raises(TypeError, match="expected float, double"):
        llvm_math.emit(bld, "exp", i)
