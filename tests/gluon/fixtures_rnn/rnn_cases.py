"""Recurrent networks built the same way under MXNet 1.9.1 and graphc (`mx` is either module),
shared by make_fixtures.py, which records what MXNet computes, and the tests, which rebuild
them in graphc and compare. Nothing here may depend on which framework runs it."""
import zlib

import numpy as np

N, T, C, H = 2, 4, 3, 5
VALID = np.array([4, 2], dtype=np.float32)     # batch 1 stops after two of the four steps


def values(name, shape, scale=0.5):
    """Deterministic values for an argument, seeded by its name, so both frameworks bind the
    same numbers to the same-named argument."""
    return np.random.default_rng(zlib.crc32(name.encode())).normal(scale=scale, size=shape).astype(np.float32)


# -- cells unrolled over sym.Variable inputs ------------------------------------------------------
def _lstm(mx, p, **kw):
    return mx.gluon.rnn.LSTMCell(H, prefix=p, **kw)


def _gru(mx, p, **kw):
    return mx.gluon.rnn.GRUCell(H, prefix=p, **kw)


def _sequential(mx, hybrid, *makers):
    seq = (mx.gluon.rnn.HybridSequentialRNNCell if hybrid else mx.gluon.rnn.SequentialRNNCell)(prefix="seq_")
    with seq.name_scope():
        for make in makers:
            seq.add(make(mx))
    return seq


def _bi(mx, make, tag):
    return mx.gluon.rnn.BidirectionalCell(make(mx, f"{tag}l_"), make(mx, f"{tag}r_"))


# name -> (builder(mx) -> cell, layout, merge_outputs, with valid_length)
UNROLL_CASES = {
    "rnn_tanh_ntc_merged": (lambda mx: mx.gluon.rnn.RNNCell(H, prefix="rnn_"), "NTC", True, False),
    "rnn_relu_tnc_list": (lambda mx: mx.gluon.rnn.RNNCell(H, activation="relu", prefix="rnn_"), "TNC", False, False),
    "lstm_ntc_valid": (lambda mx: _lstm(mx, "lstm_"), "NTC", True, True),
    "gru_tnc_merged": (lambda mx: _gru(mx, "gru_"), "TNC", True, False),
    "sequential_lstm_gru_valid": (lambda mx: _sequential(mx, False, lambda m: _lstm(m, "a_"), lambda m: _gru(m, "b_")),
                                  "NTC", False, True),
    "bidirectional_lstm_valid": (lambda mx: _bi(mx, _lstm, "bl"), "NTC", True, True),
    "bidirectional_gru_tnc_list": (lambda mx: _bi(mx, _gru, "bg"), "TNC", False, False),
    "residual_gru_valid": (lambda mx: mx.gluon.rnn.ResidualCell(mx.gluon.rnn.GRUCell(C, prefix="res_")),
                           "NTC", True, True),
    "zoneout_lstm": (lambda mx: mx.gluon.rnn.ZoneoutCell(_lstm(mx, "zo_"), zoneout_outputs=0.3, zoneout_states=0.2),
                     "NTC", True, False),
    "hybrid_stack_dropout_bidirectional_valid": (
        lambda mx: _sequential(mx, True, lambda m: _bi(m, _lstm, "s0"), lambda m: m.gluon.rnn.DropoutCell(0.5),
                               lambda m: _bi(m, _gru, "s1")), "NTC", True, True),
}


def unroll_symbol(mx, name):
    """(symbol grouping outputs then states, the cell) for an UNROLL_CASES entry."""
    build, layout, merge, valid = UNROLL_CASES[name]
    cell = build(mx)
    data = mx.sym.Variable("data")
    kw = {"valid_length": mx.sym.Variable("valid_length")} if valid else {}
    out, states = cell.unroll(T, data, layout=layout, merge_outputs=merge, **kw)
    outs = [out] if merge else list(out)
    return mx.sym.Group(outs + list(states)), cell


def input_shapes(name):
    _, layout, _, valid = UNROLL_CASES[name]
    shapes = {"data": (N, T, C) if layout == "NTC" else (T, N, C)}
    if valid:
        shapes["valid_length"] = (N,)
    return shapes


def differentiable(name):
    """Cases whose training-mode pass is deterministic (no dropout or zoneout masks)."""
    return "zoneout" not in name and "dropout" not in name


def heads(name, shapes, output_names):
    """Head gradients for the outputs of an unroll case. An output listed twice (a cell whose
    output is its state) gets a zero head but for its last listing: MXNet 1.9.1's executor
    keeps only the last head given for one output, where the sum is the gradient."""
    last = {n: i for i, n in enumerate(output_names)}
    return [values(f"{name}.head{i}", s) * (last[n] == i) for i, (s, n) in enumerate(zip(shapes, output_names))]


def bind_values(arg_names, arg_shapes):
    """name -> array for every argument: valid lengths fixed, the rest from `values`."""
    return {n: (VALID if n == "valid_length" else values(n, s)) for n, s in zip(arg_names, arg_shapes)}


# -- fused layers whose parameter files MXNet writes ------------------------------------------------
def _layer_net(mx):
    net = mx.gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(mx.gluon.nn.Dense(4, flatten=False, in_units=C))
        net.add(mx.gluon.rnn.GRU(H, bidirectional=True, layout="NTC", input_size=4))
    return net


# name -> (builder(mx) -> block, input shape (layout of the block), give begin states, trainable on CPU)
LAYER_CASES = {
    "lstm_2layer_bidirectional": (lambda mx: mx.gluon.rnn.LSTM(H, num_layers=2, bidirectional=True, layout="NTC",
                                                                input_size=C, prefix="lstm_"), (N, T, C), True, True),
    "gru": (lambda mx: mx.gluon.rnn.GRU(H, input_size=C, prefix="gru_"), (T, N, C), True, True),
    "rnn_relu_2layer": (lambda mx: mx.gluon.rnn.RNN(H, num_layers=2, activation="relu", input_size=C,
                                                     prefix="rnn_"), (T, N, C), False, True),
    "lstm_projection": (lambda mx: mx.gluon.rnn.LSTM(H, num_layers=2, projection_size=3, input_size=C,
                                                      prefix="lstmp_"), (T, N, C), True, False),
    "lstm_projection_bidirectional": (lambda mx: mx.gluon.rnn.LSTM(H, bidirectional=True, projection_size=2,
                                                                    input_size=C, prefix="lstmpb_"),
                                      (T, N, C), True, False),
    "dense_gru_net": (_layer_net, (N, T, C), False, True),
}


def layer_states(block, n=N):
    """Non-zero begin states of the layer's state_info shapes."""
    return [values(f"state{i}", info["shape"]) for i, info in enumerate(block.state_info(n))]


def set_layer_params(block):
    """Every parameter from `values` by its structural name (file name), framework-independent."""
    block.collect_params().initialize()
    params = block._collect_params_with_prefix()
    for key in sorted(params):
        params[key].set_data(values(key, params[key].shape))
