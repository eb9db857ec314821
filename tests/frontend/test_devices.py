"""CPU devices: cpu(k) are distinct devices with their own cores, worker pool and dispatcher
thread (graphc/engine.py, runtime/cpu_devices.py); arrays live on one and move by copies; work on
a device is asynchronous once several are in use, and readers wait for it and see its failures.

Tests that need a fresh process (the core split is fixed at first use, and a process that used
only cpu(0) must stay single-device) run a child Python with a timeout."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, engine, gluon, nd
from graphc.ndarray import pending
from graphc.ops.errors import GraphcError
from graphc.runtime import cpu_devices

CORES = len(os.sched_getaffinity(0))


def _child(code, env=None, timeout=180):
    """Run `code` in a fresh interpreter; returns its stdout (fails the test on a non-zero exit)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=timeout, env=full_env)
    assert res.returncode == 0, f"child failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _blocked(ctx):
    """Hold ctx's dispatcher until the returned event is set: work queued meanwhile stays pending."""
    gate = threading.Event()
    pending.run_async(ctx, lambda: (gate.wait(30), ())[1], name="test gate")
    return gate


# -- contexts and copies ---------------------------------------------------------------------------
def test_cpu_devices_are_distinct_and_arrays_live_on_one():
    a = nd.ones((2, 3), ctx=mx.cpu(0))
    b = nd.ones((2, 3), ctx=mx.cpu(1))
    assert mx.cpu(0) != mx.cpu(1) and hash(mx.cpu(1)) == hash(mx.Context("cpu", 1))
    assert a.context == mx.cpu(0) and b.context == mx.cpu(1)
    assert (b * 2).context == mx.cpu(1)


def test_as_in_context_copies_to_the_other_device_and_back():
    a = nd.array(np.arange(6).reshape(2, 3))
    b = a.as_in_context(mx.cpu(1))
    assert b.context == mx.cpu(1) and b is not a
    np.testing.assert_array_equal(b.asnumpy(), a.asnumpy())
    b[:] = 7                         # its own memory: the source is untouched
    np.testing.assert_array_equal(a.asnumpy(), np.arange(6).reshape(2, 3))
    assert a.as_in_context(mx.cpu(0)) is a
    c = b.copyto(mx.cpu(0))
    assert c.context == mx.cpu(0) and float(c.asnumpy().sum()) == 42.0
    target = nd.zeros((2, 3), ctx=mx.cpu(1))
    a.copyto(target)
    assert target.context == mx.cpu(1)
    np.testing.assert_array_equal(target.asnumpy(), a.asnumpy())


def test_ops_mixing_cpu_devices_run_on_the_first_inputs_device_as_in_mxnet():
    # MXNet 1.9.1 checks only the device type: cpu(0) + cpu(1) is computed on cpu(0)
    a = nd.ones((2,), ctx=mx.cpu(0))
    b = nd.full((2,), 2, ctx=mx.cpu(1))
    assert (a + b).context == mx.cpu(0) and (b + a).context == mx.cpu(1)
    np.testing.assert_array_equal((b + a).asnumpy(), [3, 3])


def test_ops_mixing_cpu_and_gpu_raise_mxnets_error(cuda_device):
    # (a GPU array holds device memory: the simulator's without a GPU)
    a = nd.ones((2,), ctx=mx.cpu(0))
    g = nd.ones((2,), ctx=mx.gpu(0))
    with pytest.raises(GraphcError, match=r"Operator \w+ require all inputs live on the same context\. "
                                          r"But the first argument is on cpu\(0\) while the 2-th argument is on "
                                          r"gpu\(0\)"):
        a + g


# -- the core split ----------------------------------------------------------------------------------
def test_cpu_devices_spec_forms_and_even_split():
    cores = list(range(8))
    assert cpu_devices.parse_spec("2", cores) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert cpu_devices.parse_spec("3", cores) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert cpu_devices.parse_spec("0-3,4-7", cores) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert cpu_devices.parse_spec("0-1,4-5;2-3,6-7", cores) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert cpu_devices.parse_spec("5", [0, 1]) == [[0], [1], [0], [1], [0]]   # more devices than cores
    assert cpu_devices.split_evenly([4, 5, 6], 2) == [[4, 5], [6]]


@pytest.mark.parametrize("spec, message", [
    ("0-3,8-9", r"core 8 \(device cpu\(1\)\) is not one this process may run on \(0-7\)"),
    ("0-x", r"'0-x' is not a core number or a range"),
    ("3-1", r"the range '3-1' runs backwards"),
    ("0", r"must be at least 1"),
    ("0-3,,4", r"empty core range"),
])
def test_cpu_devices_spec_errors_name_the_variable_and_the_problem(spec, message):
    with pytest.raises(GraphcError, match=r"GRAPHC_CPU_DEVICES.*" + message):
        cpu_devices.parse_spec(spec, range(8))


def test_a_process_using_only_cpu0_stays_single_device_and_unpinned():
    out = _child("""
        import numpy as np, graphc as mx
        from graphc import nd, gluon, engine, device
        from graphc.runtime import cpu_devices, threads
        net = gluon.nn.Dense(4, in_units=8); net.initialize(); net.hybridize()
        y = net(nd.ones((2, 8)))
        assert type(y) is nd.NDArray, type(y)            # no pending arrays, no dispatcher
        print(device.MULTI, engine.dispatcher_threads(), cpu_devices.current().count,
              threads.pool_cores(0))
    """, env={"GRAPHC_CPU_DEVICES": ""})
    assert out.split() == ["False", "{}", "1", "None"]


def test_fixed_split_refuses_a_device_it_does_not_define():
    out = _child("""
        import graphc as mx
        from graphc import nd
        from graphc.ops.errors import GraphcError
        nd.ones((1,), ctx=mx.cpu(1))
        try:
            nd.ones((1,), ctx=mx.cpu(2))
        except GraphcError as e:
            print(e)
    """, env={"GRAPHC_CPU_DEVICES": "2"})
    assert "cpu(2) is not a device: GRAPHC_CPU_DEVICES='2' defines 2 CPU device(s), cpu(0) .. cpu(1)" in out


@pytest.mark.skipif(CORES < 2, reason="needs two cores to give two devices their own")
def test_each_device_has_its_own_pinned_pool_and_dispatcher():
    # two threads per device so that each pool starts a worker; each pins itself to its device
    out = _child("""
        import json, os, numpy as np, graphc as mx
        from graphc import nd, gluon, engine
        from graphc.runtime import cpu_devices, threads
        ctxs = [mx.cpu(0), mx.cpu(1)]
        net = gluon.nn.Dense(256, in_units=256); net.initialize(ctx=ctxs); net.hybridize()
        outs = [net(nd.ones((512, 256), ctx=c)) for c in ctxs]
        nd.waitall()
        layout = cpu_devices.current()
        masks = {}
        for tid in os.listdir('/proc/self/task'):
            try:
                m = str(sorted(os.sched_getaffinity(int(tid))))
            except OSError:
                continue
            masks[m] = masks.get(m, 0) + 1
        print(json.dumps({
            "cores": [list(layout.cores(0)), list(layout.cores(1))],
            "pool_cores": [list(threads.pool_cores(0)), list(threads.pool_cores(1))],
            "workers": [threads.pool_workers(0), threads.pool_workers(1)],
            "dispatchers": {name: sorted(os.sched_getaffinity(tid))
                            for threads_ in engine.dispatcher_threads().values() for name, tid in threads_},
            "masks": masks}))
    """, env={"GRAPHC_NUM_THREADS": "2", "GRAPHC_CPU_DEVICES": ""})
    import json
    got = json.loads(out.strip().splitlines()[-1])
    c0, c1 = got["cores"]
    assert c0 and c1 and not set(c0) & set(c1)
    assert got["pool_cores"] == [c0, c1]              # each pool runs on its device's cores
    assert min(got["workers"]) >= 1                   # and has its own worker thread(s)
    assert got["dispatchers"] == {"graphc-cpu(0)-MainThread": c0, "graphc-cpu(1)-MainThread": c1}
    # per device: its dispatcher and its pool's worker are bound to its cores
    assert got["masks"].get(str(c0), 0) >= 2 and got["masks"].get(str(c1), 0) >= 2


# -- asynchronous work: waiting, ordering, failures -----------------------------------------------------
def _dense(ctxs):
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.Constant(0.5), ctx=ctxs)
    net.hybridize()
    return net


def test_a_device_call_returns_pending_outputs_and_readers_wait():
    ctx = mx.cpu(1)
    net = _dense([mx.cpu(0), ctx])
    x = nd.ones((2, 4), ctx=ctx)
    gate = _blocked(ctx)
    y = net(x)
    z = y * 2                           # queued behind the forward
    assert pending.is_pending(y) and pending.is_pending(z)
    assert y.shape == (2, 3) and z.dtype == np.float32 and z.context == ctx   # known without waiting
    gate.set()
    np.testing.assert_allclose(z.asnumpy(), np.full((2, 3), 2 * (0.5 * 4)))   # bias: zeros
    assert type(y) is nd.NDArray        # a plain array again once its work is done


def test_waitall_and_wait_to_read_wait_for_queued_work():
    ctx = mx.cpu(1)
    net = _dense([mx.cpu(0), ctx])
    gate = _blocked(ctx)
    ys = [net(nd.ones((2, 4), ctx=ctx)) for _ in range(3)]
    threading.Timer(0.2, gate.set).start()
    t = time.perf_counter()
    ys[0].wait_to_read()
    assert time.perf_counter() - t > 0.1
    nd.waitall()
    assert all(type(y) is nd.NDArray for y in ys)


def test_python_writes_to_weights_wait_for_the_work_reading_them():
    ctx = mx.cpu(1)
    net = _dense([mx.cpu(0), ctx])
    gate = _blocked(ctx)
    y = net(nd.ones((2, 4), ctx=ctx))       # reads the weights (0.5 each)
    writer = threading.Thread(target=lambda: net.weight.set_data(nd.zeros((3, 4))))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive()                # the write waits for the queued forward
    gate.set()
    writer.join(30)
    np.testing.assert_allclose(y.asnumpy(), np.full((2, 3), 2.0))
    np.testing.assert_allclose(net(nd.ones((2, 4), ctx=ctx)).asnumpy(), np.zeros((2, 3)))


def test_a_failure_on_a_device_surfaces_once_at_the_next_read_or_else_at_waitall():
    ctx = mx.cpu(1)
    net = _dense([mx.cpu(0), ctx])
    nd.waitall()
    gate = _blocked(ctx)
    y = net(nd.ones((2, 4), ctx=ctx))
    bad = nd.take(y, nd.array([5], ctx=ctx), mode="raise")    # fails on the dispatcher
    later = bad + 1                                            # depends on it: fails the same way
    gate.set()
    for arr in (bad, later, bad):
        with pytest.raises(GraphcError, match=r"take: index 5.* out of range for axis 0 of size 2"):
            arr.asnumpy()
    np.testing.assert_allclose(y.asnumpy(), np.full((2, 3), 2.0))   # what succeeded is intact
    nd.waitall()        # raised at the read already: MXNet's engine rethrows a failure once
    gate = _blocked(ctx)
    unread = nd.take(net(nd.ones((2, 4), ctx=ctx)), nd.array([7], ctx=ctx), mode="raise")  # unread...
    gate.set()
    with pytest.raises(GraphcError, match="out of range"):
        nd.waitall()                                           # ...surfaces at waitall, once
    nd.waitall()
    del unread
    fixed = net(nd.ones((2, 4), ctx=ctx))                      # the device goes on working
    np.testing.assert_allclose(fixed.asnumpy(), np.full((2, 3), 2.0))


def test_a_failed_write_is_cleared_by_a_later_complete_write():
    ctx = mx.cpu(1)
    out = pending.new_output((2,), "float32", ctx)

    def boom():
        raise ValueError("boom on the dispatcher")
    pending.run_async(ctx, boom, outputs=[out], name="boom")
    with pytest.raises(ValueError, match="boom on the dispatcher"):
        out.wait_to_read()
    nd.waitall()                            # raised at the read: not again
    out._data = np.ones(2, np.float32)      # a whole new value replaces the failed one
    np.testing.assert_array_equal(out.asnumpy(), [1, 1])


def test_work_queued_by_another_thread_waits_for_the_results_it_reads():
    """Each thread has its own queue per device (its calls run beside other threads' calls, as
    without devices); a job reading another queue's pending result waits for that result."""
    ctx = mx.cpu(1)
    net = _dense([mx.cpu(0), ctx])
    gate = _blocked(ctx)
    y = net(nd.ones((2, 4), ctx=ctx))           # pending in this thread's queue, behind the gate
    got = {}

    def other():
        got["z"] = (y * 3).asnumpy()            # queued on the other thread's queue
    t = threading.Thread(target=other)
    t.start()
    t.join(0.2)
    assert t.is_alive()                          # its job waits for the forward it reads
    gate.set()
    t.join(30)
    np.testing.assert_allclose(got["z"], np.full((2, 3), 6.0))


@pytest.mark.skipif(bool(os.environ.get("GRAPHC_CPU_DEVICES", "").strip()), reason="a fixed split stays")
def test_release_devices_makes_the_process_single_device_again():
    import graphc.device as device
    from graphc.runtime import threads
    net = _dense([mx.cpu(0), mx.cpu(1)])
    y = net(nd.ones((2, 4), ctx=mx.cpu(1)))
    assert device.MULTI and cpu_devices.current().count >= 2
    device.release_devices()
    assert type(y) is nd.NDArray                 # its work was waited for
    assert not device.MULTI and cpu_devices.current().count == 1
    assert threads.pool_cores(0) is None         # cpu(0)'s pool has every core again
    assert type(net(nd.ones((2, 4)))) is nd.NDArray            # runs on the caller, not queued
    np.testing.assert_allclose(net(nd.ones((2, 4), ctx=mx.cpu(1))).asnumpy(), np.full((2, 3), 2.0))


def test_a_copy_to_another_device_is_differentiated_as_a_copy_back():
    w = nd.array([1.0, -2.0, 3.0], ctx=mx.cpu(0))
    w.attach_grad()
    a = nd.array([0.5, 1.0, 2.0], ctx=mx.cpu(1))
    with autograd.record():
        y = (a * a).sum() + (w * w).sum().as_in_context(mx.cpu(1)) * 3
    y.backward()
    assert w.grad.context == mx.cpu(0)
    np.testing.assert_allclose(w.grad.asnumpy(), 6 * np.array([1.0, -2.0, 3.0]))
    # a second-order gradient goes back through the copy as well
    x = nd.array([2.0], ctx=mx.cpu(0))
    x.attach_grad()
    with autograd.record():
        z = (x * x * x).as_in_context(mx.cpu(1))
        (gx,) = autograd.grad(z, [x], create_graph=True)
    gx.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [12.0])    # d/dx 3x^2 = 6x
