"""mxnet.optimizer for graphc: the optimizers (SGD, Adam, ...), their registry and the Updater.

The code lives in gluon/optimizer.py, next to the Trainer that drives it; this module gives it MXNet's
import path (`import mxnet.optimizer`, `mx.optimizer.X`) and must stay a pure re-export."""
from __future__ import annotations

from .gluon.optimizer import *  # noqa: F401,F403
from .gluon.optimizer import __all__  # noqa: F401
