"""The CUDA renderer takes the convolution and pooling kernels (im2col, col2im, depthwise,
Winograd transforms, GEMMs with offsets, pooling windows); the source compiles with nvcc for
sm_90 and sm_75."""
import subprocess

import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory
from graphc.runtime.lower import KernelStep, lower_graph
from graphc.runtime.render_cuda import render_cuda, render_cuda_module

from test_render_cuda import NVCC


def _kernels():
    gb = GraphBuilder("convs")
    F = gb.F
    x = gb.var("x", TensorType((2, 4, 9, 9)))
    w = gb.var("w", TensorType((8, 4, 3, 3)), "param")
    b = gb.var("b", TensorType((8,)), "param")
    dw = gb.var("dw", TensorType((4, 1, 3, 3)), "param")
    w1 = gb.var("w1", TensorType((8, 4, 1, 1)), "param")
    y = F.relu(F.Convolution(x, w, b, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=8))
    z = F.Convolution(x, dw, kernel=(3, 3), pad=(1, 1), num_group=4, num_filter=4, no_bias=True)
    p = F.Pooling(z, kernel=(3, 3), stride=(2, 2), pad=(1, 1))
    q = F.Pooling(F.Convolution(x, w1, kernel=(1, 1), num_filter=8, no_bias=True), global_pool=True,
                  pool_type="avg")
    d = F.Deconvolution(y, w, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4)
    # Winograd F(4x4) (16x16 output) and F(2x2) (14x14)
    xw = gb.var("xw", TensorType((1, 4, 16, 16)))
    xv = gb.var("xv", TensorType((1, 4, 14, 14)))
    wg = F.sum(F.Convolution(xw, w, kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True)) + \
        F.sum(F.Convolution(xv, w, kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True))
    g = gb.build([F.sum(y) + F.sum(p) + F.sum(q) + F.sum(d) + wg])
    joint = differentiate(g, [g.input_by_name("x"), g.input_by_name("w")]).graph
    fused = fuse_elementwise(joint)
    steps = lower_graph(fused, plan_memory(fused))
    ks = {}
    for s in steps:
        if isinstance(s, KernelStep):
            ks.setdefault(s.kernel.name, s.kernel)
    return list(ks.values())


def test_every_convolution_kernel_renders():
    ks = _kernels()
    names = " ".join(k.name for k in ks)
    for part in ("pad", "crop", "im2col", "col2im", "depthwise", "gemm", "pool", "wgin", "wgw", "wgout"):
        assert part in names
    src = render_cuda_module(ks)
    assert src.count("__global__") == len(ks)
    # im2col is one perfect nest: a thread per column element; col2im (its planes accumulate
    # overlapping windows) gets a block per (image, channel) plane, whose threads split a
    # window position's output rows and columns, a barrier between window positions
    im2col = next(k for k in ks if "im2col" in k.name)
    text, launch = render_cuda(im2col)
    assert "% 5u" in text and launch["grid"] == "auto"
    col2im = next(k for k in ks if "col2im" in k.name)
    text, launch = render_cuda(col2im)
    assert "const long long bc = gc_b;" in text and "__syncthreads" in text and launch["grid"] == "auto"


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_90", "sm_75"])
def test_convolution_kernels_compile_with_nvcc(tmp_path, arch):
    src = tmp_path / "conv.cu"
    src.write_text(render_cuda_module(_kernels()))
    out = tmp_path / "conv.ptx"
    r = subprocess.run([NVCC, "-ptx", f"-arch={arch}", str(src), "-o", str(out)], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_text().count(".entry") >= 5
