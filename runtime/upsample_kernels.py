"""UpSampling with sample_type='bilinear' as one gather kernel.

The operator is MXNet's depthwise Deconvolution (ops/declarations/resample.py): kernel
k = 2s - s%2, stride s, pad p = s // 2, one group per channel, the weight an input. The
convolution lowering does not take it (it is not a Convolution node and has no scratch), and a
transposed convolution written as a scatter would need atomics, so it is written as a gather:
output position o = s q + t (t the residue) receives input q - m through tap s m + t + p for the
m that keep the tap inside the kernel. Per axis, output positions fall into segments (a residue
and a run of q) with the same set of m; runs away from the borders have every m, the few near
a border are their own segments. Each pair of row and column segments is one loop nest with a
static formula, so there is no branch and no padding; the backward (a convolution and a weight
correlation) already compiles through the Deconvolution gradient.
"""
from __future__ import annotations

import itertools

from graphc.ops import scalar as S

from .kernel_ir import Buf, Index, Kernel, Load, Loop, Store
from .lower import PARALLEL_WORK, KernelStep


def axis_segments(n, s, k, p) -> list:
    """[(t, q0, count, ms)] covering the output positions s q + t (q < n, t < s): the input
    q - m and tap s m + t + p feed them for each m in ms."""
    out = []
    for t in range(s):
        ms_all = [m for m in range(-(t + p) // s - 1, (k - 1 - t - p) // s + 2) if 0 <= s * m + t + p < k]

        def valid(q):
            return tuple(m for m in ms_all if 0 <= q - m < n)
        q = 0
        while q < n:
            ms = valid(q)
            if ms == tuple(ms_all):         # a run of interior positions
                end = q
                while end < n and valid(end) == ms:
                    end += 1
                out.append((t, q, end - q, ms))
                q = end
            else:
                out.append((t, q, 1, ms))
                q += 1
    return out


def bilinear_upsample_kernel(name, node) -> Kernel:
    x_t, w_t = node.inputs[0].type, node.inputs[1].type
    out_t = node.types[0]
    n, c, h, w = x_t.shape
    s = node.attrs["scale"]
    k, p = 2 * s - s % 2, s // 2
    oh, ow = out_t.shape[2:]
    dt = out_t.dtype
    body = []
    for (ty, qy0, ny, msy), (tx, qx0, nx, msx) in itertools.product(axis_segments(h, s, k, p),
                                                                      axis_segments(w, s, k, p)):
        loads, expr = [], None
        for my, mx in itertools.product(msy, msx):
            ky, kx = s * my + ty + p, s * mx + tx + p
            loads.append(Load("in0", Index((("n", c * h * w), ("c", h * w), ("qy", w), ("qx", 1)),
                                           (qy0 - my) * w + qx0 - mx)))
            loads.append(Load("in1", Index((("c", k * k),), ky * k + kx)))
            term = S.arg(len(loads) - 2, dt) * S.arg(len(loads) - 1, dt)
            expr = term if expr is None else expr + term
        if expr is None:
            expr = S.const(0.0, dt)
        at = Index((("n", c * oh * ow), ("c", oh * ow), ("qy", s * ow), ("qx", s)), (s * qy0 + ty) * ow + s * qx0 + tx)
        body.append(Loop("qy", ny, [Loop("qx", nx, [Store("out", at, expr, tuple(loads))])]))
    work = out_t.size * 2 * (-(-k // s)) ** 2       # at most ceil(k / s) taps per axis
    nest = [Loop("n", n, [Loop("c", c, body)], parallel=work >= PARALLEL_WORK and n > 1)]
    return Kernel(name, [Buf("out", dt, out_t.size), Buf("in0", dt, x_t.size), Buf("in1", dt, w_t.size)], nest, work)


def lower_upsampling(node, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: bilinear UpSampling of float32/64 NCHW data, else None."""
    if node.op != "UpSampling" or node.attrs.get("sample_type") != "bilinear" or len(node.inputs) != 2:
        return None
    x_t, w_t = node.inputs[0].type, node.inputs[1].type
    s = node.attrs["scale"]
    k = 2 * s - s % 2
    if x_t.dtype not in ("float32", "float64") or w_t.dtype != x_t.dtype or node.types[0].dtype != x_t.dtype:
        return None
    if x_t.ndim != 4 or w_t.shape != (x_t.shape[1], 1, k, k):
        return None
    kernel = bilinear_upsample_kernel(names("k_upsample_bilinear_"), node)
    return [KernelStep(kernel, {"out": pl_out[0], "in0": pl_in[0], "in1": pl_in[1]})]


__all__ = ["lower_upsampling", "bilinear_upsample_kernel", "axis_segments"]
