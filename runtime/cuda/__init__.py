"""The CUDA backend's runtime: the driver seam, device memory, kernel compilation and GPU programs.

Layers, bottom up (each module knows only the ones below it):
- `driver`: the seam. One `Driver` per process: the real one (pycuda; NVIDIA's cuda-bindings
  where pycuda is not installed) or the simulator (`GRAPHC_CUDA_SIM=1`, `sim.py`), which runs the
  same CUDA C source on the host so that everything above the seam is tested without a GPU.
- `memory`: a caching allocator per device (device allocations are slow and synchronizing, and a
  training step frees and asks for the same sizes every step).
- `program`: a fused, memory-planned graph as one launch sequence over one device arena.
`runtime/render_cuda.py` stays the only file that knows CUDA syntax.
"""
