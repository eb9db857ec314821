"""_eye and _linspace: arrays made from attributes alone, as MXNet's (sym.eye / sym.linspace and
F.eye / F.linspace while tracing; the eager nd functions compute the same directly). They
constant-fold."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from ..types import TensorType


def _eye_np(N, M, k, dtype, ctx="cpu(0)"):
    return np.eye(N, M or None, k, dtype=dtype)


def _eye_infer(N, M, k, dtype, ctx="cpu(0)"):
    if N < 0 or M < 0:
        raise ShapeError(f"_eye: N={N} and M={M} must not be negative")
    return TensorType((N, M or N), dtype)


register(OpDef("_eye", inputs=(), infer=_eye_infer, compute=_eye_np,
               attrs={"N": Attr("int"), "M": Attr("int", 0), "k": Attr("int", 0), "dtype": Attr("dtype", "float32"),
                      "ctx": Attr("str", "cpu(0)")},
               doc="N x M (M=0: N x N) with ones on diagonal k."))


def _linspace_np(start, stop, num, endpoint, dtype, ctx="cpu(0)"):
    return np.linspace(start, stop, num, endpoint=endpoint).astype(dtype)


def _linspace_infer(start, stop, num, endpoint, dtype, ctx="cpu(0)"):
    if num < 0:
        raise ShapeError(f"_linspace: num={num} must not be negative")
    return TensorType((num,), dtype)


register(OpDef("_linspace", inputs=(), infer=_linspace_infer, compute=_linspace_np,
               attrs={"start": Attr("float"), "stop": Attr("float"), "num": Attr("int"),
                      "endpoint": Attr("bool", True), "dtype": Attr("dtype", "float32"), "ctx": Attr("str", "cpu(0)")},
               doc="num evenly spaced values from start to stop (stop included when endpoint)."))
