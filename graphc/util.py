"""mxnet.util for graphc: environment access, GPU count and the numpy-semantics switches.

graphc implements MXNet 1.x's legacy array semantics only (full reductions give shape (1,),
not 0-d). The switches therefore report "off", and turning numpy semantics on is refused with a
clear error rather than silently ignored."""
from __future__ import annotations

import os

from .base import py_str  # noqa: F401  (MXNet exposes it here too)
from .ops.errors import GraphcError
from .device import num_gpus


def getenv(name):
    """The value of environment variable `name`, or None (MXNet reads the C runtime's copy)."""
    return os.environ.get(name)


def setenv(name, value):
    """Set (or, with value None, unset) an environment variable for this process."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)


def get_gpu_count():
    return num_gpus()


def is_np_shape():
    return False


def is_np_array():
    return False


def _refuse_numpy_mode(what):
    raise GraphcError(f"{what}: graphc implements MXNet 1.x's legacy NDArray semantics only; "
                      "numpy semantics (mx.np, 0-d arrays) are not supported")


def set_np_shape(active):
    """Returns the previous state (always False); activating numpy shapes is refused."""
    if active:
        _refuse_numpy_mode("set_np_shape(True)")
    return False


def set_np(shape=True, array=True):
    if shape or array:
        _refuse_numpy_mode("set_np")


def reset_np():
    """Deactivate numpy semantics: they are never active in graphc."""


def np_shape(active=True):
    if active:
        _refuse_numpy_mode("np_shape")
    return _NullScope()


def np_array(active=True):
    if active:
        _refuse_numpy_mode("np_array")
    return _NullScope()


class _NullScope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def use_np(func):
    _refuse_numpy_mode(f"use_np({getattr(func, '__name__', func)!r})")


use_np_shape = use_np_array = use_np


def set_module(module):
    """Decorator setting `__module__` of a function or class (as MXNet's)."""
    def decorator(obj):
        if module is not None:
            obj.__module__ = module
        return obj
    return decorator

