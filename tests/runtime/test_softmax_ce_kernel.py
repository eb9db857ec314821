"""The `_fused_softmax_ce` kernel (runtime/softmax_ce_kernel.py): one parallel loop over rows whose
only memory sweep is the row max; the loss and its gradient through gluon's
SoftmaxCrossEntropyLoss (sparse and dense labels, inner axes, float32 and float64) against numpy
and finite differences, with the fused pass on."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon
from graphc.ops.builder import GraphBuilder
from graphc.ops.fused_softmax_ce import FUSED_SOFTMAX_CE, softmax_ce_reference
from graphc.ops.types import TensorType
from graphc.passes.pipeline import lower_pipeline
from graphc.runtime.kernel_ir import Loop
from graphc.runtime.softmax_ce_kernel import softmax_ce_kernel


def fused_node(shape, axis, dtype="float32", keep=True):
    b = GraphBuilder("k")
    x = b.var("x", TensorType(shape, dtype))
    g = b.build([b.F.log_softmax(x, axis=axis)] if keep else
                [b.F.pick(b.F.log_softmax(x, axis=axis), b.F.zeros_like(b.F.sum(x, axis=axis)), axis=axis)])
    return next(n for n in lower_pipeline(False)(g).op_nodes() if n.op == FUSED_SOFTMAX_CE)


@pytest.mark.parametrize("shape, axis, keep", [((700, 10000), -1, True), ((700, 10000), -1, False),
                                               ((4, 9, 6), 1, True)])
def test_one_parallel_loop_over_rows(shape, axis, keep):
    k = softmax_ce_kernel("k", fused_node(shape, axis, keep=keep))
    loop, = k.body
    assert isinstance(loop, Loop) and loop.independent and loop.extent == shape[0]
    assert loop.parallel == (shape[0] > 1 and np.prod(shape) * 6 >= 1 << 17)
    assert [b.name for b in k.bufs] == ["m", "ls"] + (["logp"] if keep else []) + ["x"]
    text = str(k)
    assert text.count("exp(") == 1 and text.count("log(") == 1       # one exp per element


def _loss_block(axis, sparse):
    class Net(gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            self.loss = gluon.loss.SoftmaxCrossEntropyLoss(axis=axis, sparse_label=sparse)

        def hybrid_forward(self, F, x, y):
            return self.loss(x, y)
    net = Net()
    net.hybridize()
    return net


def loss_and_grad(x, y, axis, sparse, head):
    net = _loss_block(axis, sparse)
    xs = mx.nd.array(x, dtype=x.dtype)
    xs.attach_grad()
    with autograd.record():
        loss = net(xs, mx.nd.array(y, dtype=x.dtype))
    loss.backward(mx.nd.array(head, dtype=x.dtype))
    return loss.asnumpy(), xs.grad.asnumpy()


def reference_loss(x, y, axis, sparse):
    """numpy, float64: the per-sample mean over the non-batch axes of -logp[label] or -sum(y*logp)."""
    _, _, logp = softmax_ce_reference(x.astype(np.float64), axis)
    if sparse:
        idx = np.expand_dims(np.clip(y.astype(int), 0, x.shape[axis] - 1), axis)
        per = -np.take_along_axis(logp, idx, axis)
    else:
        per = -(logp * y).sum(axis=axis, keepdims=True)
    return per.reshape(per.shape[0], -1).mean(axis=1)


def data(shape, axis, sparse, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    n = shape[axis]
    if sparse:
        y = rng.integers(0, n, shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]).astype(float)
    else:
        y = rng.random(shape)
        y /= y.sum(axis=axis, keepdims=True)
    return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("shape, axis, sparse", [((5, 9), -1, True), ((3, 6, 4), 1, True), ((5, 9), -1, False),
                                                 ((3, 6, 4), 1, False)])
def test_gradient_matches_finite_differences(shape, axis, sparse):
    x, y = data(shape, axis, sparse, "float64", seed=4)
    x[0].flat[0] = 30.0                      # a row where one logit dominates
    head = np.linspace(0.5, 1.5, shape[0])
    _, grad = loss_and_grad(x, y, axis, sparse, head)
    eps = 1e-6
    fd = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        diff = reference_loss(up, y, axis, sparse) - reference_loss(down, y, axis, sparse)
        fd[idx] = (diff * head).sum() / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axis, sparse", [((40, 3000), -1, True), ((6, 50, 7), 1, True), ((40, 300), -1, False)])
def test_loss_over_extreme_rows_matches_numpy(shape, axis, sparse, dtype):
    x, y = data(shape, axis, sparse, "float64", seed=5)
    x[0] *= 1e4                 # huge logits
    x[1] *= 1e-7                # tiny ones: a nearly uniform row
    x[2] = -50.0
    x[2].flat[0] = 60.0         # one logit dominates
    x, y = x.astype(dtype), y.astype(dtype)
    loss, grad = loss_and_grad(x, y, axis, sparse, np.ones(shape[0], dtype))
    want = reference_loss(x, y, axis, sparse)
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(loss, want, rtol=tol, atol=tol)
    assert np.all(np.isfinite(grad))
    sums = grad.sum(axis=axis)          # softmax - label sums to 0 over the classes (labels sum to 1)
    np.testing.assert_allclose(sums, 0, atol=50 * tol)
