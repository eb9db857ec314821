"""Cut a backward graph into segments that each finish some of its gradients, last layers first.

Why: a compiled backward is one native call that hands every gradient over when it returns, so a
distributed Trainer could start no all-reduce before backward ends. Run as K programs in a row,
the gradients a segment completes can be sent while the next segments compute
(gluon/cached_op.py runs them; kvstore/overlap.py sums them).

How: each output (a gradient) needs the set of operator nodes it depends on. Outputs that need
fewer nodes can finish earlier (the last layer's weight gradient needs only the head gradient
and a saved activation; the first layer's needs the whole chain), so outputs are taken in
order of that count, and cut into K groups of about equal bytes. Segment s computes the nodes
its group needs that no earlier segment computed; since every group's set is closed under
"depends on", a segment reads only graph inputs, constants and values of earlier segments.
Values that cross a cut become outputs of the segment computing them and inputs of the
segments reading them. Every node is computed exactly once, by the same operator with the same
inputs, so the results are those of the uncut graph (up to what fusing across a cut would
have changed in float rounding).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graphc.ops.errors import GraphcError
from graphc.ops.graph import Graph, Node, Value, variable

__all__ = ["Segment", "segment_backward"]


@dataclass
class Segment:
    """graph: the segment's program. sources: per graph input, ('input', i) the i-th input of
    the uncut graph or ('carry', s, j) output j of segment s. grads: the uncut graph's output
    positions this segment's first len(grads) outputs are; the outputs after them are values
    later segments read."""
    graph: Graph
    sources: list = field(default_factory=list)
    grads: list = field(default_factory=list)


def _needs(graph: Graph) -> list:
    """Per output, the ids of the operator nodes it depends on."""
    memo: dict = {}
    for node in graph.nodes:
        if node.is_var or node.is_const:
            memo[id(node)] = frozenset()
            continue
        deps = {id(node)}
        for v in node.inputs:
            deps |= memo[id(v.node)]
        memo[id(node)] = frozenset(deps)
    return [memo[id(v.node)] for v in graph.outputs]


def _groups(graph: Graph, needs: list, k: int) -> list:
    """The outputs' positions in K groups (fewer when there are fewer outputs), in the order
    they can finish, of about equal bytes."""
    order = sorted(range(len(graph.outputs)), key=lambda i: (len(needs[i]), -i))
    sizes = [graph.outputs[i].type.nbytes for i in order]
    target = max(1, sum(sizes)) / k
    groups, current, done = [], [], 0
    for i, size in zip(order, sizes):
        boundary = target * (len(groups) + 1)
        # cut before this output when that lands nearer the boundary than cutting after it
        if current and len(groups) < k - 1 and done + size > boundary and boundary - done <= done + size - boundary:
            groups.append(current)
            current = []
        current.append(i)
        done += size
        if len(groups) < k - 1 and done >= target * (len(groups) + 1):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def segment_backward(graph: Graph, k: int) -> list:
    """The segments (at most k; one when k <= 1 or nothing can be cut) of `graph`."""
    if k < 1:
        raise GraphcError(f"segment_backward: need at least 1 segment, got {k}")
    needs = _needs(graph)
    seg_of: dict = {}           # id(node) -> segment index
    grads_of: list = []         # per segment, the output positions it completes
    for group in _groups(graph, needs, k):
        new = set().union(*(needs[i] for i in group)) - seg_of.keys()
        if not new:
            continue            # (its outputs are computed earlier: attached below)
        s = len(grads_of)
        grads_of.append([])
        for nid in new:
            seg_of[nid] = s
    if not grads_of:
        grads_of.append([])     # only inputs and constants are returned
    for i, v in enumerate(graph.outputs):
        grads_of[seg_of.get(id(v.node), 0)].append(i)
    input_pos = {id(n): i for i, n in enumerate(graph.inputs)}
    segments = [Segment(None, [], sorted(g, reverse=True)) for g in grads_of]   # last layers first
    members = [[] for _ in segments]
    for node in graph.nodes:
        if id(node) in seg_of:
            members[seg_of[id(node)]].append(node)
    # values a segment reads that an earlier one computes: outputs of that earlier one
    carried = [[] for _ in segments]        # per segment, the crossing Values it outputs
    carry_pos: dict = {}                    # (id(node), index) -> (segment, output position)

    def read_from(v: Value, s: int):
        key = (id(v.node), v.index)
        owner = seg_of.get(id(v.node))
        if owner is None or owner == s or key in carry_pos:
            return
        if owner > s:
            raise GraphcError(f"segment_backward: node {v.node.name!r} of segment {owner} is read by segment {s} "
                              "(the nodes are not in topological order)")
        outs = [graph.outputs[i] for i in segments[owner].grads]
        position = next((j for j, o in enumerate(outs) if o == v), None)
        if position is None:
            position = len(outs) + len(carried[owner])
            carried[owner].append(v)
        carry_pos[key] = (owner, position)

    for s, nodes in enumerate(members):
        for node in nodes:
            for v in node.inputs:
                read_from(v, s)
        for i in segments[s].grads:
            read_from(graph.outputs[i], s)
    for s, seg in enumerate(segments):
        seg.graph = _build(graph, s, members[s], seg, carried[s], seg_of, carry_pos, input_pos)
    return segments


def _build(graph, s, nodes, seg, carried, seg_of, carry_pos, input_pos) -> Graph:
    """Segment s's graph over fresh input variables, filling seg.sources."""
    mapping: dict = {}
    inputs = []

    def lookup(v: Value) -> Value:
        key = (id(v.node), v.index)
        hit = mapping.get(key)
        if hit is not None:
            return hit
        if v.node.is_const:
            return v            # constants are shared by the programs as they are
        if v.node.is_var:
            var = variable(v.node.name, v.type, "input")
            seg.sources.append(("input", input_pos[id(v.node)]))
        else:
            owner, position = carry_pos[key]
            var = variable(f"_carry{owner}_{position}_{v.node.name}", v.type, "input")
            seg.sources.append(("carry", owner, position))
        inputs.append(var)
        mapping[key] = var.out()
        return mapping[key]

    for node in nodes:
        new = Node(node.op, [lookup(v) for v in node.inputs], node.attrs, node.name, node.types, node.hints)
        for i in range(len(node.types)):
            mapping[(id(node), i)] = new.out(i)
    outputs = [lookup(graph.outputs[i]) for i in seg.grads] + [mapping[(id(v.node), v.index)] for v in carried]
    return Graph.from_outputs(inputs, outputs, f"{graph.name}_segment{s}")
