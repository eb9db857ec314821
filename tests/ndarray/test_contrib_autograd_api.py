"""mx.contrib.autograd, MXNet 1.x's first autograd API: one switch for recording and training
(train_section / test_section / set_is_training), mark_variables, backward with per-head
gradients (None = ones), and grad_and_loss / grad over a function's array arguments."""
import numpy as np
import pytest

import graphc as mx
import graphc.contrib
from graphc.contrib import autograd as cag


def test_sections_switch_recording_and_training_together():
    assert not mx.autograd.is_recording()
    with cag.train_section():
        assert mx.autograd.is_recording() and mx.autograd.is_training()
        with cag.test_section():
            assert not mx.autograd.is_recording() and not mx.autograd.is_training()
        assert mx.autograd.is_recording()
    assert not mx.autograd.is_recording() and not mx.autograd.is_training()
    previous = cag.set_is_training(True)
    try:
        assert previous is False and mx.autograd.is_recording() and mx.autograd.is_training()
    finally:
        cag.set_is_training(False)


def test_backward_with_per_head_gradients():
    x = mx.nd.ones((3, 2))
    dx = mx.nd.zeros_like(x)
    cag.mark_variables([x], [dx])
    with cag.train_section():
        a, b, c = mx.nd.split(x * 2, axis=0, num_outputs=3, squeeze_axis=True)
        cag.backward([a, b, c], [None, mx.nd.array([1, 2]), mx.nd.array([3, 4])])
    np.testing.assert_array_equal(dx.asnumpy(), [[2, 2], [2, 4], [6, 8]])


def test_grad_and_loss_and_argnum():
    a, b = mx.nd.array([[1.0, 2.0]]), mx.nd.array([[3.0, 5.0]])
    grads, loss = cag.grad_and_loss(lambda x, y: x * y + x)(a, b)
    np.testing.assert_array_equal(loss.asnumpy(), [[4.0, 12.0]])
    np.testing.assert_array_equal(grads[0].asnumpy(), [[4.0, 6.0]])
    np.testing.assert_array_equal(grads[1].asnumpy(), [[1.0, 2.0]])
    only_b = cag.grad(lambda x, y, scale: x * y * scale, argnum=[1])(a, b, 3.0)
    assert len(only_b) == 1
    np.testing.assert_array_equal(only_b[0].asnumpy(), [[3.0, 6.0]])
    with pytest.raises(TypeError, match="argument 2 is float"):
        cag.grad(lambda x, y, s: x * s)(a, b, 3.0)


def test_namespaces():
    assert mx.contrib.nd.SyncBatchNorm is mx.nd.contrib.SyncBatchNorm or callable(mx.contrib.nd.SyncBatchNorm)
    assert mx.contrib.sym is mx.sym.contrib
