"""VariationalDropoutCell (Gal & Ghahramani 2016: one dropout mask per sequence, not per step)
and LSTMPCell (Sak et al. 2014: an LSTM whose recurrent state is a projection of its hidden
vector), as in MXNet 1.9's gluon.contrib.rnn."""
from __future__ import annotations

from ...parameter import tensor_types
from ...rnn import BidirectionalCell, HybridRecurrentCell, ModifierCell, SequentialRNNCell
from ...rnn.unroll import format_sequence, get_begin_state, mask_sequence_variable_length
from ....ops.errors import GraphcError

__all__ = ["VariationalDropoutCell", "LSTMPCell"]


class VariationalDropoutCell(ModifierCell):
    """Drops the same units of the inputs (drop_inputs), of the first state (drop_states) and of
    the outputs (drop_outputs) at every step of a sequence: the masks are drawn at the first step
    after reset() (unroll resets) and reused. Dropout only acts in training, as everywhere."""

    def __init__(self, base_cell, drop_inputs=0.0, drop_states=0.0, drop_outputs=0.0):
        if drop_states and isinstance(base_cell, BidirectionalCell):
            raise GraphcError("BidirectionalCell doesn't support variational state dropout. Please add "
                              "VariationalDropoutCell to the cells underneath instead.")
        if drop_states and isinstance(base_cell, SequentialRNNCell) and getattr(base_cell, "_bidirectional", False):
            raise GraphcError("Bidirectional SequentialRNNCell doesn't support variational state dropout. Please "
                              "add VariationalDropoutCell to the cells underneath instead.")
        super().__init__(base_cell)
        self.drop_inputs = drop_inputs
        self.drop_states = drop_states
        self.drop_outputs = drop_outputs
        self.drop_inputs_mask = self.drop_states_mask = self.drop_outputs_mask = None

    def _alias(self):
        return "vardrop"

    def reset(self):
        super().reset()
        self.drop_inputs_mask = self.drop_states_mask = self.drop_outputs_mask = None

    @staticmethod
    def _mask(F, like, p):
        return F.Dropout(F.ones_like(like), p=p)

    def hybrid_forward(self, F, inputs, states):
        if self.drop_states and self.drop_states_mask is None:
            self.drop_states_mask = self._mask(F, states[0], self.drop_states)
        if self.drop_inputs and self.drop_inputs_mask is None:
            self.drop_inputs_mask = self._mask(F, inputs, self.drop_inputs)
        if self.drop_states:
            states = [F.elemwise_mul(states[0], self.drop_states_mask)] + list(states[1:])
        if self.drop_inputs:
            inputs = F.elemwise_mul(inputs, self.drop_inputs_mask)
        output, next_states = self.base_cell(inputs, states)
        if self.drop_outputs:
            if self.drop_outputs_mask is None:
                self.drop_outputs_mask = self._mask(F, output, self.drop_outputs)
            output = F.elemwise_mul(output, self.drop_outputs_mask)
        return output, next_states

    def __repr__(self):
        return f"{self.__class__.__name__}(p_out = {self.drop_outputs}, p_state = {self.drop_states})"

    def unroll(self, length, inputs, begin_state=None, layout="NTC", merge_outputs=None, valid_length=None):
        """Without state dropout the masks need not be applied step by step: one Dropout over
        the whole sequence, its mask shared along the time axis (axes=(time,)), before and after
        the base cell's own unroll (which may then be a fused layer-like loop)."""
        if self.drop_states:
            return super().unroll(length, inputs, begin_state, layout, merge_outputs, valid_length=valid_length)
        self.reset()
        inputs, axis, F, batch_size = format_sequence(length, inputs, layout, True)
        states = get_begin_state(self, F, begin_state, inputs, batch_size, layout)
        if self.drop_inputs:
            inputs = F.Dropout(inputs, p=self.drop_inputs, axes=(axis,))
        self.base_cell._modified = False
        try:
            outputs, states = self.base_cell.unroll(length, inputs, states, layout, merge_outputs=True,
                                                    valid_length=valid_length)
        finally:
            self.base_cell._modified = True
        if self.drop_outputs:
            outputs = F.Dropout(outputs, p=self.drop_outputs, axes=(axis,))
        merge_outputs = isinstance(outputs, tensor_types()) if merge_outputs is None else merge_outputs
        outputs, _, _, _ = format_sequence(length, outputs, layout, merge_outputs)
        if valid_length is not None:      # dropout's rescaling must not leak into the padded steps
            outputs = mask_sequence_variable_length(F, outputs, length, valid_length, axis, merge_outputs)
        return outputs, states


class LSTMPCell(HybridRecurrentCell):
    """LSTM with a projected recurrent state: r = W_h2r (o * tanh(c)), fed back instead of h.
    States [r (batch, projection_size), c (batch, hidden_size)]; parameters i2h_weight
    (4*hidden, input), h2h_weight (4*hidden, projection), h2r_weight (projection, hidden),
    i2h_bias, h2h_bias; gates i, f, c, o."""

    def __init__(self, hidden_size, projection_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 h2r_weight_initializer=None, i2h_bias_initializer="zeros", h2h_bias_initializer="zeros",
                 input_size=0, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._hidden_size = hidden_size
        self._input_size = input_size
        self._projection_size = projection_size
        gates = 4 * hidden_size
        self.i2h_weight = self.params.get("i2h_weight", shape=(gates, input_size), init=i2h_weight_initializer,
                                          allow_deferred_init=True)
        self.h2h_weight = self.params.get("h2h_weight", shape=(gates, projection_size),
                                          init=h2h_weight_initializer, allow_deferred_init=True)
        self.h2r_weight = self.params.get("h2r_weight", shape=(projection_size, hidden_size),
                                          init=h2r_weight_initializer, allow_deferred_init=True)
        self.i2h_bias = self.params.get("i2h_bias", shape=(gates,), init=i2h_bias_initializer,
                                        allow_deferred_init=True)
        self.h2h_bias = self.params.get("h2h_bias", shape=(gates,), init=h2h_bias_initializer,
                                        allow_deferred_init=True)

    def infer_shape(self, inputs, *args):
        features = 1
        for s in inputs.shape[1:]:
            features *= int(s)
        self.i2h_weight.shape = (4 * self._hidden_size, features)

    def state_info(self, batch_size=0):
        return [{"shape": (batch_size, self._projection_size), "__layout__": "NC"},
                {"shape": (batch_size, self._hidden_size), "__layout__": "NC"}]

    def _alias(self):
        return "lstmp"

    def __repr__(self):
        shape, proj = self.i2h_weight.shape, self.h2r_weight.shape
        return f"{self.__class__.__name__}({shape[1] if shape[1] else None} -> {shape[0]} -> {proj[0]})"

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, h2r_weight, i2h_bias, h2h_bias):
        prefix = self._step_prefix(F)
        gates_n = 4 * self._hidden_size
        i2h = F.FullyConnected(data=inputs, weight=i2h_weight, bias=i2h_bias, num_hidden=gates_n, name=prefix + "i2h")
        h2h = F.FullyConnected(data=states[0], weight=h2h_weight, bias=h2h_bias, num_hidden=gates_n,
                               name=prefix + "h2h")
        gates = F.SliceChannel(F.elemwise_add(i2h, h2h, name=prefix + "plus0"), num_outputs=4, name=prefix + "slice")
        in_gate = F.Activation(gates[0], act_type="sigmoid", name=prefix + "i")
        forget_gate = F.Activation(gates[1], act_type="sigmoid", name=prefix + "f")
        in_transform = F.Activation(gates[2], act_type="tanh", name=prefix + "c")
        out_gate = F.Activation(gates[3], act_type="sigmoid", name=prefix + "o")
        next_c = F.elemwise_add(F.elemwise_mul(forget_gate, states[1]), F.elemwise_mul(in_gate, in_transform),
                                name=prefix + "state")
        hidden = F.elemwise_mul(out_gate, F.Activation(next_c, act_type="tanh"), name=prefix + "hidden")
        next_r = F.FullyConnected(data=hidden, weight=h2r_weight, num_hidden=self._projection_size, no_bias=True,
                                  name=prefix + "out")
        return next_r, [next_r, next_c]


def dynamic_unroll(cell, inputs, begin_state, drop_inputs=0, drop_outputs=0, layout="TNC", valid_length=None):
    """Run `cell` over a sequence with contrib.foreach (MXNet 1.9's gluon.contrib.rnn.rnn_cell.
    dynamic_unroll): one loop over time instead of `unroll`'s per-step Python calls. Returns
    (outputs in `layout`, last states). drop_inputs / drop_outputs apply one dropout mask per
    sequence, shared along time (MXNet 1.9 passes the time axis of the input layout after moving
    time first, so for 'NTC' it shares its mask across the batch instead; graphc shares it along
    time for both layouts, which is what the arguments promise). With valid_length, states stop
    changing after each sequence's last valid step and padded outputs are zero."""
    inputs, axis, F, _ = format_sequence(0, inputs, layout, True)
    if axis != 0:
        inputs = F.swapaxes(inputs, dim1=0, dim2=axis)        # foreach walks axis 0
    if drop_inputs:
        inputs = F.Dropout(inputs, p=drop_inputs, axes=(0,))
    states = list(begin_state)
    if valid_length is None:
        def step(x, carried):
            return cell(x, carried)
    else:
        states.append(F.zeros((1,)))                          # the step number rides along the states

        def step(x, carried):
            *previous, index = carried
            out, new_states = cell(x, previous)
            running = F.broadcast_greater(valid_length, index)
            kept = [F.where(running, new, old) for new, old in zip(new_states, previous)]
            return out, kept + [index + 1]
    outputs, states = F.contrib.foreach(step, inputs, states)
    if valid_length is not None:
        states = states[:-1]
        outputs = F.SequenceMask(outputs, sequence_length=valid_length, use_sequence_length=True, axis=0)
    if drop_outputs:
        outputs = F.Dropout(outputs, p=drop_outputs, axes=(0,))
    if axis != 0:
        outputs = F.swapaxes(outputs, dim1=0, dim2=axis)
    return outputs, states
