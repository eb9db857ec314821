"""compile_graph: the one place that orders the passes preparing a graph for a backend, and
hands the result to it.

A backend takes a graph that is already fused and memory-planned (`runtime.build_program`);
it never runs a pass itself, so that the design's layering holds (front end -> passes -> ops
<- runtime) and so that every step shows up where people look: `GRAPHC_DUMP=fuse_elementwise`
(or 1/all) prints the fused graph, `GRAPHC_DUMP=plan_memory` the memory plan. The order:

    [passes.pipeline.INFERENCE (fold_batchnorm) when training=False] ->
    passes.pipeline.lower_pipeline(training) (specialize_training, decompose_norms,
    decompose_softmax, fuse_elementwise) -> schedule_for_memory -> plan_memory -> check_plan ->
    runtime.build_program

A graph some earlier process compiled skips all of that: runtime/program_cache.py keeps what
the passes and build_program made of it (keyed by the graph, the settings and the compiler's
code) and builds the Program from that, with the object code from the disk cache.

This module only sequences; what each step does lives in its own module.
"""
from __future__ import annotations

import gc
import sys

from .ops.graph import Graph, verify
from .passes.memory import check_plan, plan_memory
from .passes.pipeline import INFERENCE, dump_wanted, lower_pipeline
from .passes.schedule_memory import schedule_for_memory
from .runtime import build_program
from .runtime.compile_pool import warm_up as warm_up_compile_helper

# graphs of at least this many nodes compile in modules shared with a helper process; smaller
# ones (eager operators) never start it
WARM_HELPER_NODES = 64


def compile_graph(graph: Graph, *, training: bool = False, cache: bool = True, check=None, device: int = 0):
    """Compile `graph` for the CPU and return a `runtime.Program`; a graph whose values live on
    'gpu(k)' compiles to a `runtime.GpuProgram` for that GPU instead (runtime/cuda/program.py).

    training selects the mode the program runs in: BatchNorm's batch or moving statistics
    (the graph is specialised to it) and host-run ops' behaviour (Dropout); cache=False skips the
    memory and disk caches (always compiles). check=True verifies the graph between passes and
    proves the memory plan safe; check=False skips both. None (the default) verifies between
    passes under GRAPHC_VERIFY=1 and always proves the plan: a wrong plan corrupts results
    silently, and check_plan is cheap (measured on MLPs of 15-800 nodes: under 0.3% of a
    compile, under 2% of a load from the disk cache, 4-6% of an in-memory cache hit that itself
    takes 1-30 ms; hybridized blocks reach this function once per input signature). device:
    the CPU device k whose worker pool runs the program (cpu(k); runtime/cpu_devices.py)."""
    from .runtime.cuda.graph_device import gpu_device_of
    if gpu_device_of(graph) is not None:
        return _compile_gpu(graph, training, cache, check, device)
    # a graph an earlier process compiled comes whole from the program cache, no pass run
    # (runtime/program_cache.py says when it applies and what its key covers)
    from .runtime import program_cache
    key = program_cache.program_key(graph, training, device, cache=cache, check=check)
    if key is None:
        return _compile(graph, training, cache, check, device)
    verify(graph, check_inference=False)

    def rebuild():
        return _compile(graph, training, cache, check, device)
    prog = program_cache.lookup(key, graph, training, device, rebuild)
    if prog is None:
        prog = rebuild()
        program_cache.store(key, graph, prog)
    return prog


def _compile_gpu(graph: Graph, training: bool, cache: bool, check, device: int):
    """A graph whose values live on 'gpu(k)' compiles to a runtime.cuda.program.GpuProgram, kept
    in memory (runtime/cuda/program.py: gpu_program_key), not on disk: the driver caches the
    kernel binaries, and the rest of a GPU build is the passes and one module load."""
    from .runtime.cuda.program import cached_program, gpu_program_key
    key = gpu_program_key(graph, training, cache=cache, check=check)
    return cached_program(key, lambda: _compile(graph, training, cache, check, device))


def _compile(graph: Graph, training: bool, cache: bool, check, device: int):
    """The passes and the backend, without the program cache. Python's cyclic garbage collector
    waits meanwhile: lowering and llvmlite's IR builder make hundreds of thousands of objects
    that live until the code is printed, and its full collections over them were half of
    building and printing ResNet-18's training IR (1.1 -> 0.5 CPU-s); what the compile leaves
    behind is collected once it is back on."""
    was_collecting = gc.isenabled()
    gc.disable()
    try:
        return _compile_now(graph, training, cache, check, device)
    finally:
        if was_collecting:
            gc.enable()


def _compile_now(graph: Graph, training: bool, cache: bool, check, device: int):
    verify(graph, check_inference=False)
    from .runtime.cuda.graph_device import gpu_device_of
    gpu = gpu_device_of(graph)
    if len(graph.nodes) >= WARM_HELPER_NODES and gpu is None:
        warm_up_compile_helper()     # its start overlaps the passes (runtime/compile_pool.py)
    lower = lower_pipeline(training)
    fused = lower(graph if training else INFERENCE(graph, check=check), check=check)
    fused = schedule_for_memory(fused)
    plan = plan_memory(fused)
    if check is None or check:
        check_plan(fused, plan)
    if dump_wanted("plan_memory"):
        print(f"-- after plan_memory --\n{plan.format(fused)}", file=sys.stderr)
    if gpu is not None:
        from .runtime.cuda.program import build_gpu_program
        return build_gpu_program(graph, fused, plan, training=training, device=gpu)
    return build_program(graph, fused, plan, training=training, cache=cache, device=device)


__all__ = ["compile_graph"]
