"""cuda_pieces: a kernel body mixing loops with Gemm/MemCopy becomes consecutive launchable pieces,
and every rendered launch says how many iterations its grid-stride loop covers."""
import math
import subprocess

import pytest

from graphc.ops import scalar as S
from graphc.runtime.kernel_ir import Buf, Gemm, Index, Indirect, Kernel, Load, Loop, MemCopy, Store, DeclareAcc, \
    Accumulate, AccRef
from graphc.runtime.gpu_parallel import independent_iterations, one_to_one, split_for_threads
from graphc.runtime.render_cuda import cuda_pieces, render_cuda, render_cuda_module

from test_render_cuda import NVCC


def _scale(dst, src, n, var="i"):
    return Loop(var, n, [Store(dst, Index(((var, 1),)), S.arg(0) * 2.0, (Load(src, Index(((var, 1),))),))])


def _mixed():
    """x -> t = 2x (loop), c = t @ w (gemm), y = c (copy), e[i] = c[idx[i]] (loop with an
    index array), s = sum(e) (a full reduction: declare, loop, store)."""
    bufs = [Buf("y", "float32", 12), Buf("x", "float32", 12), Buf("w", "float32", 12), Buf("t", "float32", 12),
            Buf("c", "float32", 12), Buf("idx", "int32", 3), Buf("e", "float32", 3), Buf("s", "float32", 1),
            Buf("unused", "float64", 5)]
    pick = Index((), 0, (Indirect("idx", Index((("j", 1),)), 1, 12, "clip"),))
    body = [_scale("t", "x", 12),
            Gemm("t", "w", "c", 3, 3, 4, False, False, 4, 3, 3, "float32"),
            MemCopy("y", "c", 36),
            Loop("j", 3, [Store("e", Index((("j", 1),)), S.arg(0), (Load("c", pick),))]),
            DeclareAcc("acc", "float32", "sum"),
            Loop("r", 3, [Accumulate("acc", "sum", S.arg(0), (Load("e", Index((("r", 1),))),))]),
            Store("s", Index(), S.arg(0), (AccRef("acc"),))]
    return Kernel("k_mixed", bufs, body, work=100)


def test_a_mixed_body_splits_into_ordered_pieces_with_only_their_buffers():
    k = _mixed()
    pieces = cuda_pieces(k)
    assert [kind for kind, _ in pieces] == ["kernel", "gemm", "copy", "kernel", "kernel"]
    first, gather, total = pieces[0][1], pieces[3][1], pieces[4][1]
    assert [p.name for p in (first, gather, total)] == ["k_mixed_p0", "k_mixed_p3", "k_mixed_p4"]
    assert [b.name for b in first.bufs] == ["x", "t"]
    # the index array is a buffer of the piece that reads through it; kernel.bufs order is kept
    assert [b.name for b in gather.bufs] == ["c", "idx", "e"]
    assert pieces[1][1] is k.body[1] and pieces[2][1] is k.body[2]
    # the loop after the copy is a launch of its own; the full reduction stays whole
    assert total.body == k.body[4:] and [b.name for b in total.bufs] == ["e", "s"]
    src = render_cuda_module([p for kind, p in pieces if kind == "kernel"])
    assert src.count("__global__") == 3 and "k_mixed_p4(" in src and "unused" not in src


def test_a_run_is_cut_after_each_nest_but_not_inside_a_reduction():
    """[nest, declare, accumulating nest, nest reading the total, nest] -> three launches: the
    total is read by the normalising nest, so it stays with its reduction."""
    idx = Index((("i", 1),))
    body = [_scale("t", "x", 8),
            DeclareAcc("acc", "float32", "max"),
            Loop("r", 8, [Accumulate("acc", "max", S.arg(0), (Load("t", Index((("r", 1),))),))]),
            Loop("i", 8, [Store("y", idx, S.arg(0) - S.arg(1), (Load("t", idx), AccRef("acc")))]),
            _scale("z", "y", 8, "j")]
    bufs = [Buf(n, "float32", 8) for n in ("y", "z", "t", "x")]
    pieces = cuda_pieces(Kernel("k_norm", bufs, body))
    assert [len(p.body) for _, p in pieces] == [1, 3, 1]
    assert [[b.name for b in p.bufs] for _, p in pieces] == [["t", "x"], ["y", "t"], ["y", "z"]]


def test_a_body_that_is_one_run_is_the_kernel_itself():
    k = Kernel("k_one", [Buf("t", "float32", 8), Buf("x", "float32", 8)], [_scale("t", "x", 8)])
    assert cuda_pieces(k) == [("kernel", k)]
    g = Gemm("a", "b", "c", 2, 2, 2, False, False, 2, 2, 2, "float32")
    lone = Kernel("k_gemm", [Buf("c", "float32", 4), Buf("a", "float32", 4), Buf("b", "float32", 4)], [g])
    assert cuda_pieces(lone) == [("gemm", g)]
    m = MemCopy("c", "a", 16)
    assert cuda_pieces(Kernel("k_copy", [Buf("c", "float32", 4), Buf("a", "float32", 4)], [m])) == [("copy", m)]


def test_a_library_call_inside_a_loop_is_refused_by_name():
    g = Gemm("a", "b", "c", 2, 2, 2, False, False, 2, 2, 2, "float32")
    k = Kernel("k_bad", [Buf("c", "float32", 4), Buf("a", "float32", 4), Buf("b", "float32", 4)],
               [Loop("i", 2, [g])])
    with pytest.raises(NotImplementedError, match="k_bad.*Gemm inside loop i"):
        cuda_pieces(k)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
def test_grid_stride_launches_report_their_flattened_iterations(shape):
    n = math.prod(shape)
    vars_ = [f"i{d}" for d in range(len(shape))]
    strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
    idx = Index(tuple(zip(vars_, strides)))
    body = [Store("y", idx, S.arg(0) + 1.0, (Load("x", idx),))]
    for v, e in reversed(list(zip(vars_, shape))):
        body = [Loop(v, e, body)]
    _, launch = render_cuda(Kernel("k_add", [Buf("y", "float32", n), Buf("x", "float32", n)], body))
    assert launch["grid"] == "auto" and launch["total"] == n


def test_every_launch_shape_carries_a_total():
    k = _mixed()
    for kind, p in cuda_pieces(k):
        if kind == "kernel":
            _, launch = render_cuda(p)
            assert launch["total"] >= 1
            if launch["grid"] != "auto":
                assert math.ceil(launch["total"] / launch["block"]) == launch["grid"]
    g = Gemm("a", "b", "c", 3, 5, 2, False, False, 2, 5, 5, "float32", batch=4)
    _, launch = render_cuda(Kernel("k_g", [Buf("c", "float32", 60), Buf("a", "float32", 24),
                                           Buf("b", "float32", 40)], [g]))
    assert launch["total"] == 60 and launch["grid"] == (1, 1, 4)


def test_a_row_accumulating_reduction_gives_threads_only_the_kept_columns():
    """out[j] = out[j] + x[i, j] over (i, j): threads split j, each runs i itself in order."""
    col, cell = Index((("j", 1),)), Index((("i", 7), ("j", 1)))
    acc = Loop("i", 5, [Loop("j", 7, [Store("out", col, S.arg(0) + S.arg(1), (Load("out", col), Load("x", cell)))])])
    k = Kernel("k_colsum", [Buf("out", "float32", 7), Buf("x", "float32", 35)], [acc])
    text, launch = render_cuda(k)
    assert launch == {"block": 256, "grid": "auto", "total": 7}
    assert "const long long j = gc_t;" in text and "for (long long i = 0; i < 5LL; ++i)" in text


def test_overlapping_windows_step_one_block_and_transposes_spread_over_the_grid():
    # out[i + j] += x[i, j]: iterations (0, 1) and (1, 0) write the same element, so one block
    # splits j and waits at a barrier after each i
    window = Loop("i", 4, [Loop("j", 3, [Store("out", Index((("i", 1), ("j", 1))), S.arg(0) + S.arg(1),
                                                   (Load("out", Index((("i", 1), ("j", 1)))),
                                                    Load("x", Index((("i", 3), ("j", 1))))))])])
    text, launch = render_cuda(Kernel("k_window", [Buf("out", "float32", 6), Buf("x", "float32", 12)], [window]))
    assert launch == {"block": 256, "grid": 1, "total": 256} and "__syncthreads();" in text
    # a transpose-like store (i*1 + j*4 over 4x4) is one-to-one: every iteration a thread
    perm = Loop("i", 4, [Loop("j", 4, [Store("out", Index((("i", 1), ("j", 4))), S.arg(0),
                                                 (Load("x", Index((("i", 4), ("j", 1)))),))])])
    _, launch = render_cuda(Kernel("k_perm", [Buf("out", "float32", 16), Buf("x", "float32", 16)], [perm]))
    assert launch["total"] == 16


def test_several_stores_into_disjoint_window_positions_still_get_a_thread_per_iteration():
    """A 2x2 max-pooling gradient writes out[nc*16 + j0*8 + j1*2 + {0, 1, 4, 5}]: the four
    offsets never meet another iteration's, so the threads take all 8*2*2 iterations; offsets
    that do meet (+2 would be iteration j1+1's +0) fall back to a block."""
    def pool_grad(offsets):
        idx = [Index((("nc", 16), ("j0", 8), ("j1", 2)), o) for o in offsets]
        stores = [Store("out", i, S.arg(0), (Load("dy", Index((("nc", 4), ("j0", 2), ("j1", 1)))),)) for i in idx]
        body = [Loop("nc", 8, [Loop("j0", 2, [Loop("j1", 2, stores)])])]
        return render_cuda(Kernel("k_pg", [Buf("out", "float32", 128), Buf("dy", "float32", 32)], body))[1]
    assert pool_grad([0, 1, 4, 5]) == {"block": 256, "grid": "auto", "total": 32}
    assert pool_grad([0, 1, 2, 3])["grid"] == 1


def test_one_to_one_sees_through_separable_strides():
    assert one_to_one([(16, 512), (8, 2), (2, 2)], [0, 1, 4, 5])
    assert not one_to_one([(57, 55), (1, 55), (57, 3), (1, 3)])          # col2im's windows
    assert one_to_one([(57, 55), (1, 55)]) and not one_to_one([(1, 3), (1, 2)])
    assert one_to_one([(1, 10 ** 6), (10 ** 6, 10 ** 3)])


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_every_piece_shape_compiles_with_nvcc(tmp_path):
    ks = [p for kind, p in cuda_pieces(_mixed()) if kind == "kernel"]
    src = tmp_path / "pieces.cu"
    src.write_text(render_cuda_module(ks))
    r = subprocess.run([NVCC, "-ptx", "-arch=sm_90", str(src), "-o", str(tmp_path / "pieces.ptx")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "pieces.ptx").read_text().count(".entry") == len(ks)


def test_a_reduction_per_pixel_of_a_plane_stays_a_thread_per_plane():
    """for plane p (independent): zero a row, then for pixel o: acc = sum over a 3-wide window;
    out[p, o] = acc. A block per plane would need a shared-memory tree per pixel; a thread per
    plane runs the sequence instead."""
    win = Loop("k", 3, [Accumulate("acc", "sum", S.arg(0), (Load("x", Index((("p", 102), ("o", 1), ("k", 1)))),))])
    zero = Loop("z", 100, [Store("zeros", Index((("p", 100), ("z", 1))), S.const(0.0), ())])
    pixel = [DeclareAcc("acc", "float32", "sum"), win,
             Store("out", Index((("p", 100), ("o", 1))), S.arg(0), (AccRef("acc"),))]
    plane = Loop("p", 4, [zero, Loop("o", 100, pixel)], independent=True)
    bufs = [Buf("out", "float32", 400), Buf("zeros", "float32", 400), Buf("x", "float32", 408)]
    text, launch = render_cuda(Kernel("k_win", bufs, [plane]))
    assert "__shared__" not in text and launch == {"block": 256, "grid": "auto", "total": 4}


def test_compare_exchange_stores_with_mirrored_strides_split_over_threads():
    """y[c*4 + t] and y[c*4 + 3 - t] for c < 2, t < 2: eight distinct elements, found by
    enumeration; y[c*2 + t] and y[c*2 + 1 - t] for t < 2 collide (t = 0 and t = 1 swap)."""
    def stage(width, half):
        lo = Index((("c", width), ("t", 1)))
        hi = Index((("c", width), ("t", -1)), width - 1)
        body = [Store("y", lo, S.arg(0), (Load("x", lo),)), Store("y", hi, S.arg(0), (Load("x", hi),))]
        return split_for_threads([Loop("c", 2, []), Loop("t", half, [])], body)
    par, ser = stage(4, 2)
    assert [l.var for l in par] == ["c", "t"] and ser == []
    assert stage(2, 2) is None


def test_independence_of_unmarked_loops_follows_the_slabs_they_write():
    at = Index((("r", 8), ("j", 1)))
    own = Loop("r", 4, [Loop("j", 8, [Store("y", at, S.arg(0), (Load("x", at),))])])
    assert independent_iterations(own)
    wide = Loop("r", 4, [Loop("j", 9, [Store("y", at, S.arg(0), (Load("x", at),))])])   # row r+1's first
    assert not independent_iterations(wide)
    shared = Loop("r", 4, [Loop("j", 8, [Store("t", Index((("j", 1),)), S.arg(0), (Load("x", at),))])])
    assert not independent_iterations(shared)
    # reading another row of a buffer the loop writes ties the rows together
    back = Loop("r", 4, [Loop("j", 8, [Store("y", at, S.arg(0), (Load("y", Index((("r", 8), ("j", 1)), 8)),))])])
    assert not independent_iterations(back)
