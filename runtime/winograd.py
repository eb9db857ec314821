"""3x3, stride-1 convolutions as Winograd F(4x4, 3x3) or F(2x2, 3x3): 36 (16) small GEMMs
instead of one im2col GEMM with 4x (2.25x) the multiplications.

Each m x m block of outputs (a tile) is computed from the (m+2) x (m+2) patch d of the padded
image under it (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A            (g: one 3x3 filter of one channel)

With U = G g Gᵀ (per filter and channel) and V = Bᵀ d B (per channel and tile) the sum over
channels is, for each point ξ of the transformed tile, a matrix product M[ξ] (filters x tiles)
= U[ξ] (filters x channels) @ V[ξ] (channels x tiles). A convolution becomes:

1. the padded copy of the images (runtime/conv.pad_kernel, as for im2col);
2. the input transform: V[ξ] from each patch, a row of tiles at a time through a
   de-interleaved copy of its image rows (see input_transform_kernel);
3. the weight transform: U[ξ] from each 3x3 filter (per call: the weights are inputs of the
   program and may change between calls; it writes points x filters x channels floats, cheap
   next to the product while channels are few, see ops.fused.WINOGRAD_MAX_PAIRS);
4. one batched GEMM over the points (one pool dispatch for all of them where nothing is
   packed up front, gemm_plan.Plan.one_dispatch);
5. the output transform Y = Aᵀ M A per tile, writing the result (the convolution's epilogue
   follows as for im2col).

ResNet-18 at batch 1 (bench W4), GRAPHC_WINOGRAD=0 / 2 / 4 in one process, alternating:
11.9 / 9.9 / 8.9 ms (medians of 25 rounds, 2 threads, a noisy machine).

F(4x4) where the output sides divide by 4 (ops.fused.winograd_tile). Each transform is a
fixed linear combination, written as adds and subtracts in the order (rows, then columns)
that shares the partial sums between outputs (LLVM merges the equal expressions). Float32
error grows over direct summation, as the transformed values mix up to 36 inputs with
coefficients up to 8: relative to the largest output, ~1e-6 for F(2x2) and ~1e-5 for F(4x4)
over 64-128 channels (cuDNN and oneDNN make the same trade); tests bound it against the
float64 reference. GRAPHC_WINOGRAD=2 keeps F(2x2), =0 turns Winograd off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from graphc.ops import scalar as S
from graphc.ops.fused import ConvGeometry, winograd_plane as plane, winograd_tile as tile, winograd_tiles as tiles

from .kernel_ir import Buf, Index, Kernel, Load, Loop, Store


@dataclass(frozen=True)
class Variant:
    """F(m x m, 3x3): Bᵀ (alpha x alpha), G (alpha x 3), Aᵀ (m x alpha), alpha = m + 2."""
    m: int
    bt: tuple
    g: tuple
    at: tuple

    @property
    def alpha(self) -> int:
        return self.m + R - 1

    @property
    def points(self) -> int:
        return self.alpha ** 2


R = 3
# Lavin & Gray's matrices; F(2x2) interpolates at 0, 1, -1 and infinity, F(4x4) at 0, 1, -1,
# 2, -2 and infinity
F2 = Variant(2, ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
             ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
             ((1, 1, 1, 0), (0, 1, -1, -1)))
F4 = Variant(4, ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
                 (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
             ((1 / 4, 0.0, 0.0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
              (1 / 24, -1 / 12, 1 / 6), (0.0, 0.0, 1.0)),
             ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)))


def variant(g: ConvGeometry) -> Variant:
    return F4 if tile(g) == 4 else F2


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


def input_transform_kernel(name, g: ConvGeometry, images, xp="padded", v="v", phases="phases") -> Kernel:
    """v[ξ, c, (b, ty, tx)] = (Bᵀ d B)[ξ] with d = xp[b, c, m*ty:m*ty+alpha, m*tx:m*tx+alpha],
    a row of tiles at a time: its alpha image rows are first split by column phase into
    `phases` (per channel: [row i, phase r, col] = xp[.., m*ty+i, m*col+r], a de-interleaving copy
    that LLVM turns into shuffles), from which every patch column is a contiguous run (column
    q*m + r of tile tx is phase r at tx + q). Read straight from the image, the patch loads are
    m apart and vectorised into gathers on rows of fewer than ~16 tiles."""
    wv = variant(g)
    m_out, alpha, pts = wv.m, wv.alpha, wv.points
    dt = g.dtype
    ph, pw = (i + 2 * p for i, p in zip(g.in_size, g.pad))
    th, tw = tiles(g)
    t_img = th * tw
    t_all = t_img * images
    c = g.channels
    run = tw + 1                                   # phases hold tw + 1 columns (q = 1 reaches tx + 1)
    per_c = alpha * m_out * run
    reach = alpha - m_out                          # phases read at tx + 1: r < reach
    row0 = (("b", c * ph * pw), ("c", ph * pw), ("ty", m_out * pw))

    def split(x0, rs):
        return [Store(phases, Index((("c", per_c), ("i", m_out * run), ("col", 1)), r * run + x0), S.arg(0, dt),
                      (Load(xp, Index(row0 + (("i", pw), ("col", m_out)), m_out * x0 + r)),)) for r in rs]
    # per row i (one interleaved group per inner loop: LLVM shuffles it at any length, while a
    # loop of all alpha rows' groups stayed scalar or gathered below ~16 tiles, and unrolled by
    # hand over the rows it took LLVM 0.6 s to optimise) columns 0..tw-1 of every phase, then
    # column tw of the phases read one tile on (the last tile's patch ends there; the other
    # phases' column tw would lie past the image's row)
    body = [Loop("i", alpha, [Loop("col", tw, split(0, range(m_out))), Loop("col", 1, split(tw, range(reach)))])]
    d = [[S.arg(i * alpha + j, dt) for j in range(alpha)] for i in range(alpha)]
    vv = _sandwich(wv.bt, wv.bt, d, dt)
    loads = tuple(Load(phases, Index((("c", per_c), ("tx", 1)), (i * m_out + j % m_out) * run + j // m_out))
                  for i in range(alpha) for j in range(alpha))
    body.append(Loop("tx", tw, [Store(v, Index((("b", t_img), ("c", t_all), ("ty", tw), ("tx", 1)),
                                               (a * alpha + e) * plane(c * t_all)), vv[a][e], loads)
                                for a in range(alpha) for e in range(alpha)]))
    work = images * c * t_img * pts * 4
    loop = Loop("c", c, [Loop("b", images, [Loop("ty", th, body)])],
                parallel=work >= _parallel_work() and c > 1, independent=True)
    return Kernel(name, [Buf(v, dt, pts * plane(c * t_all)), Buf(xp, dt, images * c * ph * pw),
                         Buf(phases, dt, c * per_c)], [loop], work)


def weight_transform_kernel(name, g: ConvGeometry, w="w", u="u", staged="staged") -> Kernel:
    """u[ξ, f, c] = (G w[f, c] Gᵀ)[ξ], in blocks of (filter, channel) pairs run in parallel:
    each block is first copied as it lies (a unit-stride stream) into `staged`, then
    transformed from there. Transforming straight from the weights reads them 9 floats apart
    per lane, which LLVM does with gathers: from memory (weights are cold each call) those ran
    at ~5 GB/s, 98 us for 128 x 128 pairs and 471 us for 256 x 256 (warm: 26 and 89); the
    staged block is in L1 when its gathers run."""
    wv = variant(g)
    alpha, pts = wv.alpha, wv.points
    dt = g.dtype
    pairs = g.filters * g.channels
    block = math.gcd(pairs, STAGE_PAIRS)
    taps = R * R
    x = [[S.arg(i * R + j, dt) for j in range(R)] for i in range(R)]
    uu = _sandwich(wv.g, wv.g, x, dt)
    copy = Loop("q", block * taps, [Store(staged, Index((("blk", block * taps), ("q", 1))), S.arg(0, dt),
                                          (Load(w, Index((("blk", block * taps), ("q", 1)))),))])
    loads = tuple(Load(staged, Index((("blk", block * taps), ("p", taps)), k)) for k in range(taps))
    stores = [Store(u, Index((("blk", block), ("p", 1)), (a * alpha + e) * plane(pairs)), uu[a][e], loads)
              for a in range(alpha) for e in range(alpha)]
    work = pairs * pts * 4
    loop = Loop("blk", pairs // block, [copy, Loop("p", block, stores)],
                parallel=work >= _parallel_work() and pairs > block, independent=True)
    return Kernel(name, [Buf(u, dt, pts * plane(pairs)), Buf(w, dt, pairs * taps),
                         Buf(staged, dt, pairs * taps)], [loop], work)


def output_transform_kernel(name, g: ConvGeometry, images, m="m", y="y", tiled="tiled") -> Kernel:
    """y[b, f, m*ty+i, m*tx+j] = (Aᵀ M A)[i, j] with M[ξ] = m[ξ, f, (b, ty, tx)], per filter and
    image in two loops: the transform over all its tiles into `tiled` ([i, j, tile]: every load
    and store along the tiles, one long loop), then interleaved into the result, an output row
    per inner loop. Stored straight into the result, a row of tiles' stores are m apart, which
    LLVM vectorised into scatters (0.15 ms for ResNet's 64 x 56 x 56 with F(4x4)); per row of
    tiles, the transform's loops of 7 or 14 were unrolled and took LLVM 0.2 s to compile."""
    wv = variant(g)
    m_out, alpha, pts = wv.m, wv.alpha, wv.points
    dt = g.dtype
    oh, ow = g.out_size
    th, tw = tiles(g)
    t_img = th * tw
    t_all = t_img * images
    f = g.filters
    mm = [[S.arg(a * alpha + e, dt) for e in range(alpha)] for a in range(alpha)]
    yy = _sandwich(wv.at, wv.at, mm, dt)
    per_f = m_out * m_out * t_img                  # one filter's tiles of one image in `tiled`
    loads = tuple(Load(m, Index((("b", t_img), ("f", t_all), ("tile", 1)), (a * alpha + e) * plane(f * t_all)))
                  for a in range(alpha) for e in range(alpha))
    transform = Loop("tile", t_img, [Store(tiled, Index((("f", per_f), ("tile", 1)), (i * m_out + j) * t_img), yy[i][j],
                                        loads) for i in range(m_out) for j in range(m_out)])
    interleave = [Store(y, Index((("b", f * oh * ow), ("f", oh * ow), ("ty", m_out * ow), ("i", ow), ("tx", m_out)),
                                 j), S.arg(0, dt),
                        (Load(tiled, Index((("f", per_f), ("i", m_out * t_img), ("ty", tw), ("tx", 1)), j * t_img)),))
                  for j in range(m_out)]
    body = [transform, Loop("ty", th, [Loop("i", m_out, [Loop("tx", tw, interleave)])])]
    work = images * f * t_img * pts * 4
    loop = Loop("f", f, [Loop("b", images, body)], parallel=work >= _parallel_work() and f > 1, independent=True)
    return Kernel(name, [Buf(y, dt, images * f * oh * ow), Buf(m, dt, pts * plane(f * t_all)),
                         Buf(tiled, dt, f * per_f)], [loop], work)


def _parallel_work():
    from .conv import PARALLEL_WORK
    return PARALLEL_WORK




__all__ = ["F2", "F4", "Variant", "variant", "input_transform_kernel", "weight_transform_kernel",
           "output_transform_kernel"]
