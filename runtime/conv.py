"""Convolutions as kernel IR: im2col/col2im loops into an arena scratch buffer plus library
GEMMs, a plain GEMM for 1x1 convolutions and a direct loop for depthwise ones.

Every member of the family (Convolution, Deconvolution, the data and weight gradients) is
described by the forward convolution it is, transposes or differentiates
(`graphc.ops.fused.ConvGeometry`), and becomes:

- forward: im2col(x) -> col; y[f, p] = W[f, k] @ col[k, p] per image and group (NCHW output
  is the GEMM's row-major C directly, so no transpose follows).
- transposed (Deconvolution, a convolution's data gradient): col = Wᵀ @ x, then col2im
  scatters-adds the columns into the zeroed image.
- weight gradient: dW[f, k] = sum over images dy[f, p] @ col[k, p]ᵀ (beta = 1 after the first).

Padding never becomes a branch: for each kernel tap the output positions whose input lies
inside the image form a box known at compile time, so im2col is a set of copy loops over that
box plus zero stores around it, and every innermost loop is a plain strided copy LLVM widens.

Measured on the 2-core AVX-512 build machine (ResNet-18 shapes, float32, batch 1):
- 1x1 convolutions (stride 1, no padding) skip im2col: the image is the GEMM's B matrix
  (64->256 ch at 56x56: 0.11 ms as a GEMM vs 0.19 ms with an im2col copy first).
- depthwise convolutions run a direct loop (one filter per channel): im2col + C one-row GEMMs
  spent ~20x longer (32 ch, 3x3, 112x112: 0.05 ms direct vs 1.0 ms), since each GEMM does
  9 x 12544 work at GEMV speed after a full copy.
- everything else: im2col + one SGEMM per image (and group); see bench numbers in the report.

This module builds kernel IR only; the renderers turn it into code.
"""
from __future__ import annotations

import dataclasses
import math

from graphc.ops import scalar as S
from graphc.ops.fused import CONV_ROLES, ConvGeometry, conv_chunk, conv_geometry, uses_im2col
from graphc.ops.graph import Node

from .kernel_ir import Buf, Gemm, Index, Kernel, Load, Loop, Store

# below this many scalar operations an im2col/col2im/direct kernel runs on one thread
PARALLEL_WORK = 1 << 18


def contiguous(shape) -> tuple:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def tap_range(out_len, in_len, k_off, stride, pad):
    """Output positions o in [lo, hi) whose input position o*stride + k_off - pad is inside
    [0, in_len)."""
    lo = max(0, -((k_off - pad) // stride)) if k_off < pad else 0
    hi = min(out_len, (in_len - 1 + pad - k_off) // stride + 1) if in_len - 1 + pad - k_off >= 0 else 0
    return lo, max(lo, hi)


def boxes(out, lo, hi):
    """Split the box [0, out) into the valid box [lo, hi) and the boxes around it:
    [(starts, lengths, valid)], empty boxes dropped."""
    nd = len(out)
    found = []
    for d in range(nd):
        pre_s, pre_l = tuple(lo[:d]), tuple(h - l for l, h in zip(lo[:d], hi[:d]))
        post_s, post_l = (0,) * (nd - d - 1), tuple(out[d + 1:])
        for a, b in ((0, lo[d]), (hi[d], out[d])):
            if b > a:
                found.append((pre_s + (a,) + post_s, pre_l + (b - a,) + post_l, False))
    found.append((tuple(lo), tuple(h - l for l, h in zip(lo, hi)), True))
    return [b for b in found if all(n > 0 for n in b[1])]


def _nest(lengths, vars_, body):
    for v, n in reversed(list(zip(vars_, lengths))):
        body = [Loop(v, n, body)]
    return body


def _taps(g: ConvGeometry):
    """(flat tap index, per-dim input offset k*dilate) for every kernel tap."""
    out = []
    for flat in range(g.taps):
        idx, rest = [], flat
        for k in reversed(g.kernel):
            idx.append(rest % k)
            rest //= k
        idx.reverse()
        out.append((flat, tuple(i * d for i, d in zip(idx, g.dilate))))
    return out


def _geometry_boxes(g: ConvGeometry, koff):
    lo, hi = zip(*(tap_range(o, i, k, s, p) for o, i, k, s, p in
                   zip(g.out_size, g.in_size, koff, g.stride, g.pad)))
    return boxes(g.out_size, lo, hi)


def _in_index(g, koff, starts, ovars, lead):
    """Index of x at output positions (starts + ovars) for a tap at koff; lead: outer terms."""
    ist = contiguous(g.in_size)
    terms = tuple(lead) + tuple((v, s * st) for v, s, st in zip(ovars, g.stride, ist))
    off = sum((b * s + k - p) * st for b, s, k, p, st in zip(starts, g.stride, koff, g.pad, ist))
    return Index(terms, off)


def _out_index(g, starts, ovars, lead, offset=0):
    ost = contiguous(g.out_size)
    return Index(tuple(lead) + tuple((v, st) for v, st in zip(ovars, ost)),
                 offset + sum(b * st for b, st in zip(starts, ost)))


def im2col_kernel(name, g: ConvGeometry, images, x="x", col="columns") -> Kernel:
    """col[(b, c, tap), p] = x[b, c, p*stride + tap*dilate - pad] (0 outside the image) for
    `images` images; the outer loop runs over (image, channel) pairs in parallel."""
    inp, outp = math.prod(g.in_size), math.prod(g.out_size)
    ovars = [f"o{d}" for d in range(len(g.out_size))]
    zero = S.const(0.0, g.dtype)
    body = []
    for t, koff in _taps(g):
        for starts, lens, valid in _geometry_boxes(g, koff):
            dst = _out_index(g, starts, ovars, [("bc", g.taps * outp)], t * outp)
            if valid:
                src = _in_index(g, koff, starts, ovars, [("bc", inp)])
                stmt = Store(col, dst, S.arg(0, g.dtype), (Load(x, src),))
            else:
                stmt = Store(col, dst, zero, ())
            body.extend(_nest(lens, ovars, [stmt]))
    n = images * g.channels
    work = n * g.taps * outp
    loop = Loop("bc", n, body, parallel=work >= PARALLEL_WORK and n > 1, independent=True)
    return Kernel(name, [Buf(col, g.dtype, images * g.col_elems), Buf(x, g.dtype, n * inp)], [loop], work)


def col2im_kernel(name, g: ConvGeometry, images, col="columns", x="x") -> Kernel:
    """x[b, c, ...] = sum over taps and positions of col[(b, c, tap), p] landing there (the
    transpose of im2col): zero the image, then add each tap's valid box."""
    inp, outp = math.prod(g.in_size), math.prod(g.out_size)
    ovars = [f"o{d}" for d in range(len(g.out_size))]
    body = [Loop("i", inp, [Store(x, Index((("bc", inp), ("i", 1))), S.const(0.0, g.dtype), ())])]
    add = S.arg(0, g.dtype) + S.arg(1, g.dtype)
    for t, koff in _taps(g):
        for starts, lens, valid in _geometry_boxes(g, koff):
            if not valid:
                continue
            dst = _in_index(g, koff, starts, ovars, [("bc", inp)])
            src = _out_index(g, starts, ovars, [("bc", g.taps * outp)], t * outp)
            body.extend(_nest(lens, ovars, [Store(x, dst, add, (Load(x, dst), Load(col, src)))]))
    n = images * g.channels
    work = n * g.taps * outp
    loop = Loop("bc", n, body, parallel=work >= PARALLEL_WORK and n > 1, independent=True)
    return Kernel(name, [Buf(x, g.dtype, n * inp), Buf(col, g.dtype, images * g.col_elems)], [loop], work)


def depthwise_kernel(name, g: ConvGeometry, x="x", w="w", out="out") -> Kernel:
    """y[n, c, p] = sum over taps of w[c, tap] * x[n, c, p*stride + tap*dilate - pad]: per tap,
    one multiply-add pass over the valid box of the (cache-resident) output plane."""
    inp, outp = math.prod(g.in_size), math.prod(g.out_size)
    c = g.channels
    ovars = [f"o{d}" for d in range(len(g.out_size))]
    lead_out = [("c", outp), ("n", c * outp)]
    body = [Loop("i", outp, [Store(out, Index((("c", outp), ("n", c * outp), ("i", 1))), S.const(0.0, g.dtype), ())])]
    fma = S.arg(0, g.dtype) + S.arg(1, g.dtype) * S.arg(2, g.dtype)
    for t, koff in _taps(g):
        for starts, lens, valid in _geometry_boxes(g, koff):
            if not valid:
                continue
            dst = _out_index(g, starts, ovars, lead_out)
            src = _in_index(g, koff, starts, ovars, [("c", inp), ("n", c * inp)])
            wi = Index((("c", g.taps),), t)
            body.extend(_nest(lens, ovars, [Store(out, dst, fma, (Load(out, dst), Load(w, wi), Load(x, src)))]))
    work = g.batch * c * g.taps * outp * 2
    loop = Loop("c", c, [Loop("n", g.batch, body, independent=True)], parallel=work >= PARALLEL_WORK and c > 1,
                independent=True)
    return Kernel(name, [Buf(out, g.dtype, g.batch * c * outp), Buf(w, g.dtype, c * g.taps),
                         Buf(x, g.dtype, g.batch * c * inp)], [loop], work)


def _gemm_kernel(name, stmt: Gemm, bufs) -> Kernel:
    seen, uniq = set(), []
    for b in bufs:
        if b.name not in seen:
            seen.add(b.name)
            uniq.append(b)
    return Kernel(name, uniq, [stmt], work=2 * stmt.m * stmt.n * stmt.k * stmt.batch)


@dataclasses.dataclass
class ConvCall:
    """One kernel of a convolution and how to bind it: buffer name -> (operand, element offset),
    operand being 'image', 'weight', 'result' (see operand_values) or 'scratch'."""
    kernel: Kernel
    operands: dict


def conv_calls(node: Node, names) -> list:
    """The kernels of one convolution-family node, in order, with operand bindings:
    operands are 'image' (the forward convolution's input), 'weight', 'result' (its output:
    y, or dy for gradients) and 'scratch'. `names(base)` gives fresh kernel names."""
    g = conv_geometry(node)
    role = CONV_ROLES[node.op]
    dt = g.dtype
    inp, outp = math.prod(g.in_size), math.prod(g.out_size)
    gr = g.groups
    og, kg = g.filters // gr, (g.channels // gr) * g.taps
    img_elems, res_elems = g.channels * inp, g.filters * outp
    base = "".join(ch if ch.isalnum() else "_" for ch in node.name)
    calls = []
    if role == "forward" and g.depthwise:
        k = depthwise_kernel(names(f"k_{base}_depthwise"), g, "x", "w", "y")
        return [ConvCall(k, {"x": ("image", 0), "w": ("weight", 0), "y": ("result", 0)})]
    im2col = uses_im2col(node, g)
    chunk = conv_chunk(g) if im2col else g.batch
    col_kernels = {}

    def col_kernel_for(count):
        """The im2col (col2im) kernel for `count` images: the last chunk may be shorter."""
        if count not in col_kernels:
            maker = col2im_kernel if role == "transposed" else im2col_kernel
            col_kernels[count] = maker(names(f"k_{base}_{'col2im' if role == 'transposed' else 'im2col'}"), g, count,
                                       *(("columns", "x") if role == "transposed" else ("x", "columns")))
        return col_kernels[count]
    # columns of image b of a chunk: the scratch at b*col_elems, or the image itself (1x1)
    col_op, col_stride = ("scratch", g.col_elems) if im2col else ("image", img_elems)
    bufs_w = Buf("w", dt, g.filters * kg)
    gemm_cache = {}
    for n0 in range(0, g.batch, chunk):
        b_count = min(chunk, g.batch - n0)
        if role == "forward":
            if im2col:
                calls.append(ConvCall(col_kernel_for(b_count), {"x": ("image", n0 * img_elems), "columns": ("scratch", 0)}))
            col_base = 0 if im2col else n0 * img_elems
            if gr == 1:
                key = ("fwd", b_count)
                if key not in gemm_cache:
                    st = Gemm("w", "columns", "y", g.filters, outp, kg, False, False, kg, outp, outp, dt,
                              batch=b_count, stride_a=0, stride_b=col_stride, stride_c=res_elems)
                    gemm_cache[key] = _gemm_kernel(names(f"k_{base}_gemm"), st, [
                        Buf("y", dt, b_count * res_elems), bufs_w, Buf("columns", dt, b_count * col_stride)])
                calls.append(ConvCall(gemm_cache[key], {"w": ("weight", 0), "columns": (col_op, col_base),
                                                        "y": ("result", n0 * res_elems)}))
            else:
                if "fwd_g" not in gemm_cache:
                    st = Gemm("w", "columns", "y", og, outp, kg, False, False, kg, outp, outp, dt, batch=gr,
                              stride_a=og * kg, stride_b=kg * outp, stride_c=og * outp)
                    gemm_cache["fwd_g"] = _gemm_kernel(names(f"k_{base}_gemm"), st, [
                        Buf("y", dt, res_elems), bufs_w, Buf("columns", dt, col_stride)])
                for b in range(b_count):
                    calls.append(ConvCall(gemm_cache["fwd_g"], {
                        "w": ("weight", 0), "columns": (col_op, col_base + b * col_stride),
                        "y": ("result", (n0 + b) * res_elems)}))
        elif role == "transposed":
            # col[k, p] = W_gᵀ[k, f] @ dy[f, p]; with no im2col the image receives it directly
            if "t" not in gemm_cache:
                st = Gemm("w", "dy", "columns", kg, outp, og, True, False, kg, outp, outp, dt, batch=gr,
                          stride_a=og * kg, stride_b=og * outp, stride_c=kg * outp)
                gemm_cache["t"] = _gemm_kernel(names(f"k_{base}_gemm"), st, [
                    Buf("columns", dt, col_stride), bufs_w, Buf("dy", dt, res_elems)])
            for b in range(b_count):
                calls.append(ConvCall(gemm_cache["t"], {
                    "w": ("weight", 0), "dy": ("result", (n0 + b) * res_elems),
                    "columns": ("scratch", b * col_stride) if im2col else ("image", (n0 + b) * img_elems)}))
            if im2col:
                calls.append(ConvCall(col_kernel_for(b_count), {"columns": ("scratch", 0), "x": ("image", n0 * img_elems)}))
        else:
            # dW_g[f, k] (+)= dy[f, p] @ col[k, p]ᵀ, summed over images
            if im2col:
                calls.append(ConvCall(col_kernel_for(b_count), {"x": ("image", n0 * img_elems), "columns": ("scratch", 0)}))
            for b in range(b_count):
                beta = 0.0 if n0 + b == 0 else 1.0
                if beta not in gemm_cache:
                    st = Gemm("dy", "columns", "w", og, kg, outp, False, True, outp, outp, kg, dt, batch=gr,
                              stride_a=og * outp, stride_b=kg * outp, stride_c=og * kg, beta=beta)
                    gemm_cache[beta] = _gemm_kernel(names(f"k_{base}_gemm"), st, [
                        Buf("w", dt, g.filters * kg), Buf("dy", dt, res_elems), Buf("columns", dt, col_stride)])
                col_base = b * col_stride if im2col else (n0 + b) * img_elems
                calls.append(ConvCall(gemm_cache[beta], {"w": ("weight", 0), "dy": ("result", (n0 + b) * res_elems),
                                                         "columns": (col_op, col_base)}))
    return calls


def operand_values(node: Node) -> dict:
    """Which of the node's values plays each role: 'image', 'weight', 'result' -> ('in', k) or
    ('out', 0)."""
    role = CONV_ROLES[node.op]
    if role == "forward":
        return {"image": ("in", 0), "weight": ("in", 1), "result": ("out", 0)}
    if role == "transposed":
        return {"image": ("out", 0), "weight": ("in", 1), "result": ("in", 0)}
    return {"image": ("in", 1), "result": ("in", 0), "weight": ("out", 0)}


__all__ = ["conv_calls", "operand_values", "im2col_kernel", "col2im_kernel", "depthwise_kernel", "tap_range",
           "boxes", "ConvCall"]
