"""Basic indexing (x[1:3, None, ..., 2]) as an operator, so that it records onto the tape and
traces into graphs like any other op. The key is an encoded tuple: ('i', n) an integer,
('s', start, stop, step) a slice, ('n',) a new axis, ('e',) an ellipsis.

As in MXNet 1.x, an index that picks a single element (x[0, 1]) gives shape (1,), not 0-d."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from ..types import TensorType


def decode_index(key):
    out = []
    for k in key:
        tag = k[0]
        out.append(slice(*k[1:]) if tag == "s" else None if tag == "n" else Ellipsis if tag == "e" else int(k[1]))
    return tuple(out)


def _infer(x, key):
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=x.shape, strides=(0,) * x.ndim)
    try:
        shape = probe[decode_index(key)].shape
    except IndexError as exc:
        raise ShapeError(f"_basic_index: index {decode_index(key)} does not fit shape {x.shape} ({exc})") from None
    return TensorType(shape or (1,), x.dtype, x.device)


def _compute(x, key):
    out = np.array(x[decode_index(key)], copy=True)
    return out.reshape(1) if out.ndim == 0 else out


def _grad(F, ins, outs, gs, attrs):
    return [F._basic_index_backward(gs[0], ins[0], key=attrs["key"])]


register(OpDef("_basic_index", infer=_infer, compute=_compute, attrs={"key": Attr("any")}, gradient=_grad,
               doc="x[key] for a basic (int/slice/None/...) numpy index."))


def _scatter(g, like, key):
    out = np.zeros(like.shape, g.dtype)
    index = decode_index(key)
    out[index] += g.reshape(out[index].shape)   # g is (1,) where the index picked one element
    return out


def _scatter_grad(F, ins, outs, gs, attrs):
    return [F._basic_index(gs[0], key=attrs["key"]), None]


register(OpDef("_basic_index_backward", inputs=("grad", "like"),
               infer=lambda g, like, key: TensorType(like.shape, g.dtype, g.device),
               compute=_scatter, attrs={"key": Attr("any")}, gradient=_scatter_grad))
