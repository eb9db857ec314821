"""mx.gpu(i) is a name any machine can make (as in MXNet), but placing data on a GPU the CUDA
runtime does not report is refused at once, with the device and num_gpus() in the message,
instead of silently computing on the CPU."""
import numpy as np
import pytest

import graphc as mx
from graphc import gluon, nd
from graphc.gluon import nn


def _cuda_count():
    """What the CUDA driver itself reports, asked without graphc: through pycuda, else NVIDIA's
    cuda-bindings (graphc's two real drivers); 0 without either, a driver or a GPU."""
    try:
        import pycuda.driver as drv
        drv.init()
        return drv.Device.count()
    except Exception:
        pass
    try:
        from cuda.bindings import driver as cu
        if cu.cuInit(0)[0] != cu.CUresult.CUDA_SUCCESS:
            return 0
        err, n = cu.cuDeviceGetCount()
        return int(n) if err == cu.CUresult.CUDA_SUCCESS else 0
    except Exception:
        return 0


no_gpu = pytest.mark.skipif(_cuda_count() > 0, reason="a CUDA GPU is present")

PLACEMENTS = {
    "array": lambda ctx: nd.array(np.ones(3), ctx=ctx),
    "array_of_ndarray": lambda ctx: nd.array(nd.ones(3), ctx=ctx),
    "zeros": lambda ctx: nd.zeros((2, 3), ctx=ctx),
    "ones": lambda ctx: nd.ones((2,), ctx=ctx),
    "full": lambda ctx: nd.full((2,), 7.0, ctx=ctx),
    "empty": lambda ctx: nd.empty((2,), ctx=ctx),
    "arange": lambda ctx: nd.arange(4, ctx=ctx),
    "random": lambda ctx: nd.random.uniform(shape=(2,), ctx=ctx),
    "as_in_context": lambda ctx: nd.ones((3,)).as_in_context(ctx),
    "copyto": lambda ctx: nd.ones((3,)).copyto(ctx),
    "default_context": lambda ctx: _inside(ctx, lambda: nd.zeros((2,))),
    "parameter": lambda ctx: nn.Dense(3, in_units=2).initialize(ctx=ctx),
}


def _inside(ctx, make):
    with ctx:
        return make()


def test_gpu_contexts_exist_without_a_gpu():
    ctx = mx.gpu(1)
    assert (ctx.device_type, ctx.device_id, str(ctx)) == ("gpu", 1, "gpu(1)")
    assert ctx == mx.Context("gpu", 1) and ctx != mx.cpu(1)
    with mx.gpu(0):
        assert mx.current_context() == mx.gpu(0)
    assert mx.current_context() == mx.cpu(0)


def test_num_gpus_is_what_the_cuda_runtime_reports():
    assert mx.context.num_gpus() == mx.num_gpus() == _cuda_count()


@no_gpu
@pytest.mark.parametrize("how", sorted(PLACEMENTS))
def test_placing_data_on_a_missing_gpu_is_refused(how):
    with pytest.raises(mx.MXNetError, match=r"cannot place an array on gpu\(0\): no CUDA GPU is available "
                                            r"\(num_gpus\(\) = 0\)"):
        PLACEMENTS[how](mx.gpu(0))


@no_gpu
def test_a_refused_initialisation_can_be_retried_on_the_cpu():
    net = nn.Dense(3, in_units=2)
    with pytest.raises(mx.GraphcError, match="gpu"):
        net.initialize(ctx=mx.gpu(0))
    net.initialize(ctx=mx.cpu(), force_reinit=True)
    assert net(nd.ones((1, 2))).shape == (1, 3)
    assert net.weight.data().context == mx.cpu(0)


@no_gpu
def test_deferred_parameters_are_refused_when_their_shape_arrives():
    net = nn.Dense(3, use_bias=False)
    net.initialize(ctx=mx.gpu(0))                   # nothing allocated yet (MXNet defers too)
    with pytest.raises(mx.GraphcError, match=r"gpu\(0\)"):
        net(nd.ones((1, 2)))


def test_gpu_ids_beyond_the_count_are_refused(monkeypatch, cuda_device):
    # (a GPU array holds device memory: two simulated GPUs without a GPU)
    from graphc.runtime.cuda import driver
    if cuda_device.name == "sim":
        monkeypatch.setenv("GRAPHC_CUDA_SIM_DEVICES", "2")
        driver.reset_driver()
    n = mx.num_gpus()
    assert nd.zeros((2,), ctx=mx.gpu(n - 1)).context == mx.gpu(n - 1)
    with pytest.raises(mx.GraphcError, match=rf"gpu\({n}\): only {n} CUDA GPU\(s\) are available "
                                             rf"\(gpu\(0\) .. gpu\({n - 1}\)\)"):
        nd.zeros((2,), ctx=mx.gpu(n))


def test_cpu_placement_is_unaffected():
    x = nd.array([1.0, 2.0], ctx=mx.cpu(1))
    assert x.context == mx.cpu(1) and (x * 2).context == mx.cpu(1)
    assert gluon.utils.split_and_load(nd.ones((4, 2)), [mx.cpu(0), mx.cpu(1)])[1].context == mx.cpu(1)
