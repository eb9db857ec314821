"""Training graphs (forward + backward, built by passes/autodiff.py) compiled for gpu(0) give the
CPU program's losses and gradients: a 2-layer MLP (with Dropout, whose mask the GPU draws as the
CPU does from the same generator), the same MLP split into forward and backward programs that
hand saved values over as device buffers (as a hybridized block's CachedOp does), and a small
CNN (convolution, BatchNorm in training mode, pooling) trained for a few SGD steps."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate, split_forward_backward
from graphc.runtime.cuda.memory import allocator
from graphc.runtime.cuda.program import GpuProgram


@pytest.fixture(autouse=True)
def gpu(cuda_device):
    yield cuda_device


def mlp(device, dtype="float32", dropout=0.0):
    b = GraphBuilder("mlp")
    F = b.F
    x = b.var("x", TensorType((8, 10), dtype, device))
    y = b.var("y", TensorType((8,), dtype, device))
    w1 = b.var("w1", TensorType((16, 10), dtype, device), "param")
    b1 = b.var("b1", TensorType((16,), dtype, device), "param")
    w2 = b.var("w2", TensorType((4, 16), dtype, device), "param")
    b2 = b.var("b2", TensorType((4,), dtype, device), "param")
    h = F.Activation(F.FullyConnected(x, w1, b1, num_hidden=16), act_type="relu")
    if dropout:
        h = F.Dropout(h, p=dropout)
    logits = F.FullyConnected(h, w2, b2, num_hidden=4)
    loss = F.mean(F.negative(F.pick(F.log_softmax(logits, axis=-1), y, axis=-1)))
    return b.build([loss])


def cnn(device):
    b = GraphBuilder("cnn")
    F = b.F
    t = lambda shape: TensorType(shape, "float32", device)  # noqa: E731
    x, y = b.var("x", t((3, 2, 8, 8))), b.var("y", t((3,)))
    w, bias = b.var("w", t((4, 2, 3, 3)), "param"), b.var("bias", t((4,)), "param")
    gamma, beta = b.var("gamma", t((4,)), "param"), b.var("beta", t((4,)), "param")
    mm, mv = b.var("mm", t((4,)), "aux"), b.var("mv", t((4,)), "aux")
    fw, fb = b.var("fw", t((5, 16)), "param"), b.var("fb", t((5,)), "param")
    c = F.Convolution(x, w, bias, kernel=(3, 3), num_filter=4, pad=(1, 1), stride=(1, 1))
    a = F.Activation(F.BatchNorm(c, gamma, beta, mm, mv, fix_gamma=False), act_type="relu")
    p = F.Pooling(a, kernel=(3, 3), stride=(3, 3), pool_type="max")
    logits = F.FullyConnected(F.Flatten(p), fw, fb, num_hidden=5)
    loss = F.mean(F.negative(F.pick(F.log_softmax(logits, axis=-1), y, axis=-1)))
    return b.build([loss])


def params_of(graph):
    return [n for n in graph.inputs if n.hints.get("kind") == "param"]


def joint(forward):
    return differentiate(forward, wrt=params_of(forward)).graph


def arrays_for(graph, seed=0, classes=4):
    rng = np.random.default_rng(seed)
    out = []
    for n in graph.inputs:
        t = n.types[0]
        if n.name == "y":
            out.append(rng.integers(0, classes, t.shape).astype(t.dtype))
        elif n.name == "mv":
            out.append(np.ones(t.shape, t.dtype))
        elif n.name.startswith("_head_grad"):
            out.append(np.ones(t.shape, t.dtype))
        else:
            out.append((0.5 * rng.standard_normal(t.shape)).astype(t.dtype))
    return out


def assert_close(got, want, rtol, atol, what):
    assert len(got) == len(want)
    for j, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{what}: output {j}")


def test_mlp_gradients_match_cpu_with_dropout():
    g_gpu, g_cpu = joint(mlp("gpu(0)", dropout=0.25)), joint(mlp("cpu(0)", dropout=0.25))
    gpu, cpu = compile_graph(g_gpu, training=True), compile_graph(g_cpu, training=True)
    assert isinstance(gpu, GpuProgram)
    arrays = arrays_for(g_cpu)
    got = gpu(arrays, rng=np.random.default_rng(7))
    want = cpu(arrays, rng=np.random.default_rng(7))
    assert len(got) == 5 and all(np.abs(g).sum() > 0 for g in got)
    assert_close(got, want, 1e-4, 1e-5, "mlp")


def test_mlp_gradient_matches_finite_differences_float64():
    forward = mlp("gpu(0)", dtype="float64")
    grads = compile_graph(joint(forward), training=True)
    loss = compile_graph(forward, training=True)
    arrays = arrays_for(forward)
    got = grads(arrays + [np.ones((1,), "float64")])
    eps = 1e-6
    rng = np.random.default_rng(1)
    for k, name in ((2, "w1"), (5, "b2")):
        assert forward.inputs[k].name == name
        for _ in range(3):
            at = tuple(int(rng.integers(0, s)) for s in arrays[k].shape)
            plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
            plus[k][at] += eps
            minus[k][at] -= eps
            fd = (loss(plus)[0].item() - loss(minus)[0].item()) / (2 * eps)
            np.testing.assert_allclose(got[1 + (k - 2)][at], fd, rtol=1e-5, atol=1e-8, err_msg=f"d loss / d {name}{at}")


def test_split_forward_backward_hands_device_buffers_over(gpu):
    """As CachedOp runs a hybridized block: the forward returns its outputs and the values the
    backward needs; here those stay on the device between the two programs."""
    progs = {}
    for device in ("gpu(0)", "cpu(0)"):
        forward = mlp(device)
        gg = differentiate(forward, wrt=params_of(forward))
        split = split_forward_backward(gg, forward.inputs)
        progs[device] = (compile_graph(split.forward, training=True), compile_graph(split.backward, training=True),
                         split)
    fwd, bwd, split = progs["gpu(0)"]
    cfwd, cbwd, csplit = progs["cpu(0)"]
    assert isinstance(fwd, GpuProgram) and isinstance(bwd, GpuProgram)
    assert split.backward_inputs == csplit.backward_inputs
    arrays = arrays_for(mlp("cpu(0)"))
    pool = allocator(0)
    dev_in = []
    for a in arrays:
        buf = pool.allocate(a.nbytes)
        gpu.memcpy_htod(0, buf.ptr, a)
        dev_in.append(buf)
    results = fwd.run(dev_in)
    head = pool.allocate(4)
    gpu.memcpy_htod(0, head.ptr, np.ones((1,), "float32"))
    feed = []
    for kind, k in split.backward_inputs:
        feed.append({"saved": lambda: results[split.num_outputs + k], "input": lambda: dev_in[k],
                     "head_grad": lambda: head}[kind]())
    grads = bwd.run(feed)
    got = []
    for t, buf in zip(bwd.out_types, grads):
        host = np.empty(t.shape, t.dtype)
        gpu.memcpy_dtoh(0, host, buf.ptr)
        got.append(host)
    cres = cfwd(arrays)
    cfeed = [{"saved": lambda: cres[csplit.num_outputs + k], "input": lambda: arrays[k],
              "head_grad": lambda: np.ones((1,), "float32")}[kind]() for kind, k in csplit.backward_inputs]
    assert_close(got, cbwd(cfeed), 1e-4, 1e-5, "split mlp")


def test_cnn_trains_like_the_cpu_program():
    g_gpu, g_cpu = joint(cnn("gpu(0)")), joint(cnn("cpu(0)"))
    gpu, cpu = compile_graph(g_gpu, training=True), compile_graph(g_cpu, training=True)
    arrays = arrays_for(g_cpu, classes=5)
    names = [n.name for n in g_cpu.inputs]
    params = [i for i, n in enumerate(g_cpu.inputs) if n.hints.get("kind") == "param"]
    state = {"gpu": [a.copy() for a in arrays], "cpu": [a.copy() for a in arrays]}
    losses = {"gpu": [], "cpu": []}
    for _ in range(3):
        for which, prog in (("gpu", gpu), ("cpu", cpu)):
            out = prog(state[which])
            losses[which].append(out[0].item())
            for j, i in enumerate(params):          # SGD on every parameter
                state[which][i] = (state[which][i] - 0.1 * out[1 + j]).astype("float32")
        for i in params:
            np.testing.assert_allclose(state["gpu"][i], state["cpu"][i], rtol=1e-4, atol=1e-5, err_msg=names[i])
    np.testing.assert_allclose(losses["gpu"], losses["cpu"], rtol=1e-4)
    assert losses["gpu"][-1] < losses["gpu"][0]
