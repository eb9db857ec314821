"""The CUDA simulator runs the rendered CUDA C of every kernel shape correctly (against numpy and
against the CPU backend on the same kernel IR), emulates cuBLAS's GEMM, and fails the way a GPU
would: out of memory, foreign or freed pointers, bad launches, source that does not compile."""
import shutil

import numpy as np
import pytest
from hypothesis import given, strategies as st

from graphc.ops.builder import GraphBuilder
from graphc.ops import scalar as S
from graphc.ops.types import TensorType
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory
from graphc.runtime.cuda import sim_build
from graphc.runtime.cuda.sim import SimDriver
from graphc.runtime.cuda.driver import CudaError, DeviceOutOfMemory, get_driver, reset_driver
from graphc.runtime.kernel_ir import (Accumulate, AccRef, Buf, DeclareAcc, Gemm, Index, Kernel, Load, Loop,
                                      MemCopy, Store)
from graphc.runtime.lower import KernelStep, lower_graph
from graphc.runtime.render_cuda import render_cuda, render_cuda_module

from kernel_reference import random_buffers, run_on_cpu

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA simulator compiles kernels with g++")

AUTO_GRID = 3       # any grid is correct for a grid-stride loop; 3 blocks make the stride wrap


@pytest.fixture
def sim(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_SIM", "1")
    monkeypatch.setenv("GRAPHC_CUDA_SIM_DEVICES", "2")
    monkeypatch.setenv("GRAPHC_CUDA_SIM_MEMORY", str(64 << 20))
    reset_driver()
    yield get_driver()
    reset_driver()


def _xyz(v):
    return (v, 1, 1) if isinstance(v, int) else tuple(v) + (1,) * (3 - len(v))


def _to_device(sim, arrays, device=0):
    ptrs = []
    for a in arrays:
        p = sim.malloc(device, a.nbytes)
        sim.memcpy_htod(device, p, np.ascontiguousarray(a))
        ptrs.append(p)
    return ptrs


def _from_device(sim, ptrs, like, device=0):
    out = []
    for p, a in zip(ptrs, like):
        h = np.empty_like(a)
        sim.memcpy_dtoh(device, h, p)
        sim.free(device, p)
        out.append(h)
    return out


def _run_on_sim(sim, module, kernel, arrays):
    """The kernel's rendered source launched as render_cuda's launch says; every buffer back."""
    _, launch = render_cuda(kernel)
    grid = AUTO_GRID if launch["grid"] == "auto" else launch["grid"]
    ptrs = _to_device(sim, arrays)
    sim.launch(0, module.function(kernel.name), _xyz(grid), _xyz(launch["block"]), ptrs)
    return _from_device(sim, ptrs, arrays)


def _assert_same(got, want, what):
    if np.issubdtype(want.dtype, np.floating):
        tol = 2e-5 if want.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.nanmax(np.abs(want)))),
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _lowered_kernels():
    gb = GraphBuilder("sim")
    F = gb.F
    x = gb.var("x", TensorType((6, 37)))
    d = gb.var("d", TensorType((5, 7), "float64"))
    i = gb.var("i", TensorType((6, 37), "int32"))
    img = gb.var("img", TensorType((2, 3, 9, 9)))
    w = gb.var("w", TensorType((16, 37)), "param")
    big = gb.var("big", TensorType((64, 600)))
    outs = [F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x,          # grid-stride elementwise
            F.sum(x * x, axis=1),                                     # kept-dimension reduction
            F.max(d, axis=0), F.sum(x, axis=0),                       # rows accumulated into the output
            F.sum(F.exp(d)), F.mean(x),                               # full reductions: shared tree + barriers
            F.sum(big * big),                                         # large enough for many blocks
            F.Pooling(img, kernel=(3, 3), stride=(2, 2), pool_type="max"),
            F.broadcast_mod(i, i + 3) + F.broadcast_div(i, i * 2 - 1),
            F.Embedding(F.abs(x), w, input_dim=16, output_dim=37)]   # rows picked through an index array
    g = fuse_elementwise(gb.build(outs))
    return [s.kernel for s in lower_graph(g, plan_memory(g)) if isinstance(s, KernelStep)]


def test_every_lowered_loop_kernel_matches_the_cpu_backend(sim):
    kernels = [k for k in _lowered_kernels() if not isinstance(k.body[0], (Gemm, MemCopy))]
    sources = [render_cuda(k)[0] for k in kernels]
    assert any("__shared__" in s for s in sources), "a full reduction (shared tree) should be among them"
    assert any("gridDim.x * blockDim.x" in s for s in sources), "grid-stride loops"
    assert any(isinstance(k.body[0], Loop) and any(isinstance(s, DeclareAcc) for s in k.body[0].body)
               for k in kernels), "a reduction with kept dimensions"
    module = sim.load_module(0, render_cuda_module(kernels))
    rng = np.random.default_rng(0)
    inputs = {k.name: random_buffers(k, rng) for k in kernels}
    want = run_on_cpu(kernels, inputs)
    for k, w in zip(kernels, want):
        got = _run_on_sim(sim, module, k, [inputs[k.name][b.name] for b in k.bufs])
        for b, g_ in zip(k.bufs, got):
            _assert_same(g_, w[b.name], f"{k.name} buffer {b.name}:\n{k}")


def _ix(*terms, offset=0):
    return Index(tuple(terms), offset)


def test_full_reduction_matches_numpy_for_more_elements_than_threads(sim):
    n = 1000
    k = Kernel("k_full", [Buf("y", "float64", 1), Buf("x", "float64", n)],
               [DeclareAcc("acc", "float64", "sum"),
                Loop("i0", n, [Accumulate("acc", "sum", S.arg(0, "float64") * S.arg(0, "float64"),
                                           (Load("x", _ix(("i0", 1))),))]),
                Store("y", _ix(), S.arg(0, "float64") + 1.0, (AccRef("acc"),))])
    src, launch = render_cuda(k)
    assert "__syncthreads" in src and launch["grid"] == 1
    x = np.random.default_rng(1).standard_normal(n)
    y, _ = _run_on_sim(sim, sim.load_module(0, src), k, [np.zeros(1), x])
    np.testing.assert_allclose(y[0], (x * x).sum() + 1.0, rtol=1e-12)


def test_nest_sequence_sees_each_nest_finished_before_the_next(sim):
    """out[j] = 0, then out[j] += x[i, j] over rows, then z[j] = out[j] * out[(j+1) % 300]: the
    third nest reads elements other threads wrote, so it is right only if the barrier holds."""
    r, c = 4, 300
    row, col = ("i", c), ("j", 1)
    k = Kernel("k_seq", [Buf("out", "float32", c), Buf("z", "float32", c), Buf("x", "float32", r * c)],
               [Loop("j0", c, [Store("out", _ix(("j0", 1)), S.const(0.0, "float32"), ())]),
                Loop("i", r, [Loop("j", c, [Store("out", _ix(col), S.arg(0) + S.arg(1),
                                                  (Load("out", _ix(col)), Load("x", _ix(row, col))))])]),
                Loop("j2", c - 1, [Store("z", _ix(("j2", 1)), S.arg(0) * S.arg(1),
                                         (Load("out", _ix(("j2", 1))), Load("out", _ix(("j2", 1), offset=1))))])])
    src, launch = render_cuda(k)
    assert src.count("__syncthreads") >= 3 and launch["grid"] == 1, src
    x = np.random.default_rng(2).standard_normal((r, c)).astype(np.float32)
    out, z, _ = _run_on_sim(sim, sim.load_module(0, src), k, [np.full(c, 7, np.float32), np.zeros(c, np.float32),
                                                              x.ravel()])
    total = x.sum(axis=0)
    np.testing.assert_allclose(out, total, rtol=1e-5)
    np.testing.assert_allclose(z[:-1], total[:-1] * total[1:], rtol=1e-5)


def test_outer_independent_iterations_run_their_nests_in_order(sim):
    """Per plane p: t[p, j] = x[p, j] * 2, then y[p, j] = t[p, j] + t[p, 4 - j] (reads another j
    of its own plane, so each plane must be one thread's sequence)."""
    planes, n = 5, 5
    p, j = ("p", n), ("j", 1)
    k = Kernel("k_outer", [Buf("y", "float32", planes * n), Buf("t", "float32", planes * n),
                           Buf("x", "float32", planes * n)],
               [Loop("p", planes, [
                   Loop("j", n, [Store("t", _ix(p, j), S.arg(0) * 2.0, (Load("x", _ix(p, j)),))]),
                   Loop("j", n, [Store("y", _ix(p, j), S.arg(0) + S.arg(1),
                                       (Load("t", _ix(p, j)), Load("t", _ix(p, ("j", -1), offset=n - 1))))])],
                     independent=True)])
    src, _ = render_cuda(k)
    assert "__syncthreads" not in src
    x = np.random.default_rng(3).standard_normal((planes, n)).astype(np.float32)
    y, t, _ = _run_on_sim(sim, sim.load_module(0, src), k, [np.zeros(planes * n, np.float32)] * 2 + [x.ravel()])
    np.testing.assert_allclose(t.reshape(planes, n), 2 * x, rtol=1e-6)
    np.testing.assert_allclose(y.reshape(planes, n), 2 * x + 2 * x[:, ::-1], rtol=1e-6)


def test_barrier_lets_no_thread_pass_before_all_arrive(sim):
    src = r'''
extern "C" __global__ void k_ring(const int* __restrict__ in, int* __restrict__ out)
{
  __shared__ int s[300];
  const int t = threadIdx.x + blockDim.x * threadIdx.y;
  const int n = blockDim.x * blockDim.y;
  s[t] = in[blockIdx.x * n + t] + 1;
  __syncthreads();
  const int left = s[(t + n - 1) % n];
  __syncthreads();           // everyone has read before anyone overwrites
  s[t] = left * 2;
  __syncthreads();
  out[blockIdx.x * n + t] = s[(t + 1) % n];
}
'''
    n, blocks = 300, 3
    x = np.arange(n * blocks, dtype=np.int32)
    ptrs = _to_device(sim, [x, np.zeros_like(x)])
    f = sim.load_module(0, src).function("k_ring")
    assert f.uses_sync
    sim.launch(0, f, (blocks, 1, 1), (30, 10, 1), ptrs)
    _, out = _from_device(sim, ptrs, [x, x])
    want = ((x.reshape(blocks, n) + 1) * 2)     # out[t] = 2 * s[t] where s = in + 1: left of t + 1 is t
    np.testing.assert_array_equal(out.reshape(blocks, n), want)


# ---- GEMM: the rendered tiled kernel and the cuBLAS stand-in ----
def _stored(rows, cols, ld, off, stride, batch, rng, dtype):
    return (rng.standard_normal(off + (batch - 1) * stride + (rows - 1) * ld + cols) if rows and cols
            else np.zeros(off + 1)).astype(dtype)


def _mat(flat, off, rows, cols, ld):
    return np.array([flat[off + r * ld: off + r * ld + cols] for r in range(rows)]).reshape(rows, cols)


def _gemm_case(g, rng):
    """Host arrays for the Gemm and numpy's C after it (written from the definition, per batch)."""
    ar, ac = (g.k, g.m) if g.trans_a else (g.m, g.k)
    br, bc = (g.n, g.k) if g.trans_b else (g.k, g.n)
    a = _stored(ar, ac, g.lda, g.off_a, g.stride_a, g.batch, rng, g.dtype)
    b = _stored(br, bc, g.ldb, g.off_b, g.stride_b, g.batch, rng, g.dtype)
    c = _stored(g.m, g.n, g.ldc, g.off_c, g.stride_c, g.batch, rng, g.dtype)
    want = c.copy()
    for i in range(g.batch):
        A = _mat(a, g.off_a + i * g.stride_a, ar, ac, g.lda)
        B = _mat(b, g.off_b + i * g.stride_b, br, bc, g.ldb)
        C = _mat(c, g.off_c + i * g.stride_c, g.m, g.n, g.ldc)
        res = g.alpha * ((A.T if g.trans_a else A).astype(np.float64) @ (B.T if g.trans_b else B)) + g.beta * C
        for r in range(g.m):
            at = g.off_c + i * g.stride_c + r * g.ldc
            want[at: at + g.n] = res[r]
    return a, b, c, want


def _gemm(m, n, k, ta, tb, batch=1, pad=(0, 0, 0), off=(0, 0, 0), extra=0, alpha=1.0, beta=0.0, dtype="float32"):
    lda = (m if ta else k) + pad[0]
    ldb = (k if tb else n) + pad[1]
    ldc = n + pad[2]
    sa = (k if ta else m) * lda + extra
    sb = (n if tb else k) * ldb + extra
    sc = m * ldc + extra
    # operands named like the tiled kernel's would-be locals: the renderer must not shadow them
    return Gemm("a", "b", "c", m, n, k, ta, tb, lda, ldb, ldc, dtype, batch, sa, sb, sc, alpha, beta, *off)


GEMM_CASES = [
    _gemm(5, 7, 3, False, False),
    _gemm(17, 20, 33, True, False, batch=2, pad=(1, 2, 3), off=(3, 1, 2), extra=5, beta=0.5),
    _gemm(20, 17, 18, False, True, batch=3, off=(0, 4, 1), alpha=-2.0, beta=1.0, dtype="float64"),
    _gemm(16, 16, 16, True, True, batch=2, pad=(0, 3, 0), extra=1, alpha=0.5, beta=0.25),
]


def _gemm_kernel(g):
    ar, ac = (g.k, g.m) if g.trans_a else (g.m, g.k)
    br, bc = (g.n, g.k) if g.trans_b else (g.k, g.n)
    size = lambda rows, cols, ld, off, stride: off + (g.batch - 1) * stride + (rows - 1) * ld + cols  # noqa: E731
    return Kernel("k_tiled", [Buf("a", g.dtype, size(ar, ac, g.lda, g.off_a, g.stride_a)),
                              Buf("b", g.dtype, size(br, bc, g.ldb, g.off_b, g.stride_b)),
                              Buf("c", g.dtype, size(g.m, g.n, g.ldc, g.off_c, g.stride_c))], [g])


@pytest.mark.parametrize("g", GEMM_CASES, ids=lambda g: f"{g.m}x{g.n}x{g.k}-t{int(g.trans_a)}{int(g.trans_b)}"
                                                        f"-b{g.batch}-beta{g.beta}-{g.dtype}")
def test_rendered_tiled_gemm_and_sim_gemm_match_numpy(sim, g):
    k = _gemm_kernel(g)
    src, launch = render_cuda(k)
    assert "__shared__" in src and _xyz(launch["grid"])[2] == g.batch
    a, b, c, want = _gemm_case(g, np.random.default_rng(4))
    tol = 1e-4 if g.dtype == "float32" else 1e-12
    _, _, got = _run_on_sim(sim, sim.load_module(0, src), k, [a, b, c])
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    ptrs = _to_device(sim, [a, b, c])
    sim.gemm(0, g, *ptrs)
    np.testing.assert_allclose(_from_device(sim, ptrs, [a, b, c])[2], want, rtol=tol, atol=tol)


@given(m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(0, 9), ta=st.booleans(), tb=st.booleans(),
       batch=st.integers(1, 3), pad=st.tuples(*[st.integers(0, 2)] * 3), off=st.tuples(*[st.integers(0, 3)] * 3),
       extra=st.integers(0, 4), alpha=st.sampled_from([1.0, 0.5, -2.0, 0.0]),
       beta=st.sampled_from([0.0, 1.0, 0.25]), dtype=st.sampled_from(["float32", "float64"]))
def test_sim_gemm_matches_numpy_for_every_flag(m, n, k, ta, tb, batch, pad, off, extra, alpha, beta, dtype):
    drv = SimDriver()
    g = _gemm(m, n, k, ta, tb, batch, pad, off, extra, alpha, beta, dtype)
    a, b, c, want = _gemm_case(g, np.random.default_rng(m * 100 + n * 10 + k))
    ptrs = _to_device(drv, [a, b, c])
    drv.gemm(0, g, *ptrs)
    got = _from_device(drv, ptrs, [a, b, c])[2]
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_gemm_with_beta_zero_never_reads_c(sim):
    g = _gemm(3, 4, 5, False, False)
    a, b, c, want = _gemm_case(g, np.random.default_rng(5))
    pa, pb = _to_device(sim, [a, b])
    pc = sim.malloc(0, c.nbytes)          # fresh device memory: NaN bytes, never written
    sim.gemm(0, g, pa, pb, pc)
    got = np.empty_like(c)
    sim.memcpy_dtoh(0, got, pc)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_gemm_operand_past_its_allocation_is_refused(sim):
    g = _gemm(4, 4, 4, False, False, batch=2)
    a, b, c, _ = _gemm_case(g, np.random.default_rng(6))
    ptrs = _to_device(sim, [a[: a.size // 2], b, c])
    with pytest.raises(CudaError, match=r"gemm: operand A .* past the end"):
        sim.gemm(0, g, *ptrs)


def test_memcopy_kernel_and_dtod_copy_bytes(sim):
    nbytes = 1001
    k = Kernel("k_copy", [Buf("dst", "int32", 251), Buf("src", "int32", 251)], [MemCopy("dst", "src", nbytes)])
    src = np.arange(251, dtype=np.int32) * 7
    dst, _ = _run_on_sim(sim, sim.load_module(0, render_cuda(k)[0]), k, [np.full(251, -1, np.int32), src])
    assert dst.view(np.uint8)[:nbytes].tobytes() == src.view(np.uint8)[:nbytes].tobytes()
    assert (dst.view(np.uint8)[nbytes:] == 0xFF).all()
    pd, ps = _to_device(sim, [np.zeros(251, np.int32), src])
    sim.memcpy_dtod(0, pd, ps, src.nbytes)
    np.testing.assert_array_equal(_from_device(sim, [pd, ps], [src, src])[0], src)


# ---- the driver's contract and its failures ----
def test_environment_sets_devices_and_capacity(sim):
    assert sim.name == "sim" and sim.device_count() == 2
    assert sim.total_memory(1) == 64 << 20 and sim.device_name(0) == "graphc CUDA simulator"
    assert sim.compute_capability(0) == (0, 0) and sim.multiprocessor_count(0) == 1
    p = sim.malloc(1, 1000)
    assert p % 256 == 0 and sim.memory_in_use(1) == 1000 and sim.memory_in_use(0) == 0
    fresh = np.empty(250, np.float32)
    sim.memcpy_dtoh(1, fresh, p)
    assert np.isnan(fresh).all(), "fresh memory is poisoned, as cudaMalloc promises nothing"
    sim.memset(1, p, 1000)
    sim.memcpy_dtoh(1, fresh, p)
    assert (fresh == 0).all()
    sim.free(1, p)
    assert sim.memory_in_use(1) == 0 and sim.malloc(0, 0) == 0


def test_out_of_memory_names_device_asked_in_use_and_capacity(sim, monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_SIM_MEMORY", "1M")
    reset_driver()
    drv = get_driver()
    drv.malloc(1, 600 << 10)
    with pytest.raises(DeviceOutOfMemory, match=r"gpu\(1\) out of memory: asked 614400 bytes with 614400 of "
                                                 r"1048576 in use"):
        drv.malloc(1, 600 << 10)
    drv.malloc(0, 600 << 10)              # each device has its own capacity


def test_pointer_misuse_is_a_cuda_error_naming_the_call(sim):
    p = sim.malloc(0, 64)
    with pytest.raises(CudaError, match=r"free: .* is not an allocation on gpu\(1\) \(it is gpu\(0\)'s memory\)"):
        sim.free(1, p)
    with pytest.raises(CudaError, match=r"memcpy_htod: destination .* runs 36 bytes past the end of the 64-byte"):
        sim.memcpy_htod(0, p, np.zeros(25, np.float32))
    with pytest.raises(CudaError, match="C-contiguous"):
        sim.memcpy_htod(0, p, np.zeros((4, 4), np.float32)[:, ::2])
    sim.free(0, p)
    with pytest.raises(CudaError, match="free: .* is not an allocation"):
        sim.free(0, p)
    with pytest.raises(CudaError, match="no device 2"):
        sim.malloc(2, 8)


def test_launch_checks_device_arguments_and_shape(sim):
    src = 'extern "C" __global__ void k_one(float* __restrict__ y) { y[threadIdx.x] = 1.0f; }\n'
    f = sim.load_module(0, src).function("k_one")
    p = sim.malloc(0, 4 * 1024)
    with pytest.raises(CudaError, match=r"k_one was loaded on gpu\(0\), launched on gpu\(1\)"):
        sim.launch(1, f, (1, 1, 1), (1, 1, 1), [p])
    with pytest.raises(CudaError, match=r"block \(2048, 1, 1\)"):
        sim.launch(0, f, (1, 1, 1), (2048, 1, 1), [p])
    with pytest.raises(CudaError, match="k_one takes 1 pointers, got 2 arguments"):
        sim.launch(0, f, (1, 1, 1), (1, 1, 1), [p] * 2)
    sim.free(0, p)
    with pytest.raises(CudaError, match="k_one argument 0 .* no live allocation"):
        sim.launch(0, f, (1, 1, 1), (1, 1, 1), [p])
    with pytest.raises(CudaError, match=r"no __global__ kernel named 'k_two' .*\['k_one'\]"):
        sim.load_module(0, src).function("k_two")


def test_compile_error_names_the_kernels_and_the_first_errors(sim):
    src = ('extern "C" __global__ void k_fine(float* __restrict__ y) { y[0] = 1.0f; }\n'
           'extern "C" __global__ void k_broken(float* __restrict__ y) { y[0] = undeclared_name; }\n')
    with pytest.raises(CudaError, match=r"(?s)k_fine, k_broken.*error: 'undeclared_name' was not declared"):
        sim.load_module(0, src)


def test_second_load_comes_from_the_disk_cache_without_gxx(sim):
    src = 'extern "C" __global__ void k_cached(float* __restrict__ y) { y[threadIdx.x] = 2.0f * threadIdx.x; }\n'
    before = dict(sim_build.stats)
    sim.load_module(0, src)
    assert sim_build.stats["compiles"] == before["compiles"] + 1
    sim_build._loaded.clear()            # a new process: nothing loaded, the disk entry remains
    f = sim.load_module(1, src).function("k_cached")
    assert sim_build.stats["compiles"] == before["compiles"] + 1
    assert sim_build.stats["disk_hits"] == before["disk_hits"] + 1
    p = sim.malloc(1, 16)
    sim.launch(1, f, (1, 1, 1), (4, 1, 1), [p])
    y = np.empty(4, np.float32)
    sim.memcpy_dtoh(1, y, p)
    np.testing.assert_array_equal(y, [0, 2, 4, 6])


def test_kernels_with_many_pointer_parameters_get_each_in_its_place(sim):
    n = 40
    params = ", ".join(f"const {'double' if i % 2 else 'int'}* __restrict__ in{i}" for i in range(n))
    body = " + ".join(f"(double)in{i}[0] * {i + 1}" for i in range(n))
    src = f'extern "C" __global__ void k_many(double* __restrict__ out, {params}) {{ out[0] = {body}; }}\n'
    values = [np.array([i + 0.5 if i % 2 else i * 3], "float64" if i % 2 else "int32") for i in range(n)]
    ptrs = _to_device(sim, [np.zeros(1)] + values)
    sim.launch(0, sim.load_module(0, src).function("k_many"), (1, 1, 1), (1, 1, 1), ptrs)
    out = _from_device(sim, ptrs, [np.zeros(1)] + values)[0]
    assert out[0] == sum(float(v[0]) * (i + 1) for i, v in enumerate(values))


def test_an_access_past_an_allocation_is_an_illegal_memory_access_error(sim):
    src = r'''
extern "C" __global__ void k_over(float* __restrict__ y, const long long* __restrict__ at)
{
  if (blockIdx.x == 1 && threadIdx.x == 3) y[at[0]] = 1.0f;
}
'''
    f = sim.load_module(0, src).function("k_over")
    y, at = _to_device(sim, [np.zeros(1000, np.float32), np.array([1000 + 64], np.int64)])
    with pytest.raises(CudaError, match=r"k_over .*illegal memory access at address .* in thread \(3, 0, 0\) of "
                                        r"block \(1, 0, 0\) \(256 bytes past the end of the 4000-byte allocation"):
        sim.launch(0, f, (2, 1, 1), (32, 1, 1), [y, at])
    sim.memcpy_htod(0, at, np.array([999], np.int64))
    sim.launch(0, f, (2, 1, 1), (32, 1, 1), [y, at])      # the simulator goes on after a fault
    out = np.empty(1000, np.float32)
    sim.memcpy_dtoh(0, out, y)
    assert out[999] == 1.0 and (out[:999] == 0).all()


def test_a_fiber_stack_overflow_is_reported_not_a_crash(sim):
    src = r'''
extern "C" __global__ void k_deep(float* __restrict__ y)
{
  volatile char big[512 << 10];
  big[0] = 1;
  __syncthreads();
  y[threadIdx.x] = big[0];
}
'''
    y = sim.malloc(0, 64)
    with pytest.raises(CudaError, match="overflowed its fiber stack"):
        sim.launch(0, sim.load_module(0, src).function("k_deep"), (1, 1, 1), (16, 1, 1), [y])


def test_a_cached_library_others_may_write_is_rebuilt_not_loaded(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GRAPHC_CUDA_SIM_CACHE", raising=False)     # (the suite's shared folder)
    src = 'extern "C" __global__ void k_trust(float* __restrict__ y) { y[0] = 3.0f; }\n'
    sim.load_module(0, src)
    (entry,) = (tmp_path / "cuda-sim").glob("*.so")
    entry.chmod(0o666)
    sim_build._loaded.clear()
    before = sim_build.stats["compiles"]
    sim.load_module(0, src)
    assert sim_build.stats["compiles"] == before + 1
    assert entry.stat().st_mode & 0o777 == 0o600


def test_without_a_disk_cache_modules_still_load(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GRAPHC_CUDA_SIM_CACHE", raising=False)     # (the suite's shared folder)
    monkeypatch.setenv("GRAPHC_CACHE_MAX_BYTES", "0")
    src = 'extern "C" __global__ void k_nodisk(float* __restrict__ y) { y[threadIdx.x] = 5.0f; }\n'
    f = sim.load_module(0, src).function("k_nodisk")
    p = sim.malloc(0, 8)
    sim.launch(0, f, 1, 2, [p])
    y = np.empty(2, np.float32)
    sim.memcpy_dtoh(0, y, p)
    assert (y == 5).all() and not (tmp_path / "cuda-sim").exists()


def test_shared_memory_starts_each_block_undefined(sim):
    """A kernel that reads shared memory before writing it sees 0xFF bytes in every block, not
    zeros or the previous block's values (which would hide the bug that a GPU shows)."""
    src = r'''
extern "C" __global__ void k_stale(int* __restrict__ y)
{
  __shared__ int s[4];
  y[blockIdx.x * 4 + threadIdx.x] = s[threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = 7;
}
'''
    y = sim.malloc(0, 32)
    sim.launch(0, sim.load_module(0, src).function("k_stale"), (2, 1, 1), (4, 1, 1), [y])
    out = np.empty(8, np.int32)
    sim.memcpy_dtoh(0, out, y)
    assert (out == -1).all(), out


# ---- fibers: switched with _setjmp/_longjmp, each started once per launch on the shared pool ----
_LIVE_SRC = r'''
extern "C" __global__ void k_live(const double* __restrict__ x, double* __restrict__ y)
{
  __shared__ double s[1024];
  const int n = blockDim.x * blockDim.y;
  const int t = threadIdx.x + blockDim.x * threadIdx.y;
  const double v = x[blockIdx.x * n + t];
  double a0 = v, a1 = v * 2 + 1, a2 = v * 3 + 2, a3 = v * 4 + 3, a4 = v * 5 + 4, a5 = v * 6 + 5;
  long long c = t;
  for (int step = 0; step < 16; ++step) {
    s[t] = a0 + a1 + a2 + a3 + a4 + a5 + (double)c;
    __syncthreads();
    const double left = s[(t + step + 1) % n];
    __syncthreads();         // everyone has read before anyone overwrites
    a0 = a0 * 0.5 + left * 1e-3; a1 = a1 * 0.5 + left * 2e-3; a2 = a2 * 0.5 + left * 3e-3;
    a3 = a3 * 0.5 + left * 4e-3; a4 = a4 * 0.5 + left * 5e-3; a5 = a5 * 0.5 + left * 6e-3;
    c = (c * 3 + step) % 1009;
  }
  y[blockIdx.x * n + t] = a0 + a1 + a2 + a3 + a4 + a5 + (double)c;
}
'''


def _live_reference(x, n):
    """k_live in numpy, every thread of a block at once (one row per block)."""
    v = x.reshape(-1, n)
    a = [v, v * 2 + 1, v * 3 + 2, v * 4 + 3, v * 5 + 4, v * 6 + 5]
    c = np.broadcast_to(np.arange(n, dtype=np.int64), v.shape).copy()
    t = np.arange(n)
    for step in range(16):
        s = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + c
        left = s[:, (t + step + 1) % n]
        a = [a[i] * 0.5 + left * ((i + 1) * 1e-3) for i in range(6)]
        c = (c * 3 + step) % 1009
    return (a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + c).ravel()


def _launch_live(sim, f, blocks, block):
    n = block[0] * block[1]
    x = np.random.default_rng(n).standard_normal(blocks * n)
    ptrs = _to_device(sim, [x, np.zeros_like(x)])
    sim.launch(0, f, (blocks, 1, 1), block, ptrs)
    _, y = _from_device(sim, ptrs, [x, x])
    np.testing.assert_allclose(y, _live_reference(x, n), rtol=1e-12, err_msg=f"k_live block {block}")


def test_each_fiber_keeps_its_locals_across_barriers(sim):
    """More live values than registers cross 32 barriers: a switch that lost a callee-saved
    register, or resumed a fiber on the wrong stack, gives some thread a wrong result."""
    f = sim.load_module(0, _LIVE_SRC).function("k_live")
    _launch_live(sim, f, 3, (32, 8, 1))
    _launch_live(sim, f, 2, (1024, 1, 1))


def test_modules_and_faults_between_launches_leave_fibers_working(sim):
    """Every module has its own scheduler state over the one stack pool, and a fault abandons
    fibers mid-kernel: each launch must start its fibers afresh, not resume stale frames."""
    live = sim.load_module(0, _LIVE_SRC).function("k_live")
    other = sim.load_module(0, r'''
extern "C" __global__ void k_fault_at_barrier(float* __restrict__ y, const long long* __restrict__ at)
{
  __shared__ float s[64];
  s[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 5) y[at[0]] = 2.0f;
  __syncthreads();
  y[threadIdx.x] = s[63 - threadIdx.x];
}
''').function("k_fault_at_barrier")
    y, at = _to_device(sim, [np.zeros(64, np.float32), np.array([64 + 64], np.int64)])   # into the guard page
    _launch_live(sim, live, 2, (256, 1, 1))
    with pytest.raises(CudaError, match=r"k_fault_at_barrier .*illegal memory access .* in thread \(5, 0, 0\) of "
                                        r"block \(0, 0, 0\) \(256 bytes past the end"):
        sim.launch(0, other, (1, 1, 1), (64, 1, 1), [y, at])   # 5 faults while the others wait at a barrier
    _launch_live(sim, live, 2, (128, 2, 1))
    sim.memcpy_htod(0, at, np.array([63], np.int64))
    sim.launch(0, other, (2, 1, 1), (64, 1, 1), [y, at])
    out = np.empty(64, np.float32)
    sim.memcpy_dtoh(0, out, y)
    np.testing.assert_array_equal(out, np.arange(63, -1, -1, dtype=np.float32))
    _launch_live(sim, live, 1, (64, 1, 1))
