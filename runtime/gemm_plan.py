"""When and how graphc's own GEMM (gemm_kernel.py) runs: the host's blocking (`Geometry`), the
`GRAPHC_GEMM` switch, the rule that picks it over OpenBLAS (`auto_takes`, with the
measurements behind it) and the per-GEMM `Plan` (tiles, packed sizes, scratch). Plain data and
arithmetic: gemm_kernel.py turns a Plan into LLVM IR.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from .kernel_ir import Gemm

VERSION = "gemm12"          # bump with any change to the generated code or to auto_takes: part of the cache key
KU = 4                      # k-loop unroll of the microkernel; packed K is a multiple of it
MAX_PACK_FLOATS = 1 << 24   # 64 MiB of packed panels per GEMM at most; larger ones use OpenBLAS


@dataclass(frozen=True)
class Geometry:
    """Register and cache blocking. lanes: floats per vector register; the microkernel is
    mr rows x nv vectors; kc/mc/nc: cache blocks (mc a multiple of mr, nc of nr)."""
    lanes: int
    mr: int
    nv: int
    kc: int
    mc: int
    nc: int

    @property
    def nr(self) -> int:
        return self.nv * self.lanes

    def __str__(self):
        return f"{self.mr}x{self.nr}/{self.lanes} kc{self.kc} mc{self.mc} nc{self.nc}"


# 8 x 48: 24 accumulators + 3 B vectors + a broadcast in 32 zmm, 11 loads per 24 FMAs. KC from
# 128 to 576 measured within noise (one thread, 64x576x3136 / 256x1152x196 / 256x784x512), 256
# keeps a kc x MR slice of A (8 KiB) in L1 and a kc x NC block of B (384 KiB) in the 1 MiB L2.
# AVX2 (6 x 16 in 16 ymm) is the usual Haswell blocking, checked for correctness, not timed here.
AVX512 = Geometry(lanes=16, mr=8, nv=3, kc=256, mc=64, nc=384)
AVX2 = Geometry(lanes=8, mr=6, nv=2, kc=256, mc=72, nc=256)


@functools.cache
def host_geometry():
    """The blocking for this host's vector unit, or None (no FMA vectors: OpenBLAS only)."""
    try:
        import llvmlite.binding as llvm
        feats = llvm.get_host_cpu_features()
    except Exception:
        return None
    g = None
    if feats.get("avx512f") and feats.get("fma"):
        g = AVX512
    elif feats.get("avx2") and feats.get("fma"):
        g = AVX2
    if g is None:
        return None
    over = {k: int(os.environ[f"GRAPHC_GEMM_{k.upper()}"]) for k in ("kc", "mc", "nc")
            if os.environ.get(f"GRAPHC_GEMM_{k.upper()}", "").isdigit()}
    if over:
        g = Geometry(g.lanes, g.mr, g.nv, over.get("kc", g.kc), over.get("mc", g.mc), over.get("nc", g.nc))
    return g


def gemm_mode() -> str:
    """GRAPHC_GEMM (read when a program is built): 'blas' (OpenBLAS everywhere), 'native'
    (graphc's kernel for every float32 GEMM it can do) or 'auto' (the default: native where
    measured faster, see native_plan)."""
    v = os.environ.get("GRAPHC_GEMM", "auto").strip().lower()
    return v if v in ("blas", "native", "auto") else "auto"


def cache_tag() -> str:
    """What compiled code depends on here: goes into the program cache key."""
    return f"gemm={gemm_mode()} {VERSION} {host_geometry()}"


def _round(x, m):
    return -(-x // m) * m


@dataclass(frozen=True)
class Plan:
    """A Gemm as the native kernel will run it."""
    g: Gemm
    geo: Geometry
    kp: int            # K rounded up to KU
    a_panels: int
    b_panels: int
    nr_last: int       # width of the last B panel (a multiple of lanes, <= nr)
    mc: int
    nc: int
    slots: int         # phase-function calls that may run at once (the pool's threads)
    a_direct: bool = False   # the microkernel reads A's rows in place (see direct_a_pays)
    n_dot: int = 0     # C's last columns computed as dot products along K (see dot_tail)

    @property
    def n_main(self) -> int:
        """Columns the microkernels compute: B's panels cover exactly these (nr_last exact
        when n_dot > 0); the n_dot columns past them are the dot-product tail."""
        return self.g.n - self.n_dot

    @property
    def tn(self) -> int:
        """Tiles across C's columns: the main columns cut at multiples of nc; the last tile
        also takes the dot-product tail (never a tile of its own, which would read A again)."""
        return max(1, -(-self.n_main // self.nc))

    @property
    def b_in_tile(self) -> bool:
        """One row of tiles: each B block has one user, which packs it itself, KC rows at a
        time, into its thread's slot of the scratch (stays in that core's L2: no round trip
        through L3, no packing phase for B)."""
        return self.mc >= self.g.m

    @property
    def one_dispatch(self) -> bool:
        """A batch with nothing to pack up front (A read in place, each tile packing its B):
        all matrices' tiles run as one pool dispatch."""
        return self.a_direct and self.b_in_tile and self.g.batch > 1

    @property
    def b_slot(self):
        return self.geo.kc * (self.nc + self.n_dot)

    @property
    def a_group(self):
        """Rows of A one pack task covers: a W-block (W/MR panels transposed together) when MR
        divides W, else one panel."""
        return self.geo.lanes if self.geo.lanes % self.geo.mr == 0 else self.geo.mr

    @property
    def a_tasks(self):
        return 0 if self.a_direct else -(-self.g.m // self.a_group)

    @property
    def a_floats(self):
        return _round(self.a_tasks * self.a_group * self.kp, 16)

    @property
    def b_floats(self):
        if self.b_in_tile:
            return self.slots * self.b_slot
        main = (self.b_panels - 1) * self.geo.nr + self.nr_last if self.b_panels else 0
        return (main + self.n_dot) * self.kp

    @property
    def scratch_floats(self):
        return self.a_floats + self.b_floats


# When graphc's kernel replaces OpenBLAS under GRAPHC_GEMM=auto, from alternating runs of
# bench/gemm_shapes.py (2-core Zen 5, 2 threads, medians of 11-15 rounds, GFLOP/s
# OpenBLAS split -> native; other agents' tests at nice 10 on both cores):
#   wins: MLP layers 256x784x512 (A Bᵀ) 326 -> 392, 256x512x784 331 -> 400, 512x256x784 (Aᵀ B)
#     339 -> 429, 784x256x512 344 -> 425; ResNet-18 im2col 64x147x12544 329 -> 354, 64x576x3136
#     332 -> 372, 128x576x784 338 -> 368, 256x1152x196 328 -> 341; LSTM 20x200x800 (A Bᵀ)
#     153 -> 203, 700x200x10000 338 -> 391; 32x512x512 240 -> 284; 64x256x256 274 -> 287.
#     One thread: even or better (64x576x3136 186 -> 189, 256x784x512 210 -> 212).
#   even or losses, left to OpenBLAS: a few rows (16x784x512 (A Bᵀ) 289 -> 241, 24x512x512 358
#     -> 227, 20x200x800 with B not transposed 303 -> 238: OpenBLAS's small-matrix kernels pack
#     nothing), a few columns (256x512x32 295 -> 272, 256x512x64 314 -> 314,
#     256x784x10 107 -> 99, 512x2304x49 259 -> 255 / 221 -> 239 in two runs), small products
#     (96^3 353 -> 265, 128^3 283 -> 267: two dispatches and the packing cost ~4 us).
#   Later, on a quieter machine (load < 1, 9 rounds): with B not transposed, a few hundred
#     columns lose: 256x1152x196 362 -> 217, 700x800x200 354 -> 284, 2048x512x200 392 -> 304,
#     700x10000x200 338 -> 284, 10000x700x200 (Aᵀ B) 377 -> 320; with B transposed they win
#     (1024x256x200 359 -> 402); the MLP layers still win (256x784x512 378 -> 433, 512x256x784
#     358 -> 440). So columns: at least 384, or 96 when B is transposed.
NATIVE_MIN_WORK = 5 << 20
NATIVE_MIN_N = 384
NATIVE_MIN_N_TRANS_B = 96
NATIVE_MIN_M = 32           # 20 when B is transposed: OpenBLAS's small-M path is slow there


def auto_takes(g: Gemm) -> bool:
    """GRAPHC_GEMM=auto's rule: the shape classes where graphc's kernel measured faster."""
    if 2 * g.m * g.n * g.k < NATIVE_MIN_WORK:
        return False
    if g.m >= NATIVE_MIN_M and g.n <= DIRECT_A_MAX_N and _direct_a_possible(g):
        return True
    return (g.n >= (NATIVE_MIN_N_TRANS_B if g.trans_b else NATIVE_MIN_N)
            and (g.m >= NATIVE_MIN_M or (g.trans_b and g.m >= 20)))


# A read in place, from A/B runs with A cold (cycled through 80 MB of copies, as a
# network's weights are), 2 threads, GFLOP/s OpenBLAS / packed A / A in place: ResNet-18's
# late convolutions 512x4608x49 188 / 182 / 264, 512x2304x49 195 / 197 / 271, 256x2304x196
# 315 / 334 / 357; 256x512x32 144 / 153 / 205, 700x800x200 279 / 254 / 307, 2048x512x200
# 318 / 340 / 370, 128x128x196 232 / 235 / 284; even: 256x512x64 200 / 135 / 191. Up to 256
# columns measured; wider GEMMs keep the tuned packed path.
DIRECT_A_MAX_N = 256


# A read in place for one row of tiles (M <= 2 MC), whatever N: B is then packed by its tile,
# so with A in place nothing is packed up front and the GEMM is one pool dispatch instead of
# two (the pack phase's join is a barrier both threads wait at). One thread, thread CPU time,
# medians of 3 alternating processes (machine shared, load 12-16), GFLOP/s packed A -> in place:
# 64x784x512 (A Bᵀ) 155.5 -> 157.5, 64x512x512 (A Bᵀ) 164.0 -> 168.1, 64x512x784 149.2 ->
# 151.5, 64x512x512 146.0 -> 160.7, 128x768x768 (A Bᵀ) 158.5 -> 157.6, 128x768x3072 (A Bᵀ)
# 161.3 -> 155.2, 128x3072x768 (A Bᵀ) 150.5 -> 151.3; im2col 64x576x3136 104.6 -> 120.0,
# 128x576x784 149.7 -> 151.7, 128x1152x784 151.7 -> 148.8, 64x576x12544 86.0 -> 81.3 (runs
# 0.83-1.08): even within the noise; the A panel's kc-slice sits in L1 either way once the
# first B panel used it. Two threads, total process CPU per GEMM: 0.97-1.12x the flops per
# CPU-second (less spinning at the removed barrier); wall time on two threads not measurable.
def direct_a_pays(g: Gemm, geo: Geometry) -> bool:
    """Read A's rows in place instead of packing them: when few columns reuse each A panel
    (a convolution's weights against a late layer's few pixels), packing costs a full extra
    pass over A for little reuse; and when C is one row of tiles, packing A is the only thing
    left to do up front (see above). Needs A's rows contiguous in k and K a multiple of KU (the
    microkernel's k loop never runs past a row)."""
    return _direct_a_possible(g) and (g.n <= DIRECT_A_MAX_N or _one_row(g, geo))


def _one_row(g: Gemm, geo: Geometry) -> bool:
    """C is tiled as one row of tiles (native_plan): up to 2 MC rows."""
    return -(-g.m // geo.mr) * geo.mr <= 2 * geo.mc


def _direct_a_possible(g: Gemm) -> bool:
    return not g.trans_a and g.k % KU == 0


# A few columns past the last full vector (N = 49 = 48 + 1: ResNet-18's 7x7 pixels; 196 =
# 192 + 4) cost a whole vector per k in the microkernel: 8 broadcasts + 1 load + 8 FMAs for one
# useful lane (the 49th column took a quarter of 512x4608x49's time). With A's rows in place
# (contiguous in k) they are dot products instead: B's tail columns packed contiguous in k,
# MR rows x t columns of accumulators along K, reduced across lanes once per K slice: per 16 k,
# MR + t loads and MR*t FMAs (for t = 1, 16x fewer instructions).
# A/B with A cold (80 MB of copies), 2 threads, paired alternating runs, medians of 31 rounds,
# GFLOP/s before -> after (two runs on a quiet machine): 512x4608x49 302 -> 382 / 312 -> 371,
# 512x2304x49 301 -> 353 / 307 -> 372, 256x2304x196 384 -> 406 / 387 -> 412, 256x1152x196 373
# -> 402 / 374 -> 405; unchanged: 256x2304x192 415 -> 419, 128x1152x784 (A packed) 370 -> 367,
# 256x512x64 326 -> 331. 49 columns now cost 1.08x 48 (were 1.37x). By tail width (512x2304x
# (48 + t), 15 rounds): t = 1..5 +15..+21%, 6 +12%, 7 +8%, 8 +6..10%, 12 -2%, 15 -4%: up to 8.
# AVX2 (8 lanes) takes every tail (up to 7), checked for correctness, not timed.
DOT_MAX_COLS = 8


def dot_tail(n: int, geo: Geometry) -> int:
    """How many of C's last columns (past the last full vector) are dot products, or 0."""
    t = n % geo.lanes
    return t if t <= DOT_MAX_COLS else 0


# One row of tiles splits only N, in whole NR panels: 64x512 is 10 panels of 48 + one of 32, and
# 6 tiles of 96 columns (what the count rule alone gives) leave one thread 288 columns and the
# other 224 (89% of two threads' time used); 11 tiles of one panel, claimed as threads come
# free, 272 / 240 (94%); 64x784: 9 tiles of 96, 400 / 384 columns (98%; 144 wide: 432 / 352, 91%).
# Model only: the shared 2-core machine was too loaded (load 12-15) to time two threads.
def balanced_nc(n_main: int, n_dot: int, geo: Geometry, nthreads: int, want: int, nc_max: int) -> int:
    """A one-row plan's tile width (a multiple of NR, at most nc_max): the one whose column
    tiles, claimed in order by whichever of `nthreads` threads is free first, finish soonest
    (cost: columns rounded up to whole vectors; the last tile also takes the n_dot tail);
    ties go to the tile count nearest `want`."""
    if n_main <= geo.nr:
        return nc_max
    best = None
    for nc in range(geo.nr, max(nc_max, geo.nr) + 1, geo.nr):
        costs = [_round(min(nc, n_main - j), geo.lanes) for j in range(0, n_main, nc)]
        costs[-1] += n_dot
        free = [0] * nthreads
        for cost in costs:
            free[free.index(min(free))] += cost
        key = (max(free), abs(len(costs) - want))
        if best is None or key < best[0]:
            best = (key, nc)
    return best[1]


def native_plan(g: Gemm, nthreads: int, mode: str = None, geo: Geometry = None):
    """The Plan for running `g` natively, or None (OpenBLAS). mode: gemm_mode() by default."""
    mode = gemm_mode() if mode is None else mode
    geo = host_geometry() if geo is None else geo
    if mode == "blas" or geo is None or g.dtype != "float32" or g.k < 1 or g.m < 1 or g.n < 1:
        return None
    if mode == "auto" and not auto_takes(g):
        return None
    kp = _round(g.k, KU)
    a_direct = direct_a_pays(g, geo)
    n_dot = dot_tail(g.n, geo) if a_direct else 0
    n_main = g.n - n_dot
    a_panels = -(-g.m // geo.mr)
    b_panels = -(-n_main // geo.nr)
    nr_last = _round(n_main - (b_panels - 1) * geo.nr, geo.lanes) if b_panels else 0
    # tiles: at most MC x NC, as equal as the panels allow, and enough of them for the threads to
    # balance (a thread the OS preempts holds up one tile, not half the product). Up to 2 MC rows
    # stay one row of tiles, narrower ones instead: then each tile packs its own B block
    # (Plan.b_in_tile)
    one_row = _one_row(g, geo)
    tm = 1 if one_row else -(-g.m // geo.mc)
    tn = max(1, -(-n_main // geo.nc))
    want = 4 * max(1, nthreads)
    while tm * tn < want:
        if tn < b_panels and (one_row or g.n / tn >= 2 * g.m / tm or tm >= a_panels):
            tn += 1
        elif tm < a_panels and not one_row:
            tm += 1
        else:
            break
    mc = _round(-(-g.m // tm), geo.mr)
    nc = _round(-(-max(1, n_main) // tn), geo.nr)
    if one_row and nthreads > 1:
        nc = balanced_nc(n_main, n_dot, geo, nthreads, want, nc)
    p = Plan(g, geo, kp, a_panels, b_panels, nr_last, mc, nc, max(1, nthreads), a_direct, n_dot)
    if p.scratch_floats > MAX_PACK_FLOATS:
        return None
    return p


__all__ = ["Geometry", "AVX512", "AVX2", "Plan", "host_geometry", "gemm_mode", "cache_tag",
           "auto_takes", "native_plan", "balanced_nc", "dot_tail", "VERSION", "KU", "MAX_PACK_FLOATS"]
