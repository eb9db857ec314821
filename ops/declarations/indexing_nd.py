"""Indexing by coordinate tuples and per-row picks: gather_nd, scatter_nd (and the summing
adjoint gather_nd's gradient needs), batch_take, and reverse/flip.

Indices arrive as arrays of any dtype (MXNet passes float32 coordinates): they are rounded
toward zero, negative coordinates count from the end (MXNet 1.9's gather_nd), and a coordinate
still out of range is an IndexRangeError naming the operator, never a numpy IndexError.
"""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import IndexRangeError, ShapeError
from .. import layout as L
from ..registry import Movement, OpDef, register
from ..types import TensorType
from .common import normalize_axes


def _coordinates(op, indices, dims) -> tuple:
    """indices (M, Y...) -> M integer arrays of shape Y, wrapped and range-checked."""
    idx = np.trunc(np.asarray(indices)).astype(np.int64)
    out = []
    for axis, (row, d) in enumerate(zip(idx, dims)):
        fixed = np.where(row < 0, row + d, row)
        bad = (fixed < 0) | (fixed >= d)
        if bad.any():
            raise IndexRangeError(f"{op}: index {int(row[bad].flat[0])} on axis {axis} is out of range "
                                  f"for a dimension of size {d}")
        out.append(fixed)
    return tuple(out)


def _check_indices(op, indices, dims_name, ndim):
    if indices.ndim < 1:
        raise ShapeError(f"{op}: indices must have at least one dimension (M, ...), got shape {indices.shape}")
    m = indices.shape[0]
    if m > ndim:
        raise ShapeError(f"{op}: indices address {m} axes (first dimension of {indices.shape}) but "
                         f"{dims_name} has only {ndim}")
    return m


# -- gather_nd: out[y...] = data[indices[0, y...], ..., indices[M-1, y...], ...] ---------------------

def _gather_infer(data, indices):
    m = _check_indices("gather_nd", indices, f"data {data.shape}", data.ndim)
    # every axis addressed with one point: MXNet 1.x writes the lone element's shape as (1,)
    return TensorType(indices.shape[1:] + data.shape[m:] or (1,), data.dtype, data.device)


def _gather_np(data, indices):
    out = data[_coordinates("gather_nd", indices, data.shape)]
    return np.array(out, copy=True).reshape(indices.shape[1:] + data.shape[len(indices):] or (1,))


def _gather_grad(F, ins, outs, gs, attrs):
    data, indices = ins
    return [F._backward_gather_nd(gs[0], indices, shape=data.shape), None]


register(OpDef("gather_nd", inputs=("data", "indices"), infer=_gather_infer, compute=_gather_np,
               gradient=_gather_grad, doc="Gather slices of data at the coordinates in indices' first axis."))


# -- scatter_nd / _backward_gather_nd: the adjoint layout, into zeros of `shape` --------------------

def _scatter_infer(op):
    def infer(data, indices, shape):
        m = _check_indices(op, indices, f"shape {tuple(shape)}", len(shape))
        want = indices.shape[1:] + tuple(shape)[m:] or (1,)
        if data.shape != want:
            raise ShapeError(f"{op}: data has shape {data.shape}, expected {want} for indices {indices.shape} "
                             f"and shape {tuple(shape)}")
        return TensorType(tuple(shape), data.dtype, data.device)
    return infer


def _scatter_np(data, indices, shape):
    # MXNet writes the updates in order: with repeated coordinates the last one stays
    out = np.zeros(tuple(shape), data.dtype)
    coords = _coordinates("scatter_nd", indices, shape)
    out[coords] = data.reshape(coords[0].shape + tuple(shape)[len(coords):])
    return out


def _scatter_add_np(data, indices, shape):
    out = np.zeros(tuple(shape), data.dtype)
    coords = _coordinates("_backward_gather_nd", indices, shape)
    np.add.at(out, coords, data.reshape(coords[0].shape + tuple(shape)[len(coords):]))
    return out


def _scatter_grad(F, ins, outs, gs, attrs):
    # with repeated coordinates only the last write reaches the output; MXNet's rule (and this
    # one) gathers at every coordinate, exact when coordinates are distinct
    return [F.gather_nd(gs[0], ins[1]), None]


_SHAPE = {"shape": Attr("shape")}
register(OpDef("scatter_nd", inputs=("data", "indices"), infer=_scatter_infer("scatter_nd"), compute=_scatter_np,
               attrs=_SHAPE, gradient=_scatter_grad,
               doc="Zeros of `shape` with data written at the coordinates in indices' first axis."))
register(OpDef("_backward_gather_nd", inputs=("data", "indices"), infer=_scatter_infer("_backward_gather_nd"),
               compute=_scatter_add_np, attrs=_SHAPE, gradient=_scatter_grad,
               doc="gather_nd's gradient: like scatter_nd, but repeated coordinates add up."))


# -- batch_take: out[i] = a[i, clip(indices[i])] ---------------------------------------------------

def _batch_take_infer(a, indices):
    if a.ndim < 2:
        raise ShapeError(f"batch_take: a must have at least two dimensions (rows, columns), got {a.shape}")
    rows = int(np.prod(a.shape[:-1]))
    if indices.size != rows:
        raise ShapeError(f"batch_take: a {a.shape} has {rows} rows but indices {indices.shape} has "
                         f"{indices.size} entries (one per row)")
    return TensorType(indices.shape, a.dtype, a.device)


def _batch_take_np(a, indices):
    k = a.shape[-1]
    rows = a.reshape(-1, k)
    cols = np.clip(np.trunc(indices.reshape(-1)).astype(np.int64), 0, k - 1)
    return rows[np.arange(rows.shape[0]), cols].reshape(indices.shape)


def _batch_take_grad(F, ins, outs, gs, attrs):
    a, indices = ins
    k = a.shape[-1]
    hot = F.one_hot(F.clip(F.Reshape(indices, shape=(-1,)), a_min=0.0, a_max=float(k - 1)), depth=k,
                    dtype=str(a.dtype))
    g = F.broadcast_mul(hot, F.Reshape(gs[0], shape=(-1, 1)))
    return [F.Reshape(g, shape=a.shape), None]


register(OpDef("batch_take", inputs=("a", "indices"), infer=_batch_take_infer, compute=_batch_take_np,
               gradient=_batch_take_grad,
               doc="One element per row of a's last axis (indices clipped into range); deprecated in MXNet for pick."))


# -- reverse / flip ----------------------------------------------------------------------------------

def _reverse_infer(x, axis):
    normalize_axes(axis, x.ndim, "reverse")
    return x


def _reverse_np(x, axis):
    return np.flip(x, normalize_axes(axis, x.ndim, "reverse")).copy()


def _reverse_pieces(in_types, out_types, attrs):
    x = in_types[0]
    flip = set(normalize_axes(attrs["axis"], x.ndim, "reverse"))
    view = L.probe(x.shape)[tuple(slice(None, None, -1) if i in flip else slice(None) for i in range(x.ndim))]
    return [L.gather(view, out_types[0].shape)]


register(OpDef("reverse", infer=_reverse_infer, compute=_reverse_np, attrs={"axis": Attr("shape")},
               lowering=Movement(_reverse_pieces),
               gradient=lambda F, ins, outs, gs, attrs: [F.reverse(gs[0], axis=attrs["axis"])],
               aliases=("flip",), doc="Reverse the order of elements along the given axes."))
