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
