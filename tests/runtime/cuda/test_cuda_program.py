"""GPU programs (runtime/cuda/program.py) through the CUDA simulator: every graph compiled for
gpu(0) must give what the same graph compiled for the CPU gives, for each family of kernels
(loops, reductions, GEMMs, convolutions, pooling, sort networks, gathers, compiled Dropout) and
for host-run operators between kernels."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import GraphcError
from graphc.ops.types import TensorType
from graphc.runtime.cuda import driver as cuda_driver
from graphc.runtime.cuda import launch_plan
from graphc.runtime.cuda.driver import CudaError, DeviceOutOfMemory
from graphc.runtime.cuda.memory import allocator
from graphc.runtime.cuda.program import GpuProgram, clear_program_cache
from graphc.runtime.kernel_ir import Buf, Gemm, Index, Kernel, Load, Loop, MemCopy, Store
from graphc.ops import scalar as S
from graphc.runtime.lower import HostStep, KernelStep
from graphc.ops.memory_plan import Placement

@pytest.fixture(autouse=True)
def sim(cuda_device):
    """tests/conftest.py's driver (the simulator, or the real GPU under GRAPHC_TEST_REAL_GPU=1);
    GPU programs cached by an earlier test belong to an earlier driver."""
    clear_program_cache()
    yield cuda_device
    clear_program_cache()


def build(name, specs, body, device):
    """specs: (name, shape, dtype[, kind]) per input; body(F, *inputs) -> outputs."""
    b = GraphBuilder(name)
    xs = [b.var(s[0], TensorType(tuple(s[1]), s[2], device), *s[3:]) for s in specs]
    outs = body(b.F, *xs)
    return b.build(list(outs) if isinstance(outs, (list, tuple)) else [outs])


def random_inputs(specs, seed=0, ints=(-5, 6)):
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        shape, dtype = tuple(s[1]), np.dtype(s[2])
        if dtype.kind == "f":
            out.append(rng.standard_normal(shape).astype(dtype))
        else:
            out.append(rng.integers(*ints, size=shape).astype(dtype))
    return out


def compare(name, specs, body, *, training=False, arrays=None, rtol=1e-5, atol=1e-5, seed=1):
    """Compile for gpu(0) and for the CPU, run both on the same arrays (and rng seed), and
    require the same outputs; returns (gpu program, gpu results)."""
    gpu = compile_graph(build(name, specs, body, "gpu(0)"), training=training)
    cpu = compile_graph(build(name, specs, body, "cpu(0)"), training=training)
    assert isinstance(gpu, GpuProgram)
    assert not isinstance(cpu, GpuProgram)
    arrays = random_inputs(specs) if arrays is None else arrays
    got = gpu(arrays, rng=np.random.default_rng(seed))
    want = cpu(arrays, rng=np.random.default_rng(seed))
    assert len(got) == len(want)
    for j, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, (j, g.dtype, g.shape, w.dtype, w.shape)
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{name}: output {j}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{name}: output {j}")
    return gpu, got


def test_elementwise_chains_broadcast_over_dtypes():
    specs = [("x", (4, 1, 6), "float32"), ("y", (3, 1), "float32"), ("d", (3, 6), "float64"),
             ("i", (4, 3, 6), "int32"), ("j", (6,), "int32")]

    def body(F, x, y, d, i, j):
        a = F.tanh(x * 0.5 + y) * F.sigmoid(x) - F.exp(-F.abs(y))
        b = F.sqrt(F.abs(d) + 1.0) / (d * d + 2.0)
        c = F.broadcast_mod(i, F.abs(j) + 1) + i * j - F.broadcast_maximum(i, j)
        return a, b, c, F.Cast(a, dtype="float64") * b, F.Cast(i > 0, dtype="float32") + x
    prog, got = compare("ew", specs, body)
    assert got[0].shape == (4, 3, 6) and got[2].dtype == np.int32
    assert not any(isinstance(s, HostStep) for s in prog.steps)


def test_constant_arrays_are_uploaded_once():
    table = np.arange(18, dtype="float32").reshape(3, 6) / 7.0
    ids = np.array([[2, 0], [1, 1]], dtype="int32")
    progs = {}
    for device in ("gpu(0)", "cpu(0)"):
        b = GraphBuilder("consts")
        x = b.var("x", TensorType((3, 6), "float32", device))
        c = b.const(table)                      # constants carry cpu(0) whatever graph they are in
        d = b.const(ids, device=device)
        progs[device] = compile_graph(b.build([x * c + 1.0, b.F.take(x, d, axis=0) * 2.0]))
    gpu, cpu = progs["gpu(0)"], progs["cpu(0)"]
    assert isinstance(gpu, GpuProgram) and len(gpu.plan.consts) == 2
    x = random_inputs([("x", (3, 6), "float32")])[0]
    for _ in range(2):
        for got, want in zip(gpu([x]), cpu([x])):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(gpu([x])[0], x * table + 1.0, rtol=1e-6)


def test_reductions_over_axes_and_whole():
    specs = [("x", (5, 7, 9), "float32"), ("d", (6, 33), "float64"), ("i", (4, 10), "int32")]

    def body(F, x, d, i):
        return (F.sum(x, axis=1), F.mean(x, axis=(0, 2)), F.max(x, axis=2), F.sum(x * x),
                F.mean(d), F.max(d, axis=0), F.min(d, axis=1, keepdims=True), F.sum(i, axis=1),
                F.prod(F.slice_axis(x, axis=0, begin=0, end=2) * 0.5 + 1.0, axis=0), F.sum(F.exp(x), axis=(1, 2)))
    compare("red", specs, body)


def test_gemms_fully_connected_dot_batch_dot():
    specs = [("x", (6, 20), "float32"), ("w", (12, 20), "float32"), ("b", (12,), "float32"),
             ("p", (3, 5, 7), "float32"), ("q", (3, 4, 7), "float32"), ("m", (7, 9), "float64"),
             ("n", (9, 4), "float64")]

    def body(F, x, w, b, p, q, m, n):
        fc = F.Activation(F.FullyConnected(x, w, b, num_hidden=12), act_type="relu")
        return (fc, F.FullyConnected(x, w, no_bias=True, num_hidden=12), F.dot(x, w, transpose_b=True),
                F.dot(fc, fc, transpose_a=True), F.batch_dot(p, q, transpose_b=True),
                F.batch_dot(p, p, transpose_a=True), F.dot(m, n) * 2.0 + 1.0)
    prog, _ = compare("gemm", specs, body, rtol=1e-4, atol=1e-4)
    gemms = [c for c in prog._calls if isinstance(c, launch_plan.GemmCall)]
    assert len(gemms) >= 6          # every product goes to driver.gemm, not a loop kernel


def test_convolution_bias_stride_pad_dilation_groups():
    specs = [("x", (2, 4, 9, 8), "float32"), ("w1", (6, 4, 3, 3), "float32"), ("b1", (6,), "float32"),
             ("w2", (4, 2, 3, 2), "float32"), ("w3", (4, 1, 3, 3), "float32"), ("b3", (4,), "float32"),
             ("v", (2, 3, 11), "float64"), ("w4", (5, 3, 4), "float64")]

    def body(F, x, w1, b1, w2, w3, b3, v, w4):
        return (F.Convolution(x, w1, b1, kernel=(3, 3), num_filter=6, stride=(2, 2), pad=(1, 1)),
                F.Convolution(x, w2, kernel=(3, 2), num_filter=4, num_group=2, dilate=(2, 1), no_bias=True),
                F.Convolution(x, w3, b3, kernel=(3, 3), num_filter=4, num_group=4, pad=(1, 1)),
                F.Convolution(v, w4, kernel=(4,), num_filter=5, stride=(2,), pad=(2,), no_bias=True))
    compare("conv", specs, body, rtol=1e-4, atol=1e-4)


def test_pooling_max_avg_global():
    specs = [("x", (2, 3, 9, 10), "float32"), ("d", (2, 2, 7), "float64")]

    def body(F, x, d):
        return (F.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max"),
                F.Pooling(x, kernel=(2, 3), stride=(1, 2), pad=(1, 1), pool_type="avg"),
                F.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg", count_include_pad=False, pad=(1, 1)),
                F.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="max"),
                F.Pooling(d, kernel=(3,), stride=(2,), pool_type="avg"))
    compare("pool", specs, body)


def test_softmax_and_log_softmax():
    specs = [("x", (5, 17), "float32"), ("y", (3, 4, 6), "float64")]

    def body(F, x, y):
        return F.softmax(x), F.log_softmax(x, axis=0), F.softmax(y, axis=1), F.log_softmax(y * 3.0)
    compare("softmax", specs, body)


def test_batchnorm_training_mode():
    specs = [("x", (4, 3, 5, 5), "float32"), ("g", (3,), "float32", "param"), ("be", (3,), "float32", "param"),
             ("mm", (3,), "float32", "aux"), ("mv", (3,), "float32", "aux")]

    def body(F, x, g, be, mm, mv):
        return F.BatchNorm(x, g, be, mm, mv, fix_gamma=False) * 2.0
    arrays = random_inputs(specs)
    arrays[4] = np.abs(arrays[4]) + 0.5
    prog, (y,) = compare("bn", specs, body, training=True, arrays=arrays, rtol=1e-4, atol=1e-4)
    # batch statistics, not the moving ones: each channel of y/2 has mean beta
    np.testing.assert_allclose((y / 2).mean(axis=(0, 2, 3)), arrays[2], atol=1e-4)


def test_embedding_and_take():
    specs = [("idx", (4, 5), "float32"), ("w", (10, 6), "float32"), ("a", (7, 3), "float64"),
             ("k", (5,), "int32")]
    rng = np.random.default_rng(2)
    arrays = [rng.integers(0, 10, (4, 5)).astype("float32"), rng.standard_normal((10, 6)).astype("float32"),
              rng.standard_normal((7, 3)), np.array([6, 0, 3, 9, -2], dtype="int32")]

    def body(F, idx, w, a, k):
        return (F.Embedding(idx, w, input_dim=10, output_dim=6), F.take(a, k, axis=0, mode="clip"),
                F.take(a, k, axis=0, mode="wrap") * 2.0, F.take(w, k, axis=1, mode="clip"))
    compare("take", specs, body, arrays=arrays)


def test_topk_sort_argsort():
    specs = [("x", (4, 13), "float32"), ("d", (3, 6, 5), "float64")]

    def body(F, x, d):
        return (F.sort(x, axis=-1), F.sort(d, axis=1, is_ascend=False), F.argsort(x, axis=0),
                *F.topk(x, k=4, ret_typ="both"), F.topk(d, k=2, axis=2, ret_typ="indices"))
    rng = np.random.default_rng(3)
    arrays = [rng.permutation(52).reshape(4, 13).astype("float32"), rng.standard_normal((3, 6, 5))]
    compare("sort", specs, body, arrays=arrays)


def test_host_steps_between_kernels():
    specs = [("x", (4, 6), "float32"), ("m", (3, 3), "float64")]

    def body(F, x, m):
        c = F.cumsum(F.exp(x * 0.1), axis=1)           # kernel -> host (arena in, arena out) -> kernel
        return c * 2.0 + 1.0, F.cumsum(x, axis=0), F.linalg_inverse(m * 0.5) + 1.0
    arrays = random_inputs(specs)
    arrays[1] = arrays[1] + 4 * np.eye(3)
    prog, got = compare("host", specs, body, arrays=arrays)
    hosts = {s.node.op for s in prog.steps if isinstance(s, HostStep)}
    assert {"_np_cumsum", "_linalg_inverse"} <= hosts, hosts
    np.testing.assert_allclose(got[2], np.linalg.inv(arrays[1] * 0.5) + 1.0, rtol=1e-10)


def test_dropout_in_training_draws_the_cpu_mask():
    specs = [("x", (8, 50), "float32")]

    def body(F, x):
        return F.Dropout(x, p=0.3) + 0.0
    x = np.ones((8, 50), "float32")
    prog, (y,) = compare("drop", specs, body, training=True, arrays=[x])
    assert prog._seed is not None
    kept = y != 0
    assert 0.55 < kept.mean() < 0.85
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    # each call draws a new mask from the caller's generator; the same seed repeats it
    rng = np.random.default_rng(5)
    a, b = prog([x], rng=rng)[0], prog([x], rng=rng)[0]
    assert (a != b).any()
    np.testing.assert_array_equal(prog([x], rng=np.random.default_rng(5))[0], a)


def test_run_takes_device_buffers_and_reuses_outputs(sim, monkeypatch):
    monkeypatch.delenv("GRAPHC_VERIFY", raising=False)     # (verifying compiles skip the cache)
    specs = [("x", (3, 4), "float32"), ("y", (4,), "float32")]
    prog = compile_graph(build("bufs", specs, lambda F, x, y: (F.relu(x + y), F.sum(x, axis=1)), "gpu(0)"))
    x, y = random_inputs(specs)
    pool = allocator(0)
    bx, by = pool.allocate(x.nbytes), pool.allocate(y.nbytes)
    sim.memcpy_htod(0, bx.ptr, x)
    sim.memcpy_htod(0, by.ptr, y)
    outs = [pool.allocate(t.nbytes) for t in prog.out_types]
    assert prog.run([bx, by], outs) is outs
    r0, r1 = np.empty((3, 4), "float32"), np.empty(3, "float32")
    sim.memcpy_dtoh(0, r0, outs[0].ptr)
    sim.memcpy_dtoh(0, r1, outs[1].ptr)
    np.testing.assert_allclose(r0, np.maximum(x + y, 0), rtol=1e-6)
    np.testing.assert_allclose(r1, x.sum(axis=1), rtol=1e-5)
    fresh = prog.run([bx, by])
    assert len(fresh) == 2 and fresh[0].nbytes == 48
    with pytest.raises(GraphcError, match="input 1 .* needs 16 bytes, its device buffer has 8"):
        prog.run([bx, pool.allocate(8)])
    with pytest.raises(GraphcError, match="input 0 'x' must be a numpy array of float32\\[3, 4\\], got float64"):
        prog([x.astype("float64"), y])
    # the same graph compiles once: the in-memory cache returns the same program
    again = compile_graph(build("bufs", specs, lambda F, x, y: (F.relu(x + y), F.sum(x, axis=1)), "gpu(0)"))
    assert again is prog
    cuda_driver.reset_driver()          # programs hold the old driver's modules and memory
    with pytest.raises(GraphcError, match="built by a driver that has since been reset"):
        prog.run([bx, by])
    assert compile_graph(build("bufs", specs, lambda F, x, y: (F.relu(x + y), F.sum(x, axis=1)), "gpu(0)")) \
        is not prog


def test_concurrent_callers_each_get_their_own_results():
    """Callers share the program's arena; the program's lock keeps their launches apart."""
    import threading
    specs = [("x", (16, 33), "float32")]
    prog = compile_graph(build("threads", specs, lambda F, x: F.sum(F.tanh(x) * x + 1.0, axis=1), "gpu(0)"))
    inputs = [random_inputs(specs, seed=s)[0] for s in range(4)]
    want = [np.sum(np.tanh(x) * x + 1.0, axis=1) for x in inputs]
    errors = []

    def worker(k):
        try:
            for _ in range(5):
                np.testing.assert_allclose(prog([inputs[k]])[0], want[k], rtol=1e-5)
        except Exception as exc:       # noqa: BLE001 - reported by the main thread
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_a_graph_on_the_second_gpu_runs_there(sim, monkeypatch):
    import os
    if os.environ.get("GRAPHC_TEST_REAL_GPU") != "1":
        monkeypatch.setenv("GRAPHC_CUDA_SIM_DEVICES", "2")
        cuda_driver.reset_driver()
    if cuda_driver.get_driver().device_count() < 2:
        pytest.skip("needs two GPUs")
    specs = [("x", (5, 6), "float32")]
    prog = compile_graph(build("second", specs, lambda F, x: F.softmax(x * 2.0), "gpu(1)"))
    assert isinstance(prog, GpuProgram) and prog.device == 1
    x = random_inputs(specs)[0]
    e = np.exp(2 * x - (2 * x).max(axis=1, keepdims=True))
    np.testing.assert_allclose(prog([x])[0], e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    on_first = allocator(0).allocate(x.nbytes)
    with pytest.raises(GraphcError, match="input 0 lives on gpu\\(0\\), the program runs on gpu\\(1\\)"):
        prog.run([on_first])


def test_mixed_devices_are_refused():
    b = GraphBuilder("mixed")
    x = b.var("x", TensorType((3,), "float32", "gpu(0)"))
    y = b.var("y", TensorType((3,), "float32", "cpu(0)"))
    with pytest.raises(GraphcError, match="cpu\\(0\\), gpu\\(0\\).*one device"):
        compile_graph(b.build([x + y]))


def test_arena_out_of_memory_names_program_and_bytes(sim, monkeypatch):
    if sim.name != "sim":
        pytest.skip("the simulator's capacity is settable; a real GPU's is not")
    monkeypatch.setenv("GRAPHC_CUDA_SIM_MEMORY", str(1 << 16))
    cuda_driver.reset_driver()
    specs = [("x", (256, 256), "float32")]
    g = build("too_big", specs, lambda F, x: F.sum(F.exp(x) * F.tanh(x) + F.dot(x, x), axis=0), "gpu(0)")
    with pytest.raises(DeviceOutOfMemory, match=r"graph too_big: its arena of \d+ bytes does not fit on gpu\(0\)"):
        compile_graph(g)


def test_a_kernel_that_fails_to_compile_is_named(monkeypatch):
    from graphc.runtime.cuda import program as program_mod
    real = program_mod.render_cuda_module
    broken = {}

    def render(kernels):
        src = real(kernels)
        victim = kernels[-1].name
        broken["name"] = victim
        head = src.index(f" {victim}(")
        body = src.index("{", head) + 1
        return src[:body] + "\n  this is not C++;\n" + src[body:]
    monkeypatch.setattr(program_mod, "render_cuda_module", render)
    specs = [("x", (3, 4), "float32")]
    g = build("broken", specs, lambda F, x: (F.exp(x) + 1.0, F.sum(x, axis=1)), "gpu(0)")
    with pytest.raises(CudaError) as info:
        compile_graph(g)
    msg = str(info.value)
    assert f"kernel {broken['name']} (computing" in msg and "graph broken" in msg
    assert msg.count("(computing") == 1, msg      # only the broken kernel, not its module's others


def test_nvrtc_error_lines_name_the_kernel(sim, monkeypatch):
    """NVRTC and nvcc report 'file(LINE): error'; the line picks the kernel out of the module."""
    named = {}

    def load_module(device, source):
        lines = source.splitlines()
        heads = [i for i, text in enumerate(lines) if "__global__" in text]
        assert len(heads) >= 2
        named["name"] = lines[heads[1]].split("void ")[1].split("(")[0]
        raise CudaError(f"NVRTC nvrtcCompileProgram (sm_90, kernels.cu) failed: NVRTC_ERROR_COMPILATION (code 6)\n"
                        f"kernels.cu({heads[1] + 3}): error: identifier \"gc_oops\" is undefined\n1 error detected")
    monkeypatch.setattr(sim, "load_module", load_module)
    g = build("nvrtc", [("x", (3, 4), "float32")], lambda F, x: (F.exp(x) + 1.0, F.sum(x, axis=1)), "gpu(0)")
    with pytest.raises(CudaError) as info:
        compile_graph(g)
    assert f"kernel {named['name']} (computing" in str(info.value) and str(info.value).count("(computing") == 1


def test_mixed_kernel_bodies_become_ordered_driver_calls():
    """A kernel whose body mixes loops, a GEMM and a copy is issued as consecutive pieces, each
    buffer resolved to its slot and byte offset (one program layout: 1 input, 1 output, no
    constants, one arena, the seed)."""
    body = [Loop("i", 4, [Store("a", Index((("i", 1),)), S.arg(0, "float32") * 2.0, (Load("x", Index((("i", 1),))),))]),
            Gemm("a", "a", "c", 2, 2, 2, False, False, 2, 2, 2, "float32"),
            MemCopy("y", "c", 16),
            Loop("j", 4, [Store("y", Index((("j", 1),)), S.arg(0, "float32") + 1.0, (Load("y", Index((("j", 1),))),))])]
    k = Kernel("k_mixed", [Buf("a", "float32", 4), Buf("c", "float32", 4), Buf("y", "float32", 4),
                           Buf("x", "float32", 4)], body)
    bind = {"x": Placement("input", 0, 0, 16, "gpu(0)"), "y": Placement("output", 0, 0, 16, "gpu(0)"),
            "a": Placement("arena", 0, 64, 16, "gpu(0)"), "c": Placement("arena", 0, 128, 16, "gpu(0)")}
    slots = launch_plan.Slots(1, 1, 0, ["gpu(0)"])
    rendered = {}
    calls = launch_plan.plan_step(KernelStep(k, bind), slots, rendered, 132)
    assert [type(c).__name__ for c in calls] == ["Launch", "GemmCall", "CopyCall", "Launch"]
    first, gemm, copy, last = calls
    assert first.name == "k_mixed_p0" and last.name == "k_mixed_p3" and set(rendered) == {first.name, last.name}
    arena = 2
    assert (gemm.a, gemm.b, gemm.c) == ((arena, 64), (arena, 64), (arena, 128))
    assert (copy.dst, copy.src, copy.nbytes) == ((1, 0), (arena, 128), 16)
    assert first.grid == (1, 1, 1) and first.block == (256, 1, 1)
    big = Kernel("k_big", [Buf("a", "float32", 1 << 24)],
                 [Loop("i", 1 << 24, [Store("a", Index((("i", 1),)), S.const(0.0, "float32"), ())])])
    assert launch_plan.launch_shape(big, {"block": 256, "grid": "auto"}, 132)[0] == (32 * 132, 1, 1)
    assert launch_plan.launch_shape(big, {"block": (16, 16), "grid": (3, 2)}, 132) == ((3, 2, 1), (16, 16, 1))
    with pytest.raises(GraphcError, match="no slot for a value placed as 'arena' on gpu\\(1\\)"):
        slots.of(Placement("arena", 0, 0, 4, "gpu(1)"))
