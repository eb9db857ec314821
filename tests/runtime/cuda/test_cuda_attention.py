"""Fused attention on the GPU (runtime/render_cuda_attention.py) through tests/conftest.py's
`cuda_device`: the `_fused_attention` kernel compiled for gpu(0) gives the CPU program's
outputs, with and without masks (broadcast over heads or queries, -1e9 and -inf holes), for
every transpose flag, a softmax temperature (which scales the mask), kept probabilities (a
training forward), key counts above one block of threads and above the shared-memory row
(the streamed path), long query rows (read from global memory) and many output columns; a
training graph's gradients through the fused node; every variant compiled by nvcc. And a GPU
program's host fallback for a kernel the renderer cannot spell (runtime/cuda/host_fallback.py)."""
import subprocess
import warnings

import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate, split_forward_backward
from graphc.runtime.attention_kernel import AttentionBlock
from graphc.runtime.kernel_ir import Buf, Kernel, Loop
from graphc.runtime.cuda.program import GpuProgram, clear_program_cache
from graphc.runtime.lower import HostStep
from graphc.runtime.render_cuda import render_cuda, render_cuda_module
from graphc.runtime.render_cuda_attention import Q_CAP, SCORE_CAP, THREADS

from test_render_cuda import NVCC


@pytest.fixture(autouse=True)
def gpu(cuda_device):
    yield cuda_device


def build(device, n, tq, tk, d, dv, trans=(False, True, False), mask_shape=None, scale=1.0, dtype="float32",
          temperature=None, keep_probs=False):
    b = GraphBuilder("attn")
    F = b.F
    qs = (n, d, tq) if trans[0] else (n, tq, d)
    ks = (n, tk, d) if trans[1] else (n, d, tk)
    vs = (n, dv, tk) if trans[2] else (n, tk, dv)
    shapes = [qs, ks, vs] + ([mask_shape] if mask_shape else [])
    vals = [b.var(f"x{i}", TensorType(s, dtype, device)) for i, s in enumerate(shapes)]
    s = F.batch_dot(vals[0], vals[1], transpose_a=trans[0], transpose_b=trans[1])
    if scale != 1.0:
        s = s * scale
    if mask_shape:
        s = F.broadcast_add(s, vals[3])
    p = F.softmax(s, axis=-1) if temperature is None else F.softmax(s, axis=-1, temperature=temperature)
    out = F.batch_dot(p, vals[2], transpose_b=trans[2])
    return b.build([out, p] if keep_probs else [out]), shapes


def arrays_for(shapes, dtype, seed=0, masked=0.3, fill=-1e9):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(dtype) for s in shapes[:3]]
    if len(shapes) > 3:
        out.append(np.where(rng.random(shapes[3]) < masked, fill, rng.standard_normal(shapes[3])).astype(dtype))
    return out


def attention_blocks(prog):
    return [s for k in prog.kernels() for loop in k.body for s in getattr(loop, "body", [])
            if isinstance(s, AttentionBlock)]


def compare(*args, seed=0, fill=-1e9, **kw):
    """Compile the attention graph for gpu(0) and the CPU; the same outputs from both."""
    dtype = kw.get("dtype", "float32")
    g_gpu, shapes = build("gpu(0)", *args, **kw)
    g_cpu, _ = build("cpu(0)", *args, **kw)
    gpu, cpu = compile_graph(g_gpu), compile_graph(g_cpu)
    assert isinstance(gpu, GpuProgram)
    (blk,) = attention_blocks(gpu)
    assert (blk.probs is not None) == kw.get("keep_probs", False)
    assert not any(isinstance(s, HostStep) for s in gpu.steps), "the attention ran on the host"
    arrays = arrays_for(shapes, dtype, seed=seed, fill=fill)
    got, want = gpu(arrays), cpu(arrays)
    tol = 3e-5 if dtype == "float32" else 1e-11
    for j, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"output {j}")
    return blk, got


CASES = [
    # n, tq, tk, d, dv, trans, mask shape, dtype
    (2, 5, 7, 3, 4, (False, True, False), (1, 5, 7), "float32"),
    (1, 3, THREADS + 45, 8, 5, (True, False, True), (3, THREADS + 45), "float64"),   # keys over one block
    (3, 4, 1, 2, 2, (True, True, False), None, "float32"),                           # one key, no mask
    (2, 6, 40, 6, 11, (False, True, True), (2, 1, 40), "float32"),                   # a per-sequence mask
    (4, 1, 50, 16, 3, (False, False, False), (4, 1, 50), "float64"),                  # one query
    (1, 2, 9, 3, THREADS + 3, (False, True, False), (9,), "float32"),                 # columns over one block
]


@pytest.mark.parametrize("n, tq, tk, d, dv, trans, mask_shape, dtype", CASES)
def test_attention_matches_cpu(n, tq, tk, d, dv, trans, mask_shape, dtype):
    compare(n, tq, tk, d, dv, trans, mask_shape, scale=0.3, dtype=dtype)


def test_temperature_scales_the_mask_and_inf_holes():
    """softmax(s + mask, temperature=2): the pass folds 1/2 into both the scale and the mask's
    scale; -inf holes (a padded sequence) give exact zeros, as on the CPU."""
    blk, _ = compare(2, 5, 12, 4, 3, (False, True, False), (2, 1, 12), scale=0.5, temperature=2.0, fill=-np.inf)
    assert blk.mask_scale == 0.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kept_probabilities(dtype):
    blk, (out, probs) = compare(2, 7, THREADS + 9, 5, 4, (False, True, False), (1, 7, THREADS + 9), scale=0.4,
                                dtype=dtype, keep_probs=True)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("keep_probs", [False, True])
def test_streamed_keys_beyond_shared_memory(keep_probs):
    """A row longer than SCORE_CAP is streamed in chunks (scores computed per pass)."""
    tk = SCORE_CAP + 37
    src, _ = render_cuda_source(1, 2, tk, 3, 2)
    assert "keys streamed" in src
    compare(1, 2, tk, 3, 2, (False, True, False), (1, 1, tk), scale=0.2, keep_probs=keep_probs)


def test_long_query_rows_read_from_global_memory():
    d = Q_CAP + 5
    src, _ = render_cuda_source(1, 2, 6, d, 3)
    assert "gc_q[" not in src
    compare(1, 2, 6, d, 3, (True, True, False), (2, 6), scale=0.05)


def render_cuda_source(n, tq, tk, d, dv):
    g, _ = build("cpu(0)", n, tq, tk, d, dv, (False, True, False), (1, 1, tk))
    (k,) = [k for k in compile_graph(g).kernels() if any(isinstance(s, AttentionBlock) for s in k.body[0].body)]
    return render_cuda(k)


def test_training_graph_gradients_match_cpu():
    """Forward + backward of an attention layer, split as a hybridized block runs them: the
    fused forward keeps its probabilities for the softmax's gradient (a saved value); the
    forward's outputs and every gradient equal the CPU programs'."""
    def graph(device):
        b = GraphBuilder("attn_train")
        F = b.F
        t = lambda s: TensorType(s, "float32", device)  # noqa: E731
        q, k, v = (b.var(nm, t(s), "param") for nm, s in (("q", (2, 6, 4)), ("k", (2, 9, 4)), ("v", (2, 9, 3))))
        mask = b.var("mask", t((1, 6, 9)))
        s = F.broadcast_add(F.batch_dot(q, k, transpose_b=True) * 0.5, mask)
        out = F.batch_dot(F.softmax(s, axis=-1), v)
        fwd = b.build([F.mean(F.square(out))])
        gg = differentiate(fwd, wrt=[n for n in fwd.inputs if n.hints.get("kind") == "param"])
        split = split_forward_backward(gg, fwd.inputs)
        return (compile_graph(split.forward, training=True), compile_graph(split.backward, training=True), split,
                fwd.inputs)
    fwd, bwd, split, inputs = graph("gpu(0)")
    cfwd, cbwd, csplit, _ = graph("cpu(0)")
    assert isinstance(fwd, GpuProgram) and isinstance(bwd, GpuProgram)
    blocks = attention_blocks(fwd)
    assert blocks and blocks[0].probs is not None, "the training forward did not fuse with kept probabilities"
    assert not any(isinstance(s, HostStep) for s in fwd.steps)
    rng = np.random.default_rng(3)
    arrays = []
    for n in inputs:
        shape, dtype = n.types[0].shape, n.types[0].dtype
        if n.name == "mask":
            arrays.append(np.where(np.tril(np.ones(shape[1:]))[None] > 0, 0.0, -1e9).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    res, cres = fwd(arrays), cfwd(arrays)
    for j, (a, b) in enumerate(zip(res, cres)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"forward output {j}")

    def feed(results, sp):
        return [{"saved": lambda: results[sp.num_outputs + k], "input": lambda: arrays[k],
                 "head_grad": lambda: np.ones((1,), "float32")}[kind]() for kind, k in sp.backward_inputs]
    got, want = bwd(feed(res, split)), cbwd(feed(cres, csplit))
    assert len(got) == 3 and all(np.abs(g).sum() > 0 for g in got)
    for j, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=f"gradient {j}")


def attention_kernel_of(name, dtype, n, tq, tk, d, dv, trans, mask, probs):
    """A kernel of attention_kernel's shape, made directly (no graph to compile)."""
    bufs = [Buf("out", dtype, n * tq * dv), Buf("in0", dtype, n * tq * d), Buf("in1", dtype, n * tk * d),
            Buf("in2", dtype, n * tk * dv)]
    if mask:
        bufs.append(Buf("in3", dtype, tq * tk))
    if probs:
        bufs.insert(1, Buf("probs", dtype, n * tq * tk))
    blk = AttentionBlock("at", "out", "in0", "in1", "in2", "in3" if mask else None, dtype, n, tq, tk, d, dv, 1,
                         *trans, 0.125, 1.0, (0, tk, 1), "probs" if probs else None)
    return Kernel(name, bufs, [Loop("at", n * tq, [blk], independent=True)])


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_90", "sm_75"])
def test_every_variant_compiles_with_nvcc(tmp_path, arch):
    """Resident and streamed rows, kept probabilities, masks, transposes, both dtypes, query rows
    in shared or global memory: one module, compiled to PTX for `arch`."""
    kernels = []
    for i, (dtype, tk, d, trans, mask, probs) in enumerate([
            ("float32", 64, 32, (False, True, False), True, False),
            ("float64", 64, 32, (True, False, True), False, True),
            ("float32", SCORE_CAP + 1, 16, (False, True, False), True, True),
            ("float64", SCORE_CAP * 2, Q_CAP + 1, (True, True, True), True, False)]):
        kernels.append(attention_kernel_of(f"k_att{i}", dtype, 2, 3, tk, d, 5, trans, mask, probs))
    src = tmp_path / "attention.cu"
    src.write_text(render_cuda_module(kernels))
    out = tmp_path / f"attention_{arch}.ptx"
    r = subprocess.run([NVCC, "-ptx", f"-arch={arch}", str(src), "-o", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_text().count(".entry") == len(kernels)


def test_unrenderable_kernel_runs_its_node_on_the_host(monkeypatch):
    """A stand-in renderer that cannot spell tanh: the fused FullyConnected + tanh node (a GEMM
    and its epilogue kernel) runs on the host as one step, with one RuntimeWarning naming the
    operator; the other nodes stay on the GPU and every output equals the CPU's."""
    from graphc.runtime.cuda import host_fallback, launch_plan

    def standin(kernel):
        if "tanh" in str(kernel):
            raise NotImplementedError("stand-in: this renderer has no tanh")
        return render_cuda(kernel)
    monkeypatch.setattr(launch_plan, "render_cuda", standin)
    monkeypatch.setattr(host_fallback, "_warned", set())

    def graph(device):
        b = GraphBuilder("fallback")
        F = b.F
        x = b.var("x", TensorType((4, 6), "float32", device))
        w = b.var("w", TensorType((5, 6), "float32", device))
        bias = b.var("bias", TensorType((5,), "float32", device))
        h = F.tanh(F.FullyConnected(x, w, bias, num_hidden=5))
        return b.build([F.sum(h * h, axis=1) + 1.0, F.exp(h)])
    cpu = compile_graph(graph("cpu(0)"))
    with pytest.warns(RuntimeWarning, match=r"op _fused_gemm\) runs on the host.*stand-in: this renderer has no tanh"):
        gpu = compile_graph(graph("gpu(0)"))
    assert isinstance(gpu, GpuProgram)
    assert [op for _, _, op in gpu.host_fallbacks] == ["_fused_gemm"] and gpu.host_steps == 1
    assert "on the host (no CUDA rendering)" in str(gpu)
    assert sum(isinstance(s, HostStep) for s in gpu.steps) == 1 and len(gpu.steps) == len(cpu.steps) - 1
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(t.shape).astype("float32") for t in gpu.in_types]
    for a, b in zip(gpu(arrays), cpu(arrays)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    clear_program_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)     # the same kernel warns once per process
        again = compile_graph(graph("gpu(0)"))
    assert again.host_steps == 1


def test_renderable_programs_have_no_fallbacks():
    g, _ = build("gpu(0)", 1, 2, 3, 2, 2)
    prog = compile_graph(g)
    assert prog.host_fallbacks == [] and prog.host_steps == 0 and "on the host" not in str(prog)
