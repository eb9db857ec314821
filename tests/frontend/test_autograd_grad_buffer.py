"""autograd.grad_buffer: inside backward(), a node may write a leaf's gradient straight into the
leaf's .grad when backward would overwrite it whole anyway, and nowhere else (grad(), 'add',
a leaf read twice or a head, create_graph); two threads' backward of one leaf land one
gradient whole."""
import threading
import time

import numpy as np

from graphc import autograd, nd


def _scaled(x, factor, asked):
    """y = factor * x on the tape, with a backward that writes into the offered buffer."""
    y = nd.array(x.asnumpy() * factor)

    def backward(F, ins, outs, ograds):
        buf = autograd.grad_buffer(ins[0])
        asked.append(buf)
        value = ograds[0].asnumpy() * factor
        if buf is None:
            return [nd.array(value)]
        buf._data[...] = value
        return [buf]
    autograd.record_custom([x], [y], backward, "scaled")
    return y


def _leaf(grad_req="write"):
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    x.attach_grad(grad_req)
    return x


def test_backward_offers_the_grad_array_it_overwrites_and_copies_nothing():
    x, asked = _leaf(), []
    grad, data = x.grad, x.grad._data
    with autograd.record():
        y = _scaled(x, 3.0, asked)
    y.backward()
    assert asked == [grad] and x.grad is grad and x.grad._data is data
    np.testing.assert_array_equal(x.grad.asnumpy(), np.full((2, 3), 3.0, np.float32))


def test_no_buffer_for_grad_add_a_leaf_read_twice_or_a_head_or_create_graph():
    x, asked = _leaf(), []
    with autograd.record():
        y = _scaled(x, 2.0, asked)
    got = autograd.grad(y, [x])[0]
    assert asked == [None] and not x.grad.asnumpy().any()
    np.testing.assert_array_equal(got.asnumpy(), np.full((2, 3), 2.0, np.float32))

    x, asked = _leaf("add"), []
    for _ in range(2):
        with autograd.record():
            y = _scaled(x, 2.0, asked)
        y.backward()
    assert asked == [None, None]
    np.testing.assert_array_equal(x.grad.asnumpy(), np.full((2, 3), 4.0, np.float32))

    x, asked = _leaf(), []
    with autograd.record():
        y = _scaled(x, 2.0, asked) + _scaled(x, 5.0, asked)
    y.backward()
    assert asked == [None, None]
    np.testing.assert_array_equal(x.grad.asnumpy(), np.full((2, 3), 7.0, np.float32))

    x, asked = _leaf(), []
    with autograd.record():
        y = _scaled(x, 2.0, asked)
    autograd.backward([y, x])            # x is also a head: its gradient is a sum
    assert asked == [None]
    np.testing.assert_array_equal(x.grad.asnumpy(), np.full((2, 3), 3.0, np.float32))

    x, asked = _leaf(), []
    with autograd.record():
        y = _scaled(x, 2.0, asked)
    y.backward(retain_graph=True)
    assert asked == [x.grad]
    autograd.backward([y], create_graph=True, retain_graph=True)
    assert asked[1] is None


def test_two_threads_backward_of_one_leaf_lands_one_gradient_whole():
    """Thread A's node writes into the offered .grad and is held there; thread B's backward of
    the same leaf is offered nothing and copies its gradient only after A's walk ended."""
    x = _leaf()
    a_writing, go, b_returned = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def run(factor, hold):
        try:
            with autograd.record():
                y = nd.array(x.asnumpy() * factor)

            def backward(F, ins, outs, ograds):
                buf = autograd.grad_buffer(ins[0])
                if hold:
                    assert buf is x.grad
                    buf._data[...] = factor
                    a_writing.set()
                    assert go.wait(10)
                    return [buf]
                assert buf is None               # claimed by A
                b_returned.set()
                return [nd.array(np.full((2, 3), factor, np.float32))]
            with autograd.record():
                autograd.record_custom([x], [y], backward, f"scaled{factor}")
            y.backward()
        except BaseException as exc:             # noqa: BLE001 - reported by the test thread
            errors.append(exc)
    a = threading.Thread(target=run, args=(1.0, True))
    a.start()
    assert a_writing.wait(10)
    b = threading.Thread(target=run, args=(2.0, False))
    b.start()
    assert b_returned.wait(10)
    time.sleep(0.2)
    assert b.is_alive()                          # waits for A's walk before writing .grad
    go.set()
    a.join(10)
    b.join(10)
    assert not errors, errors
    np.testing.assert_array_equal(x.grad.asnumpy(), np.full((2, 3), 2.0, np.float32))
