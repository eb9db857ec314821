"""Forward im2col convolutions done in bands of output rows (runtime/conv._band_rows and
_banded_calls: each band's columns then its GEMM into the band's part of the result) match
the float64 reference: padded and in place, strided and dilated, several images, a last band
shorter than the others, with the bias/activation epilogue; and the cases that keep one
im2col for the whole image."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.memory import check_plan
from graphc.runtime import conv
from graphc.runtime.executor import HostStep

RNG = np.random.default_rng(13)


def _graph(x_shape, filters, kernel, stride, pad, dilate=(1, 1), dtype="float32"):
    gb = GraphBuilder("bandconv")
    x = gb.var("x", TensorType(x_shape, dtype))
    w = gb.var("w", TensorType((filters, x_shape[1]) + kernel, dtype), "param")
    b = gb.var("b", TensorType((filters,), dtype), "param")
    y = gb.F.Convolution(x, w, b, kernel=kernel, stride=stride, pad=pad, dilate=dilate, num_filter=filters)
    return gb.build([gb.F.Activation(y, act_type="relu")])


def _run(monkeypatch, band_bytes, x_shape, filters, kernel, stride, pad, dilate=(1, 1), dtype="float32"):
    monkeypatch.setenv("GRAPHC_CONV_BAND_BYTES", str(band_bytes))
    monkeypatch.setattr(conv, "MIN_BAND_COLUMNS", 1)
    graph = _graph(x_shape, filters, kernel, stride, pad, dilate, dtype)
    arrays = [RNG.standard_normal(n.types[0].shape).astype(dtype) for n in graph.inputs]
    prog = compile_graph(graph, cache=False, check=True)
    check_plan(prog.fused, prog.plan)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == []
    got = prog(arrays)[0]
    ref = interpret(_graph(x_shape, filters, kernel, stride, pad, dilate, "float64"),
                    [a.astype(np.float64) for a in arrays])[0]
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=0, atol=(2e-5 if dtype == "float32" else 1e-12) * scale)
    return prog


def _band_count(prog):
    """GEMM calls of the program: one per band (and image) when banded, else one per chunk."""
    return sum(1 for s in prog.steps if getattr(s, "kernel", None) is not None and "gemm" in s.kernel.name)


@pytest.mark.parametrize("x_shape,filters,kernel,stride,pad,dilate,rows", [
    ((1, 3, 30, 28), 8, (7, 7), (2, 2), (3, 3), (1, 1), 4),    # a stem; 15 rows: bands 4, 4, 4, 3
    ((1, 5, 12, 13), 6, (3, 3), (1, 1), (1, 1), (1, 1), 5),    # stride 1; 12 rows: 5, 5, 2
    ((2, 4, 11, 9), 7, (3, 2), (1, 2), (0, 1), (1, 1), 3),     # two images, rectangular kernel
    ((1, 6, 12, 12), 5, (3, 3), (1, 1), (0, 0), (1, 1), 3),    # no padding: bands read the image in place
    ((1, 3, 16, 14), 4, (3, 3), (2, 1), (2, 2), (2, 2), 2),    # dilated: band inputs overlap more
])
def test_banded_matches_the_reference(monkeypatch, x_shape, filters, kernel, stride, pad, dilate, rows):
    itemsize = 4
    col_rows = x_shape[1] * kernel[0] * kernel[1]
    graph = _graph(x_shape, filters, kernel, stride, pad, dilate)
    ow = graph.outputs[0].type.shape[3]
    oh = graph.outputs[0].type.shape[2]
    prog = _run(monkeypatch, rows * col_rows * ow * itemsize, x_shape, filters, kernel, stride, pad, dilate)
    assert _band_count(prog) == x_shape[0] * -(-oh // rows)


def test_float64_banded(monkeypatch):
    prog = _run(monkeypatch, 3 * 27 * 10 * 8, (1, 3, 12, 10), 4, (3, 3), (1, 1), (1, 1), dtype="float64")
    assert _band_count(prog) == 4


def test_off_or_a_budget_for_every_row_keeps_one_gemm(monkeypatch):
    assert _band_count(_run(monkeypatch, 0, (1, 3, 14, 14), 4, (3, 3), (1, 1), (0, 0))) == 1
    # a budget that holds every row: no bands
    assert _band_count(_run(monkeypatch, 1 << 30, (1, 3, 14, 14), 4, (3, 3), (1, 1), (0, 0))) == 1


def test_resnet_stem_takes_bands_and_stage_four_does_not():
    """The default budget: the 7x7 stem's 7.4 MB of columns go in bands of 8 rows (896 columns);
    a 7x7 stage's 3x3 convolution (49 columns per image) stays one GEMM that reads the weights once."""
    from graphc.ops.fused import ConvGeometry
    stem = ConvGeometry(1, 3, 64, 1, (224, 224), (112, 112), (7, 7), (2, 2), (1, 1), (3, 3), "float32")
    assert conv._band_rows(stem) == 8
    stage4 = ConvGeometry(1, 512, 512, 1, (7, 7), (7, 7), (3, 3), (1, 1), (1, 1), (1, 1), "float32")
    assert conv._band_rows(stage4) is None
