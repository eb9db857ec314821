"""MXNet's sym.arange / full / eye / linspace (and with them F.arange ... inside hybrid_forward):
arrays from numbers, as operators of a namespace, so a traced graph holds them as constants
that fold. graphc.nd has eager functions of the same signatures. Never imports a backend."""
from __future__ import annotations

import numbers


def _shape(shape):
    return (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)


class CreationFunctions:
    def __init__(self, namespace):
        self._namespace = namespace

    def arange(self, start, stop=None, step=1.0, repeat=1, infer_range=False, name=None, dtype=None, ctx=None):
        if stop is None:
            start, stop = 0.0, start
        return self._namespace._arange(start=start, stop=stop, step=step, repeat=repeat, infer_range=infer_range,
                                       dtype=dtype or "float32", name=name)

    def full(self, shape, val, dtype=None, name=None, ctx=None, **kw):
        return self._namespace._full(shape=_shape(shape), value=val, dtype=dtype or "float32", name=name)

    def eye(self, N, M=0, k=0, dtype=None, name=None, ctx=None, **kw):
        return self._namespace._eye(N=N, M=M, k=k, dtype=dtype or "float32", name=name)

    def linspace(self, start, stop, num, endpoint=True, name=None, dtype=None, ctx=None):
        return self._namespace._linspace(start=start, stop=stop, num=num, endpoint=endpoint, dtype=dtype or "float32",
                                         name=name)

    def functions(self) -> dict:
        return {name: getattr(self, name) for name in ("arange", "full", "eye", "linspace")}
