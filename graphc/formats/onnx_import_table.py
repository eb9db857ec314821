"""The table of ONNX operator translations into graphc (MXNet) operators, and what they share.

`CONVERTERS[op_type](ctx, node, attrs)` builds MXNet operators through `ctx` and returns one
value per ONNX output; `FOLDERS[op_type](ctx, arrays, attrs)` evaluates a shape-arithmetic
operator in numpy when all its inputs are known at import. Each translation follows the ONNX
operator's definition at the model's opset where the spelling changed (axes as attribute or
input, Softmax's 2-D coercion before opset 13) and refuses attribute values it cannot express
through `ctx.fail(why)`. The translations live in `onnx_import_nn` (layers), `onnx_import_tensor`
(elementwise, shapes, reductions) and `onnx_import_fold`. Never imports a backend.
"""
from __future__ import annotations

CONVERTERS: dict = {}
FOLDERS: dict = {}


def converts(*op_types):
    def register(fn):
        for op in op_types:
            CONVERTERS[op] = fn
        return fn
    return register


def folds(*op_types):
    def register(fn):
        for op in op_types:
            FOLDERS[op] = fn
        return fn
    return register


def all_translations() -> tuple:
    """(CONVERTERS, FOLDERS) with every translation module loaded."""
    from . import onnx_import_fold, onnx_import_nn, onnx_import_tensor  # noqa: F401  (they register themselves)
    return CONVERTERS, FOLDERS


def axes_of(ctx, node, attrs, index=1):
    """Axes from the attribute (older opsets) or the input at `index` (newer); None if absent."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(node.input) > index and node.input[index]:
        axes = ctx.const(node.input[index])
        if axes is None:
            raise ctx.fail("axes computed at run time; graphc needs them known when importing")
        return [int(a) for a in axes.reshape(-1)]
    return None


def known(ctx, name, what):
    value = ctx.const(name)
    if value is None:
        raise ctx.fail(f"{what} ({name!r}) is computed at run time; graphc needs it known when importing")
    return value


def symmetric_pads(ctx, pads, nd):
    pads = list(pads) if pads is not None else [0] * (2 * nd)
    begin, end = pads[:nd], pads[nd:]
    if begin != end:
        raise ctx.fail(f"asymmetric pads {pads}: MXNet's convolution and pooling pad both sides equally")
    return tuple(int(p) for p in begin)


def explicit_pads(ctx, attrs, in_shape, kernel, strides, dilations):
    """Explicit pads for auto_pad SAME_*, when they come out symmetric."""
    mode = attrs.get("auto_pad", "NOTSET")
    nd = len(kernel)
    if mode in ("NOTSET", ""):
        return symmetric_pads(ctx, attrs.get("pads"), nd)
    if mode == "VALID":
        return (0,) * nd
    pads = []
    for x, k, s, d in zip(in_shape[2:], kernel, strides, dilations):
        out = -(-x // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - x, 0)
        if total % 2:
            raise ctx.fail(f"auto_pad={mode} needs asymmetric padding here; MXNet pads both sides equally")
        pads.append(total // 2)
    return tuple(pads)


def slice_spec(ctx, node, attrs, shape):
    """(begin, end, step) per dimension from Slice's inputs (opset >= 10) or attributes."""
    if "starts" in attrs:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    else:
        starts = known(ctx, node.input[1], "starts").reshape(-1)
        ends = known(ctx, node.input[2], "ends").reshape(-1)
        axes = known(ctx, node.input[3], "axes").reshape(-1) if len(node.input) > 3 and node.input[3] else range(len(starts))
        steps = known(ctx, node.input[4], "steps").reshape(-1) if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    begin, end, step = [None] * len(shape), [None] * len(shape), [None] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a, n = int(a) % len(shape), shape[int(a) % len(shape)]
        s, e, st = int(s), int(e), int(st)
        begin[a] = max(min(s, n), -n) if st > 0 else (None if s >= n else s)
        end[a] = None if (st > 0 and e >= n) or (st < 0 and e < -n) else max(e, -n - 1) if st < 0 else e
        step[a] = st
    return begin, end, step
