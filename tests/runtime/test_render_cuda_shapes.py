"""The GPU shapes render_cuda picks compute what the CPU backend computes, run through the CUDA
simulator (g++ on the same source): a block per long row, a block stepping through nests with
overlapping writes (col2im), several stores per iteration (a pooling gradient), a reduction
whose total a later nest reads, a scatter on one thread, and a kernel split by cuda_pieces into
launches, GEMMs and copies run one after another."""
import shutil
import subprocess

import numpy as np
import pytest

from graphc.ops import scalar as S
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory
from graphc.runtime.cuda.driver import get_driver, reset_driver
from graphc.runtime.kernel_ir import (Accumulate, AccRef, Buf, DeclareAcc, Index, Indirect, Kernel, Load, Loop,
                                      Store)
from graphc.runtime.lower import KernelStep, lower_graph
from graphc.runtime.render_cuda import cuda_pieces, render_cuda, render_cuda_module

from kernel_reference import random_buffers, run_on_cpu
from test_render_cuda import NVCC
from test_render_cuda_pieces import _mixed

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA simulator compiles kernels with g++")

AUTO_GRID = 3       # any grid is right for an 'auto' launch; 3 blocks make the strides wrap


@pytest.fixture
def sim(monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_SIM", "1")
    monkeypatch.setenv("GRAPHC_CUDA_SIM_MEMORY", str(256 << 20))
    reset_driver()
    yield get_driver()
    reset_driver()


def _xyz(v):
    return (v, 1, 1) if isinstance(v, int) else tuple(v) + (1,) * (3 - len(v))




def _on_sim(sim, kernels, arrays_of):
    """Each kernel as its cuda_pieces, launched in order as render_cuda's launch says (GEMMs
    and copies through the driver); every buffer back."""
    pieces = {k.name: cuda_pieces(k) for k in kernels}
    launched = [p for ps in pieces.values() for kind, p in ps if kind == "kernel"]
    module = sim.load_module(0, render_cuda_module(launched))
    results = []
    for k in kernels:
        ptr = {}
        for b in k.bufs:
            a = np.ascontiguousarray(arrays_of[k.name][b.name])
            ptr[b.name] = sim.malloc(0, max(a.nbytes, 1))
            sim.memcpy_htod(0, ptr[b.name], a)
        for kind, p in pieces[k.name]:
            if kind == "gemm":
                sim.gemm(0, p, ptr[p.a], ptr[p.b], ptr[p.c])
            elif kind == "copy":
                sim.memcpy_dtod(0, ptr[p.dst], ptr[p.src], p.nbytes)
            else:
                _, launch = render_cuda(p)
                grid = AUTO_GRID if launch["grid"] == "auto" else launch["grid"]
                sim.launch(0, module.function(p.name), _xyz(grid), _xyz(launch["block"]),
                           [ptr[b.name] for b in p.bufs])
        out = {}
        for b in k.bufs:
            h = np.empty_like(arrays_of[k.name][b.name])
            sim.memcpy_dtoh(0, h, ptr[b.name])
            sim.free(0, ptr[b.name])
            out[b.name] = h
        results.append(out)
    return results


def check_same(sim, kernels, seed=0):
    """Each kernel on the simulator (as its pieces) and on the CPU backend, from the same random
    buffers: every buffer equal (floats within reduction-order rounding)."""
    rng = np.random.default_rng(seed)
    arrays = {k.name: random_buffers(k, rng) for k in kernels}
    want = run_on_cpu(kernels, arrays)
    got = _on_sim(sim, kernels, arrays)
    for k, g, w in zip(kernels, got, want):
        for name in w:
            if np.issubdtype(w[name].dtype, np.floating):
                tol = 2e-5 if w[name].dtype == np.float32 else 1e-12
                finite = np.abs(w[name][np.isfinite(w[name])])
                scale = max(1.0, float(finite.max())) if finite.size else 1.0
                np.testing.assert_allclose(g[name], w[name], rtol=tol, atol=tol * scale, equal_nan=True,
                                           err_msg=f"{k.name} buffer {name}:\n{k}")
            else:
                np.testing.assert_array_equal(g[name], w[name], err_msg=f"{k.name} buffer {name}:\n{k}")


def _ix(*terms, offset=0):
    return Index(tuple(terms), offset)


def test_a_split_kernel_runs_its_pieces_in_order(sim):
    check_same(sim, [_mixed()])


ROWS, ROW = 3, 1000


def _rows():
    """out[r] = sqrt(sum of squares of row r): 3 rows of 1000."""
    return Kernel("k_rows", [Buf("out", "float32", ROWS), Buf("x", "float32", ROWS * ROW)],
                  [Loop("r", ROWS, [DeclareAcc("acc", "float32", "sum"),
                                    Loop("c", ROW, [Accumulate("acc", "sum", S.arg(0) * S.arg(0),
                                                               (Load("x", _ix(("r", ROW), ("c", 1))),))]),
                                    Store("out", _ix(("r", 1)), S.call("sqrt", S.arg(0)), (AccRef("acc"),))])])


def _softmaxish(n=700):
    """y[i] = exp(x[i] - max(x))."""
    return Kernel("k_softmaxish", [Buf("y", "float64", n), Buf("x", "float64", n)],
                  [DeclareAcc("m", "float64", "max"),
                   Loop("i", n, [Accumulate("m", "max", S.arg(0, "float64"), (Load("x", _ix(("i", 1))),))]),
                   Loop("j", n, [Store("y", _ix(("j", 1)), S.call("exp", S.arg(0, "float64") - S.arg(1, "float64")),
                                       (Load("x", _ix(("j", 1))), AccRef("m")))])])


def _window():
    """out[i + j] += x[i, j]: overlapping writes."""
    at = _ix(("i", 1), ("j", 1))
    return Kernel("k_window", [Buf("out", "float32", 302), Buf("x", "float32", 3 * 300)],
                  [Loop("i", 3, [Loop("j", 300, [Store("out", at, S.arg(0) + S.arg(1),
                                                       (Load("out", at), Load("x", _ix(("i", 300), ("j", 1)))))])])])


def _scatter():
    """out[idx[i] mod 5] += x[i] over 40 values: rows picked more than once."""
    pick = Index((), 0, (Indirect("idx", _ix(("i", 1)), 1, 5, "wrap"),))
    return Kernel("k_scatter", [Buf("out", "float32", 5), Buf("idx", "int32", 40), Buf("x", "float32", 40)],
                  [Loop("i", 40, [Store("out", pick, S.arg(0) + S.arg(1),
                                        (Load("out", pick), Load("x", _ix(("i", 1)))))])])


def test_few_long_rows_reduce_a_block_per_row(sim):
    src, launch = render_cuda(_rows())
    assert launch == {"block": 256, "grid": "auto", "total": ROWS * 256} and "__shared__" in src
    check_same(sim, [_rows()])


def test_a_total_read_by_a_later_nest_reaches_every_thread(sim):
    """The maximum is combined before the nest that reads it, in the one block that runs both."""
    src, launch = render_cuda(_softmaxish())
    assert launch["grid"] == 1 and "gc_part_float64" in src
    check_same(sim, [_softmaxish()])


def test_overlapping_windows_and_scatters_keep_the_cpu_order(sim):
    # the window: threads split j, a barrier after each i; the scatter: one thread, in order
    src, launch = render_cuda(_window())
    assert launch["grid"] == 1 and launch["block"] == 256 and "__syncthreads" in src
    assert render_cuda(_scatter())[1] == {"block": 1, "grid": 1, "total": 1}
    check_same(sim, [_window(), _scatter()])


def _conv_pool_training_kernels():
    """Every kernel of a small convolution + pooling network's forward and backward (im2col,
    col2im, depthwise, pooling and its gradient, bias and weight gradients)."""
    gb = GraphBuilder("shapes")
    F = gb.F
    x = gb.var("x", TensorType((2, 3, 10, 10)))
    w = gb.var("w", TensorType((4, 3, 3, 3)), "param")
    b = gb.var("b", TensorType((4,)), "param")
    dw = gb.var("dw", TensorType((4, 1, 3, 3)), "param")
    y = F.relu(F.Convolution(x, w, b, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4))
    y = F.Convolution(y, dw, kernel=(3, 3), pad=(1, 1), num_group=4, num_filter=4, no_bias=True)
    p = F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max") + \
        F.slice_axis(F.slice_axis(F.Pooling(y, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg"),
                                axis=2, begin=0, end=2), axis=3, begin=0, end=2)
    g = gb.build([F.sum(F.mean(p, axis=(2, 3)) * F.sum(F.sum(p, axis=0)))])
    joint = differentiate(g, [g.input_by_name(n) for n in ("x", "w", "b", "dw")]).graph
    fused = fuse_elementwise(joint)
    ks = {}
    for s in lower_graph(fused, plan_memory(fused)):
        if isinstance(s, KernelStep):
            ks.setdefault(s.kernel.name, s.kernel)
    return list(ks.values())


def test_convolution_and_pooling_training_kernels_match_the_cpu(sim):
    ks = _conv_pool_training_kernels()
    names = " ".join(k.name for k in ks)
    assert "col2im" in names and "poolgrad" in names
    sources = [render_cuda(p)[0] for k in ks for kind, p in cuda_pieces(k) if kind == "kernel"]
    assert any("gc_b < " in s and "__syncthreads" in s for s in sources), "col2im: a block per plane"
    assert any("gc_part_" in s for s in sources), "a reduction combined by a block"
    check_same(sim, ks, seed=1)


def _narrow(n):
    idx, jdx = _ix(("i", 1)), _ix(("j", 1))
    bufs = [Buf("h", "float16", n), Buf("back", "float32", n), Buf("b", "int8", n), Buf("u", "uint8", n),
            Buf("x", "float32", n), Buf("w", "int32", n)]
    narrow = [Store("h", idx, S.cast(S.arg(0), "float16"), (Load("x", idx),)),
              Store("b", idx, S.cast(S.arg(0, "int32"), "int8"), (Load("w", idx),)),
              Store("u", idx, S.cast(S.arg(0, "int32"), "uint8"), (Load("w", idx),))]
    widen = [Store("back", jdx, S.cast(S.arg(0, "float16"), "float32") * 2.0, (Load("h", jdx),))]
    return Kernel("k_narrow", bufs, [Loop("i", n, narrow), Loop("j", n, widen)])


def test_storage_only_dtypes_move_and_round_like_numpy(sim):
    """float16 is stored as binary16 bits and converted on load and store (round to nearest
    even, subnormals, infinities, NaN); int8 and uint8 wrap when a cast narrows to them."""
    n = 4096
    k = _narrow(n)
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_normal(n - 16) * 10.0 ** rng.integers(-9, 6, n - 16),
                        [np.inf, -np.inf, np.nan, 0.0, -0.0, 65504.0, 65520.0, 70000.0, 6e-8, 3e-8, 2.9e-8,
                         6.1e-5, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 2049.0, 2051.0]]).astype(np.float32)
    w = rng.integers(-1000, 1000, n).astype(np.int32)
    arrays = {"h": np.zeros(n, np.float16), "back": np.zeros(n, np.float32), "b": np.zeros(n, np.int8),
              "u": np.zeros(n, np.uint8), "x": x, "w": w}
    (got,) = _on_sim(sim, [k], {k.name: arrays})
    with np.errstate(over="ignore"):
        half = x.astype(np.float16)
    np.testing.assert_array_equal(got["h"].view(np.uint16), half.view(np.uint16))
    np.testing.assert_array_equal(got["back"], half.astype(np.float32) * 2)
    np.testing.assert_array_equal(got["b"], w.astype(np.int8))
    np.testing.assert_array_equal(got["u"], w.astype(np.uint8))


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_every_shape_here_compiles_with_nvcc(tmp_path):
    kernels = [p for k in [_mixed(), _rows(), _softmaxish(), _window(), _scatter(), _narrow(64), _big(1 << 16),
                           _rows_of_sequences(), *_conv_pool_training_kernels()]
               for kind, p in cuda_pieces(k) if kind == "kernel"]
    src = tmp_path / "shapes.cu"
    src.write_text(render_cuda_module(kernels))
    r = subprocess.run([NVCC, "-ptx", "-arch=sm_90", str(src), "-o", str(tmp_path / "shapes.ptx")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ptx = (tmp_path / "shapes.ptx").read_text()
    assert ptx.count(".entry") == len(kernels) and "cvt.rn.f16.f32" in ptx


def _big(n):
    """out = [sum(x), max(x)]."""
    at = _ix(("i", 1))
    return Kernel("k_big", [Buf("out", "float64", 2), Buf("x", "float64", n)],
                  [DeclareAcc("s", "float64", "sum"), DeclareAcc("m", "float64", "max"),
                   Loop("i", n, [Accumulate("s", "sum", S.arg(0, "float64"), (Load("x", at),)),
                                 Accumulate("m", "max", S.arg(0, "float64"), (Load("x", at),))]),
                   Store("out", _ix(), S.arg(0, "float64"), (AccRef("s"),)),
                   Store("out", _ix(offset=1), S.arg(0, "float64"), (AccRef("m"),))])


def test_a_large_full_reduction_spreads_over_blocks_and_can_run_again(sim):
    """sum and max of 70,000 values: 274 blocks' partials, combined by the last block; a second
    launch of the same function must find its counter reset."""
    n, blocks = 70_000, 274
    k = _big(n)
    src, launch = render_cuda(k)
    assert launch == {"block": 256, "grid": blocks, "total": blocks * 256} and "atomicAdd" in src
    module = sim.load_module(0, render_cuda_module([k]))
    rng = np.random.default_rng(5)
    for run in range(2):
        x = rng.standard_normal(n)
        ptr_out, ptr_x = sim.malloc(0, 16), sim.malloc(0, x.nbytes)
        sim.memcpy_htod(0, ptr_x, x)
        sim.launch(0, module.function("k_big"), (blocks, 1, 1), (256, 1, 1), [ptr_out, ptr_x])
        out = np.empty(2)
        sim.memcpy_dtoh(0, out, ptr_out)
        sim.free(0, ptr_out)
        sim.free(0, ptr_x)
        np.testing.assert_allclose(out, [x.sum(), x.max()], rtol=1e-12, err_msg=f"run {run}")


def test_reductions_over_the_outer_axis_become_launches_that_use_the_whole_grid(sim):
    """sum/max/mean over axis 0 lower to nests run one after another (identity, accumulate whole
    rows, finish); cuda_pieces makes each its own launch, so none is left to one block."""
    gb = GraphBuilder("outer")
    F = gb.F
    x = gb.var("x", TensorType((300, 33)))
    d = gb.var("d", TensorType((40, 7, 5), "float64"))
    g = fuse_elementwise(gb.build([F.sum(x * x, axis=0), F.max(d, axis=0), F.mean(d, axis=(0, 1))]))
    ks = [s.kernel for s in lower_graph(g, plan_memory(g)) if isinstance(s, KernelStep)]
    pieces = [p for k in ks for kind, p in cuda_pieces(k) if kind == "kernel"]
    assert len(pieces) > len(ks)
    assert all(render_cuda(p)[1]["grid"] == "auto" for p in pieces)
    check_same(sim, ks, seed=6)


def test_an_accumulator_name_declared_again_gets_a_variable_of_its_own(sim):
    """The IR may reuse a name for the next reduction in the same sequence (GridGenerator's
    gradient declares acc0 once per output): both as a thread per row and a block per row."""
    def kernel(n):
        body = []
        for o in range(2):
            body += [DeclareAcc("acc0", "float64", "sum"),
                     Loop("i", n, [Accumulate("acc0", "sum", S.arg(0, "float64") * float(o + 1),
                                              (Load("x", _ix(("b", n), ("i", 1))),))]),
                     Store("out", _ix(("b", 2), offset=o), S.arg(0, "float64"), (AccRef("acc0"),))]
        return Kernel(f"k_again{n}", [Buf("out", "float64", 6), Buf("x", "float64", 3 * n)], [Loop("b", 3, body)])
    assert "__shared__" not in render_cuda(kernel(4))[0] and "__shared__" in render_cuda(kernel(300))[0]
    check_same(sim, [kernel(4), kernel(300)])


def _rows_of_sequences(shared_scratch=False):
    """Per row r of 4 (a loop not marked independent): s = 2x, then a compare-exchange stage
    writing y[c*2 + t] and y[c*2 + 1 - t] (a sort network's), then a scatter-add through an
    index array. With shared_scratch the rows share s, so they must run one after another."""
    rs = 0 if shared_scratch else 8
    at = _ix(("r", 8), ("t", 1))
    s_at = _ix(("r", rs), ("t", 1))
    lo, hi = _ix(("r", 8), ("c", 2), ("t", 1)), _ix(("r", 8), ("c", 2), ("t", -1), offset=1)
    s_lo, s_hi = _ix(("r", rs), ("c", 2), ("t", 1)), _ix(("r", rs), ("c", 2), ("t", -1), offset=1)
    swap = S.call("gt", S.arg(0), S.arg(1))
    pick = Index((("r", 8),), 0, (Indirect("idx", _ix(("r", 20), ("i", 1)), 1, 8, "clip"),))
    body = [Loop("t", 8, [Store("s", s_at, S.arg(0) * 2.0, (Load("x", at),))]),
            Loop("c", 4, [Loop("t", 1, [
                Store("y", lo, S.call("select", swap, S.arg(1), S.arg(0)), (Load("s", s_lo), Load("s", s_hi))),
                Store("y", hi, S.call("select", swap, S.arg(0), S.arg(1)), (Load("s", s_lo), Load("s", s_hi)))])]),
            Loop("i", 20, [Store("y", pick, S.arg(0) + S.arg(1), (Load("y", pick), Load("x", _ix(("i", 1)))))])]
    bufs = [Buf("y", "float32", 32), Buf("s", "float32", 32), Buf("x", "float32", 32), Buf("idx", "int32", 80)]
    return Kernel(f"k_rowseq{int(shared_scratch)}", bufs, [Loop("r", 4, body)])


def test_rows_that_touch_disjoint_slabs_get_a_block_each_even_unmarked(sim):
    own, shared = _rows_of_sequences(), _rows_of_sequences(shared_scratch=True)
    src, launch = render_cuda(own)
    assert launch == {"block": 256, "grid": "auto", "total": 4 * 256} and "gc_b < 4LL" in src
    # the scatter-add runs on thread 0 of the row's block, between barriers
    assert "if (threadIdx.x == 0) {\n      for (long long i = 0;" in src
    assert render_cuda(shared)[1]["grid"] == 1
    check_same(sim, [own, shared], seed=7)
