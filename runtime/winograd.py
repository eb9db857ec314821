"""3x3, stride-1 convolutions as Winograd F(2x2, 3x3): 16 small GEMMs instead of one with 2.25x
the multiplications.

Each 2x2 block of outputs (a tile) is computed from the 4x4 patch d of the padded image under
it (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A            (g: one 3x3 filter of one channel)

With U = G g Gᵀ (per filter and channel) and V = Bᵀ d B (per channel and tile) the sum over
channels is, for each of the 16 positions ξ of the 4x4 transformed tile, a matrix product
M[ξ] (filters x tiles) = U[ξ] (filters x channels) @ V[ξ] (channels x tiles). A convolution
becomes four kernels over the arena scratch:

1. the padded copy of the images (runtime/conv.pad_kernel, as im2col reads it);
2. the input transform: V[ξ, c, tile] from each patch, parallel over (image, channel);
3. the weight transform: U[ξ, f, c] from each 3x3 filter (per call: the weights are inputs
   of the program and may change between calls; it is 16 x filters x channels floats, cheap
   next to the product while channels are few, see `pays`);
4. one batched GEMM over the 16 positions, then the output transform Y = Aᵀ M A per tile,
   writing the result (the convolution's epilogue follows as for im2col).

Each transform is a fixed linear combination, written as adds and subtracts in the order
(rows, then columns) that shares the partial sums between outputs (LLVM merges the equal
expressions). Float32 error grows a little over direct summation (the transformed values mix
up to 16 inputs); tests bound it against the float64 reference.
"""
from __future__ import annotations

import math

from graphc.ops import scalar as S
from graphc.ops.fused import WINOGRAD_POINTS as POINTS, ConvGeometry, winograd_plane as plane, winograd_tiles as tiles

from .kernel_ir import Buf, Index, Kernel, Load, Loop, Store

# F(2x2, 3x3): m = 2 outputs, r = 3 taps, alpha = m + r - 1 = 4 points per axis
M_OUT, R, ALPHA = 2, 3, 4
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
AT = ((1, 1, 1, 0), (0, 1, -1, -1))
# rows of fewer tiles than this are transformed channels last (see channels_last)
CHANNELS_LAST_BELOW = 16
# (filter, channel) pairs per block of the weight transform: 256 x 9 floats staged, 9 KiB of L1
STAGE_PAIRS = 256


def _combo(terms, dtype):
    """sum(coef * expr) over nonzero coefficients, as adds/subtracts where coef is +-1."""
    out = None
    # a positive term first: b - a rather than -a + b
    for coef, e in sorted(terms, key=lambda t: t[0] <= 0):
        if coef == 0:
            continue
        if out is None:
            out = e if coef == 1 else (-e if coef == -1 else S.const(float(coef), dtype) * e)
        elif coef == 1:
            out = out + e
        elif coef == -1:
            out = out - e
        else:
            out = out + S.const(float(coef), dtype) * e
    return out if out is not None else S.const(0.0, dtype)


def _sandwich(left, right, x, dtype):
    """left @ x @ rightᵀ as expressions: rows first (t = left @ x), then columns, so the 
    partial sums t are shared by every output of a row."""
    t = [[_combo([(left[a][i], x[i][j]) for i in range(len(x))], dtype) for j in range(len(x[0]))]
         for a in range(len(left))]
    return [[_combo([(right[b][j], t[a][j]) for j in range(len(x[0]))], dtype) for b in range(len(right))]
            for a in range(len(left))]


def input_transform_kernel(name, g: ConvGeometry, images, xp="padded", v="v") -> Kernel:
    """v[ξ, c, (b, ty, tx)] = (Bᵀ d B)[ξ] with d = xp[b, c, 2ty:2ty+4, 2tx:2tx+4] (the padded
    images): parallel over channels, tiles along rows innermost."""
    dt = g.dtype
    ph, pw = (i + 2 * p for i, p in zip(g.in_size, g.pad))
    th, tw = tiles(g)
    t_img = th * tw
    t_all = t_img * images
    c = g.channels
    d = [[S.arg(i * ALPHA + j, dt) for j in range(ALPHA)] for i in range(ALPHA)]
    vv = _sandwich(BT, BT, d, dt)

    def stores(tx0):
        loads = tuple(Load(xp, Index((("b", c * ph * pw), ("c", ph * pw), ("ty", M_OUT * pw), ("tx", M_OUT)),
                                     i * pw + M_OUT * tx0 + j)) for i in range(ALPHA) for j in range(ALPHA))
        return [Store(v, Index((("b", t_img), ("c", t_all), ("ty", tw), ("tx", 1)),
                               (a * ALPHA + e) * plane(c * t_all) + tx0), vv[a][e], loads)
                for a in range(ALPHA) for e in range(ALPHA)]
    work = images * c * t_img * POINTS * 4
    loop = Loop("c", c, [Loop("b", images, _tile_rows(th, tw, stores))],
                parallel=work >= _parallel_work() and c > 1, independent=True)
    return Kernel(name, [Buf(v, dt, POINTS * plane(c * t_all)), Buf(xp, dt, images * c * ph * pw)], [loop], work)


def channels_last(g: ConvGeometry) -> bool:
    """Transform the inputs channels last (a transposing copy, then loads and stores along the
    channels) when a row has fewer than CHANNELS_LAST_BELOW tiles; else channels first, along
    the rows. Pad and input transform, us (one core pair, warm): 64 ch x 56 channels first
    40 / last 57; 128 x 28: 107 / 40; 256 x 14: 32 / 19."""
    return tiles(g)[1] < CHANNELS_LAST_BELOW


def zero_kernel(name, elems, dt, buf="padded") -> Kernel:
    """buf[0:elems] = 0 (the padded channels-last images' borders), in parallel."""
    loop = Loop("j", elems, [Store(buf, Index((("j", 1),)), S.const(0.0, dt), ())],
                parallel=elems >= _parallel_work(), independent=True)
    return Kernel(name, [Buf(buf, dt, elems)], [loop], elems)


def pad_channels_last_kernel(name, g: ConvGeometry, images, x="x", xp="padded") -> Kernel:
    """xp[b, r + pad, col + pad, c] = x[b, c, r, col]: the images, channels last, into the
    zeroed padded buffer (zero_kernel), parallel over image rows. The channel loop is innermost:
    its reads are a plane apart (gathers, from the hot output of the layer before), its writes
    contiguous."""
    dt = g.dtype
    h, w = g.in_size
    ph, pw = (i + 2 * p for i, p in zip(g.in_size, g.pad))
    c = g.channels
    dst = Index((("b", ph * pw * c), ("r", pw * c), ("col", c), ("c", 1)), (g.pad[0] * pw + g.pad[1]) * c)
    src = Index((("b", c * h * w), ("r", w), ("col", 1), ("c", h * w)))
    body = [Loop("b", images, [Loop("col", w, [Loop("c", c, [Store(xp, dst, S.arg(0, dt), (Load(x, src),))])])])]
    work = images * c * h * w
    loop = Loop("r", h, body, parallel=work >= _parallel_work() and h > 1, independent=True)
    return Kernel(name, [Buf(xp, dt, images * c * ph * pw), Buf(x, dt, images * c * h * w)], [loop], work)


def input_transform_channels_last_kernel(name, g: ConvGeometry, images, xp="padded", v="v") -> Kernel:
    """v[ξ, (b, ty, tx), c] = (Bᵀ d B)[ξ] with d = xp[b, 2ty:2ty+4, 2tx:2tx+4, c] (padded,
    channels last): channels innermost, so every load and store is contiguous and the loop as
    long as the channels, whatever the image's width (rows of 14 or 7 tiles vectorised into
    gathers in the channels-first form, 3-4x slower). Parallel over tile rows."""
    dt = g.dtype
    ph, pw = (i + 2 * p for i, p in zip(g.in_size, g.pad))
    th, tw = tiles(g)
    t_img = th * tw
    c = g.channels
    d = [[S.arg(i * ALPHA + j, dt) for j in range(ALPHA)] for i in range(ALPHA)]
    vv = _sandwich(BT, BT, d, dt)
    loads = tuple(Load(xp, Index((("b", ph * pw * c), ("ty", M_OUT * pw * c), ("tx", M_OUT * c), ("c", 1)),
                                 (i * pw + j) * c)) for i in range(ALPHA) for j in range(ALPHA))
    vplane = plane(c * t_img * images)
    stores = [Store(v, Index((("b", t_img * c), ("ty", tw * c), ("tx", c), ("c", 1)), (a * ALPHA + e) * vplane),
                    vv[a][e], loads) for a in range(ALPHA) for e in range(ALPHA)]
    work = images * c * t_img * POINTS * 4
    loop = Loop("ty", th, [Loop("b", images, [Loop("tx", tw, [Loop("c", c, stores)])])],
                parallel=work >= _parallel_work() and th > 1, independent=True)
    return Kernel(name, [Buf(v, dt, POINTS * vplane), Buf(xp, dt, images * c * ph * pw)], [loop], work)


def weight_transform_kernel(name, g: ConvGeometry, w="w", u="u", staged="staged") -> Kernel:
    """u[ξ, f, c] = (G w[f, c] Gᵀ)[ξ], in blocks of (filter, channel) pairs run in parallel:
    each block is first copied as it lies (a unit-stride stream) into `staged`, then
    transformed from there. Transforming straight from the weights reads them 9 floats apart
    per lane, which LLVM does with gathers: from memory (weights are cold each call) those ran
    at ~5 GB/s, 98 us for 128 x 128 pairs and 471 us for 256 x 256 (warm: 26 and 89); the
    staged block is in L1 when its gathers run."""
    dt = g.dtype
    pairs = g.filters * g.channels
    block = math.gcd(pairs, STAGE_PAIRS)
    taps = R * R
    x = [[S.arg(i * R + j, dt) for j in range(R)] for i in range(R)]
    uu = _sandwich(G, G, x, dt)
    copy = Loop("q", block * taps, [Store(staged, Index((("blk", block * taps), ("q", 1))), S.arg(0, dt),
                                          (Load(w, Index((("blk", block * taps), ("q", 1)))),))])
    loads = tuple(Load(staged, Index((("blk", block * taps), ("p", taps)), k)) for k in range(taps))
    stores = [Store(u, Index((("blk", block), ("p", 1)), (a * ALPHA + e) * plane(pairs)), uu[a][e], loads)
              for a in range(ALPHA) for e in range(ALPHA)]
    work = pairs * POINTS * 4
    loop = Loop("blk", pairs // block, [copy, Loop("p", block, stores)],
                parallel=work >= _parallel_work() and pairs > block, independent=True)
    return Kernel(name, [Buf(u, dt, POINTS * plane(pairs)), Buf(w, dt, pairs * taps),
                         Buf(staged, dt, pairs * taps)], [loop], work)


def output_transform_kernel(name, g: ConvGeometry, images, m="m", y="y") -> Kernel:
    """y[b, f, 2ty+i, 2tx+j] = (Aᵀ M A)[i, j] with M[ξ] = m[ξ, f, (b, ty, tx)]."""
    dt = g.dtype
    oh, ow = g.out_size
    th, tw = tiles(g)
    t_img = th * tw
    t_all = t_img * images
    f = g.filters
    mm = [[S.arg(a * ALPHA + e, dt) for e in range(ALPHA)] for a in range(ALPHA)]
    yy = _sandwich(AT, AT, mm, dt)

    def stores(tx0):
        loads = tuple(Load(m, Index((("b", t_img), ("f", t_all), ("ty", tw), ("tx", 1)),
                                    (a * ALPHA + e) * plane(f * t_all) + tx0))
                      for a in range(ALPHA) for e in range(ALPHA))
        return [Store(y, Index((("b", f * oh * ow), ("f", oh * ow), ("ty", M_OUT * ow), ("tx", M_OUT)),
                               i * ow + M_OUT * tx0 + j), yy[i][j], loads) for i in range(M_OUT) for j in range(M_OUT)]
    work = images * f * t_img * POINTS * 4
    loop = Loop("f", f, [Loop("b", images, _tile_rows(th, tw, stores))],
                parallel=work >= _parallel_work() and f > 1, independent=True)
    return Kernel(name, [Buf(y, dt, images * f * oh * ow), Buf(m, dt, POINTS * plane(f * t_all))], [loop], work)


def _tile_rows(th, tw, stores):
    """Loops over tile rows, then the tiles of a row in conv.vector_spans pieces (16 lanes,
    or 8 for rows of at most 17 tiles) so that LLVM vectorises each whole but one iteration;
    stores(tx0) gives the statements for tiles from tx0."""
    from .conv import vector_spans
    lanes = 16 if tw > 17 else 8
    return [Loop("ty", th, [Loop("tx", count, stores(start)) for start, count in vector_spans(tw, lanes)])]


def _parallel_work():
    from .conv import PARALLEL_WORK
    return PARALLEL_WORK


__all__ = ["channels_last", "input_transform_kernel", "input_transform_channels_last_kernel", "pad_channels_last_kernel",
           "zero_kernel", "weight_transform_kernel", "output_transform_kernel"]
