"""Rewiring hand-built symbols: MXNet's composition (`net2(fc3_data=net1)`, Symbol._compose)
and binding shapes that override a variable's own.

Graph nodes are shared between every Symbol built from them, so nothing here mutates a node:
the operators downstream of a replaced variable are cloned onto the new inputs, the rest of the
graph is reused as is.
"""
from __future__ import annotations

from .ops.errors import GraphcError
from .ops.graph import Graph, Node, variable

UNBOUND = "unbound"     # the kind of an atomic symbol's input placeholders (not arguments)


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
        clone.name = n.name     # (even '', an atomic symbol's operator)
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
    holes = [n for n in symbol._vars() if n.hints.get("kind") == UNBOUND]
    if holes:       # an atomic symbol (_gen_atomic_symbol): fill its inputs
        labels = [n.name for n in holes if not n.hints.get("aux")]
        if len(args) > len(labels):
            raise GraphcError(f"compose: {len(args)} symbols given for the {len(labels)} inputs {labels}")
        replace = _bind_placeholders(symbol, dict(zip(labels, args)) if args else dict(kwargs), name)
        values = substitute(symbol._values, replace)
        return _renamed_head(values, name) if name is not None else values
    arg_names = symbol.list_arguments()
    if len(args) > len(arg_names):
        raise GraphcError(f"compose: {len(args)} symbols given for the {len(arg_names)} arguments {arg_names}")
    given = dict(zip(arg_names, args)) if args else dict(kwargs)
    nodes = {n.name: n for n in symbol._vars()}
    replace = {}
    for key, value in given.items():
        if key not in nodes:
            raise GraphcError(f"compose: keyword argument name {key} not found; candidate arguments are {arg_names}")
        replace[id(nodes[key])] = _single_value(key, value)
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
    """The head operator alone, with no inputs and no name (MXNet's _gen_atomic_symbol: an
    operator to compose anew). Its inputs are placeholders (kind 'unbound', not arguments):
    composing fills them by input name ('data', 'weight') or position and turns the rest into
    variables `<name>_<input>`, as composing a fresh MXNet operator does."""
    from .ops.registry import get_op
    head = symbol.value.node
    if head.is_var or head.is_const:
        raise GraphcError(f"_gen_atomic_symbol: {head.name!r} is a variable, not an operator")
    op = get_op(head.op)
    names = list(op.input_names(head.attrs))
    inputs = []
    for i, v in enumerate(head.inputs):
        label = names[i] if i < len(names) else f"arg{i}"
        inputs.append(variable(label, None, UNBOUND, {"aux": i in op.aux_inputs}).out())
    clone = Node(head.op, inputs, head.attrs, None, (None,) * len(head.types), dict(head.hints))
    clone.name = ""         # (Node names an unnamed node itself; MXNet's atomic symbol has none)
    return [clone.out(i) for i in range(op.n_visible(head.attrs))]


def _bind_placeholders(symbol, given, name):
    """compose() on an atomic symbol: placeholders named in `given` take those symbols, the rest
    become variables named after the composed operator."""
    holes = [n for n in symbol._graph().nodes if n.is_var and n.hints.get("kind") == UNBOUND]
    labels = [n.name for n in holes]
    replace = {}
    for key, value in given.items():
        if key not in labels:
            raise GraphcError(f"compose: keyword argument name {key} not found; the operator's inputs are {labels}")
        replace[id(holes[labels.index(key)])] = _single_value(key, value)
    for n in holes:
        if id(n) not in replace:
            kind = "aux" if n.hints.get("aux") else "input"
            replace[id(n)] = variable(f"{name}_{n.name}" if name else n.name, None, kind).out()
    return replace


def _single_value(key, value):
    from .symbol import Symbol
    if not isinstance(value, Symbol):
        raise TypeError(f"compose: the value for {key!r} must be a Symbol, got {type(value).__name__}")
    if len(value._values) != 1:
        raise GraphcError(f"compose: the value for {key!r} has {len(value._values)} outputs; it must have one")
    return value.value
