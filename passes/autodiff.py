"""Autodiff as a graph transform: forward graph -> forward + backward graph.

Reverse mode over the graph, using each operator's gradient rule with F = a GraphBuilder's
namespace, so the backward graph is built from ordinary operators (and so can be optimised,
fused and compiled like the forward one). `split_forward_backward` then cuts the joint graph
into a forward program (that also returns what the backward needs) and a backward program,
like MXNet's CachedOp does for a hybridized block."""
from __future__ import annotations

from dataclasses import dataclass

from graphc.ops.builder import GraphBuilder, Handle
from graphc.ops.errors import DTypeError, GraphcError, ShapeError
from graphc.ops.graph import Graph, Node, Value, variable
from graphc.ops.registry import Elementwise, View, get_op


@dataclass
class GradientGraph:
    """graph: inputs = forward inputs + one head-gradient var per output; outputs = forward
    outputs + one gradient per `wrt` input (a zeros value if the output does not depend on it).
    head_grads: the head-gradient variable nodes; wrt: the differentiated input nodes."""
    graph: Graph
    num_forward_outputs: int
    head_grads: list
    wrt: list


def differentiate(graph: Graph, wrt: list | None = None, num_heads: int | None = None) -> GradientGraph:
    """wrt: the input nodes to differentiate against (default: every float input).
    num_heads: only the first num_heads outputs are differentiated (default: all); the rest
    (e.g. auxiliary-state updates) pass through as forward outputs without head gradients."""
    if wrt is None:
        wrt = [n for n in graph.inputs if n.types[0].dtype.startswith(("float", "bfloat"))]
    builder = GraphBuilder(graph.name + "_grad")
    builder.nodes = list(graph.nodes)
    builder.inputs = list(graph.inputs)
    head_grads = []
    heads = graph.outputs if num_heads is None else graph.outputs[:num_heads]
    for i, v in enumerate(heads):
        node = variable(f"_head_grad{i}", v.type, "ograd")
        _place_like([node], v.node)
        builder.nodes.append(node)
        builder.inputs.append(node)
        head_grads.append(node)
    grads = {}

    def add(value: Value, g: Handle):
        key = (id(value.node), value.index)
        old = grads.get(key)
        grads[key] = g if old is None else old + g

    for v, hg in zip(heads, head_grads):
        add(v, builder.wrap(hg.out()))
    needed = _nodes_between(graph, wrt)
    F = builder.F
    for node in reversed(graph.nodes):
        if node.is_var or node.is_const or id(node) not in needed:
            continue
        ograds = [grads.pop((id(node), i), None) for i in range(len(node.types))]
        if all(g is None for g in ograds):
            continue
        first_new = len(builder.nodes)
        op = get_op(node.op)
        if op.gradient is None:
            raise GraphcError(f"autodiff: operator {node.op} (node {node.name!r}) has no gradient rule")
        ograds = [F.zeros_like(builder.wrap(node.out(i))) if g is None else g for i, g in enumerate(ograds)]
        ins = [builder.wrap(u) for u in node.inputs]
        outs = [builder.wrap(node.out(i)) for i in range(len(node.types))]
        try:
            in_grads = op.gradient(F, ins, outs, ograds, node.attrs)
        except (ShapeError, DTypeError) as exc:
            # the operators a gradient rule builds are graphc's, not the user's: name the layer
            raise type(exc)(f"autodiff: the gradient of {node.op} {node.name!r} ({', '.join(str(t) for t in node.types)}) "
                            f"could not be built: {exc}") from None
        if len(in_grads) != len(node.inputs):
            raise GraphcError(f"autodiff: gradient rule of {node.op} returned {len(in_grads)} gradients "
                              f"for {len(node.inputs)} inputs")
        for u, g in zip(node.inputs, in_grads):
            if g is None:
                continue
            if tuple(g.shape) != u.type.shape:
                raise GraphcError(f"autodiff: gradient rule of {node.op} (node {node.name!r}) gave shape "
                                  f"{tuple(g.shape)} for an input of shape {u.type.shape}")
            if g.type.dtype != u.type.dtype:
                raise DTypeError(f"autodiff: gradient rule of {node.op} (node {node.name!r}) gave "
                                 f"{g.type.dtype} for an input of dtype {u.type.dtype}")
            add(u, g)
        _place_like(builder.nodes[first_new:], node)
    outputs = list(graph.outputs)
    for w in wrt:
        g = grads.get((id(w), 0))
        first_new = len(builder.nodes)
        outputs.append(g.value if g is not None else F.zeros_like(builder.wrap(w.out())).value)
        _place_like(builder.nodes[first_new:], w)
    joint = Graph.from_outputs(builder.inputs, outputs, builder.name)
    return GradientGraph(joint, len(graph.outputs), head_grads, list(wrt))


def _place_like(new_nodes, forward_node: Node) -> None:
    """Device-partitioned graphs (passes/partition.py): the gradient of a node runs where the
    node ran, so each node built for it gets its device hint (a copy's gradient, itself a copy,
    says where it goes by its attribute; the rest of a copy's gradient, such as the sum with
    the source's other gradients, sits on the source's device). Unplaced graphs are left as
    they are."""
    if forward_node.op == "_CrossDeviceCopy":
        forward_node = forward_node.inputs[0].node
    device = forward_node.hints.get("device")
    if device is None:
        return
    for n in new_nodes:
        if n.op != "_CrossDeviceCopy" and "device" not in n.hints:
            n.hints["device"] = device


def _nodes_between(graph: Graph, wrt) -> set:
    """Nodes that depend on some `wrt` input (only those need gradients)."""
    live = {id(n) for n in wrt}
    for node in graph.nodes:
        if any(id(v.node) in live for v in node.inputs):
            live.add(id(node))
    return live


@dataclass
class SplitGraphs:
    """forward: original inputs -> forward outputs + saved values.
    backward: saved values + head gradients (+ original inputs it reads) -> gradients.
    backward_inputs: for each backward input, where its value comes from at run time:
    ('saved', k) the k-th saved output of forward, ('input', i) the i-th forward input,
    ('head_grad', j) the j-th head gradient."""
    forward: Graph
    backward: Graph
    num_outputs: int
    backward_inputs: list


def split_forward_backward(gg: GradientGraph, forward_inputs: list) -> SplitGraphs:
    joint = gg.graph
    head_ids = {id(n) for n in gg.head_grads}
    backward_ids = set(head_ids)
    for node in joint.nodes:
        if any(id(v.node) in backward_ids for v in node.inputs):
            backward_ids.add(id(node))
    n_out = gg.num_forward_outputs
    fwd_outputs = joint.outputs[:n_out]
    grad_outputs = joint.outputs[n_out:]
    backward_ids |= _recomputed_in_backward(joint, backward_ids, fwd_outputs, grad_outputs)
    # values computed in the forward part that the backward part reads
    saved, saved_index = [], {}
    input_index = {id(n): i for i, n in enumerate(forward_inputs)}
    backward_inputs, replacement = [], {}
    for j, hg in enumerate(gg.head_grads):
        backward_inputs.append(("head_grad", j))
        replacement[(id(hg), 0)] = hg
    bwd_vars = list(gg.head_grads)

    def boundary(v: Value):
        key = (id(v.node), v.index)
        if key in replacement:
            return
        if v.node.is_var:
            node = variable(v.node.name, v.type, "input")
            backward_inputs.append(("input", input_index[id(v.node)]))
        elif v.node.is_const:
            return
        else:
            node = variable(f"_saved{len(saved)}_{v.node.name}", v.type, "input")
            saved_index[key] = len(saved)
            saved.append(v)
            backward_inputs.append(("saved", saved_index[key]))
        replacement[key] = node
        bwd_vars.append(node)

    for node in joint.nodes:
        if id(node) in backward_ids and id(node) not in head_ids:
            for v in node.inputs:
                if id(v.node) not in backward_ids:
                    boundary(v)
    for v in grad_outputs:
        if id(v.node) not in backward_ids:
            boundary(v)  # a gradient that does not depend on the head (e.g. zeros): pass through
    forward = Graph.from_outputs(list(forward_inputs), list(fwd_outputs) + saved, joint.name + "_forward")
    # rebuild the backward nodes over the boundary variables
    mapping = {}

    def lookup(v: Value) -> Value:
        key = (id(v.node), v.index)
        if key in replacement:
            return replacement[key].out()
        if v.node.is_const:
            return v            # constants are shared by both programs as they are
        return mapping[key]

    for node in joint.nodes:
        if id(node) not in backward_ids or id(node) in head_ids:
            continue
        new = Node(node.op, [lookup(v) for v in node.inputs], node.attrs, node.name, node.types, node.hints)
        for i in range(len(node.types)):
            mapping[(id(node), i)] = new.out(i)
    bwd_outputs = [lookup(v) if (id(v.node), v.index) in replacement or (id(v.node), v.index) in mapping else v
                   for v in grad_outputs]
    backward = Graph.from_outputs(bwd_vars, bwd_outputs, joint.name + "_backward")
    return SplitGraphs(forward, backward, n_out, backward_inputs)


def _recomputed_in_backward(joint: Graph, backward_ids: set, fwd_outputs, grad_outputs) -> set:
    """Forward nodes the backward program should recompute rather than receive: chains of
    cheap nodes (elementwise, reshapes) that only the backward reads, when recomputing them
    needs no more saved bytes than saving their result. Saving `x > 0` next to `relu(x)`, or
    a loss's one-hot label mask, costs the forward a pass and an output and the backward a
    read; recomputed, they fuse into the backward's kernels."""
    consumers: dict = {}
    for node in joint.nodes:
        for v in node.inputs:
            consumers.setdefault(id(v.node), []).append(node)
    pinned = {id(v.node) for v in fwd_outputs}          # the forward computes these anyway
    grad_out_ids = {id(v.node) for v in grad_outputs}
    moved: set = set()

    def in_backward(n) -> bool:
        return id(n) in backward_ids or id(n) in moved

    def cheap(node) -> bool:
        if node.is_var or node.is_const or id(node) in pinned or len(node.types) != 1:
            return False
        op = get_op(node.op)
        if op.random or op.mutates:
            return False
        if isinstance(op.lowering, Elementwise) or not node.inputs:    # (no inputs: a constant)
            return True
        return isinstance(op.lowering, View) and node.types[0].size == node.inputs[0].type.size

    def free_in_backward(value, reader) -> bool:
        """The backward has `value` without saving anything more for it."""
        src = value.node
        if src.is_var or src.is_const or in_backward(src):
            return True
        return any(c is not reader and in_backward(c) for c in consumers.get(id(src), ()))

    changed = True
    while changed:
        changed = False
        for node in reversed(joint.nodes):
            if in_backward(node) or not cheap(node):
                continue
            readers = consumers.get(id(node), [])
            if not (readers or id(node) in grad_out_ids) or not all(in_backward(c) for c in readers):
                continue
            extra = {}
            for v in node.inputs:
                follows = cheap(v.node) and all(c is node for c in consumers.get(id(v.node), ()))
                if not free_in_backward(v, node) and not follows:
                    # (a cheap input only this node reads follows it on a later sweep)
                    extra[(id(v.node), v.index)] = v.type.nbytes
            if sum(extra.values()) <= node.types[0].nbytes:
                moved.add(id(node))
                changed = True
    return moved
