"""Which loops of a kernel GPU threads (and blocks) may split among themselves.

A CPU kernel runs a nest in order, so a nest may accumulate into its output across iterations
(out[j] = out[j] + x[i, j], the row-accumulating reduction) or write overlapping windows. On a
GPU each thread takes some iterations; that is only correct when threads never touch an element
another thread writes. This module decides, from the IR alone, which loops can be given to
threads ('parallel') and which every thread must run itself, in order ('serial'): the parallel
loops are those every store indexes, provided each store's index is one-to-one over them, the
serial loops do not move any store, and a stored buffer is read back only at the element being
written. Restricting the nest's order to one thread's iterations keeps, for each element, the
order the CPU accumulates in, so results match bit for bit.

Also: thread_suffix (the innermost loops one block's threads may split, barriers between
passes of the outer ones) and independent_iterations (whether an outer loop's iterations touch
disjoint slabs, so each may have a thread or block of its own though not marked independent).

Plain IR analysis: no CUDA syntax here (runtime/render_cuda.py renders the answer).
"""
from __future__ import annotations

import itertools

from .kernel_ir import Accumulate, Load, Loop, Store


def split_for_threads(loops: list, inner: list):
    """(parallel loops, serial loops), both in nest order, or None when no loop can be split
    safely (the nest then runs on one thread)."""
    stores = [s for s in inner if isinstance(s, Store)]
    if len(stores) != len(inner) or not stores:
        return None
    by_buf = {}
    for st in stores:
        if st.index.indirect:
            return None      # a scatter: two iterations may pick the same row
        by_buf.setdefault(st.buf, []).append(st.index)
    for st in stores:
        for a in st.args:
            if isinstance(a, Load) and a.buf in by_buf and a.index not in by_buf[a.buf]:
                return None  # reads an element some other iteration (maybe another thread) writes
    extents = {l.var: l.extent for l in loops}

    def moving(idx):
        return frozenset(v for v, s in idx.terms if s != 0 and extents.get(v, 1) > 1)
    owned = moving(stores[0].index)
    for idxs in by_buf.values():
        if any(moving(i) != owned for i in idxs):
            return None
        # loops outside the nest move every store of a buffer alike, or the stores may meet
        outside = {tuple(sorted((v, s) for v, s in i.terms if s != 0 and v not in extents)) for i in idxs}
        terms = {tuple(sorted((v, s) for v, s in i.terms if v in owned)) for i in idxs}
        if len(outside) != 1:
            return None
        if len(terms) == 1:
            # one set of strides, the stores apart by their offsets (a pooling gradient's
            # window positions)
            strided = [(abs(s), extents[v]) for v, s in next(iter(terms))]
            if not one_to_one(strided, sorted({i.offset for i in idxs})):
                return None
        elif not _stores_one_to_one(idxs, [l for l in loops if l.var in owned]):
            return None      # (a compare-exchange writing c*2 + t and c*2 + 1 - t: a sort network)
    parallel = [l for l in loops if l.var in owned]
    serial = [l for l in loops if l.var not in owned]
    return parallel, serial


# the most (iteration, offset) pairs one_to_one enumerates once the separable strides are gone
ENUMERATE_LIMIT = 1 << 14


def one_to_one(terms, offsets=(0,)) -> bool:
    """Whether offset + sum(stride * i), i in [0, extent) per (stride, extent) term and offset
    in `offsets`, never repeats a value. A term whose stride exceeds everything the smaller
    terms and the offsets reach is a digit of its own (it cannot collide with them) and is
    dropped; what remains (a few small window terms) is enumerated. Unsure means False."""
    terms = sorted((s, e) for s, e in terms if e > 1)
    span = max(offsets) - min(offsets)
    while terms:
        reach = span + sum(s * (e - 1) for s, e in terms[:-1])
        if terms[-1][0] <= reach:
            break
        terms.pop()
    count = len(offsets)
    for _, e in terms:
        count *= e
    if count > ENUMERATE_LIMIT:
        return False
    values = list(offsets)
    for s, e in terms:
        values = [v + s * i for v in values for i in range(e)]
    return len(set(values)) == len(values)


def _stores_one_to_one(idxs, loops) -> bool:
    """Whether stores at `idxs` (different strides) never write one element twice over the
    iterations of `loops`, by enumeration; unsure (too many iterations) means False."""
    count = len(idxs)
    for l in loops:
        count *= l.extent
    if count > ENUMERATE_LIMIT:
        return False
    pos = {l.var: k for k, l in enumerate(loops)}
    seen = set()
    for it in itertools.product(*(range(l.extent) for l in loops)):
        for idx in idxs:
            e = idx.offset + sum(s * it[pos[v]] for v, s in idx.terms if v in pos)
            if e in seen:
                return False
            seen.add(e)
    return True


def thread_suffix(loops: list, inner: list):
    """How many innermost loops of a nest of stores the threads of one block may split at once,
    the outer loops run by every thread in step with a barrier after each pass (so a pass may
    overwrite what an earlier one wrote: col2im's overlapping windows), or None."""
    for k in range(len(loops), 0, -1):
        split = split_for_threads(loops[-k:], inner)
        if split is not None and all(l.extent == 1 for l in split[1]):
            return k
    return None


def independent_iterations(loop: Loop, outer=()) -> bool:
    """Whether the iterations of `loop` (inside the loops `outer`, held fixed) touch disjoint
    elements of every buffer its body writes, so that each may go to its own thread or block
    though the lowering did not mark the loop independent (a sort network's rows): for each
    written buffer, every access moves with loop.var by the same stride S (and with each outer
    loop alike), and all an iteration reaches spans fewer than |S| elements."""
    accesses = []
    _collect(loop.body, {}, accesses)
    written = {buf for buf, _, store, _ in accesses if store}
    fixed = {l.var for l in outer}
    for buf in written:
        mine = [(idx, scope) for b, idx, _, scope in accesses if b == buf]
        strides = {dict(idx.terms).get(loop.var, 0) for idx, _ in mine}
        held = {tuple(sorted((v, s) for v, s in idx.terms if v in fixed and s != 0)) for idx, _ in mine}
        if len(strides) != 1 or 0 in strides or len(held) != 1:
            return False
        reach = [_reach(idx, scope, loop.var, fixed) for idx, scope in mine]
        if max(h for _, h in reach) - min(lo for lo, _ in reach) >= abs(next(iter(strides))):
            return False
    return True


def _reach(idx, extents, var, fixed):
    """(lowest, highest) element offset an index reaches as the loops around it inside the
    iteration vary."""
    lo = hi = idx.offset
    for v, s in idx.terms:
        if v == var or v in fixed:
            continue
        span = s * (extents.get(v, 1) - 1)
        lo, hi = lo + min(0, span), hi + max(0, span)
    for ind in idx.indirect:
        span = ind.stride * (ind.extent - 1)        # clip and wrap both land in [0, extent)
        lo, hi = lo + min(0, span), hi + max(0, span)
    return lo, hi


def _collect(stmts, scope, accesses):
    """Every (buffer, index, is_store, extents of the loops around it) access under stmts,
    index arrays of indirect terms included."""
    def index(buf, idx, store):
        accesses.append((buf, idx, store, scope))
        for ind in idx.indirect:
            index(ind.buf, ind.index, False)
    for s in stmts:
        if isinstance(s, Loop):
            _collect(s.body, {**scope, s.var: s.extent}, accesses)
        elif isinstance(s, (Store, Accumulate)):
            if isinstance(s, Store):
                index(s.buf, s.index, True)
            for a in s.args:
                if isinstance(a, Load):
                    index(a.buf, a.index, False)


def perfect_nest(body):
    """(loops, innermost statements) when body is one perfect loop nest, else None."""
    loops = []
    while len(body) == 1 and isinstance(body[0], Loop):
        loops.append(body[0])
        body = body[0].body
    if any(isinstance(s, Loop) for s in body):
        return None
    return loops, body


__all__ = ["split_for_threads", "thread_suffix", "independent_iterations", "one_to_one", "perfect_nest"]
