"""The kernel IR prints like a program and renders to vectorised LLVM IR."""
from graphc.ops import scalar as S
from graphc.ops.types import TensorType
from graphc.runtime.cache import optimized_ir
from graphc.runtime.lower import elementwise_kernel
from graphc.runtime.render_llvm import render_llvm


def _kernel():
    t = TensorType((8, 1024))
    x = S.arg(0)
    return elementwise_kernel("k_demo", S.tanh(x * 0.5 + 1.0) * S.arg(1), t, [t, TensorType((1024,))],
                              ["in0", "in1"], "out")


def test_kernel_prints_loops_loads_and_formula():
    text = str(_kernel())
    assert text.splitlines()[0] == "kernel k_demo(out: f32*[8192], in0: f32*[8192], in1: f32*[1024]):"
    assert "for i0 in 0..8:" in text and "for i1 in 0..1024:" in text
    assert "out[i0*1024 + i1] = mul(tanh(add(mul(in0[i0*1024 + i1], 0.5), 1.0)), in1[i1])" in text


def test_innermost_loop_vectorises():
    ir_text = render_llvm(_kernel())
    assert "noalias" in ir_text
    from graphc.runtime.cache import target_machine
    tm = target_machine()
    opt = optimized_ir(ir_text.replace('target triple = "unknown-unknown-unknown"', f'target triple = "{tm.triple}"'))
    assert "x float>" in opt, "the loop body should be widened to vector registers"


def _nest(stores_of):
    """A 2-level loop nest kernel over y[4, 64], x[4, 64] whose inner body is stores_of()."""
    from graphc.runtime.kernel_ir import Buf, Kernel, Loop
    return Kernel("k_nest", [Buf("y", "float32", 4 * 64), Buf("x", "float32", 4 * 64)],
                  [Loop("r", 4, [Loop("c", 64, stores_of())])], 4 * 64)


def _run(kernel, *arrays):
    """Run a kernel once, single-threaded, on arrays bound to its buffers in order."""
    import ctypes
    from graphc.runtime import cache as _cache
    from graphc.runtime.render_llvm import ModuleBuilder
    tm = _cache.target_machine()

    def build_ir():
        mb = ModuleBuilder("t", 1, tm.triple, str(tm.target_data))
        mb.add_entry("entry", [(kernel, [(i, 0) for i in range(len(arrays))])])
        return str(mb)
    addrs, _, engine = _cache.load("unused", build_ir, ["entry"], use_cache=False)
    ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])(ptrs)
    del engine


def test_outer_loops_are_not_unrolled_and_the_metadata_verifies():
    """Loops that hold loops carry llvm.loop.unroll.disable (a self-referential distinct node,
    which LLVM parses and keeps through -O3); innermost loops keep LLVM's own choice."""
    import numpy as np
    from graphc.runtime.kernel_ir import Index, Load, Store
    k = _nest(lambda: [Store("y", Index((("r", 64), ("c", 1))), S.arg(0) * 2.0, (Load("x", Index((("r", 64), ("c", 1)))),))])
    text = render_llvm(k)
    assert text.count('!"llvm.loop.unroll.disable"') == 1 and text.count("!llvm.loop") == 1
    assert "distinct !{" in text
    opt = optimized_ir(text)
    assert "llvm.loop.unroll.disable" in opt
    x = np.arange(256, dtype=np.float32)
    y = np.zeros(256, np.float32)
    _run(k, y, x)
    np.testing.assert_array_equal(y, 2 * x)
    assert y.any()


def test_statements_with_the_same_loads_share_them_until_their_buffer_is_written():
    """Stores in one block with identical loads emit them (and common subexpressions) once;
    a store to a buffer they read makes the next statement load again (in place updates)."""
    import numpy as np
    from graphc.runtime.kernel_ir import Buf, Index, Kernel, Load, Loop, Store
    at = Index((("i", 1),))
    loads = (Load("x", at), Load("y", at))
    common = S.exp(S.arg(0)) + S.arg(1)
    k = Kernel("k_share", [Buf("y", "float32", 64), Buf("x", "float32", 64), Buf("z", "float32", 64)], [
        Loop("i", 64, [Store("z", at, common * 2.0, loads),        # z = 2 (e^x + y)
                       Store("y", at, common + 1.0, loads),        # y = e^x + y + 1: writes y...
                       Store("z", at, S.arg(1) + S.arg(0), (Load("z", at), Load("y", at)))])], 64)  # ...z += new y
    text = render_llvm(k)
    body = text[text.index("define internal void @\"k_share.body\""):]
    body = body[:body.index("\n}")]
    assert body.count("load float") == 4          # x and y once, then z and the new y
    x = np.linspace(-1, 1, 64).astype(np.float32)
    y0 = np.linspace(0, 2, 64).astype(np.float32)
    y, z = y0.copy(), np.zeros(64, np.float32)
    _run(k, y, x, z)
    e = np.exp(x.astype(np.float64)) + y0
    np.testing.assert_allclose(y, e + 1, rtol=1e-5)
    np.testing.assert_allclose(z, 2 * e + e + 1, rtol=1e-5)


def test_a_loop_variable_named_like_a_buffer_is_refused():
    """CUDA C has one namespace for both: the buffer would be shadowed by the counter."""
    import pytest
    from graphc.runtime.kernel_ir import Buf, Index, Kernel, Load, Loop, Store
    with pytest.raises(ValueError, match=r"k_bad.*\['x'\]"):
        Kernel("k_bad", [Buf("y", "float32", 8), Buf("x", "float32", 8)],
               [Loop("x", 8, [Store("y", Index((("x", 1),)), S.arg(0), (Load("x", Index((("x", 1),))),))])], 8)
