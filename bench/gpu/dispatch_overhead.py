"""The framework's own Python cost of running work on a GPU, without the GPU's.

Why a do-nothing driver: the simulator runs kernels on the CPU and a real launch costs the
driver a few microseconds, so neither shows what graphc itself spends per call. NullDriver
returns from every launch, GEMM and copy at once and hands out memory from a counter, so the
time measured is graphc's: GpuProgram.run for a 1-launch and a 20-launch program, and eager
operators (a + b, nd.dot, relu) through the whole nd path.

    .venv/bin/python bench/gpu/dispatch_overhead.py [--repeat N] [--graphs] [--profile CASE]

Prints microseconds per call (best of 5 rounds of N calls). --graphs gives the driver a
do-nothing `capture`, so the 20-call program is served by a replayed graph (the Python side
only: what cuGraphLaunch costs on hardware is not measured here). --profile runs one case
under cProfile and prints the top functions by own time.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from graphc.runtime.cuda import driver as _driver      # noqa: E402


class _Module:
    def function(self, name):
        return name


class NullDriver(_driver.Driver):
    """Every device operation returns at once; memory comes from a counter (never reused by the
    driver: the caching allocator above it reuses blocks). Counts launches so a caller can check
    that work was issued."""

    name = "null"

    def __init__(self, devices: int = 1, capacity: int = 1 << 40):
        self.devices, self.capacity, self.next = devices, capacity, 1 << 20
        self.launches = self.gemms = self.copies = 0

    def device_count(self):
        return self.devices

    def device_name(self, device):
        return "null device"

    def total_memory(self, device):
        return self.capacity

    def multiprocessor_count(self, device):
        return 132

    def compute_capability(self, device):
        return (9, 0)

    def malloc(self, device, nbytes):
        ptr, self.next = self.next, self.next + -(-nbytes // 256) * 256
        return ptr

    def free(self, device, ptr):
        pass

    def memcpy_htod(self, device, dst, src):
        self.copies += 1

    def memcpy_dtoh(self, device, dst, src):
        self.copies += 1

    def memcpy_dtod(self, device, dst, src, nbytes):
        self.copies += 1

    def memset(self, device, ptr, nbytes):
        pass

    def load_module(self, device, source):
        return _Module()

    def launch(self, device, function, grid, block, args):
        self.launches += 1

    def gemm(self, device, g, a, b, c):
        self.gemms += 1

    def synchronize(self, device):
        pass


class _NullGraph:
    def __init__(self, driver):
        self.driver = driver

    def replay(self):
        self.driver.replays += 1


class NullGraphDriver(NullDriver):
    """NullDriver with `capture` (runs nothing; replay counts): the Python side of serving a
    program from a CUDA graph (runtime/cuda/program_graphs.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.replays = 0

    def capture(self, device, fn):
        fn()
        return _NullGraph(self)


def install(drv) -> None:
    """Make `drv` the process's driver (as get_driver() would have made it)."""
    _driver.reset_driver()
    _driver._driver, _driver._made = drv, True


def _time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best * 1e6


def _program(n_layers: int):
    """n_layers 0: x + y, one launch."""
    """A GpuProgram of n_layers (dot, then relu(+ y)): a GEMM and a kernel launch each (a product
    does not fuse with its neighbours), 64x64 float32."""
    import graphc as mx
    from graphc.compiler import compile_graph
    from graphc.ops.builder import GraphBuilder
    from graphc.ops.types import TensorType
    t = TensorType((64, 64), "float32", "gpu(0)")
    b = GraphBuilder(f"chain{n_layers}")
    x, y = b.var("x", t, "input"), b.var("y", t, "input")
    h = x.value
    if not n_layers:
        h = b.emit("elemwise_add", [h, y.value], {}).out(0)
    for i in range(n_layers):
        h = b.emit("dot", [h, y.value], {}).out(0)
        h = b.emit("relu", [b.emit("elemwise_add", [h, y.value], {}).out(0)], {}).out(0)
    g = b.build([h])
    del mx
    return compile_graph(g, training=False)


def cases():
    import graphc as mx
    from graphc.ndarray import gpu as _gpu
    from graphc.runtime.cuda.memory import allocator
    ctx = mx.gpu(0)
    a = mx.nd.array(np.ones((64, 64), np.float32), ctx=ctx)
    b = mx.nd.array(np.ones((64, 64), np.float32), ctx=ctx)
    out = {}
    p1 = _program(0)
    bufs = [_gpu.device_buffer(a), _gpu.device_buffer(b)]
    outs1 = [allocator(0).allocate(64 * 64 * 4)]
    out["program.run 1 launch (new output)"] = lambda: p1.run(bufs)
    out["program.run 1 launch (given output)"] = lambda: p1.run(bufs, outs1)
    os.environ["GRAPHC_CUDA_GRAPHS"] = "0"          # (read when a program is built)
    try:
        p20 = _program(10)
    finally:
        os.environ.pop("GRAPHC_CUDA_GRAPHS")
    assert len(p1._calls) == 1 and len(p20._calls) == 20, (p1._calls, p20._calls)
    out["program.run 20 calls (10 gemm, 10 launch)"] = lambda: p20.run(bufs, outs1)
    if hasattr(p20.driver, "capture"):
        p20g = _program(10)
        assert p20g is not p20 and p20g._graphs is not None
        out["program.run 20 calls, graph replay"] = lambda: p20g.run(bufs, outs1)
    out["eager a + b"] = lambda: a + b
    out["eager nd.dot(a, b)"] = lambda: mx.nd.dot(a, b)
    out["eager nd.relu(a)"] = lambda: mx.nd.relu(a)
    out["eager a += b"] = lambda: a.__iadd__(b)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=2000)
    ap.add_argument("--graphs", action="store_true",
                    help="a driver with capture: programs of 4+ calls replay CUDA graphs")
    ap.add_argument("--profile", default=None, help="a case name prefix to run under cProfile")
    args = ap.parse_args(argv)
    os.environ.pop("GRAPHC_CUDA_SIM", None)
    drv = NullGraphDriver() if args.graphs else NullDriver()
    install(drv)
    table = cases()
    if args.profile:
        name = next(k for k in table if k.startswith(args.profile))
        fn = table[name]
        fn()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.repeat):
            fn()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    print(f"graphc GPU dispatch overhead, do-nothing driver, {args.repeat} calls x best of 5 (us per call)")
    for name, fn in table.items():
        print(f"  {name:40s} {_time(fn, args.repeat):8.1f}")
    from graphc.ndarray import gpu_ops
    print(f"  (eager: {gpu_ops.stats()})")
    print(f"  (launches issued: {drv.launches}, gemms: {drv.gemms}, copies: {drv.copies}"
          + (f", graph replays: {drv.replays})" if args.graphs else ")"))


if __name__ == "__main__":
    main()
