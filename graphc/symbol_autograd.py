"""The computation autograd recorded, as a Symbol (MXNet 1.x's autograd.get_symbol).

The eager tape (autograd.py) keeps, for every recorded operator, its inputs, outputs, operator
and parsed attributes: that is a graph already, so the symbol is read off the tape without
tracing anything again. Names follow MXNet's: operators are `node_<k>`, arrays that were not
computed under record() are variables, `var<k>` when they have a gradient buffer (attach_grad)
and `null<k>` when they have none, numbered in the depth-first order MXNet's graph walk visits
them (inputs left to right), so the same code gives the same argument names under both.
"""
from __future__ import annotations

from .ops.errors import GraphcError
from .ops.graph import Node, variable


def recorded_symbol(head):
    """The Symbol whose single output computes `head` from the arrays it was recorded from.
    An array with no recorded history is one variable (as MXNet's)."""
    from .symbol import Symbol, _GLOBAL
    values, counters = {}, {"node": 0, "var": 0}
    if head._entry is None:
        return Symbol(_leaf(head, values, counters), _GLOBAL)
    for tape_node in _postorder(head._entry[0]):
        _emit(tape_node, values, counters)
    node, index = head._entry
    return Symbol(values[(id(node), index)], _GLOBAL)


def _postorder(root):
    """Tape nodes reachable from `root`, each after the nodes that made its inputs, inputs
    visited left to right (MXNet's DFSVisit order, which its names count in). Iterative: a
    recorded training loop can be far deeper than Python's recursion limit."""
    order, seen = [], {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        node, pending = stack[-1]
        for x in pending:
            entry = x._entry
            if entry is not None and id(entry[0]) not in seen:
                seen.add(id(entry[0]))
                stack.append((entry[0], iter(entry[0].inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def _emit(tape_node, values, counters):
    if tape_node.op is None:
        raise GraphcError(
            f"autograd.get_symbol: the recorded step {tape_node.name!r} is a hand-written backward "
            "(a hybridized block or an autograd.Function), not an operator, so it has no symbol; "
            "record without hybridize(), or export the hybridized block to get its symbol")
    inputs = [values[(id(x._entry[0]), x._entry[1])] if x._entry is not None else _leaf(x, values, counters)
              for x in tape_node.inputs]
    name = f"node_{counters['node']}"
    counters["node"] += 1
    n_out = tape_node.op.n_outputs(tape_node.attrs)
    node = Node(tape_node.op.name, inputs, tape_node.attrs, name, (None,) * n_out)
    for i in range(n_out):
        values[(id(tape_node), i)] = node.out(i)


def _leaf(array, values, counters):
    """The variable standing for an array the tape starts from (one per array, however many
    operators read it)."""
    key = ("leaf", id(array))
    if key not in values:
        prefix = "var" if array._grad_req != "null" else "null"
        node = variable(f"{prefix}{counters['var']}", None, "input")
        counters["var"] += 1
        values[key] = node.out()
    return values[key]
