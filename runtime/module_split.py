"""Cut one llvmlite module into several module texts that compile apart and link when loaded,
so that a large program's LLVM time spreads over the cores (runtime/compile_pool.py).

Why: a program's kernels module is most of its LLVM time (ResNet-18's training backward: 1.9 of
2.6 CPU-s), and one module compiles on one core. Its functions hardly depend on each other: an
entry calls kernels through a table of addresses, a kernel wrapper calls its always-inlined
internal body. So the module splits by *units*: each externally visible definition with the
internal definitions it reaches. An internal function or constant that two units reach is copied
into both when small (llvm_math's helpers) and joins the two units into one when large (so no
big body compiles twice); an internal variable that two units reach always joins them (a copy
would be a second variable). Every part declares what it uses from the others and carries the
module's metadata (loop IDs), so each is a complete module; MCJIT resolves the declarations
when it links the parts' objects (runtime/cache.py _jit).

Parts are balanced by estimated LLVM cost (text bytes plus a fixed cost per function: LLVM's
pipeline has per-function overhead that dominates small kernels); the module's first
definitions stay in part 0. Modules below MIN_SPLIT_BYTES stay whole.
"""
from __future__ import annotations

import re

import llvmlite.ir as ir

from .llvm_jit import FUNCTION_COST_BYTES

# below this a module compiles as one: a part's fixed cost (parse, pass set-up, object file,
# a round trip to the helper) is ~5 ms, and small programs gain nothing
MIN_SPLIT_BYTES = 192 * 1024
# a part smaller than this is not worth its fixed cost
MIN_PART_BYTES = 64 * 1024
MAX_PARTS = 4
# an internal definition reached from two units up to this size is copied into both
MAX_COPY_BYTES = 4096

_REF = re.compile(r'@("(?:[^"\\]|\\.)+"|[-\w.$]+)')


def _name_of(token: str) -> str:
    return token[1:-1] if token.startswith('"') else token


def _is_definition(gv) -> bool:
    if isinstance(gv, ir.Function):
        return not gv.is_declaration
    return getattr(gv, "initializer", None) is not None


def _declaration(gv) -> str:
    """The text declaring `gv` (defined in another part)."""
    if isinstance(gv, ir.Function):
        ft = gv.function_type
        args = [str(a) for a in ft.args] + (["..."] if ft.var_arg else [])
        return f"declare {ft.return_type} {gv.get_reference()}({', '.join(args)})"
    kind = "constant" if gv.global_constant else "global"
    return f"{gv.get_reference()} = external {kind} {gv.value_type}"


class _Units:
    """Union-find over the module's externally visible definitions."""

    def __init__(self, roots):
        self.parent = {r: r for r in roots}

    def find(self, r):
        while self.parent[r] != r:
            self.parent[r] = self.parent[self.parent[r]]
            r = self.parent[r]
        return r

    def join(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def split_module(module: ir.Module, workers: int = 2) -> list:
    """The module's text as a list of module texts (one when not worth splitting)."""
    gvs = list(module.globals.values())
    texts = [str(gv) for gv in gvs]
    total = sum(map(len, texts))
    header = [f'; ModuleID = "{module.name}"', f'target triple = "{module.triple}"',
              f'target datalayout = "{module.data_layout}"', ""]
    header += [t.get_declaration() for t in module.get_identified_types().values()]
    metadata = module._get_metadata_lines()
    whole = ["\n".join(header + texts + metadata)]
    n_parts = min(MAX_PARTS, max(workers, 1) * 2, total // MIN_PART_BYTES)
    # metadata naming a global would need it in every part: such a module stays whole
    if total < MIN_SPLIT_BYTES or n_parts < 2 or any("@" in line for line in metadata):
        return whole
    index = {gv.name: i for i, gv in enumerate(gvs)}
    refs = [{index[n] for n in map(_name_of, _REF.findall(t)) if n in index} - {i} for i, t in enumerate(texts)]
    internal = [gv.linkage in ("internal", "private") and _is_definition(gv) for gv in gvs]
    roots = [i for i, gv in enumerate(gvs) if _is_definition(gv) and not internal[i]]
    # the internal definitions each root reaches
    reach = {}
    for r in roots:
        seen, todo = set(), [r]
        while todo:
            for j in refs[todo.pop()]:
                if internal[j] and j not in seen:
                    seen.add(j)
                    todo.append(j)
        reach[r] = seen
    units = _Units(roots)
    owner = {}
    for r in roots:
        for j in reach[r]:
            copyable = (isinstance(gvs[j], ir.Function) or gvs[j].global_constant) and len(texts[j]) <= MAX_COPY_BYTES
            if copyable:
                continue
            if j in owner:
                units.join(owner[j], r)
            else:
                owner[j] = r
    members = {}
    for r in roots:
        members.setdefault(units.find(r), []).append(r)
    cost = {}
    for u, rs in members.items():
        defs = set(rs).union(*(reach[r] for r in rs))
        cost[u] = sum(len(texts[j]) + (FUNCTION_COST_BYTES if isinstance(gvs[j], ir.Function) else 0) for j in defs)
    # largest units first, each to the cheapest part; the unit holding the first definition in part 0
    loads = [0] * n_parts
    part_of = {}
    first = units.find(roots[0]) if roots else None
    order = sorted(members, key=lambda u: (u != first, -cost[u], u))
    for u in order:
        p = 0 if u == first else min(range(n_parts), key=lambda k: (loads[k], k))
        part_of[u] = p
        loads[p] += cost[u]
    defs_of = [set() for _ in range(n_parts)]
    for u, rs in members.items():
        for r in rs:
            defs_of[part_of[u]].add(r)
            defs_of[part_of[u]].update(reach[r])
    out = []
    for defs in defs_of:
        if not defs:
            continue
        used = set().union(*(refs[j] for j in defs)) - defs
        body = []
        for i, gv in enumerate(gvs):
            if i in defs:
                body.append(texts[i])
            elif i in used:
                if internal[i]:      # cannot happen by construction; never risk a broken part
                    return whole
                body.append(texts[i] if not _is_definition(gv) else _declaration(gv))
        out.append("\n".join(header + body + metadata))
    return out


__all__ = ["split_module", "MIN_SPLIT_BYTES"]
