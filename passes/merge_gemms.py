"""merge_summed_gemms: a sum of matrix products over the same contraction layout becomes one
product over concatenated operands,

    dot(A_1, B_1, transpose_a=True) + ... + dot(A_T, B_T, transpose_a=True)
        = dot(Concat(A_1..A_T, dim=0), Concat(B_1..B_T, dim=0), transpose_a=True)

(and the same along the contraction axis for the other transpose flags). Autodiff writes the
weight gradient of anything applied once per time step this way: an unrolled RNN's recurrent
weights get one (H, N) x (N, H) product per step and gate, K = batch rows each, summed by a
chain of adds. One GEMM with K = steps x batch runs near the BLAS peak where the small ones
cannot, and the adds disappear. Floating-point results change only by summation order.
"""
from __future__ import annotations

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import Graph, Node, Value

from .rewrite import rebuild

_ADDS = ("broadcast_add", "elemwise_add")
MIN_PRODUCTS = 2


def _contraction_axes(node: Node):
    """(axis of A, axis of B) that a product contracts over, for 2-D dot; None otherwise."""
    if node.op != "dot" or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if a.type.ndim != 2 or b.type.ndim != 2:
        return None
    ta, tb = node.attrs.get("transpose_a", False), node.attrs.get("transpose_b", False)
    return (0 if ta else 1), (1 if tb else 0)


def merge_summed_gemms(graph: Graph) -> Graph:
    users: dict = {}
    for n in graph.nodes:
        for v in n.inputs:
            users[(id(v.node), v.index)] = users.get((id(v.node), v.index), 0) + 1
    for v in graph.outputs:
        users[(id(v.node), v.index)] = users.get((id(v.node), v.index), 0) + 1

    def single_use(v: Value) -> bool:
        return users.get((id(v.node), v.index), 0) == 1

    def is_sum(n: Node, t) -> bool:
        return n.op in _ADDS and n.types[0] == t and all(u.type == t for u in n.inputs)

    def leaves(v: Value, t, out):
        # iterative: an unrolled sequence of thousands of steps is a chain that deep
        stack = [v]
        while stack:
            u = stack.pop()
            n = u.node
            if not n.is_var and not n.is_const and is_sum(n, t) and single_use(u):
                stack.extend(reversed(n.inputs))
            else:
                out.append(u)

    # plan on the original graph: root sum -> (groups of products, other leaves)
    plans = {}
    absorbed = set()
    for n in reversed(graph.nodes):
        if n.is_var or n.is_const or id(n) in absorbed or not is_sum(n, n.types[0]):
            continue
        t = n.types[0]
        terms = []
        for u in n.inputs:
            leaves(u, t, terms)
        groups, rest = {}, []
        for v in terms:
            axes = _contraction_axes(v.node)
            if axes is None or not single_use(v):
                rest.append(v)
                continue
            d = v.node
            a, b = d.inputs
            key = (d.attrs.get("transpose_a", False), d.attrs.get("transpose_b", False), a.type.dtype,
                   tuple(s for i, s in enumerate(a.type.shape) if i != axes[0]),
                   tuple(s for i, s in enumerate(b.type.shape) if i != axes[1]))
            groups.setdefault(key, []).append(v)
        merged = [g for g in groups.values() if len(g) >= MIN_PRODUCTS]
        if not merged:
            continue
        rest += [v for g in groups.values() if len(g) < MIN_PRODUCTS for v in g]
        plans[id(n)] = (merged, rest)
        stack = list(n.inputs)
        while stack:                       # the sums under this root are rewritten with it
            u = stack.pop()
            if is_sum(u.node, t) and single_use(u) and not u.node.is_var:
                absorbed.add(id(u.node))
                stack.extend(u.node.inputs)
    if not plans:
        return graph

    builder = GraphBuilder(graph.name)
    F = builder.F

    def rule(current, original, lookup):
        plan = plans.get(id(original))
        if plan is None:
            return None
        merged, rest = plan
        total = None
        for group in merged:
            d0 = group[0].node
            ax_a, ax_b = _contraction_axes(d0)
            a = F.Concat(*[builder.wrap(lookup(v.node.inputs[0])) for v in group], dim=ax_a)
            b = F.Concat(*[builder.wrap(lookup(v.node.inputs[1])) for v in group], dim=ax_b)
            prod = F.dot(a, b, transpose_a=d0.attrs.get("transpose_a", False),
                         transpose_b=d0.attrs.get("transpose_b", False))
            total = prod if total is None else total + prod
        for v in rest:
            total = total + builder.wrap(lookup(v))
        return [total.value]

    return rebuild(graph, rule, context=True)


__all__ = ["merge_summed_gemms"]
