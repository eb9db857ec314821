"""graphc's own GEMM (runtime/gemm_kernel.py) computes what numpy does, for every layout a
kernel-IR Gemm can state: transposes, leading dimensions, offsets, batch strides, alpha and
beta, edge tiles of every size; and compiled programs that use it (dot, batch_dot,
FullyConnected with its epilogue, a convolution) match the interpreter."""
import ctypes
import itertools
import re
import threading

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime import cache as _cache
from graphc.runtime import gemm_kernel, gemm_plan
from graphc.runtime.gemm_kernel import AVX2, DOT_MAX_COLS, native_plan
from graphc.runtime.kernel_ir import Buf, Gemm, Kernel
from graphc.runtime.render_llvm import ModuleBuilder
from graphc.runtime import llvm_jit

from gemm_isas import ISAS, geometry_params, use_geometry

HOST = gemm_kernel.host_geometry()
needs_vectors = pytest.mark.skipif(HOST is None, reason="no FMA vector unit: OpenBLAS only")
RNG = np.random.default_rng(11)


def _operand(rows, cols, ld, batch, stride, off):
    """A flat buffer holding `batch` rows x cols matrices (leading dimension ld, `stride`
    apart, the first at `off`), garbage in between; and the matrices as strided views."""
    size = off + (batch - 1) * stride + (rows - 1) * ld + cols if rows and cols else off + 1
    flat = RNG.standard_normal(max(size, 1)).astype(np.float32)
    views = [np.lib.stride_tricks.as_strided(flat[off + i * stride:], (rows, cols), (ld * 4, 4))
             for i in range(batch)]
    return flat, views


def _reference(g: Gemm, c_fill):
    ra, ca = (g.k, g.m) if g.trans_a else (g.m, g.k)
    rb, cb = (g.n, g.k) if g.trans_b else (g.k, g.n)
    a, av = _operand(ra, ca, g.lda, g.batch, g.stride_a, g.off_a)
    b, bv = _operand(rb, cb, g.ldb, g.batch, g.stride_b, g.off_b)
    c, cv = _operand(g.m, g.n, g.ldc, g.batch, g.stride_c, g.off_c)
    if c_fill is not None:
        c[:] = c_fill
    ref = c.astype(np.float64)
    for i in range(g.batch):
        prod = (av[i].T if g.trans_a else av[i]).astype(np.float64) @ (bv[i].T if g.trans_b else bv[i])
        new = g.alpha * prod + (g.beta * cv[i].astype(np.float64) if g.beta else 0.0)
        np.lib.stride_tricks.as_strided(ref[g.off_c + i * g.stride_c:], (g.m, g.n), (g.ldc * 8, 8))[...] = new
    return a, b, c, ref.astype(np.float32)


def module_ir(gemms, sizes, nthreads, tm) -> str:
    """One module whose entry calls a kernel per Gemm, each on its own (c, a, b) argument slots;
    sizes: the (c, a, b) buffer sizes of each."""
    calls = []
    for i, (g, (nc, na, nb)) in enumerate(zip(gemms, sizes)):
        kernel = Kernel(f"k_test{i}", [Buf("c", "float32", nc), Buf("a", "float32", na),
                                       Buf("b", "float32", nb)], [g], work=2 * g.m * g.n * g.k * g.batch)
        calls.append((kernel, [(3 * i, 0), (3 * i + 1, 0), (3 * i + 2, 0)]))
    mb = ModuleBuilder("t", nthreads, tm.triple, str(tm.target_data), gemm_split_work=1 << 18)
    mb.add_entry("entry", calls)
    return str(mb)


def run_gemms(gemms, nthreads=2, c_fill=None):
    """Run Gemm kernels (one module, one entry calling each in turn on its own buffers) through
    ModuleBuilder, which reads GRAPHC_GEMM; returns [(C after, numpy reference)] and the IR."""
    data = [_reference(g, c_fill) for g in gemms]
    args = [p for a, b, c, _ in data for p in (c.ctypes.data, a.ctypes.data, b.ctypes.data)]
    sizes = [(c.size, a.size, b.size) for a, b, c, _ in data]
    tm = _cache.target_machine()

    def build_ir():
        return module_ir(gemms, sizes, nthreads, tm)
    text = build_ir()
    addrs, _, engine = _cache.load("unused", build_ir, ["entry"], use_cache=False)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])((ctypes.c_void_p * len(args))(*args))
    del engine
    return [(c, ref) for _, _, c, ref in data], text


def assert_gemms_right(gemms, **kw):
    results, text = run_gemms(gemms, **kw)
    assert len(re.findall(r'define void @"[^"]*\.native"', text)) == len(gemms), \
        "expected graphc's kernel to run every GEMM"
    for g, (got, ref) in zip(gemms, results):
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * scale * max(1, g.k) ** 0.5, err_msg=str(g))
    return text


def assert_gemm_right(g: Gemm, **kw):
    assert_gemms_right([g], **kw)


def make_gemm(m, n, k, ta=False, tb=False, pad=(0, 0, 0), batch=1, shared_a=False, alpha=1.0, beta=0.0,
              offs=(0, 0, 0)):
    lda = (m if ta else k) + pad[0]
    ldb = (k if tb else n) + pad[1]
    ldc = n + pad[2]
    sa = 0 if shared_a else (k if ta else m) * lda + 3
    sb = (n if tb else k) * ldb + 1
    sc = m * ldc + 2
    return Gemm("a", "b", "c", m, n, k, ta, tb, lda, ldb, ldc, "float32", batch=batch, stride_a=sa,
                stride_b=sb, stride_c=sc, alpha=alpha, beta=beta, off_a=offs[0], off_b=offs[1], off_c=offs[2])


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setenv("GRAPHC_GEMM", "native")


@pytest.fixture(params=geometry_params())
def geometry(request, monkeypatch, native):
    """Each test runs with every ISA's blocking the host can execute (AVX-512's 8 x 48 tiles of
    16-lane vectors, AVX2's 6 x 16 of 8 lanes: an AVX-512 host runs both), each also with tiny
    cache blocks (many K slices and tiles); an ISA the host lacks is skipped, naming it."""
    use_geometry(monkeypatch, request.param)
    return request.param


# -- the kernel itself -------------------------------------------------------------------------

@needs_vectors
def test_every_transpose_combination_on_a_prime_shape(geometry):
    assert_gemms_right([make_gemm(37, 61, 53, ta, tb) for ta in (False, True) for tb in (False, True)])


@needs_vectors
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True), (False, True)])
def test_edge_sizes_around_the_tile(geometry, ta, tb):
    mr, nr, w = geometry.mr, geometry.nr, geometry.lanes
    assert_gemms_right([make_gemm(m, n, k, ta, tb) for m in sorted({1, mr - 1, mr + 1, 2 * mr + 3})
                        for n in sorted({1, w + 1, nr - 1, nr + 1}) for k in (1, 5, 17)])


@needs_vectors
def test_a_read_in_place(geometry):
    """Few columns: the microkernel reads A's rows where they lie (no packing of A), whatever
    the edge rows, K slices, leading dimension and batch layout; K not a multiple of the unroll
    keeps packing A."""
    mr, nr, w, kc = geometry.mr, geometry.nr, geometry.lanes, geometry.kc
    gemms = [make_gemm(m, n, k, pad=(3, 0, 1)) for m in sorted({1, mr - 1, mr + 1, 2 * mr + 3})
             for n in sorted({1, w + 1, nr + 1}) for k in (4, 20, 2 * kc + 8)]
    gemms += [make_gemm(19, 49, 36, pad=(5, 2, 0), batch=3, shared_a=shared, beta=1.0 if shared else 0.0,
                        offs=(3, 1, 2)) for shared in (False, True)]
    assert all(native_plan(g, 2).a_direct for g in gemms)
    assert not native_plan(make_gemm(19, 49, 37), 2).a_direct
    assert native_plan(make_gemm(19, 49, 36), 2).a_tasks == 0
    assert_gemms_right(gemms)


def _tail_widths(geo):
    return sorted({1, 2, 3, 4, min(DOT_MAX_COLS, geo.lanes - 1)})


@needs_vectors
def test_narrow_column_tails_are_dot_products(geometry):
    """A few columns past the last full vector, with A read in place, are dot products along K:
    every tail width, edge rows, K with a partial last vector and over several K slices, one or
    several column tiles (the tail goes with the last), B packed per tile or shared, alpha and
    beta, leading dimensions; N below one vector leaves no microkernel panel at all."""
    mr, nr, w, kc, mc = geometry.mr, geometry.nr, geometry.lanes, geometry.kc, geometry.mc
    ms = sorted({1, mr - 1, mr + 1, 2 * mr + 3, 2 * mc + 3})
    bases = (0, w, nr, 2 * nr + w)
    ab = ((1.0, 0.0), (0.5, 0.0), (1.0, 1.0), (-1.5, 0.75))
    gemms = [make_gemm(m, bases[i % len(bases)] + t, k, pad=(3, i % 3, 1), alpha=ab[i % 4][0], beta=ab[i % 4][1])
             for i, (m, t, k) in enumerate(itertools.product(ms, _tail_widths(geometry), (4, 20, 2 * kc + 8)))]
    for g in gemms:
        p = native_plan(g, 2, "native", geometry)
        assert p.a_direct and p.n_dot == g.n % w and p.n_main % w == 0, g
        assert p.b_panels == -(-p.n_main // nr) and (p.b_panels == 0 or p.n_main - (p.b_panels - 1) * nr == p.nr_last)
    text = assert_gemms_right(gemms)
    assert f"graphc.gemm.dot.{mr}x1.w{w}" in text


@needs_vectors
@pytest.mark.parametrize("shared_a", [False, True])
def test_dot_tail_in_batches_with_offsets_and_leading_dimensions(geometry, shared_a):
    """Each matrix of a batch gets its own tail columns of B, whether A is shared or not."""
    w = geometry.lanes
    shapes = ((19, w + 1, 36), (9, 2 * w + 3, 8), (27, 3, 2 * geometry.kc + 12))
    gemms = [make_gemm(m, n, k, pad=(5, 2, 3), batch=3, shared_a=shared_a, beta=1.0 if shared_a else 0.0,
                       offs=(3, 1, 2)) for m, n, k in shapes]
    assert all(native_plan(g, 2, "native", geometry).n_dot for g in gemms)
    assert_gemms_right(gemms)


@needs_vectors
def test_dot_tail_never_reads_c_when_beta_is_zero(native):
    [(got, ref)], _ = run_gemms([make_gemm(21, 49, 36)], c_fill=np.nan)
    assert native_plan(make_gemm(21, 49, 36), 2).n_dot == 1
    assert not np.isnan(got[:21 * 49]).any()


def test_dot_tail_only_for_few_columns_with_a_in_place():
    geo = HOST or AVX2
    w = geo.lanes
    assert native_plan(make_gemm(512, 49, 4608), 2, "auto", geo).n_dot == 49 % w
    assert native_plan(make_gemm(256, 196, 2304), 2, "auto", geo).n_dot == 196 % w
    assert native_plan(make_gemm(256, 192, 2304), 2, "auto", geo).n_dot == 0            # full vectors
    assert native_plan(make_gemm(64, 49, 37), 2, "native", geo).n_dot == 0             # A packed
    assert native_plan(make_gemm(64, 49, 36, ta=True), 2, "native", geo).n_dot == 0    # Aᵀ: packed
    if w > DOT_MAX_COLS + 1:
        assert native_plan(make_gemm(64, w - 1, 36), 2, "native", geo).n_dot == 0      # most of a vector


@needs_vectors
def test_k_larger_than_the_cache_block_is_summed_over_slices(geometry):
    assert_gemm_right(make_gemm(19, 50, geometry.kc * 2 + 5, False, True))


@needs_vectors
def test_alpha_and_beta(geometry):
    assert_gemms_right([make_gemm(29, 70, 40, alpha=alpha, beta=beta) for alpha, beta in
                        ((1.0, 0.0), (0.5, 0.0), (1.0, 1.0), (-2.0, 1.0), (1.5, 0.75), (1.0, -1.0))])


@needs_vectors
def test_beta_zero_never_reads_c(native):
    [(got, ref)], _ = run_gemms([make_gemm(21, 50, 9)], c_fill=np.nan)
    assert not np.isnan(got[:21 * 50]).any()


@needs_vectors
@pytest.mark.parametrize("shared_a", [False, True])
def test_batches_with_strides_offsets_and_leading_dimensions(geometry, shared_a):
    assert_gemms_right([make_gemm(13, 35, 22, ta, tb, pad=(3, 1, 5), batch=3, shared_a=shared_a,
                                  beta=1.0 if shared_a else 0.0, offs=(7, 2, 5))
                        for ta, tb in ((False, False), (True, True), (False, True), (True, False))])


@needs_vectors
def test_one_thread_runs_every_phase_itself(native):
    assert_gemm_right(make_gemm(45, 77, 31, False, True), nthreads=1)


@needs_vectors
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.builds(
    make_gemm, m=st.integers(1, 70), n=st.integers(1, 110), k=st.integers(1, 70), ta=st.booleans(),
    tb=st.booleans(), pad=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    batch=st.integers(1, 3), alpha=st.sampled_from([1.0, -0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]),
    offs=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5))), min_size=1, max_size=6))
def test_random_gemms_match_numpy(native, gemms):
    assert_gemms_right(gemms)


# -- every ISA's code, whatever the host ---------------------------------------------------------

def test_every_blocking_the_code_generates_for_is_tested():
    """A new vector ISA in gemm_plan (a Geometry it may pick) must join tests/runtime/gemm_isas.py,
    so that the tests above run it where the host can."""
    declared = {v for v in vars(gemm_plan).values() if isinstance(v, gemm_plan.Geometry)}
    assert declared == {isa.geometry for isa in ISAS.values()}
    assert HOST is None or any(HOST.lanes == isa.geometry.lanes and HOST.mr == isa.geometry.mr
                               for isa in ISAS.values())


def test_an_isa_the_host_lacks_is_skipped_naming_it_and_what_the_host_has(monkeypatch):
    import gemm_isas
    monkeypatch.setattr(gemm_isas, "host_features", lambda: {"sse4.2", "avx", "avx2", "fma", "popcnt"})
    assert gemm_isas.missing(ISAS["avx2"]) is None
    assert gemm_isas.missing(ISAS["avx512"]) == "needs AVX-512F and FMA (host has: sse4.2, avx, avx2, fma)"
    params = gemm_isas.geometry_params()
    skipped = {p.id: [m.kwargs["reason"] for m in p.marks] for p in params}
    assert skipped["avx2"] == skipped["avx2-tiny"] == []
    assert skipped["avx512"] == skipped["avx512-tiny"] == [gemm_isas.missing(ISAS["avx512"])]


def _cross_target(cpu):
    import llvmlite.binding as llvm
    llvm_jit._initialise_native_target()
    target = llvm.Target.from_default_triple()
    if not target.triple.startswith(("x86_64", "i686", "i386")):
        pytest.skip(f"the x86 ISAs compile with an x86 LLVM target, this one is {target.triple}")
    return target.create_target_machine(cpu=cpu, opt=3, codemodel="jitdefault")


@pytest.mark.parametrize("key", sorted(ISAS))
def test_each_isa_compiles_for_a_cpu_that_has_it(key, monkeypatch, native):
    """Code for every ISA is built, verified, optimised and turned into machine code for a CPU
    that has it, on any x86 host (an AVX2 host cannot run AVX-512 code, but LLVM can emit it): the
    microkernel lives in that ISA's registers and no wider ones."""
    import llvmlite.binding as llvm
    isa = ISAS[key]
    tm = _cross_target(isa.cpu)
    for geo in (isa.geometry, isa.tiny):
        use_geometry(monkeypatch, geo)
        gemms = [make_gemm(37, 61, 53, False, True), make_gemm(19, 49, 36, pad=(5, 2, 0), batch=3),
                 make_gemm(21, geo.lanes + 3, 36)]          # microkernel tiles, batches, a dot tail
        text = module_ir(gemms, [(1 << 16,) * 3] * len(gemms), 2, tm)
        assert len(re.findall(r'define void @"[^"]*\.native"', text)) == len(gemms)
        mod = llvm.parse_assembly(llvm_jit.split_modules(text)[-1])     # the module of the GEMM code
        mod.verify()
        llvm_jit.optimize(mod, tm)
        asm = tm.emit_assembly(mod)
        assert "vfmadd" in asm, f"{isa.name} ({geo}): no FMA instructions in the microkernel"
        assert f"%{isa.register}" in asm, f"{isa.name} ({geo}): no {isa.register} registers used"
        if isa.register == "ymm":
            assert "%zmm" not in asm, f"{isa.name} ({geo}): code uses AVX-512 registers"


# -- when it is used -----------------------------------------------------------------------------

def test_openblas_keeps_what_the_kernel_does_not_take():
    geo = HOST or AVX2
    big = make_gemm(256, 512, 512)
    assert native_plan(big, 2, "blas", geo) is None
    assert native_plan(make_gemm(1, 512, 512), 2, "auto", geo) is None            # a GEMV
    assert native_plan(make_gemm(4, 4, 4), 2, "auto", geo) is None                # tiny
    assert native_plan(make_gemm(16, 512, 512), 2, "auto", geo) is None           # a few rows
    assert native_plan(make_gemm(256, 32, 510), 2, "auto", geo) is None           # a few columns, A packed
    assert native_plan(make_gemm(256, 300, 1152), 2, "auto", geo) is None         # a few hundred, B as is
    assert native_plan(make_gemm(256, 32, 512), 2, "auto", geo) is not None       # ... A read in place
    assert native_plan(make_gemm(512, 49, 4608), 2, "auto", geo) is not None      # a late 3x3 convolution
    assert native_plan(make_gemm(512, 49, 4608, ta=True), 2, "auto", geo) is None  # Aᵀ: packed, few columns
    assert native_plan(make_gemm(1024, 200, 256, tb=True), 2, "auto", geo) is not None  # ... B transposed
    assert native_plan(make_gemm(20, 800, 200, tb=True), 2, "auto", geo) is not None   # an LSTM step
    assert native_plan(make_gemm(256, 512, 784, tb=True), 2, "auto", geo) is not None  # an MLP layer
    assert native_plan(make_gemm(16, 512, 512), 2, "native", geo) is not None     # forced
    f64 = Gemm("a", "b", "c", 256, 512, 512, False, False, 512, 512, 512, "float64")
    assert native_plan(f64, 2, "native", geo) is None
    assert native_plan(make_gemm(8, 8, 0), 2, "native", geo) is None             # k = 0: C = beta*C
    assert native_plan(make_gemm(4, 4, 4), 2, "native", None) is None or HOST is not None
    assert native_plan(make_gemm(256, 1 << 16, 1 << 10), 2, "native", geo) is None  # packed B too large


def test_the_cache_key_changes_with_the_setting(monkeypatch):
    monkeypatch.setenv("GRAPHC_GEMM", "blas")
    blas = gemm_kernel.cache_tag()
    monkeypatch.setenv("GRAPHC_GEMM", "native")
    assert gemm_kernel.cache_tag() != blas


@needs_vectors
def test_blas_mode_emits_no_native_kernel(monkeypatch):
    monkeypatch.setenv("GRAPHC_GEMM", "blas")
    [(got, ref)], text = run_gemms([make_gemm(64, 64, 64)])
    assert ".native" not in text
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


# -- through compiled programs -------------------------------------------------------------------

def check_program(graph, arrays=None):
    arrays = arrays or [RNG.standard_normal(n.types[0].shape).astype(n.types[0].dtype) for n in graph.inputs]
    prog = compile_graph(graph, cache=False)
    got = prog(arrays)
    for g, r in zip(got, interpret(graph, arrays)):
        scale = max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-5 * scale)
    return prog


@needs_vectors
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_dot_and_batch_dot_programs(native, ta, tb):
    gb = GraphBuilder("dot")
    F = gb.F
    a = gb.var("a", TensorType((53, 37) if ta else (37, 53)))
    b = gb.var("b", TensorType((61, 53) if tb else (53, 61)))
    p = gb.var("p", TensorType((3, 19, 9) if ta else (3, 9, 19)))
    q = gb.var("q", TensorType((3, 50, 19) if tb else (3, 19, 50)))
    prog = check_program(gb.build([F.dot(a, b, transpose_a=ta, transpose_b=tb),
                                   F.batch_dot(p, q, transpose_a=ta, transpose_b=tb) * 2.0]))
    assert ".native" in prog.llvm_ir()


@needs_vectors
def test_fully_connected_with_bias_and_relu_epilogue(native):
    gb = GraphBuilder("fc")
    F = gb.F
    x = gb.var("x", TensorType((33, 70)))
    w = gb.var("w", TensorType((49, 70)), "param")
    b = gb.var("b", TensorType((49,)), "param")
    prog = check_program(gb.build([F.Activation(F.FullyConnected(x, w, b, num_hidden=49), act_type="relu")]))
    assert ".native" in prog.llvm_ir()


@needs_vectors
def test_convolution_through_the_kernel(native):
    gb = GraphBuilder("conv")
    F = gb.F
    x = gb.var("x", TensorType((2, 5, 11, 9)))
    w = gb.var("w", TensorType((12, 5, 3, 3)), "param")
    b = gb.var("b", TensorType((12,)), "param")
    y = F.relu(F.Convolution(x, w, b, kernel=(3, 3), pad=(1, 1), num_filter=12))
    prog = check_program(gb.build([y]))
    assert ".native" in prog.llvm_ir()


@needs_vectors
def test_auto_mode_runs_large_float32_gemms_natively(monkeypatch):
    monkeypatch.setenv("GRAPHC_GEMM", "auto")
    gb = GraphBuilder("big")
    a = gb.var("a", TensorType((256, 512)))
    b = gb.var("b", TensorType((512, 512)))
    prog = check_program(gb.build([gb.F.dot(a, b)]))
    assert ".native" in prog.llvm_ir()


@needs_vectors
def test_two_threads_running_programs_that_share_one_engine(native):
    """Programs built from one graph share machine code and so the packing scratch: whoever
    finds it taken runs OpenBLAS, and both get their own right answer."""
    gb = GraphBuilder("shared")
    a = gb.var("a", TensorType((96, 200)))
    b = gb.var("b", TensorType((120, 200)))
    g = gb.build([gb.F.dot(a, b, transpose_b=True)])
    progs = [compile_graph(g), compile_graph(g)]
    errors = []

    def work(p, seed):
        rng = np.random.default_rng(seed)
        for _ in range(40):
            x = rng.standard_normal((96, 200)).astype(np.float32)
            y = rng.standard_normal((120, 200)).astype(np.float32)
            out = p([x, y])[0]
            if not np.allclose(out, x @ y.T, rtol=1e-4, atol=1e-3):
                errors.append(seed)
    ts = [threading.Thread(target=work, args=(p, i)) for i, p in enumerate(progs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
