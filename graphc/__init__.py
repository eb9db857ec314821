"""graphc: an MXNet-Gluon-style deep-learning framework with a compiler underneath.

`import graphc as mx` runs ordinary Gluon 1.x code: `mx.nd`, `mx.autograd`, `mx.gluon`,
`mx.sym`, `mx.cpu()`. `hybridize()` traces a block into a graph that the passes optimise and the
LLVM backend compiles.
"""
from __future__ import annotations

import importlib

from .ops.errors import GraphcError, ShapeError, DTypeError, OpAttributeError, FormatError, CompileError  # noqa: F401
from .device import Context, cpu, gpu, cpu_pinned, current_context, num_gpus  # noqa: F401
from . import base, context, util  # noqa: F401  (MXNet's module names)
from . import autograd, random  # noqa: F401
from . import ndarray  # noqa: F401
from . import ndarray as nd  # noqa: F401
from .ndarray import NDArray  # noqa: F401

__version__ = "0.1.0"
MXNetError = GraphcError  # code that catches mx.base.MXNetError keeps working

_LAZY = {"sym": ".symbol", "symbol": ".symbol", "gluon": ".gluon", "init": ".initializer",
         "initializer": ".initializer", "metric": ".metric", "kv": ".kvstore",
         "kvstore": ".kvstore", "formats": ".formats", "lr_scheduler": ".lr_scheduler",
         "optimizer": ".optimizer", "operator": ".operator", "test_utils": ".test_utils", "name": ".name",
         "viz": ".viz", "io": ".io", "mod": ".module", "module": ".module", "callback": ".callback",
         "model": ".model", "profiler": ".profiler", "recordio": ".recordio", "image": ".image",
         "onnx": ".onnx", "rnn": ".rnn", "mon": ".monitor", "monitor": ".monitor", "contrib": ".contrib"}


def __getattr__(name):
    if name == "AttrScope":
        from .symbol import AttrScope
        return AttrScope
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
