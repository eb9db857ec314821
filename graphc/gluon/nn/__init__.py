"""Gluon neural-network layers (`mx.gluon.nn`)."""
from .activations import *  # noqa: F401,F403
from .basic_layers import *  # noqa: F401,F403
from .conv_layers import *  # noqa: F401,F403
from .norm_layers import *  # noqa: F401,F403
from ..block import Block, HybridBlock  # noqa: F401


def __getattr__(name):
    if name == "SymbolBlock":
        from ..symbol_block import SymbolBlock
        return SymbolBlock
    raise AttributeError(f"module 'graphc.gluon.nn' has no attribute {name!r}")
