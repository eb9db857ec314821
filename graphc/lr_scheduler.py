"""mxnet.lr_scheduler for graphc: learning-rate schedules.

The code lives in gluon/lr_scheduler.py, next to the Trainer that drives it; this module gives it MXNet's
import path (`import mxnet.lr_scheduler`, `mx.lr_scheduler.X`) and must stay a pure re-export."""
from __future__ import annotations

from .gluon.lr_scheduler import *  # noqa: F401,F403
from .gluon.lr_scheduler import __all__  # noqa: F401
