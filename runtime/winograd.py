"""3x3, stride-1 convolutions as Winograd F(4x4, 3x3) or F(2x2, 3x3): 36 (16) small GEMMs
instead of one im2col GEMM with 4x (2.25x) the multiplications.

Each m x m block of outputs (a tile) is computed from the (m+2) x (m+2) patch d of the padded
image under it (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A            (g: one 3x3 filter of one channel)

With U = G g Gᵀ (per filter and channel) and V = Bᵀ d B (per channel and tile) the sum over
channels is, for each point ξ of the transformed tile, a matrix product M[ξ] (filters x tiles)
= U[ξ] (filters x channels) @ V[ξ] (channels x tiles). A convolution becomes:

1. the input transform: V[ξ] from each patch, through a copy of the image split by column
   phase, read from the unpadded images with the zero padding stored by that copy (rows of
   padding and edge columns resolved when the kernel is built, see input_transform_kernel):
   one pass over the input where a padded copy and a split of its rows took two;
2. the weight transform: U[ξ] from each 3x3 filter (per call: the weights are inputs of the
   program and may change between calls; it writes points x filters x channels floats, cheap
   next to the product while channels are few, see ops.fused.WINOGRAD_MAX_PAIRS);
3. one batched GEMM over the points (one pool dispatch for all of them where nothing is
   packed up front, gemm_plan.Plan.one_dispatch);
4. the output transform Y = Aᵀ M A per tile, writing the result with a fused convolution's
   elementwise epilogue (bias, folded BatchNorm's scale and shift, residual add, activation)
   applied as it stores (Epilogue), so the output is written once.

Folding the padding and the epilogue in (GRAPHC_WINOGRAD_FOLD=0 restores the padded copy and
the epilogue pass) saved, per convolution with bias + residual + relu at batch 1, one thread,
CPU time: 64 x 56 x 56 0.97 -> 0.85 ms, 128 x 28 x 28 0.79 -> 0.75 ms, 256 x 14 x 14 1.15 ->
1.13 ms; ResNet-18's compile 0.90 -> 0.96 s.

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
import os
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


def folds() -> bool:
    """GRAPHC_WINOGRAD_FOLD: 1 (the default) resolves the padding in the input transform and
    applies a fused convolution's epilogue in the output transform; 0 pads into a copy first
    and runs the epilogue as a pass after (the earlier form, kept for A/B measurements)."""
    return os.environ.get("GRAPHC_WINOGRAD_FOLD", "1").strip().lower() not in ("0", "off", "false")


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


def input_transform_kernel(name, g: ConvGeometry, images, x="x", v="v", phases="phases") -> Kernel:
    """v[ξ, c, (b, ty, tx)] = (Bᵀ d B)[ξ] with d the alpha x alpha patch of the zero-padded image
    at (m*ty, m*tx), read from the unpadded images x through a copy split by column phase
    (`phases`, per row: phase r holds padded[.., row, m*col + r] for col < tw, and col = tw too
    where r < alpha - m: exactly a padded row's width), from which every patch column is a
    contiguous run (column q*m + r of tile tx is phase r at tx + q). The copy is a
    de-interleaving one that LLVM turns into shuffles; read straight from the image, the patch
    loads are m apart and vectorised into gathers on rows of fewer than ~16 tiles.

    With padding, `phases` holds each whole padded image, split (phases_elems: the room of the
    padded copy it replaces, the convolution's scratch), written in one pass per (image,
    channel) with the zeros stored where a padded position lies outside the image: the rows of
    padding as rows of zeros, and per row the columns where every phase lies inside as one
    loop, the few edge columns each on their own, so no loop holds a bound check, and the
    transform is one loop nest over all tiles. (A padded copy, then the split of its rows per
    row of tiles, wrote each input 2.5 times.) Without padding it holds the alpha rows of
    one row of tiles per channel, refilled per row of tiles."""
    wv = variant(g)
    m_out, alpha, pts = wv.m, wv.alpha, wv.points
    dt = g.dtype
    hh, ww = g.in_size
    p0, p1 = g.pad
    th, tw = tiles(g)
    t_img = th * tw
    t_all = t_img * images
    c = g.channels
    reach = alpha - m_out                          # phases read at tx + 1 (q = 1): r < reach
    width = m_out * tw + reach                     # one split row: the padded row's width
    start = [r * tw + min(r, reach) for r in range(m_out)]
    whole = bool(p0 or p1)
    rows = hh + 2 * p0 if whole else alpha
    per_c = rows * width
    base = (("b", c * per_c), ("c", per_c)) if whole else (("c", per_c),)
    row_ty = () if whole else (("ty", m_out * ww),)     # a row of tiles' rows, refilled per ty
    zero = S.const(0.0, dt)

    def inside_col(col, r):
        return 0 <= m_out * col + r - p1 < ww

    def phase_store(i0, col0, r, inside):
        """phases[.., i0 + i, phase r, col0 + col] from image row i0 + i - p0 (+ m*ty without
        padding), column m*(col0 + col) + r - p1; zero outside the image."""
        dst = Index(base + (("i", width), ("col", 1)), i0 * width + start[r] + col0)
        if not inside:
            return Store(phases, dst, zero, ())
        src = Index((("b", c * hh * ww), ("c", hh * ww)) + row_ty + (("i", ww), ("col", m_out)),
                    (i0 - p0) * ww + m_out * col0 + r - p1)
        return Store(phases, dst, S.arg(0, dt), (Load(x, src),))

    # columns 0..tw-1 of every phase, then column tw of the phases read one tile on
    cols = [(col, range(m_out if col < tw else reach)) for col in range(tw + 1)]
    full = [col for col, rs in cols[:tw] if all(inside_col(col, r) for r in rs)]
    lo, hi = (full[0], full[-1] + 1) if full else (0, 0)    # contiguous: the image is one interval
    i0, n_rows = (p0, hh) if whole else (0, alpha)
    # per row i, one interleaved group per inner loop (LLVM shuffles it at any length, while a
    # loop of all rows' groups stayed scalar or gathered below ~16 tiles), then the edge columns
    row = []
    if hi > lo:
        row.append(Loop("col", hi - lo, [phase_store(i0, lo, r, True) for r in range(m_out)]))
    for col, rs in cols:
        if not lo <= col < hi:
            row.append(Loop("col", 1, [phase_store(i0, col, r, inside_col(col, r)) for r in rs]))
    copy = [Loop("i", n_rows, row)]
    for z0, nz in ((0, i0), (i0 + n_rows, rows - i0 - n_rows)):
        if nz > 0:
            copy.append(Loop("i", nz, [Loop("col", width, [
                Store(phases, Index(base + (("i", width), ("col", 1)), z0 * width), zero, ())])]))

    d = [[S.arg(i * alpha + j, dt) for j in range(alpha)] for i in range(alpha)]
    vv = _sandwich(wv.bt, wv.bt, d, dt)
    tile_row = (("ty", m_out * width),) if whole else ()
    loads = tuple(Load(phases, Index(base + tile_row + (("tx", 1),), i * width + start[j % m_out] + j // m_out))
                  for i in range(alpha) for j in range(alpha))
    transform = Loop("tx", tw, [Store(v, Index((("b", t_img), ("c", t_all), ("ty", tw), ("tx", 1)),
                                               (a * alpha + e) * plane(c * t_all)), vv[a][e], loads)
                                for a in range(alpha) for e in range(alpha)])
    body = copy + [Loop("ty", th, [transform])] if whole else [Loop("ty", th, copy + [transform])]
    work = images * c * t_img * pts * 4
    loop = Loop("c", c, [Loop("b", images, body)], parallel=work >= _parallel_work() and c > 1, independent=True)
    return Kernel(name, [Buf(v, dt, pts * plane(c * t_all)), Buf(x, dt, images * c * hh * ww),
                         Buf(phases, dt, phases_elems(g, images))], [loop], work)


def phases_elems(g: ConvGeometry, images) -> int:
    """Elements of input_transform_kernel's `phases`: with padding, the images' padded copy's
    (room the convolution's scratch holds for it); without, alpha split rows per channel."""
    th, tw = tiles(g)
    wv = variant(g)
    width = wv.m * tw + wv.alpha - wv.m
    if any(g.pad):
        return images * g.channels * (g.in_size[0] + 2 * g.pad[0]) * width
    return g.channels * wv.alpha * width


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


@dataclass(frozen=True)
class Epilogue:
    """The elementwise epilogue of a `_fused_conv` (bias, BatchNorm folded into a bias, a
    residual add, an activation), applied by the output transform as it stores each result
    instead of by a pass over the output after it: `expr`'s arg k (k < len(operands)) is
    operand k, arg len(operands) the convolution's value. An operand is (buffer name, dtype,
    element strides along the output's (image, filter, row, column) axes: 0 where broadcast)."""
    expr: object
    operands: tuple

    def loads(self, index_of) -> tuple:
        return tuple(Load(buf, index_of(st)) for buf, _dt, st in self.operands)

    def bufs(self, images, g: ConvGeometry) -> list:
        ext = (images, g.filters) + tuple(g.out_size)
        return [Buf(buf, dt, sum((n - 1) * s for n, s in zip(ext, st)) + 1) for buf, dt, st in self.operands]


def output_transform_kernel(name, g: ConvGeometry, images, m="m", y="y", tiled="tiled",
                            epilogue: Epilogue | None = None) -> Kernel:
    """y[b, f, m*ty+i, m*tx+j] = (Aᵀ M A)[i, j] with M[ξ] = m[ξ, f, (b, ty, tx)], per filter and
    image in two loops: the transform over all its tiles into `tiled` ([i, j, tile]: every load
    and store along the tiles, one long loop), then interleaved into the result, an output row
    per inner loop, through the epilogue if one is given (its operands read at the result's
    index). Stored straight into the result, a row of tiles' stores are m apart, which
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

    def out_index(st, j):
        """Element (b, f, m*ty+i, m*tx+j) of a tensor with strides st over the output's axes."""
        sb, sf, sh, sw = st
        return Index((("b", sb), ("f", sf), ("ty", m_out * sh), ("i", sh), ("tx", m_out * sw)), j * sw)
    value = S.arg(0, dt) if epilogue is None else epilogue.expr
    interleave = [Store(y, out_index((f * oh * ow, oh * ow, ow, 1), j), value,
                        (epilogue.loads(lambda st: out_index(st, j)) if epilogue else ()) +
                        (Load(tiled, Index((("f", per_f), ("i", m_out * t_img), ("ty", tw), ("tx", 1)), j * t_img)),))
                  for j in range(m_out)]
    body = [transform, Loop("ty", th, [Loop("i", m_out, [Loop("tx", tw, interleave)])])]
    work = images * f * t_img * pts * 4
    loop = Loop("f", f, [Loop("b", images, body)], parallel=work >= _parallel_work() and f > 1, independent=True)
    return Kernel(name, [Buf(y, dt, images * f * oh * ow), Buf(m, dt, pts * plane(f * t_all)),
                         Buf(tiled, dt, f * per_f)] + (epilogue.bufs(images, g) if epilogue else []), [loop], work)


def _parallel_work():
    from .conv import PARALLEL_WORK
    return PARALLEL_WORK




__all__ = ["F2", "F4", "Epilogue", "Variant", "folds", "variant", "input_transform_kernel", "phases_elems",
           "weight_transform_kernel", "output_transform_kernel"]
