"""Crop, depth_to_space and space_to_depth compile to strided copies (their declarations'
Movement pieces): compiled results equal the numpy references, with no host step."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep

RNG = np.random.default_rng(9)


def _check(op, arrays, attrs):
    gb = GraphBuilder(op)
    xs = [gb.var(f"x{k}", TensorType(a.shape, str(a.dtype))) for k, a in enumerate(arrays)]
    g = gb.build([getattr(gb.F, op)(*xs, **attrs)])
    prog = compile_graph(g, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == [], f"{op} ran on the host"
    np.testing.assert_array_equal(prog(arrays)[0], interpret(g, arrays)[0], err_msg=f"{op} {attrs}")


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_depth_to_space_and_back(dtype):
    for b in (1, 2, 3):
        x = RNG.integers(-99, 99, (2, 2 * b * b, 3, 4)).astype(dtype)
        _check("depth_to_space", [x], {"block_size": b})
        y = RNG.integers(-99, 99, (2, 3, 2 * b, 3 * b)).astype(dtype)
        _check("space_to_depth", [y], {"block_size": b})


def test_crop_by_offset_size_centre_and_like():
    x = RNG.standard_normal((2, 3, 9, 7)).astype("float32")
    _check("Crop", [x], {"h_w": (4, 3), "offset": (2, 1)})
    _check("Crop", [x], {"h_w": (5, 2), "center_crop": True})
    like = np.zeros((1, 1, 6, 5), "float32")
    _check("Crop", [x, like], {"num_args": 2, "offset": (3, 2)})
    _check("Crop", [x, like], {"num_args": 2, "center_crop": True})
