"""MXNet 1.x's legacy symbolic RNN cells: the stepped cells (RNNCell, LSTMCell, GRUCell) and,
re-exported from their modules, the fused, container, modifier and convolutional cells, so
`mx.rnn.rnn_cell.X` resolves as in MXNet.

Each step is built from graphc symbols with MXNet's node names (prefix + 't<step>_i2h'...) and
MXNet's parameter names; the gate rows of the i2h/h2h matrices are in MXNet's order (LSTM: i, f,
c, o; GRU: r, z, o), so weights trained by either framework give the same outputs in the other."""
from __future__ import annotations

from .. import initializer as init
from .. import symbol
from .base import BaseRNNCell, RNNParams, resolve_states   # noqa: F401


def _fc(data, weight, bias, num_hidden, name):
    return symbol.FullyConnected(data=data, weight=weight, bias=bias, num_hidden=num_hidden, name=name)


class _OneStateCell(BaseRNNCell):
    """The Elman and GRU cells' shared set-up: one (batch, num_hidden) state and the i2h/h2h
    weights and biases, created in MXNet's order."""

    def __init__(self, num_hidden, prefix, params):
        super().__init__(prefix=prefix, params=params)
        self._num_hidden = num_hidden
        self._iW = self.params.get("i2h_weight")
        self._iB = self.params.get("i2h_bias")
        self._hW = self.params.get("h2h_weight")
        self._hB = self.params.get("h2h_bias")

    @property
    def state_info(self):
        return [{"shape": (0, self._num_hidden), "__layout__": "NC"}]


class RNNCell(_OneStateCell):
    """Elman cell: h' = activation(W_i x + b_i + W_h h + b_h)."""

    def __init__(self, num_hidden, activation="tanh", prefix="rnn_", params=None):
        super().__init__(num_hidden, prefix, params)
        self._activation = activation

    @property
    def _gate_names(self):
        return ("",)

    def __call__(self, inputs, states):
        self._counter += 1
        name = f"{self._prefix}t{self._counter}_"
        states = resolve_states(states, inputs)
        i2h = _fc(inputs, self._iW, self._iB, self._num_hidden, f"{name}i2h")
        h2h = _fc(states[0], self._hW, self._hB, self._num_hidden, f"{name}h2h")
        output = self._get_activation(symbol.elemwise_add(i2h, h2h), self._activation, name=f"{name}out")
        return output, [output]


class LSTMCell(BaseRNNCell):
    """LSTM cell (states [h, c]); i2h_bias starts with forget_bias on the forget gate's rows."""

    def __init__(self, num_hidden, prefix="lstm_", params=None, forget_bias=1.0):
        super().__init__(prefix=prefix, params=params)
        self._num_hidden = num_hidden
        self._iW = self.params.get("i2h_weight")
        self._hW = self.params.get("h2h_weight")
        self._iB = self.params.get("i2h_bias", init=init.LSTMBias(forget_bias=forget_bias))
        self._hB = self.params.get("h2h_bias")

    @property
    def state_info(self):
        return [{"shape": (0, self._num_hidden), "__layout__": "NC"},
                {"shape": (0, self._num_hidden), "__layout__": "NC"}]

    @property
    def _gate_names(self):
        return ["_i", "_f", "_c", "_o"]

    def __call__(self, inputs, states):
        self._counter += 1
        name = f"{self._prefix}t{self._counter}_"
        states = resolve_states(states, inputs)
        h = self._num_hidden
        gates = symbol.elemwise_add(_fc(inputs, self._iW, self._iB, 4 * h, f"{name}i2h"),
                                    _fc(states[0], self._hW, self._hB, 4 * h, f"{name}h2h"))
        sliced = symbol.SliceChannel(gates, num_outputs=4, name=f"{name}slice")
        in_gate = symbol.Activation(sliced[0], act_type="sigmoid", name=f"{name}i")
        forget_gate = symbol.Activation(sliced[1], act_type="sigmoid", name=f"{name}f")
        in_transform = symbol.Activation(sliced[2], act_type="tanh", name=f"{name}c")
        out_gate = symbol.Activation(sliced[3], act_type="sigmoid", name=f"{name}o")
        next_c = symbol._internal._plus(symbol.elemwise_mul(forget_gate, states[1]),
                                        symbol.elemwise_mul(in_gate, in_transform), name=f"{name}state")
        next_h = symbol._internal._mul(out_gate, symbol.Activation(next_c, act_type="tanh"), name=f"{name}out")
        return next_h, [next_h, next_c]


class GRUCell(_OneStateCell):
    """GRU cell (Cho et al. 2014, MXNet's variant: the reset gate scales h2h's candidate rows)."""

    def __init__(self, num_hidden, prefix="gru_", params=None):
        super().__init__(num_hidden, prefix, params)

    @property
    def _gate_names(self):
        return ["_r", "_z", "_o"]

    def __call__(self, inputs, states):
        self._counter += 1
        name = f"{self._prefix}t{self._counter}_"
        states = resolve_states(states, inputs)
        prev_h = states[0]
        h = self._num_hidden
        i2h = _fc(inputs, self._iW, self._iB, 3 * h, f"{name}_i2h")
        h2h = _fc(prev_h, self._hW, self._hB, 3 * h, f"{name}_h2h")
        i2h_r, i2h_z, i2h = symbol.SliceChannel(i2h, num_outputs=3, name=f"{name}_i2h_slice")
        h2h_r, h2h_z, h2h = symbol.SliceChannel(h2h, num_outputs=3, name=f"{name}_h2h_slice")
        reset_gate = symbol.Activation(symbol.elemwise_add(i2h_r, h2h_r), act_type="sigmoid", name=f"{name}_r_act")
        update_gate = symbol.Activation(symbol.elemwise_add(i2h_z, h2h_z), act_type="sigmoid", name=f"{name}_z_act")
        candidate = symbol.Activation(symbol.elemwise_add(i2h, symbol.elemwise_mul(reset_gate, h2h)),
                                      act_type="tanh", name=f"{name}_h_act")
        next_h = symbol._internal._plus(symbol.elemwise_mul(1. - update_gate, candidate),
                                        symbol.elemwise_mul(update_gate, prev_h), name=f"{name}out")
        return next_h, [next_h]


from .fused import FusedRNNCell  # noqa: E402,F401
from .containers import (SequentialRNNCell, BidirectionalCell, DropoutCell, ModifierCell,  # noqa: E402,F401
                         ZoneoutCell, ResidualCell)
from .conv_cells import BaseConvRNNCell, ConvRNNCell, ConvLSTMCell, ConvGRUCell  # noqa: E402,F401
