"""A repeat call of a Program with the very arrays of the last call (the Gluon hot path's case;
Program._check_inputs skips re-validating an array it has seen) still sees data written in
place, a new array, an array reassigned another shape or dtype in place (refused with the
input's name), an output array changed the same way, a dead array whose id a new one reuses;
and the Gluon hot path's output wrapping (cached_op._wrap) makes the same NDArray as NDArray()."""
import gc

import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import GraphcError
from graphc.ops.types import TensorType

RNG = np.random.default_rng(2)


@pytest.fixture(scope="module")
def program():
    gb = GraphBuilder()
    F = gb.F
    x = gb.var("x", TensorType((1, 20)))
    w = gb.var("w", TensorType((12, 20)), "param")
    b = gb.var("b", TensorType((12,)), "param")
    prog = compile_graph(gb.build([F.Activation(F.FullyConnected(x, w, b, num_hidden=12), act_type="relu")]))
    assert prog._pure_native, "expected one native call"
    return prog


def arrays():
    return [RNG.standard_normal(s).astype(np.float32) for s in ((1, 20), (12, 20), (12,))]


def ref(ins):
    x, w, b = (a.astype(np.float64) for a in ins)
    return np.maximum(x @ w.T + b, 0)


def test_repeat_calls_follow_data_written_in_place(program):
    ins, out = arrays(), [np.empty((1, 12), np.float32)]
    for _ in range(3):
        got = program(ins, out)
        assert got is out
        np.testing.assert_allclose(out[0], ref(ins), rtol=1e-5, atol=1e-5)
        for a in ins:
            a[...] = RNG.standard_normal(a.shape)


def test_new_arrays_are_seen(program):
    ins, out = arrays(), [np.empty((1, 12), np.float32)]
    program(ins, out)
    ins2, out2 = [ins[0].copy() * 2, ins[1], ins[2]], [np.empty((1, 12), np.float32)]
    program(ins2, out2)
    np.testing.assert_allclose(out2[0], ref(ins2), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0], ref(ins), rtol=1e-5, atol=1e-5)   # the earlier output untouched


def test_dead_arrays_replaced_by_new_ones(program):
    out = [np.empty((1, 12), np.float32)]
    for _ in range(4):
        ins = arrays()            # the last call's arrays die here; ids may be reused
        gc.collect()
        program(ins, out)
        np.testing.assert_allclose(out[0], ref(ins), rtol=1e-5, atol=1e-5)


def test_input_reshaped_in_place_is_refused(program):
    ins, out = arrays(), [np.empty((1, 12), np.float32)]
    program(ins, out)
    ins[1].shape = (20, 12)               # same object, same buffer, another shape
    with pytest.raises(GraphcError, match=r"input 1 'w' has shape \(20, 12\)"):
        program(ins, out)


def test_input_dtype_reassigned_in_place_is_refused(program):
    ins, out = arrays(), [np.empty((1, 12), np.float32)]
    program(ins, out)
    ins[2].dtype = np.int32
    with pytest.raises(GraphcError, match="input 2 'b' has dtype int32"):
        program(ins, out)


def test_output_reshaped_in_place_is_refused(program):
    ins, out = arrays(), [np.empty((1, 12), np.float32)]
    program(ins, out)
    out[0].shape = (12, 1)
    with pytest.raises(GraphcError, match="output array 0 must be"):
        program(ins, out)


def test_wrong_counts_still_named(program):
    ins, out = arrays(), [np.empty((1, 12), np.float32)]
    program(ins, out)
    with pytest.raises(GraphcError, match="expects 3 inputs"):
        program(ins[:2], out)
    with pytest.raises(GraphcError, match="returns 1 outputs, 2 output arrays given"):
        program(ins, out + out)


def test_wrapped_output_is_an_ordinary_ndarray():
    import graphc as mx
    from graphc.gluon.cached_op import _wrap
    from graphc.ndarray import NDArray
    data, ctx = np.ones((2, 3), np.float32), mx.cpu()
    a, b = _wrap(data, ctx), NDArray(data, ctx)
    assert type(a) is NDArray
    for slot in NDArray.__slots__:
        assert hasattr(a, slot) == hasattr(b, slot), slot
        if hasattr(b, slot):
            assert getattr(a, slot) is getattr(b, slot) or getattr(a, slot) == getattr(b, slot), slot
    np.testing.assert_array_equal((a + 1).asnumpy(), data + 1)
