"""runtime/module_split.py: a large kernels module cut into parts that compile apart (some in the
helper process) and link into the same program; and compile_pool's sharing of parts by cost."""
import ctypes

import llvmlite.ir as ir
import numpy as np

from graphc.ops import scalar as S
from graphc.runtime import cache as _cache
from graphc.runtime import compile_pool, llvm_jit, module_split
from graphc.runtime.kernel_ir import Buf, Index, Kernel, Load, Loop, Store
from graphc.runtime.render_llvm import ModuleBuilder


def _kernel(j, n):
    """y[i] = exp(x[i] * c_j) + j (exp: an internal helper of llvm_math that every part needs)."""
    at = Index((("i", 1),))
    expr = S.call("exp", S.arg(0) * float(0.01 * (j + 1))) + float(j)
    return Kernel(f"k_split_{j}", [Buf("y", "float32", n), Buf("x", "float32", n)],
                  [Loop("i", n, [Store("y", at, expr, (Load("x", at),))])], n)


def _program(n_kernels, n=256):
    tm = _cache.target_machine()
    mb = ModuleBuilder("t", 1, tm.triple, str(tm.target_data))
    mb.add_entry("entry", [(_kernel(j, n), [(1 + j, 0), (0, 0)]) for j in range(n_kernels)])
    return mb


def _run(texts, n_kernels, n=256):
    addrs, _, code = _cache.load("unused", lambda: list(texts), ["entry"], use_cache=False)
    x = np.linspace(-2, 2, n, dtype=np.float32)
    ys = [np.zeros(n, np.float32) for _ in range(n_kernels)]
    ptrs = (ctypes.c_void_p * (1 + n_kernels))(x.ctypes.data, *[y.ctypes.data for y in ys])
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])(ptrs)
    del code
    for j, y in enumerate(ys):
        want = np.exp(x.astype(np.float64) * (0.01 * (j + 1))) + j
        np.testing.assert_allclose(y, want, rtol=2e-6, atol=2e-6, err_msg=f"kernel {j}")


def test_small_modules_stay_whole():
    mb = _program(3)
    assert len(module_split.split_module(mb.module)) == 1


def test_parts_compile_apart_and_link_into_the_same_program(monkeypatch):
    monkeypatch.setattr(module_split, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(module_split, "MIN_PART_BYTES", 1)
    mb = _program(12)
    parts = module_split.split_module(mb.module, workers=2)
    assert len(parts) == module_split.MAX_PARTS
    # every kernel is defined exactly once, the entry in the first part
    for j in range(12):
        assert sum(f'define void @"k_split_{j}"(' in p for p in parts) == 1
    assert 'define void @"entry"(' in parts[0]
    assert all('define void @"entry"(' not in p for p in parts[1:])
    # a part calling another part's kernel through the entry's table declares it
    assert any('declare void @"k_split_' in p for p in parts)
    # each part alone is a valid module
    for p in parts:
        _cache.compile_object(p)
    monkeypatch.setattr(compile_pool, "offload_wanted", lambda: False)
    _run(parts, 12)


def test_parts_shared_with_the_helper_give_the_same_results(monkeypatch):
    monkeypatch.setattr(module_split, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(module_split, "MIN_PART_BYTES", 1)
    monkeypatch.setattr(compile_pool, "MIN_OFFLOAD_BYTES", 0)
    monkeypatch.setattr(compile_pool, "offload_wanted", lambda: True)
    mb = _program(12)
    before = compile_pool.stats["offloaded"]
    _run(mb.texts(), 12)
    assert compile_pool.stats["offloaded"] == before + 1


def test_an_internal_variable_keeps_its_users_together(monkeypatch):
    """Two functions sharing an internal mutable global must land in one part (a copy would be
    a second variable); an internal constant may be copied."""
    monkeypatch.setattr(module_split, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(module_split, "MIN_PART_BYTES", 1)
    m = ir.Module("t")
    i64 = ir.IntType(64)
    counter = ir.GlobalVariable(m, i64, "counter")
    counter.linkage = "internal"
    counter.initializer = ir.Constant(i64, 0)
    for name in ("bump", "read", "other1", "other2", "other3"):
        fn = ir.Function(m, ir.FunctionType(i64, []), name)
        b = ir.IRBuilder(fn.append_basic_block())
        if name in ("bump", "read"):
            v = b.load(counter)
            if name == "bump":
                b.store(b.add(v, ir.Constant(i64, 1)), counter)
            b.ret(v)
        else:
            b.ret(ir.Constant(i64, len(name)))
    parts = module_split.split_module(m, workers=2)
    assert len(parts) > 1
    holders = [p for p in parts if "@\"counter\" = internal" in p or "@counter = internal" in p]
    assert len(holders) == 1
    assert 'define i64 @"bump"()' in holders[0] and 'define i64 @"read"()' in holders[0]


def test_sharing_balances_estimated_cost():
    # the costliest first, each to the side with less: 10 here, 7 and 4 there, 3 here
    assert compile_pool._share([3, 10, 4, 7]) == {3, 2}
    assert compile_pool._share([5]) == set()
    # functions cost beyond their bytes: one module of many small functions outweighs a bigger text
    many = "\ndefine void @f() {\n}" * 20
    few = "x" * (len(many) * 2)
    assert llvm_jit.estimated_cost(many) > llvm_jit.estimated_cost(few)
