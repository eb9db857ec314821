"""cuBLAS without a GPU: the row-major -> column-major mapping of a Gemm proven against numpy with a
column-major reference GEMM written from the BLAS definition, and Blas's calls checked end to end
against a stand-in libcublas computing on host memory (pointers, element offsets, argument order)."""
import numpy as np
import pytest
from hypothesis import given

from graphc.runtime.cuda import cublas
from graphc.runtime.cuda.cublas import column_major_args
from graphc.runtime.cuda.driver import CudaError
from graphc.runtime.kernel_ir import Gemm

from cuda_standins import HostBlasLib, HostCublas
from gemm_reference import buffers, colmajor_gemm, gemms, rowmajor_reference


# ---- the column-major mapping ---------------------------------------------------------------------

@given(gemms())
def test_the_column_major_call_computes_the_row_major_gemm(g):
    bufs = buffers(g, np.random.default_rng(0))
    want = rowmajor_reference(g, bufs["a"], bufs["b"], bufs["c"])
    cm = column_major_args(g)
    got = bufs[cm["C"][0]].copy()
    colmajor_gemm(cm["transa"], cm["transb"], cm["m"], cm["n"], cm["k"], cm["alpha"],
                  bufs[cm["A"][0]], cm["A"][1], cm["lda"], cm["stride_a"],
                  bufs[cm["B"][0]], cm["B"][1], cm["ldb"], cm["stride_b"],
                  cm["beta"], got, cm["C"][1], cm["ldc"], cm["stride_c"], cm["batch"])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_mapping_swaps_operands_and_sizes():
    g = Gemm(a="x", b="w", c="y", m=2, n=3, k=4, trans_a=False, trans_b=True, lda=4, ldb=4, ldc=3,
             dtype="float32", off_a=1, off_b=2, off_c=3)
    cm = column_major_args(g)
    assert (cm["m"], cm["n"], cm["k"]) == (3, 2, 4)
    assert cm["A"] == ("b", 2) and cm["B"] == ("a", 1) and cm["C"] == ("c", 3)
    assert cm["transa"] is True and cm["transb"] is False


# ---- cuBLAS through a stand-in library on host memory ----------------------------------------------

@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@given(g=gemms())
def test_blas_passes_offset_pointers_in_cublas_argument_order(dtype, tol, g):
    g.dtype = dtype
    bufs = buffers(g, np.random.default_rng(1), np.dtype(dtype))
    want = rowmajor_reference(g, bufs["a"], bufs["b"], bufs["c"])
    lib = HostBlasLib(list(bufs.values()))
    with pytest.MonkeyPatch.context() as mp:      # (function-scoped fixtures do not mix with @given)
        mp.setattr(cublas, "_bound", HostCublas(lib))
        blas = cublas.Blas(stream=77)
        blas.gemm(g, bufs["a"].ctypes.data, bufs["b"].ctypes.data, bufs["c"].ctypes.data)
    assert lib.calls[:2] == [("stream", 77), ("math", cublas.DEFAULT_MATH)]
    np.testing.assert_allclose(bufs["c"], want, rtol=tol, atol=tol)


def test_blas_refuses_integer_gemms_and_skips_empty_ones(monkeypatch):
    lib = HostBlasLib([])
    monkeypatch.setattr(cublas, "_bound", HostCublas(lib))
    blas = cublas.Blas(stream=0)
    g = Gemm(a="a", b="b", c="c", m=2, n=2, k=2, trans_a=False, trans_b=False, lda=2, ldb=2, ldc=2, dtype="int32")
    with pytest.raises(CudaError, match="int32 is not supported"):
        blas.gemm(g, 0, 0, 0)
    g.dtype, g.m = "float32", 0
    blas.gemm(g, 0, 0, 0)
    assert not [c for c in lib.calls if c[0] == "gemm"]


def test_without_libcublas_a_handle_is_a_cuda_error_naming_the_search(monkeypatch):
    monkeypatch.setattr(cublas, "_bound", None)
    monkeypatch.setattr(cublas.libraries, "open_library", lambda stem, global_symbols=False: None)
    assert not cublas.available()
    with pytest.raises(CudaError, match="cuBLAS \\(libcublas\\) was not found"):
        cublas.Blas(stream=0)
