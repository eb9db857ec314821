"""Every operator's numpy reference, run through a one-node graph and the interpreter, agrees
with an independent numpy expression (tests/ops/op_cases.py), in float64 and float32."""
import numpy as np
import pytest

from gradcheck import run_forward
from op_cases import CASES


def _as_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_reference_matches_independent_numpy(c):
    rng = np.random.default_rng(7)
    outs = run_forward(c.op, c.inputs, c.attrs, training=c.training, rng=rng)
    if c.check is not None:
        c.check(outs, c.inputs)
        return
    want = _as_list(c.expect(*c.inputs))
    assert len(outs) == len(want)
    for got, exp in zip(outs, want):
        exp = np.asarray(exp)
        assert got.shape == exp.shape, f"{c.op}: shape {got.shape}, expected {exp.shape}"
        np.testing.assert_allclose(got, exp, rtol=c.rtol, atol=1e-12)


FLOAT_CASES = [c for c in CASES if c.f32 and c.check is None and c.inputs
               and all(a.dtype == np.float64 for a in c.inputs)]


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_reference_in_float32_keeps_the_dtype_and_the_values(c):
    arrays = [a.astype(np.float32) for a in c.inputs]
    outs = run_forward(c.op, arrays, c.attrs, training=c.training)
    want = _as_list(c.expect(*[a.astype(np.float64) for a in arrays]))
    for got, exp in zip(outs, want):
        exp = np.asarray(exp)
        if exp.dtype == np.float64:
            assert got.dtype == np.float32, f"{c.op} turned float32 inputs into {got.dtype}"
        np.testing.assert_allclose(got.astype(np.float64), exp, rtol=2e-5, atol=2e-6)
