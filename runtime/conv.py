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

Padding never becomes a branch: the images are first copied into a zero-padded buffer in the
step's scratch (skipped without padding; Winograd's input transform resolves the padding
itself, see runtime/winograd.py), so im2col, col2im and the depthwise loop are each one
affine loop nest (taps outer, output rows inner: the innermost loop is a strided copy or
multiply-add along a row, which LLVM widens). One nest per kernel also keeps LLVM's work small:
an earlier form with a copy loop per tap and clipped box (no padded copy) made ResNet-18's 3x3
im2col kernels take ~0.5 s each to optimise; kernels are also named by their content, so the
convolutions of one geometry share one compiled function.

Which form per case:
- 1x1 convolutions (stride 1, no padding) skip im2col: the image already is the GEMM's B
  matrix, so an im2col would only add a full copy of the input.
- depthwise convolutions (one filter per channel) run a direct loop: im2col would copy
  taps x image and then do C GEMMs of a single row (GEMV speed); the direct loop reads the
  padded plane once per tap from cache and vectorises along output rows.
- float32 3x3 stride-1 convolutions with outputs of at least 14x14: Winograd F(4x4, 3x3) or
  F(2x2, 3x3) (runtime/winograd.py; ops.fused.uses_winograd says which), 4x / 2.25x fewer
  multiplications than im2col (ResNet-18 batch 1, 2 threads: 11.9 ms with im2col, 7.8 ms).
- everything else: im2col + one SGEMM per image (and group); where one image's columns would
  not stay in cache and a band of output rows still gives its GEMM MIN_BAND_COLUMNS columns
  (ResNet's 7x7 stem: 7.4 MB of columns), per band of rows instead (_band_rows; ResNet-18
  batch 1, 1 thread: the stem 4.7 -> 2.4 ms CPU, the network 7% less; GRAPHC_CONV_BAND_BYTES
  sets the band's column bytes, 0 turns bands off).

This module builds kernel IR only; the renderers turn it into code.
"""
from __future__ import annotations

import os

import dataclasses
import hashlib
import math

from graphc.ops import scalar as S
from graphc.ops.fused import (CONV_ROLES, ConvGeometry, conv_geometry, conv_scratch, uses_winograd, winograd_plane,
                              winograd_points, winograd_scratch)
from graphc.ops.graph import Node

from . import winograd
from .kernel_ir import Buf, Gemm, Index, Kernel, Load, Loop, Store, unique_bufs

# below this many scalar operations an im2col/col2im/direct kernel runs on one thread (see
# lower.PARALLEL_WORK; GRAPHC_CONV_PARALLEL_WORK overrides)
PARALLEL_WORK = int(os.environ.get("GRAPHC_CONV_PARALLEL_WORK", 1 << 17))
# fewer (image, channel) planes than this: im2col runs its output rows in parallel instead
FEW_PLANES = 8


def contiguous(shape) -> tuple:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def vector_spans(n: int, lanes: int) -> list:
    """[(start, count)] of loops covering range(n) for LLVM's vectoriser: range(n) itself when
    n <= lanes + 1, else one loop of m * lanes + 1 iterations and, if that leaves some, one of
    the last lanes + 1 (55 with 16 lanes: 0-48 and 38-54, 11 done twice). An innermost loop
    whose loads are strided (a window at stride 2, a Winograd patch) keeps at least one scalar
    iteration, so the vectoriser leaves exactly one at m * lanes + 1, but up to lanes - 1 (or
    a whole narrower vector's worth) at other counts. Only for loops whose iterations may run
    twice: each writes its own outputs from inputs nobody writes (see runtime/pool.py)."""
    if n <= lanes + 1:
        return [(0, n)]
    main = (n - 1) // lanes * lanes + 1
    return [(0, main)] + ([(n - lanes - 1, lanes + 1)] if main < n else [])


def _plane_loops(shape, vars_, body):
    for v, n in reversed(list(zip(vars_, shape))):
        body = [Loop(v, n, body)]
    return body


def _padded_size(g: ConvGeometry):
    return tuple(i + 2 * p for i, p in zip(g.in_size, g.pad))


def pad_kernel(name, g: ConvGeometry, images, x="x", xp="padded") -> Kernel:
    """xp = x with `pad` zeros around every spatial side, for `images` images: then no window
    read needs a bound check and im2col is one affine loop nest."""
    psz = _padded_size(g)
    pp, inp = math.prod(psz), math.prod(g.in_size)
    ivars = [f"i{d}" for d in range(len(psz))]
    pst, ist = contiguous(psz), contiguous(g.in_size)
    zero = Loop("j", pp, [Store(xp, Index((("bc", pp), ("j", 1))), S.const(0.0, g.dtype), ())])
    dst = Index((("bc", pp),) + tuple(zip(ivars, pst)), sum(p * st for p, st in zip(g.pad, pst)))
    src = Index((("bc", inp),) + tuple(zip(ivars, ist)))
    copy = _plane_loops(g.in_size, ivars, [Store(xp, dst, S.arg(0, g.dtype), (Load(x, src),))])
    n = images * g.channels
    loop = Loop("bc", n, [zero] + copy, parallel=n * pp >= PARALLEL_WORK and n > 1, independent=True)
    return Kernel(name, [Buf(xp, g.dtype, n * pp), Buf(x, g.dtype, n * inp)], [loop], n * pp)


def crop_kernel(name, g: ConvGeometry, images, xp="padded", x="x") -> Kernel:
    """The inverse of pad_kernel: x = the interior of xp (col2im accumulates in xp)."""
    psz = _padded_size(g)
    pp, inp = math.prod(psz), math.prod(g.in_size)
    ivars = [f"i{d}" for d in range(len(psz))]
    pst, ist = contiguous(psz), contiguous(g.in_size)
    src = Index((("bc", pp),) + tuple(zip(ivars, pst)), sum(p * st for p, st in zip(g.pad, pst)))
    dst = Index((("bc", inp),) + tuple(zip(ivars, ist)))
    n = images * g.channels
    body = _plane_loops(g.in_size, ivars, [Store(x, dst, S.arg(0, g.dtype), (Load(xp, src),))])
    loop = Loop("bc", n, body, parallel=n * inp >= PARALLEL_WORK and n > 1, independent=True)
    return Kernel(name, [Buf(x, g.dtype, n * inp), Buf(xp, g.dtype, n * pp)], [loop], n * inp)


def _window_nest(g: ConvGeometry, stmt_of, spans: bool = False, first_out_outside: bool = False):
    """Loops over kernel taps (outer) and output positions (inner, so the innermost loop runs
    along a row and vectorises): stmt_of(column index, image index, (column offset, image
    offset)) -> the statement, indices relative to the current (image, channel) plane `bc`.
    spans: a strided innermost axis runs in vector_spans pieces (statements that may run twice).
    first_out_outside: no loop over the first output axis (`o0`: the caller's)."""
    nd = len(g.kernel)
    kvars, ovars = [f"k{d}" for d in range(nd)], [f"o{d}" for d in range(nd)]
    psz = _padded_size(g)
    pst, ost, kst = contiguous(psz), contiguous(g.out_size), contiguous(g.kernel)
    outp = math.prod(g.out_size)
    col = tuple((k, st * outp) for k, st in zip(kvars, kst)) + tuple(zip(ovars, ost))
    img = tuple((o, s * st) for o, s, st in zip(ovars, g.stride, pst)) + \
        tuple((k, d * st) for k, d, st in zip(kvars, g.dilate, pst))
    sizes, names = tuple(g.kernel) + tuple(g.out_size), kvars + ovars
    if first_out_outside:
        sizes, names = sizes[:nd] + sizes[nd + 1:], names[:nd] + names[nd + 1:]
    if not (spans and g.stride[-1] > 1):
        return _plane_loops(sizes, names, [stmt_of(col, img, (0, 0))])
    inner = [Loop(ovars[-1], count, [stmt_of(col, img, (start, start * g.stride[-1]))])
             for start, count in vector_spans(g.out_size[-1], 64 // (4 if g.dtype == "float32" else 8))]
    return _plane_loops(sizes[:-1], names[:-1], inner)


def im2col_kernel(name, g: ConvGeometry, images, x="padded", col="columns", x_plane=None) -> Kernel:
    """col[(b, c, tap), p] = xp[b, c, p*stride + tap*dilate] over the padded images xp (the
    images themselves without padding); parallel over (image, channel) planes, or over output
    rows when there are fewer than FEW_PLANES planes. x_plane: elements between the source's
    planes when they are longer than g's (a band of rows of a larger image, see _band_rows)."""
    pp, outp = x_plane or math.prod(_padded_size(g)), math.prod(g.out_size)

    def stmt(ci, ii, off):
        return Store(col, Index((("bc", g.taps * outp),) + ci, off[0]), S.arg(0, g.dtype),
                     (Load(x, Index((("bc", pp),) + ii, off[1])),))
    n = images * g.channels
    work = n * g.taps * outp
    if n < FEW_PLANES and len(g.out_size) > 1 and g.out_size[0] >= FEW_PLANES:
        # few planes (an RGB stem's 3 split 2 + 1 over two threads): output rows in parallel
        inner = Loop("bc", n, _window_nest(g, stmt, spans=True, first_out_outside=True), independent=True)
        loop = Loop("o0", g.out_size[0], [inner], parallel=work >= PARALLEL_WORK, independent=True)
    else:
        loop = Loop("bc", n, _window_nest(g, stmt, spans=True), parallel=work >= PARALLEL_WORK and n > 1,
                    independent=True)
    x_size = (n - 1) * pp + math.prod(_padded_size(g))
    return Kernel(name, [Buf(col, g.dtype, images * g.col_elems), Buf(x, g.dtype, x_size)], [loop], work)


def col2im_kernel(name, g: ConvGeometry, images, col="columns", x="padded") -> Kernel:
    """xp[b, c, ...] = sum over taps and positions of col[(b, c, tap), p] landing there (the
    transpose of im2col) into the zeroed padded image; crop_kernel then takes the interior.
    Overlapping windows make this a read-modify-write, run in loop order."""
    pp, outp = math.prod(_padded_size(g)), math.prod(g.out_size)
    add = S.arg(0, g.dtype) + S.arg(1, g.dtype)

    def stmt(ci, ii, _off):
        dst = Index((("bc", pp),) + ii)
        return Store(x, dst, add, (Load(x, dst), Load(col, Index((("bc", g.taps * outp),) + ci))))
    zero = Loop("j", pp, [Store(x, Index((("bc", pp), ("j", 1))), S.const(0.0, g.dtype), ())])
    n = images * g.channels
    work = n * g.taps * outp
    loop = Loop("bc", n, [zero] + _window_nest(g, stmt), parallel=work >= PARALLEL_WORK and n > 1,
                independent=True)
    return Kernel(name, [Buf(x, g.dtype, n * pp), Buf(col, g.dtype, images * g.col_elems)], [loop], work)


def depthwise_kernel(name, g: ConvGeometry, x="padded", w="w", out="out") -> Kernel:
    """y[n, c, p] = sum over taps of w[c, tap] * xp[n, c, p*stride + tap*dilate]: per tap, one
    multiply-add pass over the (cache-resident) output plane, vectorised along its rows."""
    pp, outp = math.prod(_padded_size(g)), math.prod(g.out_size)
    c = g.channels
    fma = S.arg(0, g.dtype) + S.arg(1, g.dtype) * S.arg(2, g.dtype)
    kst = contiguous(g.kernel)

    def stmt(ci, ii, _off):
        taps = tuple(t for t in ci if t[0].startswith("k"))
        taps = tuple((v, st // outp) for v, st in taps)
        dst = Index((("c", outp), ("n", c * outp)) + tuple(t for t in ci if t[0].startswith("o")))
        return Store(out, dst, fma, (Load(out, dst), Load(w, Index((("c", g.taps),) + taps)),
                                     Load(x, Index((("c", pp), ("n", c * pp)) + ii))))
    del kst
    zero = Loop("j", outp, [Store(out, Index((("c", outp), ("n", c * outp), ("j", 1))), S.const(0.0, g.dtype), ())])
    work = g.batch * c * g.taps * outp * 2
    body = [Loop("n", g.batch, [zero] + _window_nest(g, stmt), independent=True)]
    loop = Loop("c", c, body, parallel=work >= PARALLEL_WORK and c > 1, independent=True)
    return Kernel(name, [Buf(out, g.dtype, g.batch * c * outp), Buf(w, g.dtype, c * g.taps),
                         Buf(x, g.dtype, g.batch * c * pp)], [loop], work)


def _gemm_kernel(name, stmt: Gemm, bufs) -> Kernel:
    k = Kernel("k", unique_bufs(bufs), [stmt], work=2 * stmt.m * stmt.n * stmt.k * stmt.batch)
    k.name = f"k_gemm_{hashlib.sha1(str(k).encode()).hexdigest()[:12]}"
    return k


@dataclasses.dataclass
class ConvCall:
    """One kernel of a convolution and how to bind it: buffer name -> (operand, element offset),
    operand being 'image', 'weight', 'result' (see operand_values) or 'scratch'."""
    kernel: Kernel
    operands: dict


def conv_calls(node: Node, names, epilogue=None) -> list:
    """The kernels of one convolution-family node, in order, with operand bindings:
    operands are 'image' (the forward convolution's input), 'weight', 'result' (its output:
    y, or dy for gradients) and 'scratch'. `names(base)` gives fresh kernel names.
    epilogue (a winograd.Epilogue, only where uses_winograd): applied by the output transform;
    its operands are bound under their buffer names as roles."""
    g = conv_geometry(node)
    role = CONV_ROLES[node.op]
    dt = g.dtype
    inp, outp = math.prod(g.in_size), math.prod(g.out_size)
    gr = g.groups
    og, kg = g.filters // gr, (g.channels // gr) * g.taps
    img_elems, res_elems = g.channels * inp, g.filters * outp
    base = "".join(ch if ch.isalnum() else "_" for ch in node.name)
    calls = []
    chunk, cols, padded = conv_scratch(node, g)
    pad_at = chunk * cols          # the padded images follow the columns in the scratch
    made = {}

    def kernel(kind, count, maker, *bufs):
        """One kernel per (kind, image count), named by its content: convolutions of the same
        geometry anywhere in the program share one compiled function."""
        if (kind, count) not in made:
            k = maker("k", g, count, *bufs)
            k.name = f"k_{kind}_{hashlib.sha1(str(k).encode()).hexdigest()[:12]}"
            made[(kind, count)] = k
        return made[(kind, count)]

    def pad_call(n0, count):
        return ConvCall(kernel("pad", count, pad_kernel, "x", "padded"),
                        {"x": ("image", n0 * img_elems), "padded": ("scratch", pad_at)})
    src = ("scratch", pad_at) if padded else None      # where windows are read from
    if role == "forward" and g.depthwise:
        k = kernel("depthwise", g.batch, lambda nm, gg, _n, *b: depthwise_kernel(nm, gg, *b), "x", "w", "y")
        calls = [pad_call(0, g.batch)] if padded else []
        return calls + [ConvCall(k, {"x": src or ("image", 0), "w": ("weight", 0), "y": ("result", 0)})]
    if role == "forward" and uses_winograd(node, g):
        return _winograd_calls(g, kernel, chunk, cols, padded, pad_at, names, base, epilogue,
                               None if winograd.folds() else pad_call)
    im2col = bool(cols)

    def col_kernel_for(count, n0):
        """The im2col (col2im) calls for `count` images from image n0: the last chunk may be
        shorter. Padding goes through the padded copy in the scratch."""
        window = src or ("image", n0 * img_elems)
        if role == "transposed":
            k = kernel("col2im", count, col2im_kernel, "columns", "x")
            out = [ConvCall(k, {"columns": ("scratch", 0), "x": window})]
            if padded:
                out.append(ConvCall(kernel("crop", count, crop_kernel, "padded", "x"),
                                    {"padded": ("scratch", pad_at), "x": ("image", n0 * img_elems)}))
            return out
        k = kernel("im2col", count, im2col_kernel, "x", "columns")
        return ([pad_call(n0, count)] if padded else []) + [ConvCall(k, {"x": window, "columns": ("scratch", 0)})]
    # columns of image b of a chunk: the scratch at b*col_elems, or the image itself (1x1)
    col_op, col_stride = ("scratch", g.col_elems) if im2col else ("image", img_elems)
    bufs_w = Buf("w", dt, g.filters * kg)
    gemm_cache = {}
    band = _band_rows(g) if role == "forward" and im2col and gr == 1 else None
    for n0 in range(0, g.batch, chunk):
        b_count = min(chunk, g.batch - n0)
        if band:
            if padded:
                calls.append(pad_call(n0, b_count))
            calls.extend(_banded_calls(g, band, n0, b_count, src is not None, pad_at, names, base))
            continue
        if role == "forward":
            if im2col:
                calls.extend(col_kernel_for(b_count, n0))
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
                calls.extend(col_kernel_for(b_count, n0))
        else:
            # dW_g[f, k] (+)= dy[f, p] @ col[k, p]ᵀ, summed over images
            if im2col:
                calls.extend(col_kernel_for(b_count, n0))
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
    if role not in ("forward", "transposed") and g.batch == 0:
        # an empty batch: dW is a sum over no images; a product over k = 0 with beta = 0 writes
        # its zeros (the loop above wrote nothing, and the buffer holds whatever it held)
        st = Gemm("dy", "columns", "w", og, kg, 0, False, True, 1, 1, kg, dt, batch=gr,
                  stride_a=0, stride_b=0, stride_c=og * kg, beta=0.0)
        k = _gemm_kernel(names(f"k_{base}_gemm"), st, [Buf("w", dt, g.filters * kg), Buf("dy", dt, 0),
                                                       Buf("columns", dt, 0)])
        calls.append(ConvCall(k, {"w": ("weight", 0), "dy": ("result", 0), "columns": ("result", 0)}))
    return calls


# GRAPHC_CONV_BAND_BYTES: im2col columns per band of output rows (0: no bands), and the fewest
# columns a band's GEMM may have (narrower ones would re-read the weights for too little work)
BAND_BYTES = 576 << 10
MIN_BAND_COLUMNS = 512


def _band_rows(g: ConvGeometry):
    """Output rows per band of a forward im2col convolution whose columns would not stay in
    cache, or None. ResNet's 7x7 stem writes 7.4 MB of columns (147 rows x 12544 positions)
    that its GEMM then reads back from memory; a band of 8 output rows (0.5 MB) is written and
    read while it is in L2 (8 rows, not 7: the band's im2col, with 3 planes, then runs its rows in
    parallel, see FEW_PLANES). Only where a band's GEMM keeps MIN_BAND_COLUMNS columns: each
    band reads all the weights again."""
    budget = int(os.environ.get("GRAPHC_CONV_BAND_BYTES", BAND_BYTES))
    if budget <= 0 or len(g.out_size) != 2:
        return None
    itemsize = 4 if g.dtype == "float32" else 8
    oh, ow = g.out_size
    rows = budget // max(1, g.col_rows * ow * itemsize)
    if rows >= oh or rows * ow < MIN_BAND_COLUMNS:
        return None
    return rows


def _banded_calls(g: ConvGeometry, rows, n0, count, padded, pad_at, names, base) -> list:
    """Per image and band of `rows` output rows: im2col of the band (the input rows under it,
    read in place from the padded copy or the image) into the scratch, then its GEMM into the
    band's columns of the result (ldc: the whole output plane)."""
    dt = g.dtype
    (oh, ow), (s0, _), (kh, _), (d0, _) = g.out_size, g.stride, g.kernel, g.dilate
    width = _padded_size(g)[1]
    plane = math.prod(_padded_size(g))
    img_elems, outp = g.channels * math.prod(g.in_size), oh * ow
    made, calls = {}, []
    for b in range(count):
        for r0 in range(0, oh, rows):
            n_rows = min(rows, oh - r0)
            if n_rows not in made:
                gb = dataclasses.replace(g, batch=1, in_size=((n_rows - 1) * s0 + (kh - 1) * d0 + 1, width),
                                         out_size=(n_rows, ow), pad=(0, 0))
                k = im2col_kernel("k", gb, 1, "x", "columns", x_plane=plane)
                k.name = f"k_im2col_{hashlib.sha1(str(k).encode()).hexdigest()[:12]}"
                n = n_rows * ow
                st = Gemm("w", "columns", "y", g.filters, n, g.col_rows, False, False, g.col_rows, n, outp, dt)
                gk = _gemm_kernel(names(f"k_{base}_gemm"), st, [
                    Buf("y", dt, (g.filters - 1) * outp + n), Buf("w", dt, g.filters * g.col_rows),
                    Buf("columns", dt, g.col_rows * n)])
                made[n_rows] = (k, gk)
            k, gk = made[n_rows]
            first = r0 * s0 * width
            x = ("scratch", pad_at + b * plane * g.channels + first) if padded else \
                ("image", (n0 + b) * img_elems + first)
            calls.append(ConvCall(k, {"x": x, "columns": ("scratch", 0)}))
            calls.append(ConvCall(gk, {"w": ("weight", 0), "columns": ("scratch", 0),
                                       "y": ("result", (n0 + b) * g.filters * outp + r0 * ow)}))
    return calls


def _winograd_calls(g: ConvGeometry, kernel, chunk, cols, padded, pad_at, names, base, epilogue=None,
                    pad_call=None) -> list:
    """Winograd F(m x m, 3x3) (runtime/winograd.py) per chunk of images: transform the inputs
    (read in place, the padding resolved by the transform), the products as one batched GEMM,
    transform back into the result, applying the epilogue if given. The weights are transformed
    once per call, before the first chunk. Scratch: [v | m] per chunk, the padded images' room
    (where, with padding, the input transform splits the padded images by column phase), then
    (shared by the chunks) u, the weights' staging copy, the output transform's tiles and the
    input transform's column phases without padding. pad_call: GRAPHC_WINOGRAD_FOLD=0's form,
    a padded copy first, which the transform reads as an image without padding."""
    dt = g.dtype
    g_in = g
    if pad_call and padded:
        g_in = dataclasses.replace(g, in_size=_padded_size(g), pad=(0,) * len(g.pad))
    fixed = winograd_scratch(g, 0)
    at = {}
    offset = chunk * (cols + padded)
    for key in ("u", "staged", "tiled", "phases"):
        at[key] = ("scratch", offset)
        offset += fixed[key]
    calls = [ConvCall(kernel("wgw", 1, lambda nm, gg, _n, *b: winograd.weight_transform_kernel(nm, gg, *b),
                             "w", "u", "staged"), {"w": ("weight", 0), "u": at["u"], "staged": at["staged"]})]
    img_elems, res_elems = g.channels * math.prod(g.in_size), g.filters * math.prod(g.out_size)
    gemms = {}
    for n0 in range(0, g.batch, chunk):
        count = min(chunk, g.batch - n0)
        sizes = winograd_scratch(g, count)
        m_at = sizes["v"]
        if g_in is not g:
            calls.append(pad_call(n0, count))
        wgin = kernel("wgin", count, lambda nm, _g, n, *b: winograd.input_transform_kernel(nm, g_in, n, *b),
                      "x", "v", "phases")
        calls.append(ConvCall(wgin,
                              {"x": ("scratch", pad_at) if g_in is not g else ("image", n0 * img_elems),
                               "v": ("scratch", 0),
                               "phases": ("scratch", pad_at) if any(g_in.pad) else at["phases"]}))
        t = math.prod(winograd.tiles(g)) * count
        if count not in gemms:
            # M[ξ] (filters x tiles) = U[ξ] (filters x channels) @ V[ξ] (channels x tiles)
            st = Gemm("u", "v", "m", g.filters, t, g.channels, False, False, g.channels, t, t, dt,
                      batch=winograd_points(g), stride_a=winograd_plane(g.filters * g.channels),
                      stride_b=winograd_plane(g.channels * t), stride_c=winograd_plane(g.filters * t))
            gemms[count] = _gemm_kernel(names(f"k_{base}_gemm"), st, [
                Buf("m", dt, sizes["m"]), Buf("u", dt, fixed["u"]), Buf("v", dt, sizes["v"])])
        calls.append(ConvCall(gemms[count], {"u": at["u"], "v": ("scratch", 0), "m": ("scratch", m_at)}))
        out = kernel("wgout", count,
                     lambda nm, gg, n, *b: winograd.output_transform_kernel(nm, gg, n, *b, epilogue=epilogue),
                     "m", "y", "tiled")
        ep = {buf: (buf, n0 * st[0]) for buf, _dt, st in (epilogue.operands if epilogue else ())}
        calls.append(ConvCall(out, {"m": ("scratch", m_at), "y": ("result", n0 * res_elems), "tiled": at["tiled"],
                                    **ep}))
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


__all__ = ["conv_calls", "operand_values", "vector_spans", "pad_kernel", "crop_kernel", "im2col_kernel", "col2im_kernel",
           "depthwise_kernel", "ConvCall"]
