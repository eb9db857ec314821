"""mxnet.initializer for graphc: weight initializers (Xavier, Normal, ...) and their registry.

The code lives in gluon/init.py, next to the Trainer that drives it; this module gives it MXNet's
import path (`import mxnet.initializer`, `mx.initializer.X`) and must stay a pure re-export."""
from __future__ import annotations

from .gluon.init import *  # noqa: F401,F403
from .gluon.init import __all__  # noqa: F401
