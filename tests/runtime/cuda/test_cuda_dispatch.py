"""The per-call path of GPU programs (runtime/cuda/program.py): argument lists prepared at build
and patched per call, and CUDA graphs replayed per pointer tuple (runtime/cuda/program_graphs.py).

Most tests run on a stand-in driver that executes nothing and records every call, so that what
a program issues is checked pointer by pointer, and a capture-capable variant whose capture
records what the captured function issues and whose replay re-issues it (what a CUDA graph does:
the pointers captured are the pointers replayed). One test runs the simulator (or the real GPU)
to check values."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.runtime.cuda import driver as cuda_driver
from graphc.runtime.cuda import launch_plan, program_graphs
from graphc.runtime.cuda.driver import CudaError, Driver
from graphc.runtime.cuda.memory import allocator
from graphc.runtime.cuda.program import GpuProgram, clear_program_cache
from graphc.runtime.dropout_kernel import SEED_WORDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class _Module:
    def function(self, name):
        return name


class RecordingDriver(Driver):
    """Runs nothing; `log` gets ('launch', name, grid, block, pointers), ('gemm', m, a, b, c) or
    ('dtod', dst, src, nbytes) per issued call (argument lists copied: the program patches its
    own lists in place). Memory comes from a counter."""

    name = "recording"

    def __init__(self):
        self.next, self.log = 1 << 20, []

    def device_count(self):
        return 1

    def device_name(self, device):
        return "recording stand-in"

    def total_memory(self, device):
        return 1 << 34

    def multiprocessor_count(self, device):
        return 4

    def compute_capability(self, device):
        return (9, 0)

    def malloc(self, device, nbytes):
        ptr, self.next = self.next, self.next + nbytes + 4096
        return ptr

    def free(self, device, ptr):
        pass

    def memcpy_htod(self, device, dst, src):
        self.log.append(("htod", dst, src.nbytes))

    def memcpy_dtoh(self, device, dst, src):
        self.log.append(("dtoh", src, dst.nbytes))

    def memcpy_dtod(self, device, dst, src, nbytes):
        self.log.append(("dtod", dst, src, nbytes))

    def memset(self, device, ptr, nbytes):
        self.log.append(("memset", ptr, nbytes))

    def load_module(self, device, source):
        return _Module()

    def launch(self, device, function, grid, block, args):
        self.log.append(("launch", function, tuple(grid), tuple(block), tuple(args)))

    def gemm(self, device, g, a, b, c):
        self.log.append(("gemm", g.m, a, b, c))

    def synchronize(self, device):
        pass


class _Graph:
    def __init__(self, driver, calls):
        self.driver, self.calls, self.closed = driver, calls, False

    def replay(self):
        assert not self.closed, "a closed graph was replayed"
        self.driver.log.append(("replay", id(self)))
        self.driver.log.extend(self.calls)

    def close(self):
        self.closed = True


class CapturingDriver(RecordingDriver):
    """RecordingDriver with `capture`: the calls fn issues are recorded into the graph, not
    run (as CUDA stream capture); `replay` appends them to the log again."""

    def __init__(self, fail=False):
        super().__init__()
        self.graphs, self.fail = [], fail

    def capture(self, device, fn):
        outer, self.log = self.log, []
        try:
            fn()
            if self.fail:
                raise CudaError("cuStreamEndCapture (stand-in): refused")
        finally:
            calls, self.log = self.log, outer
        g = _Graph(self, calls)
        self.graphs.append(g)
        return g


@pytest.fixture
def install(monkeypatch):
    """install(driver): make it the process's driver for one test."""
    monkeypatch.delenv("GRAPHC_CUDA_SIM", raising=False)
    monkeypatch.delenv(program_graphs.ENV, raising=False)

    def put(drv):
        cuda_driver.reset_driver()
        clear_program_cache()
        cuda_driver._driver, cuda_driver._made = drv, True
        return drv
    yield put
    clear_program_cache()
    from graphc import device
    if device.MULTI:
        device.release_devices()
    cuda_driver.reset_driver()


def chain(layers, n=8, device="gpu(0)"):
    """relu(dot(h, y) + y) `layers` times: a GEMM and a launch per layer (a product does not
    fuse with its neighbours)."""
    t = TensorType((n, n), "float32", device)
    b = GraphBuilder(f"chain{layers}")
    x, y = b.var("x", t, "input"), b.var("y", t, "input")
    h = x.value
    for _ in range(layers):
        h = b.emit("dot", [h, y.value], {}).out(0)
        h = b.emit("relu", [b.emit("elemwise_add", [h, y.value], {}).out(0)], {}).out(0)
    return compile_graph(b.build([h]), training=False)


def expected_calls(prog, inputs, outputs):
    """What the program must issue, resolved from its plan (launch_plan's slots) the slow way."""
    bases = [b.ptr for b in inputs] + [b.ptr for b in outputs] + prog._const_ptrs + \
        [a.ptr for a in prog._arenas] + [prog._seed.ptr if prog._seed is not None else 0]
    out = []
    for c in prog._calls:
        if isinstance(c, launch_plan.Launch):
            out.append(("launch", c.name, c.grid, c.block, tuple(bases[s] + o for s, o in c.args)))
        elif isinstance(c, launch_plan.GemmCall):
            out.append(("gemm", c.gemm.m, *(bases[s] + o for s, o in (c.a, c.b, c.c))))
        else:
            out.append(("dtod", bases[c.dst[0]] + c.dst[1], bases[c.src[0]] + c.src[1], c.nbytes))
    return out


def buffers(n, nbytes=8 * 8 * 4):
    return [allocator(0).allocate(nbytes) for _ in range(n)]


def test_prepared_arguments_follow_each_calls_pointers(install):
    drv = install(RecordingDriver())
    prog = chain(3)
    assert isinstance(prog, GpuProgram) and len(prog._calls) == 6
    for _ in range(3):             # new buffers each time: nothing of the last call may stay
        ins, outs = buffers(2), buffers(1)
        drv.log.clear()
        prog.run(ins, outs)
        assert drv.log == expected_calls(prog, ins, outs)
    drv.log.clear()
    made = prog.run(ins)            # outputs from the pool
    assert drv.log == expected_calls(prog, ins, made)


def test_a_wrong_buffer_is_still_refused_by_name(install):
    install(RecordingDriver())
    prog = chain(1)
    small = allocator(0).allocate(16)
    with pytest.raises(Exception, match="input 1 .* needs 256 bytes"):
        prog.run([buffers(1)[0], small])
    with pytest.raises(Exception, match="2 inputs expected, 1 device buffers given"):
        prog.run(buffers(1))
    with pytest.raises(Exception, match="output 0 .* needs 256 bytes"):
        prog.run(buffers(2), [small])


def test_a_graph_is_captured_at_the_second_sighting_and_replays_the_same_calls(install):
    drv = install(CapturingDriver())
    prog = chain(3)
    ins, outs = buffers(2), buffers(1)
    want = expected_calls(prog, ins, outs)
    drv.log.clear()
    prog.run(ins, outs)                                     # first sighting: launch by launch
    assert drv.log == want and not drv.graphs
    drv.log.clear()
    prog.run(ins, outs)                                     # second: captured, then replayed once
    assert len(drv.graphs) == 1 and drv.graphs[0].calls == want
    assert drv.log == [("replay", id(drv.graphs[0]))] + want
    drv.log.clear()
    prog.run(ins, outs)                                     # later: replayed, no new capture
    assert drv.log == [("replay", id(drv.graphs[0]))] + want and len(drv.graphs) == 1
    # another output buffer: not served by the old graph (its pointers would be wrong)
    other = buffers(1)
    drv.log.clear()
    prog.run(ins, other)
    assert drv.log == expected_calls(prog, ins, other) and len(drv.graphs) == 1
    assert prog._graphs.captures == 1 and prog._graphs.replays == 2


def test_graphs_are_kept_per_program_lru_and_closed_when_dropped(install):
    drv = install(CapturingDriver())
    prog = chain(2)
    ins = buffers(2)
    outs = [buffers(1) for _ in range(program_graphs.GRAPHS_PER_PROGRAM + 1)]
    for o in outs:
        prog.run(ins, o)
        prog.run(ins, o)
    assert len(drv.graphs) == program_graphs.GRAPHS_PER_PROGRAM + 1
    assert len(prog._graphs) == program_graphs.GRAPHS_PER_PROGRAM
    assert drv.graphs[0].closed and not any(g.closed for g in drv.graphs[1:])
    # the dropped tuple is counted from scratch: launch by launch once, captured again after
    drv.log.clear()
    prog.run(ins, outs[0])
    assert drv.log == expected_calls(prog, ins, outs[0])
    # the newest ones still replay
    drv.log.clear()
    prog.run(ins, outs[-1])
    assert drv.log[0] == ("replay", id(drv.graphs[-1]))


def test_a_reset_driver_closes_the_programs_graphs(install):
    drv = install(CapturingDriver())
    prog = chain(2)
    ins, outs = buffers(2), buffers(1)
    prog.run(ins, outs)
    prog.run(ins, outs)
    assert len(drv.graphs) == 1
    cuda_driver.reset_driver()
    install(CapturingDriver())
    with pytest.raises(Exception, match="driver that has since been reset"):
        prog.run(ins, outs)
    assert drv.graphs[0].closed


def test_graphs_off_by_setting_small_programs_and_drivers_without_capture(install, monkeypatch):
    monkeypatch.setenv(program_graphs.ENV, "0")
    drv = install(CapturingDriver())
    prog = chain(2)
    assert prog._graphs is None
    monkeypatch.delenv(program_graphs.ENV)
    clear_program_cache()
    assert chain(2)._graphs is not None
    assert chain(1)._graphs is None                    # 2 calls: a graph would save nothing
    ins, outs = buffers(2), buffers(1)
    small = chain(1)
    for _ in range(3):
        small.run(ins, outs)
    assert not drv.graphs
    install(RecordingDriver())
    assert chain(2)._graphs is None                    # (the simulator's case: no capture)


def test_a_failed_capture_warns_once_and_runs_launch_by_launch(install):
    drv = install(CapturingDriver(fail=True))
    prog = chain(2)
    ins, outs = buffers(2), buffers(1)
    want = expected_calls(prog, ins, outs)
    prog.run(ins, outs)
    drv.log.clear()
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        prog.run(ins, outs)
    assert drv.log == want
    drv.log.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prog.run(ins, outs)
    assert drv.log == want


def test_eager_ops_issue_one_program_call_each_with_fresh_outputs(install):
    import graphc as mx
    drv = install(RecordingDriver())
    a = mx.nd.array(np.ones((4, 4), np.float32), ctx=mx.gpu(0))
    b = mx.nd.array(np.ones((4, 4), np.float32), ctx=mx.gpu(0))
    drv.log.clear()
    c = a + b
    d = a + b
    launches = [e for e in drv.log if e[0] == "launch"]
    assert len(launches) == 2
    pa, pb = (mx.nd.gpu.device_buffer(x).ptr for x in (a, b))
    pc, pd = (mx.nd.gpu.device_buffer(x).ptr for x in (c, d))
    assert len({pa, pb, pc, pd}) == 4 and type(c) is type(a) and c.shape == (4, 4)
    for (_, _, _, _, args), out in zip(launches, (pc, pd)):
        assert set(args) == {pa, pb, out}


def test_values_through_the_prepared_path_on_the_device(cuda_device):
    """Repeated calls (buffers from the pool, so pointer tuples change and come back: on a
    real GPU some calls replay a CUDA graph) give numpy's values."""
    clear_program_cache()
    try:
        prog = chain(2, n=4)
        rng = np.random.default_rng(0)
        for _ in range(5):
            x, y = (rng.standard_normal((4, 4)).astype(np.float32) for _ in range(2))
            h = x
            for _ in range(2):
                h = np.maximum(h @ y + y, 0)
            got = prog([x, y])[0]
            np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-5)
    finally:
        clear_program_cache()


def test_the_overhead_benchmark_runs():
    env = {k: v for k, v in os.environ.items() if k != "GRAPHC_CUDA_SIM"}
    for extra in ([], ["--graphs"]):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu", "dispatch_overhead.py"), "--repeat", "3",
                            *extra], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert "program.run 1 launch" in r.stdout and "eager a + b" in r.stdout
        assert ("graph replay" in r.stdout) == bool(extra)


def test_a_random_program_refills_its_seed_before_each_replay(install):
    drv = install(CapturingDriver())
    t = TensorType((8, 8), "float32", "gpu(0)")
    b = GraphBuilder("dropchain")
    x, y = b.var("x", t, "input"), b.var("y", t, "input")
    h = x.value
    for _ in range(2):
        h = b.emit("dot", [h, y.value], {}).out(0)
        h = b.emit("Dropout", [h], {"p": 0.5}).out(0)
    prog = compile_graph(b.build([h]), training=True)
    if prog._seed is None or prog._graphs is None:
        pytest.skip("Dropout did not compile to a seeded kernel program here")
    ins, outs = buffers(2), buffers(1)
    for _ in range(3):
        drv.log.clear()
        prog.run(ins, outs, rng=np.random.default_rng(0))
        assert drv.log[0] == ("htod", prog._seed.ptr, 8 * SEED_WORDS)     # before the launches or replay
    assert drv.log[1][0] == "replay" and prog._graphs.replays == 2
