"""LRN and its gradient as kernels (the references, `_lrn_np` and `_lrn_grad_np`, are in
ops/declarations/spatial.py).

Each output channel c reads a window of channels around it (radius h = nsize // 2 for the
forward; 2h for the gradient, which needs the window sums of c's neighbours too), clipped at
the first and last channel. The clipping is known per channel at compile time, so the channels
within the radius of either end get their own statement (a formula over the channels that
exist), and the interior channels share one loop whose formula reads every offset. Data are
seen as (N, C, R), R the product of the remaining axes. The arithmetic is the references':
float64, window sums added from the lowest channel up, rounded once to the data's dtype.
"""
from __future__ import annotations

import math

from graphc.ops import scalar as S

from .kernel_ir import Buf, Index, Kernel, Load, Loop, Store
from .lower import PARALLEL_WORK, KernelStep

F64 = "float64"
LOWERED = frozenset({"LRN", "_lrn_grad"})


class _Reads:
    """The loads one statement's formula uses, by (buffer, channel offset), each loaded once."""
    BUFS = {"x": "in0", "g": "in1"}

    def __init__(self, dtype, index_of):
        self.dtype, self.index_of, self.loads, self.slot = dtype, index_of, [], {}

    def __call__(self, buf, d):
        if (buf, d) not in self.slot:
            self.slot[(buf, d)] = len(self.loads)
            self.loads.append(Load(self.BUFS[buf], self.index_of(d)))
        return S.cast(S.arg(self.slot[(buf, d)], self.dtype), F64)


def _window_scale(read, exists, d, half, alpha, knorm, nsize):
    """knorm + alpha / nsize * sum of x^2 over the channels d - half .. d + half that exist."""
    acc = S.const(0.0, F64)
    for k in range(d - half, d + half + 1):
        if exists(k):
            x = read("x", k)
            acc = acc + x * x
    return S.const(knorm, F64) + S.const(alpha / nsize, F64) * acc


def _forward(read, exists, attrs):
    half = attrs["nsize"] // 2
    s = _window_scale(read, exists, 0, half, attrs["alpha"], attrs["knorm"], attrs["nsize"])
    return read("x", 0) / S.call("pow", s, S.const(attrs["beta"], F64))


def _gradient(read, exists, attrs):
    alpha, beta, knorm, nsize = attrs["alpha"], attrs["beta"], attrs["knorm"], attrs["nsize"]
    half = nsize // 2
    window = S.const(0.0, F64)
    for k in range(-half, half + 1):
        if exists(k):
            s_k = _window_scale(read, exists, k, half, alpha, knorm, nsize)
            window = window + read("g", k) * read("x", k) * S.call("pow", s_k, S.const(-beta - 1.0, F64))
    s = _window_scale(read, exists, 0, half, alpha, knorm, nsize)
    return read("g", 0) * S.call("pow", s, S.const(-beta, F64)) - \
        S.const(2.0 * beta * alpha / nsize, F64) * read("x", 0) * window


def lrn_kernel(name, node) -> Kernel:
    x_t = node.inputs[0].type
    n, c = x_t.shape[0], x_t.shape[1]
    r = math.prod(x_t.shape[2:])
    dt = x_t.dtype
    grad = node.op == "_lrn_grad"
    rad = (node.attrs["nsize"] // 2) * (2 if grad else 1)
    build = _gradient if grad else _forward

    def statement(index_of, exists):
        read = _Reads(dt, index_of)
        expr = build(read, exists, node.attrs)
        return Store("out", index_of(0), S.cast(expr, dt), tuple(read.loads))

    body = []
    lo, hi = min(rad, c), max(c - rad, min(rad, c))
    for ch in list(range(lo)) + list(range(hi, c)):
        st = statement(lambda d, ch=ch: Index((("n", c * r), ("p", 1)), (ch + d) * r),
                       lambda k, ch=ch: 0 <= ch + k < c)
        body.append(Loop("p", r, [st]))
    if hi > lo:
        st = statement(lambda d: Index((("n", c * r), ("ch", r), ("p", 1)), (lo + d) * r), lambda k: True)
        body.append(Loop("ch", hi - lo, [Loop("p", r, [st])]))
    work = x_t.size * (2 * rad + 1) * (2 * rad + 4 if grad else 3)
    nest = [Loop("n", n, body, parallel=work >= PARALLEL_WORK and n > 1)]
    bufs = [Buf("out", dt, x_t.size), Buf("in0", dt, x_t.size)] + ([Buf("in1", dt, x_t.size)] if grad else [])
    return Kernel(name, bufs, nest, work)


def lower_lrn_family(node, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: LRN and _lrn_grad (data, ograd) in float32/64, else None."""
    if node.op not in LOWERED or any(v.type.dtype not in ("float32", "float64") for v in node.inputs):
        return None
    if any(v.type != node.inputs[0].type for v in node.inputs) or node.types[0] != node.inputs[0].type:
        return None
    kernel = lrn_kernel(names(f"k_{node.op.strip('_').lower()}_"), node)
    bind = {"out": pl_out[0], **{f"in{k}": p for k, p in enumerate(pl_in)}}
    return [KernelStep(kernel, {b.name: bind[b.name] for b in kernel.bufs})]


__all__ = ["lower_lrn_family", "lrn_kernel", "LOWERED"]
