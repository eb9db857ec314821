"""A memory plan as data: where every value of a (fused) graph lives while the program runs.

`graphc.passes.memory.plan_memory` computes a `MemoryPlan` and `check_plan` proves it safe; a
backend reads it to bind buffers. Both sides need the same types, so they live here, beside the
graph IR, and a backend can take a plan without importing the pass that made it.

A value is placed in one of: the device's arena (an offset, `ALIGN`-byte aligned), or a buffer
the caller owns (an input, an output, a constant: an index into the caller's arrays). Views
share their base's bytes and carry its placement. This module holds no planning logic and
never allocates memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import GraphcError
from .graph import Graph, Node, value_names
from .registry import View, get_op, has_op

ALIGN = 64


class MemoryPlanError(GraphcError):
    """A memory plan lets two live values share bytes, or misplaces a value."""


@dataclass(frozen=True)
class Placement:
    """kind: 'arena' (offset into the device's arena), 'input'/'output'/'const' (index into the
    caller's arrays; offset 0), 'view' never appears: views carry their base's placement."""
    kind: str
    index: int
    offset: int
    nbytes: int
    device: str = "cpu(0)"


@dataclass
class MemoryPlan:
    steps: list                      # op nodes in execution order
    placements: dict                 # (id(node), out index) -> Placement
    arena_size: dict                 # device -> bytes
    live: dict                       # value key -> (first step, last step)
    views: dict = field(default_factory=dict)     # value key -> base value key
    inplace: list = field(default_factory=list)   # (step, input key, output key)
    consts: list = field(default_factory=list)    # constant nodes, in 'const' index order
    copies_to_output: list = field(default_factory=list)  # (output position, value key) copied at the end
    # id(step node) -> arena Placement of bytes that step may use while it runs (im2col columns);
    # they hold nothing before or after it, so they may share bytes with values not live then
    scratch: dict = field(default_factory=dict)

    def placement(self, value) -> Placement:
        return self.placements[(id(value.node), value.index)]

    def format(self, graph: Graph) -> str:
        names = value_names(graph)
        lines = [f"memory plan for {graph.name}: arena " +
                 ", ".join(f"{d}={s} bytes" for d, s in self.arena_size.items())]
        for n in graph.nodes:
            for i in range(len(n.types)):
                p = self.placements.get((id(n), i))
                if p is None:
                    continue
                where = f"arena+{p.offset}" if p.kind == "arena" else f"{p.kind}[{p.index}]"
                extra = " (view)" if (id(n), i) in self.views else ""
                extra += " (in place)" if any(o == (id(n), i) for _, _, o in self.inplace) else ""
                lv = self.live.get((id(n), i))
                lines.append(f"  {names[(id(n), i)]}: {p.nbytes} bytes at {where}{extra}"
                             + (f", live {lv[0]}..{lv[1]}" if lv else ""))
            sp = self.scratch.get(id(n))
            if sp is not None:
                lines.append(f"  scratch of {n.name}: {sp.nbytes} bytes at arena+{sp.offset}")
        return "\n".join(lines)


def is_view_node(node: Node) -> bool:
    """The node's operator lowers as a View of its first input (reshape, transpose, ...): a plan
    may let its output share that input's bytes."""
    return has_op(node.op) and isinstance(get_op(node.op).lowering, View) and len(node.inputs) >= 1


__all__ = ["ALIGN", "Placement", "MemoryPlan", "MemoryPlanError", "is_view_node"]
