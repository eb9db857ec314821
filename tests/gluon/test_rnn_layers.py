"""gluon.rnn: fused layers (RNN, LSTM, GRU over the `RNN` operator) against cells unrolled with
the same weights (MXNet guarantees they agree), eager and hybridized; MXNet's parameter names;
states in and out; the MXNet-written LSTM fixture."""
import os

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn, rnn
from graphc.ops import has_op

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")


def _needs(*ops):
    missing = [op for op in ops if not has_op(op)]
    return pytest.mark.skipif(bool(missing), reason=f"operator(s) {missing} not registered yet")


needs_rnn = _needs("RNN", "_rnn_param_concat")


RNG = np.random.default_rng(7)


def _seq(n=3, t=5, c=4):
    return nd.array(RNG.normal(size=(n, t, c)).astype(np.float32))


def _randomize(block):
    """Non-trivial values for every parameter (biases too: zeros would hide a swapped bias)."""
    for p in block.collect_params().values():
        p.set_data(RNG.normal(scale=0.5, size=p.shape).astype(np.float32))


# -- names and shapes -------------------------------------------------------------------------------
def test_lstm_layer_parameter_names_follow_mxnet():
    layer = rnn.LSTM(8, num_layers=2, bidirectional=True, prefix="lstm0_")
    names = set(layer.collect_params().keys())
    expected = {f"lstm0_{d}{i}_{g}_{t}" for d in "lr" for i in range(2) for g in ("i2h", "h2h")
                for t in ("weight", "bias")}
    assert names == expected
    assert layer.l0_i2h_weight.shape == (32, 0)          # input size waits for the first input
    assert layer.l1_i2h_weight.shape == (32, 16)         # layer 1 reads both directions
    assert layer.r0_h2h_weight.shape == (32, 8)


def test_default_prefixes_are_mxnets():
    with mx.name.NameManager():
        assert rnn.LSTM(4).prefix == "lstm0_"
        assert rnn.GRU(4).prefix == "gru0_"
        assert rnn.RNN(4).prefix == "rnn0_"
        assert rnn.LSTMCell(4).prefix == "lstm1_"
        cell = rnn.GRUCell(4)
        assert sorted(cell.collect_params().keys()) == ["gru1_h2h_bias", "gru1_h2h_weight", "gru1_i2h_bias",
                                                       "gru1_i2h_weight"]


def test_gru_and_rnn_have_three_and_one_gate_blocks():
    assert rnn.GRU(5, input_size=3).l0_i2h_weight.shape == (15, 3)
    assert rnn.RNN(5, input_size=3).l0_h2h_weight.shape == (5, 5)
    assert rnn.LSTMCell(5, input_size=3).i2h_weight.shape == (20, 3)


def test_invalid_layout_is_refused():
    with pytest.raises(ValueError, match="layout"):
        rnn.LSTM(4, layout="NCT")


def test_state_info_and_begin_state():
    layer = rnn.LSTM(6, num_layers=3, bidirectional=True)
    info = layer.state_info(2)
    assert [i["shape"] for i in info] == [(6, 2, 6), (6, 2, 6)]
    states = layer.begin_state(2)
    assert [s.shape for s in states] == [(6, 2, 6), (6, 2, 6)]
    assert not any(s.asnumpy().any() for s in states)
    cell = rnn.LSTMCell(5)
    assert [s.shape for s in cell.begin_state(3)] == [(3, 5), (3, 5)]


# -- layer == unrolled cells ------------------------------------------------------------------------
def _copy_layer_to_cell(layer, cell, layer_index=0, direction="l"):
    for name in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias"):
        getattr(cell, name).set_data(getattr(layer, f"{direction}{layer_index}_{name}").data().asnumpy())


def _make_cell(kind, hidden):
    if kind == "lstm":
        return rnn.LSTMCell(hidden)
    if kind == "gru":
        return rnn.GRUCell(hidden)
    return rnn.RNNCell(hidden, activation=kind.split("_")[1])


def _make_layer(kind, hidden, **kw):
    if kind == "lstm":
        return rnn.LSTM(hidden, **kw)
    if kind == "gru":
        return rnn.GRU(hidden, **kw)
    return rnn.RNN(hidden, activation=kind.split("_")[1], **kw)


@needs_rnn
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("hybridize", [False, True])
def test_layer_equals_unrolled_cell(kind, hybridize):
    x = _seq()
    layer = _make_layer(kind, 6, layout="NTC")
    layer.initialize()
    layer(x)
    _randomize(layer)
    cell = _make_cell(kind, 6)
    cell.initialize()
    cell(x[:, 0], cell.begin_state(3))
    _copy_layer_to_cell(layer, cell)
    if hybridize:
        layer.hybridize()
        cell.hybridize()
    states = layer.begin_state(3)
    states = [nd.array(RNG.normal(size=s.shape).astype(np.float32)) for s in states]
    out, new_states = layer(x, states)
    ref, ref_states = cell.unroll(5, x, begin_state=[s[0] for s in states], layout="NTC", merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=1e-4, atol=1e-5)
    for got, want in zip(new_states, ref_states):
        np.testing.assert_allclose(got.asnumpy()[0], want.asnumpy(), rtol=1e-4, atol=1e-5)


@needs_rnn
@pytest.mark.parametrize("hybridize", [False, True])
def test_stacked_bidirectional_lstm_equals_cells(hybridize):
    x = _seq(2, 4, 3)
    layer = rnn.LSTM(5, num_layers=2, bidirectional=True, layout="NTC")
    layer.initialize()
    layer(x)
    _randomize(layer)
    stack = rnn.SequentialRNNCell()
    for i in range(2):
        bi = rnn.BidirectionalCell(rnn.LSTMCell(5), rnn.LSTMCell(5))
        stack.add(bi)
    stack.initialize()
    stack.unroll(4, x, layout="NTC", merge_outputs=True)
    for i in range(2):
        _copy_layer_to_cell(layer, stack[i]._children["l_cell"], i, "l")
        _copy_layer_to_cell(layer, stack[i]._children["r_cell"], i, "r")
    if hybridize:
        layer.hybridize()
    out = layer(x)
    ref, _ = stack.unroll(4, x, layout="NTC", merge_outputs=True)
    assert out.shape == (2, 4, 10)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=1e-4, atol=1e-5)


@needs_rnn
def test_tnc_layout_equals_ntc_transposed():
    x = _seq(2, 6, 3)
    ntc = rnn.GRU(4, layout="NTC")
    tnc = rnn.GRU(4, layout="TNC", params=ntc.collect_params())
    ntc.initialize()
    out_ntc = ntc(x).asnumpy()
    out_tnc = tnc(nd.array(x.asnumpy().transpose(1, 0, 2))).asnumpy()
    np.testing.assert_allclose(out_tnc.transpose(1, 0, 2), out_ntc, rtol=1e-5, atol=1e-6)


@needs_rnn
def test_states_are_returned_only_when_given():
    layer = rnn.LSTM(4, layout="NTC")
    layer.initialize()
    x = _seq(2, 3, 5)
    out = layer(x)
    assert isinstance(out, nd.NDArray) and out.shape == (2, 3, 4)
    out2, states = layer(x, layer.begin_state(2))
    assert len(states) == 2 and states[0].shape == (1, 2, 4)
    np.testing.assert_allclose(out.asnumpy(), out2.asnumpy(), rtol=1e-6)


@needs_rnn
def test_wrong_state_shape_is_named():
    layer = rnn.GRU(4)
    layer.initialize()
    with pytest.raises(ValueError, match=r"Expecting \(1, 2, 4\)"):
        layer(nd.zeros((3, 2, 5)), [nd.zeros((1, 3, 4))])


@needs_rnn
def test_hybridized_layer_without_states_matches_eager():
    layer = rnn.LSTM(6, num_layers=2, layout="NTC")
    layer.initialize()
    x = _seq()
    eager = layer(x).asnumpy()
    layer.hybridize()
    np.testing.assert_allclose(layer(x).asnumpy(), eager, rtol=1e-5, atol=1e-6)


@needs_rnn
def test_layer_gradients_flow_to_every_weight():
    layer = rnn.GRU(4, num_layers=2, bidirectional=True)
    layer.initialize()
    x = nd.array(RNG.normal(size=(3, 2, 5)).astype(np.float32))
    with autograd.record():
        loss = (layer(x) ** 2).sum()
    loss.backward()
    for name, p in layer.collect_params().items():
        assert np.abs(p.grad().asnumpy()).sum() > 0, name


# -- cells --------------------------------------------------------------------------------------------
def test_lstm_cell_step_matches_numpy():
    cell = rnn.LSTMCell(3, input_size=2)
    cell.initialize()
    _randomize(cell)
    x = RNG.normal(size=(4, 2)).astype(np.float32)
    h = RNG.normal(size=(4, 3)).astype(np.float32)
    c = RNG.normal(size=(4, 3)).astype(np.float32)
    out, (h1, c1) = cell(nd.array(x), [nd.array(h), nd.array(c)])
    p = {k: cell.params[cell.prefix + k].data().asnumpy() for k in ("i2h_weight", "h2h_weight", "i2h_bias",
                                                                       "h2h_bias")}
    g = x @ p["i2h_weight"].T + p["i2h_bias"] + h @ p["h2h_weight"].T + p["h2h_bias"]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, gg, o = np.split(g, 4, axis=1)
    c_ref = sig(f) * c + sig(i) * np.tanh(gg)
    h_ref = sig(o) * np.tanh(c_ref)
    np.testing.assert_allclose(c1.asnumpy(), c_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.asnumpy(), h_ref, rtol=1e-5, atol=1e-6)
    assert out is h1 or np.array_equal(out.asnumpy(), h1.asnumpy())


def test_gru_cell_step_matches_numpy():
    cell = rnn.GRUCell(3, input_size=2)
    cell.initialize()
    _randomize(cell)
    x = RNG.normal(size=(4, 2)).astype(np.float32)
    h = RNG.normal(size=(4, 3)).astype(np.float32)
    out, _ = cell(nd.array(x), [nd.array(h)])
    p = {k: cell.params[cell.prefix + k].data().asnumpy() for k in ("i2h_weight", "h2h_weight", "i2h_bias",
                                                                       "h2h_bias")}
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    xr, xz, xn = np.split(x @ p["i2h_weight"].T + p["i2h_bias"], 3, axis=1)
    hr, hz, hn = np.split(h @ p["h2h_weight"].T + p["h2h_bias"], 3, axis=1)
    r, z = sig(xr + hr), sig(xz + hz)
    n = np.tanh(xn + r * hn)
    np.testing.assert_allclose(out.asnumpy(), (1 - z) * n + z * h, rtol=1e-5, atol=1e-6)


def test_unroll_merge_outputs_and_layouts():
    cell = rnn.RNNCell(4)
    cell.initialize()
    x = _seq(2, 3, 5)
    merged, states = cell.unroll(3, x, layout="NTC", merge_outputs=True)
    assert merged.shape == (2, 3, 4) and states[0].shape == (2, 4)
    steps, _ = cell.unroll(3, x, layout="NTC", merge_outputs=False)
    assert len(steps) == 3 and steps[0].shape == (2, 4)
    np.testing.assert_allclose(np.stack([s.asnumpy() for s in steps], axis=1), merged.asnumpy(), rtol=1e-6)
    tnc, _ = cell.unroll(3, nd.array(x.asnumpy().transpose(1, 0, 2)), layout="TNC", merge_outputs=True)
    np.testing.assert_allclose(tnc.asnumpy().transpose(1, 0, 2), merged.asnumpy(), rtol=1e-6)
    as_list, _ = cell.unroll(3, [x[:, t] for t in range(3)], layout="NTC", merge_outputs=True)
    np.testing.assert_allclose(as_list.asnumpy(), merged.asnumpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="length=4"):
        cell.unroll(4, x, layout="NTC")


def test_hybridized_cell_step_matches_eager():
    cell = rnn.GRUCell(4)
    cell.initialize()
    x = _seq(2, 3, 5)
    eager, _ = cell.unroll(3, x, layout="NTC", merge_outputs=True)
    cell.hybridize()
    compiled, _ = cell.unroll(3, x, layout="NTC", merge_outputs=True)
    np.testing.assert_allclose(compiled.asnumpy(), eager.asnumpy(), rtol=1e-5, atol=1e-6)


def test_sequential_cell_states_concatenate_and_bidirectional_cannot_step():
    stack = rnn.SequentialRNNCell()
    with stack.name_scope():
        stack.add(rnn.LSTMCell(3))
        stack.add(rnn.GRUCell(2))
    stack.initialize()
    assert len(stack.state_info(2)) == 3
    out, states = stack(nd.ones((2, 4)), stack.begin_state(batch_size=2))
    assert out.shape == (2, 2) and [s.shape for s in states] == [(2, 3), (2, 3), (2, 2)]
    bi = rnn.BidirectionalCell(rnn.RNNCell(2), rnn.RNNCell(2))
    with pytest.raises(NotImplementedError, match="unroll"):
        bi(nd.ones((2, 4)), bi.begin_state(batch_size=2))


def test_residual_and_dropout_cells():
    base = rnn.RNNCell(4, input_size=4)
    res = rnn.ResidualCell(base)
    res.initialize()
    x = _seq(2, 3, 4)
    out, _ = res.unroll(3, x, layout="NTC", merge_outputs=True)
    base._modified = False
    plain, _ = base.unroll(3, x, layout="NTC", merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), plain.asnumpy() + x.asnumpy(), rtol=1e-5, atol=1e-6)
    drop = rnn.DropoutCell(0.5)
    same, _ = drop.unroll(3, x, layout="NTC", merge_outputs=True)   # not training: identity
    np.testing.assert_allclose(same.asnumpy(), x.asnumpy())
    with autograd.train_mode():
        dropped, _ = drop.unroll(3, x, layout="NTC", merge_outputs=True)
    d = dropped.asnumpy()
    assert ((d == 0) | np.isclose(d, 2 * x.asnumpy())).all() and (d == 0).any()


def test_modified_cell_cannot_begin_state_directly():
    base = rnn.LSTMCell(3)
    zone = rnn.ZoneoutCell(base, zoneout_outputs=0.5)
    with pytest.raises(RuntimeError, match="modifier"):
        base.begin_state(batch_size=2)
    assert len(zone.begin_state(batch_size=2)) == 2
    zone.initialize()
    out, _ = zone.unroll(2, _seq(2, 2, 3), layout="NTC", merge_outputs=True)
    assert out.shape == (2, 2, 3)


# -- MXNet fixture -------------------------------------------------------------------------------------
class _LSTMNet(gluon.HybridBlock):
    """The network MXNet 1.9 exported as fixtures/mxnet/lstm: Embedding(50, 16), a 2-layer
    LSTM(24) in NTC layout, Dense(5, flatten=False)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.embedding = nn.Embedding(50, 16)
            self.lstm = rnn.LSTM(24, num_layers=2, layout="NTC")
            self.dense = nn.Dense(5, flatten=False)

    def hybrid_forward(self, F, x):
        return self.dense(self.lstm(self.embedding(x)))


@needs_rnn
@_needs("Embedding")
@pytest.mark.parametrize("hybridize", [False, True])
def test_mxnet_lstm_fixture_loads_by_name_and_matches(hybridize):
    params = os.path.join(FIXTURES, "lstm-0000.params")
    if not os.path.exists(params):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    io = np.load(os.path.join(FIXTURES, "lstm-io.npz"))
    net = _LSTMNet(prefix="lstmnet_")
    net.collect_params().load(params)
    if hybridize:
        net.hybridize()
    out = net(nd.array(io["input0"]))
    np.testing.assert_allclose(out.asnumpy(), io["output0"], rtol=1e-4, atol=1e-5)
