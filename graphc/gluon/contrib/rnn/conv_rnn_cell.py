"""Convolutional recurrent cells (Shi et al. 2015, "Convolutional LSTM Network"): the i2h and
h2h projections of RNN/LSTM/GRU cells are convolutions, so states are feature maps.

As in MXNet 1.9: `input_shape` is one sample's shape without the batch axis, in `conv_layout`
(NCW, NCHW or NCDHW; NHWC/NDHWC too); the weights are i2h_weight (gates*hidden, in_channels,
*i2h_kernel) and h2h_weight (gates*hidden, hidden, *h2h_kernel) plus i2h_bias/h2h_bias, gates
stacked along the output channels in the order i, f, c, o (LSTM) and r, z, n (GRU). The h2h
kernel must be odd and is padded to keep the state's size; the state has the spatial size of
the i2h convolution's output (stride 1). All shapes follow from input_shape, so the parameters
are never deferred."""
from __future__ import annotations

from ....ops.errors import GraphcError
from ...rnn import HybridRecurrentCell

__all__ = ["Conv1DRNNCell", "Conv2DRNNCell", "Conv3DRNNCell", "Conv1DLSTMCell", "Conv2DLSTMCell",
           "Conv3DLSTMCell", "Conv1DGRUCell", "Conv2DGRUCell", "Conv3DGRUCell"]


def _spec(value, dims, what, cell):
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    if len(value) != dims:
        raise GraphcError(f"{cell}: {what} must be an int or {dims} ints for a {dims}-D convolution, got {value}")
    return value


class _ConvCell(HybridRecurrentCell):
    """Shapes, parameters and the two convolutions the convolutional cells share."""

    _gates = 1
    _dims = 0

    def __init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad, i2h_dilate, h2h_dilate,
                 i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                 conv_layout, activation, prefix, params):
        super().__init__(prefix=prefix, params=params)
        name, dims = type(self).__name__, self._dims
        self._hidden_channels = hidden_channels
        self._input_shape = tuple(input_shape)
        self._conv_layout = conv_layout
        self._activation = activation
        self._i2h_kernel = _spec(i2h_kernel, dims, "i2h_kernel", name)
        self._i2h_pad = _spec(i2h_pad, dims, "i2h_pad", name)
        self._i2h_dilate = _spec(i2h_dilate, dims, "i2h_dilate", name)
        self._h2h_kernel = _spec(h2h_kernel, dims, "h2h_kernel", name)
        self._h2h_dilate = _spec(h2h_dilate, dims, "h2h_dilate", name)
        if any(k % 2 == 0 for k in self._h2h_kernel):
            raise GraphcError(f"{name}: h2h_kernel must be odd (the state keeps its size), got {h2h_kernel}")
        if len(conv_layout) != dims + 2 or len(self._input_shape) != dims + 1:
            raise GraphcError(f"{name}: conv_layout {conv_layout!r} and input_shape {self._input_shape} must have "
                              f"{dims + 2} and {dims + 1} axes")
        self._h2h_pad = tuple(d * (k - 1) // 2 for d, k in zip(self._h2h_dilate, self._h2h_kernel))
        self._channel_axis = conv_layout.find("C")
        channels_first = self._channel_axis == 1
        in_channels = self._input_shape[0 if channels_first else -1]
        spatial = self._input_shape[1:] if channels_first else self._input_shape[:-1]
        out_size = tuple(x + 2 * p - d * (k - 1) if x else 0
                         for x, k, p, d in zip(spatial, self._i2h_kernel, self._i2h_pad, self._i2h_dilate))
        total = hidden_channels * self._gates
        if channels_first:
            i2h_shape = (total, in_channels) + self._i2h_kernel
            h2h_shape = (total, hidden_channels) + self._h2h_kernel
            self._state_shape = (hidden_channels,) + out_size
        else:
            i2h_shape = (total,) + self._i2h_kernel + (in_channels,)
            h2h_shape = (total,) + self._h2h_kernel + (hidden_channels,)
            self._state_shape = out_size + (hidden_channels,)
        self.i2h_weight = self.params.get("i2h_weight", shape=i2h_shape, init=i2h_weight_initializer,
                                          allow_deferred_init=True)
        self.h2h_weight = self.params.get("h2h_weight", shape=h2h_shape, init=h2h_weight_initializer,
                                          allow_deferred_init=True)
        self.i2h_bias = self.params.get("i2h_bias", shape=(total,), init=i2h_bias_initializer,
                                        allow_deferred_init=True)
        self.h2h_bias = self.params.get("h2h_bias", shape=(total,), init=h2h_bias_initializer,
                                        allow_deferred_init=True)

    def infer_shape(self, inputs, *args):
        """input_shape may leave the channel count 0 (unknown): the first input gives it."""
        shape = list(self.i2h_weight.shape)
        axis = 1 if self._channel_axis == 1 else len(shape) - 1
        if not shape[axis]:
            shape[axis] = int(inputs.shape[self._channel_axis])
            self.i2h_weight.shape = tuple(shape)

    def state_info(self, batch_size=0):
        return [{"shape": (batch_size,) + self._state_shape, "__layout__": self._conv_layout}
                for _ in range(self._num_states)]

    def __repr__(self):
        shape = self.i2h_weight.shape
        in_channels = shape[1 if self._channel_axis == 1 else -1]
        return (f"{self.__class__.__name__}({in_channels if in_channels else None} -> {shape[0]}, "
                f"{self._activation}, {self._conv_layout})")

    def _convolutions(self, F, inputs, h, i2h_weight, h2h_weight, i2h_bias, h2h_bias, prefix):
        filters = self._hidden_channels * self._gates
        stride = (1,) * self._dims
        i2h = F.Convolution(data=inputs, weight=i2h_weight, bias=i2h_bias, num_filter=filters,
                            kernel=self._i2h_kernel, stride=stride, pad=self._i2h_pad, dilate=self._i2h_dilate,
                            layout=self._conv_layout, name=prefix + "i2h")
        h2h = F.Convolution(data=h, weight=h2h_weight, bias=h2h_bias, num_filter=filters, kernel=self._h2h_kernel,
                            stride=stride, pad=self._h2h_pad, dilate=self._h2h_dilate, layout=self._conv_layout,
                            name=prefix + "h2h")
        return i2h, h2h

    def _split_gates(self, F, x, prefix):
        return F.SliceChannel(x, num_outputs=self._gates, axis=self._channel_axis, name=prefix)


class _ConvRNN(_ConvCell):
    _gates, _num_states = 1, 1

    def _alias(self):
        return "conv_rnn"

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        prefix = self._step_prefix(F)
        i2h, h2h = self._convolutions(F, inputs, states[0], i2h_weight, h2h_weight, i2h_bias, h2h_bias, prefix)
        output = self._get_activation(F, F.elemwise_add(i2h, h2h, name=prefix + "plus0"), self._activation,
                                      name=prefix + "out")
        return output, [output]


class _ConvLSTM(_ConvCell):
    _gates, _num_states = 4, 2

    def _alias(self):
        return "conv_lstm"

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        prefix = self._step_prefix(F)
        i2h, h2h = self._convolutions(F, inputs, states[0], i2h_weight, h2h_weight, i2h_bias, h2h_bias, prefix)
        gates = self._split_gates(F, F.elemwise_add(i2h, h2h, name=prefix + "plus0"), prefix + "slice")
        in_gate = F.Activation(gates[0], act_type="sigmoid", name=prefix + "i")
        forget_gate = F.Activation(gates[1], act_type="sigmoid", name=prefix + "f")
        in_transform = self._get_activation(F, gates[2], self._activation, name=prefix + "c")
        out_gate = F.Activation(gates[3], act_type="sigmoid", name=prefix + "o")
        next_c = F.elemwise_add(F.elemwise_mul(forget_gate, states[1]), F.elemwise_mul(in_gate, in_transform),
                                name=prefix + "state")
        next_h = F.elemwise_mul(out_gate, self._get_activation(F, next_c, self._activation), name=prefix + "out")
        return next_h, [next_h, next_c]


class _ConvGRU(_ConvCell):
    _gates, _num_states = 3, 1

    def _alias(self):
        return "conv_gru"

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        prefix = self._step_prefix(F)
        i2h, h2h = self._convolutions(F, inputs, states[0], i2h_weight, h2h_weight, i2h_bias, h2h_bias, prefix)
        i2h_r, i2h_z, i2h_n = self._split_gates(F, i2h, prefix + "i2h_slice")
        h2h_r, h2h_z, h2h_n = self._split_gates(F, h2h, prefix + "h2h_slice")
        reset_gate = F.Activation(F.elemwise_add(i2h_r, h2h_r), act_type="sigmoid", name=prefix + "r_act")
        update_gate = F.Activation(F.elemwise_add(i2h_z, h2h_z), act_type="sigmoid", name=prefix + "z_act")
        candidate = self._get_activation(F, F.elemwise_add(i2h_n, F.elemwise_mul(reset_gate, h2h_n)),
                                         self._activation, name=prefix + "h_act")
        keep_new = F.elemwise_sub(F.ones_like(update_gate), update_gate)
        next_h = F.elemwise_add(F.elemwise_mul(keep_new, candidate), F.elemwise_mul(update_gate, states[0]),
                                name=prefix + "out")
        return next_h, [next_h]


def _cell_class(name, base, dims, doc):
    """One public class per (kind, rank): MXNet's signature with that rank's defaults."""
    zeros, ones, layout = (0,) * dims, (1,) * dims, ("NCW", "NCHW", "NCDHW")[dims - 1]

    def __init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad=zeros, i2h_dilate=ones,
                 h2h_dilate=ones, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer="zeros", h2h_bias_initializer="zeros", conv_layout=layout, activation="tanh",
                 prefix=None, params=None):
        base.__init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad, i2h_dilate, h2h_dilate,
                      i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                      conv_layout, activation, prefix, params)

    return type(name, (base,), {"__init__": __init__, "_dims": dims, "__module__": __name__, "__qualname__": name,
                                "__doc__": f"{dims}-D convolutional {doc} Default layout {layout}."})


_RNN_DOC = "Elman cell: h' = activation(conv(x) + conv(h))."
_LSTM_DOC = "LSTM cell, gates i, f, c, o along the channels; states [h, c]."
_GRU_DOC = "GRU cell, gates r, z, n along the channels; states [h]."

Conv1DRNNCell = _cell_class("Conv1DRNNCell", _ConvRNN, 1, _RNN_DOC)
Conv2DRNNCell = _cell_class("Conv2DRNNCell", _ConvRNN, 2, _RNN_DOC)
Conv3DRNNCell = _cell_class("Conv3DRNNCell", _ConvRNN, 3, _RNN_DOC)
Conv1DLSTMCell = _cell_class("Conv1DLSTMCell", _ConvLSTM, 1, _LSTM_DOC)
Conv2DLSTMCell = _cell_class("Conv2DLSTMCell", _ConvLSTM, 2, _LSTM_DOC)
Conv3DLSTMCell = _cell_class("Conv3DLSTMCell", _ConvLSTM, 3, _LSTM_DOC)
Conv1DGRUCell = _cell_class("Conv1DGRUCell", _ConvGRU, 1, _GRU_DOC)
Conv2DGRUCell = _cell_class("Conv2DGRUCell", _ConvGRU, 2, _GRU_DOC)
Conv3DGRUCell = _cell_class("Conv3DGRUCell", _ConvGRU, 3, _GRU_DOC)
