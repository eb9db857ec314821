"""The runtime: kernel IR, the LLVM and CUDA renderers, memory arena, executor and thread pool.

`compile_graph(graph) -> Program` is the entry point (runtime/executor.py); it is exported
lazily so that importing a leaf module (llvm_math, kernel_ir) does not load the whole compiler.
Nothing here imports the front end (graphc.nd, graphc.gluon).
"""


def __getattr__(name):
    if name in ("compile_graph", "Program"):
        from . import executor
        return getattr(executor, name)
    raise AttributeError(name)
