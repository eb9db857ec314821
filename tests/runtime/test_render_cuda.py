"""The CUDA renderer: generated source compiles with nvcc for sm_90 and sm_75."""
import os
import shutil
import subprocess

import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes.fuse import fuse_elementwise
from graphc.passes.memory import plan_memory
from graphc.runtime.lower import lower_graph, KernelStep
from graphc.runtime.render_cuda import render_cuda, render_cuda_module

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)


def _kernels():
    gb = GraphBuilder("cuda")
    F = gb.F
    x = gb.var("x", TensorType((64, 33)))
    d = gb.var("d", TensorType((64, 33), "float64"))
    i = gb.var("i", TensorType((64, 33), "int32"))
    w = gb.var("w", TensorType((16, 33)), "param")
    b = gb.var("b", TensorType((16,)), "param")
    p = gb.var("p", TensorType((3, 4, 5)))
    outs = [F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x,
            F.Activation(F.FullyConnected(x, w, b, num_hidden=16), act_type="relu"),
            F.sum(x * x, axis=1), F.max(d, axis=0), F.sum(F.exp(d)), F.mean(x),
            F.where(x > 0.0, F.erf(x), F.log1p(F.abs(x))),
            F.broadcast_mod(i, i + 3) + F.broadcast_div(i, i * 2 - 1), F.Cast(i > 3, dtype="float32"),
            F.batch_dot(p, p, transpose_b=True), F.Reshape(x, shape=(33, 64)),
            # copies with offsets in their bindings, and rows picked through an index array
            F.transpose(F.slice_axis(p, axis=1, begin=1, end=3), axes=(2, 0, 1)),
            F.Embedding(F.abs(x), w, input_dim=16, output_dim=33),
            F._backward_take(x, F.slice_axis(F.sum(i, axis=1), axis=0, begin=0, end=64), axis=0, mode="wrap",
                             shape=(16, 33))]
    g = fuse_elementwise(gb.build(outs))
    steps = lower_graph(g, plan_memory(g))
    return [s.kernel for s in steps if isinstance(s, KernelStep)]


def test_every_kernel_shape_renders_with_one_global_each():
    ks = _kernels()
    src = render_cuda_module(ks)
    assert src.count("__global__") == len(ks)
    one, launch = render_cuda(ks[0])
    assert "blockIdx.x * (long long)blockDim.x + threadIdx.x" in one and launch["block"] == 256
    assert "tanhf(" in one and "expf(" in one
    assert "__shared__" in src          # the full reduction and the tiled GEMM


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_90", "sm_75"])
def test_generated_source_compiles_with_nvcc(tmp_path, arch):
    src = tmp_path / "kernels.cu"
    src.write_text(render_cuda_module(_kernels()))
    out = tmp_path / "kernels.ptx"
    r = subprocess.run([NVCC, "-ptx", f"-arch={arch}", str(src), "-o", str(out)], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert ".entry" in out.read_text()
