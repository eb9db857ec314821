"""Compiled Pooling (max/avg/sum, global, valid/full, count_include_pad, 1-D/2-D/3-D) matches the
numpy reference of ops/declarations/pool.py, as one generated kernel per node."""
import os

import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.executor import HostStep
from graphc.runtime.pool import _vector_pieces, segments

RNG = np.random.default_rng(3)

CASES = [
    ((2, 3, 9, 10), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))),
    ((1, 2, 12, 12), dict(kernel=(2, 2), stride=(2, 2))),
    ((2, 3, 9, 10), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full")),
    ((2, 3, 8, 7), dict(kernel=(3, 2), stride=(3, 2), pad=(1, 1), pooling_convention="full")),
    ((2, 3, 9), dict(kernel=(4,), stride=(3,), pad=(2,))),
    ((1, 2, 5, 6, 7), dict(kernel=(2, 3, 3), stride=(2, 1, 2), pad=(1, 1, 0))),
    ((2, 3, 7, 7), dict(global_pool=True, kernel=(1, 1))),
    ((1, 4, 11, 13), dict(global_pool=True)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool_type, count_include_pad", [("max", None), ("avg", None), ("avg", False), ("sum", None)])
@pytest.mark.parametrize("shape, attrs", CASES)
def test_pooling_matches_reference(shape, attrs, pool_type, count_include_pad, dtype):
    gb = GraphBuilder("pool")
    x = gb.var("x", TensorType(shape, dtype))
    kw = dict(attrs, pool_type=pool_type)
    if count_include_pad is not None:
        kw["count_include_pad"] = count_include_pad
    g = gb.build([gb.F.Pooling(x, **kw)])
    a = RNG.standard_normal(shape).astype(dtype)
    prog = compile_graph(g, cache=False, check=True)
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(prog([a])[0], interpret(g, [a])[0], rtol=tol, atol=tol)


def test_same_convention_and_lp_pooling_compile():
    gb = GraphBuilder("pool")
    x = gb.var("x", TensorType((1, 2, 7, 7)))
    outs = [gb.F.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="same"),
            gb.F.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False,
                         pooling_convention="same"),
            gb.F.Pooling(x, kernel=(2, 2), pool_type="lp", p_value=2)]
    g = gb.build(outs)
    a = RNG.standard_normal((1, 2, 7, 7)).astype("float32")
    prog = compile_graph(g, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == []
    for got, ref in zip(prog([a]), interpret(g, [a])):
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_segments_group_interior_positions_and_split_the_borders():
    segs = segments(out_len=5, in_len=9, k=3, s=2, p=1)
    # (first output, count, first tap, end tap, padded window extent)
    assert segs == [(0, 1, 1, 3, 3),           # starts in the padding: its first tap is cut off
                    (1, 3, 0, 3, 3),           # the interior: three positions, full windows
                    (4, 1, 0, 2, 3)]           # its last tap lies in the padding


# rows long enough that the innermost segments are cut into overlapping vector pieces
LONG_ROWS = [
    ((1, 4, 112, 112), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))),       # ResNet-18's stem pool
    ((1, 3, 7, 75), dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1))),
    ((2, 2, 6, 70), dict(kernel=(2, 2), stride=(2, 2))),
    ((1, 2, 5, 83), dict(kernel=(3, 3), stride=(2, 2), pooling_convention="full")),
    ((2, 3, 100), dict(kernel=(3,), stride=(2,), pad=(1,))),
    ((1, 2, 3, 4, 41), dict(kernel=(2, 2, 3), stride=(1, 2, 2), pad=(0, 1, 1))),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool_type, count_include_pad", [("max", None), ("avg", None), ("avg", False), ("sum", None)])
@pytest.mark.parametrize("shape, attrs", LONG_ROWS)
def test_pooling_over_long_rows_matches_reference(shape, attrs, pool_type, count_include_pad, dtype):
    test_pooling_matches_reference(shape, attrs, pool_type, count_include_pad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, attrs", [LONG_ROWS[0], LONG_ROWS[1], LONG_ROWS[2], CASES[0], CASES[5]])
def test_max_pooling_propagates_nan_and_infinities_like_the_reference(shape, attrs, dtype):
    gb = GraphBuilder("pool")
    x = gb.var("x", TensorType(shape, dtype))
    g = gb.build([gb.F.Pooling(x, pool_type="max", **attrs)])
    prog = compile_graph(g, cache=False)
    u = RNG.random(shape)
    a = RNG.standard_normal(shape).astype(dtype)
    a[u < 0.03] = np.nan
    a[(u >= 0.03) & (u < 0.06)] = np.inf
    a[(u >= 0.06) & (u < 0.3)] = -np.inf
    got, ref = prog([a])[0], interpret(g, [a])[0]
    assert np.isnan(ref).any() and np.isinf(ref).any()
    np.testing.assert_array_equal(got, ref)            # NaN where the reference has NaN


@pytest.mark.parametrize("lanes", [8, 16])
def test_vector_pieces_cover_a_segment_with_whole_vectors_and_one_scalar_iteration(lanes):
    for n in range(1, 90):
        seg = (5, n, 0, 3, 3)
        pieces = _vector_pieces(seg, lanes)
        assert all(p[2:] == seg[2:] for p in pieces)
        covered = set()
        for first, count, *_ in pieces:
            assert count <= lanes + 1 or (count - 1) % lanes == 0
            covered |= set(range(first, first + count))
        assert covered == set(range(5, 5 + n))
        assert len(pieces) <= 2


# -- gradients: gather kernels, no host step ----------------------------------------------------

GRAD_CASES = CASES + [
    ((2, 3, 7, 8), dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1))),          # overlapping, stride 1
    ((1, 2, 10, 9), dict(kernel=(2, 2), stride=(3, 3))),                      # gaps between windows
    ((2, 2, 6, 7), dict(kernel=(1, 1), stride=(2, 2))),
    ((1, 2, 7, 6), dict(kernel=(4, 3), stride=(2, 3), pad=(2, 1), pooling_convention="full")),
    ((2, 3, 11), dict(kernel=(3,), stride=(1,), pad=(1,))),
    ((1, 2, 4, 5, 6), dict(kernel=(3, 3, 3), stride=(2, 2, 2), pad=(1, 1, 1))),
    ((2, 2, 5, 4, 3), dict(global_pool=True)),
    ((2, 3, 9), dict(global_pool=True)),
]


def _grad_graph(shape, kw, dtype):
    gb = GraphBuilder("pool_grad")
    x = gb.var("x", TensorType(shape, dtype))
    y = gb.F.Pooling(x, **kw)
    g = gb.var("g", TensorType(y.shape, dtype), kind="ograd")
    return gb.build([gb.F._pooling_grad(g, x, y, **kw)]), y.shape


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool_type, count_include_pad", [("max", None), ("avg", None), ("avg", False), ("sum", None)])
@pytest.mark.parametrize("shape, attrs", GRAD_CASES)
def test_pooling_gradient_compiles_natively_and_matches_reference(shape, attrs, pool_type, count_include_pad, dtype):
    kw = dict(attrs, pool_type=pool_type)
    if count_include_pad is not None:
        kw["count_include_pad"] = count_include_pad
    graph, yshape = _grad_graph(shape, kw, dtype)
    prog = compile_graph(graph, cache=False, check=True)
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    tol = 1e-6 if dtype == "float32" else 1e-13
    for data in (RNG.standard_normal(shape), RNG.integers(-1, 2, shape)):    # the second: ties everywhere
        a = data.astype(dtype)
        g = RNG.standard_normal(yshape).astype(dtype)
        np.testing.assert_allclose(prog([a, g])[0], interpret(graph, [a, g])[0], rtol=tol, atol=tol)


def test_max_pooling_gradient_goes_to_the_first_maximum_and_treats_padding_as_minus_infinity():
    kw = dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    graph, yshape = _grad_graph((1, 1, 5, 5), kw, "float32")
    prog = compile_graph(graph, cache=False)
    g = RNG.standard_normal(yshape).astype("float32")
    for a in (np.zeros((1, 1, 5, 5), "float32"), np.full((1, 1, 5, 5), -np.inf, "float32"),
              np.where(RNG.random((1, 1, 5, 5)) < 0.5, -np.inf, 1.0).astype("float32")):
        np.testing.assert_array_equal(prog([a, g])[0], interpret(graph, [a, g])[0])


@pytest.mark.parametrize("shape, attrs", [CASES[0], CASES[2], CASES[4], CASES[5],
                                          ((2, 3, 7, 8), dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1)))])
def test_max_pool_gather_compiles_natively_and_matches_reference(shape, attrs):
    kw = dict(attrs, pool_type="max")
    gb = GraphBuilder("gather")
    h = gb.var("h", TensorType(shape))
    x = gb.var("x", TensorType(shape))
    graph = gb.build([gb.F._max_pool_gather(h, x, **kw)])
    prog = compile_graph(graph, cache=False, check=True)
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    for data in (RNG.standard_normal(shape), RNG.integers(-1, 2, shape)):
        a, v = data.astype("float32"), RNG.standard_normal(shape).astype("float32")
        np.testing.assert_array_equal(prog([v, a])[0], interpret(graph, [v, a])[0])


def test_large_max_windows_keep_the_gradient_on_the_host():
    graph, yshape = _grad_graph((1, 2, 12, 12), dict(kernel=(9, 9), pool_type="max"), "float32")
    prog = compile_graph(graph, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == ["_pooling_grad"]


@pytest.mark.parametrize("shape, out_size", [((2, 3, 8, 8), (1, 1)), ((2, 3, 8, 6), (4, 3)), ((1, 2, 7, 10), (3, 4)),
                                             ((1, 2, 11, 5), (4, 5)), ((2, 2, 9, 9), (9, 9))])
def test_adaptive_average_pooling_and_its_gradient_compile_natively(shape, out_size):
    gb = GraphBuilder("adaptive")
    x = gb.var("x", TensorType(shape))
    y = gb.F._contrib_AdaptiveAvgPooling2D(x, output_size=out_size)
    g = gb.var("g", TensorType(y.shape), kind="ograd")
    graph = gb.build([y, gb.F._adaptive_avg_pool_grad(g, in_size=shape[2:])])
    prog = compile_graph(graph, cache=False, check=True)
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    a, b = RNG.standard_normal(shape).astype("float32"), RNG.standard_normal(y.shape).astype("float32")
    for got, ref in zip(prog([a, b]), interpret(graph, [a, b])):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_gradient_kernels_render_to_cuda_and_compile_with_nvcc(tmp_path):
    import shutil
    import subprocess
    from graphc.passes.fuse import fuse_elementwise
    from graphc.passes.memory import plan_memory
    from graphc.runtime.lower import KernelStep, lower_graph
    from graphc.runtime.render_cuda import render_cuda_module
    gb = GraphBuilder("grads")
    F = gb.F
    x = gb.var("x", TensorType((2, 3, 9, 10)))
    outs = []
    for kw in (dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"),
               dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg", count_include_pad=False),
               dict(global_pool=True, pool_type="max")):
        y = F.Pooling(x, **kw)
        outs.append(F._pooling_grad(y * 2.0, x, y, **kw))
    outs.append(F._max_pool_gather(x * 3.0, x, kernel=(2, 2), stride=(2, 2), pool_type="max"))
    outs.append(F._adaptive_avg_pool_grad(F._contrib_AdaptiveAvgPooling2D(x, output_size=(4, 3)), in_size=(9, 10)))
    g = fuse_elementwise(gb.build(outs))
    # content-named: equal kernels (the two y * 2.0) are one function
    kernels = list({s.kernel.name: s.kernel for s in lower_graph(g, plan_memory(g)) if isinstance(s, KernelStep)}.values())
    names = " ".join(k.name for k in kernels)
    for kind in ("poolgrad", "poolgather", "adaptivepool"):
        assert f"k_{kind}_" in names
    src = render_cuda_module(kernels)
    nvcc = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    (tmp_path / "k.cu").write_text(src)
    r = subprocess.run([nvcc, "-ptx", "-arch=sm_75", str(tmp_path / "k.cu"), "-o", str(tmp_path / "k.ptx")],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
