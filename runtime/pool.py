"""Pooling (max, avg, sum; global; 'valid' and 'full' conventions; count_include_pad) as one
generated kernel per node.

Along each spatial axis the output positions fall into segments that see the same window
clipping (the interior, where every tap is inside the image, and each border position on its
own), all known at compile time. A segment's window is therefore static: small windows become
one formula over all their taps' loads (the loop over output positions is what LLVM widens),
large ones (global pooling) a reduction loop. No branch and no padded copy of the input.

MXNet's rules (src/operator/nn/pool.h): a window starts at o*stride - pad and ends at
min(start + kernel, size + pad); avg divides by that padded extent when count_include_pad,
else by the number of taps inside the image. 'same' and 'lp' pooling stay on the host.
"""
from __future__ import annotations

import itertools
import math

from graphc.ops import scalar as S
from graphc.ops.graph import Node

from .kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Index, Kernel, Load, Loop, Store
from .conv import contiguous, PARALLEL_WORK

# windows with at most this many taps are one formula; larger ones are a reduction loop
UNROLL_TAPS = 27


def _spatial(value, nd, default):
    if value is None or value == ():
        return (default,) * nd
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return value * nd if len(value) == 1 and nd > 1 else value


def pool_params(node: Node):
    """(pool_type, kernel, stride, pad, count_include_pad) or None when the node is not native."""
    if node.op != "Pooling" or len(node.inputs) != 1 or len(node.types) != 1:
        return None
    a = node.attrs
    x, y = node.inputs[0].type, node.types[0]
    if x.dtype not in ("float32", "float64") or y.dtype != x.dtype or x.ndim < 3 or y.ndim != x.ndim:
        return None
    if a.get("layout") not in (None, "NCW", "NCHW", "NCDHW"):
        return None
    ptype = a.get("pool_type", "max")
    conv = a.get("pooling_convention", "valid")
    if ptype not in ("max", "avg", "sum") or conv not in ("valid", "full"):
        return None
    nd = x.ndim - 2
    if a.get("global_pool", False):
        kernel, stride, pad = tuple(x.shape[2:]), (1,) * nd, (0,) * nd
    else:
        kernel = _spatial(a.get("kernel"), nd, 1)
        stride, pad = _spatial(a.get("stride"), nd, 1), _spatial(a.get("pad"), nd, 0)
    if not (len(kernel) == len(stride) == len(pad) == nd):
        return None
    cip = a.get("count_include_pad", True)
    return ptype, kernel, stride, pad, True if cip is None else bool(cip)


def is_native_pool(node: Node) -> bool:
    return pool_params(node) is not None


def segments(out_len, in_len, k, s, p):
    """[(first output, count, first tap, end tap, padded window extent)] along one axis."""
    segs = []
    for o in range(out_len):
        start = o * s - p
        end_pad = min(start + k, in_len + p)
        lo, hi = max(start, 0), min(end_pad, in_len)
        key = (lo - start, max(lo, hi) - start, end_pad - start)
        if segs and segs[-1][2:] == key and segs[-1][0] + segs[-1][1] == o:
            segs[-1] = (segs[-1][0], segs[-1][1] + 1) + key
        else:
            segs.append((o, 1) + key)
    return segs


def pool_kernel(name, node: Node, x="in0", out="out") -> Kernel:
    ptype, kernel, stride, pad, cip = pool_params(node)
    xt, yt = node.inputs[0].type, node.types[0]
    dt = xt.dtype
    nc = xt.shape[0] * xt.shape[1]
    insz, outsz = xt.shape[2:], yt.shape[2:]
    inp, outp = math.prod(insz), math.prod(outsz)
    ist, ost = contiguous(insz), contiguous(outsz)
    nd = len(insz)
    ovars = [f"o{d}" for d in range(nd)]
    tvars = [f"t{d}" for d in range(nd)]
    kind = "max" if ptype == "max" else "sum"
    per_axis = [segments(o, i, k, s, p) for o, i, k, s, p in zip(outsz, insz, kernel, stride, pad)]
    body = []
    for combo in itertools.product(*per_axis):
        lens = [c[1] for c in combo]
        dst = Index((("nc", outp),) + tuple((v, st) for v, st in zip(ovars, ost)),
                    sum(c[0] * st for c, st in zip(combo, ost)))
        taps = [range(c[2], c[3]) for c in combo]
        ntaps = math.prod(len(t) for t in taps)
        count = math.prod((c[4] if cip else c[3] - c[2]) for c in combo)

        def src(tap_offsets, tap_vars=()):
            terms = (("nc", inp),) + tuple((v, s * st) for v, s, st in zip(ovars, stride, ist))
            terms += tuple((v, st) for v, st in zip(tap_vars, ist))
            off = sum((c[0] * s - p + t) * st for c, s, p, t, st in zip(combo, stride, pad, tap_offsets, ist))
            return Index(terms, off)

        def finish(acc):
            if ntaps == 0:
                return S.const(float("-inf") if kind == "max" else 0.0, dt)
            return acc / S.const(float(count), dt) if ptype == "avg" else acc

        if ntaps <= UNROLL_TAPS:
            loads = tuple(Load(x, src(t)) for t in itertools.product(*taps))
            expr = None
            for j in range(len(loads)):
                a = S.arg(j, dt)
                expr = a if expr is None else (S.call("max", expr, a) if kind == "max" else expr + a)
            stmt = Store(out, dst, finish(expr), loads)
            inner = [stmt]
        else:
            acc = Accumulate("acc", kind, S.arg(0, dt), (Load(x, src([t.start for t in taps], tvars)),))
            loop = [acc]
            for v, t in reversed(list(zip(tvars, taps))):
                loop = [Loop(v, len(t), loop)]
            inner = [DeclareAcc("acc", dt, kind)] + loop + [Store(out, dst, finish(S.arg(0, dt)), (AccRef("acc"),))]
        for v, n in reversed(list(zip(ovars, lens))):
            inner = [Loop(v, n, inner)]
        body.extend(inner)
    work = nc * outp * max(1, math.prod(kernel))
    loop = Loop("nc", nc, body, parallel=work >= PARALLEL_WORK and nc > 1, independent=True)
    return Kernel(name, [Buf(out, dt, yt.size), Buf(x, dt, xt.size)], [loop], work)


__all__ = ["pool_kernel", "pool_params", "is_native_pool", "segments"]
