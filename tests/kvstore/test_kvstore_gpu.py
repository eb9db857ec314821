"""A single-process KVStore over GPU values (kvstore/gpu_push.py), through the CUDA simulator
with five simulated GPUs: sums on the device in MXNet's order, equal bit for bit to the host
path's sums; pulls and optimizer updates that leave the values on their GPUs."""
import os

import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.kvstore import DeviceReduction
from graphc.ndarray.gpu import GpuNDArray
from graphc.runtime.cuda import driver as cuda_driver

N = 5


@pytest.fixture(autouse=True)
def gpus(cuda_device, monkeypatch):
    if os.environ.get("GRAPHC_TEST_REAL_GPU") != "1":
        monkeypatch.setenv("GRAPHC_CUDA_SIM_DEVICES", str(N))
        cuda_driver.reset_driver()
    d = cuda_driver.get_driver()
    if d.device_count() < 2:
        pytest.skip("needs two GPUs")
    yield [mx.gpu(k) for k in range(min(N, d.device_count()))]


def values(n, shape=(3, 70), seed=0):
    rs = np.random.RandomState(seed)
    return [(rs.randn(*shape) * 10 ** rs.uniform(-3, 3, shape)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("kind,order", [("device", "device"), ("local", "cpu")])
def test_push_sums_on_the_gpu_in_mxnets_order(gpus, kind, order):
    arrays = values(len(gpus))
    kv = mx.kv.create(kind)
    kv.init(3, nd.zeros(arrays[0].shape, ctx=gpus[0]))
    kv.push(3, [nd.array(a, ctx=c) for a, c in zip(arrays, gpus)])
    outs = [nd.zeros(arrays[0].shape, ctx=c) for c in gpus]
    kv.pull(3, out=outs)
    want = DeviceReduction(order).reduce(3, arrays, str)
    for o, c in zip(outs, gpus):
        assert type(o) is GpuNDArray and o.context == c
        np.testing.assert_array_equal(o.asnumpy(), want)
    assert type(kv._store[3]) is GpuNDArray


def test_pushpull_with_an_optimizer_updates_on_the_gpu(gpus):
    from graphc.gluon import gpu_step
    w0 = values(1, seed=1)[0]
    grads = values(2, seed=2)
    results = []
    for ctxs in ([mx.cpu(), mx.cpu(0)], gpus[:2]):
        before = gpu_step.stats()["compiled_steps"]
        kv = mx.kv.create("device")
        kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9, rescale_grad=0.5))
        kv.init("w", nd.array(w0, ctx=ctxs[0]))
        outs = [nd.zeros(w0.shape, ctx=c) for c in ctxs]
        for _ in range(2):
            kv.pushpull("w", [nd.array(g, ctx=c) for g, c in zip(grads, ctxs)], out=outs)
        results.append([o.asnumpy() for o in outs])
    assert gpu_step.stats()["compiled_steps"] - before == 2      # the GPU run's two updates, on the device
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
