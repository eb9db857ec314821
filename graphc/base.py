"""mxnet.base for graphc: the error classes and type tuples that MXNet code imports from
`mxnet.base` (`except mx.base.MXNetError`, `isinstance(x, numeric_types)`).

There is no C library underneath, so none of MXNet's ctypes plumbing (handles, check_call) lives
here; only the pure-Python names user code and MXNet-era helpers rely on."""
from __future__ import annotations

import os
import platform

import numpy as _np

from .ops.errors import GraphcError

MXNetError = GraphcError
integer_types = (int, _np.int32, _np.int64)
numeric_types = (float, int, _np.generic)
string_types = (str,)
mx_real_t = _np.float32
long = int
basestring = str


def py_str(x):
    """bytes from a C string to str (MXNet's helper; graphc's strings are already str)."""
    return x.decode("utf-8") if isinstance(x, (bytes, bytearray)) else str(x)


def _as_list(obj):
    """A lone value as a one-element list; MXNet-era helpers and tests take `x` or `[x, ...]`."""
    return obj if isinstance(obj, (list, tuple)) else [obj]


def data_dir_default():
    """Where downloads (model-zoo weights, datasets) go unless MXNET_HOME says otherwise."""
    if platform.system() == "Windows":
        return os.path.join(os.environ.get("APPDATA", ""), "mxnet")
    return os.path.join(os.path.expanduser("~"), ".mxnet")


def data_dir():
    return os.getenv("MXNET_HOME", data_dir_default())


class _NotImplementedFor(MXNetError):
    """MXNet's 'function X (operator Y) is not implemented for <kind>' errors."""
    kind = ""

    def __init__(self, function, alias, *args):
        super().__init__()
        self.function = getattr(function, "__name__", str(function))
        self.alias = alias
        self.args = [str(type(a)) for a in args]

    def __str__(self):
        msg = f"Function {self.function}"
        if self.alias:
            msg += f' (namely operator "{self.alias}")'
        if self.args:
            msg += " with arguments ({})".format(", ".join(self.args))
        return msg + f" is not implemented for {self.kind}."


class NotImplementedForSymbol(_NotImplementedFor):
    kind = "Symbol and only available in NDArray"


class NotSupportedForSparseNDArray(_NotImplementedFor):
    kind = "SparseNDArray and only available in NDArray"


class classproperty:
    """A read-only property on the class itself (MXNet's `classproperty`)."""

    def __init__(self, fget):
        self.fget = fget

    def __get__(self, obj, owner):
        return self.fget(owner)


def with_metaclass(meta, *bases):
    """Create a base class with metaclass `meta` (MXNet's py2/py3 helper)."""
    return meta("_WithMetaclass", bases or (object,), {})
