"""GPU NDArrays (graphc/ndarray/gpu.py) through the CUDA simulator: creation and copies between
devices for several dtypes, the host-mirror protocol, device memory queries, in-place writes,
out=, pickling and printing, and the errors of a missing GPU or mixed devices. Every value is
compared with numpy or with the same code on the CPU."""
import pickle

import numpy as np
import pytest

import graphc as mx
from graphc.ndarray import gpu as gpu_mod
from graphc.ndarray import gpu_ops
from graphc.ndarray.gpu import GpuNDArray
from graphc.ops.errors import GraphcError
from graphc.runtime.cuda import driver as cuda_driver, memory as cuda_memory

nd = mx.nd
DTYPES = ["float32", "float64", "float16", "int32", "int64", "uint8", "int8"]


def _values(dtype, shape=(3, 4)):
    v = np.arange(int(np.prod(shape))).reshape(shape) % 7 - 2
    return v.astype(dtype) if np.dtype(dtype).kind != "u" else (v + 2).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_round_trips_cpu_gpu_cpu_for_each_dtype(cuda_device, dtype):
    src = _values(dtype)
    g = nd.array(src, ctx=mx.gpu(0), dtype=dtype)
    assert type(g) is GpuNDArray and g.context == mx.gpu(0)
    assert (g.shape, g.dtype, g.size, g.ndim) == (src.shape, np.dtype(dtype).type, src.size, 2)
    np.testing.assert_array_equal(g.asnumpy(), src)
    back = g.as_in_context(mx.cpu())
    assert type(back) is mx.nd.NDArray and back.context == mx.cpu()
    np.testing.assert_array_equal(back.asnumpy(), src)
    again = back.copyto(mx.gpu(0))
    assert type(again) is GpuNDArray
    np.testing.assert_array_equal(again.asnumpy(), src)
    np.testing.assert_array_equal(again.copy().asnumpy(), src)


def test_shape_and_dtype_never_touch_the_device(cuda_device, monkeypatch):
    g = nd.ones((2, 5), ctx=mx.gpu(0), dtype="float16")

    def no_download(*a, **k):
        raise AssertionError("downloaded")
    monkeypatch.setattr(cuda_device, "memcpy_dtoh", no_download)
    assert (g.shape, g.dtype, g.size, g.ndim, len(g)) == ((2, 5), np.float16, 10, 2, 2)
    assert g._type().shape == (2, 5) and g._type().device == "gpu(0)"


def test_creation_functions_on_the_gpu_equal_numpy(cuda_device):
    ctx = mx.gpu(0)
    cases = [(nd.zeros((2, 3), ctx=ctx), np.zeros((2, 3), np.float32)),
             (nd.ones((4,), ctx=ctx, dtype="int32"), np.ones(4, np.int32)),
             (nd.full((2, 2), 3.5, ctx=ctx), np.full((2, 2), 3.5, np.float32)),
             (nd.arange(2, 11, 3, ctx=ctx), np.arange(2, 11, 3).astype(np.float32)),
             (nd.eye(3, ctx=ctx), np.eye(3, dtype=np.float32)),
             (nd.linspace(0, 1, 5, ctx=ctx), np.linspace(0, 1, 5).astype(np.float32))]
    for got, want in cases:
        assert type(got) is GpuNDArray
        np.testing.assert_array_equal(got.asnumpy(), want)
    e = nd.empty((3, 2), ctx=ctx)
    assert type(e) is GpuNDArray and e.shape == (3, 2)
    with ctx:                                   # the default context
        assert type(nd.zeros((1,))) is GpuNDArray


def test_random_creation_on_the_gpu_draws_what_the_cpu_draws(cuda_device):
    for draw in (lambda ctx: nd.random.uniform(-1, 2, shape=(3, 4), ctx=ctx),
                 lambda ctx: nd.random.normal(0, 1, shape=(5,), ctx=ctx),
                 lambda ctx: nd.random.randint(0, 9, shape=(4,), ctx=ctx)):
        mx.random.seed(11)
        c = draw(mx.cpu())
        mx.random.seed(11)
        g = draw(mx.gpu(0))
        assert type(g) is GpuNDArray and g.dtype == c.dtype
        np.testing.assert_array_equal(g.asnumpy(), c.asnumpy())
    # with an array argument, the sampler runs on the GPU array's values
    mx.random.seed(4)
    c = nd.random.uniform(nd.zeros((3,)), nd.full((3,), 5.0))
    mx.random.seed(4)
    g = nd.random.uniform(nd.zeros((3,), ctx=mx.gpu(0)), nd.full((3,), 5.0, ctx=mx.gpu(0)))
    assert type(g) is GpuNDArray
    np.testing.assert_array_equal(g.asnumpy(), c.asnumpy())


def test_host_mirror_protocol(cuda_device):
    g = nd.array([[1, 2], [3, 4]], ctx=mx.gpu(0))
    st = gpu_mod.storage(g)
    assert st.host is None                            # device-authoritative after creation
    assert g.asnumpy().sum() == 10 and st.host is None   # a read leaves it so
    host = g._data                                    # graphc host code's view of the value
    assert st.host is host
    host[0, 0] = 100                                  # writes into it are the array's value
    np.testing.assert_array_equal(g.asnumpy(), [[100, 2], [3, 4]])
    y = g * 2                                         # a device use uploads it first
    assert st.host is None
    np.testing.assert_array_equal(y.asnumpy(), [[200, 4], [6, 8]])
    g._data = np.full((3,), 7, np.float64)            # a new value (host-authoritative)
    assert g.shape == (3,) and g.dtype == np.float64
    np.testing.assert_array_equal((g + 1).asnumpy(), [8, 8, 8])


def test_in_place_operators_setitem_and_out_write_into_the_gpu_array(cuda_device):
    src = np.arange(12, dtype=np.float32).reshape(3, 4)
    for ctx in (mx.cpu(), mx.gpu(0)):
        a = nd.array(src, ctx=ctx)
        alias = a.detach()                        # shares a's memory
        a += 1
        a *= nd.full((3, 4), 2.0, ctx=ctx)
        a[1] = 0
        a[0, 1:3] = nd.array([[5, 6]], ctx=ctx)
        a[2:3] += 10
        out = nd.zeros((3, 4), ctx=ctx)
        r = nd.exp(nd.zeros((3, 4), ctx=ctx), out=out)
        assert r is out
        if ctx == mx.cpu():
            want_a, want_alias, want_out = a.asnumpy(), alias.asnumpy(), out.asnumpy()
        else:
            assert type(a) is GpuNDArray
            np.testing.assert_array_equal(a.asnumpy(), want_a)
            np.testing.assert_array_equal(alias.asnumpy(), want_alias)
            np.testing.assert_array_equal(out.asnumpy(), want_out)
    np.testing.assert_array_equal(want_out, np.ones((3, 4)))
    np.testing.assert_array_equal(want_a[1], np.zeros(4))


def test_copies_between_two_gpus(two_gpus):
    src = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = nd.array(src, ctx=mx.gpu(0))
    b = a.copyto(mx.gpu(1))
    assert type(b) is GpuNDArray and b.context == mx.gpu(1)
    np.testing.assert_array_equal((b * 3).asnumpy(), src * 3)
    c = nd.zeros((2, 3), ctx=mx.gpu(0))
    b.copyto(c)
    np.testing.assert_array_equal(c.asnumpy(), src)
    with pytest.raises(GraphcError, match=r"Operator elemwise_add .*gpu\(0\).*gpu\(1\)"):
        nd.elemwise_add(a, b)


def test_mixed_cpu_gpu_inputs_are_refused_naming_the_operator_and_devices(cuda_device):
    g, c = nd.ones((2,), ctx=mx.gpu(0)), nd.ones((2,))
    with pytest.raises(GraphcError, match=r"Operator elemwise_add .*first argument is on gpu\(0\).*cpu\(0\)"):
        nd.elemwise_add(g, c)
    with pytest.raises(GraphcError, match=r"Operator elemwise_add .*first argument is on cpu\(0\).*gpu\(0\)"):
        nd.elemwise_add(c, g)


def test_a_gpu_beyond_num_gpus_is_refused(cuda_device):
    assert mx.context.num_gpus() == cuda_device.device_count() >= 1
    n = mx.context.num_gpus()
    with pytest.raises(GraphcError, match=rf"cannot place an array on gpu\({n + 4}\): only {n} CUDA GPU"):
        nd.zeros((2,), ctx=mx.gpu(n + 4))


def test_memory_info_and_empty_cache(cuda_device):
    free0, total = mx.context.gpu_memory_info(0)
    assert total == cuda_device.total_memory(0) and 0 < free0 <= total
    a = nd.zeros((1 << 18,), ctx=mx.gpu(0))             # 1 MiB
    free1, _ = mx.context.gpu_memory_info(device_id=0)
    assert free1 <= free0 - (1 << 20)
    del a
    reserved = cuda_memory.memory_stats(0)["reserved"]
    assert reserved >= 1 << 20                          # freed into the pool's cache
    mx.gpu(0).empty_cache()
    assert cuda_memory.memory_stats(0)["reserved"] < reserved
    assert mx.context.gpu_memory_info(0)[0] > free1


def test_pickle_print_and_numpy_conversion(cuda_device):
    g = nd.array([[1.5, 2.0]], ctx=mx.gpu(0))
    back = pickle.loads(pickle.dumps(g))
    assert type(back) is GpuNDArray and back.context == mx.gpu(0)
    np.testing.assert_array_equal(back.asnumpy(), [[1.5, 2.0]])
    assert "<NDArray 1x2 @gpu(0)>" in repr(g) and "1.5" in str(g)
    np.testing.assert_array_equal(np.asarray(g), [[1.5, 2.0]])
    assert float(g[0, 1:]) == 2.0 and g[0, 0].asscalar() == np.float32(1.5)
    assert gpu_mod.storage(g).host is None              # none of these made the host authoritative


def test_astype_copy_and_detach(cuda_device):
    g = nd.array([1.7, -2.2, 3.0], ctx=mx.gpu(0))
    assert g.astype("float32", copy=False) is g
    i = g.astype("int32")
    assert type(i) is GpuNDArray and i.dtype == np.int32
    np.testing.assert_array_equal(i.asnumpy(), np.array([1.7, -2.2, 3.0], np.float32).astype(np.int32))
    c = g.copy()
    c += 1
    np.testing.assert_allclose(g.asnumpy(), [1.7, -2.2, 3.0], rtol=1e-6)     # a copy is separate
    d = g.detach()
    g[:] = nd.zeros((3,), ctx=mx.gpu(0))
    np.testing.assert_array_equal(d.asnumpy(), [0, 0, 0])                    # detach shares memory


def test_eager_programs_are_cached_per_signature(cuda_device):
    gpu_ops.clear()
    a = nd.ones((2, 3), ctx=mx.gpu(0))
    for _ in range(3):
        a = a + 1
    st = gpu_ops.stats()
    assert (st["compiled"], st["program_calls"], st["host_calls"]) == (1, 3, 0)
    b = nd.ones((4,), ctx=mx.gpu(0)) + 1          # another shape: another program
    assert gpu_ops.stats()["compiled"] == 2
    np.testing.assert_array_equal(a.asnumpy(), np.full((2, 3), 4))
    np.testing.assert_array_equal(b.asnumpy(), np.full((4,), 2))


def test_whole_array_assignment_never_downloads_the_old_value(cuda_device, monkeypatch):
    g = nd.array(np.arange(6).reshape(2, 3), ctx=mx.gpu(0))
    alias = g.detach()

    def no_download(*a, **k):
        raise AssertionError("downloaded the value being replaced")
    with monkeypatch.context() as m:
        m.setattr(cuda_device, "memcpy_dtoh", no_download)
        g[:] = 0                                  # (a Trainer's zero_grad)
        g[:] = 0
    np.testing.assert_array_equal(alias.asnumpy(), np.zeros((2, 3)))
    with monkeypatch.context() as m:
        m.setattr(cuda_device, "memcpy_dtoh", no_download)
        g[:] = 2.5
    np.testing.assert_array_equal((alias + 0).asnumpy(), np.full((2, 3), 2.5))
    with monkeypatch.context() as m:
        m.setattr(cuda_device, "memcpy_dtoh", no_download)
        g[:] = [1, 2, 3]                          # broadcast along the first axis, as numpy
    np.testing.assert_array_equal(g.asnumpy(), [[1, 2, 3], [1, 2, 3]])
    g[nd.array([1], ctx=mx.gpu(0))] = 9           # an array key: the general path
    np.testing.assert_array_equal(g.asnumpy(), [[1, 2, 3], [9, 9, 9]])


def test_out_of_device_memory_is_an_error_naming_the_gpu(monkeypatch, cuda_device):
    if cuda_device.name != "sim":
        pytest.skip("sizes the simulated GPU's memory")
    monkeypatch.setenv("GRAPHC_CUDA_SIM_MEMORY", str(4 << 20))
    cuda_driver.reset_driver()
    a = nd.ones((1 << 19,), ctx=mx.gpu(0))                 # 2 MiB of 4
    with pytest.raises(cuda_driver.DeviceOutOfMemory, match=r"gpu\(0\)"):
        nd.ones((1 << 20,), ctx=mx.gpu(0))                 # 4 MiB more
    with pytest.raises(cuda_driver.DeviceOutOfMemory, match=r"gpu\(0\)"):
        nd.concat(a, a, dim=0)                             # an eager result that does not fit
    np.testing.assert_array_equal((a[:4] * 2).asnumpy(), [2, 2, 2, 2])   # still usable


def test_array_of_a_gpu_array_and_copies_into_gpu_targets_stay_off_the_host(cuda_device, monkeypatch):
    g = nd.array([[1.5, -2.0, 3.0]], ctx=mx.gpu(0))
    target = nd.zeros((1, 3), ctx=mx.gpu(0))

    def no_download(*a, **k):
        raise AssertionError("downloaded")
    with monkeypatch.context() as m:
        m.setattr(cuda_device, "memcpy_dtoh", no_download)
        same = nd.array(g)
        as_int = nd.array(g, dtype="int32")
        nd.array([[7, 8, 9]]).copyto(target)              # CPU -> an existing GPU array
    assert type(same) is GpuNDArray and type(as_int) is GpuNDArray and as_int.dtype == np.int32
    same += 1                                             # a copy: g is unchanged
    np.testing.assert_array_equal(g.asnumpy(), [[1.5, -2.0, 3.0]])
    np.testing.assert_array_equal(same.asnumpy(), [[2.5, -1.0, 4.0]])
    np.testing.assert_array_equal(as_int.asnumpy(), [[1, -2, 3]])
    np.testing.assert_array_equal(target.asnumpy(), [[7, 8, 9]])
    on_cpu = nd.array(g, ctx=mx.cpu())
    assert type(on_cpu) is mx.nd.NDArray
    np.testing.assert_array_equal(on_cpu.asnumpy(), g.asnumpy())
    g.attach_grad()
    with mx.autograd.record():
        assert nd.array(g, dtype="float64")._entry is None    # not on the tape (as on the CPU)


def test_split_and_load_and_a_local_kvstore_across_two_gpus(two_gpus):
    parts = mx.gluon.utils.split_and_load(nd.arange(8).reshape((4, 2)), [mx.gpu(0), mx.gpu(1)])
    assert [type(p) for p in parts] == [GpuNDArray, GpuNDArray] and parts[1].context == mx.gpu(1)
    np.testing.assert_array_equal(parts[1].asnumpy(), [[4, 5], [6, 7]])
    kv = mx.kv.create("local")
    kv.init(3, nd.zeros((2, 3), ctx=mx.gpu(0)))
    kv.push(3, [nd.ones((2, 3), ctx=mx.gpu(0)), nd.full((2, 3), 2.0, ctx=mx.gpu(1))])
    outs = [nd.zeros((2, 3), ctx=mx.gpu(0)), nd.zeros((2, 3), ctx=mx.gpu(1))]
    kv.pull(3, out=outs)
    for o, ctx in zip(outs, (mx.gpu(0), mx.gpu(1))):
        assert type(o) is GpuNDArray and o.context == ctx
        np.testing.assert_array_equal((o * 1).asnumpy(), np.full((2, 3), 3.0))


INDEX_KEYS = [0, -1, slice(1, 3), slice(None), slice(2, 1), slice(-2, None), (1, 2), (1, slice(1, 3)),
              (-1, -2, slice(0, 5)), (0, 1, 2), slice(0, 3, 2), (slice(0, 2), 1), (Ellipsis, 1), (None, 1),
              (1, slice(None), 2)]


def test_basic_indexing_equals_the_cpu_and_rows_need_no_program(cuda_device):
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    c, g = nd.array(x), nd.array(x, ctx=mx.gpu(0))
    for key in INDEX_KEYS:
        want, got = c[key], g[key]
        assert type(got) is GpuNDArray and got.shape == want.shape, key
        np.testing.assert_array_equal(got.asnumpy(), want.asnumpy(), err_msg=str(key))
    v = nd.array([1, 2, 3], ctx=mx.gpu(0))
    assert v[1].shape == (1,) and v[-1].asscalar() == 3          # MXNet 1.x: a vector's element is (1,)
    with pytest.raises(IndexError, match=r"index 5 is out of bounds for axis 0 with size 3"):
        g[5]
    before = gpu_ops.stats()
    rows = [r.asnumpy().sum() for r in g]                           # one device copy per row
    assert rows == [x[i].sum() for i in range(3)]
    assert gpu_ops.stats()["compiled"] == before["compiled"]
    g[1] += 100                                                     # (read, add, write back)
    np.testing.assert_array_equal(g.asnumpy()[1], x[1] + 100)
