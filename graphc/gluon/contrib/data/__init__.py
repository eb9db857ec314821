"""gluon.contrib.data: IntervalSampler and the language-model datasets of `text` (WikiText2,
WikiText103, read from local files)."""
from . import text  # noqa: F401
from .sampler import *  # noqa: F401,F403
