"""DistributedError: what every failure of the multi-process layer raises (a dead or missing
rank, a deadline passed, ranks that disagree about a collective)."""
from __future__ import annotations

from ..ops.errors import GraphcError

__all__ = ["DistributedError"]


class DistributedError(GraphcError, RuntimeError):
    """A distributed run cannot go on. The message names this rank, the operation, and the
    ranks at fault (or suspected), so every surviving rank's stderr says what happened."""
