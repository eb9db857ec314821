"""Every kernel the model zoo's networks lower to renders as CUDA C and compiles with nvcc.

For each network (inference, and training: the forward and backward programs a hybridized
training step compiles) the compile pipeline runs up to lowering (the passes of
graphc.compiler._compile_now, then runtime.lower.lower_graph); each KernelStep's kernel is split
by cuda_pieces, and the loop pieces are rendered into one module per network, compiled with
`nvcc -ptx -arch=sm_90` (resnet18's training module for sm_75 too). Kernels already compiled
for an earlier network are not compiled again. Host steps (operators a GPU program would run on
the host) are allowed; each network's are printed (run with -s), fewer being better. The
layers of the no-host-steps census (GridGenerator, LRN, sort, padding modes...) are checked the
same way, and slow tests run some training steps' kernels through the CUDA simulator against the
CPU backend.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from graphc import nd
from graphc.gluon.cached_op import CachedOp, prepare
from graphc.gluon.model_zoo import vision
from graphc.passes.autodiff import differentiate, split_forward_backward
from graphc.passes.fuse_softmax_ce import fuse_softmax_ce
from graphc.passes.memory import plan_memory
from graphc.passes.pipeline import INFERENCE, SIMPLIFY, lower_pipeline
from graphc.passes.schedule_memory import schedule_for_memory
from graphc.runtime.cuda.driver import get_driver, reset_driver
from graphc.runtime.lower import HostStep, KernelStep, lower_graph
from graphc.runtime.render_cuda import cuda_pieces, render_cuda, render_cuda_module

from test_no_host_steps import FAST as FAST_CENSUS
from test_render_cuda import NVCC
from test_render_cuda_shapes import check_same

# (network, input size): the smallest input each family accepts
FAST = [("resnet18_v1", 32)]
SLOW = [("resnet50_v2", 32), ("vgg11_bn", 32), ("alexnet", 224), ("densenet121", 224), ("squeezenet1.1", 224),
        ("inceptionv3", 299), ("mobilenet0.25", 32), ("mobilenetv2_0.25", 32)]

# layers beyond the zoo that the no-host-steps census compiles (tests/runtime/test_no_host_steps.py):
# pooling variants, GridGenerator, LRN, UpSampling, sort/topk, padding modes, trigonometry
CENSUS = {name: FAST_CENSUS[name] for name in ("window_layers", "sorting_layers", "common_layers")}

_COMPILED: set = set()      # kernel names some earlier network's module compiled


def _programs(name, size, training):
    """[(label, graph)] as the hybridized zoo network compiles them: the inference graph, or the
    forward and backward of a training step (cached_op._compile_training's steps)."""
    if name in CENSUS:
        net, inputs, _ = CENSUS[name]()
    else:
        net = vision.get_model(name, classes=10)
        net.initialize()
        inputs = [nd.array(np.random.default_rng(0).standard_normal((1, 3, size, size)).astype("float32"))]
    entry = CachedOp(net).trace(inputs)
    graph = prepare(entry.graph, training)
    if not training:
        return [("inference", graph)]
    wrt = [v for v in graph.inputs if v.types[0].dtype.startswith("float")]
    gg = differentiate(graph, wrt, num_heads=entry.n_visible)
    gg = dataclasses.replace(gg, graph=fuse_softmax_ce(gg.graph))
    split = split_forward_backward(gg, graph.inputs)
    return [("forward", SIMPLIFY(split.forward)), ("backward", SIMPLIFY(split.backward))]


def _steps(graph, training):
    """compiler._compile_now's passes, then lowering (no backend)."""
    fused = lower_pipeline(training)(graph if training else INFERENCE(graph, check=False), check=False)
    fused = schedule_for_memory(fused)
    return lower_graph(fused, plan_memory(fused))


def _census(name, size, training):
    """({piece name: Kernel} of every loop piece, {'gemm': n, 'copy': n}, [(program, host op)])."""
    pieces, library, host = {}, {"gemm": 0, "copy": 0}, []
    for label, graph in _programs(name, size, training):
        for step in _steps(graph, training):
            if isinstance(step, HostStep):
                host.append((label, step.node.op))
                continue
            for kind, p in cuda_pieces(step.kernel):
                if kind == "kernel":
                    pieces.setdefault(p.name, p)
                else:
                    library[kind] += 1
    return pieces, library, host


def _check_launch(kernel, launch):
    block = launch["block"]
    threads = block if isinstance(block, int) else int(np.prod(block))
    assert 1 <= threads <= 1024, f"{kernel.name}: block {block}"
    assert launch["total"] >= 1, f"{kernel.name}: {launch}"
    grid = launch["grid"]
    assert grid == "auto" or (isinstance(grid, int) and grid >= 1) or all(g >= 1 for g in grid), \
        f"{kernel.name}: grid {grid}"


def _nvcc(tmp_path, stem, kernels, arch):
    src = tmp_path / f"{stem}.cu"
    src.write_text(render_cuda_module(kernels))
    out = tmp_path / f"{stem}_{arch}.ptx"
    r = subprocess.run([NVCC, "-ptx", f"-arch={arch}", str(src), "-o", str(out)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"{stem} ({arch}):\n{r.stderr[-3000:]}"
    assert out.read_text().count(".entry") == len(kernels)


def _check_network(tmp_path, name, size, training, archs=("sm_90",)):
    pieces, library, host = _census(name, size, training)
    assert pieces, f"{name}: no kernel pieces"
    for k in pieces.values():
        _check_launch(k, render_cuda(k)[1])
    ops = sorted({op for _, op in host})
    print(f"\n{name} {'training' if training else 'inference'}: {len(pieces)} distinct kernels, "
          f"{library['gemm']} GEMMs, {library['copy']} copies, {len(host)} host steps {ops}")
    if NVCC is None:
        return
    fresh = [k for n, k in pieces.items() if n not in _COMPILED]
    if fresh:
        stem = f"{name.replace('.', '_')}_{'train' if training else 'infer'}"
        for arch in archs:
            _nvcc(tmp_path, stem, fresh, arch)
        _COMPILED.update(k.name for k in fresh)


@pytest.mark.parametrize("name,size", FAST)
def test_zoo_inference_kernels_render_and_compile(tmp_path, name, size):
    _check_network(tmp_path, name, size, training=False)


@pytest.mark.parametrize("name,size", FAST)
def test_zoo_training_kernels_render_and_compile(tmp_path, name, size):
    _check_network(tmp_path, name, size, training=True, archs=("sm_90", "sm_75"))


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_census_window_layers_render_and_compile(tmp_path, training):
    _check_network(tmp_path, "window_layers", 0, training)


@pytest.mark.slow
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name", ["sorting_layers", "common_layers"])
def test_census_layers_render_and_compile(tmp_path, name, training):
    _check_network(tmp_path, name, 0, training)


@pytest.mark.slow
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name,size", SLOW)
def test_every_zoo_family_renders_and_compiles(tmp_path, name, size, training):
    _check_network(tmp_path, name, size, training)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA simulator compiles kernels with g++")
@pytest.mark.parametrize("name,size", [("resnet18_v1", 32), ("mobilenetv2_0.25", 32), ("window_layers", 0)])
def test_zoo_training_kernels_compute_what_the_cpu_computes(monkeypatch, name, size):
    """Every kernel of the training step, split into its pieces and launched through the CUDA
    simulator as render_cuda says, against the same kernel on the CPU backend (random inputs)."""
    monkeypatch.setenv("GRAPHC_CUDA_SIM", "1")
    monkeypatch.setenv("GRAPHC_CUDA_SIM_MEMORY", str(1 << 30))
    reset_driver()
    try:
        kernels = {}
        for _, graph in _programs(name, size, True):
            for step in _steps(graph, True):
                if isinstance(step, KernelStep):
                    kernels.setdefault(step.kernel.name, step.kernel)
        check_same(get_driver(), list(kernels.values()), seed=2)
    finally:
        reset_driver()
