"""Sorting: topk, sort, argsort along an axis. Ties keep index order (a stable sort, the
lower index first). Gradients of the values scatter the output gradient back to the positions
the values came from (one_hot of the indices, summed); indices and masks carry no gradient."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..registry import OpDef, register
from .common import normalize_axes, like


def _order(x, axis, is_ascend):
    """Indices that sort x along axis (stable; descending keeps the lower index first on ties)."""
    return np.argsort(x if is_ascend else -x, axis=axis, kind="stable")


def _flat(x, axis):
    return (x.reshape(-1), 0) if axis is None else (x, axis % x.ndim)


def _k_of(n, k):
    return n if k < 1 or k > n else k


# -- the compiled form's geometry (runtime/sort_kernels.py sorts in a bitonic network) -----------
NETWORK_OPS = ("sort", "argsort", "topk")
NETWORK_KEY_DTYPES = ("float32", "float64", "int32", "int64")


def sort_rows(shape, axis) -> tuple:
    """(outer, n, inner): the input seen as outer x n x inner, sorted along n (axis=None: the
    flattened input is one row)."""
    if axis is None:
        return 1, int(np.prod(shape, dtype=np.int64)), 1
    a = normalize_axes(axis, len(shape), "sort")[0]
    return (int(np.prod(shape[:a], dtype=np.int64)), shape[a], int(np.prod(shape[a + 1:], dtype=np.int64)))


def network_width(n) -> int:
    """A bitonic network sorts a power of two: rows are padded to the next one."""
    return 1 << max(0, (n - 1).bit_length())


def network_scratch_bytes(node) -> int:
    """Arena bytes a compiled sort/argsort/topk works in: two (key, int32 position) buffers per
    padded row, which the network's stages read from and write to in turn (a compare-exchange
    reads both positions before writing either)."""
    if node.op not in NETWORK_OPS or not node.inputs:
        return 0
    x = node.inputs[0].type
    if x.dtype not in NETWORK_KEY_DTYPES or x.size == 0:
        return 0
    o, n, i = sort_rows(x.shape, node.attrs["axis"])
    return 2 * o * i * network_width(n) * (np.dtype(x.dtype).itemsize + 4)


_TOPK_ATTRS = {"axis": Attr("axis", -1), "k": Attr("int", 1),
               "ret_typ": Attr("str", "indices", choices=("value", "indices", "mask", "both")),
               "is_ascend": Attr("bool", False), "dtype": Attr("dtype", "float32")}


def _topk_infer(x, axis, k, ret_typ, is_ascend, dtype):
    if axis is None:
        shape, a = (x.size,), 0
    else:
        a = normalize_axes(axis, x.ndim, "topk")[0]
        shape = x.shape
    kk = _k_of(shape[a], k)
    out = shape[:a] + (kk,) + shape[a + 1:]
    if ret_typ == "mask":
        return like(x)
    if ret_typ == "value":
        return like(x, out)
    if ret_typ == "indices":
        return like(x, out, dtype)
    return [like(x, out), like(x, out, dtype)]


def _topk_np(x, axis, k, ret_typ, is_ascend, dtype):
    xf, a = _flat(x, axis)
    kk = _k_of(xf.shape[a], k)
    idx = np.take(_order(xf, a, is_ascend), np.arange(kk), axis=a)
    if ret_typ == "mask":
        m = np.zeros(xf.shape, x.dtype)
        np.put_along_axis(m, idx, 1, axis=a)
        return m.reshape(x.shape)
    vals = np.take_along_axis(xf, idx, axis=a)
    if ret_typ == "value":
        return vals
    if ret_typ == "indices":
        return idx.astype(dtype)
    return vals, idx.astype(dtype)


def scatter_along(F, g, idx, x, axis):
    """The gradient of take_along_axis(x, idx, axis) for output gradient g: sum over the k picked
    positions of one_hot(idx) * g, built from registered operators."""
    if axis is None:
        flat = scatter_along(F, g, idx, F.Reshape(x, shape=(-1,)), 0)
        return F.Reshape(flat, shape=x.shape)
    a = axis % x.ndim
    n = x.shape[a]
    perm = tuple(i for i in range(x.ndim) if i != a) + (a,)
    back = tuple(int(np.argsort(perm)[i]) for i in range(x.ndim))
    gl = F.transpose(g, axes=perm) if a != x.ndim - 1 else g
    il = F.transpose(idx, axes=perm) if a != x.ndim - 1 else idx
    hot = F.one_hot(il, depth=n, dtype=x.dtype)                       # (..., k, n)
    out = F.sum(hot * F.expand_dims(gl, axis=gl.ndim), axis=gl.ndim - 1)  # (..., n)
    return F.transpose(out, axes=back) if a != x.ndim - 1 else out


def _topk_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    if attrs["ret_typ"] not in ("value", "both") or gs[0] is None:
        return [None]
    idx = outs[1] if attrs["ret_typ"] == "both" else F.topk(x, **{**attrs, "ret_typ": "indices"})
    return [scatter_along(F, gs[0], idx, x, attrs["axis"])]


register(OpDef("topk", infer=_topk_infer, compute=_topk_np, attrs=_TOPK_ATTRS, gradient=_topk_grad,
               num_outputs=lambda a: 2 if a["ret_typ"] == "both" else 1,
               doc="The k largest (or smallest, is_ascend) along axis: values, indices, a 0/1 mask, or both."))


_SORT_ATTRS = {"axis": Attr("axis", -1), "is_ascend": Attr("bool", True)}


def _sort_infer(x, axis, is_ascend):
    return like(x, (x.size,) if axis is None else None)


def _sort_np(x, axis, is_ascend):
    xf, a = _flat(x, axis)
    return np.take_along_axis(xf, _order(xf, a, is_ascend), axis=a)


def _sort_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    idx = F.argsort(x, axis=attrs["axis"], is_ascend=attrs["is_ascend"], dtype=np.dtype(x.dtype).name)
    return [scatter_along(F, gs[0], idx, x, attrs["axis"])]


register(OpDef("sort", infer=_sort_infer, compute=_sort_np, attrs=_SORT_ATTRS, gradient=_sort_grad,
               doc="Sorted values along axis (axis=None: of the flattened array)."))


def _argsort_infer(x, axis, is_ascend, dtype):
    return like(x, (x.size,) if axis is None else None, dtype)


def _argsort_np(x, axis, is_ascend, dtype):
    xf, a = _flat(x, axis)
    return _order(xf, a, is_ascend).astype(dtype)


register(OpDef("argsort", infer=_argsort_infer, compute=_argsort_np,
               attrs={**_SORT_ATTRS, "dtype": Attr("dtype", "float32")},
               gradient=lambda F, ins, outs, gs, attrs: [None],
               doc="Indices that sort along axis (as dtype, float32 by default)."))
