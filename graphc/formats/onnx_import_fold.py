"""numpy evaluation of the ONNX operators exporters use for shape arithmetic (Shape, Gather,
Unsqueeze, Concat, Cast, Slice, ...), when all their inputs are known at import: the graph
graphc builds then holds the resulting constants, not the arithmetic. See `onnx_import_table`.
"""
from __future__ import annotations

import numpy as np

from .onnx_common import numpy_dtype
from .onnx_import_table import folds, slice_spec


# -- folding: numpy over arrays known at import --------------------------------------------------------
@folds("Constant")
def _fold_constant(ctx, arrays, attrs):
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise ctx.fail(f"Constant with attributes {sorted(attrs)}: graphc reads value, value_float(s), value_int(s)")


@folds("Identity")
def _fold_identity(ctx, arrays, attrs):
    return arrays[0]


@folds("Cast")
def _fold_cast(ctx, arrays, attrs):
    return arrays[0].astype(numpy_dtype(attrs["to"]))


@folds("Shape")
def _fold_shape(ctx, arrays, attrs):
    return np.asarray(arrays[0].shape, np.int64)[attrs.get("start", 0):attrs.get("end", None)]


@folds("Gather")
def _fold_gather(ctx, arrays, attrs):
    return np.take(arrays[0], arrays[1].astype(np.int64), axis=int(attrs.get("axis", 0)))


@folds("Unsqueeze")
def _fold_unsqueeze(ctx, arrays, attrs):
    axes = attrs["axes"] if "axes" in attrs else [int(a) for a in arrays[1]]
    x = arrays[0]
    rank = x.ndim + len(axes)
    for a in sorted(int(a) % rank for a in axes):
        x = np.expand_dims(x, a)
    return x


@folds("Squeeze")
def _fold_squeeze(ctx, arrays, attrs):
    axes = attrs.get("axes", [int(a) for a in arrays[1]] if len(arrays) > 1 and arrays[1] is not None else None)
    return np.squeeze(arrays[0], axis=None if axes is None else tuple(axes))


@folds("Concat")
def _fold_concat(ctx, arrays, attrs):
    return np.concatenate([a for a in arrays if a is not None], axis=int(attrs["axis"]))


@folds("Reshape")
def _fold_reshape(ctx, arrays, attrs):
    x, shape = arrays[0], [int(d) for d in arrays[1]]
    shape = [x.shape[i] if d == 0 and not attrs.get("allowzero", 0) else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@folds("Slice")
def _fold_slice(ctx, arrays, attrs):
    x = arrays[0]
    begin, end, step = slice_spec(ctx, ctx.node, attrs, x.shape)
    return x[tuple(slice(b, e, s) for b, e, s in zip(begin, end, step))]


@folds("ConstantOfShape")
def _fold_constant_of_shape(ctx, arrays, attrs):
    value = attrs.get("value", np.zeros(1, np.float32))
    return np.full([int(d) for d in arrays[0]], value.reshape(-1)[0], dtype=value.dtype)


@folds("Range")
def _fold_range(ctx, arrays, attrs):
    start, limit, delta = (a.reshape(()) for a in arrays)
    return np.arange(start, limit, delta).astype(arrays[0].dtype)


_NUMPY_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Equal": np.equal, "Less": np.less,
                 "Greater": np.greater, "Max": np.maximum, "Min": np.minimum}


@folds(*_NUMPY_BINARY)
def _fold_binary(ctx, arrays, attrs):
    """Binary numpy ufuncs; Max/Min take any number of operands."""
    fn = _NUMPY_BINARY[ctx.node.op_type]
    out = arrays[0]
    for a in arrays[1:]:
        out = fn(out, a)
    return np.asarray(out)


@folds("Div")
def _fold_div(ctx, arrays, attrs):
    a, b = arrays
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":   # ONNX integer division truncates
        return (np.trunc(a / b)).astype(np.result_type(a, b))
    return np.asarray(a / b, dtype=np.result_type(a, b))


@folds("Where")
def _fold_where(ctx, arrays, attrs):
    return np.where(arrays[0], arrays[1], arrays[2])


@folds("Transpose")
def _fold_transpose(ctx, arrays, attrs):
    return np.transpose(arrays[0], attrs.get("perm"))


@folds("Neg", "Sqrt", "Floor", "Ceil", "Abs")
def _fold_unary(ctx, arrays, attrs):
    fn = {"Neg": np.negative, "Sqrt": np.sqrt, "Floor": np.floor, "Ceil": np.ceil, "Abs": np.abs}[ctx.node.op_type]
    return fn(arrays[0])
