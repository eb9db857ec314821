"""Run inside Apache MXNet 1.9.1's own Python: record what MXNet's 2-bit gradient compression
makes of fixed gradients, straight from its C++ kernels.

    python mxnet_2bit_side.py OUT.json

MXNet 1.9.1 has no Python op for 2-bit quantisation, but libmxnet.so exports the methods of
`mxnet::kvstore::GradientCompression` (the object its KVStores use), and an NDArrayHandle is a
pointer to an `mxnet::NDArray`, so ctypes calls them directly: the constructor,
SetTwoBitCompression(float), Quantize(from, to, residual, priority) and Dequantize(from, to,
priority). Every float32 is recorded as its uint32 bit pattern, so the comparison is exact and
NaN and infinities survive JSON.
"""
import ctypes
import json
import sys

import mxnet as mx
import numpy as np
from mxnet.base import _LIB

CASES = [  # (name, size, threshold, steps, seed)
    ("one_value", 1, 0.5, 4, 1), ("fifteen", 15, 0.5, 5, 2), ("sixteen", 16, 0.3, 5, 3),
    ("seventeen", 17, 0.5, 5, 4), ("ragged_37", 37, 0.1, 6, 5), ("two_blocks_2d", 32, 0.7, 5, 6)]


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).reshape(-1).tolist()


def gradients(size, steps, seed, threshold):
    """Values on both sides of +-threshold, exact multiples of it, and in one case NaN and inf."""
    rng = np.random.RandomState(seed)
    g = (rng.randn(steps, size) * threshold * 1.2).astype(np.float32)
    g[:, ::5] = np.float32(threshold) * rng.randint(-2, 3, size=g[:, ::5].shape).astype(np.float32)
    if size == 37:
        g[1, 3], g[2, 4], g[3, 5] = np.nan, np.inf, -np.inf
    return g


def compressor(threshold):
    obj = ctypes.create_string_buffer(256)     # the C++ object's storage (it is a few words)
    _LIB._ZN5mxnet7kvstore19GradientCompressionC1Ev(obj)
    setter = _LIB._ZN5mxnet7kvstore19GradientCompression20SetTwoBitCompressionEf
    setter.argtypes = [ctypes.c_void_p, ctypes.c_float]
    setter(obj, threshold)
    return obj


def main(out):
    quantize = _LIB._ZN5mxnet7kvstore19GradientCompression8QuantizeERKNS_7NDArrayEPS2_S5_i
    quantize.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int]
    dequantize = _LIB._ZN5mxnet7kvstore19GradientCompression10DequantizeERKNS_7NDArrayEPS2_i
    dequantize.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int]
    result = {}
    for name, size, threshold, steps, seed in CASES:
        gc = compressor(threshold)
        grads = gradients(size, steps, seed, threshold)
        shape = (2, size // 2) if name.endswith("2d") else (size,)
        residual = mx.nd.zeros(shape)
        record = {"size": size, "shape": list(shape), "threshold": threshold, "grads": [], "words": [],
                  "dequantized": [], "residual": []}
        for t in range(steps):
            grad = mx.nd.array(grads[t].reshape(shape))
            words = mx.nd.zeros(((size + 15) // 16,))
            values = mx.nd.zeros(shape)
            quantize(gc, grad.handle.value, words.handle.value, residual.handle.value, 0)
            mx.nd.waitall()
            dequantize(gc, words.handle.value, values.handle.value, 0)
            mx.nd.waitall()
            record["grads"].append(bits(grads[t]))
            record["words"].append(bits(words.asnumpy()))
            record["dequantized"].append(bits(values.asnumpy()))
            record["residual"].append(bits(residual.asnumpy()))
        result[name] = record
    with open(out, "w") as f:
        json.dump(result, f, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1])
