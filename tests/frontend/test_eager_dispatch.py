"""Eager dispatch remembers each signature's type inference (graphc/ndarray/ndarray.py _infer):
a remembered signature gives the same types, and a bad call fails every time, never cached."""
import numpy as np
import pytest

import graphc as mx
from graphc.ndarray import ndarray as ndmod
from graphc.ops.errors import ShapeError


def test_same_signature_infers_once_and_types_follow_inputs():
    ndmod._INFERRED.clear()
    a32, b32 = mx.nd.ones((2, 3)), mx.nd.ones((3, 4))
    a64, b64 = mx.nd.ones((2, 3), dtype="float64"), mx.nd.ones((3, 4), dtype="float64")
    for _ in range(3):
        out = mx.nd.dot(a32, b32)
        assert out.shape == (2, 4) and out.dtype == np.float32
        out = mx.nd.dot(a64, b64)
        assert out.shape == (2, 4) and out.dtype == np.float64
    keys = [k for k in ndmod._INFERRED if k[0] == "dot"]
    assert len(keys) == 2, keys
    np.testing.assert_allclose(mx.nd.dot(a32, b32, transpose_b=False).asnumpy(), np.full((2, 4), 3.0))


def test_bad_call_fails_every_time():
    a, b = mx.nd.ones((2, 3)), mx.nd.ones((2, 3))
    for _ in range(2):
        with pytest.raises(ShapeError, match=r"dot.*\(2, 3\).*3 columns.*2 rows"):
            mx.nd.dot(a, b)
    assert mx.nd.dot(a, b, transpose_b=True).shape == (2, 2)

