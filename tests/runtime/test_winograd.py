"""3x3 stride-1 convolutions through Winograd F(2x2, 3x3) (runtime/winograd.py) match the numpy
reference, with padding, batches, chunks, epilogues; and only the convolutions it computes
exactly take it."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from graphc.compiler import compile_graph
from graphc.ops import fused
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.memory import check_plan
from graphc.runtime import winograd
from graphc.runtime.executor import HostStep

from gemm_isas import geometry_params, use_geometry

RNG = np.random.default_rng(5)


def _graph(x_shape, filters, dtype="float32", pad=(1, 1), bias=False, act=None, residual=False, **attrs):
    gb = GraphBuilder("wconv")
    x = gb.var("x", TensorType(x_shape, dtype))
    w = gb.var("w", TensorType((filters, x_shape[1] // attrs.get("num_group", 1), 3, 3), dtype), "param")
    args = [x, w]
    if bias:
        args.append(gb.var("b", TensorType((filters,), dtype), "param"))
    y = gb.F.Convolution(*args, kernel=(3, 3), pad=pad, num_filter=filters, no_bias=not bias, **attrs)
    if residual:
        y = y + gb.var("r", TensorType(y.shape, dtype))
    if act:
        y = gb.F.Activation(y, act_type=act)
    return gb.build([y])


def _kernel_kinds(prog):
    return {k.name.split("_")[1] for k in prog.kernels() if k.name.startswith("k_")}


def _run(*args, scale=1.0, **kw):
    """Compile _graph(*args, **kw) and run it; the reference is the same graph in float64 on
    the same (float32) values, so Winograd's float32 error is measured against the exact sum."""
    graph = _graph(*args, **kw)
    arrays = [(RNG.standard_normal(n.types[0].shape) * scale).astype(n.types[0].dtype) for n in graph.inputs]
    prog = compile_graph(graph, cache=False, check=True)
    check_plan(prog.fused, prog.plan)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == []
    got = prog(arrays)[0]
    ref = interpret(_graph(*args, **dict(kw, dtype="float64")), [a.astype(np.float64) for a in arrays])[0]
    return prog, got, ref


def _assert_close(got, ref, k):
    """Float32 error bound of a sum of k products of O(1) terms, the transforms' mixing included."""
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(got, ref, rtol=0, atol=4e-6 * scale * max(1.0, k ** 0.5))


@pytest.mark.parametrize("x_shape,filters,pad", [
    ((1, 3, 14, 14), 5, (1, 1)),          # smallest side that takes it, channels not a multiple of anything
    ((2, 7, 16, 14), 9, (1, 1)),          # two images, rectangular
    ((1, 4, 16, 18), 4, (0, 0)),          # no padding: the image is read in place
    ((1, 6, 14, 16), 8, (2, 1)),          # more padding on one axis (output grows)
    ((3, 16, 20, 20), 24, (1, 1)),
    ((2, 3, 32, 34), 4, (1, 1)),          # F(2x2), rows of 17 tiles
    ((1, 5, 34, 32), 3, (0, 1)),          # ... without padding on one axis
    ((1, 3, 16, 64), 5, (1, 1)),          # F(4x4), rows of 16 tiles
    ((2, 4, 18, 66), 3, (0, 0)),          # ... without padding
])
def test_matches_the_reference(x_shape, filters, pad):
    prog, got, ref = _run(x_shape, filters, pad=pad)
    kinds = _kernel_kinds(prog)
    assert {"wgin", "wgw", "wgout"} <= kinds and "im2col" not in kinds
    assert "pad" not in kinds                   # the input transform reads the images in place, padded or not
    _assert_close(got, ref, 9 * x_shape[1])


@pytest.mark.parametrize("geometry", geometry_params())
@pytest.mark.parametrize("x_shape,filters,pad", [
    ((2, 7, 16, 14), 9, (1, 1)),          # F(2x2): 16 GEMMs of 9 x 7 x 56 per image pair
    ((1, 5, 16, 16), 19, (1, 1)),         # F(4x4): 36 GEMMs, filters past one AVX2 tile's rows
    ((1, 3, 16, 64), 5, (1, 1)),          # F(4x4), 64 tiles: several column vectors per row
])
def test_matches_the_reference_with_each_isas_gemm(monkeypatch, geometry, x_shape, filters, pad):
    """The batched point-wise GEMMs run on graphc's own kernel (GRAPHC_GEMM=native) with every
    ISA's blocking this host executes, and with tiny cache blocks (K slices, edge tiles)."""
    monkeypatch.setenv("GRAPHC_GEMM", "native")
    use_geometry(monkeypatch, geometry)
    prog, got, ref = _run(x_shape, filters, pad=pad)
    assert {"wgin", "wgw", "wgout"} <= _kernel_kinds(prog)
    ir = prog.llvm_ir()
    assert ".native" in ir, "the Winograd GEMMs did not run on graphc's kernel"
    assert f"graphc.gemm.tiles.w{geometry.lanes}." in ir, f"not planned with {geometry}"
    _assert_close(got, ref, 9 * x_shape[1])


def test_resnet_stage_sizes():
    """ResNet's stages at batch 1: 64 channels at 56x56, 128 at 28x28 (F(4x4)), 256 at 14x14
    (F(2x2))."""
    for shape, f in (((1, 64, 56, 56), 64), ((1, 128, 28, 28), 128), ((1, 256, 14, 14), 256)):
        prog, got, ref = _run(shape, f)
        assert "wgin" in _kernel_kinds(prog)
        _assert_close(got, ref, 9 * shape[1])


def test_bias_activation_and_residual_epilogue():
    prog, got, ref = _run((2, 8, 14, 14), 8, bias=True, act="relu", residual=True)
    # the output transform applies bias, residual and relu as it stores: no epilogue pass
    assert "wgin" in _kernel_kinds(prog) and "epilogue" not in _kernel_kinds(prog)
    _assert_close(got, ref, 72)


def test_batches_in_chunks_of_the_scratch_budget(monkeypatch):
    monkeypatch.setattr(fused, "SCRATCH_BUDGET", 40_000)     # one image per chunk
    node = next(n for n in _graph((3, 4, 14, 14), 6).nodes if n.op == "Convolution")
    assert fused.conv_scratch(node, fused.conv_geometry(node))[0] == 1
    prog, got, ref = _run((3, 4, 14, 14), 6)
    names = [k.name for k in prog.kernels() if k.name.startswith("k_wgin")]
    assert len(names) == 3 and len(set(names)) == 1          # one kernel, called per image
    _assert_close(got, ref, 36)


def test_large_values_keep_their_relative_accuracy():
    prog, got, ref = _run((1, 8, 16, 16), 8, scale=1e4)
    _assert_close(got, ref, 72)


@pytest.mark.parametrize("change", [
    dict(stride=(2, 2)), dict(dilate=(2, 2), pad=(2, 2)), dict(num_group=2), dict(shape=(1, 4, 15, 15)),
    dict(shape=(1, 4, 12, 12)), dict(dtype="float64"), dict(shape=(1, 257, 14, 14), filters=256),
])
def test_what_keeps_im2col(change):
    """Odd outputs (partial tiles), stride, dilation, groups, small outputs, float64 and weight
    transforms too large to run per call stay on im2col, and still match."""
    shape = change.pop("shape", (1, 4, 16, 16))
    filters = change.pop("filters", 4)
    dtype = change.pop("dtype", "float32")
    prog, got, ref = _run(shape, filters, dtype=dtype, **change)
    kinds = _kernel_kinds(prog)
    assert "wgin" not in kinds and "im2col" in kinds
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("GRAPHC_WINOGRAD", "0")
    prog, got, ref = _run((1, 4, 16, 16), 4)
    assert "wgin" not in _kernel_kinds(prog) and "im2col" in _kernel_kinds(prog)


def test_transform_planes_avoid_4k_aliasing():
    """64 x 64 pairs and 64 channels x 784 tiles are multiples of 4 KiB: the planes are spaced
    one cache line past a multiple of 1024 floats (36 planes: 36 different L1 sets)."""
    for elems in (64 * 64, 64 * 784, 1, 1023, 1024):
        p = fused.winograd_plane(elems)
        assert p >= elems and (p * 4) % 4096 == 64


@pytest.mark.parametrize("variant", [winograd.F2, winograd.F4])
def test_transform_matrices_compute_the_correlation(variant):
    """Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is the m x m valid correlation of an (m+2)-square patch with a
    3x3 filter."""
    bt, g_, at = (np.array(m, dtype=np.float64) for m in (variant.bt, variant.g, variant.at))
    m, a = variant.m, variant.alpha
    d, k = RNG.standard_normal((a, a)), RNG.standard_normal((3, 3))
    y = at @ ((g_ @ k @ g_.T) * (bt @ d @ bt.T)) @ at.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * k) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("setting,tile", [("4", 4), ("2", 2)])
def test_the_tile_follows_the_setting_and_the_output(monkeypatch, setting, tile):
    """F(4x4) where the output sides divide by 4 (unless GRAPHC_WINOGRAD=2), else F(2x2)."""
    monkeypatch.setenv("GRAPHC_WINOGRAD", setting)
    for shape, want in (((1, 4, 16, 16), tile), ((1, 4, 14, 16), 2)):
        node = next(n for n in _graph(shape, 4).nodes if n.op == "Convolution")
        assert fused.winograd_tile(fused.conv_geometry(node)) == want
    prog, got, ref = _run((1, 8, 16, 16), 8)
    gemm = next(k for k in prog.kernels() if "gemm" in k.name)
    assert gemm.body[0].batch == (tile + 2) ** 2
    _assert_close(got, ref, 72)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 9), f=st.integers(1, 9), th=st.integers(7, 10),
       tw=st.integers(7, 10), ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_random_geometries(n, c, f, th, tw, ph, pw):
    """Any image whose output is whole tiles of at least 14 per side."""
    shape = (n, c, 2 * th + 2 - 2 * ph, 2 * tw + 2 - 2 * pw)
    prog, got, ref = _run(shape, f, pad=(ph, pw))
    assert "wgin" in _kernel_kinds(prog)
    _assert_close(got, ref, 9 * c)


def test_training_graph_uses_it_forward_and_matches():
    """In a differentiated graph the forward convolution runs as Winograd and the gradients
    (data and weight, through im2col/col2im) match the reference."""
    from graphc.passes.autodiff import differentiate
    g = _graph((2, 4, 16, 16), 6, bias=True, act="tanh")
    joint = differentiate(g).graph
    arrays = [RNG.standard_normal(n.types[0].shape).astype(np.float32) for n in joint.inputs]
    prog = compile_graph(joint, cache=False, check=True)
    assert "wgin" in _kernel_kinds(prog)
    got = prog(arrays)
    ref = interpret(joint, arrays)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(r).max())))
