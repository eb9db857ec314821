"""The table of ONNX translations of graphc (MXNet) operators, and what the translations share.

`CONVERTERS[op](ctx, node) -> names`: a converter reads its inputs through `ctx.input(value)`
(known arrays become initializers on first use), emits ONNX nodes through `ctx.emit`, and
returns one ONNX name per output it produces (None for hidden outputs that exist only in
training). Each translates MXNet 1.9's semantics for inference; attribute values it cannot
express are refused with `ctx.fail(node, why)`, never approximated. Opset 13 spellings
throughout. The translations live in `onnx_export_nn` (layers) and `onnx_export_tensor`
(elementwise, shapes, indexing, reductions); both register here. Never imports a backend.
"""
from __future__ import annotations

import numpy as np

from .onnx_common import onnx_elem_type

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
CONVERTERS: dict = {}


def converts(*ops):
    def register(fn):
        for op in ops:
            CONVERTERS[op] = fn
        return fn
    return register


def input_names(ctx, node):
    return [ctx.input(v, node) for v in node.inputs]


def single(ctx, node, op_type, inputs, **attrs):
    """One ONNX node computing the graphc node's only visible output."""
    names = ctx.result_names(node)
    ctx.emit(op_type, inputs, [names[0]], **attrs)
    return [names[0]] + [None] * (len(names) - 1)


def elem_type(ctx, node, index=0) -> int:
    """ONNX tensor type of the node's output `index`."""
    return onnx_elem_type(node.types[index].dtype)


def all_converters() -> dict:
    """The table with every translation module loaded."""
    from . import onnx_export_nn, onnx_export_tensor  # noqa: F401  (they register themselves)
    return CONVERTERS
