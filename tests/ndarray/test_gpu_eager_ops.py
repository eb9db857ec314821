"""Eager operators on GPU arrays (graphc/ndarray/gpu_ops.py) through the CUDA simulator: every
operator family runs on gpu(0) as a one-node GPU program and gives the CPU's result (same
dtype and shape, values within float tolerance). Each case also checks that the GPU program
ran it (not the host fallback), so a family that stops compiling for the GPU fails here."""
import warnings

import numpy as np
import pytest

import graphc as mx
from graphc.ndarray import gpu_ops
from graphc.ndarray.gpu import GpuNDArray

nd = mx.nd
_rs = np.random.RandomState(0)


def r(*shape):
    return _rs.standard_normal(shape).astype(np.float32)


def idx(*values):
    return np.array(values, np.float32)


CASES = {
    "elementwise": (lambda a, b: (a * b - a / (nd.abs(b) + 1)).relu().sqrt() + nd.tanh(a), [r(3, 4), r(3, 4)]),
    "broadcast": (lambda a, b: nd.broadcast_add(a, b) * nd.broadcast_maximum(a, b), [r(3, 4), r(1, 4)]),
    "scalar_arith": (lambda a: 2 * a - 1.5 + a ** 2, [r(3, 4)]),
    "compare_where": (lambda c, a, b: nd.where(c > 0, a, b), [r(3, 4), r(3, 4), r(3, 4)]),
    "sum_axis": (lambda a: nd.sum(a, axis=1), [r(3, 4, 5)]),
    "mean_keepdims": (lambda a: nd.mean(a, axis=(0, 2), keepdims=True), [r(3, 4, 5)]),
    "max_all": (lambda a: nd.max(a), [r(3, 4, 5)]),
    "argmax": (lambda a: nd.argmax(a, axis=1), [r(3, 4)]),
    "norm": (lambda a: nd.norm(a), [r(3, 4)]),
    "dot": (lambda a, b: nd.dot(a, b), [r(5, 7), r(7, 3)]),
    "dot_transpose_b": (lambda a, b: nd.dot(a, b, transpose_b=True), [r(5, 7), r(3, 7)]),
    "dot_float64": (lambda a, b: nd.dot(a, b), [r(3, 4).astype(np.float64), r(4, 2).astype(np.float64)]),
    "batch_dot": (lambda a, b: nd.batch_dot(a, b), [r(2, 3, 4), r(2, 4, 5)]),
    "fully_connected": (lambda x, w, b: nd.FullyConnected(x, w, b, num_hidden=6), [r(4, 5), r(6, 5), r(6)]),
    "conv_pad_bias": (lambda x, w, b: nd.Convolution(x, w, b, kernel=(3, 3), num_filter=4, pad=(1, 1)),
                      [r(2, 3, 6, 6), r(4, 3, 3, 3), r(4)]),
    "conv_stride_groups": (lambda x, w: nd.Convolution(x, w, kernel=(3, 3), num_filter=4, stride=(2, 2), num_group=2,
                                                       no_bias=True), [r(1, 4, 7, 7), r(4, 2, 3, 3)]),
    "pool_max": (lambda x: nd.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max"), [r(2, 3, 6, 6)]),
    "pool_avg_pad": (lambda x: nd.Pooling(x, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg"),
                     [r(2, 3, 5, 5)]),
    "pool_global": (lambda x: nd.Pooling(x, global_pool=True, pool_type="avg", kernel=(1, 1)), [r(2, 3, 5, 5)]),
    "softmax": (lambda x: nd.softmax(x, axis=-1), [r(3, 5)]),
    "log_softmax": (lambda x: nd.log_softmax(x, axis=1), [r(3, 5)]),
    "softmax_cross_entropy": (lambda x, lab: nd.softmax_cross_entropy(x, lab), [r(3, 5), idx(1, 0, 4)]),
    "activations": (lambda x: nd.Activation(x, act_type="sigmoid") + nd.LeakyReLU(x, slope=0.1), [r(3, 4)]),
    "layer_norm": (lambda x, g, b: nd.LayerNorm(x, g, b), [r(3, 4), r(4), r(4)]),
    "batch_norm_inference": (lambda x, g, b, m, v: nd.BatchNorm(x, g, b, m, v),
                             [r(2, 3, 2, 2), r(3), r(3), r(3), np.abs(r(3)) + 0.5]),
    "reshape_flatten": (lambda x: nd.flatten(x.reshape((4, 3, 2))), [r(2, 3, 4)]),
    "transpose": (lambda x: nd.transpose(x, axes=(1, 0, 2)), [r(2, 3, 4)]),
    "basic_slices": (lambda x: [x[1:3], x[:, 1:3], x[2], x[::2, -1]], [r(4, 3)]),
    "slice_axis": (lambda x: nd.slice_axis(x, axis=1, begin=1, end=3), [r(4, 3)]),
    "expand_tile": (lambda x: nd.tile(nd.expand_dims(x, 1), reps=(1, 2, 1)), [r(3, 4)]),
    "concat": (lambda a, b: nd.concat(a, b, dim=1), [r(2, 3), r(2, 4)]),
    "split": (lambda a: nd.split(a, num_outputs=2, axis=1), [r(2, 4)]),
    "stack": (lambda a, b: nd.stack(a, b, axis=1), [r(2, 3), r(2, 3)]),
    "take": (lambda a, i: nd.take(a, i), [r(5, 3), idx(0, 4, 2, 2)]),
    "index_by_array": (lambda a, i: a[i], [r(5, 3), idx(3, 1)]),
    "embedding": (lambda i, w: nd.Embedding(i, w, input_dim=5, output_dim=3), [idx(0, 4, 2, 1).reshape(2, 2), r(5, 3)]),
    "pick_one_hot": (lambda a, i: [nd.pick(a, i, axis=1), nd.one_hot(i, 4)], [r(3, 4), idx(0, 3, 1)]),
    "sort": (lambda a: nd.sort(a, axis=1), [r(3, 6)]),
    "argsort": (lambda a: nd.argsort(a, axis=1), [r(3, 6)]),
    "topk": (lambda a: nd.topk(a, k=2, axis=1, ret_typ="both"), [r(3, 6)]),
    "cast": (lambda a: [a.astype("float64") * 2, (a * 10).astype("int32")], [r(3, 4)]),
    "int32_arith": (lambda a, b: a + b * 2, [np.arange(6, dtype=np.int32).reshape(2, 3), np.ones((2, 3), np.int32)]),
    "clip_cumsum": (lambda a: nd.cumsum(nd.clip(a, -0.5, 0.5), axis=1), [r(3, 4)]),
    "like_ops": (lambda x: nd.zeros_like(x) + nd.ones_like(x), [r(3, 4)]),
    "shape_array": (lambda x: nd.shape_array(x), [r(3, 4)]),
}

def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


@pytest.mark.parametrize("name", sorted(CASES))
def test_operator_on_gpu_equals_cpu(cuda_device, name):
    fn, inputs = CASES[name]
    want = _as_list(fn(*[nd.array(a, dtype=a.dtype) for a in inputs]))
    before = gpu_ops.stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _as_list(fn(*[nd.array(a, dtype=a.dtype, ctx=mx.gpu(0)) for a in inputs]))
    after = gpu_ops.stats()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) is GpuNDArray and g.context == mx.gpu(0)
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    # a GPU program ran it (no program failed to build and fell back to the host)
    assert after["failed"] == before["failed"], [str(w.message) for w in caught]
    assert after["program_calls"] > before["program_calls"] and after["host_calls"] == before["host_calls"]


def test_batch_norm_training_updates_moving_statistics_on_the_gpu(cuda_device):
    x, gamma, beta = r(4, 3, 2, 2) + 1, r(3), r(3)
    results = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        mean, var = nd.zeros((3,), ctx=ctx), nd.ones((3,), ctx=ctx)
        with mx.autograd.train_mode():
            y = nd.BatchNorm(nd.array(x, ctx=ctx), nd.array(gamma, ctx=ctx), nd.array(beta, ctx=ctx), mean, var,
                             fix_gamma=False, momentum=0.8)
        results.append((y, mean, var))
    (yc, mc, vc), (yg, mg, vg) = results
    assert type(mg) is GpuNDArray and type(vg) is GpuNDArray
    np.testing.assert_allclose(mc.asnumpy(), 0.2 * x.mean(axis=(0, 2, 3)), rtol=1e-5)     # moved
    for c, g in ((yc, yg), (mc, mg), (vc, vg)):
        np.testing.assert_allclose(g.asnumpy(), c.asnumpy(), rtol=1e-5, atol=1e-6)


def test_dropout_in_training_draws_the_cpu_mask_for_the_same_seed(cuda_device):
    outs = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        mx.random.seed(7)
        with mx.autograd.train_mode():
            outs.append(nd.Dropout(nd.ones((6, 8), ctx=ctx), p=0.5))
    c, g = outs
    assert type(g) is GpuNDArray
    np.testing.assert_array_equal(g.asnumpy(), c.asnumpy())
    assert set(np.unique(g.asnumpy())) == {0.0, 2.0}
    # outside training Dropout is the identity on the GPU too
    np.testing.assert_array_equal(nd.Dropout(nd.ones((2, 3), ctx=mx.gpu(0)), p=0.5).asnumpy(), np.ones((2, 3)))
