"""Compiled kernels for hot eager GEMM-shaped operators: one single-operator program per signature.

Why: an eager (not hybridized) training step spends nearly all its time in the GEMMs of dot,
batch_dot and FullyConnected, or in convolutions and their gradients. Their numpy references
call numpy's bundled OpenBLAS, whose own threads busy-wait after each call and collapse when the
cores are shared (64x784 @ 784x512: ~0.3 ms median but 20-30 ms at the 90th percentile on the
loaded 2-core machine), and the convolutions go through im2col in numpy (a 3x3 64->64 conv on
16x56x56: 455 ms, compiled 22 ms). graphc's compiled programs run these on graphc's one worker
pool (runtime/threads.py), with its own GEMM and convolution kernels. So an application whose
signature (operator, input types, attributes) keeps coming back, as every step of a training
loop does, is compiled once as a one-node graph and run as that program from then on.

Policy (cheap to test on every call, costly only when it pays):
- only the operators in OPS, float32, and at least MIN_FLOPS of arithmetic (the op's declared
  `flops`): below that numpy's call is a few microseconds and a program call costs more;
- a signature compiles on its HOT_AFTER-th use (a one-off product never pays the 0.1-0.5 s
  compile; compile_graph's disk cache makes the next process's compile a load);
- at most MAX_PROGRAMS programs, and signatures that are counted but not yet hot are forgotten
  past MAX_COUNTED (shapes that vary every call stay on numpy and cost no memory);
- a signature that never compiles (not float32, under MIN_FLOPS) is remembered as such, so that
  a training loop's small product costs a set lookup per step, not a flops estimate.
GRAPHC_EAGER_COMPILE=0 turns this off (every eager product runs its numpy reference); an
integer N > 0 compiles on the N-th use. So one eager call may round differently before and after
its program exists (the last bits of a float32 sum): code that compares two runs in one process
bit for bit sets GRAPHC_EAGER_COMPILE=1 (compiled from the first use) or 0.

This module never decides results: the program computes the same operator as the reference
(float32, summation order differing only by rounding; Winograd convolutions ~1e-5 relative),
and anything it cannot run (a compile error) falls back to the reference for that signature,
recorded in `stats()`.
"""
from __future__ import annotations

import os
import threading
import warnings

import numpy as np

# Convolution's eager backward applies the two gradient operators, so they are here too
OPS = frozenset({"dot", "batch_dot", "FullyConnected", "Convolution", "_conv_data_grad", "_conv_weight_grad"})
MIN_FLOPS = 1 << 20          # 64x512 @ 512x10 (0.65 MFLOP): numpy 9 us, a program call 12 us
HOT_AFTER = 3
MAX_PROGRAMS = 256
MAX_COUNTED = 4096

_lock = threading.Lock()
_programs: dict = {}         # signature -> Program, or None when it failed to compile
_counts: dict = {}           # signature -> uses so far (not yet compiled)
_small: set = set()          # signatures that never compile (not float32, under MIN_FLOPS)
_stats = {"calls": 0, "compiled": 0, "failed": 0}


def _hot_after() -> int:
    """Uses before a signature compiles; 0 means never (GRAPHC_EAGER_COMPILE)."""
    v = os.environ.get("GRAPHC_EAGER_COMPILE")
    if v is None:
        return HOT_AFTER
    v = v.strip().lower()
    if v in ("0", "off", "false", "no", ""):
        return 0
    return int(v) if v.isdigit() else HOT_AFTER


def _program_for(op, in_types, attrs):
    """The one-node program of op(in_types, attrs)."""
    from .compiler import compile_graph
    from .ops.builder import GraphBuilder
    b = GraphBuilder(f"eager_{op.name}")
    ins = [b.var(f"in{i}", t.with_(device="cpu(0)"), "input") for i, t in enumerate(in_types)]
    out = b.invoke(op.name, ins, dict(attrs))
    outs = out if isinstance(out, tuple) else (out,)
    return compile_graph(b.build([h.value for h in outs]))


def run(op, in_types, out_types, arrays, attrs):
    """The op's outputs from its compiled program, or None: the caller runs the numpy reference.
    Called by every eager invoke, so the common 'not for us' answer costs a set lookup."""
    if op.name not in OPS:
        return None
    key = (op.name, tuple([(t.shape, t.dtype) for t in in_types]), attrs)
    prog = _programs.get(key, False)
    if prog is False:
        if key in _small:
            return None
        if any(t.dtype != "float32" for t in in_types) or \
                (op.flops(in_types, out_types, attrs) if op.flops is not None else 0.0) < MIN_FLOPS:
            # (remembered: a training loop's small product asks again every step)
            if len(_small) >= MAX_COUNTED:
                _small.clear()
            _small.add(key)
            return None
        prog = _maybe_compile(op, in_types, attrs, key)
        if prog is None:
            return None
    elif prog is None:
        return None
    _stats["calls"] += 1
    outs = prog([a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in arrays])
    return tuple(outs) if isinstance(outs, (list, tuple)) else (outs,)


def _maybe_compile(op, in_types, attrs, key):
    """Count one use of `key`; compile it when it becomes hot. None while it is still cold."""
    need = _hot_after()
    if need == 0:
        return None
    with _lock:
        n = _counts.get(key, 0) + 1
        if n < need or len(_programs) >= MAX_PROGRAMS:
            if len(_counts) >= MAX_COUNTED:
                _counts.clear()
            _counts[key] = n
            return None
        _counts.pop(key, None)
        if key in _programs:             # another thread compiled it meanwhile
            return _programs[key]
        try:
            prog = _program_for(op, in_types, attrs)
        except Exception as exc:         # noqa: BLE001 - the numpy reference still answers
            # a compile failure must never break eager code that has a reference path; it is
            # reported once per signature and counted, and the signature stays on numpy
            warnings.warn(f"graphc eager {op.name} {[t.shape for t in in_types]}: compiled kernel "
                          f"failed ({type(exc).__name__}: {exc}); using the numpy reference",
                          RuntimeWarning, stacklevel=4)
            _stats["failed"] += 1
            prog = None
        else:
            _stats["compiled"] += 1
        _programs[key] = prog
        return prog


def stats() -> dict:
    """Counters: compiled signatures, failed compiles, calls run by a compiled program."""
    return dict(_stats, programs=sum(p is not None for p in _programs.values()))


def clear() -> None:
    """Forget every program and count (tests; a process that wants its memory back)."""
    with _lock:
        _programs.clear()
        _counts.clear()
        _small.clear()
        for k in _stats:
            _stats[k] = 0


__all__ = ["run", "stats", "clear", "OPS", "MIN_FLOPS", "HOT_AFTER"]
