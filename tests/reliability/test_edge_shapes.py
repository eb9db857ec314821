"""Edge shapes and bad indices: every layer takes an empty batch eager and hybridized (forward
and backward), losses on empty batches, compiled graphs with an empty dimension, and
take(mode='raise') refusing NaN and out-of-range indices with the op, the value and the range,
eager and compiled (MXNet 1.9's CPU check: a float index is valid in [0, n-1], then truncated)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.compiler import compile_graph
from graphc.gluon import nn, rnn
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType

LAYERS = {
    "dense": (lambda: nn.Dense(4), (16,)),
    "dense_3d_no_flatten": (lambda: nn.Dense(4, flatten=False), (3, 16)),
    "conv2d": (lambda: nn.Conv2D(4, 3, padding=1), (3, 5, 5)),
    "batchnorm": (lambda: nn.BatchNorm(), (3, 5, 5)),
    "maxpool": (lambda: nn.MaxPool2D(), (3, 4, 4)),
    "global_avgpool": (lambda: nn.GlobalAvgPool2D(), (3, 4, 4)),
    "layernorm": (lambda: nn.LayerNorm(), (8,)),
    "groupnorm": (lambda: nn.GroupNorm(num_groups=2), (4, 3)),
    "instancenorm": (lambda: nn.InstanceNorm(), (3, 4)),
    "flatten": (lambda: nn.Flatten(), (3, 2)),
    "dropout": (lambda: nn.Dropout(0.5), (8,)),
    "lstm_ntc": (lambda: rnn.LSTM(4, layout="NTC"), (5, 3)),
    "gru_ntc": (lambda: rnn.GRU(4, layout="NTC"), (5, 3)),
}


def _ready(make, rest):
    net = make()
    net.initialize()
    net(nd.ones((2,) + rest))          # deferred shapes come from a non-empty batch
    return net


@pytest.mark.parametrize("train", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "hybridized"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_takes_an_empty_batch(name, hybridize, train):
    make, rest = LAYERS[name]
    net = _ready(make, rest)
    full = net(nd.ones((3,) + rest))
    if hybridize:
        net.hybridize()
    x = nd.zeros((0,) + rest)
    x.attach_grad()
    if train:
        with autograd.record():
            out = net(x)
        out.backward()
        assert x.grad.shape == x.shape
        for p in net.collect_params().values():
            if p.grad_req != "null":
                g = p.grad().asnumpy()
                assert not g.any(), f"{p.name}: an empty batch gave a nonzero gradient"
    else:
        out = net(x)
    assert out.shape == (0,) + full.shape[1:]
    assert out.dtype == full.dtype


def test_embedding_takes_an_empty_batch():
    for hybridize in (False, True):
        emb = nn.Embedding(10, 4)
        emb.initialize()
        if hybridize:
            emb.hybridize()
        assert emb(nd.zeros((0, 3))).shape == (0, 3, 4)


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "hybridized"])
def test_batchnorm_training_on_an_empty_batch_poisons_the_statistics_as_mxnet(hybridize):
    """MXNet 1.9 (np_shape on): the output is empty and the moving statistics become NaN (the
    batch mean of nothing); inference with the old statistics is unaffected."""
    bn = nn.BatchNorm(in_channels=3)
    bn.initialize()
    if hybridize:
        bn.hybridize()
    with autograd.record():
        out = bn(nd.zeros((0, 3, 2, 2)))
    out.backward()
    assert out.shape == (0, 3, 2, 2)
    assert np.isnan(bn.running_mean.data().asnumpy()).all()
    assert np.isnan(bn.running_var.data().asnumpy()).all()


LOSSES = {
    "l2": (gluon.loss.L2Loss, (0, 4)),
    "l1": (gluon.loss.L1Loss, (0, 4)),
    "softmax_ce": (gluon.loss.SoftmaxCrossEntropyLoss, (0,)),
    "sigmoid_bce": (gluon.loss.SigmoidBinaryCrossEntropyLoss, (0, 4)),
    "huber": (gluon.loss.HuberLoss, (0, 4)),
}


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "hybridized"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_on_an_empty_batch(name, hybridize):
    cls, label_shape = LOSSES[name]
    loss_fn = cls()
    if hybridize:
        loss_fn.hybridize()
    pred = nd.zeros((0, 4))
    pred.attach_grad()
    with autograd.record():
        loss = loss_fn(pred, nd.zeros(label_shape))
    loss.backward()
    assert loss.shape == (0,)
    assert pred.grad.shape == (0, 4)


def _mlp_graph(batch):
    b = GraphBuilder("empty_mlp")
    x = b.var("x", TensorType((batch, 6)))
    w = b.var("w", TensorType((5, 6)), "param")
    F = b.F
    h = F.relu(F.FullyConnected(x, w, no_bias=True, num_hidden=5))
    s = F.softmax(h, axis=1)
    r = F.Reshape(h, shape=(-1, 5))
    t = F.sum(h, axis=1)
    dw = F.dot(x, F.ones_like(F.slice_axis(x, axis=1, begin=0, end=1)), transpose_a=True)   # k = batch
    return b.build([s, r, t, F.transpose(h), dw])


def test_a_compiled_graph_with_an_empty_dimension_runs_and_matches_the_reference():
    """Includes a matrix product over an empty inner dimension (a weight gradient of an empty
    batch): its result is zeros, not whatever the output buffer held."""
    w = np.random.default_rng(0).uniform(-1, 1, (5, 6))
    for batch in (0, 2):
        graph = _mlp_graph(batch)
        prog = compile_graph(graph)
        x = np.ones((batch, 6))
        got = prog([x.astype(np.float32), w.astype(np.float32)])
        want = interpret(graph, [x.astype(np.float32), w.astype(np.float32)])
        assert [g.shape for g in got] == [(batch, 5), (batch, 5), (batch,), (5, batch), (6, 1)]
        for g, e in zip(got, want):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_reshape_reads_spelled_out_empty_shapes_and_infers_minus_one_beside_zero():
    assert nd.zeros((5, 0, 3)).reshape((-1, 3)).shape == (0, 3)
    assert nd.zeros((0, 3, 4)).reshape((0, -1)).shape == (0, 12)
    x = nd.zeros((2, 0, 3))
    x.attach_grad()
    with autograd.record():
        y = nd.Reshape(x, shape=(0, 3))       # code 0 would copy 2: the literal reading fits
    y.backward()
    assert y.shape == (0, 3) and x.grad.shape == (2, 0, 3)
    with pytest.raises(mx.ShapeError):
        nd.zeros((2, 3)).reshape((4, -1))


# -- take(mode='raise') ----------------------------------------------------------------------------
DATA = np.arange(6, dtype=np.float32).reshape(3, 2)


class _Take(gluon.HybridBlock):
    def __init__(self, mode, axis=0):
        super().__init__()
        self.mode, self.axis = mode, axis

    def hybrid_forward(self, F, x, idx):
        return F.take(x, idx, axis=self.axis, mode=self.mode)


def _take(hybridize, idx, mode="raise", dtype="float32"):
    if not hybridize:
        return nd.take(nd.array(DATA), nd.array(idx, dtype=dtype), mode=mode)
    block = _Take(mode)
    block.hybridize()
    return block(nd.array(DATA), nd.array(idx, dtype=dtype))


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("idx, bad", [([0, float("nan")], "nan"), ([0, 3], "3.0"), ([-1, 1], "-1.0"),
                                      ([2.5], "2.5"), ([-0.5], "-0.5"), ([float("inf")], "inf")])
def test_take_raise_refuses_nan_and_out_of_range_indices(hybridize, idx, bad):
    with pytest.raises(IndexError) as info:
        _take(hybridize, idx)
    assert isinstance(info.value, mx.GraphcError)
    msg = str(info.value)
    assert msg.startswith("take") and f"index {bad}" in msg and "0 to 2" in msg and "mode='raise'" in msg


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "compiled"])
def test_take_raise_accepts_in_range_indices_and_truncates_floats_as_mxnet(hybridize):
    np.testing.assert_array_equal(_take(hybridize, [0, 2, 1.7]).asnumpy(), DATA[[0, 2, 1]])
    np.testing.assert_array_equal(_take(hybridize, [2, 0], dtype="int32").asnumpy(), DATA[[2, 0]])
    assert _take(hybridize, np.zeros((0,))).shape == (0, 2)


def test_take_raise_with_integer_indices_names_the_value_and_counts_the_others():
    with pytest.raises(IndexError, match=r"index 7 at position \(1,\).*size 3.*2 more indices"):
        nd.take(nd.array(DATA), nd.array([1, 7, 9, -4], dtype="int32"), mode="raise")


def test_take_raise_gradient_flows_for_valid_indices():
    x = nd.array(DATA)
    x.attach_grad()
    with autograd.record():
        y = nd.take(x, nd.array([2, 2, 0]), mode="raise")
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[1, 1], [0, 0], [2, 2]])


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "compiled"])
def test_clip_and_wrap_keep_mxnet_semantics(hybridize):
    block = None
    if hybridize:
        block = {m: _Take(m) for m in ("clip", "wrap")}
        for b in block.values():
            b.hybridize()

    def take(idx, mode):
        if block:
            return block[mode](nd.array(DATA), nd.array(idx)).asnumpy()
        return nd.take(nd.array(DATA), nd.array(idx), mode=mode).asnumpy()

    np.testing.assert_array_equal(take([3, -1, float("nan")], "clip"), DATA[[2, 0, 0]])
    np.testing.assert_array_equal(take([3, -1], "wrap"), DATA[[0, 2]])


def test_pick_embedding_and_one_hot_out_of_range_as_mxnet():
    data = nd.array(DATA)
    np.testing.assert_array_equal(nd.pick(data, nd.array([0, 5, -1]), axis=1).asnumpy(), [0, 3, 4])
    np.testing.assert_array_equal(nd.pick(data, nd.array([0, 5, -1]), axis=1, mode="wrap").asnumpy(), [0, 3, 5])
    emb = nd.Embedding(nd.array([0, 5, -1]), data, input_dim=3, output_dim=2).asnumpy()
    np.testing.assert_array_equal(emb, DATA[[0, 2, 0]])
    hot = nd.one_hot(nd.array([1, 5, -1, float("nan")]), 3).asnumpy()
    np.testing.assert_array_equal(hot, [[0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
