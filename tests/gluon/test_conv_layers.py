"""gluon.nn convolution, pooling, normalization, Embedding and padding layers against numpy
formulas written here independently; MXNet's parameter names and deferred shapes; compiled ==
eager; the MXNet-written CNN fixture."""
import itertools
import os

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.ops import has_op

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")
RNG = np.random.default_rng(3)


def needs(*ops):
    missing = [op for op in ops if not has_op(op)]
    return pytest.mark.skipif(bool(missing), reason=f"operator(s) {missing} not registered yet")


def _x(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def _run(layer, x, init=None):
    layer.initialize(init)
    return layer(nd.array(x)).asnumpy()


# -- numpy references ---------------------------------------------------------------------------------
def conv_ref(x, w, b, stride, pad, dilate, groups):
    """N-d cross-correlation, NC* layout, weight (O, I/groups, *k)."""
    nd_ = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - dilate[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(nd_)]
    n, c = x.shape[:2]
    o = w.shape[0]
    out = np.zeros((n, o) + tuple(out_sp), np.float64)
    cg, og = c // groups, o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for offs in itertools.product(*[range(kk) for kk in k]):
            sl = tuple(slice(offs[i] * dilate[i], offs[i] * dilate[i] + stride[i] * (out_sp[i] - 1) + 1, stride[i])
                       for i in range(nd_))
            patch = xs[(slice(None), slice(None)) + sl]
            out[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, ws[(slice(None), slice(None)) + offs])
    if b is not None:
        out += b.reshape((1, -1) + (1,) * nd_)
    return out.astype(np.float32)


def deconv_ref(x, w, b, stride, pad, adj, groups):
    """Transposed convolution: every input element scatters weight * value; weight (I, O/groups, *k)."""
    nd_ = x.ndim - 2
    n, c = x.shape[:2]
    k = w.shape[2:]
    og = w.shape[1]
    o = og * groups
    full = [(x.shape[2 + i] - 1) * stride[i] + k[i] for i in range(nd_)]
    out = np.zeros((n, o) + tuple(f + a for f, a in zip(full, adj)), np.float64)
    cg = c // groups
    for g in range(groups):
        for offs in itertools.product(*[range(kk) for kk in k]):
            sl = tuple(slice(offs[i], offs[i] + stride[i] * (x.shape[2 + i] - 1) + 1, stride[i]) for i in range(nd_))
            contrib = np.einsum("nc...,co->no...", x[:, g * cg:(g + 1) * cg],
                                w[(slice(g * cg, (g + 1) * cg), slice(None)) + offs])
            out[(slice(None), slice(g * og, (g + 1) * og)) + sl] += contrib
    crop = tuple(slice(pad[i], pad[i] + (x.shape[2 + i] - 1) * stride[i] - 2 * pad[i] + k[i] + adj[i])
                 for i in range(nd_))
    out = out[(slice(None), slice(None)) + crop]
    if b is not None:
        out += b.reshape((1, -1) + (1,) * nd_)
    return out.astype(np.float32)


def pool_ref(x, kernel, stride, pad, kind, ceil=False, count_include_pad=True):
    nd_ = x.ndim - 2
    fill = -np.inf if kind == "max" else 0.0
    sizes = []
    for i in range(nd_):
        span = x.shape[2 + i] + 2 * pad[i] - kernel[i]
        sizes.append((-(-span // stride[i]) if ceil else span // stride[i]) + 1)
    extra = [max(0, (sizes[i] - 1) * stride[i] + kernel[i] - x.shape[2 + i] - 2 * pad[i]) for i in range(nd_)]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pad[i], pad[i] + extra[i]) for i in range(nd_)], constant_values=fill)
    ones = np.pad(np.ones(x.shape[2:]), [(pad[i], pad[i] + extra[i]) for i in range(nd_)])
    inside = np.pad(np.ones([x.shape[2 + i] + 2 * pad[i] for i in range(nd_)]), [(0, e) for e in extra])
    out = np.zeros(x.shape[:2] + tuple(sizes), np.float32)
    for idx in itertools.product(*[range(s) for s in sizes]):
        sl = tuple(slice(idx[i] * stride[i], idx[i] * stride[i] + kernel[i]) for i in range(nd_))
        win = xp[(slice(None), slice(None)) + sl]
        if kind == "max":
            out[(slice(None), slice(None)) + idx] = win.reshape(win.shape[:2] + (-1,)).max(-1)
        else:
            denom = inside[sl].sum() if count_include_pad else ones[sl].sum()
            out[(slice(None), slice(None)) + idx] = win.reshape(win.shape[:2] + (-1,)).sum(-1) / denom
    return out


# -- names and deferred shapes ---------------------------------------------------------------------------
def test_parameter_names_and_deferred_shapes_follow_mxnet():
    with mx.name.NameManager():
        conv = nn.Conv2D(8, 3)
        tconv = nn.Conv2DTranspose(4, 3)
        bn = nn.BatchNorm()
        ln = nn.LayerNorm()
        emb = nn.Embedding(10, 3)
        pool = nn.MaxPool2D()
    assert sorted(conv.params.keys()) == ["conv0_bias", "conv0_weight"]
    assert conv.weight.shape == (8, 0, 3, 3)
    assert tconv.prefix == "conv1_" and tconv.weight.shape == (0, 4, 3, 3)
    assert sorted(bn.params.keys()) == ["batchnorm0_beta", "batchnorm0_gamma", "batchnorm0_running_mean",
                                        "batchnorm0_running_var"]
    assert bn.running_mean.grad_req == "null" and bn.running_var.grad_req == "null"
    assert not bn.running_mean._differentiable
    assert ln.prefix == "layernorm0_" and emb.weight.name == "embedding0_weight" and pool.prefix == "pool0_"
    assert nn.Conv2D(6, 3, groups=3, in_channels=6).weight.shape == (6, 2, 3, 3)
    assert nn.Conv2D(6, (1, 5), layout="NHWC", in_channels=4).weight.shape == (6, 1, 5, 4)
    assert nn.Conv3DTranspose(6, 2, groups=2, in_channels=4).weight.shape == (4, 3, 2, 2, 2)
    assert nn.Conv1D(5, 3, use_bias=False).bias is None


def test_layer_attributes_are_mxnets():
    conv = nn.Conv2D(8, 3, strides=2, padding=1, dilation=2, groups=2, use_bias=False)
    assert conv._kwargs == {"kernel": (3, 3), "stride": (2, 2), "dilate": (2, 2), "pad": (1, 1), "num_filter": 8,
                            "num_group": 2, "no_bias": True, "layout": "NCHW"}
    assert nn.Conv2DTranspose(3, 2, output_padding=1)._kwargs["adj"] == (1, 1)
    pool = nn.AvgPool2D(3, 1, 1, ceil_mode=True)
    assert pool._kwargs == {"kernel": (3, 3), "stride": (1, 1), "pad": (1, 1), "global_pool": False,
                            "pool_type": "avg", "layout": "NCHW", "pooling_convention": "full",
                            "count_include_pad": True}
    assert nn.GlobalMaxPool1D()._kwargs["global_pool"] is True
    assert nn.BatchNorm(scale=False)._kwargs["fix_gamma"] is True
    with pytest.raises(ValueError, match="layout"):
        nn.MaxPool2D(layout="NCW")


# -- convolution -----------------------------------------------------------------------------------------------
@needs("Convolution")
@pytest.mark.parametrize("layer_cls,shape,kw", [
    (nn.Conv1D, (2, 4, 11), dict(channels=6, kernel_size=3, strides=2, padding=1)),
    (nn.Conv2D, (2, 4, 9, 8), dict(channels=6, kernel_size=(3, 2), strides=(2, 1), padding=(1, 0), dilation=(1, 2))),
    (nn.Conv2D, (1, 6, 7, 7), dict(channels=6, kernel_size=3, padding=1, groups=3)),
    (nn.Conv2D, (1, 4, 5, 5), dict(channels=4, kernel_size=3, groups=4, use_bias=False)),
    (nn.Conv3D, (1, 2, 5, 4, 6), dict(channels=3, kernel_size=2, strides=(1, 2, 1), padding=1)),
])
def test_convolution_matches_numpy(layer_cls, shape, kw):
    x = _x(*shape)
    layer = layer_cls(**kw)
    out = _run(layer, x, mx.init.Normal(0.5))
    w = layer.weight.data().asnumpy()
    b = layer.bias.data().asnumpy() if layer.bias is not None else None
    k = layer._kwargs
    ref = conv_ref(x, w, b, k["stride"], k["pad"], k["dilate"], k["num_group"])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@needs("Convolution")
def test_conv_with_activation_and_nhwc_layout():
    x = _x(2, 5, 6, 3)
    layer = nn.Conv2D(4, 3, padding=1, layout="NHWC", activation="relu")
    out = _run(layer, x, mx.init.Normal(0.5))
    w = layer.weight.data().asnumpy()                  # (O, kh, kw, I)
    ref = conv_ref(x.transpose(0, 3, 1, 2), w.transpose(0, 3, 1, 2), layer.bias.data().asnumpy(),
                   (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(out, np.maximum(ref, 0).transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


@needs("Deconvolution")
@pytest.mark.parametrize("layer_cls,shape,kw", [
    (nn.Conv1DTranspose, (2, 3, 5), dict(channels=4, kernel_size=3, strides=2)),
    (nn.Conv2DTranspose, (1, 4, 4, 3), dict(channels=6, kernel_size=3, strides=2, padding=1, output_padding=1,
                                            groups=2)),
    (nn.Conv3DTranspose, (1, 2, 2, 3, 2), dict(channels=2, kernel_size=2, strides=(2, 1, 2))),
])
def test_transposed_convolution_matches_numpy(layer_cls, shape, kw):
    x = _x(*shape)
    layer = layer_cls(**kw)
    out = _run(layer, x, mx.init.Normal(0.5))
    k = layer._kwargs
    ref = deconv_ref(x, layer.weight.data().asnumpy(), layer.bias.data().asnumpy(), k["stride"], k["pad"],
                     k["adj"], k["num_group"])
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@needs("Convolution")
def test_groups_that_do_not_divide_the_input_are_named():
    layer = nn.Conv2D(6, 3, groups=4)
    layer.initialize()
    with pytest.raises(ValueError, match="groups"):
        layer(nd.zeros((1, 6, 5, 5)))


# -- pooling ----------------------------------------------------------------------------------------------------
@needs("Pooling")
@pytest.mark.parametrize("layer,shape,ref_kw", [
    (nn.MaxPool1D(3, 2, 1), (2, 3, 9), dict(kernel=(3,), stride=(2,), pad=(1,), kind="max")),
    (nn.MaxPool2D(), (1, 2, 6, 7), dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0), kind="max")),
    (nn.MaxPool2D(3, 2, ceil_mode=True), (1, 2, 8, 8), dict(kernel=(3, 3), stride=(2, 2), pad=(0, 0), kind="max",
                                                            ceil=True)),
    (nn.AvgPool2D(3, 1, 1), (1, 3, 5, 5), dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), kind="avg")),
    (nn.AvgPool2D(3, 1, 1, count_include_pad=False), (1, 3, 5, 5),
     dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), kind="avg", count_include_pad=False)),
    (nn.AvgPool3D(2), (1, 2, 4, 4, 6), dict(kernel=(2, 2, 2), stride=(2, 2, 2), pad=(0, 0, 0), kind="avg")),
    (nn.MaxPool3D((1, 2, 2), (1, 2, 2)), (1, 1, 3, 4, 4), dict(kernel=(1, 2, 2), stride=(1, 2, 2), pad=(0, 0, 0),
                                                                kind="max")),
])
def test_pooling_matches_numpy(layer, shape, ref_kw):
    x = _x(*shape)
    np.testing.assert_allclose(_run(layer, x), pool_ref(x, **ref_kw), rtol=1e-5, atol=1e-6)


@needs("Pooling")
def test_global_pools_reduce_every_spatial_axis():
    x = _x(2, 3, 4, 5)
    np.testing.assert_allclose(_run(nn.GlobalAvgPool2D(), x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(_run(nn.GlobalMaxPool2D(), x), x.max(axis=(2, 3), keepdims=True))
    x1 = _x(2, 3, 7)
    np.testing.assert_allclose(_run(nn.GlobalMaxPool1D(), x1), x1.max(axis=2, keepdims=True))
    x3 = _x(1, 2, 3, 4, 5)
    np.testing.assert_allclose(_run(nn.GlobalAvgPool3D(), x3), x3.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-5)


# -- normalization ------------------------------------------------------------------------------------------------
@needs("BatchNorm")
def test_batchnorm_inference_uses_running_statistics():
    x = _x(4, 3, 2, 2)
    bn = nn.BatchNorm(epsilon=1e-3)
    bn.initialize()
    bn(nd.array(x))
    mean, var = _x(3), np.abs(_x(3)) + 0.5
    gamma, beta = _x(3), _x(3)
    for p, v in ((bn.running_mean, mean), (bn.running_var, var), (bn.gamma, gamma), (bn.beta, beta)):
        p.set_data(v)
    out = bn(nd.array(x)).asnumpy()
    c = (1, 3, 1, 1)
    ref = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-3) * gamma.reshape(c) + beta.reshape(c)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


@needs("BatchNorm")
@pytest.mark.parametrize("hybridize", [False, True])
def test_batchnorm_training_normalizes_by_the_batch_and_moves_running_mean(hybridize):
    x = _x(8, 3, 4, 4) * 2 + 1
    bn = nn.BatchNorm(momentum=0.9, in_channels=3)
    bn.initialize()
    if hybridize:
        bn.hybridize()
    with autograd.record():
        out = bn(nd.array(x)).asnumpy()
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    sd = np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, (x - mu) / sd, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), 0.1 * mu.ravel(), rtol=1e-4, atol=1e-6)
    assert not np.allclose(bn.running_var.data().asnumpy(), 1.0)
    assert bn.running_mean.data().asnumpy().shape == (3,)


@needs("BatchNorm")
def test_batchnorm_on_another_axis_infers_its_channels():
    bn = nn.BatchNorm(axis=-1)
    bn.initialize()
    bn(nd.array(_x(2, 5, 7)))
    assert bn.gamma.shape == (7,) and bn.running_var.shape == (7,)


@needs("LayerNorm")
def test_layernorm_matches_numpy():
    x = _x(3, 4, 6)
    ln = nn.LayerNorm()
    ln.initialize()
    ln(nd.array(x))
    g, b = _x(6), _x(6)
    ln.gamma.set_data(g)
    ln.beta.set_data(b)
    out = ln(nd.array(x)).asnumpy()
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    ln1 = nn.LayerNorm(axis=1)
    ln1.initialize()
    ln1(nd.array(x))
    assert ln1.gamma.shape == (4,)


@needs("InstanceNorm")
@pytest.mark.parametrize("axis", [1, 2])
def test_instancenorm_matches_numpy(axis):
    x = _x(2, 3, 5, 4)
    layer = nn.InstanceNorm(axis=axis, scale=True)
    layer.initialize()
    layer(nd.array(x))
    c = x.shape[axis]
    g, b = _x(c), _x(c)
    layer.gamma.set_data(g)
    layer.beta.set_data(b)
    out = layer(nd.array(x)).asnumpy()
    xs = np.swapaxes(x, 1, axis)
    red = tuple(range(2, xs.ndim))
    ref = (xs - xs.mean(red, keepdims=True)) / np.sqrt(xs.var(red, keepdims=True) + 1e-5)
    ref = ref * g.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(out, np.swapaxes(ref, 1, axis), rtol=1e-4, atol=1e-5)
    assert nn.InstanceNorm().gamma.grad_req == "null"        # scale=False by default, as MXNet


@needs("GroupNorm")
def test_groupnorm_matches_numpy_with_per_group_gamma():
    x = _x(2, 6, 3, 3)
    layer = nn.GroupNorm(num_groups=3)
    layer.initialize()
    assert layer.gamma.shape == (3,)                         # MXNet 1.x: one gamma per group
    g, b = _x(3), _x(3)
    layer.gamma.set_data(g)
    layer.beta.set_data(b)
    out = layer(nd.array(x)).asnumpy()
    xg = x.reshape(2, 3, -1)
    norm = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5))
    ref = (norm * g.reshape(1, 3, 1) + b.reshape(1, 3, 1)).reshape(x.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# -- embedding and padding -----------------------------------------------------------------------------------------
@needs("Embedding")
def test_embedding_looks_up_rows_and_accepts_sparse_grad():
    emb = nn.Embedding(10, 4, sparse_grad=True)
    emb.initialize()
    idx = np.array([[1, 9], [0, 1]], np.float32)
    out = emb(nd.array(idx)).asnumpy()
    np.testing.assert_array_equal(out, emb.weight.data().asnumpy()[idx.astype(int)])
    with autograd.record():
        loss = emb(nd.array(idx)).sum()
    loss.backward()
    grad = emb.weight.grad().asnumpy()
    assert grad[1].sum() == pytest.approx(8.0) and grad[9].sum() == pytest.approx(4.0) and grad[5].sum() == 0


@needs("Pad")
def test_reflection_pad2d_matches_numpy():
    x = _x(1, 2, 4, 5)
    out = _run(nn.ReflectionPad2D(2), x)
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)], mode="reflect"))


# -- compiled == eager, training through convolutions --------------------------------------------------------------
def _small_cnn():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(6, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(),
                nn.Conv2D(8, 3, strides=2, groups=2), nn.LayerNorm(axis=1), nn.AvgPool2D(2, 1, ceil_mode=True),
                nn.Conv2DTranspose(4, 2, strides=2), nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(3))
    return net


@needs("Convolution", "Deconvolution", "Pooling", "BatchNorm", "LayerNorm")
def test_compiled_cnn_matches_eager_in_inference_and_training():
    net = _small_cnn()
    net.initialize(mx.init.Xavier(magnitude=2))
    x = nd.array(_x(2, 3, 12, 12))
    eager = net(x).asnumpy()
    bn = net[1]
    before = [p.data().asnumpy().copy() for p in (bn.running_mean, bn.running_var)]
    with autograd.record():
        eager_loss = (net(x) ** 2).sum()
    eager_loss.backward()
    grads = {k: p.grad().asnumpy().copy() for k, p in net.collect_params().items() if p.grad_req != "null"}
    stats = bn.running_mean.data().asnumpy().copy()
    assert not np.allclose(stats, before[0])
    for p, v in zip((bn.running_mean, bn.running_var), before):
        p.set_data(v)
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-4, atol=1e-5)
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(loss.asnumpy(), eager_loss.asnumpy(), rtol=1e-4)
    for k, g in grads.items():
        np.testing.assert_allclose(net.collect_params()[k].grad().asnumpy(), g, rtol=1e-3, atol=1e-4, err_msg=k)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), stats, rtol=1e-4, atol=1e-6)


@needs("Convolution", "Pooling", "BatchNorm")
@pytest.mark.parametrize("hybridize", [False, True])
def test_mxnet_cnn_fixture_loads_by_name_and_matches(hybridize):
    params = os.path.join(FIXTURES, "cnn-0000.params")
    if not os.path.exists(params):
        pytest.skip("shared MXNet fixtures are not beside the checkout")

    class CNN(gluon.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.body = nn.HybridSequential(prefix="")
                self.body.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(),
                              nn.Conv2D(16, 3, strides=2), nn.Activation("relu"), nn.GlobalAvgPool2D(),
                              nn.Flatten(), nn.Dense(10))

        def hybrid_forward(self, F, x):
            return self.body(x)

    io = np.load(os.path.join(FIXTURES, "cnn-io.npz"))
    net = CNN(prefix="cnn_")
    net.collect_params().load(params)
    if hybridize:
        net.hybridize()
    np.testing.assert_allclose(net(nd.array(io["input0"])).asnumpy(), io["output0"], rtol=1e-4, atol=1e-5)
