"""The base of MXNet 1.x's legacy symbolic RNN cells (mx.rnn): RNNParams, BaseRNNCell and the
sequence normalisation every unroll shares.

A cell builds graphc symbols step by step, so an unrolled network is an ordinary symbol that
Module / BucketingModule bind and compile. Parameter variables are named exactly as MXNet names
them (prefix + 'i2h_weight' ...) so that checkpoints move between MXNet and graphc.

Begin states. MXNet's default begin state is `sym.zeros(shape=(0, num_hidden))`, its 0 (the
batch size) filled by MXNet's backward shape inference. graphc infers shapes forward only, so a
default begin state is that zeros node, and the first cell step that reads a zeros node with a 0
in its shape replaces it by zeros of the same shape taken from the step's input, whose batch size
is known (`resolve_states`). Variables given as begin states (func=sym.Variable) keep their
(0, H) shape hint, which infer_shape fills from the graph (symbol_shape_inference.py)."""
from __future__ import annotations

import math

from .. import symbol
from ..symbol import Symbol

def _deferred_info(state):
    """(shape, layout) of a begin state whose batch size is still 0: a default begin state, or
    any `sym.zeros(shape=(0, ...))` given as one (MXNet infers that 0 too)."""
    if not isinstance(state, Symbol) or len(state.list_outputs()) != 1:
        return None
    node = state.value.node
    if node.op == "_zeros" and 0 in tuple(node.attrs.get("shape", ())):
        return tuple(node.attrs["shape"]), node.hints.get("__layout__")
    return None


def zeros_like_batch(inputs, shape, layout, input_batch_axis=0):
    """Zeros of `shape` (0 at the batch axis of `layout`) with the batch size of `inputs`."""
    batch_axis = layout.find("N") if layout and "N" in layout else 0
    x = inputs
    if input_batch_axis:
        x = symbol.swapaxes(x, dim1=0, dim2=input_batch_axis)
    column = symbol.slice_axis(symbol.reshape(x, shape=(0, -1)), axis=1, begin=0, end=1)   # (N, 1)
    rest = [int(d) for i, d in enumerate(shape) if i != batch_axis]
    if any(d == 0 for d in rest):
        raise ValueError(f"rnn begin state: shape {tuple(shape)} has an unknown dimension besides the batch "
                         f"(layout {layout!r}); give the begin states explicitly")
    z = symbol.zeros_like(column)
    z = symbol.broadcast_axis(z, axis=1, size=max(1, math.prod(rest)))
    z = symbol.reshape(z, shape=(0, *rest))
    if batch_axis:
        nd = len(shape)
        z = symbol.transpose(z, axes=tuple(range(1, batch_axis + 1)) + (0,) + tuple(range(batch_axis + 1, nd)))
    return z


def resolve_states(states, inputs, input_batch_axis=0):
    """`states` with each deferred default begin state replaced by zeros sized from `inputs`."""
    out = []
    for s in states:
        info = _deferred_info(s)
        out.append(zeros_like_batch(inputs, info[0], info[1], input_batch_axis) if info else s)
    return out


def normalize_sequence(length, inputs, layout, merge, in_layout=None):
    """(inputs as a list of `length` per-step symbols, or one merged symbol, the time axis):
    merge=False splits a merged symbol along the time axis, merge=True stacks a list into one,
    None keeps what was given."""
    if inputs is None:
        raise AssertionError("unroll(inputs=None) has been deprecated. Please create input variables outside unroll.")
    axis = layout.find("T")
    in_axis = in_layout.find("T") if in_layout is not None else axis
    if isinstance(inputs, Symbol):
        if merge is False:
            if len(inputs.list_outputs()) != 1:
                raise AssertionError("unroll doesn't allow grouped symbol as input. Please convert to list with "
                                     "list(inputs) first or let unroll handle splitting.")
            inputs = list(symbol.split(inputs, axis=in_axis, num_outputs=length, squeeze_axis=1))
    else:
        inputs = list(inputs)
        if length is not None and len(inputs) != length:
            raise AssertionError(f"unroll: {len(inputs)} inputs given for length {length}")
        if merge is True:
            inputs = symbol.Concat(*[symbol.expand_dims(i, axis=axis) for i in inputs], dim=axis)
            in_axis = axis
    if isinstance(inputs, Symbol) and axis != in_axis:
        inputs = symbol.swapaxes(inputs, dim1=axis, dim2=in_axis)
    return inputs, axis


class RNNParams:
    """The parameter variables of one or several cells, by full name, created on first use so
    that cells sharing an RNNParams share weights."""

    def __init__(self, prefix=""):
        self._prefix = prefix
        self._params = {}

    def get(self, name, **kwargs):
        name = self._prefix + name
        if name not in self._params:
            self._params[name] = symbol.Variable(name, **kwargs)
        return self._params[name]


_MODIFIED = ("After applying modifier cells (e.g. DropoutCell) the base cell cannot be called directly. "
             "Call the modifier cell instead.")


class BaseRNNCell:
    """A recurrent cell: __call__(inputs, states) builds one step; unroll builds a sequence.
    Step counters name each step's nodes (prefix + 't3_i2h'), as MXNet's do."""

    def __init__(self, prefix="", params=None):
        if params is None:
            params = RNNParams(prefix)
            self._own_params = True
        else:
            self._own_params = False
        self._prefix = prefix
        self._params = params
        self._modified = False
        self.reset()

    def reset(self):
        """Restart the step and begin-state counters (before each unroll)."""
        self._init_counter = -1
        self._counter = -1
        for cell in getattr(self, "_cells", ()):
            cell.reset()

    def __call__(self, inputs, states):
        raise NotImplementedError(f"{type(self).__name__} cannot be stepped")

    @property
    def params(self):
        self._own_params = False
        return self._params

    @property
    def state_info(self):
        raise NotImplementedError(f"{type(self).__name__}.state_info")

    @property
    def state_shape(self):
        return [ele["shape"] for ele in self.state_info]

    @property
    def _gate_names(self):
        return ()

    def begin_state(self, func=None, **kwargs):
        """One symbol per state, named prefix + 'begin_state_<i>', made by `func` (zeros by
        default; sym.Variable gives inputs to feed) with the state's shape and layout."""
        if self._modified:
            raise AssertionError(_MODIFIED)
        if func is None:
            func = symbol.zeros
        states = []
        for info in self.state_info:
            self._init_counter += 1
            if info is not None:
                kwargs.update(info)
            states.append(func(name=f"{self._prefix}begin_state_{self._init_counter}", **kwargs))
        return states

    def unpack_weights(self, args):
        """args with each fused gate matrix (prefix + 'i2h_weight', rows gate after gate) split
        into one array per gate (prefix + 'i2h_i_weight' ...), as MXNet saves RNN checkpoints."""
        args = dict(args)
        if not self._gate_names:
            return args
        h = self._num_hidden
        for group in ("i2h", "h2h"):
            weight = args.pop(f"{self._prefix}{group}_weight")
            bias = args.pop(f"{self._prefix}{group}_bias")
            for j, gate in enumerate(self._gate_names):
                args[f"{self._prefix}{group}{gate}_weight"] = weight[j * h:(j + 1) * h].copy()
                args[f"{self._prefix}{group}{gate}_bias"] = bias[j * h:(j + 1) * h].copy()
        return args

    def pack_weights(self, args):
        """The inverse of unpack_weights."""
        from .. import ndarray
        args = dict(args)
        if not self._gate_names:
            return args
        for group in ("i2h", "h2h"):
            weights = [args.pop(f"{self._prefix}{group}{gate}_weight") for gate in self._gate_names]
            biases = [args.pop(f"{self._prefix}{group}{gate}_bias") for gate in self._gate_names]
            args[f"{self._prefix}{group}_weight"] = ndarray.concatenate(weights)
            args[f"{self._prefix}{group}_bias"] = ndarray.concatenate(biases)
        return args

    def unroll(self, length, inputs, begin_state=None, layout="NTC", merge_outputs=None):
        """(outputs, states) after `length` steps over `inputs` (one symbol with a T axis in
        `layout`, or a list of per-step symbols); merge_outputs=True gives one symbol, False a
        list, None whichever the inputs were."""
        self.reset()
        inputs, _ = normalize_sequence(length, inputs, layout, False)
        states = self.begin_state() if begin_state is None else begin_state
        outputs = []
        for i in range(length):
            output, states = self(inputs[i], states)
            outputs.append(output)
        outputs, _ = normalize_sequence(length, outputs, layout, merge_outputs)
        return outputs, states

    def _get_activation(self, inputs, activation, **kwargs):
        if isinstance(activation, str):
            return symbol.Activation(inputs, act_type=activation, **kwargs)
        return activation(inputs, **kwargs)


def cells_state_info(cells):
    return sum((c.state_info for c in cells), [])


def cells_begin_state(cells, **kwargs):
    return sum((c.begin_state(**kwargs) for c in cells), [])


def cells_unpack_weights(cells, args):
    for cell in cells:
        args = cell.unpack_weights(args)
    return args


def cells_pack_weights(cells, args):
    for cell in cells:
        args = cell.pack_weights(args)
    return args
