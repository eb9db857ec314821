"""A kernel's body as the consecutive pieces a GPU program launches one after another.

On the CPU a Kernel is one function whatever its body holds. On a GPU a library GEMM (cuBLAS)
and a device-to-device copy are not code inside a rendered kernel: they are calls of their own.
So a body that mixes loop nests with `Gemm` or `MemCopy` statements runs as a sequence: each run
of loop statements as one rendered kernel, each Gemm through the driver's gemm, each MemCopy as a
dtod copy. Issued in order on one stream, every piece sees what the pieces before it wrote, which
keeps the kernel's sequential meaning.

This module only splits the IR; it knows nothing of CUDA syntax (runtime/render_cuda.py) or of
how pieces are launched (runtime/cuda/program.py).
"""
from __future__ import annotations

from .kernel_ir import Accumulate, AccRef, DeclareAcc, Gemm, Kernel, Load, Loop, MemCopy, Store


def cuda_pieces(kernel: Kernel) -> list:
    """[(kind, item)] in execution order: ('kernel', Kernel) for each launch a run of loop
    statements needs (see `segments`: the kernel itself when its whole body is one launch, else
    a Kernel named f'{name}_p{i}', i its position in the list, holding its statements and only
    the buffers they touch, in kernel.bufs order), ('gemm', Gemm) or ('copy', MemCopy)."""
    runs, run = [], []
    for s in kernel.body:
        if isinstance(s, (Gemm, MemCopy)):
            if run:
                runs.append(run)
                run = []
            runs.append(s)
        else:
            _check_no_library_call_inside(kernel, s)
            run.append(s)
    if run:
        runs.append(run)
    runs = [seg for r in runs for seg in (segments(r) if isinstance(r, list) else [r])]
    if len(runs) == 1 and isinstance(runs[0], list):
        return [("kernel", kernel)]
    out = []
    for i, r in enumerate(runs):
        if isinstance(r, Gemm):
            out.append(("gemm", r))
        elif isinstance(r, MemCopy):
            out.append(("copy", r))
        else:
            used = buffers_used(r)
            bufs = [b for b in kernel.bufs if b.name in used]
            piece = Kernel(f"{kernel.name}_p{i}", bufs, r, work=kernel.work,
                           inplace=frozenset(n for n in kernel.inplace if n in used))
            out.append(("kernel", piece))
    return out


def segments(run: list) -> list:
    """A run of loop statements cut where one launch may end and the next begin: after each
    top-level loop nest, except while an accumulator declared at the top level (a full
    reduction: declare, loops, store of the total) is still being filled or read. A one-block
    renderer would otherwise run the whole run (nests one after another, a barrier between)
    on one multiprocessor; as separate launches each nest gets the whole GPU, and the stream
    orders them as the barrier did."""
    out, cur, accs, pending = [], [], set(), set()
    for s in run:
        refs = _acc_refs(s)
        joins = pending or (refs & accs)
        if cur and not joins:
            out.append(cur)
            cur, accs = [], set()
        cur.append(s)
        if isinstance(s, DeclareAcc):
            accs.add(s.name)
            pending.add(s.name)
        else:
            pending -= refs        # the total is read: later statements may start a new launch
    if cur:
        out.append(cur)
    return out


def _acc_refs(stmt) -> set:
    """Accumulators a statement reads (AccRef) anywhere inside it."""
    out = set()
    if isinstance(stmt, Loop):
        for s in stmt.body:
            out |= _acc_refs(s)
    elif isinstance(stmt, (Store, Accumulate)):
        out |= {a.name for a in stmt.args if isinstance(a, AccRef)}
    return out


def _check_no_library_call_inside(kernel: Kernel, stmt):
    """A Gemm or MemCopy nested in a loop would need a library call per iteration; no lowering
    makes one, and a renderer handed one must say so rather than render a wrong kernel."""
    if isinstance(stmt, Loop):
        for s in stmt.body:
            if isinstance(s, (Gemm, MemCopy)):
                raise NotImplementedError(
                    f"kernel {kernel.name}: a {type(s).__name__} inside loop {stmt.var} cannot run on a GPU "
                    f"(library calls are split only at the top level of a kernel body)")
            _check_no_library_call_inside(kernel, s)


def buffers_used(stmts) -> set:
    """Names of every buffer the statements read or write, rows picked through an index array
    included."""
    out = set()

    def index(idx):
        for ind in idx.indirect:
            out.add(ind.buf)
            index(ind.index)

    def walk(ss):
        for s in ss:
            if isinstance(s, Loop):
                walk(s.body)
            elif isinstance(s, (Store, Accumulate)):
                if isinstance(s, Store):
                    out.add(s.buf)
                    index(s.index)
                for a in s.args:
                    if isinstance(a, Load):
                        out.add(a.buf)
                        index(a.index)
            elif isinstance(s, Gemm):
                out.update((s.a, s.b, s.c))
            elif isinstance(s, MemCopy):
                out.update((s.dst, s.src))
    walk(stmts)
    return out


__all__ = ["cuda_pieces", "segments", "buffers_used"]
