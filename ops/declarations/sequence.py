"""Sequence operators: Embedding (a row gather whose gradient scatter-adds through
`_backward_take`), SequenceMask, SequenceLast, SequenceReverse (variable-length batches laid out
time-major (axis=0) or batch-major (axis=1); lengths arrive as floats, like MXNet's)."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import OpAttributeError, ShapeError
from ..registry import OpDef, Take, register
from .common import like


# -- Embedding -------------------------------------------------------------------------------------
_EMB_ATTRS = {"input_dim": Attr("int"), "output_dim": Attr("int"), "dtype": Attr("dtype", "float32"),
              "sparse_grad": Attr("bool", False)}


def _emb_infer(idx, w, input_dim, output_dim, dtype, sparse_grad):
    if w.shape != (input_dim, output_dim):
        raise ShapeError(f"Embedding: weight has shape {w.shape}, expected ({input_dim}, {output_dim}) "
                         f"(indices {idx.shape})")
    return like(w, idx.shape + (output_dim,))


def _emb_np(idx, w, input_dim, output_dim, dtype, sparse_grad):
    from .slicing import fix_indices
    return np.ascontiguousarray(w[fix_indices(idx, input_dim)])


def _emb_grad(F, ins, outs, gs, attrs):
    idx, w = ins
    return [None, F._backward_take(gs[0], idx, axis=0, mode="clip", shape=w.shape)]


def _emb_infer_missing(in_types, attrs):
    """The weight is (input_dim, output_dim) in the op's dtype, whatever the indices' shape."""
    idx, w = in_types
    if w is None and idx is not None:
        w = like(idx, (attrs["input_dim"], attrs["output_dim"])).with_(dtype=attrs["dtype"])
    return [idx, w]


register(OpDef("Embedding", infer=_emb_infer, compute=_emb_np, inputs=("data", "weight"), attrs=_EMB_ATTRS,
               infer_missing=_emb_infer_missing,
               gradient=_emb_grad, lowering=Take(data=1, index=0, axis=lambda attrs, ndim: 0, mode=lambda attrs: "clip"),
               doc="weight[data] (indices clipped to [0, input_dim)); the weight gradient is a dense scatter-add."))


# -- the Sequence* family --------------------------------------------------------------------------
_SEQ_ATTRS = {"use_sequence_length": Attr("bool", False), "axis": Attr("int", 0)}


def _seq_inputs(attrs):
    return ("data", "sequence_length") if attrs["use_sequence_length"] else ("data",)


def _seq_check(op, x, lengths, axis, axes=(0, 1)):
    if axis not in axes:
        raise OpAttributeError(f"{op}: axis={axis} must be one of {list(axes)} (data {x.shape})")
    if x.ndim < 2:
        raise ShapeError(f"{op}: data {x.shape} must have at least 2 dimensions (time and batch)")
    batch = x.shape[1 - axis]
    if lengths is not None and lengths.shape != (batch,):
        raise ShapeError(f"{op}: sequence_length has shape {lengths.shape}, expected ({batch},) for data {x.shape} "
                         f"with time axis {axis}")


def _lengths(x, lengths, axis):
    t = x.shape[axis]
    if lengths is None:
        return np.full(x.shape[1 - axis], t, dtype=np.int64)
    return np.clip(np.asarray(lengths).astype(np.int64), 0, t)


def _time_mask(x, lengths, axis):
    """Boolean (T, B) or (B, T) mask broadcastable to x: True where the step is inside the sequence."""
    t = np.arange(x.shape[axis])
    n = _lengths(x, lengths, axis)
    m = t[:, None] < n[None, :] if axis == 0 else t[None, :] < n[:, None]
    return m.reshape(m.shape + (1,) * (x.ndim - 2))


def _mask_infer(x, lengths=None, *, use_sequence_length, axis, value):
    _seq_check("SequenceMask", x, lengths, axis)
    return like(x)


def _mask_np(x, lengths=None, *, use_sequence_length, axis, value):
    if not use_sequence_length:
        return x.copy()
    return np.where(_time_mask(x, lengths, axis), x, x.dtype.type(value))


def _mask_grad(F, ins, outs, gs, attrs):
    if not attrs["use_sequence_length"]:
        return [gs[0]]
    return [F.SequenceMask(gs[0], ins[1], use_sequence_length=True, axis=attrs["axis"], value=0.0), None]


register(OpDef("SequenceMask", infer=_mask_infer, compute=_mask_np, inputs=_seq_inputs,
               attrs={**_SEQ_ATTRS, "value": Attr("float", 0.0)}, gradient=_mask_grad,
               doc="Steps at or beyond each sequence's length become `value`."))


def _last_infer(x, lengths=None, *, use_sequence_length, axis):
    _seq_check("SequenceLast", x, lengths, axis)
    return like(x, tuple(d for i, d in enumerate(x.shape) if i != axis))


def _last_np(x, lengths=None, *, use_sequence_length, axis):
    n = _lengths(x, lengths if use_sequence_length else None, axis)
    last = np.maximum(n - 1, 0)
    b = np.arange(x.shape[1 - axis])
    return np.ascontiguousarray(x[last, b] if axis == 0 else x[b, last])


def _last_grad(F, ins, outs, gs, attrs):
    x, g, axis = ins[0], gs[0], attrs["axis"]
    t = x.shape[axis]
    if not attrs["use_sequence_length"]:
        begin = (None,) * axis + (t - 1,)
        end = (None,) * axis + (t,)
        return [F._slice_assign(F.zeros_like(x), F.expand_dims(g, axis=axis), begin=begin, end=end, step=())]
    last = F._maximum_scalar(F._minus_scalar(F.clip(ins[1], a_min=0.0, a_max=float(t)), scalar=1.0), scalar=0.0)
    hot = F.one_hot(last, depth=t, dtype=x.dtype)              # (B, T)
    if axis == 0:
        hot = F.transpose(hot, axes=(1, 0))                     # (T, B)
    hot = F.Reshape(hot, shape=hot.shape + (1,) * (x.ndim - 2))
    return [hot * F.expand_dims(g, axis=axis), None]


register(OpDef("SequenceLast", infer=_last_infer, compute=_last_np, inputs=_seq_inputs, attrs=_SEQ_ATTRS,
               gradient=_last_grad, doc="Each sequence's last valid step (the last step without lengths)."))


def _rev_infer(x, lengths=None, *, use_sequence_length, axis):
    _seq_check("SequenceReverse", x, lengths, axis, axes=(0,))
    return like(x)


def _rev_np(x, lengths=None, *, use_sequence_length, axis):
    n = _lengths(x, lengths if use_sequence_length else None, 0)
    t = np.arange(x.shape[0])[:, None]
    src = np.where(t < n[None, :], n[None, :] - 1 - t, t)      # (T, B)
    return np.ascontiguousarray(x[src, np.arange(x.shape[1])[None, :]])


def _rev_grad(F, ins, outs, gs, attrs):
    if not attrs["use_sequence_length"]:
        return [F.SequenceReverse(gs[0], axis=0)]
    return [F.SequenceReverse(gs[0], ins[1], use_sequence_length=True, axis=0), None]


register(OpDef("SequenceReverse", infer=_rev_infer, compute=_rev_np, inputs=_seq_inputs, attrs=_SEQ_ATTRS,
               gradient=_rev_grad, doc="Reverse the first `length` steps of each sequence (time axis 0); "
                                       "padding steps stay where they are."))
