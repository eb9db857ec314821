"""A GEMV's elementwise epilogue folded into it (runtime/gemv_kernel.fold, render_llvm's entry):
the entry of a GEMM kernel followed by a bias/activation kernel over its output computes what
numpy does, whether or not the two are folded, over one thread, the pool's fixed parts and any
output slices (an epilogue that is not idempotent, run twice on an output or not at all, shows);
the fold is taken only where it changes nothing but the time; and compiled Dense networks at
batch 1..3 match numpy with it."""
import ctypes
import re

import numpy as np
import pytest

from graphc.ops import scalar as S
from graphc.runtime import cache as _cache
from graphc.runtime import gemv_kernel
from graphc.runtime.kernel_ir import Buf, Gemm, Index, Kernel, Load, Loop, Store
from graphc.runtime.render_llvm import ModuleBuilder

needs_vectors = pytest.mark.skipif(gemv_kernel.host_geometry() is None, reason="no FMA vector unit")
RNG = np.random.default_rng(11)
FLAT = Index((("i0", 1),), 0)


@pytest.fixture(autouse=True)
def folding_on(monkeypatch):
    """The fold is off by default (gemv_kernel's docstring says why); these tests turn it on."""
    monkeypatch.setenv("GRAPHC_GEMV_EPILOGUE", "1")

# (formula over arg 0 = the GEMM's result and arg 1 = a second buffer, numpy of the same)
FORMULAS = {
    "bias_relu": (S.call("max", S.arg(0) + S.arg(1), S.const(0.0)), lambda c, e: np.maximum(c + e, 0)),
    "bias": (S.arg(0) + S.arg(1), lambda c, e: c + e),
    "square_plus": (S.arg(0) * S.arg(0) + S.arg(1), lambda c, e: c * c + e),
    "tanh_scale": (S.call("tanh", S.arg(0)) * S.arg(1), lambda c, e: np.tanh(c) * e),
}


def gemm(m, n, k, tb=True, ldc=None, off_c=0, beta=0.0):
    ldc = n if ldc is None else ldc
    return Gemm("a", "b", "c", m, n, k, False, tb, k, k if tb else n, ldc, "float32", beta=beta, off_c=off_c)


def epilogue(size, formula, extent=None, c_name="c", e_index=FLAT):
    """An elementwise kernel like lowering's: out[i0] = f(out[i0], e[i0]) over `extent` elements."""
    expr, _ = FORMULAS[formula]
    return Kernel("k_ep_" + formula, [Buf(c_name, "float32", size), Buf("e", "float32", size)],
                  [Loop("i0", size if extent is None else extent,
                        [Store(c_name, FLAT, expr, (Load(c_name, FLAT), Load("e", e_index)))])], work=size)


def build(g, ek, e_where=(3, 0), nthreads=1, split_work=1 << 40, parts=None):
    c_size = g.off_c + (g.m - 1) * g.ldc + g.n
    gk = Kernel("k_gemm", [Buf("c", "float32", c_size), Buf("a", "float32", g.m * g.k),
                           Buf("b", "float32", g.n * g.k)], [g], work=2 * g.m * g.n * g.k)
    tm = _cache.target_machine()

    def build_ir():
        mb = ModuleBuilder("t", nthreads, tm.triple, str(tm.target_data), gemm_split_work=split_work)
        mb.add_entry("entry", [(gk, [(0, 0), (1, 0), (2, 0)]), (ek, [(0, 0), e_where])])
        if parts:
            gemv_kernel.emit(mb.module, gk, parts, gemv_kernel.fold(gk, [(0, 0), (1, 0), (2, 0)], ek, [(0, 0), e_where]))
        return str(mb)
    return gk, build_ir


def run(g, formula, nthreads=1, split_work=1 << 40, parts=None, chunks=None):
    """(C after the entry ran, the float64 reference, whether the GEMV and epilogue were folded)."""
    ek = epilogue(g.m * g.n, formula)
    gk, build_ir = build(g, ek, nthreads=nthreads, split_work=split_work, parts=parts)
    text = build_ir()
    folded = re.search(r'define void @"k_gemm\.k_ep_\w+\.gemv"', text) is not None
    a = RNG.standard_normal(g.m * g.k).astype(np.float32)
    b = RNG.standard_normal(g.n * g.k).astype(np.float32)
    c = RNG.standard_normal(g.off_c + (g.m - 1) * g.ldc + g.n).astype(np.float32)
    e = RNG.standard_normal(g.m * g.n).astype(np.float32)
    bm = b.reshape(g.n, g.k).T if g.trans_b else b.reshape(g.k, g.n)
    prod = a.reshape(g.m, g.k).astype(np.float64) @ bm.astype(np.float64)
    assert g.ldc == g.n, "the runs here keep C dense"
    ref = c.astype(np.float64)
    old = ref[g.off_c:g.off_c + g.m * g.n].reshape(g.m, g.n)
    ref[g.off_c:g.off_c + g.m * g.n] = FORMULAS[formula][1](prod + g.beta * old, e.reshape(g.m, g.n)).reshape(-1)
    names = ["entry"]
    wrapper = None
    if parts or chunks:
        wrapper = f"k_gemm.k_ep_{formula}.gemv" + (f".p{parts}" if parts else "")
        names.append(wrapper)
    addrs, _, engine = _cache.load("unused", build_ir, names, use_cache=False)
    args = (ctypes.c_void_p * 4)(c.ctypes.data, a.ctypes.data, b.ctypes.data, e.ctypes.data)
    if wrapper is None:
        ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])(args)
    else:
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(addrs[wrapper])
        # the folded function's bufs: the GEMM kernel's (c, a, b), then the epilogue's (c, e)
        args = (ctypes.c_void_p * 5)(c.ctypes.data, a.ctypes.data, b.ctypes.data, c.ctypes.data, e.ctypes.data)
        spans = [(p, p + 1) for p in reversed(range(parts))] if parts else chunks
        for s, t in spans:
            fn(args, s, t)
    del engine
    return c, ref, folded


def check(g, formula, expect_folded=True, **kw):
    got, ref, folded = run(g, formula, **kw)
    assert folded == expect_folded, f"folded={folded}, expected {expect_folded}: {g}"
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1, g.k) ** 0.5, err_msg=f"{formula} {g}")


@needs_vectors
@pytest.mark.parametrize("formula", sorted(FORMULAS))
@pytest.mark.parametrize("m,n,k,tb", [(1, 512, 784, True), (1, 10, 512, True), (1, 37, 19, False),
                                      (2, 33, 40, True), (3, 21, 50, False), (1, 1, 5, True)])
def test_folded_matches_numpy(m, n, k, tb, formula):
    check(gemm(m, n, k, tb), formula)


@needs_vectors
@pytest.mark.parametrize("formula", ["bias", "bias_relu"])
def test_folded_with_beta(formula):
    check(gemm(1, 70, 33, beta=-1.5), formula)


@needs_vectors
@pytest.mark.parametrize("parts,n", [(2, 512), (3, 37), (5, 8), (7, 515)])
def test_each_part_runs_its_own_slice_once(parts, n):
    """`c + e` applied twice to an output, or not at all, differs from numpy."""
    check(gemm(1, n, 19), "bias", parts=parts)
    check(gemm(2, n, 17, tb=False), "bias", parts=parts)


@needs_vectors
def test_any_output_slices():
    check(gemm(2, 101, 37), "bias", chunks=[(0, 3), (3, 50), (50, 51), (51, 101)])


@needs_vectors
@pytest.mark.parametrize("tb", [True, False])
def test_folded_over_the_pool(tb):
    check(gemm(1, 515, 300, tb), "bias_relu", nthreads=2, split_work=1)


@needs_vectors
@pytest.mark.parametrize("value", ["0", None])
def test_switch_keeps_them_apart(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("GRAPHC_GEMV_EPILOGUE")     # the default
    else:
        monkeypatch.setenv("GRAPHC_GEMV_EPILOGUE", value)
    check(gemm(1, 64, 30), "bias_relu", expect_folded=False)
    assert "noep" in gemv_kernel.cache_tag()


@needs_vectors
def test_not_folded_unless_element_for_element():
    g = gemm(1, 16, 8)
    gk, _ = build(g, epilogue(16, "bias"))
    where = [(0, 0), (1, 0), (2, 0)]
    assert gemv_kernel.fold(gk, where, epilogue(16, "bias"), [(0, 0), (3, 0)]) is not None
    # a loop over other than C's elements
    assert gemv_kernel.fold(gk, where, epilogue(32, "bias", extent=32), [(0, 0), (3, 0)]) is None
    # the epilogue's output somewhere else than C
    assert gemv_kernel.fold(gk, where, epilogue(16, "bias"), [(0, 64), (3, 0)]) is None
    # its other operand overlapping C (same slot, a few elements on): the order would matter
    assert gemv_kernel.fold(gk, where, epilogue(16, "bias"), [(0, 0), (0, 8)]) is None
    # ... but a disjoint part of the same slot (an arena) is fine
    assert gemv_kernel.fold(gk, where, epilogue(16, "bias"), [(0, 0), (0, 64)]) is not None
    # an operand read at another index (a broadcast) than the element's own
    shifted = epilogue(16, "bias", e_index=Index((("i0", 1),), 1))
    assert gemv_kernel.fold(gk, where, shifted, [(0, 0), (3, 0)]) is None
    # C not dense from its buffer's start: rows with padding, or an offset
    g2 = gemm(2, 16, 8, ldc=20)
    gk2, _ = build(g2, epilogue(32, "bias"))
    assert gemv_kernel.fold(gk2, where, epilogue(32, "bias"), [(0, 0), (3, 0)]) is None
    gk3, _ = build(gemm(1, 16, 8, off_c=4), epilogue(16, "bias"))
    assert gemv_kernel.fold(gk3, where, epilogue(16, "bias"), [(0, 0), (3, 0)]) is None


@needs_vectors
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_dense_network_folds_and_matches_numpy(batch, act):
    import graphc as mx
    from graphc.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Dense(45, activation=act), nn.Dense(29, activation=act), nn.Dense(7))
    net.initialize(mx.init.Xavier())
    x = RNG.standard_normal((batch, 31)).astype(np.float32)
    net(mx.nd.array(x))
    net.hybridize(static_alloc=True, static_shape=True)
    got = net(mx.nd.array(x)).asnumpy()
    ir_text = net._cached_op.last.forward[1].llvm_ir()
    if batch == 1:   # the bias (a vector broadcast over rows) is element for element only at M = 1
        assert len(re.findall(r'define void @"k_\w+\.k_\w+\.gemv"', ir_text)) == 3, "every layer's epilogue folded"
    f = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[act]
    h = x.astype(np.float64)
    for i, blk in enumerate(net):
        h = h @ blk.weight.data().asnumpy().T.astype(np.float64) + blk.bias.data().asnumpy()
        if i < 2:
            h = f(h)
    np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-5)
