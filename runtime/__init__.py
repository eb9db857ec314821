"""The runtime: kernel IR, the LLVM and CUDA renderers, memory arena, executor and thread pool.

Nothing here imports the front end (graphc.nd, graphc.gluon)."""
