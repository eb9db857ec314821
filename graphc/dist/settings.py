"""Numeric settings of the multi-process layer read from the environment (timeouts, bucket
sizes), each refused in one line naming the variable when it is not a number in range."""
from __future__ import annotations

import os

from .errors import DistributedError

__all__ = ["number_setting"]


def number_setting(name: str, default: str, unit: str, allow_zero: bool = False) -> float:
    """The float in $name (default `default`); `unit` names what it counts in the error."""
    raw = os.environ.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(f"{name}={raw!r}: expected a number of {unit}") from None
    if not (value >= 0 if allow_zero else value > 0):
        raise DistributedError(f"{name}={raw!r}: must be {'0 or more' if allow_zero else 'greater than 0'}")
    return value
