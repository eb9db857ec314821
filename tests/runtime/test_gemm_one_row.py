"""GEMMs whose C is one row of tiles (M <= 2 MC: each tile packs its own B block): A is read in
place whatever N, so nothing is packed up front (one pool dispatch), and the tiles' width is
chosen so that the pool's threads finish together. Results against numpy (float64), the plans
against what they promise."""
import itertools

import pytest

from graphc.runtime.gemm_plan import AVX2, AVX512, DIRECT_A_MAX_N, DOT_MAX_COLS, balanced_nc, native_plan

from test_gemm_kernel import assert_gemms_right, make_gemm, needs_vectors, native, geometry  # noqa: F401


def _makespan(widths, lanes, n_dot, nthreads):
    """Greedy claiming, in order, by whichever thread is free first: an independent model of the
    pool's claim loop (cost = columns rounded up to whole vectors; the last tile takes the tail)."""
    costs = [-(-w // lanes) * lanes for w in widths]
    costs[-1] += n_dot
    free = [0] * nthreads
    for c in costs:
        i = min(range(nthreads), key=lambda t: free[t])
        free[i] += c
    return max(free)


def _widths(n_main, nc):
    return [min(nc, n_main - j) for j in range(0, n_main, nc)]


@pytest.mark.parametrize("geo", [AVX512, AVX2], ids=["avx512", "avx2"])
def test_one_row_plans_read_a_in_place_and_pack_nothing_up_front(geo):
    rows = 2 * geo.mc
    wide = DIRECT_A_MAX_N + 5 * geo.nr + 3
    for m in (1, geo.mr + 1, rows):
        p = native_plan(make_gemm(m, wide, 784), 2, "native", geo)
        assert p.a_direct and p.a_tasks == 0 and p.b_in_tile, (m, p)
    # more rows (several rows of tiles share B: packed up front), K off the unroll, or Aᵀ: A packed
    assert not native_plan(make_gemm(rows + geo.mr, wide, 784), 2, "native", geo).a_direct
    assert not native_plan(make_gemm(64, wide, 783), 2, "native", geo).a_direct
    assert not native_plan(make_gemm(64, wide, 784, ta=True), 2, "native", geo).a_direct


def test_w7_layer_splits_into_single_panels_on_two_threads():
    """64x512 on AVX-512: 10 panels of 48 + one of 32. Six tiles of 96 columns leave one thread
    288 columns and the other 224; one panel per tile, 272 and 240."""
    p = native_plan(make_gemm(64, 512, 784, tb=True), 2, "native", AVX512)
    assert p.nc == 48 and p.tn == 11
    assert _makespan(_widths(512, p.nc), 16, 0, 2) == 272 < _makespan(_widths(512, 96), 16, 0, 2) == 288
    # one thread: the count rule alone (nothing to balance)
    assert native_plan(make_gemm(64, 512, 784, tb=True), 1, "native", AVX512).nc == 144


@pytest.mark.parametrize("geo", [AVX512, AVX2], ids=["avx512", "avx2"])
def test_balanced_width_is_the_best_whole_panel_width_up_to_the_bound(geo):
    """For every N and thread count: a multiple of NR, at most the bound, and no other such
    width finishes sooner under greedy claiming."""
    for n_main, nthreads, n_dot in itertools.product(range(geo.lanes, 3000, 37 * geo.lanes // 8), (2, 3, 4),
                                                     (0, 3)):
        n_main -= n_main % geo.lanes
        bound = 4 * geo.nr
        nc = balanced_nc(n_main, n_dot, geo, nthreads, 4 * nthreads, bound)
        if n_main <= geo.nr:
            assert nc == bound
            continue
        assert nc % geo.nr == 0 and geo.nr <= nc <= bound, (n_main, nthreads, nc)
        got = _makespan(_widths(n_main, nc), geo.lanes, n_dot, nthreads)
        best = min(_makespan(_widths(n_main, w), geo.lanes, n_dot, nthreads) for w in range(geo.nr, bound + 1, geo.nr))
        assert got == best, (n_main, nthreads, nc, got, best)


@needs_vectors
@pytest.mark.parametrize("nthreads", [1, 2])
def test_one_row_gemms_wider_than_the_direct_bound_match_numpy(geometry, nthreads):
    """A in place past DIRECT_A_MAX_N columns: edge rows, a dot-product tail (N % W of 1..8) or
    none, K over several slices, leading dimensions, offsets, batches (shared A too), alpha/beta."""
    mr, nr, w, kc, mc = geometry.mr, geometry.nr, geometry.lanes, geometry.kc, geometry.mc
    ns = (DIRECT_A_MAX_N + nr + 1, DIRECT_A_MAX_N + 3 * nr, DIRECT_A_MAX_N + 2 * nr + w + 5)
    ms = sorted({1, mr + 3, 2 * mc})
    gemms = [make_gemm(m, n, k, tb=i % 2 == 1, pad=(3, 1, 2), alpha=(1.0, -0.5)[i // 2 % 2],
                       beta=(0.0, 1.0, 0.25)[i % 3])
             for i, (m, n, k) in enumerate(itertools.product(ms, ns, (4, 2 * kc + 8)))]
    gemms += [make_gemm(2 * mc - 3, ns[2], 36, tb=True, pad=(5, 2, 0), batch=3, shared_a=shared,
                        beta=1.0 if shared else 0.0, offs=(3, 1, 2)) for shared in (False, True)]
    for g in gemms:
        p = native_plan(g, nthreads, "native", geometry)
        assert p.a_direct and p.b_in_tile and p.n_dot == (g.n % w if g.n % w <= DOT_MAX_COLS else 0), g
    assert_gemms_right(gemms, nthreads=nthreads)
