"""nd.<op>(...) decided once per call shape and the parse cache (graphc/ndarray/call_cache.py): a
call whose arguments differ in any way that matters (another attribute value or type, an input
given by keyword, a None input, out=, a list of arrays, a number where an array was) must give
what the generic split gives, never the result of an earlier call shape."""
import numpy as np
import pytest

import graphc as mx
from graphc.ndarray import ndarray as ndmod
from graphc.ops.namespace import split_call

nd = mx.nd


def _generic(op_name, *args, **kwargs):
    """The call through the generic path only (what nd.<op> did before the cache)."""
    from graphc.ops.registry import get_op
    op = get_op(op_name)
    inputs, attrs, node = split_call(op, args, kwargs, lambda a: isinstance(a, ndmod.NDArray))
    return ndmod.invoke(op.name, inputs, attrs, node)


def _same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x.asnumpy(), y.asnumpy())


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {"x": nd.array(rng.standard_normal((4, 6))), "w": nd.array(rng.standard_normal((3, 6))),
            "b": nd.array(rng.standard_normal(3)), "v": nd.array(rng.standard_normal((4, 6)))}


def test_call_shapes_agree_with_generic_split(arrays):
    x, w, b, v = arrays["x"], arrays["w"], arrays["b"], arrays["v"]
    calls = [
        ("FullyConnected", (x, w, b), {"num_hidden": 3}),
        ("FullyConnected", (x, w, None), {"num_hidden": 3, "no_bias": True, "flatten": True}),   # Dense's
        ("FullyConnected", (x, w), {"bias": b, "num_hidden": 3, "name": "fc"}),
        ("FullyConnected", (x,), {"weight": w, "bias": b, "num_hidden": 3, "flatten": False}),
        ("sum", (x,), {"axis": 1}),
        ("sum", (x,), {"axis": 1, "keepdims": True}),
        ("sum", (x,), {"axis": (0, 1)}),
        ("sum", (x, 0), {}),                       # an attribute given by position
        ("sum", (x, 1), {}),
        ("clip", (x, -0.5, 0.5), {}),
        ("clip", (x,), {"a_min": -1, "a_max": 1}),
        ("clip", (x,), {"a_min": -1.0, "a_max": True}),     # True parses like 1 for a float
        ("broadcast_add", (x, v), {}),
        ("Cast", (x,), {"dtype": "float16"}),
        ("Cast", (x,), {"dtype": np.float64}),
        ("Cast", (x,), {"dtype": np.dtype("int32")}),
        ("concat", (x, v), {"dim": 0}),
        ("concat", (x, v, x), {"dim": 1}),
        ("transpose", (x,), {"axes": (1, 0)}),
    ]
    for _ in range(2):                  # the planning call, then the cached plan
        for name, args, kwargs in calls:
            _same(getattr(nd, name)(*args, **kwargs), _generic(name, *args, **kwargs))


def test_out_and_list_arguments_take_the_generic_path(arrays):
    x, v = arrays["x"], arrays["v"]
    for _ in range(2):
        out = nd.zeros((4, 6))
        got = nd.broadcast_add(x, v, out=out)
        assert got is out
        np.testing.assert_array_equal(out.asnumpy(), x.asnumpy() + v.asnumpy())
        _same(nd.concat(*[x, v], dim=0), _generic("concat", x, v, dim=0))


def test_errors_still_raise_with_the_operator_name(arrays):
    x, w = arrays["x"], arrays["w"]
    for _ in range(2):
        with pytest.raises(Exception, match="FullyConnected"):
            nd.FullyConnected(x, w, num_hidden=5, no_bias=True)     # weight has 3 rows
        with pytest.raises(Exception, match="sum"):
            nd.sum(x, axis=5)
        # a None that fills an attribute by position: the same refusal as the generic split's
        with pytest.raises(Exception, match="flatten=None"):
            nd.FullyConnected(x, w, None, num_hidden=3, no_bias=True)


def test_parse_cache_keys_on_value_types():
    """(3, 1) and (3, True) are equal tuples, but a shape refuses the bool: the cached parse of
    the first must not answer for the second."""
    a = nd.array(np.arange(6, dtype=np.float32))
    for _ in range(2):
        assert nd.reshape(a, shape=(3, 2)).shape == (3, 2)
        assert nd.Reshape(a, shape=(6, 1)).shape == (6, 1)
        with pytest.raises(Exception, match="not a valid shape"):
            nd.Reshape(a, shape=(6, True))


def test_mixed_number_and_array_positions(arrays):
    """The same op called with an array, then a number, in one position."""
    x, v = arrays["x"], arrays["v"]
    _same(nd.maximum(x, v), _generic("broadcast_maximum", x, v))
    got = nd.maximum(x, 0.25)
    np.testing.assert_array_equal(got.asnumpy(), np.maximum(x.asnumpy(), np.float32(0.25)))
