"""Native code for kernels written directly in kernel IR, outside any graph, and the one statement
such kernels need that graphs never produce: several outputs from one set of loads.

Why: an optimizer step updates each weight and its optimizer state in place, element by element
(SGD with momentum: m = mu*m - lr*wd*w - lr*g; w += m). As a graph that is two outputs, and
the fuser's groups have one output each, so the compiled step made one pass that wrote m and a
second that read m and w back to write w: 28 bytes of memory traffic per element where 20
suffice (read w, g, m; write w, m), on arrays too large for the caches. `MultiStore` loads its
operands once, computes every output from those values and only then stores them, so outputs
may overwrite the very buffers it read (the in-place update), and `KernelProgram` compiles a list
of such kernels into one native entry, with the same code generator, worker pool and program
cache as compiled graphs (render_llvm.ModuleBuilder, runtime/cache.py).
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from . import cache as _cache, cpu_devices as _cpu_devices, threads as _threads, trace as _trace
from .kernel_ir import Gemm, Index, Loop, MemCopy, Store, _formula_lines
from .lower import name_by_content
from .render_llvm import ELEMENTWISE_FLAGS, ModuleBuilder

_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@dataclass
class MultiStore:
    """outs[k][index] = exprs[k](args...) for every k, all loads before any store: an output
    may be one of the buffers the loads read (in-place updates read the old values)."""
    outs: tuple            # buffer names, one per output
    index: Index           # where every output is stored
    exprs: tuple           # ScalarExpr per output, over `arg i` = args[i]
    args: tuple            # Loads
    # LLVM's floating-point flags on the arithmetic; () rounds every operation as written (no
    # fused multiply-add), for updates that must match a numpy reference bit for bit
    flags: tuple = ELEMENTWISE_FLAGS

    def lines(self, indent):
        out = [f"{indent}# {len(self.outs)} outputs from one set of loads, stored after all are computed"]
        if tuple(self.flags) != tuple(ELEMENTWISE_FLAGS):
            out.append(f"{indent}# floating-point flags: {' '.join(self.flags) or 'none'}")
        for buf, expr in zip(self.outs, self.exprs):
            out += _formula_lines(indent, f"{buf}[{self.index}] = ", expr, self.args)
        return out

    def emit_llvm(self, em):
        """The renderer's hook for statements that emit themselves (render_llvm._KernelEmitter)."""
        from .render_llvm import emit_expr
        b = em.b
        vals = [em.value(a) for a in self.args]
        memo = {}                                   # subexpressions shared between outputs
        results = [emit_expr(b, e, vals, flags=tuple(self.flags), memo=memo) for e in self.exprs]
        at = em.index(self.index)
        for buf, v in zip(self.outs, results):
            b.store(v, b.gep(em.ptrs[buf], [at], inbounds=True))
        em._shared = {}                             # loads shared by later Stores are stale


def _where(w):
    """A binding: slot, or (slot, byte offset into that slot's array)."""
    return (int(w[0]), int(w[1])) if isinstance(w, tuple) else (int(w), 0)


class KernelProgram:
    """Kernels run in order by one native call. `calls`: [(kernel, [binding per kernel buffer])],
    a binding being an argument slot or (slot, byte offset); a call passes one C-contiguous array
    per slot (`n_slots` of them), writeable where a kernel stores into it. The arrays' addresses
    are kept between calls when the same array objects come back (a training loop's weights).
    cache=False compiles without the memory and disk program caches (runtime/cache.py)."""

    def __init__(self, name: str, calls, n_slots: int, device: int = 0, cache: bool = True):
        self.name = name
        nthreads = _cpu_devices.threads(device)
        pool_symbol = _threads.pool_symbol(device)
        _threads.ensure_pool(device)
        _threads.refresh_limit(device)
        calls = [(name_by_content(k), [_where(w) for w in slots]) for k, slots in calls]
        # what each slot must hold: the dtype its kernels read and the most elements they touch
        self._need = [None] * n_slots
        self._written = set()
        for k, where in calls:
            stored = _stored(k.body)
            if len(where) != len(k.bufs):
                raise ValueError(f"kernel program {name}: kernel {k.name} has {len(k.bufs)} buffers, "
                                 f"{len(where)} bindings given")
            for bf, (slot, off) in zip(k.bufs, where):
                prev = self._need[slot]
                if prev is not None and prev[0] != bf.dtype:
                    raise ValueError(f"kernel program {name}: slot {slot} is {prev[0]} in one kernel, "
                                     f"{bf.dtype} in {k.name}")
                size = off // np.dtype(bf.dtype).itemsize + bf.size
                self._need[slot] = (bf.dtype, max(size, prev[1] if prev else 0))
                if bf.name in stored:
                    self._written.add(slot)
        description = "\n".join([f"kernel program {name}", f"threads={nthreads}", f"pool={pool_symbol}",
                                 ModuleBuilder.cache_tag()]
                                + [f"{k.name} {k.work} {where}" for k, where in calls])

        def text_makers():
            tm = _cache.target_machine()
            mb = ModuleBuilder(name, nthreads, tm.triple, str(tm.target_data), pool_symbol=pool_symbol)
            mb.add_entry("entry", calls)
            return mb.text_makers()
        addrs, self.source, self._engine = _cache.load(_cache.make_key(description), text_makers, ["entry"],
                                                      use_cache=cache)
        self._entry = _ENTRY(addrs["entry"])
        self._args = (ctypes.c_void_p * max(n_slots, 1))()
        self._held = [None] * n_slots          # the arrays args[] points into (kept alive)
        self.n_slots = n_slots
        self._lock = threading.Lock()
        self.device, self.n_calls = device, len(calls)

    def __call__(self, arrays):
        if len(arrays) != self.n_slots:
            raise ValueError(f"kernel program {self.name}: expects {self.n_slots} arrays, got {len(arrays)}")
        with self._lock:            # one argument vector: concurrent callers take turns
            args, held = self._args, self._held
            for i, a in enumerate(arrays):
                if a is held[i]:
                    continue
                need = self._need[i]
                if type(a) is not np.ndarray or not a.flags.c_contiguous or \
                        (need is not None and (a.dtype != need[0] or a.size < need[1])) or \
                        (i in self._written and not a.flags.writeable):
                    self._refuse(i, a)
                args[i] = a.ctypes.data
                held[i] = a
            if not _trace.symbolic:
                self._entry(args)
                return
            # mx.profiler records compiled programs: the whole call as one kernel span
            t0 = _trace.now()
            self._entry(args)
            _trace.span(self.name, "kernel", t0, _trace.now(), self.device,
                        {"what": f"{self.n_calls} kernels in one native call"})

    def _refuse(self, i, a):
        need = self._need[i]
        if type(a) is not np.ndarray:
            what = type(a).__name__
        else:
            flaws = [f for f, bad in (("not contiguous", not a.flags.c_contiguous),
                                      ("read-only", not a.flags.writeable)) if bad]
            what = f"{a.dtype}[{a.size}]" + (f" ({', '.join(flaws)})" if flaws else "")
        raise ValueError(f"kernel program {self.name}: array {i} must be a C-contiguous"
                         f"{' writeable' if i in self._written else ''} {need[0] if need else ''} array "
                         f"of at least {need[1] if need else 0} elements, got {what}")


def _stored(body) -> set:
    """Names of the buffers the statements store into."""
    out = set()
    for s in body:
        if isinstance(s, Loop):
            out |= _stored(s.body)
        elif isinstance(s, MultiStore):
            out.update(s.outs)
        elif isinstance(s, (Store, MemCopy)):
            out.add(s.buf if isinstance(s, Store) else s.dst)
        elif isinstance(s, Gemm):
            out.add(s.c)
    return out


__all__ = ["MultiStore", "KernelProgram"]
