"""Gluon on a GPU through the CUDA simulator (or the real GPU under GRAPHC_TEST_REAL_GPU=1):
Parameters placed on gpu(k), their gradients, moves, saving and loading; hybridized blocks run
as GPU programs on device buffers. Every value is compared with the same code on the CPU."""
import re

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.ndarray.gpu import GpuNDArray, storage
from graphc.ops.errors import GraphcError


@pytest.fixture(autouse=True)
def gpu(cuda_device):
    yield cuda_device


class Transfers:
    """Counts the bytes the driver copies between host and device while installed."""

    def __init__(self, driver, monkeypatch):
        self.htod = self.dtoh = 0
        up, down = driver.memcpy_htod, driver.memcpy_dtoh

        def htod(device, dst, src):
            self.htod += src.nbytes
            return up(device, dst, src)

        def dtoh(device, dst, src):
            self.dtoh += dst.nbytes
            return down(device, dst, src)
        monkeypatch.setattr(driver, "memcpy_htod", htod)
        monkeypatch.setattr(driver, "memcpy_dtoh", dtoh)


def mlp(ctx, seed=0, hybrid=True, bn=False, init=True):
    mx.random.seed(seed)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(16, activation="relu", in_units=6))
        if bn:
            net.add(nn.BatchNorm(in_channels=16))
        net.add(nn.Dense(3, in_units=16))
    if init:
        net.initialize(mx.init.Xavier(), ctx=ctx)
    if hybrid:
        net.hybridize()
    return net


def values(net, ctx=None):
    return {k: p.data(ctx).asnumpy() for k, p in net.collect_params().items()}


# -- Parameters --------------------------------------------------------------------------------------

def test_parameter_initialized_on_gpu_holds_the_cpu_values():
    cpu, gpu = mlp(mx.cpu()), mlp(mx.gpu(0))
    for (k, pc), pg in zip(cpu.collect_params().items(), gpu.collect_params().values()):
        assert pg.list_ctx() == [mx.gpu(0)]
        d, g = pg.data(), pg.grad()
        assert type(d) is GpuNDArray and d.context == mx.gpu(0)
        assert type(g) is GpuNDArray and g.context == mx.gpu(0)
        np.testing.assert_array_equal(d.asnumpy(), pc.data().asnumpy(), err_msg=k)
        np.testing.assert_array_equal(g.asnumpy(), np.zeros(pc.shape, np.float32))
        with pytest.raises(RuntimeError, match="was not initialized on context cpu"):
            pg.data(mx.cpu())


def test_parameter_on_two_gpus(two_gpus):
    net = mlp([mx.gpu(0), mx.gpu(1)])
    ref = mlp(mx.cpu())
    for p, r in zip(net.collect_params().values(), ref.collect_params().values()):
        assert p.list_ctx() == [mx.gpu(0), mx.gpu(1)]
        for k in (0, 1):
            assert p.data(mx.gpu(k)).context == mx.gpu(k) and p.grad(mx.gpu(k)).context == mx.gpu(k)
            np.testing.assert_array_equal(p.data(mx.gpu(k)).asnumpy(), r.data().asnumpy())
        assert [d.context for d in p.list_data()] == [mx.gpu(0), mx.gpu(1)]


def test_zero_grad_and_set_data_stay_on_the_device(gpu, monkeypatch):
    net = mlp(mx.gpu(0))
    x = nd.array(np.random.RandomState(0).randn(4, 6), ctx=mx.gpu(0))
    with autograd.record():
        net(x).sum().backward()
    w = net[0].weight
    assert np.abs(w.grad().asnumpy()).sum() > 0
    t = Transfers(gpu, monkeypatch)
    w.zero_grad()
    assert t.htod == 0 and t.dtoh == 0          # a memset, not a round trip through the host
    assert storage(w.grad()).host is None
    np.testing.assert_array_equal(w.grad().asnumpy(), np.zeros(w.shape, np.float32))
    new = np.arange(np.prod(w.shape), dtype=np.float32).reshape(w.shape)
    t.htod = t.dtoh = 0
    w.set_data(nd.array(new))
    assert t.dtoh == 0 and t.htod == new.nbytes   # uploaded once, the old value never read
    np.testing.assert_array_equal(w.data().asnumpy(), new)


def test_reset_ctx_moves_values_between_cpu_and_gpu():
    net = mlp(mx.cpu())
    before = values(net)
    net.collect_params().reset_ctx(mx.gpu(0))
    for k, p in net.collect_params().items():
        assert p.list_ctx() == [mx.gpu(0)] and type(p.data()) is GpuNDArray and type(p.grad()) is GpuNDArray
        np.testing.assert_array_equal(p.data().asnumpy(), before[k])
    net.collect_params().reset_ctx(mx.cpu())
    for k, p in net.collect_params().items():
        assert type(p.data()) is not GpuNDArray
        np.testing.assert_array_equal(p.data().asnumpy(), before[k])


def test_save_from_gpu_load_onto_gpu(tmp_path):
    gpu_net, cpu_net = mlp(mx.gpu(0)), mlp(mx.cpu())
    gpu_net.save_parameters(str(tmp_path / "g.params"))
    cpu_net.save_parameters(str(tmp_path / "c.params"))
    # the same host file, byte for byte, whichever device held the values
    assert (tmp_path / "g.params").read_bytes() == (tmp_path / "c.params").read_bytes()
    fresh = mlp(None, init=False)
    fresh.load_parameters(str(tmp_path / "g.params"), ctx=mx.gpu(0))
    for k, p in fresh.collect_params().items():
        assert p.list_ctx() == [mx.gpu(0)] and type(p.data()) is GpuNDArray
    for (k, a), b in zip(values(fresh).items(), values(cpu_net).values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


# -- hybridized blocks ----------------------------------------------------------------------------

def test_hybridized_inference_runs_a_gpu_program_without_host_copies(gpu, monkeypatch):
    x = np.random.RandomState(1).randn(5, 6).astype(np.float32)
    cpu_net, gpu_net = mlp(mx.cpu()), mlp(mx.gpu(0))
    want = cpu_net(nd.array(x)).asnumpy()
    xg = nd.array(x, ctx=mx.gpu(0))
    out = gpu_net(xg)
    assert type(out) is GpuNDArray and out.context == mx.gpu(0)
    np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5, atol=1e-6)
    from graphc.runtime.cuda.program import GpuProgram
    assert isinstance(gpu_net._cached_op.last.forward[1], GpuProgram)
    t = Transfers(gpu, monkeypatch)
    out2 = gpu_net(xg)                          # a second call: inputs, weights, output on the device
    assert t.htod == 0 and t.dtoh == 0
    np.testing.assert_allclose(out2.asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_hybridized_training_gradients_equal_the_cpu():
    rs = np.random.RandomState(2)
    x, y = rs.randn(6, 6).astype(np.float32), rs.randint(0, 3, 6).astype(np.float32)
    grads = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        net = mlp(ctx)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        loss.hybridize()
        with autograd.record():
            l = loss(net(nd.array(x, ctx=ctx)), nd.array(y, ctx=ctx))
        l.backward()
        grads.append((l.asnumpy(), [p.grad(ctx).asnumpy() for p in net.collect_params().values()]))
    (lc, gc), (lg, gg) = grads
    np.testing.assert_allclose(lg, lc, rtol=1e-5, atol=1e-6)
    for k, (a, b) in enumerate(zip(gg, gc)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=f"parameter {k}")
    assert all(np.abs(v).sum() > 0 for v in gg)


def test_hybridized_batchnorm_training_updates_moving_stats_on_the_gpu():
    x = np.random.RandomState(3).randn(8, 6).astype(np.float32) * 2 + 1
    stats = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        net = mlp(ctx, bn=True)
        with autograd.record():
            out = net(nd.array(x, ctx=ctx))
        out.backward()
        bn = net[1]
        stats.append((out.asnumpy(), bn.running_mean.data(ctx).asnumpy(), bn.running_var.data(ctx).asnumpy()))
        if ctx.device_type == "gpu":
            assert type(bn.running_mean.data(ctx)) is GpuNDArray
    for c, g in zip(*stats):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)
    assert np.abs(stats[1][1]).sum() > 0            # the moving mean moved


def test_hybridized_block_refuses_inputs_off_its_gpu(two_gpus):
    net = mlp(mx.gpu(0))
    for where in (mx.gpu(1), mx.cpu()):       # MXNet's error: the parameters are not there
        with pytest.raises(RuntimeError, match=re.escape(f"not initialized on context {where}. It was only "
                                                         "initialized on [gpu(0)]")):
            net(nd.array(np.ones((2, 6)), ctx=where))

    class Add(nn.HybridBlock):
        def hybrid_forward(self, F, a, b):
            return a + b
    add = Add()
    add.hybridize()
    with pytest.raises(GraphcError, match=r"input 1 is on cpu\(0\), but the block is called on gpu\(0\)"):
        add(nd.ones((2,), ctx=mx.gpu(0)), nd.ones((2,)))
