"""A GPU program's driver calls, with a node whose kernel has no CUDA rendering run on the host.

The CPU backend can emit kernels the CUDA renderer cannot spell (a statement that only
render_llvm knows, a dtype without a CUDA form). Failing the whole program for one such node
would keep every graph containing it off the GPU; instead that node runs as a host step, as
nodes with only a numpy reference already do: its inputs are downloaded, its operator's
reference runs, its outputs are uploaded. It is slow (two transfers and numpy), so each such
kernel warns once per process, naming the operator, and the program counts them
(GpuProgram.host_fallbacks).

A node may lower to several steps (scratch kernels, a GEMM and its epilogue): all of them are
replaced by the one host step. Which steps a node lowered to is found by lowering the node
again (lowering is a pure function of node and memory plan; kernels are named by content) and
finding that run of steps; where none matches, the original error stands.
"""
from __future__ import annotations

import threading
import warnings

from graphc.ops.fused import FusedBody
from graphc.ops.interpret import interpret
from graphc.ops.memory_plan import is_view_node
from graphc.ops.registry import get_op, has_op

from ..lower import HostStep, KernelStep, _Names, lower_node, name_by_content
from . import launch_plan as _plan

_warned: set = set()          # kernel names already warned about in this process
_warned_lock = threading.Lock()


def plan_calls(graph, steps, plan, slots, multiprocessors):
    """(steps, calls, rendered, fallbacks) for a lowered program: `steps` with each node whose
    kernel cannot be rendered replaced by its HostStep; calls in order (launch_plan's Launch,
    GemmCall, CopyCall, or a HostStep); rendered: kernel name -> (Kernel, launch) of every
    kernel some Launch uses; fallbacks: [(kernel name, node name, op)] of the replaced nodes."""
    fallbacks = []
    while True:
        rendered, calls, bad = {}, [], None
        for i, s in enumerate(steps):
            if isinstance(s, HostStep):
                calls.append(s)
                continue
            try:
                calls.extend(_plan.plan_step(s, slots, rendered, multiprocessors))
            except _plan.Unrenderable as exc:
                bad = (i, exc)
                break
        if bad is None:
            break
        i, exc = bad
        span = _node_steps(steps, i, plan)
        if span is None:
            raise exc
        start, stop, node = span
        _warn(graph, exc, node)
        fallbacks.append((exc.kernel, node.name, node.op))
        host = HostStep(node, [plan.placement(v) for v in node.inputs],
                        [plan.placements[(id(node), j)] for j in range(len(node.types))])
        steps = steps[:start] + [host] + steps[stop:]
    used = {c.name for c in calls if isinstance(c, _plan.Launch)}
    return steps, calls, {k: v for k, v in rendered.items() if k in used}, fallbacks


def run_node(node, args, rng, training) -> list:
    """The node's results on numpy: its operator's reference, or for a fused node (which has
    no operator of its own) its body interpreted, operator by operator."""
    if not has_op(node.op) and isinstance(node.attrs.get("body"), FusedBody):
        return interpret(node.attrs["body"].graph, args, rng=rng, training=training)
    return get_op(node.op).run(args, node.attrs, rng=rng, training=training)


def _node_steps(steps, i, plan):
    """(start, stop, node): the run of steps holding steps[i] that one node of the plan lowered
    to, or None."""
    for node in plan.steps:
        if (id(node), 0) in plan.views or is_view_node(node):
            continue        # (lower_graph makes a view a copy kernel or a host step, never another kernel)
        mine = lower_node(node, plan, _Names())
        if not mine:
            continue
        for s in mine:
            if isinstance(s, KernelStep):
                name_by_content(s.kernel)
        for start in range(max(0, i - len(mine) + 1), i + 1):
            if start + len(mine) <= len(steps) and all(_same(a, b) for a, b in zip(mine, steps[start:])):
                return start, start + len(mine), node
    return None


def _same(a, b) -> bool:
    if isinstance(a, HostStep) or isinstance(b, HostStep):
        return isinstance(a, HostStep) and isinstance(b, HostStep) and a.node is b.node
    return a.kernel.name == b.kernel.name and a.bindings == b.bindings


def _warn(graph, exc, node):
    with _warned_lock:
        if exc.kernel in _warned:
            return
        _warned.add(exc.kernel)
    warnings.warn(f"graph {graph.name}: node {node.name} (op {node.op}) runs on the host: its kernel {exc.kernel} "
                  f"has no CUDA rendering ({exc.cause.splitlines()[0] if exc.cause else 'no reason given'})",
                  RuntimeWarning, stacklevel=4)


__all__ = ["plan_calls", "run_node"]
