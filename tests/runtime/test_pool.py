"""Compiled Pooling (max/avg/sum, global, valid/full, count_include_pad, 1-D/2-D/3-D) matches the
numpy reference of ops/declarations/pool.py, as one generated kernel per node."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.executor import HostStep
from graphc.runtime.pool import segments

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


def test_same_convention_and_lp_pooling_fall_back_to_the_host():
    gb = GraphBuilder("pool")
    x = gb.var("x", TensorType((1, 2, 7, 7)))
    outs = [gb.F.Pooling(x, kernel=(3, 3), stride=(2, 2), pooling_convention="same"),
            gb.F.Pooling(x, kernel=(2, 2), pool_type="lp", p_value=2)]
    g = gb.build(outs)
    a = RNG.standard_normal((1, 2, 7, 7)).astype("float32")
    prog = compile_graph(g, cache=False)
    assert sum(isinstance(s, HostStep) for s in prog.steps) == 2
    for got, ref in zip(prog([a]), interpret(g, [a])):
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_segments_group_interior_positions_and_split_the_borders():
    segs = segments(out_len=5, in_len=9, k=3, s=2, p=1)
    # (first output, count, first tap, end tap, padded window extent)
    assert segs == [(0, 1, 1, 3, 3),           # starts in the padding: its first tap is cut off
                    (1, 3, 0, 3, 3),           # the interior: three positions, full windows
                    (4, 1, 0, 2, 3)]           # its last tap lies in the padding
