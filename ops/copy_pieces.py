"""Copy pieces (graphc.ops.layout.Copy) for operators that replicate or rearrange elements
without arithmetic: broadcast_like, tile, repeat, Pad, UpSampling (nearest).

Each of them is a strided copy whose source strides are 0 along the replicated axes (tile,
repeat, broadcasting, nearest upsampling, edge padding) or negative (reflect padding), so the
backend runs them as plain copy loops (runtime/movement.py) instead of the numpy reference.
The functions take the same (in_types, out_types, attrs) as `Movement.pieces`, keeping the
geometry here and the attribute parsing in the declarations.
"""
from __future__ import annotations

import itertools

import numpy as np

from .layout import Copy, locate, probe


def contiguous(shape) -> tuple:
    """Element strides of a C-contiguous array of `shape`."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= max(int(d), 1)
    return tuple(reversed(out))


def broadcast_copy(in_shape, out_shape, src=0) -> Copy:
    """Input `src` of `in_shape` broadcast (numpy rules) to a contiguous output of `out_shape`."""
    view = np.broadcast_to(probe(in_shape), tuple(out_shape))
    off, st = locate(view)
    return Copy(0, src, tuple(out_shape), off, st, 0, contiguous(out_shape))


def tile_copy(in_shape, reps) -> Copy:
    """np.tile: the output seen as (r0, d0, r1, d1, ...) reads input index (d0, d1, ...) for
    every repeat index r: the repeat axes have source stride 0."""
    n = max(len(in_shape), len(reps))
    dims = (1,) * (n - len(in_shape)) + tuple(in_shape)
    reps = (1,) * (n - len(reps)) + tuple(reps)
    own = contiguous(dims)
    shape = tuple(v for pair in zip(reps, dims) for v in pair)
    src_st = tuple(v for s in own for v in (0, s))
    return Copy(0, 0, shape, 0, src_st, 0, contiguous(shape))


def repeat_copy(in_shape, repeats, axis) -> Copy:
    """np.repeat along `axis` (None: of the flattened input): the output seen as
    (..., n_axis, repeats, ...) reads input (..., i, ...) for every repeat index."""
    if axis is None:
        in_shape, axis = (int(np.prod(in_shape)),), 0
    own = contiguous(in_shape)
    shape = tuple(in_shape[:axis + 1]) + (repeats,) + tuple(in_shape[axis + 1:])
    src_st = own[:axis + 1] + (0,) + own[axis + 1:]
    return Copy(0, 0, shape, 0, src_st, 0, contiguous(shape))


def _pad_regions(n, before, after, mode):
    """Along one axis of length n padded by (before, after): [(out_start, length, src_start,
    src_step)] for the before band, the core and the after band; src_step None = a fill."""
    core = (before, n, 0, 1)
    if mode == "constant":
        bands = [(0, before, None, None), (before + n, after, None, None)]
    elif mode == "edge":
        bands = [(0, before, 0, 0), (before + n, after, n - 1, 0)]
    else:   # reflect, edge excluded: out j < before copies before - j; before + n + k copies n - 2 - k
        bands = [(0, before, before, -1), (before + n, after, n - 2, -1)]
    return [r for r in (bands[0], core, bands[1]) if r[1] > 0]


def pad_copies(in_shape, widths, mode, fill) -> list:
    """Pad as one Copy per block of the output (each axis cut into before band, core, after
    band): blocks in the core of every axis copy the input, the others copy its edge or its
    reflection (stride 0 or -1 along the padded axes) or, in constant mode, are filled."""
    out_shape = tuple(n + a + b for n, (a, b) in zip(in_shape, widths))
    src_own, dst_own = contiguous(in_shape), contiguous(out_shape)
    per_axis = [_pad_regions(n, a, b, mode) for n, (a, b) in zip(in_shape, widths)]
    pieces = []
    for block in itertools.product(*per_axis):
        shape = tuple(r[1] for r in block)
        dst_off = sum(r[0] * s for r, s in zip(block, dst_own))
        if any(r[3] is None for r in block):
            pieces.append(Copy(0, None, shape, 0, (), dst_off, dst_own, fill=float(fill)))
            continue
        src_off = sum(r[2] * s for r, s in zip(block, src_own))
        src_st = tuple(r[3] * s for r, s in zip(block, src_own))
        pieces.append(Copy(0, 0, shape, src_off, src_st, dst_off, dst_own))
    return pieces


def upsample_copies(in_shapes, scales, out_shape) -> list:
    """Nearest upsampling of NCHW inputs concatenated on channels: input k, seen as
    (n, c, h, s, w, s) on the output side, reads (n, c, h, w) with stride 0 on both s axes."""
    N, C, H, W = out_shape
    pieces, c0 = [], 0
    for src, (shape, s) in enumerate(zip(in_shapes, scales)):
        n, c, h, w = shape
        dst = (C * H * W, H * W, s * W, W, s, 1)
        src_st = (c * h * w, h * w, w, 0, 1, 0)
        pieces.append(Copy(0, src, (n, c, h, s, w, s), 0, src_st, c0 * H * W, dst))
        c0 += c
    return pieces


__all__ = ["broadcast_copy", "tile_copy", "repeat_copy", "pad_copies", "upsample_copies", "contiguous"]
