"""Memory planning: where every value of a (fused) graph lives while the program runs.

`plan_memory(graph)` computes liveness over the op nodes in order, lets a node write its
output over an input that dies at that node (in-place), lets views share their input's bytes,
and packs everything else into one arena per device at 64-byte aligned offsets (greedy by
size: the largest storage takes the lowest offset that no storage live at the same time holds).
Graph inputs, constants and graph outputs never live in the arena: the caller owns them.
A step that needs working space (`graphc.ops.fused.scratch_bytes`: a convolution's im2col
columns) gets arena bytes live at that step only, apart from every value live there.

`check_plan(graph, plan)` proves the plan safe from the graph alone: no two values that are
live at the same time share a byte, except a view with its base and an in-place pair at the
one node that consumes the input and produces the output.

The plan's data types (`MemoryPlan`, `Placement`, `MemoryPlanError`, `ALIGN`, `is_view_node`)
live in `graphc.ops.memory_plan`, so a backend can read a plan without importing this pass.
This module decides offsets; it never allocates memory or generates code.
"""
from __future__ import annotations

from graphc.ops.fused import FUSED_ELEMENTWISE, scratch_bytes
from graphc.ops.graph import Graph, Node, value_names
from graphc.ops.memory_plan import ALIGN, MemoryPlan, MemoryPlanError, Placement, is_view_node
from graphc.ops.registry import Elementwise, get_op, has_op


def may_run_in_place(node: Node, pos: int) -> bool:
    """Output 0 may overwrite input `pos`: every element is read at the index it is written, before
    it is written (elementwise loops), and the shapes and element sizes agree."""
    if len(node.types) != 1:
        return False
    v = node.inputs[pos]
    out = node.types[0]
    if v.type.shape != out.shape or v.type.nbytes != out.nbytes:
        return False
    if node.op == FUSED_ELEMENTWISE:
        return True
    return has_op(node.op) and isinstance(get_op(node.op).lowering, Elementwise)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _liveness(graph: Graph, steps, views):
    """value key -> [first step, last step]; views extend their base's interval."""
    step_of = {id(n): s for s, n in enumerate(steps)}
    end = len(steps)
    live = {}
    for n in steps:
        for i in range(len(n.types)):
            live[(id(n), i)] = [step_of[id(n)], step_of[id(n)]]
    for n in steps:
        for v in n.inputs:
            k = (id(v.node), v.index)
            if k in live:
                live[k][1] = max(live[k][1], step_of[id(n)])
    for v in graph.outputs:
        k = (id(v.node), v.index)
        if k in live:
            live[k][1] = end
    for n in reversed(steps):
        k = (id(n), 0)
        if k in views and views[k] in live:
            b = views[k]
            live[b][1] = max(live[b][1], live[k][1])
    return live


def plan_memory(graph: Graph, inplace: bool = True) -> MemoryPlan:
    """Liveness, in-place reuse, views and arena offsets for every value of `graph`."""
    steps = [n for n in graph.nodes if not n.is_var and not n.is_const]
    output_keys = [(id(v.node), v.index) for v in graph.outputs]
    placements, views, copies = {}, {}, []
    input_pos = {id(n): i for i, n in enumerate(graph.inputs)}
    consts = [n for n in graph.nodes if n.is_const]
    const_pos = {id(n): i for i, n in enumerate(consts)}
    for n in graph.nodes:
        if n.is_var:
            if id(n) in input_pos:
                placements[(id(n), 0)] = Placement("input", input_pos[id(n)], 0, n.types[0].nbytes, n.types[0].device)
        elif n.is_const:
            placements[(id(n), 0)] = Placement("const", const_pos[id(n)], 0, n.types[0].nbytes, n.types[0].device)

    # graph outputs computed by an op node get the caller's output array; a value that is an
    # input, a constant, or already some other output is copied there at the end
    out_of = {}
    for j, k in enumerate(output_keys):
        node = next(v.node for v in graph.outputs if (id(v.node), v.index) == k)
        if node.is_var or node.is_const or k in out_of:
            copies.append((j, k))
        else:
            out_of[k] = j
    for n in steps:
        if is_view_node(n) and (id(n), 0) not in out_of:
            views[(id(n), 0)] = (id(n.inputs[0].node), n.inputs[0].index)

    live = _liveness(graph, steps, views)

    def root(k):
        while k in views:
            k = views[k]
        return k

    # storages: root value key -> (members, interval, bytes); in-place merges an output into
    # the storage of an input that dies at this node
    storage_of, storages, inplace_pairs = {}, {}, []
    for s, n in enumerate(steps):
        for i, t in enumerate(n.types):
            k = (id(n), i)
            if k in views:
                continue
            if k in out_of:
                placements[k] = Placement("output", out_of[k], 0, t.nbytes, t.device)
                continue
            target = None
            if inplace and i == 0:
                for pos, v in enumerate(n.inputs):
                    ik = (id(v.node), v.index)
                    if ik in views or ik not in storage_of or not may_run_in_place(n, pos):
                        continue
                    st = storages[storage_of[ik]]
                    if st["end"] == s and st["device"] == t.device and st["nbytes"] == t.nbytes \
                            and sum(1 for w in n.inputs if (id(w.node), w.index) == ik) == 1:
                        target = storage_of[ik]
                        inplace_pairs.append((s, ik, k))
                        break
            if target is None:
                storages[k] = {"members": [k], "start": s, "end": live[k][1], "nbytes": t.nbytes,
                               "device": t.device}
                storage_of[k] = k
            else:
                st = storages[target]
                st["members"].append(k)
                st["end"] = max(st["end"], live[k][1])
                storage_of[k] = target
        # views whose base lives in a storage keep it alive through the view's interval
        for i in range(len(n.types)):
            k = (id(n), i)
            if k in views and root(k) in storage_of:
                st = storages[storage_of[root(k)]]
                st["end"] = max(st["end"], live[k][1])

    scratch_keys = {}
    for s, n in enumerate(steps):
        nbytes = scratch_bytes(n)
        if nbytes:
            key = ("scratch", id(n))
            storages[key] = {"members": [], "start": s, "end": s, "nbytes": nbytes, "device": n.types[0].device}
            scratch_keys[id(n)] = key

    arena_size, offsets = {}, {}
    by_device = {}
    for key, st in storages.items():
        by_device.setdefault(st["device"], []).append((key, st))
    for dev, items in by_device.items():
        placed = []     # (offset, size, start, end)
        items.sort(key=lambda kv: (-kv[1]["nbytes"], kv[1]["start"]))
        top = 0
        for key, st in items:
            size = _align(st["nbytes"])
            conflicts = sorted((o, sz) for o, sz, a, b in placed if a <= st["end"] and st["start"] <= b and sz)
            off = 0
            for o, sz in conflicts:
                if off + size <= o:
                    break
                off = max(off, _align(o + sz))
            placed.append((off, size, st["start"], st["end"]))
            offsets[key] = off
            top = max(top, off + size)
        arena_size[dev] = top
    for key, st in storages.items():
        for k in st["members"]:
            node_types = next(n for n in steps if id(n) == k[0]).types
            placements[k] = Placement("arena", 0, offsets[key], node_types[k[1]].nbytes, st["device"])
    for k in views:
        base = placements.get(root(k))
        if base is not None:
            node = next(n for n in steps if id(n) == k[0])
            placements[k] = Placement(base.kind, base.index, base.offset, node.types[0].nbytes, base.device)
    scratch = {nid: Placement("arena", 0, offsets[key], storages[key]["nbytes"], storages[key]["device"])
               for nid, key in scratch_keys.items()}
    live_t = {k: tuple(v) for k, v in live.items()}
    return MemoryPlan(steps, placements, arena_size, live_t, views, inplace_pairs, consts, copies, scratch)


def check_plan(graph: Graph, plan: MemoryPlan) -> None:
    """Raise MemoryPlanError unless no two simultaneously live values share bytes (outside a view
    and its base, or an in-place pair at its node), every value is placed, arena offsets are
    aligned and inside the arena, and caller-owned buffers hold exactly their own values."""
    names = value_names(graph)
    steps = [n for n in graph.nodes if not n.is_var and not n.is_const]
    by_key = {(id(n), i): (n, t) for n in graph.nodes for i, t in enumerate(n.types)}

    def name(k):
        return names.get(k, "?")

    # views the plan claims must really be views of that input
    for k, b in plan.views.items():
        n = by_key[k][0]
        if not is_view_node(n) or (id(n.inputs[0].node), n.inputs[0].index) != b:
            raise MemoryPlanError(f"plan treats {name(k)} as a view of {name(b)}, but {n.op} node "
                                  f"'{n.name}' does not alias that input")
    live = _liveness(graph, steps, plan.views)
    step_of = {id(n): s for s, n in enumerate(steps)}
    input_pos = {id(n): i for i, n in enumerate(graph.inputs)}
    out_keys = [(id(v.node), v.index) for v in graph.outputs]
    arena = []
    for k, (n, t) in by_key.items():
        p = plan.placements.get(k)
        if n.is_var:
            if id(n) in input_pos and (p is None or p.kind != "input" or p.index != input_pos[id(n)]):
                raise MemoryPlanError(f"input {n.name} is not placed in its own caller buffer ({p})")
            continue
        if n.is_const:
            # a constant lives in its own caller-owned buffer (copied out when it is also an output)
            if p is None or p.kind != "const":
                raise MemoryPlanError(f"constant {name(k)} ('{n.name}') is not placed in a const buffer ({p})")
            continue
        if p is None:
            raise MemoryPlanError(f"value {name(k)} ('{n.name}') has no placement")
        if p.nbytes != t.nbytes:
            raise MemoryPlanError(f"value {name(k)} has {t.nbytes} bytes but its placement says {p.nbytes}")
        if p.kind == "output":
            if k not in plan.views and out_keys[p.index] != k:
                raise MemoryPlanError(f"value {name(k)} is placed in output {p.index}, which returns "
                                      f"{name(out_keys[p.index])}")
        elif p.kind == "arena":
            if p.offset % ALIGN:
                raise MemoryPlanError(f"value {name(k)} sits at arena offset {p.offset}, not {ALIGN}-byte aligned")
            if p.offset + p.nbytes > plan.arena_size.get(p.device, 0):
                raise MemoryPlanError(f"value {name(k)} ends at {p.offset + p.nbytes}, past the arena "
                                      f"({plan.arena_size.get(p.device, 0)} bytes)")
            if k in out_keys and k not in plan.views:
                raise MemoryPlanError(f"graph output {name(k)} lives in the arena instead of the caller's buffer")
            if p.nbytes:
                arena.append((k, p))
        elif p.kind in ("input", "const") and k not in plan.views:
            raise MemoryPlanError(f"value {name(k)} computed by '{n.name}' is placed in a caller {p.kind} buffer")

    def root(k):
        while k in plan.views:
            k = plan.views[k]
        return k

    for s, n in enumerate(steps):
        need = scratch_bytes(n)
        p = plan.scratch.get(id(n))
        if not need:
            continue
        if p is None or p.kind != "arena" or p.nbytes < need:
            raise MemoryPlanError(f"step '{n.name}' needs {need} bytes of scratch but the plan gives {p}")
        if p.offset % ALIGN or p.offset + p.nbytes > plan.arena_size.get(p.device, 0):
            raise MemoryPlanError(f"scratch of '{n.name}' at arena {p.offset}..{p.offset + p.nbytes} is misaligned "
                                  f"or past the arena ({plan.arena_size.get(p.device, 0)} bytes)")
        key = ("scratch", id(n))
        by_key[key] = (n, None)
        names[key] = f"scratch of {names.get((id(n), 0), n.name)}"
        live[key] = [s, s]
        arena.append((key, p))

    inplace_ok = set()
    for s, ik, ok in plan.inplace:
        n = by_key[ok][0]
        if step_of.get(id(n)) != s:
            continue
        for pos, v in enumerate(n.inputs):
            if (id(v.node), v.index) == ik and may_run_in_place(n, pos):
                inplace_ok.add((ik, ok))
    arena.sort(key=lambda kp: (kp[1].device, kp[1].offset))
    for i, (k1, p1) in enumerate(arena):
        a1, b1 = live[k1]
        for k2, p2 in arena[i + 1:]:
            if p2.device != p1.device:
                continue
            if p2.offset >= p1.offset + p1.nbytes:
                break
            a2, b2 = live[k2]
            if not (a1 <= b2 and a2 <= b1):
                continue
            if root(k1) == root(k2):
                continue
            r1, r2 = root(k1), root(k2)
            pair_ok = ((r1, r2) in inplace_ok and live[r1][1] == live[r2][0]) or \
                      ((r2, r1) in inplace_ok and live[r2][1] == live[r1][0])
            if pair_ok and p1.offset == p2.offset:
                continue
            raise MemoryPlanError(
                f"values {name(k1)} ('{by_key[k1][0].name}', live {a1}..{b1}, bytes {p1.offset}..{p1.offset + p1.nbytes}) "
                f"and {name(k2)} ('{by_key[k2][0].name}', live {a2}..{b2}, bytes {p2.offset}..{p2.offset + p2.nbytes}) "
                f"are live at the same time and share bytes")


__all__ = ["plan_memory", "check_plan", "may_run_in_place"]
