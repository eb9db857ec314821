"""Gradient-ready hooks (graphc/autograd.py): backward() writes each leaf's .grad and calls its
hooks as soon as the tape walk has visited every reader of the leaf; a record_custom backward
may hand gradients over one by one; grad() writes nothing and calls no hook."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.ops.errors import GraphcError


@pytest.fixture
def hooks():
    added = []

    def add(array, fn):
        autograd._add_grad_ready_hook(array, fn)
        added.append((array, fn))
    yield add
    for array, fn in added:
        autograd._remove_grad_ready_hook(array, fn)


def _mlp(layers=3):
    mx.random.seed(1)
    net = gluon.nn.Sequential()
    for _ in range(layers - 1):
        net.add(gluon.nn.Dense(6, activation="tanh", in_units=6))
    net.add(gluon.nn.Dense(2, in_units=6))
    net.initialize(mx.init.Xavier())
    return net, list(net.collect_params().values())


def _loss(net, seed=0):
    x = nd.array(np.random.RandomState(seed).randn(4, 6).astype(np.float32))
    with autograd.record():
        return (net(x) ** 2).sum()


def test_last_layers_gradients_are_ready_first_and_already_written(hooks):
    net, params = _mlp()
    reference = _loss(net)
    reference.backward()
    want = {p.name: p.grad().asnumpy().copy() for p in params}
    seen = []
    for p in params:
        def hook(arr, p=p):
            # the hook sees the final gradient, already in .grad
            np.testing.assert_array_equal(arr.grad.asnumpy(), want[p.name])
            seen.append(p.name)
        hooks(p.data(), hook)
    for p in params:
        p.grad()[:] = 0
    _loss(net).backward()
    assert sorted(seen) == sorted(want)
    names = [p.name for p in params]
    position = {n: seen.index(n) for n in names}
    # (params: dense0 weight, bias, dense1 ..., dense2 ...): the last layer's before the first's
    last, first = names[-2:], names[:2]
    assert max(position[n] for n in last) < min(position[n] for n in first), seen


def test_hooks_fire_before_backward_ends():
    """The first layer's gradient is not written yet when the last layer's hook runs."""
    net, params = _mlp()
    first = params[0]
    states = []

    def hook(arr):
        states.append(first.data()._fresh_grad)
    first.data()._fresh_grad = False
    autograd._add_grad_ready_hook(params[-1].data(), hook)
    try:
        _loss(net).backward()
    finally:
        autograd._remove_grad_ready_hook(params[-1].data(), hook)
    assert states == [False] and first.data()._fresh_grad


def test_grad_fires_no_hook_and_writes_no_grad(hooks):
    net, params = _mlp(2)
    seen = []
    for p in params:
        hooks(p.data(), lambda arr: seen.append(arr))
        p.grad()[:] = 7
    loss = _loss(net)
    grads = autograd.grad(loss, [p.data() for p in params])
    assert seen == [] and all(np.abs(g.asnumpy()).max() > 0 for g in grads)
    assert all(np.all(p.grad().asnumpy() == 7) for p in params)


def test_grad_req_add_accumulates_and_fires_each_pass(hooks):
    x = nd.array(np.array([1.0, 2.0, 3.0], np.float32))
    x.attach_grad(grad_req="add")
    seen = []
    hooks(x, lambda arr: seen.append(arr.grad.asnumpy().copy()))
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum() + (x * 3).sum()     # two readers: one hook call after both
        y.backward()
    want = 2 * x.asnumpy() + 3
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[0], want)
    np.testing.assert_array_equal(seen[1], 2 * want)


def test_an_iterator_backward_hands_gradients_over_one_by_one(hooks):
    a = nd.array(np.ones(3, np.float32))
    b = nd.array(np.full(3, 2.0, np.float32))
    a.attach_grad()
    b.attach_grad()
    log = []
    hooks(a, lambda arr: log.append("a ready"))
    hooks(b, lambda arr: log.append("b ready"))

    def backward(F, ins, outs, ograds):
        log.append("b computed")
        yield 1, ograds[0] * 2
        log.append("a computed")
        yield 0, ograds[0] * 5
    with autograd.record():
        custom = nd.array(np.zeros(3, np.float32))
        autograd.record_custom([a, b], [custom], backward, "two_step")
    custom.backward(nd.array(np.ones(3, np.float32)))
    # b's hook runs before the node goes on to compute a's gradient
    assert log == ["b computed", "b ready", "a computed", "a ready"], log
    np.testing.assert_array_equal(a.grad.asnumpy(), np.full(3, 5.0))
    np.testing.assert_array_equal(b.grad.asnumpy(), np.full(3, 2.0))


def test_an_iterator_backward_may_not_hand_a_position_over_twice():
    a = nd.array(np.ones(2, np.float32))
    a.attach_grad()
    with autograd.record():
        y = nd.array(np.ones(2, np.float32))

        def backward(F, ins, outs, ograds):
            yield 0, ograds[0]
            yield 0, ograds[0]
        autograd.record_custom([a], [y], backward, "twice")
    with pytest.raises(GraphcError, match="backward of twice: input position 0 handed over twice"):
        y.backward()
