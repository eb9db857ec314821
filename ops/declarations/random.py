"""Random samplers. They draw from the generator the caller passes (graphc.random.seed sets it),
are never constant-folded or merged by CSE, and have no gradient."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..registry import OpDef, register
from ..types import TensorType

_COMMON = {"shape": Attr("shape", ()), "dtype": Attr("dtype", "float32"), "ctx": Attr("str", "cpu(0)")}


def _infer(shape, dtype, ctx="cpu(0)", **_):
    return TensorType(shape, dtype or "float32")


register(OpDef("_random_uniform", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "low": Attr("float", 0.0), "high": Attr("float", 1.0)},
               compute=lambda shape, dtype, low, high, ctx="cpu(0)", rng=None: rng.uniform(low, high, shape).astype(dtype),
               aliases=("uniform", "random_uniform")))
register(OpDef("_random_normal", inputs=(), infer=_infer, random=True,
               attrs={**_COMMON, "loc": Attr("float", 0.0), "scale": Attr("float", 1.0)},
               compute=lambda shape, dtype, loc, scale, ctx="cpu(0)", rng=None: rng.normal(loc, scale, shape).astype(dtype),
               aliases=("normal", "random_normal")))
