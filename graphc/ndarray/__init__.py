"""graphc.nd: eager arrays and every registered operator as a function (nd.exp, nd.dot, ...)."""
from __future__ import annotations

import numpy as np

from ..ops.dtypes import canonical
from ..device import as_context
from .ndarray import NDArray, array, invoke, _NAMESPACE
from . import random  # noqa: F401
from . import contrib  # noqa: F401
from . import sparse  # noqa: F401  (nd.sparse: row_sparse and csr arrays)
from . import image  # noqa: F401  (nd.image: MXNet's image operators)
from .legacy_functions import *  # noqa: F401,F403  (logical_and, moveaxis, histogram, multi_* updates...)
from ..op_functions import ElementwiseFunctions, PrefixNamespace

linalg = PrefixNamespace(_NAMESPACE, "_linalg_")
# nd.add, nd.subtract, ..., nd.maximum, nd.minimum: dispatch on arrays and numbers as MXNet's
globals().update(ElementwiseFunctions(_NAMESPACE, lambda a: isinstance(a, NDArray)).functions())
from ..internal_namespace import InternalNamespace  # noqa: E402
_internal = InternalNamespace(_NAMESPACE, lambda a: isinstance(a, NDArray))   # MXNet's nd._internal._plus...


def _ctx_str(ctx):
    return str(as_context(ctx))


def _shape(shape):
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def _created(data, ctx, out):
    """A new array of `data`, or (MXNet's out=) `data` written into `out`, which is returned."""
    if out is None:
        return NDArray(data, as_context(ctx))
    if tuple(out.shape) != data.shape:
        from ..ops.errors import ShapeError
        raise ShapeError(f"out= has shape {tuple(out.shape)} but the created array has shape {data.shape}")
    out[:] = data
    return out


def zeros(shape, ctx=None, dtype="float32", stype=None, out=None, **kw):
    if stype not in (None, "default"):
        return sparse.zeros(stype, shape, ctx, dtype)
    return _created(np.zeros(_shape(shape), canonical(dtype)), ctx, out)


def ones(shape, ctx=None, dtype="float32", out=None, **kw):
    return _created(np.ones(_shape(shape), canonical(dtype)), ctx, out)


def full(shape, val, ctx=None, dtype="float32", out=None):
    return _created(np.full(_shape(shape), val, canonical(dtype)), ctx, out)


def empty(shape, ctx=None, dtype="float32", stype=None):
    """An uninitialised array; stype='row_sparse'/'csr' gives an empty sparse array (no stored
    values), as MXNet's."""
    if stype not in (None, "default"):
        return sparse.zeros(stype, shape, ctx=ctx, dtype=dtype)
    return NDArray(np.empty(_shape(shape), canonical(dtype)), as_context(ctx))


def arange(start, stop=None, step=1.0, repeat=1, infer_range=False, ctx=None, dtype="float32"):
    if stop is None:
        start, stop = 0, start
    data = np.repeat(np.arange(start, stop, step), repeat).astype(canonical(dtype))
    return NDArray(data, as_context(ctx))


def eye(N, M=0, k=0, ctx=None, dtype="float32", **kw):
    """N x M (M=0: N x N) with ones on diagonal k, as MXNet's nd.eye."""
    return NDArray(np.eye(int(N), int(M) or None, int(k), dtype=canonical(dtype)), as_context(ctx))


def linspace(start, stop, num, endpoint=True, ctx=None, dtype="float32"):
    return NDArray(np.linspace(start, stop, int(num), endpoint=endpoint).astype(canonical(dtype)),
                   as_context(ctx))


def Custom(*inputs, op_type=None, **kwargs):
    """Run a Python operator registered with graphc.operator.register (MXNet's nd.Custom)."""
    from ..operator import invoke_custom
    return invoke_custom(*inputs, op_type=op_type, **kwargs)


def zeros_like(x, **kw):
    return invoke("zeros_like", [x], {})


def ones_like(x, **kw):
    return invoke("ones_like", [x], {})


def concat(*arrays, dim=1, **kw):
    return invoke("Concat", list(arrays), {"dim": dim, "num_args": len(arrays)})


def stack(*arrays, axis=0, **kw):
    return invoke("stack", list(arrays), {"axis": axis, "num_args": len(arrays)})


def waitall():
    """Wait for the queued work of every device and raise the first failure since the last
    waitall (MXNet's). With one device in use nothing is ever queued and this returns at once."""
    from .. import engine
    engine.waitall()


def save(fname, data):
    """Save NDArrays in MXNet's .params format (a list, or a dict of names)."""
    from ..formats.mxnet_params import save_params
    if isinstance(data, NDArray):
        data = [data]
    if isinstance(data, dict):
        save_params(fname, {k: sparse.saveable(v) for k, v in data.items()})
    else:
        save_params(fname, {str(i): sparse.saveable(v) for i, v in enumerate(data)}, named=False) \
            if "named" in save_params.__code__.co_varnames else save_params(fname, {str(i): sparse.saveable(v) for i, v in enumerate(data)})


def load(fname):
    from ..formats.mxnet_params import load_params
    loaded = load_params(fname)
    if all(k.isdigit() for k in loaded) and loaded:
        return [sparse.loaded(v) for v in loaded.values()]
    return {k: sparse.loaded(v) for k, v in loaded.items()}


cast_storage = sparse.cast_storage     # MXNet's nd.cast_storage(data, stype)


def load_frombuffer(buf):
    """nd.load of the bytes of a .params file (MXNet's load_frombuffer): the same list or dict.
    The reader works on files, so the bytes go through a temporary one; a truncated or corrupt
    buffer raises the reader's FormatError (an MXNetError)."""
    import os
    import tempfile
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"load_frombuffer: expects bytes, got {type(buf).__name__}")
    from ..ops.errors import GraphcError
    fd, path = tempfile.mkstemp(suffix=".params")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf)
        return load(path)
    except GraphcError as exc:       # name the buffer, not the temporary file
        raise type(exc)(str(exc).replace(path, f"nd.load_frombuffer({len(buf)} bytes)")) from None
    finally:
        os.unlink(path)


def __getattr__(name):
    fn = getattr(_NAMESPACE, name, None)
    if fn is None:
        raise AttributeError(f"module 'graphc.nd' has no attribute {name!r}: not supported (graphc has no "
                             "operator or function of that name; dir(graphc.nd) lists those it has)")
    return fn


def __dir__():
    return sorted(set(globals()) | set(dir(_NAMESPACE)))
