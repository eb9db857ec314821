"""The real CUDA drivers (pycuda, cuda-bindings) and cuBLAS on a GPU (@pytest.mark.gpu; each test
skips where its binding is missing or sees no GPU): device properties, copies, out of memory, a
kernel over a 3-D grid, cuBLAS GEMM against numpy for every transpose, batch stride and offset,
and CUDA graph capture and replay."""
import numpy as np
import pytest
from hypothesis import given

from graphc.runtime.cuda import bindings_driver, pycuda_driver
from graphc.runtime.cuda.driver import CudaError, DeviceOutOfMemory
from graphc.runtime.kernel_ir import Gemm

from gemm_reference import buffers, gemms, rowmajor_reference


# ---- on a real GPU ----------------------------------------------------------------------------------

@pytest.fixture(params=["pycuda", "cuda-bindings"])
def real(request):
    make = {"pycuda": pycuda_driver.make, "cuda-bindings": bindings_driver.make}[request.param]
    d = make()
    if d is None:
        pytest.skip(f"{request.param} is not installed or sees no GPU")
    return d


@pytest.mark.gpu
def test_real_device_properties_and_copies(real):
    assert real.device_count() >= 1 and real.device_name(0)
    assert real.total_memory(0) > 1 << 30 and real.multiprocessor_count(0) > 0
    assert real.compute_capability(0) >= (7, 0)
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    p, q = real.malloc(0, x.nbytes), real.malloc(0, x.nbytes)
    real.memcpy_htod(0, p, x)
    real.memcpy_dtod(0, q, p, x.nbytes)
    real.memset(0, p, 400)
    a, b = np.empty_like(x), np.empty_like(x)
    real.memcpy_dtoh(0, a, p)
    real.memcpy_dtoh(0, b, q)
    np.testing.assert_array_equal(b, x)
    np.testing.assert_array_equal(a, np.r_[np.zeros(100, np.float32), x[100:]])
    real.free(0, p)
    real.free(0, q)
    with pytest.raises(DeviceOutOfMemory, match="GPU 0"):
        real.malloc(0, 4 * real.total_memory(0))


GRID_SOURCE = r"""
extern "C" __global__ void affine(float* x, float* y, float* out) {
    long long i = ((long long)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    i = i * blockDim.x + threadIdx.x;
    if (i < 3000) out[i] = x[i] * 1.5f + y[i];
}
"""


@pytest.mark.gpu
def test_real_kernel_launch_over_a_3d_grid(real):
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal(3000).astype(np.float32) for _ in range(2))
    ptrs = [real.malloc(0, 12000) for _ in range(3)]
    real.memcpy_htod(0, ptrs[0], x)
    real.memcpy_htod(0, ptrs[1], y)
    k = real.load_module(0, GRID_SOURCE).function("affine")
    real.launch(0, k, (2, 3, 2), (256, 1, 1), ptrs)
    out = np.empty_like(x)
    real.memcpy_dtoh(0, out, ptrs[2])
    np.testing.assert_allclose(out, x * np.float32(1.5) + y, rtol=1e-6)
    with pytest.raises(CudaError):
        real.launch(0, k, (1,), (4096, 1, 1), ptrs)       # more threads than a block may have
        real.synchronize(0)
    for p in ptrs:
        real.free(0, p)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-12)])
@given(g=gemms())
def test_real_cublas_gemm_matches_numpy(real_module, dtype, tol, g):
    g.dtype = dtype
    bufs = buffers(g, np.random.default_rng(2), np.dtype(dtype))
    want = rowmajor_reference(g, bufs["a"], bufs["b"], bufs["c"])
    ptrs = {}
    for w, arr in bufs.items():
        ptrs[w] = real_module.malloc(0, arr.nbytes)
        real_module.memcpy_htod(0, ptrs[w], arr)
    real_module.gemm(0, g, ptrs["a"], ptrs["b"], ptrs["c"])
    got = np.empty_like(bufs["c"])
    real_module.memcpy_dtoh(0, got, ptrs["c"])
    for p in ptrs.values():
        real_module.free(0, p)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def real_module():
    """One real driver for a hypothesis test (function-scoped fixtures do not mix with @given)."""
    d = pycuda_driver.make() or bindings_driver.make()
    if d is None:
        pytest.skip("no CUDA binding sees a GPU")
    return d


@pytest.mark.gpu
def test_get_driver_picks_a_real_driver_when_not_simulating(monkeypatch):
    from graphc.runtime.cuda import driver
    monkeypatch.delenv("GRAPHC_CUDA_SIM", raising=False)
    driver.reset_driver()
    try:
        d = driver.get_driver()
        if d is None:
            pytest.skip("no CUDA binding sees a GPU")
        assert d.name in ("pycuda", "cuda-bindings")
    finally:
        driver.reset_driver()


CAPTURE_SOURCE = r"""
extern "C" __global__ void twice_plus(float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < 256) y[i] = 2.0f * x[i] + y[i];
}
"""


@pytest.mark.gpu
def test_real_capture_replays_launches_gemms_and_copies_on_new_inputs(real):
    n = 256
    x, w = np.arange(n, dtype=np.float32), np.eye(16, dtype=np.float32) * 3
    px, py, pw, pz = (real.malloc(0, n * 4) for _ in range(4))
    real.memcpy_htod(0, pw, w)
    k = real.load_module(0, CAPTURE_SOURCE).function("twice_plus")
    g16 = Gemm(a="y", b="w", c="z", m=16, n=16, k=16, trans_a=False, trans_b=False, lda=16, ldb=16, ldc=16,
               dtype="float32")
    real.gemm(0, g16, py, pw, pz)          # warm cuBLAS up outside the capture

    def step():
        real.memset(0, py, n * 4)
        real.launch(0, k, (1, 1, 1), (256, 1, 1), [px, py])
        real.gemm(0, g16, py, pw, pz)
        real.memcpy_dtod(0, px, pz, n * 4)
    graph = real.capture(0, step)
    out = np.empty_like(x)
    for _ in range(2):                     # each replay: x <- 3 * (2 * x)
        real.memcpy_htod(0, px, x)
        graph.replay()
        real.memcpy_dtoh(0, out, px)
        np.testing.assert_allclose(out, 6 * x, rtol=1e-6)
        x = x + 1
    graph.close()
    for p in (px, py, pw, pz):
        real.free(0, p)
