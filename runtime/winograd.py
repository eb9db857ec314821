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

from graphc.ops import scalar as S
from graphc.ops.fused import WINOGRAD_POINTS as POINTS, ConvGeometry, winograd_plane as plane, winograd_tiles as tiles

from .kernel_ir import Buf, Index, Kernel, Load, Loop, Store

# F(2x2, 3x3): m = 2 outputs, r = 3 taps, alpha = m + r - 1 = 4 points per axis
M_OUT, R, ALPHA = 2, 3, 4
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
AT = ((1, 1, 1, 0), (0, 1, -1, -1))


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


def weight_transform_kernel(name, g: ConvGeometry, w="w", u="u") -> Kernel:
    """u[ξ, f, c] = (G w[f, c] Gᵀ)[ξ], parallel over (filter, channel) pairs."""
    dt = g.dtype
    pairs = g.filters * g.channels
    x = [[S.arg(i * R + j, dt) for j in range(R)] for i in range(R)]
    loads = tuple(Load(w, Index((("p", R * R),), i * R + j)) for i in range(R) for j in range(R))
    uu = _sandwich(G, G, x, dt)
    stores = [Store(u, Index((("p", 1),), (a * ALPHA + e) * plane(pairs)), uu[a][e], loads)
              for a in range(ALPHA) for e in range(ALPHA)]
    work = pairs * POINTS * 4
    loop = Loop("p", pairs, stores, parallel=work >= _parallel_work(), independent=True)
    return Kernel(name, [Buf(u, dt, POINTS * plane(pairs)), Buf(w, dt, pairs * R * R)], [loop], work)


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


__all__ = ["input_transform_kernel", "weight_transform_kernel", "output_transform_kernel"]
