"""The real drivers without a GPU: make() answers None instead of raising when a binding or the GPU
is missing, and the cuda-bindings and pycuda drivers (and CUDA graph capture) are run against
stand-ins of their bindings on host memory (tests/runtime/cuda/cuda_standins.py)."""
import sys
import types

import numpy as np
import pytest

from graphc.runtime.cuda import bindings_driver, cublas, pycuda_driver, toolchain
from graphc.runtime.cuda.driver import CudaError, DeviceOutOfMemory

from cuda_standins import KERNEL_SOURCE, CuResult, HostBinding, HostGraphLib, HostPycuda, host_scale2


# ---- make() without a GPU ---------------------------------------------------------------------------

def _fake_module(monkeypatch, name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def test_make_is_none_without_a_binding_or_gpu(monkeypatch):
    # whatever this machine has, neither make() raises; without a GPU both are None
    for make in (pycuda_driver.make, bindings_driver.make):
        d = make()
        assert d is None or d.device_count() > 0
    # pycuda installed, but libcuda missing (init raises) or no device
    def init_fails():
        raise RuntimeError("cuInit failed: no CUDA-capable device is detected")
    pkg = _fake_module(monkeypatch, "pycuda")
    pkg.driver = _fake_module(monkeypatch, "pycuda.driver", init=init_fails)
    assert pycuda_driver.make() is None
    pkg.driver = _fake_module(monkeypatch, "pycuda.driver", init=lambda: None,
                              Device=types.SimpleNamespace(count=lambda: 0))
    assert pycuda_driver.make() is None


def test_bindings_make_is_none_when_cuinit_fails_or_raises(monkeypatch):
    def raises(flags):
        raise RuntimeError('"cuda" is an NVIDIA driver library and can only be found via system search')
    for cu_init in (raises, lambda flags: (CuResult.CUDA_ERROR_NO_DEVICE,)):
        cu = types.SimpleNamespace(cuInit=cu_init, CUresult=CuResult)
        monkeypatch.setattr(bindings_driver, "_import_binding", lambda: cu)
        assert bindings_driver.make() is None


# ---- the cuda-bindings driver against a stand-in of the binding ------------------------------------

@pytest.fixture
def host_bindings(monkeypatch):
    cu = HostBinding({"scale2": host_scale2})
    monkeypatch.setattr(bindings_driver, "_import_binding", lambda: cu)
    d = bindings_driver.make()
    assert d is not None
    return cu, d


def test_bindings_driver_copies_sets_and_frees_on_its_stream(host_bindings):
    cu, d = host_bindings
    assert (d.device_name(0), d.total_memory(0), d.multiprocessor_count(0), d.compute_capability(0)) == \
        ("Host Stand-in", 1 << 16, 4, (9, 0))
    x = np.arange(6, dtype=np.float64)
    p, q = d.malloc(0, x.nbytes), d.malloc(0, x.nbytes)
    cu.current = 0          # another library left no context current: the driver makes ours current again
    d.memcpy_htod(0, p, x)
    d.memcpy_dtod(0, q, p, x.nbytes)
    d.memset(0, p, 16)
    back_p, back_q = np.empty_like(x), np.empty_like(x)
    d.memcpy_dtoh(0, back_p, p)
    d.memcpy_dtoh(0, back_q, q)
    np.testing.assert_array_equal(back_q, x)
    np.testing.assert_array_equal(back_p, np.r_[0.0, 0.0, x[2:]])
    d.free(0, p)
    d.free(0, q)
    assert cu.used == 0
    with pytest.raises(CudaError, match=r"free of 0x[0-9a-f]+ on GPU 0: not a live allocation"):
        d.free(0, q)
    kept = d.malloc(0, 64)
    d.close()             # at exit or when dropped: memory, modules, stream and context given back
    assert cu.used == 0 and cu.released == ["stream 0x5", "context 0"]
    d.free(0, kept)       # a buffer collected after that is a no-op


def test_bindings_driver_out_of_memory_names_the_size_and_device(host_bindings):
    _, d = host_bindings
    with pytest.raises(DeviceOutOfMemory, match=r"cuMemAlloc \(1048576 bytes on GPU 0\).*Host Stand-in, 65536 bytes"):
        d.malloc(0, 1 << 20)


@pytest.mark.skipif(toolchain.find_nvcc() is None, reason="load_module compiles with nvcc here")
def test_bindings_driver_loads_a_module_and_launches_with_one_pointer_per_parameter(host_bindings, monkeypatch):
    monkeypatch.setenv(toolchain.COMPILER_ENV, "nvcc")
    cu, d = host_bindings
    mod = d.load_module(0, KERNEL_SOURCE)
    assert d.load_module(0, KERNEL_SOURCE) is mod and len(cu.modules) == 1       # loaded once per device
    x = np.array([1, 2, 3, 4], np.float32)
    px, py = d.malloc(0, 16), d.malloc(0, 16)
    d.memcpy_htod(0, px, x)
    k = mod.function("scale2")
    d.launch(0, k, (1,), 4, [px, py])
    y = np.empty_like(x)
    d.memcpy_dtoh(0, y, py)
    np.testing.assert_array_equal(y, 2 * x)
    assert cu.launches == [("scale2", (1, 1, 1), (4, 1, 1))]
    with pytest.raises(CudaError, match="3 arguments, but it was launched with 2"):
        d.launch(0, k, 1, 4, [px, py, py])
    with pytest.raises(CudaError, match=r"grid \(0, 1\) must be 1 to 3 positive sizes"):
        d.launch(0, k, (0, 1), 4, [px, py])
    with pytest.raises(CudaError, match="cuModuleGetFunction \\(kernel 'missing' on GPU 0\\).*NOT_FOUND"):
        mod.function("missing")
    d.close()
    assert cu.released[0] == "module 1"


# ---- the pycuda driver against a stand-in of pycuda.driver ----------------------------------------

@pytest.mark.skipif(toolchain.find_nvcc() is None, reason="load_module compiles with nvcc here")
def test_pycuda_driver_runs_everything_inside_a_pushed_and_popped_primary_context(monkeypatch):
    monkeypatch.setenv(toolchain.COMPILER_ENV, "nvcc")
    cuda = HostPycuda({"scale2": host_scale2})
    pkg = _fake_module(monkeypatch, "pycuda")
    pkg.driver = cuda
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    d = pycuda_driver.make()
    assert d is not None and d.compute_capability(0) == (9, 0) and d.multiprocessor_count(0) == 4
    x = np.array([1, 2, 3, 4], np.float32)
    px, py = d.malloc(0, 16), d.malloc(0, 16)
    d.memcpy_htod(0, px, x)
    k = d.load_module(0, KERNEL_SOURCE).function("scale2")
    d.launch(0, k, 1, (4,), [px, py])
    d.memcpy_dtod(0, px, py, 16)
    d.memset(0, py, 4)
    y, z = np.empty_like(x), np.empty_like(x)
    d.memcpy_dtoh(0, y, px)
    d.memcpy_dtoh(0, z, py)
    d.synchronize(0)
    np.testing.assert_array_equal(y, 2 * x)
    np.testing.assert_array_equal(z, np.r_[0, 2 * x[1:]])
    assert cuda.launches == [("scale2", (1, 1, 1), (4, 1, 1))] and cuda.stack == []
    with pytest.raises(CudaError, match=r"launch of kernel 'scale2' \(grid \(1, 1, 1\), block \(2048, 1, 1\)\) "
                                        r"on GPU 0: cuLaunchKernel failed"):
        d.launch(0, k, 1, 2048, [px, py])
    with pytest.raises(DeviceOutOfMemory, match=r"cuMemAlloc of 1048576 bytes on GPU 0 \(Host Stand-in, 65536"):
        d.malloc(0, 1 << 20)
    with pytest.raises(CudaError, match="kernel 'missing' is not in the module"):
        d.load_module(0, KERNEL_SOURCE).function("missing")
    assert cuda.stack == []
    d.free(0, px)
    d.free(0, py)
    assert cuda.used == 0
    with pytest.raises(CudaError, match="not a live allocation"):
        d.free(0, px)
    kept = d.malloc(0, 64)
    d.close()             # at exit: what is still allocated is freed inside the context
    assert cuda.used == 0 and cuda.stack == []
    d.free(0, kept)       # a buffer collected after that is a no-op


# ---- CUDA graph capture, against a stand-in libcuda ---------------------------------------------

def test_capture_records_on_the_device_stream_and_replays_there(host_bindings, monkeypatch):
    from graphc.runtime.cuda import graphs
    cu, d = host_bindings
    lib = HostGraphLib()
    monkeypatch.setattr(graphs, "_lib", lib)
    monkeypatch.setattr(cublas, "available", lambda: False)
    seen = []
    g = d.capture(0, lambda: seen.append(cu.current))
    assert seen == [0xC0]              # fn ran with the device's context current
    g.replay()
    g.replay()
    g.close()
    assert lib.calls == [("begin", 0x5, graphs.CAPTURE_THREAD_LOCAL), ("end", 0x5), ("instantiate", 0x6A),
                         ("launch", 0xE0, 0x5), ("launch", 0xE0, 0x5), ("destroy exec", 0xE0),
                         ("destroy graph", 0x6A)]
    with pytest.raises(CudaError, match="closed CUDA graph"):
        g.replay()


def test_a_failing_capture_ends_capture_mode_and_raises(host_bindings, monkeypatch):
    from graphc.runtime.cuda import graphs
    _, d = host_bindings
    lib = HostGraphLib()
    monkeypatch.setattr(graphs, "_lib", lib)
    monkeypatch.setattr(cublas, "available", lambda: False)

    def waits():
        raise CudaError("cuStreamSynchronize failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED")
    with pytest.raises(CudaError, match="CAPTURE_UNSUPPORTED"):
        d.capture(0, waits)
    assert [c[0] for c in lib.calls] == ["begin", "end", "destroy graph"]     # the partial graph is dropped
    lib.calls.clear()
    lib.end_status = 901
    with pytest.raises(CudaError, match=r"cuStreamEndCapture \(GPU 0; .*CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"):
        d.capture(0, lambda: None)
