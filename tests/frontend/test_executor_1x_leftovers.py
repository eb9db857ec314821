"""Executor behaviours MXNet 1.x's test_operator.py relies on (executor_1x_leftover_cases.py)
against Apache MXNet 1.9.1: its answers are recorded in mxnet_executor_1x_leftovers_reference.json
(re-record with `bench/.venvs/mxnet/bin/python tests/frontend/executor_1x_leftover_cases.py mxnet
> tests/frontend/mxnet_executor_1x_leftovers_reference.json`); the live test re-runs them under
MXNet when its venv is installed. Plus graphc-only checks: numpy references for the N-d dot, and
head gradients of the wrong size."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import executor_1x_leftover_cases as cases
from graphc.ops.errors import GraphcError
from mxnet_oracle import MXNET_PYTHON, needs_mxnet

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "mxnet_executor_1x_leftovers_reference.json")) as f:
    RECORDED = json.load(f)


@pytest.fixture(scope="module")
def graphc_answers():
    return cases.all_cases(mx)


def _assert_same(expected, actual, where):
    """Nested dicts/lists of numbers and strings: strings equal, numbers within float32 rounding."""
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(actual), where
        for k in expected:
            _assert_same(expected[k], actual[k], f"{where}/{k}")
        return
    if isinstance(expected, str):
        assert expected == actual, where
        return
    try:
        e, a = np.array(expected, dtype=float), np.array(actual, dtype=float)
    except ValueError:      # ragged (arrays of several shapes, or strings among them): by element
        assert len(expected) == len(actual), where
        for i, (x, y) in enumerate(zip(expected, actual)):
            _assert_same(x, y, f"{where}[{i}]")
        return
    assert e.shape == a.shape, f"{where}: shape {a.shape}, MXNet {e.shape}"
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5, err_msg=where)


@pytest.mark.parametrize("case", [c.__name__ for c in cases.CASES])
def test_graphc_matches_recorded_mxnet(graphc_answers, case):
    _assert_same(RECORDED[case], graphc_answers[case], case)


@needs_mxnet
def test_live_mxnet_gives_the_recorded_answers():
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "executor_1x_leftover_cases.py"), "mxnet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_same(RECORDED, json.loads(proc.stdout), "live MXNet")


def _dot_reference(a, b, ta, tb):
    """numpy: an N-d operand's transpose is that of its 2-D view (lhs (K, M...), rhs (N..., K))."""
    a2 = a.reshape(a.shape[0], -1).T if ta else a.reshape(-1, a.shape[-1])
    b2 = b.reshape(-1, b.shape[-1]).T if tb else b.reshape(b.shape[0], -1)
    out_shape = (a.shape[1:] if ta else a.shape[:-1]) + (b.shape[:-1] if tb else b.shape[1:])
    return a2, b2, out_shape


@pytest.mark.parametrize("sa,sb,ta,tb", [((3, 2, 4), (3, 5), True, False), ((5, 6), (2, 3, 6), False, True),
                                         ((4, 3, 2), (2, 5, 4), True, True)])
def test_nd_dot_transposed_against_numpy(sa, sb, ta, tb):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(sa).astype("float32"), rng.standard_normal(sb).astype("float32")
    a2, b2, out_shape = _dot_reference(a, b, ta, tb)
    sym = mx.sym.dot(mx.sym.Variable("a"), mx.sym.Variable("b"), transpose_a=ta, transpose_b=tb)
    exe = sym.bind(mx.cpu(), args={"a": mx.nd.array(a), "b": mx.nd.array(b)},
                   args_grad={"a": mx.nd.zeros(sa), "b": mx.nd.zeros(sb)})
    out = exe.forward(is_train=True)[0].asnumpy()
    np.testing.assert_allclose(out, (a2 @ b2).reshape(out_shape), rtol=1e-5, atol=1e-5)
    head = rng.standard_normal(out_shape).astype("float32")
    exe.backward(mx.nd.array(head))
    h2 = head.reshape(a2.shape[0], b2.shape[1])
    ga2, gb2 = h2 @ b2.T, a2.T @ h2          # gradients of the 2-D views
    ga = ga2.T.reshape(sa) if ta else ga2.reshape(sa)
    gb = gb2.T.reshape(sb) if tb else gb2.reshape(sb)
    np.testing.assert_allclose(exe.grad_dict["a"].asnumpy(), ga, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(exe.grad_dict["b"].asnumpy(), gb, rtol=1e-4, atol=1e-4)


def test_backward_without_forward_leaves_outputs_consistent():
    """graphc records a predict-mode forward for it; the outputs then hold that forward's values."""
    x = mx.sym.Variable("x")
    data = np.array([0.5, -1.0, 2.0], dtype="float32")
    grad = mx.nd.zeros((3,))
    exe = mx.sym.exp(x).bind(mx.cpu(), args=[mx.nd.array(data)], args_grad=[grad])
    exe.backward(mx.nd.ones((3,)))
    np.testing.assert_allclose(grad.asnumpy(), np.exp(data), rtol=1e-6)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), np.exp(data), rtol=1e-6)


def test_head_gradient_of_the_wrong_size_that_is_read_names_the_shapes():
    x = mx.sym.Variable("x")
    exe = (x * 2).bind(mx.cpu(), args=[mx.nd.ones((2, 3))], args_grad=[mx.nd.zeros((2, 3))])
    exe.forward(is_train=True)
    with pytest.raises(GraphcError, match=r"head gradient.*\(4,\).*\(2, 3\)"):
        exe.backward(mx.nd.ones((4,)))


def test_head_gradient_of_the_same_size_is_read_as_the_heads_shape():
    x = mx.sym.Variable("x")
    grad = mx.nd.zeros((2, 3))
    exe = (x * 2).bind(mx.cpu(), args=[mx.nd.ones((2, 3))], args_grad=[grad])
    exe.forward(is_train=True)
    exe.backward(mx.nd.array(np.arange(6, dtype="float32")))
    np.testing.assert_allclose(grad.asnumpy(), 2 * np.arange(6).reshape(2, 3))


def test_simple_bind_still_refuses_missing_shapes():
    """Dropping non-shape keywords must not hide a variable whose shape nothing gives."""
    sym = mx.sym.dot(mx.sym.Variable("a"), mx.sym.Variable("b"))
    with pytest.raises(GraphcError, match="b"):
        sym.simple_bind(mx.cpu(), a=(2, 3), b=3)
