"""Fused recurrent layers RNN, LSTM, GRU (MXNet 1.9's `gluon.rnn._RNNLayer`).

Each layer keeps one set of weights per layer and direction, named as MXNet names them
(`l0_i2h_weight`, `l0_h2h_weight`, `l0_i2h_bias`, `l0_h2h_bias`, `r0_...` for the reverse
direction), so MXNet `.params` files load. The forward flattens them, packs them with
`_rnn_param_concat` in the fused `RNN` operator's order (all weights, then all biases; layer
by layer, forward direction first, i2h before h2h) and calls `RNN` once.

Calling `layer(x)` returns the output alone and starts from zero states made inside the
layer; `layer(x, states)` returns `(output, new_states)`. The two are different call
signatures, so a hybridized layer compiles (and exports) each one separately.

LSTM(projection_size=P) adds `l0_h2r_weight` (P, H) per layer and direction (LSTMP); with
`use_sequence_length=True` the call takes `sequence_length` and each sequence stops at its own
length (the backward direction reverses only the valid part). `save_parameters` writes, and
`load_parameters` reads, the names MXNet 1.9 gives a layer's weights in files: those of the
unfused cell stack (`_unfused.0.l_cell.i2h_weight`), which `_unfuse()` builds.
"""
from __future__ import annotations

import re

import numpy as np

from ..block import HybridBlock
from ..parameter import tensor_types
from . import rnn_cell
from .unroll import is_symbolic, known_shape

__all__ = ["RNN", "LSTM", "GRU"]

_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}




class _RNNLayer(HybridBlock):
    """What RNN, LSTM and GRU share: parameters, state shapes, the call into `RNN`."""

    def __init__(self, hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                 i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                 mode, projection_size, h2r_weight_initializer, lstm_state_clip_min, lstm_state_clip_max,
                 lstm_state_clip_nan, dtype, use_sequence_length=False, **kwargs):
        super().__init__(**kwargs)
        if layout not in ("TNC", "NTC"):
            raise ValueError(f"Invalid layout {layout!r}; must be one of ['TNC' or 'NTC']")
        if projection_size and mode != "lstm":
            raise ValueError(f"{type(self).__name__}: projection_size={projection_size} is only supported "
                             "for LSTM")
        self._hidden_size = hidden_size
        self._projection_size = projection_size if projection_size else None
        self._num_layers = num_layers
        self._mode = mode
        self._layout = layout
        self._dropout = dropout
        self._dir = 2 if bidirectional else 1
        self._input_size = input_size
        self._i2h_weight_initializer = i2h_weight_initializer
        self._h2h_weight_initializer = h2h_weight_initializer
        self._i2h_bias_initializer = i2h_bias_initializer
        self._h2h_bias_initializer = h2h_bias_initializer
        self._h2r_weight_initializer = h2r_weight_initializer
        self._lstm_state_clip_min = lstm_state_clip_min
        self._lstm_state_clip_max = lstm_state_clip_max
        self._lstm_state_clip_nan = lstm_state_clip_nan
        self._dtype = dtype
        self._use_sequence_length = use_sequence_length
        self._gates = _GATES[mode]
        ng, ni, nh = self._gates, input_size, hidden_size
        nr = self._projection_size or nh     # what the recurrence carries and each layer outputs
        for i in range(num_layers):
            for j in ["l", "r"][:self._dir]:
                self._register_param(f"{j}{i}_i2h_weight", (ng * nh, ni), i2h_weight_initializer, dtype)
                self._register_param(f"{j}{i}_h2h_weight", (ng * nh, nr), h2h_weight_initializer, dtype)
                self._register_param(f"{j}{i}_i2h_bias", (ng * nh,), i2h_bias_initializer, dtype)
                self._register_param(f"{j}{i}_h2h_bias", (ng * nh,), h2h_bias_initializer, dtype)
                if self._projection_size:
                    self._register_param(f"{j}{i}_h2r_weight", (nr, nh), h2r_weight_initializer, dtype)
            ni = nr * self._dir

    def _register_param(self, name, shape, init, dtype):
        p = self.params.get(name, shape=shape, init=init, allow_deferred_init=True, dtype=dtype)
        setattr(self, name, p)
        return p

    def __repr__(self):
        s = f"{self.__class__.__name__}({{mapping}}, {self._layout}"
        if self._num_layers != 1:
            s += f", num_layers={self._num_layers}"
        if self._dropout != 0:
            s += f", dropout={self._dropout}"
        if self._dir == 2:
            s += ", bidirectional"
        s += ")"
        shape = self.l0_i2h_weight.shape
        return s.format(mapping=f"{shape[1] if shape[1] else None} -> {shape[0] // self._gates}")

    _FILE_NAME = re.compile(r"(l|r)(\d+)_(i2h|h2h|h2r)_(weight|bias)\Z")

    def _collect_params_with_prefix(self, prefix=""):
        """The names save_parameters writes, MXNet 1.9's: a layer's weights are stored as its
        unfused cell stack's (`_unfused.<layer>.<i2h_weight>`, `_unfused.<layer>.l_cell.<...>`
        when bidirectional), so files go both ways between MXNet and graphc."""
        if prefix:
            prefix += "."
        bidirectional = self._dir == 2
        ret = {}
        for key, val in self._reg_params.items():
            d, layer, g, t = self._FILE_NAME.match(key).groups()
            cell = f"{d}_cell." if bidirectional else ""
            ret[f"{prefix}_unfused.{layer}.{cell}{g}_{t}"] = val
        for name, child in self._children.items():
            ret.update(child._collect_params_with_prefix(prefix + name))
        return ret

    def state_info(self, batch_size=0):
        raise NotImplementedError

    def _unfuse(self):
        """The same network as a HybridSequentialRNNCell of cells (BidirectionalCells when
        bidirectional, DropoutCells between layers), sharing this layer's parameters under the
        same names: what MXNet's `_unfuse` builds, and what its parameter file names describe."""
        if self._projection_size:
            raise NotImplementedError(f"{self.name}: _unfuse does not support projection layer yet (MXNet 1.9 "
                                      "has no cell with a projection either)")
        if self._lstm_state_clip_min or self._lstm_state_clip_max:
            raise NotImplementedError(f"{self.name}: _unfuse does not support state clipping yet")
        make = {"rnn_relu": lambda **kw: rnn_cell.RNNCell(self._hidden_size, activation="relu", **kw),
                "rnn_tanh": lambda **kw: rnn_cell.RNNCell(self._hidden_size, activation="tanh", **kw),
                "lstm": lambda **kw: rnn_cell.LSTMCell(self._hidden_size, **kw),
                "gru": lambda **kw: rnn_cell.GRUCell(self._hidden_size, **kw)}[self._mode]
        stack = rnn_cell.HybridSequentialRNNCell(prefix=self.prefix, params=self.params)
        with stack.name_scope():
            ni = self._input_size
            for i in range(self._num_layers):
                kw = {"input_size": ni, "i2h_weight_initializer": self._i2h_weight_initializer,
                      "h2h_weight_initializer": self._h2h_weight_initializer,
                      "i2h_bias_initializer": self._i2h_bias_initializer,
                      "h2h_bias_initializer": self._h2h_bias_initializer}
                if self._dir == 2:
                    stack.add(rnn_cell.BidirectionalCell(make(prefix=f"l{i}_", **kw), make(prefix=f"r{i}_", **kw)))
                else:
                    stack.add(make(prefix=f"l{i}_", **kw))
                if self._dropout > 0 and i != self._num_layers - 1:
                    stack.add(rnn_cell.DropoutCell(self._dropout))
                ni = self._hidden_size * self._dir
        return stack

    def cast(self, dtype):
        """Cast the weights, and make the states begin_state creates of `dtype` too (MXNet)."""
        super().cast(dtype)
        self._dtype = np.dtype(dtype).name

    def begin_state(self, batch_size=0, func=None, **kwargs):
        """Initial states, one array per entry of state_info (all zeros by default):
        `func(name=..., shape=..., dtype=..., **kwargs)` makes each."""
        if func is None:
            from ... import ndarray
            func = ndarray.zeros
        states = []
        for i, info in enumerate(self.state_info(batch_size)):
            info = dict(info) if info is not None else {}
            info.update(kwargs)
            info.pop("__layout__", None)
            states.append(func(name=f"{self.prefix}h0_{i}", **info))
        return states

    def _ensure_params(self, inputs, *args):
        if known_shape(inputs) is not None:   # a sym.Variable's shapes come with infer_shape
            super()._ensure_params(inputs, *args)

    def infer_shape(self, inputs, *args):
        ni = int(inputs.shape[2])
        for j in ["l", "r"][:self._dir]:
            getattr(self, f"{j}0_i2h_weight").shape = (self._gates * self._hidden_size, ni)

    def __call__(self, inputs, states=None, sequence_length=None, **kwargs):
        if isinstance(states, tensor_types()):
            states = [states]
        if not self._use_sequence_length:
            if sequence_length is not None:
                raise ValueError(f"{self.name}: sequence_length was given to a layer built without "
                                 "use_sequence_length=True")
            return super().__call__(inputs) if states is None else super().__call__(inputs, list(states))
        if sequence_length is None:
            raise ValueError(f"{self.name}: built with use_sequence_length=True, the call needs "
                             "sequence_length, the (batch,) valid lengths")
        # MXNet makes the zero states here, so the compiled signature always has them
        skip_states = states is None
        if skip_states:
            from ... import ndarray, symbol
            states = self._zero_states(symbol if is_symbolic(inputs) else ndarray, inputs)
        out, new_states = super().__call__(inputs, list(states), sequence_length)
        return out if skip_states else (out, new_states)

    def _zero_states(self, F, inputs):
        batch_axis = self._layout.find("N")
        if known_shape(inputs) is None:
            # a sym.Variable without a shape: zeros that take the batch size from the data once
            # infer_shape gives it (graphc infers forwards, MXNet's zeros((L, 0, H)) would not)
            return [F.broadcast_like(F.zeros((info["shape"][0], 1) + tuple(info["shape"][2:]), dtype=self._dtype),
                                     inputs, lhs_axes=(1,), rhs_axes=(batch_axis,), name=f"{self.prefix}h0_{i}")
                    for i, info in enumerate(self.state_info(1))]
        batch_size = inputs.shape[batch_axis]
        if F.__name__.endswith("ndarray"):
            return self.begin_state(batch_size, ctx=inputs.context, dtype=inputs.dtype)
        # the states take the data's dtype, traced or eager alike (a float16 sequence runs on
        # float16 states whatever dtype the layer was built with; the weights must match it)
        dtype = np.dtype(inputs.dtype).name
        return [F.zeros(info["shape"], dtype=dtype, name=f"{self.prefix}h0_{i}")
                for i, info in enumerate(self.state_info(batch_size))]

    def hybrid_forward(self, F, inputs, states=None, sequence_length=None, **params):
        skip_states = states is None
        if skip_states:
            states = self._zero_states(F, inputs)
        batch_size = inputs.shape[self._layout.find("N")] if known_shape(inputs) else None
        for state, info in zip(states, self.state_info(batch_size)):
            if batch_size is not None and known_shape(state) and tuple(state.shape) != tuple(info["shape"]):
                raise ValueError(f"{self.name}: invalid recurrent state shape. Expecting {info['shape']}, "
                                 f"got {tuple(state.shape)}.")
        out, new_states = self._forward_kernel(F, inputs, list(states), sequence_length, **params)
        return out if skip_states else (out, new_states)

    def _forward_kernel(self, F, inputs, states, sequence_length, **params):
        if self._layout == "NTC":
            inputs = F.swapaxes(inputs, dim1=0, dim2=1)
        gates = ("i2h", "h2h", "h2r") if self._projection_size else ("i2h", "h2h")
        flat = [F.Reshape(params[f"{d}{layer}_{g}_{t}"], shape=(-1,))
                for t in ("weight", "bias")
                for layer in range(self._num_layers)
                for d in ["l", "r"][:self._dir]
                for g in gates if g != "h2r" or t != "bias"]
        packed = F._rnn_param_concat(*flat, dim=0)
        rnn_args = states + ([sequence_length] if self._use_sequence_length else [])
        rnn = F.RNN(inputs, packed, *rnn_args, use_sequence_length=self._use_sequence_length,
                    state_size=self._hidden_size, projection_size=self._projection_size,
                    num_layers=self._num_layers, bidirectional=self._dir == 2, p=self._dropout,
                    state_outputs=True, mode=self._mode, lstm_state_clip_min=self._lstm_state_clip_min,
                    lstm_state_clip_max=self._lstm_state_clip_max,
                    lstm_state_clip_nan=self._lstm_state_clip_nan, name=self.prefix + "rnn0")
        outputs, new_states = rnn[0], list(rnn[1:])
        if self._layout == "NTC":
            outputs = F.swapaxes(outputs, dim1=0, dim2=1)
        return outputs, new_states


class RNN(_RNNLayer):
    """Elman RNN, h_t = activation(W_i2h x_t + b_i2h + W_h2h h_{t-1} + b_h2h), activation
    'relu' or 'tanh'. Input (T, N, C) for layout 'TNC', (N, T, C) for 'NTC'; one state of
    shape (num_layers * directions, N, hidden_size)."""

    def __init__(self, hidden_size, num_layers=1, activation="relu", layout="TNC", dropout=0,
                 bidirectional=False, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer="zeros", h2h_bias_initializer="zeros", input_size=0, dtype="float32",
                 **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, "rnn_" + activation, None, None, None, None, False, dtype,
                         **kwargs)

    def state_info(self, batch_size=0):
        return [{"shape": (self._num_layers * self._dir, batch_size, self._hidden_size), "__layout__": "LNC",
                 "dtype": self._dtype}]


class LSTM(_RNNLayer):
    """Long short-term memory (gates i, f, g, o). Two states, h and c, each of shape
    (num_layers * directions, N, hidden_size). state_clip_min/max/nan clip the cell state.
    With projection_size P, h (and the output) is projected to P features: h is then
    (num_layers * directions, N, P), c keeps hidden_size."""

    def __init__(self, hidden_size, num_layers=1, layout="TNC", dropout=0, bidirectional=False, input_size=0,
                 i2h_weight_initializer=None, h2h_weight_initializer=None, i2h_bias_initializer="zeros",
                 h2h_bias_initializer="zeros", projection_size=None, h2r_weight_initializer=None,
                 state_clip_min=None, state_clip_max=None, state_clip_nan=False, dtype="float32", **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, "lstm", projection_size, h2r_weight_initializer,
                         state_clip_min, state_clip_max, state_clip_nan, dtype, **kwargs)

    def state_info(self, batch_size=0):
        rows = self._num_layers * self._dir
        return [{"shape": (rows, batch_size, self._projection_size or self._hidden_size), "__layout__": "LNC",
                 "dtype": self._dtype},
                {"shape": (rows, batch_size, self._hidden_size), "__layout__": "LNC", "dtype": self._dtype}]


class GRU(_RNNLayer):
    """Gated recurrent unit (gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).
    One state of shape (num_layers * directions, N, hidden_size)."""

    def __init__(self, hidden_size, num_layers=1, layout="TNC", dropout=0, bidirectional=False, input_size=0,
                 i2h_weight_initializer=None, h2h_weight_initializer=None, i2h_bias_initializer="zeros",
                 h2h_bias_initializer="zeros", dtype="float32", **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
                         h2h_bias_initializer, "gru", None, None, None, None, False, dtype, **kwargs)

    def state_info(self, batch_size=0):
        return [{"shape": (self._num_layers * self._dir, batch_size, self._hidden_size), "__layout__": "LNC",
                 "dtype": self._dtype}]
