"""Every differentiable operator's gradient rule, built as a graph and interpreted, agrees with
central finite differences in float64."""
import numpy as np
import pytest

from graphc.ops import get_op
from gradcheck import analytic_grads, head_grads, numeric_grads, run_forward
from op_cases import CASES, FD_EXEMPT


def _fd_cases():
    out = []
    for c in CASES:
        op = get_op(c.op)
        if (c.fd and c.inputs and op.gradient is not None and c.differentiable_inputs()
                and c.op not in FD_EXEMPT and (not op.random or op.uses_training)):
            out.append(c)
    return out


FD_CASES = _fd_cases()


@pytest.mark.parametrize("c", FD_CASES, ids=lambda c: c.id)
def test_gradient_matches_finite_differences(c):
    rng = np.random.default_rng(3)
    heads = head_grads(c.op, c.inputs, c.attrs, rng, training=c.training)
    wrt = c.differentiable_inputs()
    got = analytic_grads(c.op, c.inputs, c.attrs, heads, wrt, training=c.training)
    want = numeric_grads(c.op, c.inputs, c.attrs, heads, wrt, training=c.training)
    for i, g, n in zip(wrt, got, want):
        assert g.shape == c.inputs[i].shape
        np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-7, err_msg=f"{c.op}: gradient of input {i}")


def test_block_grad_passes_values_and_stops_the_gradient():
    x = np.arange(6.0).reshape(2, 3)
    (g,) = analytic_grads("BlockGrad", [x], {}, [np.ones((2, 3))], (0,))
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


def test_make_loss_gradient_is_ones_whatever_the_head_gradient():
    x = np.arange(6.0).reshape(2, 3)
    (g,) = analytic_grads("make_loss", [x], {}, [np.full((2, 3), 7.0)], (0,))
    np.testing.assert_array_equal(g, np.ones((2, 3)))


@pytest.mark.parametrize("attrs, want", [
    ({"grad_scale": 2.0}, 2.0),
    ({"grad_scale": 2.0, "normalization": "batch"}, 0.5),
    ({"normalization": "valid", "valid_thresh": 2.5}, 1 / 9),
])
def test_makeloss_gradient_is_the_scaled_normalized_constant(attrs, want):
    x = np.arange(12.0).reshape(4, 3)
    (g,) = analytic_grads("MakeLoss", [x], attrs, [np.full((4, 3), 7.0)], (0,))
    np.testing.assert_allclose(g, np.full((4, 3), want))


def test_multinomial_log_probability_gradient_flows_into_the_drawn_classes():
    p = np.array([[0.2, 0.5, 0.3]])
    idx, logp = run_forward("_sample_multinomial", [p], {"shape": (5,), "get_prob": True}, rng=np.random.default_rng(0))
    head = np.arange(1.0, 6.0).reshape(1, 5)
    (g,) = analytic_grads("_sample_multinomial", [p], {"shape": (5,), "get_prob": True},
                          [np.zeros((1, 5)), head], (0,))
    want = np.zeros((1, 3))
    for k, h in zip(idx[0], head[0]):
        want[0, k] += h / p[0, k]
    np.testing.assert_allclose(g, want)
