"""MXNet 1.x: basic indexing with a contiguous result (x[i], x[a:b], x[i, j] on leading axes)
shares x's memory (writes through it reach x); a strided result copies; while recording, the slice stays an operator with its gradient.
Expected values recorded from MXNet 1.9.1."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd


def test_integer_and_unit_step_slices_are_views():
    a = nd.zeros((3, 4))
    b = a[1]
    b[:] = 5
    c = a[0:2]
    c[:] += 1
    np.testing.assert_array_equal(a.asnumpy(), [[1] * 4, [6] * 4, [0] * 4])
    a[-1][:] = 2
    assert a.asnumpy()[2].tolist() == [2] * 4


def test_a_vector_element_is_a_one_element_view():
    v = nd.zeros(3)
    w = v[1]
    assert w.shape == (1,)
    w[:] = 7
    assert v.asnumpy().tolist() == [0, 7, 0]


def test_other_indexing_copies():
    a = nd.zeros((3, 4))
    d = a[:, 1]
    d[:] = 9
    e = a[::2]
    e[:] = 3
    assert not a.asnumpy().any()


def test_contiguous_results_of_tuples_and_steps_are_views_too():
    a = nd.zeros((3, 4, 2))
    a[1, 2][:] = 3
    a[1:3:2][:] += 1          # one row: contiguous
    a[0:1, :][:] = -1
    got = a.asnumpy()
    assert got.sum() == 6 + 8 - 8 and got[1, 2].tolist() == [4, 4] and (got[0] == -1).all()


def test_out_of_range_index_raises():
    with pytest.raises(IndexError, match="out of bounds"):
        nd.zeros((3, 4))[3]


def test_recording_keeps_the_gradient_of_a_row():
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    x.attach_grad()
    with autograd.record():
        y = (x[1] * 2).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[0, 0, 0], [2, 2, 2]])


def test_a_view_stays_on_the_arrays_context():
    a = nd.zeros((2, 2), ctx=mx.cpu(1))
    assert a[0].context == mx.cpu(1)
