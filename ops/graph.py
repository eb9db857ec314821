"""The one IR: a Graph of Nodes in topological order; values are (node, output index).

Variables (inputs, parameters, auxiliary states) are nodes with op 'var'; constants are nodes
with op '_const' holding a numpy array. Nodes are immutable once built: passes make new graphs.
"""
from __future__ import annotations

import itertools

import numpy as np

from .attrs import FrozenAttrs, format_attr
from .errors import GraphcError
from .types import TensorType

VAR = "var"
CONST = "_const"
_ids = itertools.count()


class Value:
    """Output `index` of `node`."""
    __slots__ = ("node", "index")

    def __init__(self, node: "Node", index: int = 0):
        self.node, self.index = node, index

    @property
    def type(self) -> TensorType:
        return self.node.types[self.index]

    def __eq__(self, other):
        return isinstance(other, Value) and self.node is other.node and self.index == other.index

    def __hash__(self):
        return hash((id(self.node), self.index))

    def __repr__(self):
        return f"Value({self.node.name}#{self.index})"


class Node:
    """op: operator name (or 'var'/'_const'); inputs: tuple of Values; attrs: parsed, frozen;
    types: one TensorType per output; hints: free-form facts that are not semantics
    (MXNet's __lr_mult__, ctx_group, the user source line that traced it, a var's kind)."""
    __slots__ = ("op", "inputs", "attrs", "name", "types", "hints", "uid")

    def __init__(self, op, inputs=(), attrs=None, name=None, types=(), hints=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = attrs if isinstance(attrs, FrozenAttrs) else FrozenAttrs(attrs or {})
        self.uid = next(_ids)
        self.name = name or f"{op.lower().lstrip('_')}{self.uid}"
        self.types = tuple(types)
        self.hints = dict(hints or {})

    @property
    def is_var(self) -> bool:
        return self.op == VAR

    @property
    def is_const(self) -> bool:
        return self.op == CONST

    def out(self, i: int = 0) -> Value:
        return Value(self, i)

    @property
    def outputs(self) -> list:
        return [Value(self, i) for i in range(len(self.types))]

    def __repr__(self):
        return f"Node({self.op} {self.name!r})"


def variable(name: str, type: TensorType, kind: str = "input", hints=None) -> Node:
    """kind: 'input' (data), 'param' (learnable), 'aux' (auxiliary state), 'ograd' (head gradient)."""
    h = dict(hints or {})
    h["kind"] = kind
    return Node(VAR, (), {}, name, (type,), h)


def constant(array, name=None, device="cpu(0)") -> Node:
    array = np.array(array, copy=True, order="C")
    array.setflags(write=False)
    t = TensorType(array.shape, array.dtype, device)
    return Node(CONST, (), FrozenAttrs(value=array), name, (t,))


class Graph:
    """nodes: topological order. inputs: the variable nodes, in calling order (unused ones stay).
    outputs: Values. output_tree: the nesting (lists/tuples) the outputs had in user code,
    as a structure of ints indexing `outputs` (None = a flat list)."""

    def __init__(self, nodes, inputs, outputs, name="graph", output_tree=None):
        self.nodes = list(nodes)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.name = name
        self.output_tree = output_tree

    @classmethod
    def from_outputs(cls, inputs, outputs, name="graph", output_tree=None) -> "Graph":
        """Collect the nodes that `outputs` need, in topological order (inputs kept even if unused)."""
        order, seen = [], set()
        for v in inputs:
            if id(v) not in seen:
                seen.add(id(v))
                order.append(v)
        stack = [(v.node, False) for v in reversed(outputs)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if id(node) not in seen:
                    seen.add(id(node))
                    order.append(node)
                continue
            if id(node) in seen:
                continue
            stack.append((node, True))
            for v in reversed(node.inputs):
                if id(v.node) not in seen:
                    stack.append((v.node, False))
        return cls(order, inputs, outputs, name, output_tree)

    def with_outputs(self, outputs, output_tree=None) -> "Graph":
        return Graph.from_outputs(self.inputs, outputs, self.name, output_tree)

    # -- queries -------------------------------------------------------------------------
    def input_by_name(self, name: str) -> Node:
        for n in self.inputs:
            if n.name == name:
                return n
        raise KeyError(name)

    def users(self) -> dict:
        """node id -> list of (user node, input position)."""
        out = {id(n): [] for n in self.nodes}
        for n in self.nodes:
            for pos, v in enumerate(n.inputs):
                out.setdefault(id(v.node), []).append((n, pos))
        return out

    def op_nodes(self):
        return [n for n in self.nodes if not n.is_var and not n.is_const]

    # -- views ---------------------------------------------------------------------------
    def to_networkx(self):
        """A networkx MultiDiGraph view (node uid -> attrs {node}), edges carry (out, in) positions."""
        import networkx as nx
        g = nx.MultiDiGraph(name=self.name)
        for n in self.nodes:
            g.add_node(n.uid, node=n, op=n.op, name=n.name)
        for n in self.nodes:
            for pos, v in enumerate(n.inputs):
                g.add_edge(v.node.uid, n.uid, out_index=v.index, in_index=pos)
        return g

    def __str__(self) -> str:
        return format_graph(self)

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.op_nodes())} ops, {len(self.outputs)} outputs>"


def _attr_text(node: Node) -> list:
    from .registry import has_op, get_op
    if node.is_const:
        arr = node.attrs["value"]
        return [f"value={np.array2string(arr, threshold=4, edgeitems=2)}" if arr.size != 1 else f"value={arr.reshape(()).item()!r}"]
    defaults = {}
    if has_op(node.op):
        defaults = {k: a.default for k, a in get_op(node.op).attrs.items()}
    items = []
    for k, v in node.attrs.items():
        if k in defaults and defaults[k] == v:
            continue
        items.append(f"{k}={v!r}")
    return items


def format_node(node: Node, names: dict) -> str:
    """One line of the listing: `%3: f32[1,512] = FullyConnected(%2, w, b, num_hidden=512)`."""
    lhs = ", ".join(names[(id(node), i)] for i in range(len(node.types)))
    tys = ", ".join("?" if t is None else str(t) for t in node.types)
    args = [names.get((id(v.node), v.index), f"?{v.node.name}") for v in node.inputs] + _attr_text(node)
    dev = ""
    # (cpu(0) is the default and unmarked, except in a device-partitioned graph: passes/partition.py)
    if node.types and node.types[0] is not None and (node.types[0].device != "cpu(0)" or "device" in node.hints):
        dev = f"  @{node.types[0].device}"
    return f"{lhs}: {tys} = {node.op}({', '.join(args)}){dev}  # {node.name}"


def value_names(graph: Graph) -> dict:
    names = {}
    counter = 0
    for n in graph.nodes:
        if n.is_var:
            names[(id(n), 0)] = n.name
            continue
        for i in range(len(n.types)):
            names[(id(n), i)] = f"%{counter}" if len(n.types) == 1 else f"%{counter}#{i}"
        counter += 1
    return names


def format_graph(graph: Graph) -> str:
    names = value_names(graph)
    params = ", ".join(f"{n.name}: {'?' if n.types[0] is None else n.types[0]}"
                       + (f"@{n.hints['device']}" if "device" in n.hints else "") for n in graph.inputs)
    lines = [f"graph {graph.name}({params}):"]
    for n in graph.nodes:
        if n.is_var:
            if n not in graph.inputs:
                lines.append(f"  {n.name}: {n.types[0]} = var()  # not an input")
            continue
        lines.append("  " + format_node(n, names))
    lines.append("  return " + ", ".join(names.get((id(v.node), v.index), "?") for v in graph.outputs))
    return "\n".join(lines)


class VerifyError(GraphcError):
    """A graph breaks an IR invariant: a pass has a bug."""


def verify(graph: Graph, check_inference: bool = True) -> Graph:
    """Check the invariants: topological order, every value typed, known ops, input nodes
    listed, outputs defined; with check_inference, each node's types equal re-inferred ones."""
    from .registry import has_op, get_op
    seen = set()
    names = value_names(graph)
    for n in graph.inputs:
        if not n.is_var:
            raise VerifyError(f"graph input {n.name!r} is a {n.op} node, not a variable")
    for n in graph.nodes:
        if id(n) in seen:
            raise VerifyError(f"node {n.name!r} appears twice")
        for v in n.inputs:
            if id(v.node) not in seen:
                raise VerifyError(f"{format_node(n, names)}: uses {v.node.name!r} before it is defined (cycle or bad order)")
            if not 0 <= v.index < len(v.node.types):
                raise VerifyError(f"{format_node(n, names)}: uses output {v.index} of {v.node.name!r}, which has {len(v.node.types)}")
        if not n.types:
            raise VerifyError(f"node {n.name!r} ({n.op}) has no inferred types")
        if not (n.is_var or n.is_const):
            if not has_op(n.op) and not n.op.startswith("_fused"):
                raise VerifyError(f"node {n.name!r}: unknown operator {n.op!r}")
            if check_inference and has_op(n.op):
                op = get_op(n.op)
                got = op.infer_types([v.type for v in n.inputs], n.attrs, f"'{n.name}'")
                if [(t.shape, t.dtype) for t in got] != [(t.shape, t.dtype) for t in n.types]:
                    raise VerifyError(f"{format_node(n, names)}: types disagree with inference {[str(t) for t in got]}")
        elif n.is_var and n.inputs:
            raise VerifyError(f"variable {n.name!r} has inputs")
        seen.add(id(n))
    for n in graph.inputs:
        if id(n) not in seen:
            raise VerifyError(f"graph input {n.name!r} is not among the nodes")
    for v in graph.outputs:
        if id(v.node) not in seen:
            raise VerifyError(f"graph output {v.node.name!r} is not among the nodes")
    return graph
