"""The runtime: kernel IR, the LLVM and CUDA renderers, memory arena, executor and thread pool.

`build_program(graph, fused, plan) -> Program` is the entry point (runtime/executor.py): it
takes a graph that the passes have already fused and memory-planned (`graphc.compiler` runs
them) and compiles it. It is exported lazily so that importing a leaf module (llvm_math,
kernel_ir) does not load the whole backend.

The runtime imports only `graphc.ops` and its own modules: never a pass (`graphc.passes`) and
never the front end (`graphc.nd`, `graphc.gluon`, ...); tests/runtime/test_layering.py checks.
"""


def __getattr__(name):
    if name in ("build_program", "Program"):
        from . import executor
        return getattr(executor, name)
    if name in ("build_gpu_program", "GpuProgram"):
        from .cuda import program
        return getattr(program, name)
    raise AttributeError(name)
