"""gluon.utils: split_data / split_and_load across devices, clip_global_norm."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon import utils


def test_split_and_load_places_even_slices_on_each_device():
    x = nd.array(np.arange(12).reshape(6, 2))
    parts = utils.split_and_load(x, [mx.cpu(0), mx.cpu(1), mx.cpu(2)])
    assert [p.context for p in parts] == [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    np.testing.assert_array_equal(np.concatenate([p.asnumpy() for p in parts]), x.asnumpy())


def test_split_and_load_accepts_numpy_and_one_device():
    parts = utils.split_and_load(np.ones((4, 3)), [mx.cpu(1)])
    assert len(parts) == 1 and parts[0].context == mx.cpu(1) and parts[0].shape == (4, 3)


def test_uneven_split_needs_even_split_false():
    x = nd.array(np.arange(10))
    with pytest.raises(ValueError, match="evenly split"):
        utils.split_data(x, 3)
    parts = utils.split_data(x, 3, even_split=False)
    assert [p.shape[0] for p in parts] == [3, 3, 4]
    assert len(utils.split_data(nd.array([1.0, 2.0]), 4, even_split=False)) == 2


def test_split_along_another_axis():
    x = nd.array(np.arange(24).reshape(2, 6, 2))
    parts = utils.split_data(x, 2, batch_axis=1)
    assert [p.shape for p in parts] == [(2, 3, 2), (2, 3, 2)]
    np.testing.assert_array_equal(parts[1].asnumpy(), x.asnumpy()[:, 3:])


def test_clip_global_norm_scales_all_arrays_together():
    a, b = nd.array([3.0, 0.0]), nd.array([[0.0, 4.0]])
    norm = utils.clip_global_norm([a, b], 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(a.asnumpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(b.asnumpy(), [[0.0, 0.8]], rtol=1e-6)
    c = nd.array([0.3])
    assert utils.clip_global_norm([c], 1.0) == pytest.approx(0.3)
    np.testing.assert_allclose(c.asnumpy(), [0.3], rtol=1e-6)


def test_clip_global_norm_warns_on_nan():
    with pytest.warns(UserWarning, match="nan or inf"):
        utils.clip_global_norm([nd.array([np.nan])], 1.0)
