"""Gluon (`mx.gluon`): MXNet 1.x's imperative/hybrid model API over graphc's compiler.

Block/HybridBlock (block.py), Parameter (parameter.py), layers (nn/, rnn/), losses (loss.py),
Trainer + optimizers + schedules, metrics, data loading (data/) and pretrained models
(model_zoo/). The compiled path (hybridize, export, SymbolBlock) lives in cached_op.py and
symbol_block.py.
"""
from __future__ import annotations

import importlib

from .parameter import Parameter, Constant, ParameterDict, DeferredInitializationError  # noqa: F401
from .block import Block, HybridBlock  # noqa: F401
from . import init, utils, loss, metric, optimizer, lr_scheduler, nn  # noqa: F401
from .trainer import Trainer  # noqa: F401

_LAZY_SUBMODULES = ("rnn", "data", "model_zoo", "contrib")


def __getattr__(name):
    if name == "SymbolBlock":
        from .symbol_block import SymbolBlock
        globals()[name] = SymbolBlock
        return SymbolBlock
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'graphc.gluon' has no attribute {name!r}")
