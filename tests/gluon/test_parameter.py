"""Parameter, Constant, ParameterDict (MXNet 1.x semantics)."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import Parameter, ParameterDict, Constant


def test_initialize_data_grad_and_contexts():
    p = Parameter("w", shape=(2, 3), init=mx.init.One())
    p.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    assert p.list_ctx() == [mx.cpu(0), mx.cpu(1)]
    assert p.data(mx.cpu(1)).context == mx.cpu(1)
    assert len(p.list_data()) == 2 and len(p.list_grad()) == 2
    np.testing.assert_array_equal(p.data(mx.cpu(0)).asnumpy(), np.ones((2, 3)))
    assert p.grad(mx.cpu(0)).asnumpy().sum() == 0
    with pytest.raises(RuntimeError, match="not initialized on context"):
        p.data(mx.cpu(2))


def test_initialize_twice_warns_and_force_reinit_redraws():
    p = Parameter("w", shape=(3,))
    p.initialize(init=mx.init.Zero())
    with pytest.warns(UserWarning, match="already initialized"):
        p.initialize(init=mx.init.One())
    assert p.data().asnumpy().sum() == 0
    p.initialize(init=mx.init.One(), force_reinit=True)
    assert p.data().asnumpy().sum() == 3


def test_own_init_beats_the_default():
    pd = ParameterDict("net_")
    a = pd.get("a", shape=(2,), init="ones")
    b = pd.get("b", shape=(2,))
    pd.initialize(mx.init.Constant(5.0))
    assert a.data().asnumpy().tolist() == [1, 1]
    assert b.data().asnumpy().tolist() == [5, 5]


def test_unknown_shape_without_deferral_is_refused():
    p = Parameter("w", shape=(0, 3))
    with pytest.raises(ValueError, match="invalid shape"):
        p.initialize()


def test_deferred_init_finishes_when_shape_is_known():
    p = Parameter("w", shape=(4, 0), allow_deferred_init=True, init=mx.init.One())
    p.initialize()
    with pytest.raises(gluon.DeferredInitializationError):
        p.data()
    p.shape = (4, 7)
    p._finish_deferred_init()
    assert p.data().shape == (4, 7)


def test_shape_setter_fills_unknown_dims_only():
    p = Parameter("w", shape=(4, 0))
    p.shape = (4, 3)
    assert p.shape == (4, 3)
    with pytest.raises(ValueError, match="incompatible"):
        p.shape = (5, 3)


def test_grad_req_attaches_and_detaches_gradients():
    p = Parameter("w", shape=(2,), init=mx.init.One())
    p.initialize()
    x = nd.array([3.0, 4.0])
    with autograd.record():
        y = (p.data() * x).sum()
    y.backward()
    np.testing.assert_array_equal(p.grad().asnumpy(), [3.0, 4.0])
    p.grad_req = "add"
    for _ in range(2):
        with autograd.record():
            y = (p.data() * x).sum()
        y.backward()
    # switching grad_req re-creates zeroed gradients, as MXNet
    np.testing.assert_array_equal(p.grad().asnumpy(), [6.0, 8.0])
    p.zero_grad()
    assert p.grad().asnumpy().sum() == 0
    p.grad_req = "null"
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        p.grad()


def test_set_data_keeps_the_array_identity():
    p = Parameter("w", shape=(2,))
    p.initialize()
    arr = p.data()
    p.set_data(nd.array([7.0, 8.0]))
    assert p.data() is arr
    assert arr.asnumpy().tolist() == [7.0, 8.0]


def test_reset_ctx_and_cast():
    p = Parameter("w", shape=(2,), init=mx.init.One())
    p.initialize(ctx=mx.cpu(0))
    p.reset_ctx([mx.cpu(1)])
    assert p.list_ctx() == [mx.cpu(1)]
    p.cast("float64")
    assert p.data().dtype == np.float64 and p.grad().dtype == np.float64


def test_constant_never_trains():
    c = Constant("c", nd.array([[1.0, 2.0]]))
    assert c.grad_req == "null"
    c.initialize()
    np.testing.assert_array_equal(c.data().asnumpy(), [[1.0, 2.0]])
    with pytest.warns(UserWarning, match="does not support grad_req"):
        c.grad_req = "write"
    assert c.grad_req == "null"


def test_parameter_dict_get_shares_and_merges_shapes():
    pd = ParameterDict("blk_")
    w = pd.get("weight", shape=(3, 0))
    assert w.name == "blk_weight"
    assert pd.get("weight", shape=(3, 5)) is w
    assert w.shape == (3, 5)
    with pytest.raises(ValueError, match="does not match"):
        pd.get("weight", shape=(4, 5))
    shared = ParameterDict("blk_", shared=pd)
    assert shared.get("weight") is w


def test_parameter_dict_update_refuses_different_parameters_with_one_name():
    a, b = ParameterDict("p_"), ParameterDict("p_")
    a.get("w", shape=(1,))
    b.get("w", shape=(1,))
    with pytest.raises(ValueError, match="same name"):
        a.update(b)


def test_parameter_dict_setattr_select_and_get_constant():
    pd = ParameterDict("m_")
    pd.get("weight", shape=(1,))
    pd.get("bias", shape=(1,))
    pd.setattr("lr_mult", 0.5)
    assert all(p.lr_mult == 0.5 for p in pd.values())
    assert list(pd.select(".*bias").keys()) == ["m_bias"]
    c = pd.get_constant("k", nd.array([1.0]))
    assert isinstance(c, Constant) and pd.get_constant("k") is c
    with pytest.raises(KeyError):
        pd.get_constant("missing")


def test_parameter_dict_save_load_round_trip(tmp_path):
    pd = ParameterDict("m_")
    pd.get("weight", shape=(2, 2), init=mx.init.Normal(1.0))
    pd.initialize()
    f = str(tmp_path / "pd.params")
    pd.save(f, strip_prefix="m_")
    pd2 = ParameterDict("m_")
    pd2.get("weight", shape=(2, 0), allow_deferred_init=True)
    pd2.load(f, restore_prefix="m_")
    np.testing.assert_array_equal(pd2["m_weight"].data().asnumpy(), pd["m_weight"].data().asnumpy())
    with pytest.raises(ValueError, match="does not start with"):
        pd.save(f, strip_prefix="x_")


def test_dtype_mismatch_on_load_needs_cast_dtype():
    p = Parameter("w", shape=(2,), dtype="float32")
    with pytest.raises(ValueError, match="dtype incompatible"):
        p._load_init(np.zeros(2, np.float64), None)
    p._load_init(np.ones(2, np.float64), None, cast_dtype=True)
    assert p.data().dtype == np.float32


def test_repr():
    assert repr(Parameter("w", shape=(2, 3))) == "Parameter w (shape=(2, 3), dtype=float32)"


def test_var_outside_a_trace_is_a_typed_symbol_with_hints():
    p = Parameter("fc_weight", shape=(3, 2), lr_mult=2.0)
    v = p.var()
    assert v.name == "fc_weight" and tuple(v.shape) == (3, 2)
    assert v.attr("__lr_mult__") == "2.0"
    assert p.var() is v
