"""FusedRNNCell: the whole multi-layer (bidirectional) RNN as one `RNN` operator reading one
packed parameter vector (prefix + 'parameters'), laid out as MXNet lays it out: every weight
matrix, layer by layer and direction by direction (i2h gates then h2h gates), then every bias.
unpack_weights / pack_weights convert to and from the per-gate arrays of the unfused cells, so a
checkpoint saved from either loads into the other."""
from __future__ import annotations

import warnings

import numpy as np

from .. import initializer as init
from .. import symbol
from .base import BaseRNNCell, normalize_sequence, resolve_states

_GATES = {"rnn_relu": [""], "rnn_tanh": [""], "lstm": ["_i", "_f", "_c", "_o"], "gru": ["_r", "_z", "_o"]}


class FusedRNNCell(BaseRNNCell):
    """num_layers of `mode` ('rnn_relu', 'rnn_tanh', 'lstm', 'gru') run by one RNN node."""

    def __init__(self, num_hidden, num_layers=1, mode="lstm", bidirectional=False, dropout=0.,
                 get_next_state=False, forget_bias=1.0, prefix=None, params=None):
        if mode not in _GATES:
            raise ValueError(f"FusedRNNCell: mode {mode!r} is not one of {sorted(_GATES)}")
        if prefix is None:
            prefix = f"{mode}_"
        super().__init__(prefix=prefix, params=params)
        self._num_hidden = num_hidden
        self._num_layers = num_layers
        self._mode = mode
        self._bidirectional = bidirectional
        self._dropout = dropout
        self._get_next_state = get_next_state
        self._directions = ["l", "r"] if bidirectional else ["l"]
        self._parameter = self.params.get("parameters", init=init.FusedRNN(
            None, num_hidden, num_layers, mode, bidirectional, forget_bias))

    @property
    def state_info(self):
        rows = (self._bidirectional + 1) * self._num_layers
        return [{"shape": (rows, 0, self._num_hidden), "__layout__": "LNC"}
                for _ in range((self._mode == "lstm") + 1)]

    @property
    def _gate_names(self):
        return _GATES[self._mode]

    @property
    def _num_gates(self):
        return len(self._gate_names)

    def _layout(self, li, lh):
        """[(name, offset, shape)] of each weight and bias in the packed vector, for input size
        li and hidden size lh, and the vector's total size."""
        entries, p, b = [], 0, len(self._directions)
        for layer in range(self._num_layers):
            for direction in self._directions:
                cols = b * lh if layer > 0 else li
                for gate in self._gate_names:
                    entries.append((f"{self._prefix}{direction}{layer}_i2h{gate}_weight", p, (lh, cols)))
                    p += lh * cols
                for gate in self._gate_names:
                    entries.append((f"{self._prefix}{direction}{layer}_h2h{gate}_weight", p, (lh, lh)))
                    p += lh * lh
        for layer in range(self._num_layers):
            for direction in self._directions:
                for group in ("i2h", "h2h"):
                    for gate in self._gate_names:
                        entries.append((f"{self._prefix}{direction}{layer}_{group}{gate}_bias", p, (lh,)))
                        p += lh
        return entries, p

    def unpack_weights(self, args):
        args = dict(args)
        arr = args.pop(self._parameter.name)
        b, m, h = len(self._directions), self._num_gates, self._num_hidden
        num_input = arr.size // b // h // m - (self._num_layers - 1) * (h + b * h + 2) - h - 2
        entries, total = self._layout(num_input, h)
        if total != arr.size:
            raise AssertionError(f"Invalid parameters size for FusedRNNCell: {arr.size} values, "
                                 f"the layout needs {total}")
        for name, offset, shape in entries:
            args[name] = arr[offset:offset + int(np.prod(shape))].reshape(shape).copy()
        return args

    def pack_weights(self, args):
        from .. import ndarray
        args = dict(args)
        h = self._num_hidden
        w0 = args[f"{self._prefix}l0_i2h{self._gate_names[0]}_weight"]
        entries, total = self._layout(w0.shape[1], h)
        flat = np.zeros((total,), dtype=np.dtype(w0.dtype))
        for name, offset, shape in entries:
            value = args.pop(name)
            value = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
            if tuple(value.shape) != tuple(shape):
                raise ValueError(f"FusedRNNCell.pack_weights: {name} has shape {tuple(value.shape)}, expected {shape}")
            flat[offset:offset + value.size] = value.reshape(-1)
        args[self._parameter.name] = ndarray.array(flat, ctx=w0.context, dtype=flat.dtype)
        return args

    def __call__(self, inputs, states):
        raise NotImplementedError("FusedRNNCell cannot be stepped. Please use unroll")

    def unroll(self, length, inputs, begin_state=None, layout="NTC", merge_outputs=None):
        self.reset()
        inputs, axis = normalize_sequence(length, inputs, layout, True)
        if axis == 1:
            warnings.warn("NTC layout detected. Consider using TNC for FusedRNNCell for faster speed")
            inputs = symbol.swapaxes(inputs, dim1=0, dim2=1)
        elif axis != 0:
            raise AssertionError(f"Unsupported layout {layout}")
        states = self.begin_state() if begin_state is None else begin_state
        states = resolve_states(states, inputs, input_batch_axis=1)
        named = {"state": states[0], "state_cell": states[1]} if self._mode == "lstm" else {"state": states[0]}
        rnn = symbol.RNN(data=inputs, parameters=self._parameter, state_size=self._num_hidden,
                         num_layers=self._num_layers, bidirectional=self._bidirectional, p=self._dropout,
                         state_outputs=self._get_next_state, mode=self._mode, name=self._prefix + "rnn", **named)
        if not self._get_next_state:
            outputs, states = rnn, []
        elif self._mode == "lstm":
            outputs, states = rnn[0], [rnn[1], rnn[2]]
        else:
            outputs, states = rnn[0], [rnn[1]]
        if axis == 1:
            outputs = symbol.swapaxes(outputs, dim1=0, dim2=1)
        outputs, _ = normalize_sequence(length, outputs, layout, merge_outputs)
        return outputs, states

    def unfuse(self):
        """The same network as a SequentialRNNCell of stepped cells with the unpacked names."""
        from .containers import BidirectionalCell, DropoutCell, SequentialRNNCell
        from .rnn_cell import GRUCell, LSTMCell, RNNCell
        h = self._num_hidden
        make = {"rnn_relu": lambda p: RNNCell(h, activation="relu", prefix=p),
                "rnn_tanh": lambda p: RNNCell(h, activation="tanh", prefix=p),
                "lstm": lambda p: LSTMCell(h, prefix=p),
                "gru": lambda p: GRUCell(h, prefix=p)}[self._mode]
        stack = SequentialRNNCell()
        for i in range(self._num_layers):
            if self._bidirectional:
                stack.add(BidirectionalCell(make(f"{self._prefix}l{i}_"), make(f"{self._prefix}r{i}_"),
                                            output_prefix=f"{self._prefix}bi_l{i}_"))
            else:
                stack.add(make(f"{self._prefix}l{i}_"))
            if self._dropout > 0 and i != self._num_layers - 1:
                stack.add(DropoutCell(self._dropout, prefix=f"{self._prefix}_dropout{i}_"))
        return stack
