"""The optional `length` input of softmax and softmin (use_length=True): only the first
length[i] positions along `axis` take part; the rest of the output is 0, as MXNet 1.9.1.
`with_length` wraps an operator's infer/compute/gradient written without it, so the
operators stay declared in one place each."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def length_inputs(attrs):
    return ("data", "length") if attrs["use_length"] else ("data",)


def _mask(shape, length, axis):
    """True at positions before each row's length along `axis`."""
    axis = axis % len(shape)
    pos = np.arange(shape[axis]).reshape((-1,) + (1,) * (len(shape) - axis - 1))
    return pos < np.expand_dims(length.astype(np.int64), axis)


def with_length(name, infer, compute, gradient, fill="lowest"):
    """fill: what masked positions hold before `compute` runs, so that they get no weight:
    the lowest value for softmax, the highest for softmin (which negates)."""
    def infer2(x, *length, **attrs):
        if length:
            want = x.shape[:attrs["axis"] % x.ndim] + x.shape[attrs["axis"] % x.ndim + 1:]
            if length[0].shape != want:
                raise ShapeError(f"{name}: length must have data's shape without axis {attrs['axis']}, "
                                 f"{want}, got {length[0].shape}")
        elif attrs.get("use_length"):
            raise ShapeError(f"{name}: use_length=True needs a length input")
        return infer(x, **attrs)

    def compute2(x, *length, **attrs):
        if not length:
            return compute(x, **attrs)
        keep = _mask(x.shape, length[0], attrs["axis"])
        info = np.finfo(x.dtype) if x.dtype.kind == "f" else np.iinfo(x.dtype)
        out = compute(np.where(keep, x, info.min if fill == "lowest" else info.max).astype(x.dtype), **attrs)
        return np.where(keep, out, 0).astype(out.dtype)

    def gradient2(F, ins, outs, gs, attrs):
        # masked outputs are 0, so the softmax Jacobian rule gives them no gradient already
        return list(gradient(F, ins[:1], outs, gs, attrs)) + [None] * (len(ins) - 1)
    return {"infer": infer2, "compute": compute2, "gradient": gradient2, "inputs": length_inputs}
