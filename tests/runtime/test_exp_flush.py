"""Compiled exp and the functions built on it never return a subnormal number: results below the
smallest normal number are exactly 0 (runtime/llvm_math.py's underflow contract), because x86
computes subnormals in microcode and -1e9-masked softmax rows used to crawl through them. Results
above the threshold keep numpy's values; NaN stays NaN and the infinities keep their limits."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType

DTYPES = ["float32", "float64"]


def _compile_unary(op, shape, dtype, **attrs):
    b = GraphBuilder(op)
    x = b.var("x", TensorType(shape, dtype))
    return compile_graph(b.build([getattr(b.F, op)(x, **attrs)]))


def _underflow_sweep(dtype):
    """Dense around the threshold (every value the threshold's neighbourhood offers a vector
    body and a tail), plus masks, infinities and NaN."""
    info = np.finfo(dtype)
    cut = float(np.log(np.float64(info.tiny)))
    lo = float(np.log(np.float64(info.smallest_subnormal)))
    dense = np.linspace(lo - 2, cut + 3, 20011)
    near = cut + np.arange(-600, 601) * float(np.spacing(np.array(cut, dtype)))
    specials = [-1e9, -1e30, -np.inf, np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 80.0, -80.0]
    return np.concatenate([dense, near, specials]).astype(dtype)


def _assert_no_subnormal(got, what):
    info = np.finfo(got.dtype)
    bad = (got != 0) & (np.abs(got) < info.tiny)
    assert not bad.any(), f"{what}: {int(bad.sum())} subnormal results, e.g. {got[bad][:3]}"


def _assert_flushed_close(got, ref, dtype, what, ulps=4):
    """got == ref within `ulps` where ref is a normal number, 0 where ref is below it, equal
    NaN positions and equal infinities (`ulps` broadcasts against got)."""
    info = np.finfo(dtype)
    ref = np.asarray(ref, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=f"{what}: NaN positions")
    tiny = np.abs(ref) < info.tiny
    assert np.all(got[tiny] == 0), f"{what}: nonzero where the exact result is below {info.tiny}"
    # llvm_math's threshold sits a hair above log(tiny): results up to tiny * (1 + 5e-6) may be 0
    edge = (np.abs(ref) < info.tiny * (1 + 1e-5)) & (got == 0)
    ok = ~tiny & ~edge & ~np.isnan(ref)
    assert np.array_equal(got[np.isinf(ref)], ref[np.isinf(ref)]), f"{what}: infinities"
    ok &= ~np.isinf(ref)
    err = np.abs(got[ok] - ref[ok]) / (np.abs(ref[ok]) * float(info.eps))
    limit = np.broadcast_to(ulps, got.shape)[ok]
    assert np.all(err <= limit), f"{what}: {float(np.max(err - limit)):.1f} ulp over the limit"


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_is_zero_below_the_smallest_normal_and_accurate_above(dtype):
    x = _underflow_sweep(dtype)
    got = _compile_unary("exp", x.shape, dtype)([x])[0]
    _assert_no_subnormal(got, f"exp {dtype}")
    with np.errstate(all="ignore"):
        ref = np.exp(x.astype(np.longdouble if dtype == "float64" else np.float64))
    _assert_flushed_close(got, ref, dtype, f"exp {dtype}")
    assert got[x == -np.inf].tolist() == [0.0] and got[x == np.inf].tolist() == [np.inf]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, attrs", [("sigmoid", {}), ("erf", {}), ("tanh", {}), ("expm1", {}),
                                       ("Activation", {"act_type": "softrelu"}),
                                       ("Activation", {"act_type": "sigmoid"})])
def test_functions_built_on_exp_return_no_subnormals(op, attrs, dtype):
    x = _underflow_sweep(dtype)
    got = _compile_unary(op, x.shape, dtype, **attrs)([x])[0]
    _assert_no_subnormal(got, f"{op} {attrs} {dtype}")
    assert np.array_equal(np.isnan(got), np.isnan(x)), f"{op}: NaN positions"


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_flushes_its_far_tail_only(dtype):
    x = _underflow_sweep(dtype)
    got = _compile_unary("sigmoid", x.shape, dtype)([x])[0]
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x64))
        ref = np.where(x64 >= 0, 1 / (1 + e), e / (1 + e))
    _assert_flushed_close(got, ref, dtype, f"sigmoid {dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_power_underflow_is_zero_not_subnormal(dtype):
    b = GraphBuilder("pow")
    shape = (4000,)
    xs = [b.var(n, TensorType(shape, dtype)) for n in ("a", "p")]
    prog = compile_graph(b.build([b.F.broadcast_power(*xs)]))
    rng = np.random.default_rng(1)
    info = np.finfo(dtype)
    base = rng.uniform(1e-3, 0.9, shape)
    # exponents spread the results across the subnormal range and the last normal binades
    target = rng.uniform(np.log(float(info.smallest_subnormal)) - 5, np.log(float(info.tiny)) + 5, shape)
    a, p = base.astype(dtype), (target / np.log(base)).astype(dtype)
    got = prog([a, p])[0]
    _assert_no_subnormal(got, f"power {dtype}")
    ref = np.power(a.astype(np.longdouble), p.astype(np.longdouble))
    _assert_flushed_close(got, ref.astype(np.float64), dtype, f"power {dtype}", ulps=32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_masked_rows_is_exactly_zero_where_masked(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 53)).astype(dtype)
    mask = rng.random(x.shape) < 0.5
    mask[:, 0] = False                       # every row keeps one score
    x[mask] = -1e9
    x[3, 1:] = -np.inf                       # a row whose other scores are -inf
    x[5] *= 30                               # large magnitudes: exp(x - max) spans the range
    got = _compile_unary("softmax", x.shape, dtype, axis=-1)([x])[0]
    _assert_no_subnormal(got, f"softmax {dtype}")
    assert np.all(got[mask] == 0) and np.all(got[3, 1:] == 0) and got[3, 0] == 1
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(-1, keepdims=True))
    ref = e / e.sum(-1, keepdims=True)
    # exp(x - max) inherits the rounding of x - max: relative error |x - max| eps
    z = np.abs(x64 - x64.max(-1, keepdims=True))
    _assert_flushed_close(got, ref, dtype, f"softmax {dtype}", ulps=8 + np.where(np.isfinite(z), z, 0))
