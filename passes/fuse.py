"""Elementwise and epilogue fusion: groups of operators that run as one loop.

`fuse_elementwise(graph)` returns a new graph in which each group is one node whose op starts
with `_fused` and whose `body` attribute holds the group as a small Graph (variables for the
group's inputs, the original operators, one output):

- `_fused_elementwise`: a chain/tree of Elementwise operators; one loop over the output.
- `_fused_reduce`: an elementwise prologue feeding one Reduction (e.g. sum(x*x)); the prologue
  is computed inside the reduction loop and never stored.
- `_fused_gemm`: a GEMM (dot, batch_dot, FullyConnected) with an elementwise epilogue that
  consumes its output (bias add, activation, ...); the epilogue runs over the GEMM's output
  right after the library call, in place.
- `_fused_conv`: the same for a convolution (Convolution, Deconvolution): bias, a folded
  BatchNorm's scale and shift, activation, a residual add, run over the output in place.

A node joins its consumer's group only when every use of it is inside that group and it is not
a graph output, so nothing is computed twice and nothing the caller sees disappears. Scalar
constants (size 1) are copied into the bodies that use them, so renderers see immediates.

A group holds at most MAX_FUSED_OPS operators: a chain of 100k elementwise operators becomes
many kernels of bounded size, not one kernel whose formula is 100k levels deep (LLVM's compile
time grows faster than linearly in a function's size, and a bounded formula keeps every walk
over it shallow). The extra stores cost one memory round trip per MAX_FUSED_OPS operators.

This pass decides grouping only; it never generates code. What a fused node is (its op names,
`FusedBody`, the predicates that say which nodes may join a group, `format_fused`) lives in
`graphc.ops.fused`, which the backends read without importing this pass.
"""
from __future__ import annotations

from graphc.ops.fused import (FUSED_ELEMENTWISE, FUSED_REDUCE, FUSED_GEMM, FUSED_CONV, FusedBody,
                              is_elementwise, is_reduction, is_gemm, is_conv)
from graphc.ops.graph import Graph, Node, Value, variable


# Operators per fused group. Real elementwise groups (an LSTM cell, GELU, a layer norm's
# epilogue) take 5-40; past ~100 a kernel is memory-bound on nothing and only compiles slower.
MAX_FUSED_OPS = 128


def _is_scalar_const(node: Node) -> bool:
    return node.is_const and node.types[0].size == 1


def fuse_elementwise(graph: Graph) -> Graph:
    """Group elementwise chains, reduction prologues and GEMM epilogues into `_fused_*` nodes."""
    users = graph.users()
    outputs = {(id(v.node), v.index) for v in graph.outputs}
    group_of = {}          # node id -> group id (the id of the group's root node)
    members = {}           # group id -> list of nodes (topological)
    kind = {}              # group id -> 'elementwise' | 'reduce' | 'gemm'

    def joinable(node, gid) -> bool:
        if (id(node), 0) in outputs or not is_elementwise(node):
            return False
        us = users.get(id(node), [])
        return bool(us) and all(group_of.get(id(u)) == gid for u, _ in us)

    for node in reversed(graph.nodes):
        if id(node) in group_of or node.is_var or node.is_const:
            continue
        if is_elementwise(node):
            gid, k = id(node), "elementwise"
        elif is_reduction(node):
            gid, k = id(node), "reduce"
        else:
            continue
        group_of[gid] = gid
        members[gid] = [node]
        kind[gid] = k
        # grow upward: producers whose every use lies in this group
        frontier = [v.node for v in node.inputs]
        while frontier and len(members[gid]) < MAX_FUSED_OPS:
            p = frontier.pop()
            if id(p) in group_of or not joinable(p, gid):
                continue
            group_of[id(p)] = gid
            members[gid].append(p)
            frontier.extend(v.node for v in p.inputs)

    # GEMM and convolution epilogues: one whose only use is an elementwise group of its own
    # output shape
    for node in graph.nodes:
        if not (is_gemm(node) or is_conv(node)) or (id(node), 0) in outputs or len(node.types) != 1:
            continue
        us = users.get(id(node), [])
        gids = {group_of.get(id(u)) for u, _ in us}
        if len(gids) != 1 or None in gids:
            continue
        gid = gids.pop()
        root = next(n for n in members[gid] if id(n) == gid)
        if kind[gid] != "elementwise" or root.types[0].shape != node.types[0].shape:
            continue
        if len(us) != 1:   # the epilogue must read the GEMM output exactly once, at its own index
            continue
        user = us[0][0]
        if user.types[0].shape != node.types[0].shape:
            continue
        group_of[id(node)] = gid
        members[gid].append(node)
        kind[gid] = "conv" if is_conv(node) else "gemm"

    order = {id(n): i for i, n in enumerate(graph.nodes)}
    env = {}               # (id(old node), index) -> new Value

    def new_value(v: Value) -> Value:
        return env.get((id(v.node), v.index), v)

    new_nodes = []
    for node in graph.nodes:
        gid = group_of.get(id(node))
        if gid is None:
            if node.is_var:
                new_nodes.append(node)
                continue
            nn = node if all(new_value(v) == v for v in node.inputs) else \
                Node(node.op, [new_value(v) for v in node.inputs], node.attrs, node.name, node.types, node.hints)
            for i in range(len(node.types)):
                env[(id(node), i)] = Value(nn, i)
            new_nodes.append(nn)
            continue
        if gid != id(node):
            continue       # emitted with its root
        group = sorted(members[gid], key=lambda n: order[id(n)])
        if len(group) == 1 and not any(_is_scalar_const(v.node) for v in node.inputs):
            nn = Node(node.op, [new_value(v) for v in node.inputs], node.attrs, node.name, node.types, node.hints)
            env[(id(node), 0)] = nn.out()
            new_nodes.append(nn)
            continue
        fused = _make_fused(group, node, kind[gid], new_value)
        env[(id(node), 0)] = fused.out()
        new_nodes.append(fused)
    new_outputs = [new_value(v) for v in graph.outputs]
    # drop constants nobody uses any more (they were copied into bodies)
    used = {id(v.node) for n in new_nodes for v in n.inputs} | {id(v.node) for v in new_outputs}
    new_nodes = [n for n in new_nodes if not (n.is_const and id(n) not in used)]
    return Graph(new_nodes, graph.inputs, new_outputs, graph.name, graph.output_tree)


def _make_fused(group, root, kind, new_value) -> Node:
    inside = {id(n) for n in group}
    ext_inputs, body_vars, body_env, body_nodes = [], {}, {}, []
    for n in group:
        ins = []
        for v in n.inputs:
            key = (id(v.node), v.index)
            if id(v.node) in inside:
                ins.append(body_env[key])
            elif _is_scalar_const(v.node):
                c = Node(v.node.op, (), v.node.attrs, v.node.name, v.node.types)
                body_nodes.append(c)
                body_env[key] = c.out()
                ins.append(c.out())
            else:
                if key not in body_vars:
                    var = variable(f"in{len(ext_inputs)}", v.type)
                    body_vars[key] = var
                    ext_inputs.append(new_value(v))
                ins.append(body_vars[key].out())
        c = Node(n.op, ins, n.attrs, n.name, n.types, n.hints)
        body_nodes.append(c)
        body_env[(id(n), 0)] = c.out()
    vars_ = list(body_vars.values())
    body = Graph(vars_ + body_nodes, vars_, [body_env[(id(root), 0)]], name=f"{root.name}_body")
    op = {"elementwise": FUSED_ELEMENTWISE, "reduce": FUSED_REDUCE, "gemm": FUSED_GEMM, "conv": FUSED_CONV}[kind]
    return Node(op, ext_inputs, {"body": FusedBody(body)}, f"fused_{root.name}", root.types, root.hints)


__all__ = ["fuse_elementwise"]
