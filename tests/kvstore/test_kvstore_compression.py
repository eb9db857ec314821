"""2-bit compression (graphc/kvstore/compression.py): the packing layout spelled out by hand,
error feedback, parameter parsing, and that it is vectorised. Bit-identity with MXNet's kernels
is in test_kvstore_vs_mxnet.py."""
import time

import numpy as np
import pytest

import graphc as mx
from graphc.kvstore.compression import TwoBitCompression, from_params


def test_codes_pack_msb_first_sixteen_to_a_word():
    comp = TwoBitCompression(1.0)
    grad = np.zeros(18, np.float32)
    grad[0] = 1.0       # 0b11 in bits 7-6 of byte 0
    grad[1] = -1.5      # 0b10 in bits 5-4 of byte 0
    grad[7] = 2.0       # 0b11 in bits 1-0 of byte 1
    grad[17] = -1.0     # second word, byte 0, bits 5-4
    residual = np.zeros(18, np.float32)
    words = comp.quantize(grad, residual)
    assert words.dtype == np.float32 and words.size == 2
    assert words.view(np.uint8).tolist() == [0b11100000, 0b00000011, 0, 0, 0b00100000, 0, 0, 0]
    np.testing.assert_array_equal(residual[[0, 1, 7, 17]], [0.0, -0.5, 1.0, 0.0])
    values = comp.dequantize(words, 18)
    np.testing.assert_array_equal(values[[0, 1, 7, 17]], [1.0, -1.0, 1.0, -1.0])
    assert np.count_nonzero(values) == 4


def test_residual_carries_what_was_not_sent():
    comp = TwoBitCompression(0.5)
    residual = np.zeros(3, np.float32)
    sent = [comp.dequantize(comp.quantize(np.array([0.2, -0.3, 0.6], np.float32), residual), 3) for _ in range(3)]
    np.testing.assert_array_equal(sent, [[0, 0, 0.5], [0, -0.5, 0.5], [0.5, 0, 0.5]])
    np.testing.assert_allclose(residual, [0.1, -0.4, 0.3], atol=1e-6)


def test_the_01_code_reads_as_zero_like_mxnets_dequantize():
    comp = TwoBitCompression(0.5)
    words = np.array([0b01010101] * 4, np.uint8).view(np.float32)
    np.testing.assert_array_equal(comp.dequantize(words, 16), np.zeros(16, np.float32))


def test_million_values_compress_quickly():
    comp = TwoBitCompression(0.5)
    grad = np.random.RandomState(0).randn(1 << 20).astype(np.float32)
    residual = np.zeros_like(grad)
    start = time.perf_counter()
    words = comp.quantize(grad, residual)
    comp.dequantize(words, grad.size)
    assert time.perf_counter() - start < 2.0
    assert words.size == (1 << 20) // 16


def test_only_float32_is_accepted():
    comp = TwoBitCompression(0.5)
    with pytest.raises(mx.DTypeError, match="float16"):
        comp.quantize(np.zeros(4, np.float16), np.zeros(4, np.float32))
    with pytest.raises(mx.GraphcError, match=r"shape \(4,\).*\(5,\)"):
        comp.quantize(np.zeros(4, np.float32), np.zeros(5, np.float32))
    with pytest.raises(mx.GraphcError, match="need 1 words, got 2"):
        comp.dequantize(np.zeros(2, np.float32), 16)


def test_parameters_parse_as_mxnet_does():
    assert float(from_params({"type": "2bit"}).threshold) == 0.5
    assert from_params({"type": "2bit", "threshold": "0.25"}).threshold == np.float32(0.25)
    for bad, msg in (({"type": "1bit"}, "unknown type '1bit'"), ({"threshold": 1}, "'type' is missing"),
                     ({"type": "2bit", "threshold": 0}, "greater than 0"), ("2bit", "expected a dict"),
                     ({"type": "2bit", "threshold": "high"}, "must be a number")):
        with pytest.raises(mx.GraphcError, match=msg):
            from_params(bad)
    with pytest.warns(UserWarning, match="treshold"):
        from_params({"type": "2bit", "treshold": 0.1})
