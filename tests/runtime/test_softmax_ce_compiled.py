"""SoftmaxCrossEntropyLoss compiled (forward and backward) against numpy's float64 reference over
extreme logits (-1e9 masks, -inf, large magnitudes, one class), against finite differences, and
the shape of its lowered backward: one data-sized pass (passes/fold_onehot_sum.py)."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon


class _Loss(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss()

    def hybrid_forward(self, F, x, y):
        return self.loss(x, y)


def compiled_loss_and_grad(x, y, head=None):
    block = _Loss()
    block.hybridize()
    xs = mx.nd.array(x, dtype=x.dtype)
    xs.attach_grad()
    with autograd.record():
        loss = block(xs, mx.nd.array(y, dtype=x.dtype))
    loss.backward(None if head is None else mx.nd.array(head, dtype=x.dtype))
    return loss.asnumpy(), xs.grad.asnumpy()


def reference(x, y, head):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(-1, keepdims=True))
    rows = np.arange(len(x))
    loss = lse[:, 0] - x[rows, y.astype(int)]
    grad = np.exp(x - lse)
    grad[rows, y.astype(int)] -= 1
    return loss, grad * head[:, None]


def logits(n, c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c)) * 3
    y = rng.integers(0, c, n)
    if c > 2:
        masked = rng.random((n, c)) < 0.4
        masked[np.arange(n), y] = False
        x[masked] = -1e9                       # masked classes: probability exactly 0
        x[1, :] *= 1e3                         # large magnitudes
        x[2, (np.arange(c) != y[2])] = -np.inf  # a row that is certain of its label
    return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, c", [(37, 1000), (5, 3), (4, 1), (256, 10)])
def test_compiled_loss_and_gradient_match_numpy(n, c, dtype):
    x, y = logits(n, c, dtype)
    head = np.random.default_rng(1).uniform(0.5, 2, n)
    loss, grad = compiled_loss_and_grad(x, y, head.astype(dtype))
    want_loss, want_grad = reference(x, y, head)
    tol = 2e-5 if dtype == "float32" else 1e-12
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, want_loss, rtol=tol, atol=tol * np.abs(x[np.isfinite(x) & (np.abs(x) < 1e8)]).max())
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol)
    assert np.all(grad[(x == -1e9) | (x == -np.inf)] == 0)       # exactly 0, never subnormal
    if c == 1:
        assert np.all(loss == 0) and np.all(grad == 0)


def test_gradient_matches_finite_differences():
    x, y = logits(6, 9, "float64", seed=3)
    x = np.where(np.isfinite(x) & (np.abs(x) < 1e8), x, -20.0)      # differentiable everywhere
    head = np.linspace(0.5, 1.5, 6)
    _, grad = compiled_loss_and_grad(x, y, head)
    eps = 1e-6
    fd = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        fd[idx] = ((reference(up, y, head)[0] - reference(down, y, head)[0]) * head).sum() / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_lowered_backward_is_one_data_pass():
    """The one-hot sum folds away, so the gradient's only data-sized node is one fused pass."""
    from graphc.ops.builder import GraphBuilder
    from graphc.ops.types import TensorType
    from graphc.passes.autodiff import differentiate
    from graphc.passes.pipeline import SIMPLIFY, lower_pipeline
    n, c = 64, 1000
    b = GraphBuilder("ce")
    F = b.F
    x = b.var("x", TensorType((n, c), "float32"))
    y = b.var("y", TensorType((n,), "float32"))
    loss = F.mean(F.negative(F.pick(F.log_softmax(x, axis=-1), y, axis=-1, keepdims=True)), axis=-1)
    forward = b.build([loss])
    g = differentiate(forward, wrt=[forward.inputs[0]]).graph
    lowered = lower_pipeline(True)(SIMPLIFY(g))
    big = [node for node in lowered.op_nodes() if any(t.size == n * c for t in node.types)]
    ops = [node.op for node in big]
    assert "sum" not in [node.op for node in lowered.op_nodes() if node.inputs and node.inputs[0].type.size == n * c
                         and node.types[0].size == n], ops
    assert ops.count("_fused_elementwise") <= 2, ops    # forward log-probabilities, backward gradient
