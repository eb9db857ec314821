"""ONNX translations of graphc's tensor operators: elementwise arithmetic and comparisons
(tensor and scalar forms), softmax, shape changes, indexing, products and reductions. See
`onnx_export_table` for the contract every translation keeps. Never imports a backend.
"""
from __future__ import annotations

import numpy as np

from .onnx_common import require_onnx
from .onnx_export_table import (CONVERTERS, INT64_MAX, INT64_MIN, converts, elem_type as _elem,
                                input_names as _ins, single as _single)


# -- elementwise --------------------------------------------------------------------------------------
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
          "abs": "Abs", "negative": "Neg", "reciprocal": "Reciprocal", "floor": "Floor", "ceil": "Ceil",
          "sin": "Sin", "cos": "Cos", "tan": "Tan", "arcsin": "Asin", "arccos": "Acos", "arctan": "Atan",
          "sinh": "Sinh", "cosh": "Cosh", "arcsinh": "Asinh", "arccosh": "Acosh", "arctanh": "Atanh",
          "erf": "Erf", "softsign": "Softsign", "softrelu": "Softplus", "sign": "Sign",
          "_copy": "Identity", "BlockGrad": "Identity", "make_loss": "Identity", "MakeLoss": "Identity"}


def _unary(onnx_op):
    return lambda ctx, node: _single(ctx, node, onnx_op, _ins(ctx, node))


for _name, _onnx in _UNARY.items():
    CONVERTERS[_name] = _unary(_onnx)


@converts("square")
def _square(ctx, node):
    x = ctx.input(node.inputs[0], node)
    return _single(ctx, node, "Mul", [x, x])


@converts("rsqrt")
def _rsqrt(ctx, node):
    return _single(ctx, node, "Reciprocal", [ctx.emit("Sqrt", _ins(ctx, node), hint=node.name)[0]])


_BINARY = {"Add": ("elemwise_add", "broadcast_add"), "Sub": ("elemwise_sub", "broadcast_sub"),
           "Mul": ("elemwise_mul", "broadcast_mul"), "Div": ("elemwise_div", "broadcast_div"),
           "Pow": ("_power", "broadcast_power"), "Max": ("_maximum", "broadcast_maximum"),
           "Min": ("_minimum", "broadcast_minimum")}
_COMPARE = {"Equal": ("_equal", "broadcast_equal"), "Greater": ("_greater", "broadcast_greater"),
            "GreaterOrEqual": ("_greater_equal", "broadcast_greater_equal"),
            "Less": ("_lesser", "broadcast_lesser"), "LessOrEqual": ("_lesser_equal", "broadcast_lesser_equal")}


def _binary(onnx_op):
    return lambda ctx, node: _single(ctx, node, onnx_op, _ins(ctx, node))


def _compare(onnx_op, swap=False, negate=False):
    """MXNet's comparisons return 1/0 in the inputs' dtype; ONNX's return bool."""
    def convert(ctx, node):
        a, b = _ins(ctx, node)
        r = ctx.emit(onnx_op, [b, a] if swap else [a, b], hint=node.name)[0]
        if negate:
            r = ctx.emit("Not", [r], hint=node.name)[0]
        return _single(ctx, node, "Cast", [r], to=_elem(ctx, node))
    return convert


for _onnx, _ops in _BINARY.items():
    for _name in _ops:
        CONVERTERS[_name] = _binary(_onnx)
for _onnx, _ops in _COMPARE.items():
    for _name in _ops:
        CONVERTERS[_name] = _compare(_onnx)
CONVERTERS["_not_equal"] = CONVERTERS["broadcast_not_equal"] = _compare("Equal", negate=True)

# name -> (ONNX op, scalar comes first)
_SCALAR = {"_plus_scalar": ("Add", False), "_minus_scalar": ("Sub", False), "_rminus_scalar": ("Sub", True),
           "_mul_scalar": ("Mul", False), "_div_scalar": ("Div", False), "_rdiv_scalar": ("Div", True),
           "_power_scalar": ("Pow", False), "_rpower_scalar": ("Pow", True),
           "_maximum_scalar": ("Max", False), "_minimum_scalar": ("Min", False)}
_SCALAR_COMPARE = {"_equal_scalar": ("Equal", False, False), "_not_equal_scalar": ("Equal", False, True),
                   "_greater_scalar": ("Greater", False, False), "_greater_equal_scalar": ("GreaterOrEqual", False, False),
                   "_lesser_scalar": ("Less", False, False), "_lesser_equal_scalar": ("LessOrEqual", False, False)}


def _scalar_op(onnx_op, first, compare=False, negate=False):
    def convert(ctx, node):
        x = ctx.input(node.inputs[0], node)
        c = ctx.scalar(node.attrs["scalar"], ctx.type_of(node.inputs[0]).dtype, f"{node.name}_scalar")
        ins = [c, x] if first else [x, c]
        if not compare:
            return _single(ctx, node, onnx_op, ins)
        r = ctx.emit(onnx_op, ins, hint=node.name)[0]
        if negate:
            r = ctx.emit("Not", [r], hint=node.name)[0]
        return _single(ctx, node, "Cast", [r], to=_elem(ctx, node))
    return convert


for _name, (_onnx, _first) in _SCALAR.items():
    CONVERTERS[_name] = _scalar_op(_onnx, _first)
for _name, (_onnx, _first, _neg) in _SCALAR_COMPARE.items():
    CONVERTERS[_name] = _scalar_op(_onnx, _first, compare=True, negate=_neg)


@converts("add_n")
def _add_n(ctx, node):
    return _single(ctx, node, "Sum", _ins(ctx, node))


@converts("clip")
def _clip(ctx, node):
    dtype = ctx.type_of(node.inputs[0]).dtype
    return _single(ctx, node, "Clip", [ctx.input(node.inputs[0], node),
                                       ctx.scalar(node.attrs["a_min"], dtype, f"{node.name}_min"),
                                       ctx.scalar(node.attrs["a_max"], dtype, f"{node.name}_max")])


@converts("where")
def _where(ctx, node):
    cond, x, y = _ins(ctx, node)
    cshape, xshape = ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1])
    if len(cshape) == 1 and len(xshape) > 1:   # MXNet: a per-row condition
        cond = ctx.emit("Reshape", [cond, ctx.ints([cshape[0]] + [1] * (len(xshape) - 1), f"{node.name}_cond_shape")],
                        hint=node.name)[0]
    cond = ctx.emit("Cast", [cond], hint=node.name, to=9)[0]   # 9: BOOL
    return _single(ctx, node, "Where", [cond, x, y])


@converts("Cast")
def _cast(ctx, node):
    return _single(ctx, node, "Cast", _ins(ctx, node), to=_elem(ctx, node))


# -- softmax and friends ------------------------------------------------------------------------------
def _softmax_like(onnx_op):
    def convert(ctx, node):
        if node.attrs.get("use_length"):
            raise ctx.fail(node, "use_length=True has no ONNX translation")
        x = ctx.input(node.inputs[0], node)
        temperature = node.attrs.get("temperature")
        if temperature not in (None, 1.0):
            x = ctx.emit("Div", [x, ctx.scalar(temperature, ctx.type_of(node.inputs[0]).dtype, f"{node.name}_t")],
                         hint=node.name)[0]
        if node.types[0].dtype != ctx.type_of(node.inputs[0]).dtype:
            x = ctx.emit("Cast", [x], hint=node.name, to=_elem(ctx, node))[0]
        return _single(ctx, node, onnx_op, [x], axis=int(node.attrs["axis"]))
    return convert


CONVERTERS["softmax"] = _softmax_like("Softmax")
CONVERTERS["log_softmax"] = _softmax_like("LogSoftmax")


@converts("SoftmaxOutput")
def _softmax_output(ctx, node):
    """Inference: the probabilities; the label is read in training only."""
    x = ctx.input(node.inputs[0], node)
    ndim = len(ctx.shape(node.inputs[0]))
    if node.attrs["multi_output"]:
        return _single(ctx, node, "Softmax", [x], axis=1)
    if node.attrs["preserve_shape"] or ndim == 2:
        return _single(ctx, node, "Softmax", [x], axis=-1)
    shape = ctx.emit("Shape", [x], hint=node.name)[0]
    flat = ctx.emit("Flatten", [x], hint=node.name, axis=1)[0]
    return _single(ctx, node, "Reshape", [ctx.emit("Softmax", [flat], hint=node.name, axis=-1)[0], shape])


# -- shapes -------------------------------------------------------------------------------------------
@converts("Flatten")
def _flatten(ctx, node):
    return _single(ctx, node, "Flatten", _ins(ctx, node), axis=1)


def _reshape_runtime(ctx, node, x, in_rank):
    """The target shape as an ONNX expression over Shape(x), for inputs whose dims vary:
    MXNet's codes 0 (copy), -1 (infer), -2 (copy the rest), -3 (merge two), -4 (split one)."""
    spec, h = list(node.attrs["shape"]), node.name
    shape = ctx.emit("Shape", [x], hint=h)[0]

    def dim(i):
        return ctx.emit("Slice", [shape, ctx.ints([i], f"{h}_s"), ctx.ints([i + 1], f"{h}_e")], hint=h)[0]

    parts, src, k = [], 0, 0
    while k < len(spec):
        code = spec[k]
        if code > 0 or code == -1:
            parts.append(ctx.ints([code], f"{h}_dim"))   # MXNet: each consumes one input dim
            src += 1
        elif code == 0:
            parts.append(dim(src))
            src += 1
        elif code == -2:
            parts.append(ctx.emit("Slice", [shape, ctx.ints([src], f"{h}_s"), ctx.ints([INT64_MAX], f"{h}_e")],
                                  hint=h)[0])
            src = in_rank
        elif code == -3:
            parts.append(ctx.emit("Mul", [dim(src), dim(src + 1)], hint=h)[0])
            src += 2
        elif code == -4:
            a, b = spec[k + 1], spec[k + 2]
            whole = dim(src)
            if a == -1:
                parts += [ctx.emit("Div", [whole, ctx.ints([b], f"{h}_b")], hint=h)[0], ctx.ints([b], f"{h}_b")]
            elif b == -1:
                parts += [ctx.ints([a], f"{h}_a"), ctx.emit("Div", [whole, ctx.ints([a], f"{h}_a")], hint=h)[0]]
            else:
                parts += [ctx.ints([a], f"{h}_a"), ctx.ints([b], f"{h}_b")]
            src += 1
            k += 2
        else:
            raise ctx.fail(node, f"shape code {code} is not one MXNet defines")
        k += 1
    return ctx.emit("Concat", parts, hint=h, axis=0)[0]


@converts("Reshape")
def _reshape(ctx, node):
    x = ctx.input(node.inputs[0], node)
    if node.attrs["target_shape"] or node.attrs["keep_highest"]:
        raise ctx.fail(node, "the deprecated target_shape/keep_highest attributes have no ONNX translation")
    if ctx.dynamic:
        if node.attrs["reverse"]:
            raise ctx.fail(node, "reverse=True with dynamic input shapes has no ONNX translation")
        return _single(ctx, node, "Reshape", [x, _reshape_runtime(ctx, node, x, len(ctx.shape(node.inputs[0])))])
    return _single(ctx, node, "Reshape", [x, ctx.ints(node.types[0].shape, f"{node.name}_shape")])


@converts("transpose")
def _transpose(ctx, node):
    axes = list(node.attrs["axes"]) or list(range(len(ctx.shape(node.inputs[0])) - 1, -1, -1))
    return _single(ctx, node, "Transpose", _ins(ctx, node), perm=axes)


@converts("SwapAxis")
def _swap_axis(ctx, node):
    perm = list(range(len(ctx.shape(node.inputs[0]))))
    a, b = node.attrs["dim1"], node.attrs["dim2"]
    perm[a], perm[b] = perm[b], perm[a]
    return _single(ctx, node, "Transpose", _ins(ctx, node), perm=perm)


@converts("expand_dims")
def _expand_dims(ctx, node):
    return _single(ctx, node, "Unsqueeze", _ins(ctx, node) + [ctx.ints([node.attrs["axis"]], f"{node.name}_axes")])


@converts("squeeze")
def _squeeze(ctx, node):
    axis = node.attrs["axis"]
    if axis is None:
        return _single(ctx, node, "Squeeze", _ins(ctx, node))
    axes = [axis] if isinstance(axis, int) else list(axis)
    return _single(ctx, node, "Squeeze", _ins(ctx, node) + [ctx.ints(axes, f"{node.name}_axes")])


@converts("Concat")
def _concat(ctx, node):
    return _single(ctx, node, "Concat", _ins(ctx, node), axis=int(node.attrs["dim"]))


@converts("stack")
def _stack(ctx, node):
    axes = ctx.ints([node.attrs["axis"]], f"{node.name}_axes")
    parts = [ctx.emit("Unsqueeze", [x, axes], hint=node.name)[0] for x in _ins(ctx, node)]
    return _single(ctx, node, "Concat", parts, axis=int(node.attrs["axis"]))


def _slice_bounds(begin, end, step):
    """ONNX Slice bounds for one MXNet (begin, end, step): None means the whole extent in the
    step's direction; ONNX clamps the sentinels."""
    step = 1 if step is None else int(step)
    if begin is None:
        begin = 0 if step > 0 else INT64_MAX
    if end is None:
        end = INT64_MAX if step > 0 else INT64_MIN
    return int(begin), int(end), step


@converts("slice")
def _slice(ctx, node):
    begin, end = list(node.attrs["begin"]), list(node.attrs["end"])
    step = list(node.attrs["step"]) or [None] * len(begin)
    bounds = [_slice_bounds(b, e, s) for b, e, s in zip(begin, end, step)]
    h = node.name
    return _single(ctx, node, "Slice", _ins(ctx, node) + [
        ctx.ints([b[0] for b in bounds], f"{h}_starts"), ctx.ints([b[1] for b in bounds], f"{h}_ends"),
        ctx.ints(list(range(len(bounds))), f"{h}_axes"), ctx.ints([b[2] for b in bounds], f"{h}_steps")])


@converts("slice_axis")
def _slice_axis(ctx, node):
    b, e, _ = _slice_bounds(node.attrs["begin"], node.attrs["end"], 1)
    h = node.name
    return _single(ctx, node, "Slice", _ins(ctx, node) + [
        ctx.ints([b], f"{h}_starts"), ctx.ints([e], f"{h}_ends"), ctx.ints([node.attrs["axis"]], f"{h}_axes")])


@converts("split")
def _split(ctx, node):
    shape = ctx.shape(node.inputs[0])
    axis, n = node.attrs["axis"] % len(shape), node.attrs["num_outputs"]
    names = ctx.result_names(node)
    if not node.attrs["squeeze_axis"]:
        ctx.emit("Split", _ins(ctx, node) + [ctx.ints([shape[axis] // n] * n, f"{node.name}_split")], names,
                 axis=axis)
        return names
    parts = ctx.emit("Split", _ins(ctx, node) + [ctx.ints([shape[axis] // n] * n, f"{node.name}_split")], n,
                     hint=node.name, axis=axis)
    axes = ctx.ints([axis], f"{node.name}_axes")
    for part, out in zip(parts, names):
        ctx.emit("Squeeze", [part, axes], [out])
    return names


@converts("Dropout")
def _dropout(ctx, node):
    """Inference: the identity (the mask output exists in training only)."""
    return _single(ctx, node, "Identity", [ctx.input(node.inputs[0], node)])


@converts("tile")
def _tile(ctx, node):
    x = ctx.input(node.inputs[0], node)
    ndim, reps = len(ctx.shape(node.inputs[0])), list(node.attrs["reps"])
    if len(reps) > ndim:   # MXNet prepends axes to the data
        x = ctx.emit("Unsqueeze", [x, ctx.ints(list(range(len(reps) - ndim)), f"{node.name}_axes")],
                     hint=node.name)[0]
    reps = [1] * (ndim - len(reps)) + reps
    return _single(ctx, node, "Tile", [x, ctx.ints(reps, f"{node.name}_reps")])


@converts("broadcast_to")
def _broadcast_to(ctx, node):
    """MXNet's 0 keeps the input's dimension; Expand's 1 does the same (bidirectional broadcast)."""
    shape = [1 if d == 0 else d for d in node.attrs["shape"]]
    return _single(ctx, node, "Expand", _ins(ctx, node) + [ctx.ints(shape, f"{node.name}_shape")])


@converts("broadcast_axis")
def _broadcast_axis(ctx, node):
    axes, sizes = node.attrs["axis"], node.attrs["size"]
    axes = [axes] if isinstance(axes, int) else list(axes)
    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    shape = [1] * len(ctx.shape(node.inputs[0]))
    for a, s in zip(axes, sizes):
        shape[a] = s
    return _single(ctx, node, "Expand", _ins(ctx, node) + [ctx.ints(shape, f"{node.name}_shape")])


@converts("broadcast_like")
def _broadcast_like(ctx, node):
    if node.attrs.get("lhs_axes") or node.attrs.get("rhs_axes"):
        raise ctx.fail(node, "lhs_axes/rhs_axes have no ONNX translation")
    x, like = _ins(ctx, node)
    return _single(ctx, node, "Expand", [x, ctx.emit("Shape", [like], hint=node.name)[0]])


@converts("zeros_like", "ones_like")
def _fill_like(ctx, node):
    onnx = require_onnx()
    value = 0 if node.op == "zeros_like" else 1
    fill = onnx.numpy_helper.from_array(np.asarray([value], dtype=node.types[0].dtype))
    shape = ctx.emit("Shape", _ins(ctx, node), hint=node.name)[0]
    return _single(ctx, node, "ConstantOfShape", [shape], value=fill)


@converts("Pad")
def _pad(ctx, node):
    mode = node.attrs["mode"]
    if mode not in ("constant", "edge", "reflect"):
        raise ctx.fail(node, f"mode={mode!r} has no ONNX translation")
    widths = list(node.attrs["pad_width"])
    pads = widths[0::2] + widths[1::2]
    ins = _ins(ctx, node) + [ctx.ints(pads, f"{node.name}_pads")]
    if mode == "constant":
        ins.append(ctx.scalar(node.attrs["constant_value"], ctx.type_of(node.inputs[0]).dtype, f"{node.name}_value"))
    return _single(ctx, node, "Pad", ins, mode=mode)


# -- indexing -----------------------------------------------------------------------------------------
def _int_indices(ctx, node, value, size, mode="clip"):
    """MXNet takes float or int indices and brings them into range (clip, or wrap); ONNX Gather
    wants int64 in range."""
    h = node.name
    idx = ctx.emit("Cast", [ctx.input(value, node)], hint=h, to=7)[0]   # 7: INT64
    if mode == "wrap":
        return ctx.emit("Mod", [idx, ctx.ints([size], f"{h}_size")], hint=h, fmod=0)[0]
    lo, hi = ctx.scalar(0, np.int64, f"{h}_lo"), ctx.scalar(size - 1, np.int64, f"{h}_hi")
    return ctx.emit("Clip", [idx, lo, hi], hint=h)[0]


@converts("Embedding")
def _embedding(ctx, node):
    idx = _int_indices(ctx, node, node.inputs[0], node.attrs["input_dim"])
    return _single(ctx, node, "Gather", [ctx.input(node.inputs[1], node), idx], axis=0)


@converts("take")
def _take(ctx, node):
    if node.attrs["mode"] not in ("clip", "wrap"):
        raise ctx.fail(node, f"mode={node.attrs['mode']!r} has no ONNX translation")
    axis = node.attrs["axis"] % len(ctx.shape(node.inputs[0]))
    idx = _int_indices(ctx, node, node.inputs[1], ctx.shape(node.inputs[0])[axis], node.attrs["mode"])
    return _single(ctx, node, "Gather", [ctx.input(node.inputs[0], node), idx], axis=axis)


# -- products and reductions --------------------------------------------------------------------------
def _swap_last(ctx, name, ndim, hint):
    perm = list(range(ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return ctx.emit("Transpose", [name], hint=hint, perm=perm)[0]


@converts("dot")
def _dot(ctx, node):
    a, b = _ins(ctx, node)
    ra, rb = len(ctx.shape(node.inputs[0])), len(ctx.shape(node.inputs[1]))
    if rb != 2 or (node.attrs["transpose_a"] and ra != 2):
        raise ctx.fail(node, "dot translates for a 2-D right operand (and a 2-D left one when transposed)")
    if node.attrs["transpose_a"]:
        a = _swap_last(ctx, a, 2, node.name)
    if node.attrs["transpose_b"]:
        b = _swap_last(ctx, b, 2, node.name)
    return _single(ctx, node, "MatMul", [a, b])


@converts("batch_dot")
def _batch_dot(ctx, node):
    a, b = _ins(ctx, node)
    if node.attrs["transpose_a"]:
        a = _swap_last(ctx, a, len(ctx.shape(node.inputs[0])), node.name)
    if node.attrs["transpose_b"]:
        b = _swap_last(ctx, b, len(ctx.shape(node.inputs[1])), node.name)
    return _single(ctx, node, "MatMul", [a, b])


_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin", "prod": "ReduceProd"}


def _reduce(onnx_op):
    def convert(ctx, node):
        ndim = len(ctx.shape(node.inputs[0]))
        axis = node.attrs["axis"]
        axes = None if axis is None or axis == () else sorted({a % ndim for a in ((axis,) if isinstance(axis, int) else axis)})
        if node.attrs["exclude"]:
            axes = [a for a in range(ndim) if a not in (axes or [])]
        keep = int(bool(node.attrs["keepdims"]))
        if axes is None:
            axes = list(range(ndim))
        if onnx_op == "ReduceSum":
            return _single(ctx, node, onnx_op, _ins(ctx, node) + [ctx.ints(axes, f"{node.name}_axes")], keepdims=keep)
        return _single(ctx, node, onnx_op, _ins(ctx, node), axes=axes, keepdims=keep)
    return convert


for _name, _onnx in _REDUCE.items():
    CONVERTERS[_name] = _reduce(_onnx)
