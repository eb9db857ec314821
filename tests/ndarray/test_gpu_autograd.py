"""Autograd on GPU arrays through the CUDA simulator: the tape records eager GPU operators and
backward runs their gradient rules as GPU operators too (graphc/ndarray/gpu_ops.py); .grad
buffers live on the GPU. Gradients are compared with the same code on the CPU, and once with
finite differences."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd
from graphc.ndarray import gpu_ops
from graphc.ndarray.gpu import GpuNDArray

nd = mx.nd


def _params(ctx, arrays, grad_req="write"):
    ps = [nd.array(a, ctx=ctx) for a in arrays]
    for p in ps:
        p.attach_grad(grad_req)
    return ps


def _mlp_loss(ctx, x, labels, params):
    w1, b1, w2, b2 = params
    h = nd.relu(nd.FullyConnected(nd.array(x, ctx=ctx), w1, b1, num_hidden=w1.shape[0]))
    out = nd.FullyConnected(h, w2, b2, num_hidden=w2.shape[0])
    return nd.softmax_cross_entropy(out, nd.array(labels, ctx=ctx))


def test_mlp_gradients_on_gpu_equal_cpu(cuda_device):
    rs = np.random.RandomState(0)
    arrays = [rs.randn(8, 5), rs.randn(8), rs.randn(3, 8), rs.randn(3)]
    x, labels = rs.randn(4, 5), np.array([0, 2, 1, 1])
    grads, losses = {}, {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        params = _params(ctx, arrays)
        with autograd.record():
            loss = _mlp_loss(ctx, x, labels, params)
        loss.backward()
        losses[ctx], grads[ctx] = loss, [p.grad for p in params]
    assert type(losses[mx.gpu(0)]) is GpuNDArray
    np.testing.assert_allclose(losses[mx.gpu(0)].asnumpy(), losses[mx.cpu()].asnumpy(), rtol=1e-5)
    for gc, gg in zip(grads[mx.cpu()], grads[mx.gpu(0)]):
        assert type(gg) is GpuNDArray and gg.context == mx.gpu(0)
        np.testing.assert_allclose(gg.asnumpy(), gc.asnumpy(), rtol=1e-4, atol=1e-6)
    assert np.abs(grads[mx.gpu(0)][0].asnumpy()).sum() > 0


def test_grad_req_add_accumulates_on_the_gpu(cuda_device):
    w = _params(mx.gpu(0), [np.array([1.0, -2.0, 3.0])], grad_req="add")[0]
    x = nd.array([0.5, 1.5, -1.0], ctx=mx.gpu(0))
    for _ in range(2):
        with autograd.record():
            y = (w * w * x).sum()
        y.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), 2 * (2 * w.asnumpy() * x.asnumpy()), rtol=1e-6)
    w.grad[:] = 0                      # (a Trainer's zero_grad): the buffer is written in place
    with autograd.record():
        y = (w * x).sum()
    y.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), x.asnumpy(), rtol=1e-6)


@pytest.mark.slow       # (~15 s in a fresh session: the simulator compiles some 30 kernels with g++)
def test_small_cnn_with_batchnorm_training_gradients_equal_cpu(cuda_device):
    rs = np.random.RandomState(1)
    x = rs.randn(2, 2, 6, 6).astype(np.float32)
    arrays = [rs.randn(3, 2, 3, 3) * 0.5, rs.randn(3), np.ones(3), np.zeros(3)]
    out = {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        w, b, gamma, beta = _params(ctx, arrays)
        xs = nd.array(x, ctx=ctx)
        xs.attach_grad()
        mean, var = nd.zeros((3,), ctx=ctx), nd.ones((3,), ctx=ctx)
        with autograd.record():
            h = nd.Convolution(xs, w, b, kernel=(3, 3), num_filter=3, pad=(1, 1))
            h = nd.BatchNorm(h, gamma, beta, mean, var, fix_gamma=False)
            h = nd.Pooling(nd.relu(h), kernel=(2, 2), stride=(2, 2), pool_type="max")
            loss = (h * h).mean()
        loss.backward()
        out[ctx] = [loss, xs.grad, w.grad, b.grad, gamma.grad, beta.grad, mean, var]
    for c, g in zip(out[mx.cpu()], out[mx.gpu(0)]):
        assert type(g) is GpuNDArray
        np.testing.assert_allclose(g.asnumpy(), c.asnumpy(), rtol=1e-4, atol=1e-5)


def test_gpu_gradient_matches_finite_differences(cuda_device):
    rs = np.random.RandomState(2)
    a0 = rs.randn(3, 4)
    b = nd.array(rs.randn(4, 2), ctx=mx.gpu(0), dtype="float64")

    def f(a):
        return (nd.tanh(nd.dot(a, b)) * a.sum(axis=1, keepdims=True)).sum()
    a = nd.array(a0, ctx=mx.gpu(0), dtype="float64")
    a.attach_grad()
    with autograd.record():
        y = f(a)
    y.backward()
    eps, numeric = 1e-6, np.zeros_like(a0)
    for i in np.ndindex(a0.shape):
        d = np.zeros_like(a0)
        d[i] = eps
        hi = f(nd.array(a0 + d, ctx=mx.gpu(0), dtype="float64")).asscalar()
        lo = f(nd.array(a0 - d, ctx=mx.gpu(0), dtype="float64")).asscalar()
        numeric[i] = (hi - lo) / (2 * eps)
    np.testing.assert_allclose(a.grad.asnumpy(), numeric, rtol=1e-5, atol=1e-7)


def test_autograd_grad_copies_and_in_place_under_recording(cuda_device):
    x = nd.array([1.0, 2.0, 3.0], ctx=mx.gpu(0))
    x.attach_grad()
    with autograd.record():
        y = x * x
        z = y.copyto(mx.cpu())          # the copy is on the tape: its gradient goes back to the GPU
        loss = (z * nd.array([1.0, 0.5, 2.0])).sum()
    loss.backward()
    assert type(x.grad) is GpuNDArray
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * np.array([1, 2, 3]) * [1, 0.5, 2], rtol=1e-6)
    with autograd.record():
        y = x * 2
        y += x                          # in place on a recorded value: the gradient follows it
        g = autograd.grad(y.sum(), [x])[0]
    assert type(g) is GpuNDArray
    np.testing.assert_allclose(g.asnumpy(), [3, 3, 3])
    with autograd.record():
        with pytest.raises(ValueError, match="in-place add on an array with attach_grad"):
            x += 1


def test_backward_runs_the_gradient_rules_as_gpu_programs(cuda_device):
    w = _params(mx.gpu(0), [np.ones((3, 4))])[0]
    x = nd.ones((2, 4), ctx=mx.gpu(0))
    with autograd.record():
        y = nd.FullyConnected(x, w, no_bias=True, num_hidden=3).sum()
    before = gpu_ops.stats()
    y.backward()
    after = gpu_ops.stats()
    assert after["program_calls"] > before["program_calls"]
    assert after["host_calls"] == before["host_calls"]
    np.testing.assert_allclose(w.grad.asnumpy(), np.full((3, 4), 2.0))


def test_gradient_rules_that_create_arrays_make_them_on_the_gpu(cuda_device):
    # pick's gradient compares the indices with F._arange(...) positions, whose ctx attribute
    # defaults to cpu(0): on a GPU tape they must be made on the GPU
    data = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    grads = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        x = nd.array(data, ctx=ctx)
        x.attach_grad()
        with autograd.record():
            y = (nd.pick(x, nd.array([1, 3, 0], ctx=ctx), axis=1) * nd.array([1, 2, 3], ctx=ctx)).sum()
        y.backward()
        grads.append(x.grad)
    assert type(grads[1]) is GpuNDArray
    np.testing.assert_array_equal(grads[1].asnumpy(), grads[0].asnumpy())
    assert grads[0].asnumpy()[1, 3] == 2


_rs = np.random.RandomState(5)


def _r(*shape):
    return _rs.standard_normal(shape).astype(np.float32)


# (function, inputs, indices of the inputs to differentiate)
GRADIENT_CASES = {
    "embedding": (lambda w, i: nd.Embedding(i, w, input_dim=5, output_dim=3),
                  [_r(5, 3), np.array([0, 4, 2, 4.0])], [0]),
    "concat_split": (lambda a, b: nd.split(nd.concat(a, b, dim=1), num_outputs=2, axis=1)[1] * 2,
                     [_r(2, 3), _r(2, 3)], [0, 1]),
    "layer_norm": (lambda x, g, b: nd.LayerNorm(x, g, b), [_r(3, 4), _r(4), _r(4)], [0, 1, 2]),
    "softmax_output": (lambda x, lab: nd.SoftmaxOutput(x, lab), [_r(3, 4), np.array([0, 1, 3.0])], [0]),
    "dropout_training": (lambda a: nd.Dropout(a, p=0.3), [_r(4, 5)], [0]),
    "topk_values": (lambda a: nd.topk(a, k=2, ret_typ="value"), [_r(3, 5)], [0]),
    "deconvolution": (lambda x, w: nd.Deconvolution(x, w, kernel=(2, 2), num_filter=2, no_bias=True),
                      [_r(1, 3, 3, 3), _r(3, 2, 2, 2)], [0, 1]),
    "max_axis": (lambda a: nd.max(a, axis=1), [_r(4, 3)], [0]),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_operator_gradients_on_gpu_equal_cpu(cuda_device, name):
    fn, inputs, wrt = GRADIENT_CASES[name]
    results = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        xs = [nd.array(a, ctx=ctx) for a in inputs]
        for i in wrt:
            xs[i].attach_grad()
        mx.random.seed(1)                       # (Dropout draws the same mask on both)
        with autograd.record():
            loss = (fn(*xs) ** 2).sum()
        loss.backward()
        results.append([loss] + [xs[i].grad for i in wrt])
    for c, g in zip(*results):
        assert type(g) is GpuNDArray
        np.testing.assert_allclose(g.asnumpy(), c.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    assert any(np.abs(g.asnumpy()).sum() > 0 for g in results[1][1:])
