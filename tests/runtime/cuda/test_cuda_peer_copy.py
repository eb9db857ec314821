"""Copies between two GPUs without the host: the driver's optional memcpy_peer (the simulator's
range checks; the real drivers' cuMemcpyPeerAsync between the two streams' events, run against
two-device stand-ins of their bindings) and GPU arrays using it (copyto, as_in_context,
nd.array(ctx=), autograd through a copy), with the host fallback where a driver has none."""
import ctypes
import types

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd
from graphc.runtime.cuda import bindings_driver, pycuda_driver
from graphc.runtime.cuda.driver import CudaError

from cuda_standins import HostBinding


def test_copies_between_gpus_go_device_to_device(two_gpus, host_traffic):
    value = np.arange(24, dtype=np.float32).reshape(4, 6) - 7.5
    x = nd.array(value, ctx=mx.gpu(0))
    x.wait_to_read()
    target, assigned = nd.zeros((4, 6), ctx=mx.gpu(1)), nd.zeros((4, 6), ctx=mx.gpu(1))
    target.wait_to_read()
    assigned.wait_to_read()
    moved = host_traffic(two_gpus)
    a = x.copyto(mx.gpu(1))
    b = x.as_in_context(mx.gpu(1))
    c = nd.array(x, ctx=mx.gpu(1))
    x.copyto(target)
    assigned[:] = x                             # (an optimizer's write-back form)
    row = x[1:3].copyto(mx.gpu(1))              # a view's window of the root's memory
    assert moved == {"htod": 0, "dtoh": 0, "peer": 5 * value.nbytes + value[1:3].nbytes}, moved
    for arr in (a, b, c, target, assigned):
        assert arr.context == mx.gpu(1)
        np.testing.assert_array_equal(arr.asnumpy(), value)
    np.testing.assert_array_equal(row.asnumpy(), value[1:3])
    np.testing.assert_array_equal(x.asnumpy(), value)        # the source is unchanged
    # and back, into a view of an array on gpu(0)
    y = nd.zeros((4, 6), ctx=mx.gpu(0))
    a[2:4].copyto(y[0:2])
    expect = np.zeros((4, 6), np.float32)
    expect[0:2] = value[2:4]
    np.testing.assert_array_equal(y.asnumpy(), expect)


def test_a_host_mirrored_source_is_uploaded_then_copied(two_gpus):
    x = nd.array(np.ones((3, 3), np.float32), ctx=mx.gpu(0))
    x._data[1, 1] = 5.0                             # host-authoritative value, edited
    y = x.copyto(mx.gpu(1))
    np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
    assert y.asnumpy()[1, 1] == 5.0


def test_gradients_flow_back_through_a_copy_between_gpus(two_gpus):
    x = nd.array(np.array([1.0, -2.0, 3.0], np.float32), ctx=mx.gpu(0))
    x.attach_grad()
    with autograd.record():
        y = (x.copyto(mx.gpu(1)) * x.copyto(mx.gpu(1))).sum()
    y.backward()
    assert x.grad.context == mx.gpu(0)
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * x.asnumpy())


def test_without_memcpy_peer_the_copy_goes_through_the_host(two_gpus, monkeypatch):
    if two_gpus.name != "sim":
        pytest.skip("removes the simulator's memcpy_peer")
    from graphc.runtime.cuda.sim import SimDriver
    x = nd.array(np.arange(6, dtype=np.float32), ctx=mx.gpu(0))
    x.wait_to_read()
    monkeypatch.delattr(SimDriver, "memcpy_peer")
    y = x.copyto(mx.gpu(1))
    z = nd.zeros((6,), ctx=mx.gpu(1))
    x.copyto(z)
    np.testing.assert_array_equal(y.asnumpy(), np.arange(6))
    np.testing.assert_array_equal(z.asnumpy(), np.arange(6))


def test_the_simulator_checks_both_ranges_on_their_own_devices(two_gpus):
    if two_gpus.name != "sim":
        pytest.skip("the simulator's checks")
    d = two_gpus
    a, b = d.malloc(0, 64), d.malloc(1, 64)
    d.memcpy_htod(0, a, np.arange(16, dtype=np.float32))
    d.memcpy_peer(1, b, 0, a, 64)
    out = np.empty(16, np.float32)
    d.memcpy_dtoh(1, out, b)
    np.testing.assert_array_equal(out, np.arange(16))
    with pytest.raises(CudaError, match=r"memcpy_peer: source .* is not gpu\(1\) memory"):
        d.memcpy_peer(0, a, 1, a, 64)               # a is gpu(0)'s
    with pytest.raises(CudaError, match=r"memcpy_peer: destination .* runs 64 bytes past the end"):
        d.memcpy_peer(1, b, 0, a, 128)
    d.free(0, a)
    d.free(1, b)


# ---- the real drivers against two-device stand-ins ---------------------------------------------------

class TwoDeviceBinding(HostBinding):
    """HostBinding with two devices: contexts 0xC0 + i, streams 0x50 + i, events, and the peer
    copy; `log` records the ordering calls with the context current when they were made."""

    CUevent_flags = types.SimpleNamespace(CU_EVENT_DISABLE_TIMING=types.SimpleNamespace(value=2))

    def __init__(self):
        super().__init__({}, capacity=1 << 16)
        self.log, self.events = [], 0

    def cuDeviceGetCount(self):
        return self.S, 2

    def cuDevicePrimaryCtxRetain(self, dev):
        return self.S, 0xC0 + dev

    def cuStreamCreate(self, flags):
        return self.S, 0x50 + self.current - 0xC0

    def _own(self, stream):
        assert stream == 0x50 + self.current - 0xC0, f"stream {stream:#x} used in context {self.current:#x}"

    def cuStreamSynchronize(self, stream):
        self._own(stream)
        return (self.S,)

    def _copy(self, dst, src, n, stream):
        self._own(stream)
        ctypes.memmove(dst, src, n)
        return (self.S,)

    cuMemcpyHtoDAsync = cuMemcpyDtoHAsync = cuMemcpyDtoDAsync = _copy

    def cuEventCreate(self, flags):
        assert flags == 2
        self.events += 1
        return self.S, (self.current, self.events)

    def cuEventRecord(self, event, stream):
        self._own(stream)
        assert event[0] == self.current, "an event recorded on another context's stream"
        self.log.append(("record", stream, event))
        return (self.S,)

    def cuStreamWaitEvent(self, stream, event, flags):
        self._own(stream)
        self.log.append(("wait", stream, event))
        return (self.S,)

    def cuEventDestroy(self, event):
        self.log.append(("destroy", event))
        return (self.S,)

    def cuMemcpyPeerAsync(self, dst, dst_ctx, src, src_ctx, n, stream):
        self._own(stream)
        assert dst_ctx == self.current and src_ctx != dst_ctx
        self.log.append(("peer", stream, dst_ctx, src_ctx, n))
        ctypes.memmove(dst, src, n)
        return (self.S,)


def test_bindings_driver_peer_copy_is_ordered_by_events(monkeypatch):
    cu = TwoDeviceBinding()
    monkeypatch.setattr(bindings_driver, "_import_binding", lambda: cu)
    d = bindings_driver.make()
    assert d is not None and d.device_count() == 2
    a, b = d.malloc(0, 16), d.malloc(1, 16)
    d.memcpy_htod(0, a, np.array([1, 2, 3, 4], np.float32))
    d.memcpy_peer(1, b, 0, a, 16)
    out = np.empty(4, np.float32)
    d.memcpy_dtoh(1, out, b)
    np.testing.assert_array_equal(out, [1, 2, 3, 4])
    ready, done = (0xC0, 1), (0xC1, 2)
    assert cu.log == [("record", 0x50, ready), ("wait", 0x51, ready), ("peer", 0x51, 0xC1, 0xC0, 16),
                      ("record", 0x51, done), ("wait", 0x50, done), ("destroy", ready), ("destroy", done)]
    d.memcpy_peer(0, a, 0, a, 16)           # one device: a plain device copy, no events
    assert len(cu.log) == 7
    d.close()


class TwoDevicePycuda:
    """The parts of pycuda.driver the driver uses for memory, copies and events, with two devices;
    every call asserts a context is pushed (and which one where it matters)."""

    class Error(Exception):
        pass

    class MemoryError(Error):
        pass

    event_flags = types.SimpleNamespace(DISABLE_TIMING=2)

    def __init__(self):
        fake = self
        self.stack, self.log = [], []

        class Ctx:
            def __init__(self, i):
                self.i = i

            def push(self):
                fake.stack.append(self)

        self.ctxs = [Ctx(0), Ctx(1)]

        class Device:
            @staticmethod
            def count():
                return 2

            def __init__(self, i):
                self.i = i

            def name(self):
                return f"Host Stand-in {self.i}"

            def retain_primary_context(self):
                return fake.ctxs[self.i]

        class Context:
            @staticmethod
            def pop():
                fake.stack.pop()

        class Stream:
            def __init__(self):
                self.ctx = fake.current()
                self.handle = 0x50 + self.ctx.i

            def synchronize(self):
                fake.own(self)

            def wait_for_event(self, event):
                fake.own(self)
                fake.log.append(("wait", self.handle, event.n))

        class Event:
            def __init__(self, flags):
                assert flags == 2
                self.ctx, self.n = fake.current(), len(fake.log)

            def record(self, stream):
                fake.own(stream)
                assert stream.ctx is self.ctx
                fake.log.append(("record", stream.handle, self.n))

        self.Device, self.Context, self.Stream, self.Event = Device, Context, Stream, Event

    def current(self):
        assert self.stack, "no context pushed"
        return self.stack[-1]

    def own(self, stream):
        assert stream.ctx is self.current(), "a stream used outside its context"

    def mem_alloc(self, n):
        self.current()
        return _Alloc(ctypes.create_string_buffer(n))

    def memcpy_htod_async(self, dst, src, stream):
        self.own(stream)
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def memcpy_dtoh_async(self, dst, src, stream):
        self.own(stream)
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def memcpy_peer_async(self, dest, src, size, dest_context, src_context, stream):
        self.own(stream)
        assert dest_context is self.current() and src_context is not dest_context
        self.log.append(("peer", stream.handle, dest_context.i, src_context.i, size))
        ctypes.memmove(dest, src, size)


class _Alloc:
    def __init__(self, buf):
        self.buf = buf

    def __int__(self):
        return ctypes.addressof(self.buf)

    def free(self):
        pass


def test_pycuda_driver_peer_copy_is_ordered_by_events():
    cuda = TwoDevicePycuda()
    d = pycuda_driver.PycudaDriver(cuda)
    a, b = d.malloc(0, 16), d.malloc(1, 16)
    d.memcpy_htod(0, a, np.array([5, 6, 7, 8], np.float32))
    d.memcpy_peer(1, b, 0, a, 16)
    out = np.empty(4, np.float32)
    d.memcpy_dtoh(1, out, b)
    np.testing.assert_array_equal(out, [5, 6, 7, 8])
    assert cuda.stack == [], "a context left pushed"
    assert cuda.log == [("record", 0x50, 0), ("wait", 0x51, 0), ("peer", 0x51, 1, 0, 16),
                        ("record", 0x51, 3), ("wait", 0x50, 3)]
