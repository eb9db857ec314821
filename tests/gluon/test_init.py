"""Initializers: statistics of the draws, MXNet's name-suffix dispatch, repeatability."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon import init


def _draw(initializer, shape, name="x_weight"):
    arr = nd.zeros(shape)
    initializer(init.InitDesc(name), arr)
    return arr.asnumpy()


def test_constant_family():
    assert (_draw(init.Zero(), (3, 4)) == 0).all()
    assert (_draw(init.One(), (3, 4)) == 1).all()
    assert (_draw(init.Constant(2.5), (3, 4)) == 2.5).all()


def test_uniform_and_normal_statistics():
    mx.random.seed(1)
    u = _draw(init.Uniform(0.5), (200, 200))
    assert u.min() >= -0.5 and u.max() <= 0.5
    assert abs(u.mean()) < 0.01 and abs(u.std() - 0.5 / np.sqrt(3)) < 0.01
    n = _draw(init.Normal(0.2), (200, 200))
    assert abs(n.mean()) < 0.01 and abs(n.std() - 0.2) < 0.005
    assert abs(_draw(init.Uniform(), (200, 200)).max() - 0.07) < 1e-3  # MXNet default scale


@pytest.mark.parametrize("factor_type,fan", [("avg", (30 * 9 + 20 * 9) / 2), ("in", 30 * 9), ("out", 20 * 9)])
def test_xavier_scale_counts_fan_and_window(factor_type, fan):
    mx.random.seed(2)
    w = _draw(init.Xavier(rnd_type="uniform", factor_type=factor_type, magnitude=3), (20, 30, 3, 3))
    bound = np.sqrt(3 / fan)
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.95 * bound
    g = _draw(init.Xavier(rnd_type="gaussian", factor_type=factor_type, magnitude=2), (200, 300))
    fan2 = {"avg": 250, "in": 300, "out": 200}[factor_type]
    assert abs(g.std() - np.sqrt(2 / fan2)) < 0.002


def test_xavier_refuses_vectors():
    with pytest.raises(ValueError, match="at least 2D"):
        _draw(init.Xavier(), (5,))


def test_msraprelu_is_gaussian_with_he_magnitude():
    mx.random.seed(3)
    w = _draw(init.MSRAPrelu(factor_type="in", slope=0.0), (300, 400))
    assert abs(w.std() - np.sqrt(2.0 / 400)) < 0.002


def test_orthogonal_rows_are_orthonormal():
    w = _draw(init.Orthogonal(scale=1.0), (10, 30))
    np.testing.assert_allclose(w @ w.T, np.eye(10), atol=1e-5)


def test_suffix_dispatch_without_own_init():
    u = init.Uniform(1.0)
    assert (_draw(u, (3,), "fc_bias") == 0).all()
    assert (_draw(u, (3,), "bn_gamma") == 1).all()
    assert (_draw(u, (3,), "bn_beta") == 0).all()
    assert (_draw(u, (3,), "bn_running_var") == 1).all()
    with pytest.raises(ValueError, match="Unknown initialization pattern"):
        _draw(u, (3,), "mystery")


def test_own_init_attribute_wins_over_the_name():
    arr = nd.zeros((3,))
    init.Uniform()(init.InitDesc("fc_bias", {"__init__": init.One()}), arr)
    assert (arr.asnumpy() == 1).all()
    init.Uniform()(init.InitDesc("fc_bias", {"__init__": "zeros"}), arr)
    assert (arr.asnumpy() == 0).all()


def test_create_by_name_and_json_dump():
    assert isinstance(init.create("xavier"), init.Xavier)
    assert isinstance(init.create("zeros"), init.Zero)
    x = init.create(init.Xavier(magnitude=2).dumps())
    assert isinstance(x, init.Xavier) and x.magnitude == 2
    assert mx.init.Normal is init.Normal


def test_seed_makes_initialization_repeatable():
    mx.random.seed(42)
    a = _draw(init.Xavier(), (5, 5))
    mx.random.seed(42)
    b = _draw(init.Xavier(), (5, 5))
    np.testing.assert_array_equal(a, b)


def test_lstmbias_sets_the_forget_gate_quarter():
    b = _draw(init.LSTMBias(forget_bias=1.0), (8,))
    assert b.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


def test_mixed_picks_the_first_matching_pattern():
    m = init.Mixed(["fc1_.*", ".*"], [init.Constant(3.0), init.One()])
    a, b = nd.zeros((2,)), nd.zeros((2,))
    m(init.InitDesc("fc1_weight"), a)
    m(init.InitDesc("fc2_weight"), b)
    assert a.asnumpy().tolist() == [3, 3] and b.asnumpy().tolist() == [1, 1]
