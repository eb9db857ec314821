"""Every operator case of tests/ops/op_cases.py compiled (the full pipeline: passes, lowering,
LLVM) and compared with the case's independent numpy expectation; every differentiable case's
compiled gradient graph compared with central differences of the compiled forward.

test_op_forward.py checks the numpy references, test_op_formulas.py the scalar formulas as
numpy evaluates them; only here does the code the CPU backend generates for each operator run.
The coverage test at the bottom fails when an operator with a native lowering is added without
a case that compiles it natively (not on the host fallback)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import graphc.ops as ops
from graphc.compiler import compile_graph
from graphc.ops import get_op
from graphc.ops.registry import Elementwise
from graphc.ops.types import TensorType
from graphc.runtime.index_kernels import LOWERED as INDEX_KERNEL_OPS
from graphc.runtime.lower import HostStep
from graphc.runtime.grid_kernels import LOWERED as GRID_KERNEL_OPS
from graphc.runtime.sort_kernels import LOWERED as SORT_KERNEL_OPS
from graphc.runtime.lrn_kernels import LOWERED as LRN_KERNEL_OPS
from gradcheck import build, reverse_mode
from op_cases import CASES
from test_op_gradients import FD_CASES

# Operators whose declaration has no `lowering` but which runtime/conv_steps.py lowers natively
# through its own hook (pooling's gradient pieces, adaptive pooling), or runtime/index_kernels.py
# through its (one_hot, SequenceMask, argmax/argmin, norm, L2Normalization), or runtime/sort_kernels.py
# (sort, argsort, topk), runtime/grid_kernels.py (GridGenerator), runtime/lrn_kernels.py (LRN).
# Listed so the coverage test holds them to the same rule; test_runtime_hook_list_is_complete
# keeps the list honest.
LOWERED_BY_RUNTIME_HOOK = frozenset({"_max_pool_gather", "_contrib_AdaptiveAvgPooling2D",
                                     "_adaptive_avg_pool_grad", "Dropout"}) | INDEX_KERNEL_OPS | SORT_KERNEL_OPS \
    | GRID_KERNEL_OPS | LRN_KERNEL_OPS


def natively_lowered_ops() -> set:
    """Every operator the CPU backend can lower to kernels: a declared lowering (Elementwise,
    Reduction, Library, View, Movement, Take) or the runtime's pooling hook."""
    return {name for name, op in ops.all_ops().items() if op.lowering is not None} | LOWERED_BY_RUNTIME_HOOK


@functools.lru_cache(maxsize=None)
def _compiled(index: int, dtype: str):
    """The program for CASES[index] with its float64 inputs cast to `dtype` (None: as given).
    Memoised: the forward, gradient and coverage tests share one compile per worker."""
    c = CASES[index]
    arrays = _inputs(c, dtype)
    b, _, outs = build(c.op, arrays, c.attrs)
    return compile_graph(b.build(outs), training=c.training), arrays


def _inputs(c, dtype):
    if dtype is None:
        return [a.copy() for a in c.inputs]
    return [a.astype(dtype) if a.dtype == np.float64 else a.copy() for a in c.inputs]


def _as_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _ops_in(fused) -> set:
    """Operator names in a fused graph, fused bodies opened."""
    out = set()
    for n in fused.nodes:
        if n.is_var or n.is_const:
            continue
        if n.op.startswith("_fused"):
            out |= {m.op for m in n.attrs["body"].graph.op_nodes()}
        else:
            out.add(n.op)
    return out


def natively_compiled_ops(prog) -> set:
    """Operators the program runs as compiled code (kernels or views): present in the fused
    graph and not a host step."""
    host = {s.node.op for s in prog.steps if isinstance(s, HostStep)}
    return _ops_in(prog.fused) - host


INDEXED = list(enumerate(CASES))


def _case_id(item):
    return f"{item[0]}-{item[1].id}"


@pytest.mark.parametrize("item", INDEXED, ids=_case_id)
def test_compiled_case_matches_the_numpy_expectation(item):
    i, c = item
    prog, arrays = _compiled(i, None)
    outs = prog(arrays, rng=np.random.default_rng(7))
    if c.check is not None:
        c.check(outs, c.inputs)
        return
    want = _as_list(c.expect(*c.inputs))
    assert len(outs) == len(want), f"{c.op}: {len(outs)} compiled outputs, expected {len(want)}"
    for k, (got, exp) in enumerate(zip(outs, want)):
        exp = np.asarray(exp)
        assert got.shape == exp.shape, f"{c.op} output {k}: compiled shape {got.shape}, expected {exp.shape}"
        np.testing.assert_allclose(got, exp, rtol=max(c.rtol, 1e-12), atol=1e-12,
                                   err_msg=f"{c.op} output {k} (compiled, float64 inputs)")


FLOAT32_CASES = [(i, c) for i, c in INDEXED if c.f32 and c.check is None and c.inputs
                 and all(a.dtype == np.float64 for a in c.inputs)]


@pytest.mark.parametrize("item", FLOAT32_CASES, ids=_case_id)
def test_compiled_case_in_float32_matches_the_numpy_expectation(item):
    i, c = item
    prog, arrays = _compiled(i, "float32")
    outs = prog(arrays)
    want = _as_list(c.expect(*[a.astype(np.float64) for a in arrays]))
    for k, (got, exp) in enumerate(zip(outs, want)):
        exp = np.asarray(exp)
        if exp.dtype == np.float64:
            assert got.dtype == np.float32, f"{c.op} compiled turned float32 inputs into {got.dtype}"
        np.testing.assert_allclose(got.astype(np.float64), exp, rtol=2e-5, atol=2e-6,
                                   err_msg=f"{c.op} output {k} (compiled, float32 inputs)")


# -- wide inputs: the vectorised loop body, not just the scalar remainder ------------------------
# The cases' inputs are a handful of elements, fewer than one AVX-512 loop iteration (16 floats,
# unrolled); 3 x 67 elements go through the vector body several times and leave a remainder.
WIDE = (3, 67)


def _widen(c):
    """The case with every input tiled to WIDE (same values, so the domain holds), or None when
    its inputs are not all one shape (broadcasting cases keep their own geometry) or its
    expectation is a fixed array."""
    shapes = {a.shape for a in c.inputs}
    if len(shapes) != 1 or not c.inputs or c.inputs[0].size == 0:
        return None
    wide = [np.resize(a.ravel(), WIDE) for a in c.inputs]
    try:
        expected = _as_list(c.expect(*wide))
    except ValueError:
        return None         # a target shape in the attributes (broadcast_to): its own geometry only
    if any(np.shape(w) != WIDE for w in expected):
        return None         # an expectation written out for the case's own values
    return wide


WIDE_CASES = [(i, c) for i, c in INDEXED if isinstance(get_op(c.op).lowering, Elementwise)
              and c.check is None and _widen(c) is not None]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("item", WIDE_CASES, ids=_case_id)
def test_compiled_elementwise_case_on_a_vector_width_input(item, dtype):
    _, c = item
    arrays = [a.astype(dtype) if a.dtype == np.float64 else a for a in _widen(c)]
    b, _, outs = build(c.op, arrays, c.attrs)
    prog = compile_graph(b.build(outs), training=c.training)
    assert c.op in natively_compiled_ops(prog), f"{c.op}: a {WIDE} input ran on the host, not compiled"
    got = prog(arrays)
    want = _as_list(c.expect(*[a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays]))
    tol = dict(rtol=max(c.rtol, 1e-12), atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    for k, (g, exp) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g.astype(np.float64), np.asarray(exp, np.float64), **tol,
                                   err_msg=f"{c.op} output {k} (compiled, {dtype}, shape {WIDE})")


# -- extreme inputs ---------------------------------------------------------------------------------
# Values where textbook formulas overflow, cancel or lose their sign: zeros of both signs,
# subnormal-scale and huge magnitudes (x*x overflows from 1.8e19 in float32), the edges where
# exp overflows but cosh does not, +-1 (the ends of arctanh's and arccosh's domains), inf, NaN.
_SPECIAL = [0.0, -0.0, 1e-300, -1e-300, 1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.5, 0.999, -0.999, 1.0, -1.0,
            1.001, 2.0, -2.0, 3.0, 8.0, -8.0, 10.0, 100.0, -100.0, 88.8, -88.8, 89.2, 709.9, -709.9, 710.3,
            1e10, 1e15, 1e19, 1e20, -1e20, 1e30, 1e38, 1e155, -1e155, 1e300, np.inf, -np.inf, np.nan]
# runtime/llvm_math.py reduces sin/cos exactly only below 2**50 (documented: beyond it a double's
# spacing exceeds 1/8 of a period, and the results are bounded but not accurate)
_TRIG_LIMIT = {"sin": 2.0 ** 50, "cos": 2.0 ** 50, "tan": 2.0 ** 50,
               # their reflection below 1/2 (graphc/ops/special_formulas.py) takes sin(pi x)
               **{name: 2.0 ** 50 / np.pi for name in ("_digamma", "_trigamma")}}


def _special_values(dtype, limit=np.inf):
    with np.errstate(over="ignore"):
        x = np.array(_SPECIAL, np.float64).astype(dtype)
    keep = (np.abs(x) <= limit) | np.isnan(x)
    x = np.unique(x[keep])          # float32 folds several values into 0, inf
    return np.concatenate([x, x[::-1], x])     # three passes: the vector body and the tail


def _assert_same_special(got, ref, dtype, what):
    """Equal NaN positions, equal infinities, else within a few units in the last place; results
    below the smallest normal may differ by that much (numpy's own reference flushes sigmoid(-100)
    to 0 in float32 where the compiled code gives the right subnormal)."""
    info = np.finfo(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=f"{what}: NaN where the reference has none, or not")
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=8 * float(info.eps), atol=float(info.tiny), err_msg=what)


def _unary_float_ops():
    out = []
    for name, op in sorted(ops.all_ops().items()):
        if not isinstance(op.lowering, Elementwise):
            continue
        try:
            attrs = op.parse({})
            if len(op.input_names(attrs)) != 1 or op.infer_types([TensorType((2,), "float64")], attrs)[0].dtype != "float64":
                continue
        except Exception:
            continue        # needs attributes (Cast, clip, Activation, the *_scalar family)
        out.append(name)
    return out


UNARY_FLOAT_OPS = _unary_float_ops()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", UNARY_FLOAT_OPS)
def test_compiled_unary_op_on_extreme_inputs_matches_its_reference(name, dtype):
    x = _special_values(dtype, _TRIG_LIMIT.get(name, np.inf))
    b, _, outs = build(name, [x], {})
    prog = compile_graph(b.build(outs))
    assert name in natively_compiled_ops(prog), f"{name} ran on the host"
    (got,) = prog([x])
    with np.errstate(all="ignore"):
        (ref,) = get_op(name).run([x], get_op(name).parse({}))
    _assert_same_special(got, ref, dtype, f"{name}({dtype}) on {x[:len(x) // 3]}")


BINARY_FLOAT_OPS = ["broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_mod",
                    "broadcast_power", "broadcast_maximum", "broadcast_minimum", "broadcast_hypot"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", BINARY_FLOAT_OPS)
def test_compiled_binary_op_on_extreme_inputs_matches_its_reference(name, dtype):
    with np.errstate(over="ignore"):
        v = np.unique(np.array([0.0, -0.0, 1e-30, 0.5, -0.5, 1.0, -1.0, 2.0, -3.5, 10.0, 1e20, -1e20, 1e30,
                                1e200, np.inf, -np.inf, np.nan]).astype(dtype))
    a, b_ = (m.ravel() for m in np.meshgrid(v, v, indexing="ij"))
    if name == "broadcast_power":
        # numpy gives NaN for (-inf) ** 0.5, C99's pow (and MXNet, and the compiled code) +inf
        keep = ~((a == -np.inf) & (np.floor(b_) != b_))
        a, b_ = a[keep], b_[keep]
    bld, _, outs = build(name, [a, b_], {})
    prog = compile_graph(bld.build(outs))
    (got,) = prog([a, b_])
    with np.errstate(all="ignore"):
        (ref,) = get_op(name).run([a, b_], get_op(name).parse({}))
    _assert_same_special(got, ref, dtype, f"{name}({dtype})")


# -- gradients ----------------------------------------------------------------------------------
def _seeded():
    """The same random stream for every call: a random op (Dropout in training, RNN's dropout
    between layers) draws the same mask in each evaluation and in the gradient graph's forward."""
    return np.random.default_rng(0)


def _fd_of_compiled(prog, arrays, heads, wrt, eps=1e-6):
    """Central differences of sum_j <out_j, head_j> w.r.t. inputs `wrt`, every evaluation a call
    of the compiled forward."""
    def f(arrs):
        return sum(float(np.sum(y.astype(np.float64) * h)) for y, h in zip(prog(arrs, rng=_seeded()), heads))

    result = []
    for i in wrt:
        g = np.zeros(arrays[i].shape)
        for k in np.ndindex(*arrays[i].shape):
            arrs = [a.copy() for a in arrays]
            arrs[i][k] += eps
            up = f(arrs)
            arrs[i][k] -= 2 * eps
            g[k] = (up - f(arrs)) / (2 * eps)
        result.append(g)
    return result


_FD_IDS = {id(c) for c in FD_CASES}
GRAD_CASES = [(i, c) for i, c in INDEXED if id(c) in _FD_IDS]


@pytest.mark.parametrize("item", GRAD_CASES, ids=_case_id)
def test_compiled_gradient_matches_finite_differences_of_the_compiled_forward(item):
    i, c = item
    prog, arrays = _compiled(i, None)
    rng = np.random.default_rng(3)
    heads = [rng.standard_normal(o.shape).astype(o.dtype) for o in prog(arrays, rng=_seeded())]
    wrt = c.differentiable_inputs()
    b, xs, outs = build(c.op, arrays, c.attrs)
    hs = [b.var(f"g{k}", TensorType(h.shape, h.dtype), kind="ograd") for k, h in enumerate(heads)]
    grads = reverse_mode(b, outs, hs, [xs[k] for k in wrt])
    live = [g for g in grads if g is not None]
    got = iter(compile_graph(b.build(live), training=c.training)(arrays + heads, rng=_seeded()) if live else [])
    want = _fd_of_compiled(prog, arrays, heads, wrt)
    for k, g, n in zip(wrt, grads, want):
        value = next(got) if g is not None else np.zeros_like(arrays[k])
        assert value.shape == arrays[k].shape
        np.testing.assert_allclose(value, n, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{c.op}: compiled gradient of input {k}")


# -- coverage -------------------------------------------------------------------------------------
def _natively_compiled_by_cases() -> set:
    native = set()
    for i, c in INDEXED:
        prog, _ = _compiled(i, None)
        if c.op in natively_compiled_ops(prog):
            native.add(c.op)
    return native


def test_every_natively_lowered_operator_is_compiled_natively_by_a_case():
    """A lowering no case compiles is code no test runs: add a case to op_cases.py whose
    geometry takes the native path (its host fallback does not count)."""
    missing = sorted(natively_lowered_ops() - _natively_compiled_by_cases())
    assert not missing, (f"operators with a native lowering that no case in tests/ops/op_cases.py "
                         f"compiles natively: {missing}")


def test_runtime_hook_list_is_complete():
    """An operator compiled natively without a declared lowering must be in
    LOWERED_BY_RUNTIME_HOOK, so the coverage test would miss it if its cases went away."""
    undeclared = {name for name in _natively_compiled_by_cases() if get_op(name).lowering is None}
    assert undeclared <= LOWERED_BY_RUNTIME_HOOK, \
        f"natively compiled without a declared lowering, add to LOWERED_BY_RUNTIME_HOOK: {sorted(undeclared - LOWERED_BY_RUNTIME_HOOK)}"
    for name in LOWERED_BY_RUNTIME_HOOK:
        assert get_op(name).lowering is None, f"{name} now declares a lowering: drop it from LOWERED_BY_RUNTIME_HOOK"
