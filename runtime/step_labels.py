"""Readable names for the steps of a profiled program (Program.profile(), mx.profiler's trace,
`graphc profile`).

Kernels are named by a hash of their text (so identical kernels compile once), which tells a
reader nothing; a profile row instead names the fused graph node a kernel computes, and says
what the kernel does (a GEMM's sizes, an elementwise loop's buffers). Only reads a lowered
program's steps and memory plan; never changes them.
"""
from __future__ import annotations

from .kernel_ir import Gemm
from .lower import HostStep


def kernel_owners(steps, plan) -> dict:
    """id(kernel) -> a readable name for a profile row: the fused node it computes (kernels are
    named by content hash, which says nothing to a reader), with [i] when a node lowers to
    several kernels (a GEMM and its epilogue; a convolution's padding, transforms and GEMM). A
    kernel is matched to the first node, from the last match on, whose output placement it
    writes; kernels that write scratch space belong to the next matched node (a node's steps
    write its output last); the trailing copies of results into output arrays keep their
    kernel names."""
    def writes_into(b, p) -> bool:   # b binds part of p (one piece of a concatenation)
        return (p is not None and b is not None and (b.kind, b.index, b.device) == (p.kind, p.index, p.device)
                and p.offset <= b.offset < p.offset + max(p.nbytes, 1))

    nodes = [(n, [plan.placements.get((id(n), i)) for i in range(len(n.types))]) for n in plan.steps]
    position = {id(n): j for j, (n, _) in enumerate(nodes)}
    owner_of, at, waiting = {}, 0, []
    for s in steps:
        if isinstance(s, HostStep):
            at, waiting = position.get(id(s.node), at - 1) + 1, []
            continue
        out = s.bindings.get("out")
        waiting.append(id(s.kernel))
        # a node's whole output first: arena space is reused, so a later node's buffer may lie
        # inside an earlier one's
        j = next((j for j in range(at, len(nodes)) if out in nodes[j][1]), None)
        if j is None:
            j = next((j for j in range(at, len(nodes)) if any(writes_into(out, p) for p in nodes[j][1])), None)
        if j is not None:
            for key in waiting:
                owner_of[key] = nodes[j][0].name
            at, waiting = j, []
    count = {}
    for name in owner_of.values():
        count[name] = count.get(name, 0) + 1
    seen = {}
    for key, name in owner_of.items():
        if count[name] > 1:
            seen[name] = seen.get(name, -1) + 1
            owner_of[key] = f"{name}[{seen[name]}]"
    return owner_of


def step_label(item, calls, owners) -> tuple:
    """('native' | 'host', name, what it computes) for one item of a profiled program's run: a
    HostStep, or a native entry whose kernel `calls` ((kernel, bindings) pairs) are given."""
    if isinstance(item, HostStep):
        n = item.node
        return ("host", n.op, f"{n.name}: {', '.join(str(t) for t in n.types)}")
    kernels = [k for k, _ in calls]
    if not kernels:
        return ("native", "(empty)", "")
    k = kernels[0]
    gemms = [g for g in k.body if isinstance(g, Gemm)]
    if gemms:
        g = gemms[0]
        what = f"gemm {g.batch}x{g.m}x{g.n}x{g.k}{' tA' if g.trans_a else ''}{' tB' if g.trans_b else ''}"
    else:
        what = f"work {k.work}, " + ", ".join(f"{b.name}: {b.dtype}[{b.size}]" for b in k.bufs)
    return ("native", owners.get(id(k), k.name), f"{what} ({k.name})")


__all__ = ["kernel_owners", "step_label"]
