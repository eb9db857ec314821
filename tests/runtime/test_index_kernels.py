"""runtime/index_kernels.py and the copy lowerings of graphc/ops/copy_pieces.py at sizes where
the outer loop is split across threads (the op cases in tests/ops/op_cases.py are a handful of
elements): compiled results equal the numpy references, with no host step."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep, KernelStep

RNG = np.random.default_rng(5)


def _check(op, arrays, attrs, exact=True):
    gb = GraphBuilder(op)
    xs = [gb.var(f"x{k}", TensorType(a.shape, str(a.dtype))) for k, a in enumerate(arrays)]
    out = getattr(gb.F, op)(*xs, **attrs)
    g = gb.build([out[0] if isinstance(out, (list, tuple)) else out])
    prog = compile_graph(g, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == [], f"{op} ran on the host"
    assert any(isinstance(s, KernelStep) and s.kernel.parallel_loop is not None for s in prog.steps), \
        f"{op}: no kernel split across threads at this size"
    got, want = prog(arrays)[0], interpret(g, arrays)[0]
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=op)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=op)


def test_argmax_and_argmin_with_ties_and_nans_at_scale():
    x = RNG.integers(-50, 50, (700, 301)).astype("float32")      # many ties
    x[3, 17] = x[400, 0] = x[400, 9] = np.nan
    _check("argmax", [x], {"axis": 1})
    _check("argmin", [x], {"axis": 1})


def test_one_hot_at_scale():
    idx = RNG.integers(-3, 260, 2000).astype("float32")
    idx[::7] += 0.75
    _check("one_hot", [idx], {"depth": 256, "on_value": 3.0, "off_value": -2.0})


def test_sequence_mask_at_scale():
    x = RNG.standard_normal((64, 40, 80)).astype("float32")
    lengths = RNG.uniform(-2, 70, 40).astype("float32")
    _check("SequenceMask", [x, lengths], {"use_sequence_length": True, "value": -9.0})


@pytest.mark.parametrize("attrs", [{"axis": (1, 2)}, {"ord": 1, "axis": 0}, {"axis": 1, "keepdims": True}])
def test_norm_at_scale(attrs):
    x = RNG.standard_normal((300, 40, 30)).astype("float32")
    _check("norm", [x], attrs, exact=False)


def test_l2_normalization_at_scale():
    x = RNG.standard_normal((8, 64, 30, 30)).astype("float32")
    _check("L2Normalization", [x], {"mode": "channel", "eps": 1e-6}, exact=False)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_at_scale(mode):
    x = RNG.standard_normal((2, 16, 70, 90)).astype("float32")
    _check("Pad", [x], {"mode": mode, "pad_width": (0, 0, 0, 0, 3, 2, 1, 4), "constant_value": 1.5})


def test_tile_repeat_and_upsampling_at_scale():
    x = RNG.standard_normal((4, 32, 40, 40)).astype("float32")
    _check("tile", [x], {"reps": (1, 2, 1, 3)})
    _check("repeat", [x], {"repeats": 3, "axis": 2})
    _check("UpSampling", [x], {"scale": 2, "sample_type": "nearest"})
