"""Operators that make arrays from nothing or from another array's type: _zeros, _ones, _full,
_arange, zeros_like, ones_like. They constant-fold."""
from __future__ import annotations

import numpy as np

from .. import scalar as S
from ..attrs import Attr
from ..registry import OpDef, Elementwise, register
from ..types import TensorType
from .common import like

_FILL_ATTRS = {"shape": Attr("shape", ()), "dtype": Attr("dtype", "float32"), "ctx": Attr("str", "cpu(0)")}


def _fill_infer(shape, dtype, ctx="cpu(0)", **_):
    return TensorType(shape, dtype)


register(OpDef("_zeros", inputs=(), infer=_fill_infer, attrs=_FILL_ATTRS,
               compute=lambda shape, dtype, ctx="cpu(0)": np.zeros(shape, dtype)))
register(OpDef("_ones", inputs=(), infer=_fill_infer, attrs=_FILL_ATTRS,
               compute=lambda shape, dtype, ctx="cpu(0)": np.ones(shape, dtype)))
register(OpDef("_full", inputs=(), infer=_fill_infer, attrs={**_FILL_ATTRS, "value": Attr("float")},
               compute=lambda shape, dtype, value, ctx="cpu(0)": np.full(shape, value, dtype)))


def _no_grad(F, ins, outs, gs, attrs):
    return [None] * len(ins)


register(OpDef("zeros_like", infer=lambda x: x, compute=np.zeros_like, gradient=_no_grad,
               lowering=Elementwise(lambda x: S.const(0, x.dtype))))
register(OpDef("ones_like", infer=lambda x: x, compute=np.ones_like, gradient=_no_grad,
               lowering=Elementwise(lambda x: S.const(1, x.dtype))))


def _arange_len(start, stop, step, repeat):
    if stop is None:
        start, stop = 0.0, start
    return int(max(0, np.ceil((stop - start) / step))) * repeat, start, stop


def _arange_infer(start, stop, step, repeat, dtype, ctx="cpu(0)", infer_range=False):
    n, _, _ = _arange_len(start, stop, step, repeat)
    return TensorType((n,), dtype)


def _arange_np(start, stop, step, repeat, dtype, ctx="cpu(0)", infer_range=False):
    _, start, stop = _arange_len(start, stop, step, repeat)
    return np.repeat(np.arange(start, stop, step), repeat).astype(dtype)


register(OpDef("_arange", inputs=(), infer=_arange_infer, compute=_arange_np,
               attrs={"start": Attr("float", 0.0), "stop": Attr("float", None, optional=True),
                      "step": Attr("float", 1.0), "repeat": Attr("int", 1),
                      "dtype": Attr("dtype", "float32"), "ctx": Attr("str", "cpu(0)"),
                      "infer_range": Attr("bool", False)}))
