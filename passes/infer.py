"""infer_types: give every value its shape, dtype and device, from the input types.

Graphs loaded from files (or built with untyped `sym.var`) carry no types; graphs traced from a
block are typed already and can be re-typed for other input shapes with this same pass. It is
the one place nodes are re-emitted through a builder: loading a model file (io.bind_types),
binding a Symbol and inlining a SymbolBlock into a trace all go through `Retyper`.

MXNet's files may leave a creation op's shape partly unknown (`_zeros` with shape (2, 0, 24) for
an RNN's begin state, 0 = "the batch size"): such a node is emitted late, when its first user
is emitted, with the shape that user's `OpDef.infer_missing` asks for.
"""
from __future__ import annotations

import ast

from graphc.ops.builder import GraphBuilder
from graphc.ops.dtypes import FROM_MXNET_FLAG
from graphc.ops.errors import ShapeError, FormatError
from graphc.ops.graph import Graph, Node, Value, variable, constant
from graphc.ops.registry import get_op
from graphc.ops.types import TensorType


def hinted_type(node: Node):
    """(shape with 0 = unknown, dtype) from a variable's __shape__/__dtype__ hints (None when absent)."""
    shape = None
    text = node.hints.get("__shape__")
    if isinstance(text, str):
        try:
            value = ast.literal_eval(text)
            shape = (value,) if isinstance(value, int) else tuple(int(d) for d in value)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            # (the literal parser overflows its stack, as RecursionError or MemoryError, on a
            # value nested thousands deep)
            raise FormatError(f"variable {node.name!r}: __shape__ {text!r:.80} is not a shape") from None
        if any(d < 0 for d in shape):
            raise FormatError(f"variable {node.name!r}: __shape__ {text!r:.80} has a negative dimension "
                              "(0 means unknown)")
    elif isinstance(text, tuple):
        shape = text
    dtype = None
    flag = node.hints.get("__dtype__")
    if flag is not None:
        try:
            dtype = FROM_MXNET_FLAG[int(flag)]
        except (KeyError, ValueError):
            raise FormatError(f"variable {node.name!r}: __dtype__ {flag!r} is not an MXNet dtype flag") from None
    return shape, dtype


class _Deferred:
    """A creation node (no inputs) whose shape has unknown (0) dimensions, waiting for a user."""
    __slots__ = ("node", "index", "emitted")

    def __init__(self, node, index=0):
        self.node, self.index, self.emitted = node, index, None


def _has_unknown_shape(node: Node) -> bool:
    shape = node.attrs.get("shape") if not node.inputs else None
    return isinstance(shape, tuple) and 0 in shape


class Retyper:
    """Re-emits nodes of one graph into `builder`, typing each from its (new) inputs."""

    def __init__(self, builder: GraphBuilder):
        self.builder = builder
        self.env = {}     # (id(old node), output) -> Value or _Deferred

    def bind(self, old: Node, value: Value):
        self.env[(id(old), 0)] = value

    def lookup(self, v: Value) -> Value:
        got = self.env[(id(v.node), v.index)]
        if isinstance(got, _Deferred):
            raise ShapeError(f"{got.node.op} '{got.node.name}': its shape {got.node.attrs['shape']} has unknown "
                             "(0) dimensions and no user of it says what they are")
        return got

    def emit(self, node: Node):
        if node.is_const:
            self.env[(id(node), 0)] = self.builder.const(node.attrs["value"]).value
            return
        if _has_unknown_shape(node):
            for i in range(len(node.types)):
                self.env[(id(node), i)] = _Deferred(node, i)
            return
        args = [self.env[(id(v.node), v.index)] for v in node.inputs]
        if any(isinstance(a, _Deferred) for a in args):
            args = self._resolve(node, args)
        new = self.builder.emit(node.op, args, dict(node.attrs), node.name, dict(node.hints))
        for i in range(len(node.types)):
            self.env[(id(node), i)] = new.out(i)

    def _resolve(self, node: Node, args: list) -> list:
        op = get_op(node.op)
        known = [None if isinstance(a, _Deferred) else a.type for a in args]
        wanted = op.infer_missing(known, node.attrs) if op.infer_missing else known
        out = []
        for a, want in zip(args, wanted):
            if not isinstance(a, _Deferred):
                out.append(a)
                continue
            if a.emitted is None:
                shape = a.node.attrs["shape"]
                if want is None or len(want.shape) != len(shape) or \
                        any(s and s != w for s, w in zip(shape, want.shape)):
                    raise ShapeError(f"{a.node.op} '{a.node.name}': its shape {shape} has unknown (0) dimensions "
                                     f"and its user {node.op} '{node.name}' cannot fill them"
                                     + (f" (it needs {want.shape})" if want is not None else ""))
                attrs = dict(a.node.attrs)
                attrs["shape"] = tuple(w for w in want.shape)
                a.emitted = self.builder.emit(a.node.op, [], attrs, a.node.name, dict(a.node.hints))
            out.append(a.emitted.out(a.index))
        return out


def infer_types(graph: Graph, input_types: dict | None = None) -> Graph:
    """input_types: name -> TensorType for inputs whose type is missing or should change; other
    variables keep their type, or take it from complete __shape__/__dtype__ hints."""
    input_types = input_types or {}
    builder = GraphBuilder(graph.name)
    retype = Retyper(builder)
    new_inputs = []
    for node in graph.inputs:
        t = input_types.get(node.name)
        hint_shape, hint_dtype = hinted_type(node)
        if t is None:
            t = node.types[0] if node.types else None
        if t is None and hint_shape and 0 not in hint_shape:
            t = TensorType(hint_shape, hint_dtype or "float32")
        if t is None:
            hint = node.hints.get("__shape__")
            why = "it has no __shape__ hint" if hint is None else f"its __shape__ {hint} is incomplete (0 = unknown)"
            raise ShapeError(f"graph {graph.name}: no type given for input {node.name!r}, and {why}; "
                             f"give it one (types given: {sorted(input_types)})")
        if hint_shape and (len(hint_shape) != len(t.shape) or any(h and h != d for h, d in zip(hint_shape, t.shape))):
            raise ShapeError(f"graph {graph.name}: variable {node.name!r} is given shape {t.shape} but the "
                             f"file says __shape__ {node.hints['__shape__']} (0 = unknown)")
        if node.types and node.types[0] == t:
            new = node
        else:
            new = variable(node.name, t, node.hints.get("kind", "input"),
                           {k: v for k, v in node.hints.items() if k != "kind"})
        builder.nodes.append(new)
        retype.bind(node, new.out())
        new_inputs.append(new)
    for node in graph.nodes:
        if node.is_var:
            if (id(node), 0) not in retype.env:
                raise ShapeError(f"graph {graph.name}: variable {node.name!r} is used but is not an input")
            continue
        retype.emit(node)
    outputs = [retype.lookup(v) for v in graph.outputs]
    return Graph.from_outputs(new_inputs, outputs, graph.name, graph.output_tree)
