"""gluon.contrib.estimator: MXNet 1.9's high-level training loop (Estimator.fit/evaluate) and
the event handlers that drive it (stopping, metrics, validation, logging, checkpoints, early
stopping, the optimizer step), with MXNet's names, priorities and call order."""
from . import estimator, event_handler, batch_processor  # noqa: F401
from .estimator import *  # noqa: F401,F403
from .event_handler import *  # noqa: F401,F403
from .batch_processor import *  # noqa: F401,F403
