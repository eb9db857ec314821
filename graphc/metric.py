"""mxnet.metric for graphc: evaluation metrics (Accuracy, F1, ...) and their registry.

The code lives in gluon/metric.py, next to the Trainer that drives it; this module gives it MXNet's
import path (`import mxnet.metric`, `mx.metric.X`) and must stay a pure re-export."""
from __future__ import annotations

from .gluon.metric import *  # noqa: F401,F403
from .gluon.metric import __all__  # noqa: F401
