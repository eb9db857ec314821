"""NDArray: creation, dtypes, broadcasting operators, indexing, conversions, errors."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int64", "uint8", "bool"])
def test_creation_keeps_dtype_and_context(dtype):
    a = nd.array([[1, 0], [3, 4]], dtype=dtype)
    assert a.dtype == np.dtype(dtype).type and a.shape == (2, 2) and a.context == mx.cpu()
    assert nd.zeros((2, 3), dtype=dtype).asnumpy().dtype == np.dtype(dtype)
    assert nd.ones(4, dtype=dtype).shape == (4,)


def test_array_defaults_to_float32_like_mxnet():
    assert nd.array([1, 2, 3]).dtype == np.float32
    assert nd.array(np.arange(3, dtype=np.float64)).dtype == np.float32


def test_creation_functions():
    np.testing.assert_array_equal(nd.arange(0, 6, 2).asnumpy(), [0, 2, 4])
    np.testing.assert_array_equal(nd.full((2,), 7).asnumpy(), [7, 7])
    assert nd.empty((3, 1)).shape == (3, 1)
    np.testing.assert_array_equal(nd.arange(3, repeat=2).asnumpy(), [0, 0, 1, 1, 2, 2])


def test_seeded_random_is_repeatable():
    mx.random.seed(42)
    a = nd.random.uniform(-1, 1, shape=(3, 4)).asnumpy()
    b = nd.random.normal(0, 1, shape=(5,)).asnumpy()
    mx.random.seed(42)
    np.testing.assert_array_equal(nd.random.uniform(-1, 1, shape=(3, 4)).asnumpy(), a)
    np.testing.assert_array_equal(nd.random.normal(0, 1, shape=(5,)).asnumpy(), b)
    assert a.min() >= -1 and a.max() < 1


def test_python_operators_broadcast_like_numpy():
    x = np.random.rand(3, 1).astype(np.float32)
    y = np.random.rand(1, 4).astype(np.float32) + 0.5
    a, b = nd.array(x), nd.array(y)
    for got, want in [(a + b, x + y), (a - b, x - y), (a * b, x * y), (a / b, x / y), (a ** 2, x ** 2),
                      (2 - a, 2 - x), (1 / b, 1 / y), (-a, -x), (a > 0.5, (x > 0.5).astype(np.float32)),
                      (a == a, np.ones_like(x)), (abs(a - 1), np.abs(x - 1))]:
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6)


def test_reading_and_writing_slices():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    a = nd.array(x)
    np.testing.assert_array_equal(a[1].asnumpy(), x[1])
    np.testing.assert_array_equal(a[:, 1:3, ::2].asnumpy(), x[:, 1:3, ::2])
    np.testing.assert_array_equal(a[0, -1].asnumpy(), x[0, -1])
    np.testing.assert_array_equal(a[None, ..., 1].asnumpy(), x[None, ..., 1])
    np.testing.assert_array_equal(a[nd.array([1, 0])].asnumpy(), x[[1, 0]])
    a[0, 1:] = 5
    x[0, 1:] = 5
    a[1] = nd.ones((3, 4))
    x[1] = 1
    np.testing.assert_array_equal(a.asnumpy(), x)


def test_conversions():
    a = nd.array([[1.5, 2.5]])
    assert a.astype("int32").dtype == np.int32
    assert nd.array([3.0]).asscalar() == 3.0
    b = nd.zeros((1, 2))
    a.copyto(b)
    np.testing.assert_array_equal(b.asnumpy(), a.asnumpy())
    assert a.as_in_context(mx.cpu(0)) is a
    assert (a.size, a.ndim) == (2, 2)
    a.wait_to_read()
    nd.waitall()
    with pytest.raises(ValueError, match="shape"):
        nd.array([1, 2]).asscalar()


def test_operator_functions_and_fluent_methods():
    x = np.random.rand(2, 3).astype(np.float32)
    a = nd.array(x)
    np.testing.assert_allclose(nd.exp(a).asnumpy(), np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(a.sum(axis=1).asnumpy(), x.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(a.reshape((3, 2)).asnumpy(), x.reshape(3, 2))
    np.testing.assert_allclose(a.reshape(-1).asnumpy(), x.reshape(-1))
    np.testing.assert_allclose(nd.dot(a, a.T).asnumpy(), x @ x.T, rtol=1e-5)
    np.testing.assert_allclose(nd.softmax(a).asnumpy().sum(axis=-1), np.ones(2), rtol=1e-6)


def test_shape_errors_name_the_operator_and_shapes():
    with pytest.raises(mx.ShapeError, match=r"broadcast_add.*\(2, 3\).*\(4,\)"):
        nd.ones((2, 3)) + nd.ones((4,))
    with pytest.raises(mx.ShapeError, match=r"dot.*\(2, 3\).*\(2, 3\)"):
        nd.dot(nd.ones((2, 3)), nd.ones((2, 3)))


def test_ndarrays_pickle_with_values_and_dtype():
    # MXNet pickles NDArrays (multiprocessing, DataLoader workers); see tests/compat for more
    import pickle
    got = pickle.loads(pickle.dumps(nd.array([[1, 2]], dtype="int32")))
    assert got.dtype == np.int32 and got.asnumpy().tolist() == [[1, 2]]


def test_save_and_load_lists_and_dicts(tmp_path):
    a, b = nd.array([1, 2]), nd.array([[3.0]])
    nd.save(str(tmp_path / "l.params"), [a, b])
    got = nd.load(str(tmp_path / "l.params"))
    assert isinstance(got, list) and len(got) == 2
    np.testing.assert_array_equal(got[1].asnumpy(), b.asnumpy())
    nd.save(str(tmp_path / "d.params"), {"w": a})
    assert list(nd.load(str(tmp_path / "d.params"))) == ["w"]


# -- in-place arithmetic ---------------------------------------------------------------------

def test_inplace_add_writes_into_the_same_memory_so_aliases_see_it():
    a = nd.ones((2, 3))
    alias = a
    view_source = a.asnumpy()  # a copy, unchanged
    a += 2
    a *= nd.array([1.0, 2.0, 3.0])
    a -= 1
    a /= 2
    assert alias is a
    np.testing.assert_allclose(alias.asnumpy(), (view_source + 2) * [1, 2, 3] / 1 / 1 * 0.5 - 0.5)


def test_inplace_op_refuses_to_grow_the_left_operand():
    b = nd.ones((3,))
    with pytest.raises(Exception, match=r"in-place add.*\(2, 3\).*\(3,\)"):
        b += nd.ones((2, 3))
    np.testing.assert_array_equal(b.asnumpy(), np.ones(3))


def test_inplace_ops_while_recording_keep_the_gradient_history():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = x * 2
        y += x          # y = 3x
        y *= x          # y = 3x^2
        z = y.sum()
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 6 * x.asnumpy())


def test_inplace_op_on_a_leaf_that_needs_its_gradient_is_refused_while_recording():
    x = nd.ones((2,))
    x.attach_grad()
    with autograd.record():
        with pytest.raises(ValueError, match="attach_grad"):
            x += 1
