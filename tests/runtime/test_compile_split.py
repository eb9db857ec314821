"""The compile pipeline's cold-start pieces: table-driven entries (code size independent of the
number of calls), a program split into modules that are compiled apart (the GEMM module in a
helper process) and linked when loaded, the disk payload of several objects, and the part of
the cache key that the calls make."""
import ctypes

import numpy as np
import pytest

from graphc.ops import scalar as S
from graphc.runtime import cache as _cache
from graphc.runtime import compile_pool, llvm_jit
from graphc.runtime.cache_entry import BadEntry
from graphc.runtime.executor import _steps_description
from graphc.runtime.kernel_ir import Buf, Gemm, Index, Kernel, Load, Loop, Store
from graphc.runtime.render_llvm import ModuleBuilder


def _add(n, amount=1.0):
    """y[i] += amount, in place."""
    at = Index((("i", 1),))
    return Kernel(f"k_add_{n}_{int(amount)}", [Buf("y", "float32", n)],
                  [Loop("i", n, [Store("y", at, S.arg(0) + amount, (Load("y", at),))])], n)


def _builder(nthreads=1):
    tm = _cache.target_machine()
    return ModuleBuilder("t", nthreads, tm.triple, str(tm.target_data))


def _run(text, args, symbols=("entry",)):
    addrs, _, engine = _cache.load("unused", lambda: text, list(symbols), use_cache=False)
    ptrs = (ctypes.c_void_p * len(args))(*[a.ctypes.data for a in args])
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])(ptrs)
    del engine


def _entry_lines(text, name="entry"):
    body = text[text.index(f'define void @"{name}"'):]
    return body[:body.index("\n}")].count("\n")


def test_entry_code_does_not_grow_with_its_calls():
    """300 calls are 300 table rows, not 300 call sites for LLVM to optimise."""
    k = _add(64)
    texts = []
    for calls in (3, 300):
        mb = _builder()
        mb.add_entry("entry", [(k, [(0, 0)])] * calls)
        texts.append(str(mb))
    assert _entry_lines(texts[0]) == _entry_lines(texts[1])
    y = np.arange(64, dtype=np.float32)
    _run(texts[1], [y])
    np.testing.assert_array_equal(y, np.arange(64, dtype=np.float32) + 300)


def test_table_rows_bind_slots_and_byte_offsets_in_order():
    """Each call sees its own argument slot plus byte offset; calls run in the listed order."""
    quarter = 16
    k1, k10 = _add(quarter, 1.0), _add(quarter, 10.0)
    mb = _builder()
    calls = [(k1, [(0, 0)]), (k10, [(0, 4 * quarter)]), (k1, [(1, 8 * quarter)]),
             (k10, [(1, 12 * quarter)]), (k1, [(0, 4 * quarter)])]
    mb.add_entry("entry", calls)
    a = np.zeros(4 * quarter, np.float32)
    b = np.zeros(4 * quarter, np.float32)
    _run(str(mb), [a, b])
    want_a = np.zeros(4 * quarter, np.float32)
    want_a[:quarter] = 1
    want_a[quarter:2 * quarter] = 11
    want_b = np.zeros(4 * quarter, np.float32)
    want_b[2 * quarter:3 * quarter] = 1
    want_b[3 * quarter:] = 10
    np.testing.assert_array_equal(a, want_a)
    np.testing.assert_array_equal(b, want_b)


def test_an_entry_without_calls_returns():
    mb = _builder()
    mb.add_entry("entry", [])
    _run(str(mb), [np.zeros(1, np.float32)])


def _gemm_program(monkeypatch, m=96, n=160, k=128, nthreads=2):
    """A module whose entry runs one GEMM on graphc's own kernel: two modules."""
    monkeypatch.setenv("GRAPHC_GEMM", "native")
    g = Gemm("a", "b", "c", m, n, k, False, False, k, n, n, "float32")
    kern = Kernel("k_gemm_split_test", [Buf("c", "float32", m * n), Buf("a", "float32", m * k),
                                        Buf("b", "float32", k * n)], [g], work=2 * m * n * k)
    mb = _builder(nthreads)
    mb.add_entry("entry", [(kern, [(0, 0), (1, 0), (2, 0)])])
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    return str(mb), a, b, np.zeros((m, n), np.float32)


def test_gemm_code_is_a_second_module_linked_when_loaded(monkeypatch):
    text, a, b, c = _gemm_program(monkeypatch)
    parts = llvm_jit.split_modules(text)
    assert len(parts) == 2
    assert 'define void @"k_gemm_split_test.native"' in parts[1]
    assert 'declare void @"k_gemm_split_test.native"' in parts[0]
    _run(text, [c, a, b])
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-3)


def test_the_helper_process_makes_the_same_object_code(monkeypatch):
    """Offloaded compiles are content-exact: the helper's bytes equal this process's."""
    text, a, b, c = _gemm_program(monkeypatch)
    parts = llvm_jit.split_modules(text)
    monkeypatch.setattr(compile_pool, "MIN_OFFLOAD_BYTES", 0)
    monkeypatch.setattr(compile_pool, "offload_wanted", lambda: True)
    before = dict(compile_pool.stats)
    made = []

    def first():         # a module may come as a function that prints it, called once
        made.append(1)
        return parts[0]
    objs = compile_pool.compile_all([first, lambda: parts[1]], _cache.compile_object)
    assert compile_pool.stats["offloaded"] == before["offloaded"] + 1 and made == [1]
    assert objs == [_cache.compile_object(p) for p in parts]
    _run(text, [c, a, b])
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-3)


def test_a_broken_helper_falls_back_to_compiling_here(monkeypatch, tmp_path):
    text, a, b, c = _gemm_program(monkeypatch)
    bad = tmp_path / "worker.py"
    bad.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr(compile_pool, "MIN_OFFLOAD_BYTES", 0)
    monkeypatch.setattr(compile_pool, "offload_wanted", lambda: True)
    monkeypatch.setattr(compile_pool, "_WORKER", str(bad))
    monkeypatch.setattr(compile_pool, "_helper", None)
    before = compile_pool.stats["fell_back"]
    _run(text, [c, a, b])
    assert compile_pool.stats["fell_back"] == before + 1
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-3)


def test_object_lists_round_trip_and_damage_is_refused():
    objs = [b"\x7fELF-one", b"", b"two" * 100]
    data = _cache.pack_objects(objs)
    assert _cache.unpack_objects(data) == objs
    with pytest.raises(BadEntry):
        _cache.unpack_objects(data[:-1])
    with pytest.raises(BadEntry):
        _cache.unpack_objects(b"")


def test_the_key_text_covers_kernel_work_and_bindings():
    """Kernel names hash their whole text (lower.name_by_content); what the text does not hold
    but the code depends on (the work that decides a GEMM split, the plan's bindings) must
    change the key too."""
    k = _add(64)
    base = _steps_description([[(k, [(0, 0)])]])
    assert base == _steps_description([[(k, [(0, 0)])]])
    assert base != _steps_description([[(k, [(0, 64)])]])
    assert base != _steps_description([[(k, [(1, 0)])]])
    heavier = _add(64)
    heavier.work = 10 ** 9
    assert base != _steps_description([[(heavier, [(0, 0)])]])
    assert base != _steps_description([[(k, [(0, 0)])], []])
    assert base != _steps_description([[(_add(64, 2.0), [(0, 0)])]])


def test_an_error_here_leaves_the_helper_ready_for_the_next_program(monkeypatch):
    """The first module failing to parse must not free the helper's pipes while its answer for
    the second is still unread (the next request would read that stale answer)."""
    text, a, b, c = _gemm_program(monkeypatch)
    parts = llvm_jit.split_modules(text)
    monkeypatch.setattr(compile_pool, "MIN_OFFLOAD_BYTES", 0)
    monkeypatch.setattr(compile_pool, "offload_wanted", lambda: True)
    with pytest.raises(RuntimeError):
        compile_pool.compile_all(["this is not LLVM IR", parts[1]], _cache.compile_object)
    before = compile_pool.stats["offloaded"]
    objs = compile_pool.compile_all(parts, _cache.compile_object)
    assert compile_pool.stats["offloaded"] == before + 1
    assert objs == [_cache.compile_object(p) for p in parts]
