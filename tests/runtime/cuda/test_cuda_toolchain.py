"""Compiling rendered CUDA C to cubins (nvcc here; NVRTC where libnvrtc is found), the cubin disk
cache, the choice of architecture, and finding NVIDIA's libraries without a CUDA install."""
import os
import shutil
import warnings

import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory
from graphc.runtime.cache_store import CacheWarning
from graphc.runtime.cuda import libraries, nvrtc, toolchain
from graphc.runtime.cuda.driver import CudaError
from graphc.runtime.lower import KernelStep, lower_graph
from graphc.runtime.render_cuda import render_cuda_module

needs_nvcc = pytest.mark.skipif(toolchain.find_nvcc() is None, reason="nvcc is not installed")
needs_nvrtc = pytest.mark.skipif(not nvrtc.available(), reason="libnvrtc is not installed")


def _source(scale=0.5, wide=False):
    """A small module of rendered kernels: an elementwise nest and a reduction; `wide` adds the
    other kernel shapes (full reduction, float64, int32 division, a shared-memory GEMM)."""
    gb = GraphBuilder("tc")
    F = gb.F
    x = gb.var("x", TensorType((8, 5)))
    outs = [F.tanh(x * scale + 1.0) * F.sigmoid(x), F.sum(x * x, axis=1)]
    if wide:
        d = gb.var("d", TensorType((8, 5), "float64"))
        i = gb.var("i", TensorType((8, 5), "int32"))
        p = gb.var("p", TensorType((3, 4, 5)))
        outs += [F.sum(F.exp(d)), F.max(d, axis=0), F.broadcast_mod(i, i + 3) + F.broadcast_div(i, i * 2 - 1),
                 F.where(x > 0.0, F.erf(x), F.log1p(F.abs(x))), F.batch_dot(p, p, transpose_b=True)]
    g = fuse_elementwise(gb.build(outs))
    kernels = [s.kernel for s in lower_graph(g, plan_memory(g)) if isinstance(s, KernelStep)]
    return render_cuda_module(kernels), [k.name for k in kernels]


@pytest.fixture
def nvcc_only(monkeypatch):
    monkeypatch.setenv(toolchain.COMPILER_ENV, "nvcc")
    toolchain.clear_memory_cache()
    yield
    toolchain.clear_memory_cache()


def _cubins():
    folder = toolchain.cache_folder()
    return sorted(f for f in os.listdir(folder) if f.endswith(toolchain.SUFFIX)) if os.path.isdir(folder) else []


@needs_nvcc
@pytest.mark.parametrize("capability", [(9, 0), (7, 5)])
def test_nvcc_builds_a_cubin_holding_every_kernel(nvcc_only, capability):
    source, names = _source(wide=True)
    cubin = toolchain.compile_for(source, capability)
    assert cubin[:4] == b"\x7fELF"
    for name in names:
        assert name.encode() in cubin


@needs_nvcc
def test_the_second_compile_is_served_from_memory_then_from_disk(nvcc_only):
    source, _ = _source()
    before = toolchain.stats()
    first = toolchain.compile_for(source, (9, 0))
    assert toolchain.stats()["compiles"] == before["compiles"] + 1
    assert len(_cubins()) == 1
    assert toolchain.compile_for(source, (9, 0)) == first
    assert toolchain.stats()["memory_hits"] == before["memory_hits"] + 1
    toolchain.clear_memory_cache()          # as a new process would
    assert toolchain.compile_for(source, (9, 0)) == first
    after = toolchain.stats()
    assert (after["compiles"], after["disk_hits"]) == (before["compiles"] + 1, before["disk_hits"] + 1)


@needs_nvcc
def test_another_architecture_or_source_is_another_entry(nvcc_only):
    source, _ = _source()
    other, _ = _source(scale=0.25)
    a = toolchain.compile_for(source, (9, 0))
    b = toolchain.compile_for(source, (7, 5))
    c = toolchain.compile_for(other, (9, 0))
    assert a != b and a != c
    assert len(_cubins()) == 3


@needs_nvcc
def test_a_damaged_entry_is_recompiled_and_replaced_with_a_warning(nvcc_only):
    source, _ = _source()
    good = toolchain.compile_for(source, (9, 0))
    (name,) = _cubins()
    path = os.path.join(toolchain.cache_folder(), name)
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF
    open(path, "wb").write(bytes(data))
    toolchain.clear_memory_cache()
    before = toolchain.stats()["compiles"]
    with pytest.warns(CacheWarning, match="recompiling the CUDA kernels"):
        assert toolchain.compile_for(source, (9, 0)) == good
    assert toolchain.stats()["compiles"] == before + 1
    toolchain.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert toolchain.compile_for(source, (9, 0)) == good        # the replacement is intact


@needs_nvcc
def test_a_zero_cache_size_writes_nothing(nvcc_only, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_MAX_BYTES", "0")
    source, _ = _source()
    toolchain.compile_for(source, (9, 0))
    assert _cubins() == []


@needs_nvcc
def test_the_folder_keeps_the_most_recent_cubins_within_its_limit(nvcc_only, monkeypatch):
    first, _ = _source()
    size = len(toolchain.compile_for(first, (9, 0)))
    monkeypatch.setenv("GRAPHC_CACHE_MAX_BYTES", str(size + size // 2))     # room for about one
    toolchain.compile_for(_source(scale=0.25)[0], (9, 0))
    assert len(_cubins()) == 1
    toolchain.clear_memory_cache()
    before = toolchain.stats()["compiles"]
    toolchain.compile_for(first, (9, 0))               # the older one was evicted
    assert toolchain.stats()["compiles"] == before + 1


@needs_nvcc
def test_a_compile_error_names_the_architecture_and_quotes_nvcc(nvcc_only):
    with pytest.raises(CudaError, match=r"(?s)sm_90.*undefined_name"):
        toolchain.compile_for('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }', (9, 0))


def test_an_unknown_forced_compiler_is_refused(monkeypatch):
    monkeypatch.setenv(toolchain.COMPILER_ENV, "clang")
    with pytest.raises(CudaError, match="expected 'nvrtc' or 'nvcc'"):
        toolchain.compiler()


@pytest.mark.parametrize("capability, supported, want", [
    ((9, 0), [75, 80, 86, 89, 90], 90),
    ((8, 9), [75, 80, 86], 86),            # a newer minor version runs its major's older cubins
    ((12, 1), [90, 100, 120], 120),
    ((7, 5), [75, 80], 75)])
def test_the_architecture_is_the_device_s_own_or_the_nearest_below_in_its_major(capability, supported, want):
    assert nvrtc.pick_arch(capability, supported) == want


def test_no_architecture_of_the_device_s_major_is_an_error_that_lists_what_is_supported():
    with pytest.raises(CudaError, match=r"compute capability 7\.0 \(sm_70\); it supports sm_75, sm_80"):
        nvrtc.pick_arch((7, 0), [80, 75])


@needs_nvrtc
@pytest.mark.parametrize("arch", [90, 75])
def test_nvrtc_compiles_the_rendered_source_including_its_math_h(arch):
    source, names = _source(wide=True)
    assert source.lstrip().startswith("#include <math.h>")
    cubin = nvrtc.compile_cubin(source, arch)
    assert cubin[:4] == b"\x7fELF" and all(n.encode() in cubin for n in names)


@needs_nvrtc
def test_nvrtc_reports_compile_errors_with_its_log():
    with pytest.raises(CudaError, match=r"(?s)nvrtcCompileProgram \(sm_90.*undefined_name"):
        nvrtc.compile_cubin('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }', 90)


# ---- finding libraries --------------------------------------------------------------------------

def test_the_newest_soname_in_a_wheel_folder_is_found(tmp_path):
    lib = tmp_path / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    for name in ("libnvrtc.so.13", "libnvrtc.so.13.5", "libnvrtc.so.12", "libnvrtc-builtins.so.13.5"):
        (lib / name).write_bytes(b"")
    assert libraries.find_library("nvrtc", paths=[str(tmp_path)], environ={}) == str(lib / "libnvrtc.so.13.5")


def test_wheels_come_before_cuda_home(tmp_path):
    wheel = tmp_path / "site" / "nvidia" / "cublas" / "lib"
    home = tmp_path / "cuda" / "lib64"
    for d in (wheel, home):
        d.mkdir(parents=True)
        (d / "libcublas.so.12").write_bytes(b"")
    found = libraries.find_library("cublas", paths=[str(tmp_path / "site")],
                                   environ={"CUDA_HOME": str(tmp_path / "cuda")})
    assert found == str(wheel / "libcublas.so.12")
    assert libraries.find_library("cublas", paths=[], environ={"CUDA_HOME": str(tmp_path / "cuda")}) == \
        str(home / "libcublas.so.12")


def test_a_library_that_is_missing_or_does_not_load_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(libraries, "_opened", {})
    assert libraries.open_library("graphc_no_such_library") is None
    broken = tmp_path / "nvidia" / "cu13" / "lib"
    broken.mkdir(parents=True)
    (broken / "libcublas.so.13").write_bytes(b"not an ELF file")
    monkeypatch.setattr("sys.path", [str(tmp_path)])
    assert libraries.open_library("cublas") is None


def test_without_nvrtc_or_nvcc_compiling_says_where_it_looked(monkeypatch):
    monkeypatch.setattr(nvrtc, "available", lambda: False)
    monkeypatch.setattr(toolchain, "find_nvcc", lambda: None)
    with pytest.raises(CudaError, match="no CUDA compiler"):
        toolchain.compile_for("", (9, 0))


@pytest.mark.skipif(shutil.which("nvcc") is None or nvrtc.available(), reason="checks the nvcc fallback")
def test_without_nvrtc_the_compiler_is_nvcc_and_names_its_release():
    c = toolchain.compiler()
    assert c.kind == "nvcc" and c.ident.startswith("nvcc-") and 90 in c.archs and 75 in c.archs
