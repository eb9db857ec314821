"""runtime/upsample_kernels.py: bilinear UpSampling (a depthwise Deconvolution with an input
weight) compiles to one gather kernel whose results equal the numpy reference for scales 1-4,
odd and even, images down to 1x1, both float dtypes, and any weight (not only bilinear ones)."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep
from graphc.runtime.upsample_kernels import axis_segments

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale,shape", [(1, (1, 2, 3, 3)), (2, (2, 3, 4, 5)), (3, (1, 2, 3, 2)), (4, (2, 1, 5, 3)),
                                         (2, (1, 2, 1, 1))])
def test_bilinear_upsampling_matches_the_reference(scale, shape, dtype):
    k = 2 * scale - scale % 2
    c = shape[1]
    x = RNG.standard_normal(shape).astype(dtype)
    w = RNG.standard_normal((c, 1, k, k)).astype(dtype)
    gb = GraphBuilder("up")
    xv = gb.var("x", TensorType(x.shape, dtype))
    wv = gb.var("w", TensorType(w.shape, dtype))
    g = gb.build([gb.F.UpSampling(xv, wv, scale=scale, sample_type="bilinear", num_filter=c)])
    prog = compile_graph(g, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == []
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(prog([x, w])[0], interpret(g, [x, w])[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("n,s", [(1, 2), (4, 2), (7, 3), (3, 4)])
def test_axis_segments_cover_every_output_once_with_every_tap_inside(n, s):
    k, p = 2 * s - s % 2, s // 2
    seen = {}
    for t, q0, count, ms in axis_segments(n, s, k, p):
        for q in range(q0, q0 + count):
            assert s * q + t not in seen
            seen[s * q + t] = {(q - m, s * m + t + p) for m in ms}
    assert sorted(seen) == list(range(n * s))
    for o, pairs in seen.items():       # exactly the (input, tap) pairs with i s - p + tap = o
        want = {(i, o + p - i * s) for i in range(n) if 0 <= o + p - i * s < k}
        assert pairs == want, o
