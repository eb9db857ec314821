"""The process-wide worker pool (runtime/threads.py): every iteration runs exactly once whatever
n and the thread count, across many dispatches, from several Python threads, after fork, and
the pool never starts more threads than asked for, however many programs exist."""
import ctypes
import os
import threading

import llvmlite.binding as llvm
import numpy as np
import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.compiler import compile_graph
from graphc.runtime import llvm_jit, threads

# void @k(i8** bufs, i64 start, i64 end): counts[i] += 1 for i in [start, end); hits[0] += 1 (atomically)
KERNEL_IR = r"""
define void @k(i8** %bufs, i64 %s, i64 %e) {
entry:
  %p0 = load i8*, i8** %bufs
  %cnt = bitcast i8* %p0 to i32*
  %q = getelementptr i8*, i8** %bufs, i64 1
  %p1 = load i8*, i8** %q
  %hits = bitcast i8* %p1 to i64*
  %old = atomicrmw add i64* %hits, i64 1 seq_cst
  %go = icmp slt i64 %s, %e
  br i1 %go, label %body, label %done
body:
  %i = phi i64 [%s, %entry], [%nx, %body]
  %a = getelementptr i32, i32* %cnt, i64 %i
  %v = load i32, i32* %a
  %v1 = add i32 %v, 1
  store i32 %v1, i32* %a
  %nx = add i64 %i, 1
  %more = icmp slt i64 %nx, %e
  br i1 %more, label %body, label %done
done:
  ret void
}
"""


@pytest.fixture(scope="module")
def kernel():
    threads.ensure_pool()
    tm = llvm_jit.create_target_machine(opt=2)
    mod = llvm.parse_assembly(KERNEL_IR)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    yield engine.get_function_address("k")
    del engine


def _run(kaddr, counts, hits, n, nt):
    bufs = (ctypes.c_void_p * 2)(counts.ctypes.data, hits.ctypes.data)
    threads._state["call"](kaddr, ctypes.addressof(bufs), n, nt)


@pytest.mark.parametrize("nt", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 63, 64, 65, 1000, 4095, 4096, 4097, 100003])
def test_every_iteration_runs_exactly_once(kernel, n, nt):
    counts = np.zeros(max(n, 1), np.int32)
    hits = np.zeros(1, np.int64)
    _run(kernel, counts, hits, n, nt)
    assert (counts[:n] == 1).all()
    assert 1 <= hits[0] <= max(nt, 1) * threads.CHUNKS_PER_THREAD


def test_many_sequential_dispatches(kernel):
    n, reps = 257, 3000
    counts = np.zeros(n, np.int32)
    hits = np.zeros(1, np.int64)
    for r in range(reps):
        _run(kernel, counts, hits, n, 2 + r % 3)
    assert (counts == reps).all()


def test_dispatches_from_concurrent_python_threads(kernel):
    n, reps = 5000, 300
    arrays = [np.zeros(n, np.int32) for _ in range(4)]
    errors = []

    def work(a):
        try:
            h = np.zeros(1, np.int64)
            for _ in range(reps):
                _run(kernel, a, h, n, 4)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=work, args=(a,)) for a in arrays]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for a in arrays:
        assert (a == reps).all()


def _big_graph(name, size=1 << 20):
    gb = GraphBuilder(name)
    x = gb.var("x", TensorType((size,), "float32"))
    F = gb.F
    return gb.build([F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x])


def _ref(x):
    return np.tanh(x * 0.5 + 1.0) * (1 / (1 + np.exp(-x))) + 0.1 * x


def test_program_called_from_two_python_threads_in_turn(monkeypatch):
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "2")
    prog = compile_graph(_big_graph("turns"), cache=False)
    assert any(k.parallel_loop is not None for k in prog.kernels())
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    want = _ref(x)
    got = {}
    for i in range(2):
        t = threading.Thread(target=lambda i=i: got.__setitem__(i, prog([x])[0]))
        t.start()
        t.join()
    for i in range(2):
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)


def _tasks():
    return len(os.listdir("/proc/self/task"))


def test_programs_share_one_pool_and_threads_do_not_leak(monkeypatch):
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "3")
    x = np.random.default_rng(1).standard_normal(1 << 20).astype(np.float32)
    want = _ref(x)
    prog = compile_graph(_big_graph("leak0"), cache=False)
    np.testing.assert_allclose(prog([x])[0], want, rtol=1e-5, atol=1e-5)
    assert threads.pool_workers() >= 2
    before_workers, before_tasks = threads.pool_workers(), _tasks()
    progs = []
    for i in range(6):
        p = compile_graph(_big_graph(f"leak{i + 1}"), cache=(i % 2 == 0))
        for _ in range(3):
            np.testing.assert_allclose(p([x])[0], want, rtol=1e-5, atol=1e-5)
        progs.append(p)
    assert threads.pool_workers() == before_workers
    assert _tasks() <= before_tasks
    assert before_workers <= threads.MAX_THREADS


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_in_a_forked_child(kernel):
    counts = np.zeros(10000, np.int32)
    hits = np.zeros(1, np.int64)
    _run(kernel, counts, hits, 10000, 2)       # the parent's workers exist
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            c = np.zeros(10000, np.int32)
            h = np.zeros(1, np.int64)
            for _ in range(50):
                _run(kernel, c, h, 10000, 2)
            code = 0 if (c == 50).all() and threads.pool_workers() >= 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m", [1, 3, 70])
def test_gemms_split_across_the_pool_agree(monkeypatch, ta, tb, m):
    """Every GEMM split by graphc (rows of C, columns of C, one-row products) equals numpy."""
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "3")
    monkeypatch.setenv("GRAPHC_GEMM_SPLIT_WORK", "0")
    monkeypatch.setenv("GRAPHC_GEMV", "0")     # the OpenBLAS split itself (runtime/gemv_kernel.py: tests/runtime/test_gemv_kernel.py)
    k, n = 37, 130
    gb = GraphBuilder("split")
    a = gb.var("a", TensorType((k, m) if ta else (m, k), "float32"))
    b = gb.var("b", TensorType((n, k) if tb else (k, n), "float32"))
    prog = compile_graph(gb.build([gb.F.dot(a, b, transpose_a=ta, transpose_b=tb)]), cache=False)
    rng = np.random.default_rng(m)
    an = rng.standard_normal(a.shape).astype(np.float32)
    bn = rng.standard_normal(b.shape).astype(np.float32)
    want = (an.T if ta else an) @ (bn.T if tb else bn)
    assert ".split" in prog.llvm_ir()
    np.testing.assert_allclose(prog([an, bn])[0], want, rtol=1e-4, atol=1e-4)


def test_batched_gemm_splits_over_matrices(monkeypatch):
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "2")
    monkeypatch.setenv("GRAPHC_GEMM_SPLIT_WORK", "0")
    gb = GraphBuilder("bsplit")
    a = gb.var("a", TensorType((5, 6, 7), "float32"))
    b = gb.var("b", TensorType((5, 7, 9), "float32"))
    prog = compile_graph(gb.build([gb.F.batch_dot(a, b)]), cache=False)
    rng = np.random.default_rng(3)
    an, bn = rng.standard_normal(a.shape).astype(np.float32), rng.standard_normal(b.shape).astype(np.float32)
    np.testing.assert_allclose(prog([an, bn])[0], an @ bn, rtol=1e-4, atol=1e-4)


def test_blas_threads_do_not_touch_numpys_blas():
    """graphc pins its own OpenBLAS to one thread; numpy's bundled OpenBLAS keeps its setting."""
    from graphc.runtime import cache
    path = cache.load_blas()
    assert ctypes.CDLL(path).scipy_openblas_get_num_threads() == threads.blas_threads() or threads.blas_threads() == 0
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pytest.skip("threadpoolctl not installed")
    mine = os.path.realpath(path)
    others = [i for i in threadpool_info() if i.get("internal_api") == "openblas"
              and os.path.realpath(i["filepath"]) != mine]
    for info in others:
        assert info["num_threads"] >= 1
