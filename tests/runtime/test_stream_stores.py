"""Streaming stores for large elementwise outputs (runtime/stream_stores.py): which kernels take
them, and that the streamed kernel writes exactly what numpy computes, whatever the output's
alignment, length (blocks, 64-byte lines, tails) and the pool's split; a compiled Gluon block
with a large output goes through it and stays right."""
import ctypes
import re

import numpy as np
import pytest

from graphc.ops import scalar as S
from graphc.ops.types import TensorType
from graphc.runtime import cache as _cache
from graphc.runtime import stream_stores
from graphc.runtime.lower import elementwise_kernel
from graphc.runtime.render_llvm import ModuleBuilder

RNG = np.random.default_rng(3)


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setenv("GRAPHC_STREAM_STORE_BYTES", "4096")


def w1b_kernel(n, name="k_stream_test"):
    """out = relu(in0 * in1 + 1) * in0 - 0.25 over n floats, in1 a broadcast scalar."""
    x = S.arg(0)
    expr = S.maximum(x * S.arg(1) + 1.0, S.const(0.0)) * x - 0.25
    return elementwise_kernel(name, expr, TensorType((n,)), [TensorType((n,)), TensorType(())], ["in0", "in1"], "out")


def run(kernel, n, out_offset_bytes=0, nthreads=2):
    """Run the kernel through a module entry with the output bound `out_offset_bytes` into its
    buffer; returns (output, reference, the module's IR)."""
    x = RNG.standard_normal(n).astype(np.float32)
    s = np.array(0.5, np.float32)
    pad = 32
    out = np.full(n + pad, np.float32(7.0))
    tm = _cache.target_machine()

    def build_ir():
        mb = ModuleBuilder("t", nthreads, tm.triple, str(tm.target_data))
        mb.add_entry("entry", [(kernel, [(0, out_offset_bytes), (1, 0), (2, 0)])])
        return str(mb)
    text = build_ir()
    addrs, _, engine = _cache.load("unused", build_ir, ["entry"], use_cache=False)
    args = (ctypes.c_void_p * 3)(out.ctypes.data, x.ctypes.data, s.ctypes.data)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs["entry"])(args)
    del engine
    k = out_offset_bytes // 4
    ref = np.full(n + pad, np.float32(7.0))
    ref[k:k + n] = np.maximum(x * s + np.float32(1.0), 0) * x - np.float32(0.25)
    return out, ref, text


@pytest.mark.parametrize("n", [40001, 12 * stream_stores.BLOCK + 5, 16 * stream_stores.BLOCK, 65536 + 17])
@pytest.mark.parametrize("offset", [0, 4, 60])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_streamed_kernel_matches_numpy(small_threshold, n, offset, nthreads):
    kernel = w1b_kernel(n)
    assert kernel.parallel_loop is not None, "the test needs a kernel the pool splits"
    out, ref, text = run(kernel, n, offset, nthreads)
    assert re.search(r'define void @"k_stream_test\.stream"', text)
    assert "!nontemporal" in text
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_off_below_the_threshold_and_when_disabled(monkeypatch):
    kernel = w1b_kernel(40001)
    monkeypatch.setenv("GRAPHC_STREAM_STORE_BYTES", str(40001 * 4 + 1))
    assert not stream_stores.takes(kernel)
    monkeypatch.setenv("GRAPHC_STREAM_STORE_BYTES", "0")
    assert not stream_stores.takes(kernel)
    out, ref, text = run(kernel, 40001, 4)
    assert ".stream" not in text and "!nontemporal" not in text
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    monkeypatch.setenv("GRAPHC_STREAM_STORE_BYTES", str(40001 * 4))
    assert stream_stores.takes(kernel)


def test_other_shapes_are_left_alone(small_threshold):
    x = S.arg(0)
    # a row broadcast over a 2-D output: two loops, the load's index is not the output's
    k2 = elementwise_kernel("k_2d", x * S.arg(1), TensorType((600, 200)), [TensorType((600, 200)), TensorType((200,))],
                            ["in0", "in1"], "out")
    assert k2.parallel_loop is not None and not stream_stores.takes(k2)
    # in place: the output is also read
    kin = elementwise_kernel("k_in", x * 2.0 + 1.0, TensorType((60000,)), [TensorType((60000,))], ["out"], "out",
                             frozenset({"out"}))
    assert not stream_stores.takes(kin)
    # another dtype
    kd = elementwise_kernel("k_f64", S.arg(0, "float64") * 2.0, TensorType((60000,), "float64"),
                            [TensorType((60000,), "float64")], ["in0"], "out")
    assert not stream_stores.takes(kd)


def test_gluon_block_with_a_large_output(small_threshold):
    import graphc as mx
    from graphc import gluon

    class Block(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.relu(x * 0.5 + 1.0) * x - 0.25
    net = Block()
    net.hybridize(static_alloc=True, static_shape=True)
    for n in (100003, 50000):
        xn = RNG.standard_normal(n).astype(np.float32)
        for _ in range(2):      # the second call reuses the static output buffers
            got = net(mx.nd.array(xn)).asnumpy()
            np.testing.assert_allclose(got, np.maximum(xn * 0.5 + 1.0, 0) * xn - 0.25, rtol=1e-6, atol=1e-6)
