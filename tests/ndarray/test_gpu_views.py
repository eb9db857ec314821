"""GPU array views (graphc/ndarray/gpu.py GpuView): basic slicing that the CPU makes a view and
`x.reshape` share memory with the base array on the GPU too, as MXNet's NDArray does. Every
scenario runs the same code on the CPU and on gpu(0) (the CUDA simulator, or the real GPU in
the lent-GPU run) and compares all values; the CPU path's own sharing is pinned by
tests/ndarray/test_first_axis_views.py. MXNet 1.9.1 (the oracle) agrees except in two places
where graphc's CPU copies and MXNet shares, and the GPU follows the CPU: a slice taken while
recording, and a vector indexed by a tuple `v[(i,)]`."""
import gc
import pickle

import numpy as np
import pytest

import graphc as mx
from graphc.gluon import gpu_values
from graphc.ndarray import gpu as gpu_mod
from graphc.ndarray.gpu import GpuNDArray
from graphc.ops.errors import GraphcError
from graphc.runtime.cuda import memory as cuda_memory

nd, autograd = mx.nd, mx.autograd
BASE = np.arange(12, dtype=np.float32).reshape(4, 3)

VIEWS = {
    "rows": lambda x: x[1:3],
    "row": lambda x: x[2],
    "negative_row": lambda x: x[-1],
    "row_part": lambda x: x[1, 1:3],
    "rows_full_slice": lambda x: x[1:3, :],                   # contiguous: a view on the CPU too
    "reshape": lambda x: x.reshape((2, 6)),
    "reshape_then_rows": lambda x: x.reshape((6, 2))[2:5],
    "rows_then_reshape": lambda x: x[1:3].reshape(6),
    "view_of_view": lambda x: x[1:4][1],
    "empty": lambda x: x[3:1],
}


def _write_all(v, make):
    """Every way graphc writes into an array, applied in turn to the view `v`."""
    shape = v.shape
    filled = np.arange(v.size, dtype=np.float32).reshape(shape)
    v[:] = 7
    yield
    v[:] = filled - 2                     # a numpy value (uploaded, the old one not downloaded)
    yield
    v += 1                                # in place on the device
    yield
    v *= make(filled + 1)
    yield
    nd.elemwise_add(v, v, out=v)          # out= a view
    yield
    make(filled * 3).copyto(v)            # a device copy into the view
    yield
    nd.array(filled - 5).copyto(v)        # from the CPU
    yield
    v._data[...] = 4                      # graphc host code (optimizers, kvstore) writing _data
    yield
    if v.size:
        v[0] = -9                         # a partial write
        yield
    v[:] = 0
    yield


def _run(ctx, scenario):
    make = lambda a: nd.array(a, ctx=ctx)     # noqa: E731
    results = []
    for r in scenario(make):
        if ctx.device_type == "gpu" and isinstance(r, nd.NDArray):
            assert type(r) is GpuNDArray and r.context == ctx, f"result on {r.context}"
        results.append(r.asnumpy() if isinstance(r, nd.NDArray) else np.asarray(r))
    return results


def _same_as_cpu(scenario):
    cpu = _run(mx.cpu(), scenario)
    gpu = _run(mx.gpu(0), scenario)
    assert len(cpu) == len(gpu)
    for i, (c, g) in enumerate(zip(cpu, gpu)):
        assert g.shape == c.shape and g.dtype == c.dtype, f"result {i}: {g.shape} {g.dtype} vs {c.shape} {c.dtype}"
        np.testing.assert_array_equal(g, c, err_msg=f"result {i}")
    return cpu


@pytest.mark.parametrize("name", list(VIEWS))
def test_writes_through_a_view_reach_the_base(cuda_device, name):
    def scenario(make):
        x = make(BASE)
        v = VIEWS[name](x)
        for _ in _write_all(v, make):
            yield x
            yield v
    results = _same_as_cpu(scenario)
    if name != "empty":     # (the test can fail: the base really changed, on the CPU as on the GPU)
        assert not np.array_equal(results[0], BASE)


@pytest.mark.parametrize("name", ["rows", "row_part", "reshape", "view_of_view"])
def test_base_writes_are_seen_by_the_view(cuda_device, name):
    def scenario(make):
        x = make(BASE)
        v = VIEWS[name](x)
        w = VIEWS[name](x)               # a second view of the same part
        yield v
        x[:] = make(BASE * 2)            # device write of the whole base
        yield v
        x += 1
        yield v
        x._data[1] = 50                  # host write into the base's mirror
        yield v
        x[1:3] = 8                       # through another (temporary) view
        yield v
        w[:] = -1                        # a sibling view
        yield v
        yield x
        x[:] = 0
        yield v
    _same_as_cpu(scenario)


def test_host_and_device_writes_interleave_through_root_and_views(cuda_device):
    """The root's host mirror is the only one: host writes through one side, device writes
    through the other, in every order, keep one value."""
    def scenario(make):
        x = make(BASE)
        a, b, r = x[0:2], x[2], x.reshape(3, 4)
        a._data[0, 0] = 100              # host side (root host-authoritative)
        b += 1                           # device side (root's mirror uploaded first)
        yield x
        r._data[2] = -3                  # host again, through the reshape
        a[:] = make(np.ones((2, 3), np.float32))   # device write while the root is host-authoritative
        yield x
        c = a._data                      # a numpy window: the value until the next device use
        c[1, 1] = 42
        yield b + x[1]                   # an op reading two views
        yield r
        yield x
    _same_as_cpu(scenario)


def test_views_are_op_inputs_at_their_offset(cuda_device):
    def scenario(make):
        x = make(np.arange(24, dtype=np.float32).reshape(4, 6) / 10)
        top, bottom = x[0:2], x[2:4]
        yield nd.dot(top, bottom.T)            # a GEMM on two windows of one buffer
        yield nd.elemwise_add(x[1], x[3])
        yield (x.reshape(6, 4)[1:3] * 2).sum(axis=1)
        yield nd.dot(x.reshape((3, 8))[1:3], x.reshape((8, 3)))
        out = make(np.zeros((2, 2), np.float32))
        nd.dot(top, bottom.T, out=out.reshape((4,)).reshape((2, 2)))   # out= a view of a view
        yield out
    _same_as_cpu(scenario)


def test_view_pointer_is_the_root_buffer_plus_the_offset_and_allocates_nothing(cuda_device):
    x = nd.array(BASE, ctx=mx.gpu(0))
    root = gpu_mod.device_buffer(x)
    before = cuda_memory.memory_stats(0)["allocs"]
    views = [(x[1:3], 3 * 4), (x[2], 6 * 4), (x[1, 1:3], 4 * 4), (x.reshape(6, 2)[3:], 6 * 4), (x[1:4][2], 9 * 4)]
    assert cuda_memory.memory_stats(0)["allocs"] == before
    for v, offset in views:
        buf = gpu_mod.device_buffer(v)
        assert buf.ptr == root.ptr + offset and buf.nbytes == v.size * 4 and buf.device == 0
        assert gpu_mod.storage(v).root is gpu_mod.storage(x)         # views of views refer to the root
    with pytest.raises(GraphcError, match=r"uses its base array's memory"):
        gpu_mod.storage(views[0][0]).buf = cuda_memory.allocator(0).allocate(24)


def test_non_contiguous_keys_stay_copies(cuda_device):
    def scenario(make):
        x = make(BASE)
        for key in [(slice(None), 1), slice(None, None, 2), (slice(0, 2), slice(1, 3)), (1, 2)]:
            c = x[key]
            c[:] = -1
            yield x
        v = nd.array(np.arange(4, dtype=np.float32), ctx=x.context)
        e = v[2]                          # a vector's element: its (1,)-shaped view
        e[:] = 10
        yield v
        t = v[(1,)]                       # a tuple key on a vector: a copy (the CPU's rule; MXNet shares)
        t[:] = 11
        yield v
    _same_as_cpu(scenario)


def test_nd_reshape_is_a_copy_as_in_mxnet(cuda_device):
    # MXNet: only the NDArray.reshape method shares memory; the operator writes a new array
    x = nd.array(BASE, ctx=mx.gpu(0))
    y = nd.reshape(x, shape=(12,))
    y[:] = 0
    np.testing.assert_array_equal(x.asnumpy(), BASE)


def test_a_view_outlives_its_base_variable(cuda_device):
    def make_view():
        x = nd.array(BASE, ctx=mx.gpu(0))
        return x[1:3], x.reshape(2, 6)

    v, r = make_view()
    gc.collect()
    junk = [nd.array(np.full((4, 3), -1, np.float32), ctx=mx.gpu(0)) for _ in range(4)]   # reuse freed blocks
    np.testing.assert_array_equal(v.asnumpy(), BASE[1:3])
    v += 1
    np.testing.assert_array_equal(r.asnumpy().reshape(-1)[3:9], BASE[1:3].reshape(-1) + 1)   # the other view sees it
    del r
    gc.collect()
    junk += [nd.array(np.full((4, 3), -2, np.float32), ctx=mx.gpu(0)) for _ in range(4)]
    np.testing.assert_array_equal((v * 1).asnumpy(), BASE[1:3] + 1)
    assert all(float(j.asnumpy()[0, 0]) < 0 for j in junk)


def test_device_writers_into_a_view(cuda_device):
    """Writers that skip the host mirror (gluon/gpu_values.py) and copies between views that
    overlap land in the root at the view's offset."""
    x = nd.array(BASE, ctx=mx.gpu(0))
    want = BASE.copy()
    gpu_values.zero_on_device(x[1])
    want[1] = 0
    gpu_values.upload_into(x[2:4], 5)
    want[2:4] = 5
    np.testing.assert_array_equal(x.asnumpy(), want)
    x[:] = BASE
    x._data[0, 0] = -7                     # root host-authoritative, then a device write to a view
    gpu_values.zero_on_device(x[3])
    want = BASE.copy()
    want[0, 0], want[3] = -7, 0
    np.testing.assert_array_equal(x.asnumpy(), want)
    flat = x.reshape(12)
    w = want.reshape(12).copy()
    flat[0:9][:] = flat[3:12]              # overlapping windows of one buffer (a device copy)
    w[0:9] = w[3:12].copy()
    np.testing.assert_array_equal(flat.asnumpy(), w)
    np.testing.assert_array_equal(x.asnumpy(), w.reshape(4, 3))


def test_detach_copy_print_pickle_of_a_view(cuda_device):
    def scenario(make):
        x = make(BASE)
        v = x[1:3]
        d = v.detach()                   # the same memory, off the tape
        d[:] = 3
        yield x
        c = v.copy()                     # a copy: its own memory
        c[:] = 9
        yield x
        yield c
        yield x[1:3].astype("float64")
        yield repr(v).rsplit("@", 1)[0]          # printing: the values and the shape
        yield pickle.loads(pickle.dumps(v))      # pickled as its values, on its device
    _same_as_cpu(scenario)


def test_indexing_errors_are_the_cpus(cuda_device):
    for ctx in (mx.cpu(), mx.gpu(0)):
        x = nd.array(BASE, ctx=ctx)
        with pytest.raises(IndexError, match=r"index 4 is out of bounds for axis 0 with size 4"):
            x[4]
        with pytest.raises(IndexError, match=r"index 3 is out of bounds for axis 1 with size 3"):
            x[1, 3]
        with pytest.raises(GraphcError, match=r"Reshape"):
            x.reshape(5, 5)


def test_slicing_under_autograd_gives_the_cpus_gradients_and_sharing(cuda_device):
    """While recording, a slice is the indexing operator (a copy, as the CPU's; MXNet's is a
    recorded view) and reshape is the Reshape operator on a view (shared, as the CPU's and MXNet's)."""
    def scenario(make):
        x = make(BASE / 4)
        x.attach_grad()
        with autograd.record():
            a = x[1:3]
            b = x[2]
            r = x.reshape((3, 4))
            loss = (a * a).sum() + (b * 3).sum() + (r * x.reshape((6, 2)).reshape((3, 4))).sum()
        loss.backward()
        yield loss
        yield x.grad
        a[:] = 100                       # the slice was a copy
        yield x
        r[:] = 1                         # the reshape shares memory
        yield x
        y = x[0:2]                       # a view taken outside record, used inside
        y.attach_grad()
        with autograd.record():
            z = (y * y * x[2:4]).sum()
        z.backward()
        yield y.grad
        w = x.detach()
        w[:] = 2
        yield x
    _same_as_cpu(scenario)


def test_optimizer_update_into_a_slice(cuda_device):
    """An optimizer writing its update through a slice of a weight (out=) reaches the weight."""
    def scenario(make):
        w = make(BASE)
        g = make(np.ones((2, 3), np.float32))
        nd.sgd_update(w[1:3], g, lr=0.5, wd=0.1, out=w[1:3])
        yield w
        m = make(np.zeros((4, 3), np.float32))
        nd.sgd_mom_update(w[0:2], g, m[0:2], lr=0.25, momentum=0.9, out=w[0:2])
        yield w
        yield m
    _same_as_cpu(scenario)


def test_a_gpu_program_writes_its_output_into_a_view(cuda_device):
    """A program given a view's buffer as its output (as compiled blocks and the Trainer's
    step do) writes the root at the view's offset; the root's host-side edits made before the
    run are kept (the protocol of GpuStorage.written_on_device)."""
    from graphc.compiler import compile_graph
    from graphc.ops.builder import GraphBuilder
    from graphc.ops.types import TensorType
    t = TensorType((2, 3), "float32", "gpu(0)")
    b = GraphBuilder("add_into_view")
    p, q = b.var("p", t, "input"), b.var("q", t, "input")
    graph = b.build([b.emit("elemwise_add", [p.value, q.value], {}).out(0)])
    program = compile_graph(graph)
    x = nd.array(BASE, ctx=mx.gpu(0))
    a = nd.array(np.ones((2, 3), np.float32), ctx=mx.gpu(0))
    x._data[0, 0] = -1                              # the root is host-authoritative now
    view = x[2:4]
    program.run([gpu_mod.device_buffer(a), gpu_mod.device_buffer(x[0:2])], outputs=[gpu_mod.device_buffer(view)])
    gpu_mod.storage(view).written_on_device()
    want = BASE.copy()
    want[0, 0] = -1
    want[2:4] = want[0:2] + 1
    np.testing.assert_array_equal(x.asnumpy(), want)
    out = gpu_mod.storage(x[0:2]).buf              # the pointer taken first (the root uploaded) ...
    x._data[3, 2] = 77                              # ... then the root made host-authoritative again
    program.run([gpu_mod.device_buffer(a), gpu_mod.device_buffer(a)], outputs=[out])
    gpu_mod.storage(x[0:2]).written_on_device()     # the device write is merged into the root's mirror
    want[0:2], want[3, 2] = 2, 77
    np.testing.assert_array_equal(x.asnumpy(), want)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", "int8"])
def test_views_of_every_item_size(cuda_device, dtype):
    """Offsets are in bytes of the root: views of 1-, 2-, 4- and 8-byte elements."""
    def scenario(make):
        x = nd.array(np.arange(24).reshape(4, 6) % 7, ctx=make(BASE).context, dtype=dtype)
        v = x[1:3]
        v += x[2:4]                       # two offset windows as one op's inputs, written through one
        yield x
        x.reshape(8, 3)[5][:] = 3
        yield x[2]
        yield x
    _same_as_cpu(scenario)
