"""The small-M GEMV kernel (runtime/gemv_kernel.py) computes what numpy does for every layout it
takes: M = 1..4, B transposed (FullyConnected's weight) or not, A transposed at M = 1, padded
leading dimensions, offsets, alpha and beta, K and N that are not multiples of the vector width
or of a block; over any [start, end) slice of the outputs (the pool's chunks); and a compiled
Dense network at batch 1 and 2 runs through it and matches numpy."""
import ctypes
import re

import numpy as np
import pytest

from graphc.runtime import cache as _cache
from graphc.runtime import gemv_kernel
from graphc.runtime.kernel_ir import Buf, Gemm, Kernel
from graphc.runtime.render_llvm import ModuleBuilder

needs_vectors = pytest.mark.skipif(gemv_kernel.host_geometry() is None, reason="no FMA vector unit")
RNG = np.random.default_rng(5)


@pytest.fixture(params=["avx512", "avx2"])
def lanes(request, monkeypatch):
    """Each test with 16-lane (AVX-512) and 8-lane (AVX2) vectors, where the host runs them."""
    from gemm_isas import ISAS, host_features
    isa = ISAS[request.param]
    if not set(isa.features) <= host_features():
        pytest.skip(f"needs {isa.name}")
    monkeypatch.setattr(gemv_kernel, "host_geometry", lambda: isa.geometry)
    return isa.geometry.lanes


def make(m, n, k, ta=False, tb=True, pad=(0, 0, 0), offs=(0, 0, 0), alpha=1.0, beta=0.0):
    lda = (m if ta else k) + pad[0]
    ldb = (k if tb else n) + pad[1]
    ldc = n + pad[2]
    return Gemm("a", "b", "c", m, n, k, ta, tb, lda, ldb, ldc, "float32", alpha=alpha, beta=beta,
                off_a=offs[0], off_b=offs[1], off_c=offs[2])


def operand(rows, cols, ld, off):
    """A flat buffer with garbage around a rows x cols matrix (leading dimension ld) at `off`."""
    flat = RNG.standard_normal(off + (rows - 1) * ld + cols + 3).astype(np.float32)
    return flat, np.lib.stride_tricks.as_strided(flat[off:], (rows, cols), (ld * 4, 4))


def run(g: Gemm, nthreads=1, split_work=1 << 18, chunks=None, parts=None):
    """C after the module's entry ran g (or, with chunks, the .gemv function over each [s, e)
    in turn; with parts, the per-thread wrapper for each part), and the float64 numpy reference."""
    a, av = operand(*((g.k, g.m) if g.trans_a else (g.m, g.k)), g.lda, g.off_a)
    b, bv = operand(*((g.n, g.k) if g.trans_b else (g.k, g.n)), g.ldb, g.off_b)
    c, cv = operand(g.m, g.n, g.ldc, g.off_c)
    ref = c.astype(np.float64)
    prod = (av.T if g.trans_a else av).astype(np.float64) @ (bv.T if g.trans_b else bv).astype(np.float64)
    new = g.alpha * prod + g.beta * cv.astype(np.float64)
    np.lib.stride_tricks.as_strided(ref[g.off_c:], (g.m, g.n), (g.ldc * 8, 8))[...] = new
    kernel = Kernel("k_gemv_test", [Buf("c", "float32", c.size), Buf("a", "float32", a.size),
                                    Buf("b", "float32", b.size)], [g], work=2 * g.m * g.n * g.k)
    tm = _cache.target_machine()

    def build_ir():
        mb = ModuleBuilder("t", nthreads, tm.triple, str(tm.target_data), gemm_split_work=split_work)
        mb.add_entry("entry", [(kernel, [(0, 0), (1, 0), (2, 0)])])
        if parts:
            gemv_kernel.emit(mb.module, kernel, parts)
        return str(mb)
    text = build_ir()
    assert re.search(r'define void @"k_gemv_test\.gemv"', text), "expected the GEMV kernel to run " + str(g)
    wrapper = f"k_gemv_test.gemv.p{parts}"
    addrs, _, engine = _cache.load("unused", build_ir, ["entry", "k_gemv_test.gemv"] + ([wrapper] if parts else []),
                                   use_cache=False)
    args = (ctypes.c_void_p * 3)(c.ctypes.data, a.ctypes.data, b.ctypes.data)
    if parts:
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(addrs[wrapper])
        for p in reversed(range(parts)):
            fn(args, p, p + 1)
    elif chunks is None:
        ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])(args)
    else:
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(addrs["k_gemv_test.gemv"])
        for s, e in chunks:
            fn(args, s, e)
    del engine
    return c, ref.astype(np.float32)


def check(g, **kw):
    got, ref = run(g, **kw)
    tol = 3e-5 * max(1.0, float(np.abs(ref).max())) * max(1, g.k) ** 0.5
    np.testing.assert_allclose(got, ref, rtol=3e-5, atol=tol, err_msg=str(g))


SHAPES = [(1, 512, 784), (1, 10, 512), (1, 1, 1), (1, 7, 3), (1, 33, 17), (1, 9, 16), (2, 13, 35),
          (3, 21, 50), (4, 40, 129), (2, 1, 64), (1, 130, 1)]


@needs_vectors
@pytest.mark.parametrize("tb", [True, False], ids=["weight_n_by_k", "weight_k_by_n"])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemv_matches_numpy(m, n, k, tb, lanes):
    check(make(m, n, k, tb=tb))


@needs_vectors
@pytest.mark.parametrize("tb", [True, False])
def test_padding_offsets_alpha_beta(tb):
    check(make(2, 37, 45, tb=tb, pad=(3, 5, 2), offs=(4, 7, 1), alpha=0.5, beta=-1.5))
    check(make(1, 70, 33, tb=tb, pad=(0, 1, 0), offs=(0, 2, 3), alpha=2.0))


@needs_vectors
@pytest.mark.parametrize("tb", [True, False])
def test_transposed_a_one_row(tb):
    check(make(1, 29, 41, ta=True, tb=tb))


@needs_vectors
def test_transposed_a_several_rows_only_without_transposed_b():
    assert not gemv_kernel.takes(make(2, 8, 8, ta=True, tb=True))
    check(make(3, 23, 19, ta=True, tb=False))


@needs_vectors
@pytest.mark.parametrize("tb", [True, False])
def test_any_output_slices(tb, lanes):
    """The pool hands out arbitrary [start, end) chunks: uneven ones cover the outputs exactly."""
    check(make(2, 101, 37, tb=tb), chunks=[(0, 3), (3, 50), (50, 51), (51, 101)])


@needs_vectors
@pytest.mark.parametrize("parts,n", [(2, 512), (3, 37), (5, 8), (4, 100), (7, 515)])
def test_fixed_parts_cover_the_outputs_once(parts, n, lanes):
    """One part per thread: the parts' output ranges tile [0, n), empty ones included (beta = 1
    would count an output twice if two parts wrote it)."""
    check(make(1, n, 19, beta=1.0), parts=parts)
    check(make(2, n, 33, tb=False, beta=1.0), parts=parts)


@needs_vectors
@pytest.mark.parametrize("tb", [True, False])
def test_split_over_the_pool(tb):
    check(make(1, 515, 300, tb=tb), nthreads=2, split_work=1)


@pytest.mark.parametrize("env,value", [("GRAPHC_GEMV", "0"), ("GRAPHC_GEMM", "native"), ("GRAPHC_GEMM", "blas")])
def test_switches_leave_gemv_off(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    assert not gemv_kernel.takes(make(1, 64, 64))


def test_not_taken_for_wide_batches_or_other_dtypes():
    assert not gemv_kernel.takes(make(5, 64, 64))
    g = make(1, 64, 64)
    assert not gemv_kernel.takes(Gemm(g.a, g.b, g.c, 1, 64, 64, False, True, 64, 64, 64, "float64"))
    assert not gemv_kernel.takes(Gemm(g.a, g.b, g.c, 1, 64, 64, False, True, 64, 64, 64, "float32",
                                      batch=2, stride_a=64, stride_b=4096, stride_c=64))


@needs_vectors
@pytest.mark.parametrize("batch", [1, 2])
def test_dense_network_batch_one_and_two(batch):
    import graphc as mx
    from graphc.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Dense(37, activation="relu"), nn.Dense(19, activation="relu"), nn.Dense(5))
    net.initialize(mx.init.Xavier())
    x = RNG.standard_normal((batch, 23)).astype(np.float32)
    net(mx.nd.array(x))
    net.hybridize(static_alloc=True, static_shape=True)
    got = net(mx.nd.array(x)).asnumpy()
    program = net._cached_op._memo[5][1]        # the inference program the call just ran
    assert len(re.findall(r'define void @"[^"]*\.gemv"', program.llvm_ir())) == 3, "every layer should be a GEMV"
    h = x.astype(np.float64)
    for i, blk in enumerate(net):
        h = h @ blk.weight.data().asnumpy().T.astype(np.float64) + blk.bias.data().asnumpy()
        if i < 2:
            h = np.maximum(h, 0)
    np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-5)
