"""Sequence plumbing of the recurrent cells' `unroll`: a sequence given as one tensor or as a
list of steps, in NTC or TNC, as NDArrays or Symbols (typed while tracing, or `sym.Variable`s
whose shapes wait for infer_shape), turned into the form a cell needs; begin states; and the
valid_length handling (mask, last step, reverse the valid part) MXNet 1.9's cells use.

Nothing here knows a particular cell: rnn_cell.py calls these as MXNet's rnn_cell.py calls its
module-level helpers.
"""
from __future__ import annotations

from ..parameter import tensor_types


def is_symbolic(x):
    from ...ops.builder import Handle
    return isinstance(x, Handle)


def namespace(x):
    if is_symbolic(x):
        from ... import symbol
        return symbol
    from ... import ndarray
    return ndarray


def cells_state_info(cells, batch_size):
    return sum([c.state_info(batch_size) for c in cells], [])


def cells_begin_state(cells, **kwargs):
    return sum([c.begin_state(**kwargs) for c in cells], [])


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def split_steps(F, inputs, axis, length):
    steps = F.split(inputs, axis=axis, num_outputs=length, squeeze_axis=1)
    if is_symbolic(steps):
        return [steps[i] for i in range(length)] if length > 1 else [steps]
    return as_list(steps)


def known_shape(x):
    """x's shape, or None for a symbol whose shape waits for infer_shape."""
    if is_symbolic(x) and x.value.type is None:
        return None
    return tuple(x.shape)


def format_sequence(length, inputs, layout, merge, in_layout=None):
    """Bring `inputs` (one tensor with a time axis, or a list of per-step (N, C) tensors) into
    the form asked for: merge=False -> list of steps, True -> one tensor laid out as `layout`,
    None -> leave as is. Returns (inputs, time axis, F, batch size)."""
    if layout not in ("TNC", "NTC"):
        raise ValueError(f"unroll: layout must be 'TNC' or 'NTC', got {layout!r}")
    axis = layout.find("T")
    batch_axis = layout.find("N")
    in_axis = in_layout.find("T") if in_layout else axis
    if isinstance(inputs, tensor_types()):
        F = namespace(inputs)
        shape = known_shape(inputs)
        batch_size = int(shape[batch_axis]) if shape else 0
        if merge is False:
            if is_symbolic(inputs) and len(inputs) != 1:
                raise ValueError("unroll doesn't allow grouped symbol as input. Please convert to list with "
                                 "list(inputs) first or let unroll handle splitting.")
            steps = int(shape[in_axis]) if shape else length
            if steps is None:
                raise ValueError("unroll: a symbol of unknown shape needs the length to split it into steps")
            if length is not None and length != steps:
                raise ValueError(f"unroll: length={length} but the inputs have {steps} steps along axis "
                                 f"{in_axis} (shape {shape})")
            inputs = split_steps(F, inputs, in_axis, steps)
    else:
        inputs = list(inputs)
        if length is not None and len(inputs) != length:
            raise ValueError(f"unroll: length={length} but {len(inputs)} input steps were given")
        F = namespace(inputs[0])
        shape = known_shape(inputs[0])
        batch_size = int(shape[0]) if shape else 0
        if merge is True:
            inputs = F.stack(*inputs, axis=axis)
            in_axis = axis
    if isinstance(inputs, tensor_types()) and axis != in_axis:
        inputs = F.swapaxes(inputs, dim1=axis, dim2=in_axis)
    return inputs, axis, F, batch_size


def get_begin_state(cell, F, begin_state, inputs, batch_size, layout="NTC"):
    if begin_state is not None:
        return begin_state
    first = inputs if isinstance(inputs, tensor_types()) else inputs[0]
    if F.__name__.endswith("ndarray"):
        return cell.begin_state(batch_size=batch_size, func=F.zeros, ctx=first.context)
    if batch_size:
        return cell.begin_state(batch_size=batch_size, func=F.zeros)
    batch_axis = layout.find("N") if isinstance(inputs, tensor_types()) else 0
    return cell.begin_state(batch_size=0, func=zeros_batched_like(F, first, batch_axis))


def zeros_batched_like(F, ref, batch_axis):
    """A begin_state `func` for symbols of unknown batch size: zeros of the state's shape with
    the batch dimension (0 in state_info) taken from `ref` when the graph gets its shapes."""
    def zeros(name, shape, dtype="float32", **_):
        seed = F.zeros(shape=(1,) + tuple(shape[1:]), dtype=dtype)
        return F.broadcast_like(seed, ref, lhs_axes=(0,), rhs_axes=(batch_axis,), name=name)
    zeros.__module__ = F.__name__
    return zeros


def mask_sequence_variable_length(F, data, length, valid_length, time_axis, merge):
    """Zero each sequence's steps from its valid length on; data a tensor or a list of steps."""
    if not isinstance(data, tensor_types()):
        data = F.stack(*data, axis=time_axis)
    outputs = F.SequenceMask(data, sequence_length=valid_length, use_sequence_length=True, axis=time_axis)
    return outputs if merge else split_steps(F, outputs, time_axis, length)


def reverse_sequences(sequences, length, valid_length=None):
    """The list of steps backwards; with valid_length each sequence's valid part is reversed
    in place and its padding stays where it is."""
    if valid_length is None:
        return list(reversed(sequences))
    F = namespace(sequences[0])
    flipped = F.SequenceReverse(F.stack(*sequences, axis=0), sequence_length=valid_length,
                                use_sequence_length=True)
    return split_steps(F, flipped, 0, length)
