"""Data movement as strided copies: how slicing, joining, splitting and transposing operators
describe what they do so that a backend can run them as plain copy loops.

An operator whose output elements are input elements moved around (no arithmetic) declares
`lowering=Movement(pieces)`; `pieces(in_types, out_types, attrs)` returns a list of `Copy`:
each moves an n-dimensional block from one input to one output, both addressed as
`offset + sum(i_d * stride_d)` in elements. A backend turns each Copy into one loop nest, with
the offsets applied to the buffer pointers (not baked into the loop), so that equal blocks at
different places (the per-step pieces of an unrolled RNN) share one compiled kernel.

Declarations compute their pieces with numpy's own indexing on a `probe`: a view over no real
memory whose address arithmetic gives the offset and strides of any basic-indexing view,
transpose or split of it. A probe never copies: `locate` refuses any result that is not a
view of the probe (fancy indexing, a reshape that would copy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BASE = np.zeros(1, dtype=np.uint8)


@dataclass(frozen=True)
class Copy:
    """For every index i over `shape`: out[dst][dst_offset + i·dst_strides] =
    in[src][src_offset + i·src_strides], or `fill` when src is None (offsets and strides in
    elements)."""
    dst: int
    src: int | None
    shape: tuple
    src_offset: int
    src_strides: tuple
    dst_offset: int
    dst_strides: tuple
    fill: float = 0.0


def probe(shape) -> np.ndarray:
    """A C-contiguous 'array' of `shape` whose elements are 1 byte apart and hold nothing: index
    it like the real array and `locate` the result."""
    shape = tuple(int(d) for d in shape)
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return np.lib.stride_tricks.as_strided(_BASE, shape=shape, strides=tuple(reversed(strides)), writeable=False)


def locate(view: np.ndarray) -> tuple:
    """(offset, strides) in elements of a view of a probe."""
    if not isinstance(view, np.ndarray) or view.itemsize != 1 or not _is_probe_view(view):
        raise ValueError("layout.locate: not a view of a probe (the indexing copied)")
    offset = view.__array_interface__["data"][0] - _BASE.__array_interface__["data"][0]
    return int(offset), tuple(int(s) for s in view.strides)


def _is_probe_view(view) -> bool:
    """Whether `view`'s chain of bases reaches the probes' one byte (as_strided puts a wrapper
    object between them, so follow any `.base`)."""
    base = view
    while base is not None:
        if base is _BASE:
            return True
        base = getattr(base, "base", None)
    return False


def gather(view, out_shape, src=0, dst=0) -> Copy:
    """Output `dst` (contiguous, `out_shape`) is the probe view `view` of input `src`."""
    off, st = locate(view)
    return Copy(dst, src, tuple(view.shape), off, st, 0, locate(probe(out_shape))[1])


def scatter(view, in_shape, src=0, dst=0) -> Copy:
    """Input `src` (contiguous, `in_shape`) goes to the probe view `view` of output `dst`."""
    off, st = locate(view)
    return Copy(dst, src, tuple(view.shape), 0, locate(probe(in_shape))[1], off, st)


def whole(shape, src=0, dst=0) -> Copy:
    st = locate(probe(shape))[1]
    return Copy(dst, src, tuple(shape), 0, st, 0, st)


def fill(view, value, dst=0) -> Copy:
    off, st = locate(view)
    return Copy(dst, None, tuple(view.shape), 0, (0,) * view.ndim, off, st, float(value))


def _addresses(shape, offset, strides) -> np.ndarray:
    idx = np.indices(shape).reshape(len(shape), -1)
    return offset + sum((i * st for i, st in zip(idx, strides)), np.zeros(idx.shape[1], np.int64))


def run_pieces(pieces, inputs, out_types) -> list:
    """The numpy meaning of a piece list (tests compare it with the operator's reference)."""
    outs = [np.zeros(t.shape, t.dtype) for t in out_types]
    for p in pieces:
        dst = outs[p.dst].reshape(-1)
        where = _addresses(p.shape, p.dst_offset, p.dst_strides)
        if p.src is None:
            dst[where] = p.fill
        else:
            src = np.ascontiguousarray(inputs[p.src]).reshape(-1)
            dst[where] = src[_addresses(p.shape, p.src_offset, p.src_strides)]
    return outs


__all__ = ["Copy", "probe", "locate", "gather", "scatter", "whole", "fill", "run_pieces"]
