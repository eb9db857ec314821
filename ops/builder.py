"""GraphBuilder: appends typed nodes to a graph under construction, and Handle, the symbolic
value it hands out. Tracing (graphc.sym) and the autodiff pass both build graphs through it,
so inference and its errors happen at the line of user code that made the node."""
from __future__ import annotations

import numpy as np

from .arith import ArithmeticMixin
from .graph import Graph, Node, Value, variable, constant
from .namespace import OpNamespace
from .errors import ShapeError, DTypeError
from .registry import get_op
from .types import TensorType


def given_attrs_hint(hints, attrs) -> dict:
    """Remember which attributes the caller spelled out (MXNet writes those into -symbol.json
    even when they equal the default; exports then match MXNet's files)."""
    hints = dict(hints or {})
    hints.setdefault("given_attrs", frozenset(k for k in (attrs or {}) if not k.startswith("__")))
    return hints


def describe_inputs(op, attrs, inputs) -> str:
    names = op.input_names(attrs)
    parts = []
    for i, v in enumerate(inputs):
        label = names[i] if i < len(names) else f"input{i}"
        parts.append(f"{label}={v.node.name} {v.type}")
    return ", ".join(parts)


def traced_from() -> str:
    """The innermost stack frame outside graphc's own packages: the user's line that built this node."""
    import os
    import traceback
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ours = tuple(os.path.join(root, d) + os.sep for d in ("graphc", "ops", "passes", "runtime"))
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if not path.startswith(ours) and "importlib" not in path:
            return f"\n  traced from {frame.filename}:{frame.lineno}"
    return ""


class Handle(ArithmeticMixin):
    """A symbolic value: knows its shape and dtype while the graph is being built."""

    __slots__ = ("value", "builder")

    def __init__(self, value: Value, builder: "GraphBuilder"):
        self.value, self.builder = value, builder

    def _invoke(self, op, inputs, attrs):
        return self.builder.invoke(op, inputs, attrs)

    def _lift(self, other):
        return self.builder.const(np.asarray(other, dtype=self.dtype))

    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def shape(self):
        return self.value.type.shape

    @property
    def dtype(self):
        return np.dtype(self.value.type.dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return self.value.type.size

    @property
    def name(self):
        return self.value.node.name

    def __repr__(self):
        return f"<Handle {self.value.node.name}#{self.value.index}: {self.type}>"

    def __bool__(self):
        raise TypeError("a symbolic value has no truth value while tracing; use F.where for data-dependent choices")


class GraphBuilder:
    def __init__(self, name="graph", handle_cls=Handle):
        self.name = name
        self.nodes = []
        self.inputs = []
        self.handle_cls = handle_cls
        self._counts = {}
        self.F = OpNamespace(self.invoke, lambda a: isinstance(a, Handle))

    def _name(self, op):
        base = op.lower().lstrip("_")
        k = self._counts.get(base, 0)
        self._counts[base] = k + 1
        return f"{base}{k}"

    def wrap(self, value: Value) -> Handle:
        return self.handle_cls(value, self)

    def var(self, name, type: TensorType, kind="input", hints=None) -> Handle:
        node = variable(name, type, kind, hints)
        self.nodes.append(node)
        self.inputs.append(node)
        return self.wrap(node.out())

    def adopt(self, node: Node) -> Handle:
        """Use an existing variable node (shared with another graph) as an input here."""
        if node not in self.inputs:
            self.inputs.append(node)
            self.nodes.append(node)
        return self.wrap(node.out())

    def const(self, array, device="cpu(0)") -> Handle:
        node = constant(np.asarray(array), device=device)
        self.nodes.append(node)
        return self.wrap(node.out())

    def emit(self, op_name, inputs, attrs=None, name=None, hints=None) -> Node:
        op = get_op(op_name)
        parsed = op.parse(attrs or {})
        name = name or self._name(op.name)
        try:
            types = op.infer_types([v.type for v in inputs], parsed, f"'{name}'")
        except (ShapeError, DTypeError) as exc:
            raise type(exc)(f"{exc}\n  inputs: {describe_inputs(op, parsed, inputs)}{traced_from()}") from None
        node = Node(op.name, inputs, parsed, name, types, given_attrs_hint(hints, attrs))
        self.nodes.append(node)
        return node

    def invoke(self, op_name, inputs, attrs=None, name=None):
        """Handles in, Handle(s) out: one Handle for one visible output, else a tuple."""
        values = [h.value if isinstance(h, Handle) else self.const(h).value for h in inputs]
        node = self.emit(op_name, values, attrs, name)
        n = get_op(op_name).n_visible(node.attrs)
        outs = tuple(self.wrap(node.out(i)) for i in range(n))
        return outs[0] if n == 1 else outs

    def build(self, outputs, output_tree=None) -> Graph:
        values = [h.value if isinstance(h, Handle) else h for h in outputs]
        return Graph.from_outputs(self.inputs, values, self.name, output_tree)
