"""graphc.sym: building graphs by hand as MXNet users do, the Symbol methods, JSON round trip."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd, sym


def mlp_symbol():
    data = sym.var("data")
    fc1 = sym.FullyConnected(data, num_hidden=8, name="fc1")
    act = sym.Activation(fc1, act_type="relu", name="relu1")
    return sym.FullyConnected(act, num_hidden=3, name="fc2")


def test_missing_inputs_become_named_variables():
    out = mlp_symbol()
    assert out.list_arguments() == ["data", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]
    assert out.list_outputs() == ["fc2_output"]
    assert out.list_auxiliary_states() == []


def test_infer_shape_and_type():
    data = sym.var("data")
    w = sym.var("w")
    out = sym.dot(data, w, name="d")
    args, outs, aux = out.infer_shape(data=(2, 5), w=(5, 7))
    assert args == [(2, 5), (5, 7)] and outs == [(2, 7)] and aux == []
    typed = sym.dot(sym.var("data", shape=(2, 5)), sym.var("w", shape=(5, 7)))
    _, out_types, _ = typed.infer_type(data=np.float64, w=np.float64)
    assert out_types == [np.float64]


def test_eval_and_operators():
    a, b = sym.var("a"), sym.var("b")
    c = (a + b) * 2 - sym.exp(a)
    x, y = np.random.rand(2, 3).astype(np.float32), np.random.rand(2, 3).astype(np.float32)
    (got,) = c.eval(a=nd.array(x), b=nd.array(y))
    np.testing.assert_allclose(got.asnumpy(), (x + y) * 2 - np.exp(x), rtol=1e-6)


def test_internals_and_group():
    out = mlp_symbol()
    internals = out.get_internals()
    assert "relu1_output" in internals.list_outputs()
    feat = internals["relu1_output"]
    assert feat.list_arguments() == ["data", "fc1_weight", "fc1_bias"]
    group = sym.Group([feat, out])
    assert group.list_outputs() == ["relu1_output", "fc2_output"]


def test_json_round_trip(tmp_path):
    out = mlp_symbol()
    text = out.tojson()
    again = sym.load_json(text)
    assert again.list_arguments() == out.list_arguments()
    out.save(str(tmp_path / "m-symbol.json"))
    loaded = sym.load(str(tmp_path / "m-symbol.json"))
    assert loaded.list_outputs() == ["fc2_output"]


def test_symbols_know_their_shape_when_typed():
    x = sym.var("x", shape=(4, 3))
    y = sym.sum(x * 2, axis=1)
    assert y.shape == (4,)
    with pytest.raises(mx.GraphcError, match="infer_shape"):
        sym.var("z").shape
