"""Rewiring hand-built symbols: MXNet's composition (`net2(fc3_data=net1)`, Symbol._compose)
and binding shapes that override a variable's own.

Graph nodes are shared between every Symbol built from them, so nothing here mutates a node:
the operators downstream of a replaced variable are cloned onto the new inputs, the rest of the
graph is reused as is.
"""
from __future__ import annotations

from .ops.errors import GraphcError
from .ops.graph import Graph, Node, variable


def substitute(values, replace: dict) -> list:
    """`values` with every variable node in `replace` (id(node) -> Value) swapped for its value;
    only the operators that (transitively) read a replaced variable are cloned."""
    env = {}

    def lookup(v):
        return env.get((id(v.node), v.index), v)

    g = Graph.from_outputs([], list(values))
    for n in g.nodes:
        if n.is_var and id(n) in replace:
            env[(id(n), 0)] = replace[id(n)]
            continue
        if n.is_var or n.is_const or not any((id(v.node), v.index) in env for v in n.inputs):
            continue
        clone = Node(n.op, [lookup(v) for v in n.inputs], n.attrs, n.name, (None,) * len(n.types), dict(n.hints))
        for i in range(len(n.types)):
            env[(id(n), i)] = clone.out(i)
    return [lookup(v) for v in values]


def without_shape_hints(graph: Graph, shapes: dict) -> Graph:
    """`graph` whose variables named in `shapes` forget their own shape (the `shape=` they were
    declared with, their __shape__ attribute): MXNet's infer_shape(a=...) overrides both."""
    replace = {}
    inputs = []
    for n in graph.inputs:
        if n.name in shapes and (n.hints.get("__shape__") is not None or n.types[0] is not None):
            hints = {k: v for k, v in n.hints.items() if k not in ("kind", "__shape__")}
            new = variable(n.name, None, n.hints.get("kind", "input"), hints)
            replace[id(n)] = new.out()
            inputs.append(new)
        else:
            inputs.append(n)
    if not replace:
        return graph
    return Graph.from_outputs(inputs, substitute(graph.outputs, replace), graph.name, graph.output_tree)


def compose(symbol, args, kwargs, name=None):
    """The values of `symbol` with its arguments replaced by other symbols: keyword arguments
    by argument name, positional ones in list_arguments() order (MXNet's Symbol._compose).
    `name` renames the head operator, as MXNet's does."""
    from .symbol import Symbol
    if args and kwargs:
        raise TypeError("compose only accept input Symbols either as positional or keyword arguments, not both")
    arg_names = symbol.list_arguments()
    if len(args) > len(arg_names):
        raise GraphcError(f"compose: {len(args)} symbols given for the {len(arg_names)} arguments {arg_names}")
    given = dict(zip(arg_names, args)) if args else dict(kwargs)
    nodes = {n.name: n for n in symbol._vars()}
    replace = {}
    for key, value in given.items():
        if key not in nodes:
            raise GraphcError(f"compose: keyword argument name {key} not found; candidate arguments are {arg_names}")
        if not isinstance(value, Symbol):
            raise TypeError(f"compose: the value for {key!r} must be a Symbol, got {type(value).__name__}")
        if len(value._values) != 1:
            raise GraphcError(f"compose: the value for {key!r} has {len(value._values)} outputs; it must have one")
        replace[id(nodes[key])] = value.value
    values = substitute(symbol._values, replace)
    if name is not None:
        values = _renamed_head(values, name)
    return values


def _renamed_head(values, name):
    """The head operator (the one making the first output) cloned under a new name."""
    head = values[0].node
    if head.is_var or head.is_const:
        return values
    clone = Node(head.op, head.inputs, head.attrs, name, head.types, dict(head.hints))
    return [clone.out(v.index) if v.node is head else v for v in values]


def atomic(symbol):
    """The head operator alone, its inputs fresh variables `<node>_<input>` (MXNet's
    _gen_atomic_symbol: an operator to compose anew)."""
    from .ops.registry import get_op
    head = symbol.value.node
    if head.is_var or head.is_const:
        raise GraphcError(f"_gen_atomic_symbol: {head.name!r} is a variable, not an operator")
    op = get_op(head.op)
    names = list(op.input_names(head.attrs))
    inputs = []
    for i, v in enumerate(head.inputs):
        label = names[i] if i < len(names) else f"arg{i}"
        kind = "aux" if i in op.aux_inputs else "input"
        inputs.append(variable(f"{head.name}_{label}", None, kind).out())
    clone = Node(head.op, inputs, head.attrs, head.name, (None,) * len(head.types), dict(head.hints))
    return [clone.out(i) for i in range(op.n_visible(head.attrs))]
