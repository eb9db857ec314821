"""The scalar formula of every Elementwise-lowered operator (what the code generators compile)
computes what the operator's numpy reference computes, in float32 and float64."""
import numpy as np
import pytest

from graphc.ops import get_op, scalar as S
from graphc.ops.registry import Elementwise
from gradcheck import run_forward
from op_cases import CASES



def _numpy_broadcasts(c):
    """The fusion pass lowers a node elementwise only when its inputs numpy-broadcast to the
    output (ops/fused.is_elementwise); other nodes of the same op run on the host."""
    (out,) = run_forward(c.op, c.inputs, c.attrs)
    try:
        return all(np.broadcast_shapes(a.shape, out.shape) == out.shape for a in c.inputs)
    except ValueError:
        return False


FORMULA_CASES = [c for c in CASES if isinstance(get_op(c.op).lowering, Elementwise) and c.check is None
                 and _numpy_broadcasts(c)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c", FORMULA_CASES, ids=lambda c: c.id)
def test_formula_matches_reference(c, dtype):
    op = get_op(c.op)
    arrays = [a.astype(dtype) for a in c.inputs]
    (ref,) = run_forward(c.op, arrays, c.attrs, training=c.training)
    attrs = op.parse(c.attrs)
    expr = op.lowering.formula(*[S.arg(i, a.dtype) for i, a in enumerate(arrays)], **attrs)
    got = S.evaluate(expr, arrays)
    got = np.broadcast_to(got, ref.shape)
    assert got.dtype == ref.dtype, f"{c.op}: formula gives {got.dtype}, reference {ref.dtype}"
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(got, ref, **tol, err_msg=f"{c.op}: {expr!r}")


def test_every_formula_uses_only_the_scalar_vocabulary():
    seen = set()

    def walk(e):
        if e.kind == "call":
            assert e.op in S.UNARY + S.BINARY + S.TERNARY
            seen.add(e.op)
        for a in e.args:
            walk(a)

    for c in FORMULA_CASES:
        op = get_op(c.op)
        walk(op.lowering.formula(*[S.arg(i, a.dtype) for i, a in enumerate(c.inputs)], **op.parse(c.attrs)))
    assert {"add", "mul", "exp", "select"} <= seen


@pytest.mark.parametrize("op, arrays, attrs", [
    ("where", [np.array([1.0, 0.0]), np.ones((2, 2)), np.zeros((2, 2))], {}),
    ("LeakyReLU", [-np.ones((2, 2, 2)), np.array([0.1, 0.2])], {"act_type": "prelu"}),
])
def test_ops_that_do_not_broadcast_like_numpy_refuse_the_elementwise_lowering(op, arrays, attrs):
    """where's per-row condition and prelu's per-channel gamma would be silently wrong as a
    numpy-broadcast formula on square shapes: their lowering must say it does not apply."""
    from graphc.ops.types import TensorType
    o = get_op(op)
    types = [TensorType(a.shape, a.dtype) for a in arrays]
    assert not o.lowering.applies_to(types, o.parse(attrs))
    same = [TensorType(arrays[1].shape, arrays[1].dtype)] * len(arrays) if op == "where" else \
        [types[0], TensorType((1,), arrays[1].dtype)]
    assert o.lowering.applies_to(same, o.parse(attrs))
