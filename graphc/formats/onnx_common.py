"""What ONNX export and import share: loading the optional `onnx` package with an error that says
how to install it, and the mapping between graphc's dtype names and ONNX's tensor types.

This module must never import a backend; it does not touch graphs.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.errors import FormatError

# The opset the exporter writes: 13 is the first with Softmax over one axis (MXNet's softmax)
# and with axes as inputs of Squeeze/Unsqueeze/ReduceSum, which both sides handle.
EXPORT_OPSET = 13


def require_onnx():
    """The `onnx` module, or an ImportError naming the extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX support needs the 'onnx' package: pip install 'graphc[onnx]' "
                          "(or pip install onnx onnxruntime)") from None
    return onnx


def onnx_elem_type(dtype) -> int:
    """ONNX TensorProto type of a numpy/graphc dtype; refuses one ONNX cannot hold."""
    onnx = require_onnx()
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    try:
        return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(name))
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"dtype {name!r} has no ONNX tensor type") from None


def numpy_dtype(elem_type: int) -> np.dtype:
    """numpy dtype of an ONNX TensorProto type; refuses types graphc has no dtype for."""
    onnx = require_onnx()
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"ONNX tensor type {elem_type} has no numpy dtype") from None


def pool_windows(size: int, kernel: int, stride: int, pad: int) -> tuple:
    """(floor, MXNet 'full', ONNX ceil_mode) window counts along one axis padded by `pad` on
    both sides. ONNX (as PyTorch) drops a last window that would start inside the end padding;
    MXNet's 'full' convention keeps it."""
    span = size + 2 * pad - kernel
    floor, full = span // stride + 1, -(-span // stride) + 1
    onnx_ceil = full - 1 if full > floor and (full - 1) * stride >= size + pad else full
    return floor, full, onnx_ceil
