"""Winograd convolutions with the padding resolved by the input transform (no padded copy) and
the epilogue applied by the output transform (no pass after): against the float64 reference,
where patches reach far into the padding, with broadcast and per-image epilogue operands, and
with batches run in chunks (the epilogue operands' offsets per chunk)."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops import fused
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.memory import check_plan
from graphc.runtime.executor import HostStep

RNG = np.random.default_rng(12)


def _build(x_shape, filters, pad, dtype, epilogue):
    gb = GraphBuilder("wfold")
    F = gb.F
    x = gb.var("x", TensorType(x_shape, dtype))
    w = gb.var("w", TensorType((filters, x_shape[1], 3, 3), dtype), "param")
    y = F.Convolution(x, w, kernel=(3, 3), pad=pad, num_filter=filters, no_bias=True)
    return gb.build([epilogue(gb, F, x, y, dtype)])


def _check(x_shape, filters, pad=(1, 1), epilogue=lambda gb, F, x, y, dt: y, winograd=True):
    graph = _build(x_shape, filters, pad, "float32", epilogue)
    arrays = [RNG.standard_normal(n.types[0].shape).astype(np.float32) for n in graph.inputs]
    prog = compile_graph(graph, cache=False, check=True)
    check_plan(prog.fused, prog.plan)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == []
    kinds = {k.name.split("_")[1] for k in prog.kernels() if k.name.startswith("k_")}
    got = prog(arrays)[0]
    ref = interpret(_build(x_shape, filters, pad, "float64", epilogue), [a.astype(np.float64) for a in arrays])[0]
    assert got.shape == ref.shape
    scale = float(np.abs(ref).max())
    # float32 bound of a sum of 9 * channels products mixed by the transforms (as test_winograd)
    np.testing.assert_allclose(got, ref, rtol=0, atol=4e-6 * scale * max(1.0, (9 * x_shape[1]) ** 0.5))
    if winograd:
        assert {"wgin", "wgout"} <= kinds and "pad" not in kinds and "im2col" not in kinds
    else:
        assert "wgin" not in kinds
    return kinds


def _residual_relu(gb, F, x, y, dt):
    r = gb.var("r", TensorType(y.shape, dt))
    b = gb.var("b", TensorType((1, y.shape[1], 1, 1), dt), "param")
    return F.relu(y + b + r)


@pytest.mark.parametrize("x_shape,filters,pad", [
    ((1, 3, 16, 16), 4, (1, 1)),      # F(4x4), stride 1 pad 1: first and last rows/columns of tiles cut by the edge
    ((2, 5, 14, 18), 6, (1, 1)),      # F(2x2) (14 rows), batch 2
    ((1, 4, 12, 12), 3, (3, 3)),      # padding of 3: two rows of tiles reach into it
    ((1, 2, 8, 10), 3, (5, 4)),       # padding wider than a tile: patches wholly in the padding
    ((1, 3, 14, 20), 2, (2, 0)),      # padding on rows only
    ((2, 3, 18, 14), 5, (0, 2)),      # ... on columns only
])
def test_padding_resolved_in_the_input_transform(x_shape, filters, pad):
    _check(x_shape, filters, pad)


@pytest.mark.parametrize("x_shape,pad", [((2, 3, 15, 17), (1, 1)), ((1, 2, 17, 15), (2, 2))])
def test_odd_sides_keep_im2col_and_match(x_shape, pad):
    """Odd output sides are not whole tiles: im2col, its epilogue after, still correct."""
    kinds = _check(x_shape, 4, pad, _residual_relu, winograd=False)
    assert "epilogue" in kinds


@pytest.mark.parametrize("x_shape,filters", [((2, 6, 16, 16), 7), ((2, 4, 14, 14), 5)])
def test_bias_residual_relu_in_the_output_transform(x_shape, filters):
    kinds = _check(x_shape, filters, (1, 1), _residual_relu)
    assert "epilogue" not in kinds


def test_epilogue_reading_the_convolutions_own_input():
    """relu(conv(x) + x): the image is both the transform's input and an epilogue operand."""
    kinds = _check((2, 4, 16, 16), 4, (1, 1), lambda gb, F, x, y, dt: F.relu(y + x))
    assert "epilogue" not in kinds


def test_batchnorm_style_scale_and_shift():
    """A per-channel scale and shift computed from parameters (as fold_batchnorm leaves an
    inference BatchNorm over parameter weights), then relu."""
    def bn(gb, F, x, y, dt):
        c = y.shape[1]
        gamma, var = gb.var("gamma", TensorType((c,), dt), "param"), gb.var("var", TensorType((c,), dt), "param")
        s = F.reshape(gamma / F.sqrt(F.abs(var) + 1e-5), shape=(1, c, 1, 1))
        beta = gb.var("beta", TensorType((1, c, 1, 1), dt), "param")
        return F.relu(y * s + beta)
    _check((1, 5, 16, 16), 6, (1, 1), bn)


def test_chunks_offset_the_epilogue_operands(monkeypatch):
    """One image per chunk: each chunk's output transform reads its own image's residual, and
    the broadcast bias at the same place."""
    monkeypatch.setattr(fused, "SCRATCH_BUDGET", 40_000)
    node = next(n for n in _build((3, 4, 14, 14), 6, (1, 1), "float32", _residual_relu).nodes if n.op == "Convolution")
    assert fused.conv_scratch(node, fused.conv_geometry(node))[0] == 1
    kinds = _check((3, 4, 14, 14), 6, (1, 1), _residual_relu)
    assert "epilogue" not in kinds


def test_unfolded_form_behind_the_switch(monkeypatch):
    """GRAPHC_WINOGRAD_FOLD=0: the padded copy and the epilogue pass come back, same results."""
    monkeypatch.setenv("GRAPHC_WINOGRAD_FOLD", "0")
    graph = _build((2, 3, 16, 16), 4, (1, 1), "float32", _residual_relu)
    arrays = [RNG.standard_normal(n.types[0].shape).astype(np.float32) for n in graph.inputs]
    prog = compile_graph(graph, cache=False, check=True)
    kinds = {k.name.split("_")[1] for k in prog.kernels() if k.name.startswith("k_")}
    assert {"pad", "wgin", "wgout", "epilogue"} <= kinds
    ref = interpret(_build((2, 3, 16, 16), 4, (1, 1), "float64", _residual_relu),
                    [a.astype(np.float64) for a in arrays])[0]
    np.testing.assert_allclose(prog(arrays)[0], ref, rtol=0, atol=4e-6 * float(np.abs(ref).max()) * 27 ** 0.5)


@pytest.mark.parametrize("x_shape,pad", [((2, 3, 16, 16), (1, 1)), ((1, 4, 12, 12), (3, 3)), ((1, 2, 8, 10), (5, 4)),
                                         ((1, 3, 14, 20), (2, 0)), ((1, 5, 14, 14), (1, 1))])
def test_split_padded_images_fit_the_padded_copys_room(x_shape, pad):
    """With padding the input transform's split images take the scratch the padded copy had."""
    from graphc.runtime import winograd
    node = next(n for n in _build(x_shape, 4, pad, "float32", lambda gb, F, x, y, dt: y).nodes
                if n.op == "Convolution")
    g = fused.conv_geometry(node)
    chunk, _cols, padded = fused.conv_scratch(node, g)
    assert winograd.phases_elems(g, chunk) == chunk * padded
