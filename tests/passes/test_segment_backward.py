"""The segmented compiled backward (passes/segment_backward.py, run by gluon/cached_op.py when a
gradient-ready hook watches a parameter): the same gradients as the one-program backward and
the numpy interpreter, handed over segment by segment, the last layers' first."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.ops.graph import verify
from graphc.passes.segment_backward import segment_backward


def _mlp():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(16, activation="relu", in_units=12), gluon.nn.Dense(16, activation="tanh", in_units=16),
            gluon.nn.Dense(5, in_units=16))
    return net, (8, 12)


def _cnn():
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, padding=1, in_channels=2), gluon.nn.BatchNorm(in_channels=4),
            gluon.nn.Activation("relu"), gluon.nn.Conv2D(6, 3, strides=2, in_channels=4),
            gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(5, in_units=6))
    return net, (4, 2, 7, 7)


def _grads(make, backend, hooked, monkeypatch, segments="3", static=False):
    """(gradients by parameter position, the order hooks saw them) after one hybridized step."""
    monkeypatch.setenv("GRAPHC_BACKEND", backend)
    monkeypatch.setenv("GRAPHC_DIST_BACKWARD_SEGMENTS", segments)
    mx.random.seed(5)
    net, shape = make()
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=static, static_shape=static)
    rng = np.random.RandomState(0)
    x = nd.array(rng.randn(*shape).astype(np.float32))
    y = nd.array(rng.randint(0, 5, shape[0]).astype(np.float32))
    params = list(net.collect_params().values())
    net(x)      # shapes known
    seen = []
    hooks = []
    if hooked:
        for i, p in enumerate(params):
            def hook(arr, i=i):
                seen.append(i)
                np.testing.assert_array_equal(arr.grad.asnumpy(), params[i].grad().asnumpy())
            hooks.append((p.data(), hook))
            autograd._add_grad_ready_hook(p.data(), hook)
    try:
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
    finally:
        for arr, hook in hooks:
            autograd._remove_grad_ready_hook(arr, hook)
    trained = [i for i, p in enumerate(params) if p.grad_req != "null"]
    return {i: params[i].grad().asnumpy() for i in trained}, seen, net


@pytest.mark.parametrize("static", [False, True], ids=["fresh-outputs", "static_alloc"])
@pytest.mark.parametrize("make", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_segmented_backward_equals_one_program_and_the_interpreter(make, static, monkeypatch):
    whole, _, _ = _grads(make, "llvm", False, monkeypatch, static=static)
    cut, order, net = _grads(make, "llvm", True, monkeypatch, static=static)
    reference, _, _ = _grads(make, "numpy", False, monkeypatch)
    cached = net._cached_op.last
    segmented = [v for k, v in cached.train.items() if k[0] == "segments"]
    assert segmented and segmented[0] is not None and len(segmented[0][0]) > 1, "the backward was not segmented"
    assert sorted(order) == sorted(whole), f"hooks fired for {order}, trained parameters are {sorted(whole)}"
    for i in whole:
        np.testing.assert_allclose(cut[i], whole[i], rtol=1e-5, atol=1e-6, err_msg=f"parameter {i}")
        np.testing.assert_allclose(cut[i], reference[i], rtol=1e-4, atol=1e-5, err_msg=f"parameter {i}")
        assert np.abs(whole[i]).max() > 0, f"parameter {i} has a zero gradient: the test proves nothing"
    # the last layer's weight is handed over before the first layer's
    assert order.index(max(whole)) < order.index(0), order


def test_no_hook_no_segments(monkeypatch):
    _, seen, net = _grads(_mlp, "llvm", False, monkeypatch)
    assert not seen
    assert not [k for k in net._cached_op.last.train if k[0] == "segments"]


def test_segments_read_only_earlier_segments_and_cover_every_node(monkeypatch):
    from graphc.passes.autodiff import differentiate, split_forward_backward
    from graphc.passes.pipeline import SIMPLIFY
    _, _, net = _grads(_mlp, "llvm", False, monkeypatch)
    entry = net._cached_op.last
    graph = entry.graph
    gg = differentiate(graph, [n for n in graph.inputs[1:]], num_heads=entry.n_visible)
    bwd = SIMPLIFY(split_forward_backward(gg, graph.inputs).backward)
    for k in (1, 2, 3, 4, 10):
        segments = segment_backward(bwd, k)
        assert 1 <= len(segments) <= k
        assert sorted(i for s in segments for i in s.grads) == list(range(len(bwd.outputs)))
        ops = sum(len(s.graph.op_nodes()) for s in segments)
        assert ops == len(bwd.op_nodes()), f"k={k}: {ops} operator nodes in the segments, {len(bwd.op_nodes())} uncut"
        for s, seg in enumerate(segments):
            verify(seg.graph)
            assert all(src[0] == "input" or src[1] < s for src in seg.sources), (k, s, seg.sources)
    assert len(segment_backward(bwd, 3)) >= 2
