"""ONNX tensor operators as graphc's: activations, elementwise arithmetic (a scalar operand known
at import becomes MXNet's *_scalar form), softmax, shape changes, indexing and reductions. See
`onnx_import_table` for the contract. Never imports a backend.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.builder import Handle

from .onnx_common import numpy_dtype
from .onnx_import_table import CONVERTERS, axes_of, converts, known, slice_spec


# -- activations and elementwise ----------------------------------------------------------------------
_ACTIVATION = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softrelu", "Softsign": "softsign"}
_UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "negative", "Reciprocal": "reciprocal",
          "Floor": "floor", "Ceil": "ceil", "Erf": "erf", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "arcsin",
          "Acos": "arccos", "Atan": "arctan", "Sinh": "sinh", "Cosh": "cosh", "Sign": "sign", "Not": "logical_not"}


def _activation(kind):
    return lambda ctx, node, attrs: ctx.emit("Activation", [ctx.tensor(node.input[0])], dict(act_type=kind))


def _unary(op):
    return lambda ctx, node, attrs: ctx.emit(op, [ctx.tensor(node.input[0])])


for _onnx, _kind in _ACTIVATION.items():
    CONVERTERS[_onnx] = _activation(_kind)
for _onnx, _op in _UNARY.items():
    CONVERTERS[_onnx] = _unary(_op)


@converts("Identity", "Dropout")
def _identity(ctx, node, attrs):
    if node.op_type == "Dropout" and len([o for o in node.output if o]) > 1:
        raise ctx.fail("Dropout's mask output exists only in training")
    return ctx.get(node.input[0])


@converts("LeakyRelu")
def _leaky_relu(ctx, node, attrs):
    return ctx.emit("LeakyReLU", [ctx.tensor(node.input[0])], dict(act_type="leaky", slope=float(attrs.get("alpha", 0.01))))


@converts("Elu")
def _elu(ctx, node, attrs):
    return ctx.emit("LeakyReLU", [ctx.tensor(node.input[0])], dict(act_type="elu", slope=float(attrs.get("alpha", 1.0))))


@converts("PRelu")
def _prelu(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    slope = known(ctx, node.input[1], "the slope")
    channels = x.shape[1] if x.ndim > 1 else 1
    if slope.size == 1:
        slope = np.full((channels,), slope.reshape(()), slope.dtype)
    if slope.size != channels:
        raise ctx.fail(f"slope of shape {slope.shape}: MXNet's PReLU has one slope per channel ({channels})")
    return ctx.emit("LeakyReLU", [x, ctx.param(slope.reshape(channels), node.input[1])], dict(act_type="prelu"))


@converts("Clip")
def _clip(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    info = np.finfo(np.dtype(x.dtype)) if np.dtype(x.dtype).kind == "f" else np.iinfo(np.dtype(x.dtype))
    lo, hi = attrs.get("min", info.min), attrs.get("max", info.max)
    if len(node.input) > 1 and node.input[1]:
        lo = known(ctx, node.input[1], "min").reshape(()).item()
    if len(node.input) > 2 and node.input[2]:
        hi = known(ctx, node.input[2], "max").reshape(()).item()
    return ctx.emit("clip", [x], dict(a_min=float(lo), a_max=float(hi)))


_BINARY = {"Add": ("broadcast_add", "_plus_scalar", "_plus_scalar"), "Sub": ("broadcast_sub", "_minus_scalar", "_rminus_scalar"),
           "Mul": ("broadcast_mul", "_mul_scalar", "_mul_scalar"), "Div": ("broadcast_div", "_div_scalar", "_rdiv_scalar"),
           "Pow": ("broadcast_power", "_power_scalar", "_rpower_scalar"),
           "Equal": ("broadcast_equal", "_equal_scalar", "_equal_scalar"),
           "Greater": ("broadcast_greater", "_greater_scalar", "_lesser_scalar"),
           "Less": ("broadcast_lesser", "_lesser_scalar", "_greater_scalar")}


def _binary(onnx_op):
    """A scalar operand known at import becomes MXNet's *_scalar form (no parameter for it)."""
    tensor_op, scalar_op, rscalar_op = _BINARY[onnx_op]

    def convert(ctx, node, attrs):
        a, b = node.input[0], node.input[1]
        ka, kb = ctx.const(a), ctx.const(b)
        if kb is not None and kb.size == 1 and isinstance(ctx.get(a), Handle) and kb.ndim <= ctx.get(a).ndim:
            return ctx.emit(scalar_op, [ctx.tensor(a)], dict(scalar=float(kb.reshape(()))))
        if ka is not None and ka.size == 1 and isinstance(ctx.get(b), Handle) and ka.ndim <= ctx.get(b).ndim:
            return ctx.emit(rscalar_op, [ctx.tensor(b)], dict(scalar=float(ka.reshape(()))))
        return ctx.emit(tensor_op, [ctx.tensor(a), ctx.tensor(b)])
    return convert


for _onnx in _BINARY:
    CONVERTERS[_onnx] = _binary(_onnx)


@converts("Max", "Min")
def _max_min(ctx, node, attrs):
    op = "broadcast_maximum" if node.op_type == "Max" else "broadcast_minimum"
    y = ctx.tensor(node.input[0])
    for k, name in enumerate(node.input[1:]):
        y = ctx.emit(op, [y, ctx.tensor(name)], name=f"{ctx.node_name()}_{k}")
    return y


@converts("Sum", "Mean")
def _sum(ctx, node, attrs):
    y = ctx.emit("add_n", [ctx.tensor(n) for n in node.input], dict(num_args=len(node.input))) \
        if len(node.input) > 1 else ctx.tensor(node.input[0])
    if node.op_type == "Mean":
        y = ctx.emit("_div_scalar", [y], dict(scalar=float(len(node.input))), name=f"{ctx.node_name()}_mean")
    return y


@converts("Where")
def _where(ctx, node, attrs):
    cond, x, y = (ctx.tensor(n) for n in node.input)
    shape = tuple(np.broadcast_shapes(cond.shape, x.shape, y.shape))
    parts = []
    for k, v in enumerate((cond, x, y)):
        if tuple(v.shape) != shape:
            v = _broadcast(ctx, v, shape, f"{ctx.node_name()}_b{k}")
        parts.append(v)
    return ctx.emit("where", parts)


def _broadcast(ctx, v, shape, name):
    if v.ndim < len(shape):
        v = ctx.emit("Reshape", [v], dict(shape=(1,) * (len(shape) - v.ndim) + tuple(v.shape)), name=f"{name}_rank")
    return ctx.emit("broadcast_to", [v], dict(shape=shape), name=name)


@converts("Cast")
def _cast(ctx, node, attrs):
    return ctx.emit("Cast", [ctx.tensor(node.input[0])], dict(dtype=numpy_dtype(attrs["to"]).name))


# -- softmax ------------------------------------------------------------------------------------------
def _softmax(op):
    def convert(ctx, node, attrs):
        x = ctx.tensor(node.input[0])
        axis = int(attrs.get("axis", -1 if ctx.opset >= 13 else 1)) % x.ndim
        if ctx.opset >= 13 or axis == x.ndim - 1:
            return ctx.emit(op, [x], dict(axis=axis))
        # before opset 13: softmax over everything from `axis` on, as one flattened row
        rows = int(np.prod(x.shape[:axis]))
        flat = ctx.emit("Reshape", [x], dict(shape=(rows, -1)), name=f"{ctx.node_name()}_2d")
        y = ctx.emit(op, [flat], dict(axis=-1), name=f"{ctx.node_name()}_rows")
        return ctx.emit("Reshape", [y], dict(shape=tuple(x.shape)))
    return convert


CONVERTERS["Softmax"] = _softmax("softmax")
CONVERTERS["LogSoftmax"] = _softmax("log_softmax")


# -- shapes -------------------------------------------------------------------------------------------
@converts("Flatten")
def _flatten(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    axis = int(attrs.get("axis", 1)) % (x.ndim + 1) if x.ndim else 0
    if axis == 1:
        return ctx.emit("Flatten", [x])
    return ctx.emit("Reshape", [x], dict(shape=(int(np.prod(x.shape[:axis])), -1)))


@converts("Reshape")
def _reshape(ctx, node, attrs):
    shape = [int(d) for d in known(ctx, node.input[1], "the target shape").reshape(-1)]
    if int(attrs.get("allowzero", 0)) and 0 in shape:
        raise ctx.fail("allowzero=1 with a 0 in the shape (an empty tensor) has no MXNet translation")
    return ctx.emit("Reshape", [ctx.tensor(node.input[0])], dict(shape=tuple(shape)))   # 0 and -1 mean the same in MXNet


@converts("Transpose")
def _transpose(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    perm = tuple(attrs.get("perm", range(x.ndim - 1, -1, -1)))
    return ctx.emit("transpose", [x], dict(axes=perm))


@converts("Concat")
def _concat(ctx, node, attrs):
    ins = [ctx.tensor(n) for n in node.input if n]
    return ctx.emit("Concat", ins, dict(dim=int(attrs["axis"]) % ins[0].ndim, num_args=len(ins)))


@converts("Unsqueeze")
def _unsqueeze(ctx, node, attrs):
    y = ctx.tensor(node.input[0])
    axes = axes_of(ctx, node, attrs)
    rank = y.ndim + len(axes)
    for k, axis in enumerate(sorted(a % rank for a in axes)):
        y = ctx.emit("expand_dims", [y], dict(axis=axis), name=f"{ctx.node_name()}_{k}")
    return y


@converts("Squeeze")
def _squeeze(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    axes = axes_of(ctx, node, attrs)
    return ctx.emit("squeeze", [x], dict(axis=None if axes is None else tuple(a % x.ndim for a in axes)))


@converts("Slice")
def _slice(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    begin, end, step = slice_spec(ctx, node, attrs, x.shape)
    return ctx.emit("slice", [x], dict(begin=tuple(begin), end=tuple(end), step=tuple(s or 1 for s in step)))


@converts("Split")
def _split(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    axis = int(attrs.get("axis", 0)) % x.ndim
    n = len(node.output)
    if "split" in attrs:
        sizes = list(attrs["split"])
    elif len(node.input) > 1 and node.input[1]:
        sizes = [int(s) for s in known(ctx, node.input[1], "split sizes")]
    else:
        chunk = -(-x.shape[axis] // n)
        sizes = [min(chunk, x.shape[axis] - k * chunk) for k in range(n)]
    outs, start = [], 0
    for k, size in enumerate(sizes):
        outs.append(ctx.emit("slice_axis", [x], dict(axis=axis, begin=start, end=start + size),
                             name=f"{ctx.node_name()}_{k}"))
        start += size
    return outs


@converts("Expand")
def _expand(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    target = [int(d) for d in known(ctx, node.input[1], "the shape")]
    return _broadcast(ctx, x, tuple(np.broadcast_shapes(tuple(x.shape), tuple(target))), ctx.node_name())


@converts("Tile")
def _tile(ctx, node, attrs):
    reps = tuple(int(r) for r in known(ctx, node.input[1], "repeats"))
    return ctx.emit("tile", [ctx.tensor(node.input[0])], dict(reps=reps))


@converts("Pad")
def _pad(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    mode = attrs.get("mode", "constant")
    if "pads" in attrs:
        pads, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
    else:
        pads = [int(p) for p in known(ctx, node.input[1], "pads")]
        value = float(known(ctx, node.input[2], "the pad value").reshape(())) if len(node.input) > 2 and node.input[2] else 0.0
    if len(node.input) > 3 and node.input[3]:
        raise ctx.fail("Pad with an axes input has no MXNet translation")
    nd = x.ndim
    width = tuple(int(v) for pair in zip(pads[:nd], pads[nd:]) for v in pair)
    return ctx.emit("Pad", [x], dict(mode=mode, pad_width=width, constant_value=value))


@converts("Gather")
def _gather(ctx, node, attrs):
    data, idx_name = ctx.get(node.input[0]), node.input[1]
    axis = int(attrs.get("axis", 0)) % len(data.shape)
    known = ctx.const(idx_name)
    if known is not None and known.ndim == 0 and isinstance(data, Handle):
        i = int(known) % data.shape[axis]
        part = ctx.emit("slice_axis", [data], dict(axis=axis, begin=i, end=i + 1), name=f"{ctx.node_name()}_pick")
        return ctx.emit("squeeze", [part], dict(axis=(axis,)))
    return ctx.emit("take", [ctx.tensor(node.input[0]), ctx.tensor(idx_name)], dict(axis=axis, mode="wrap"))


@converts("Shape")
def _shape(ctx, node, attrs):
    if ctx.symbolic_inputs:
        raise ctx.fail(f"the model computes with its own shape, and inputs {sorted({n for n, _ in ctx.symbolic_inputs})} "
                       "have symbolic dimensions: pass input_shapes to fix them for this import")
    shape = np.asarray(ctx.shape(node.input[0]), dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return shape[start:end]


@converts("Size")
def _size(ctx, node, attrs):
    if ctx.symbolic_inputs:
        raise ctx.fail("Size of a value whose shape depends on symbolic input dimensions: pass input_shapes")
    return np.asarray(int(np.prod(ctx.shape(node.input[0]))), dtype=np.int64)


# -- reductions ---------------------------------------------------------------------------------------
_REDUCE = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod"}


def _reduce(op):
    def convert(ctx, node, attrs):
        x = ctx.tensor(node.input[0])
        axes = axes_of(ctx, node, attrs)
        if not axes:
            if axes is not None and int(attrs.get("noop_with_empty_axes", 0)):
                return x
            axes = None
        return ctx.emit(op, [x], dict(axis=None if axes is None else tuple(a % x.ndim for a in axes),
                                      keepdims=bool(attrs.get("keepdims", 1))))
    return convert


for _onnx, _op in _REDUCE.items():
    CONVERTERS[_onnx] = _reduce(_op)
