"""`sym._internal` / `nd._internal`: MXNet's underscore-prefixed operator names.

MXNet exposes every operator whose name starts with '_' there (`_plus`, `_mul_scalar`,
`_Plus`, `_GreaterEqualScalar`...). graphc's registry declares most of them, as names or
aliases; the CamelCase spellings of the 0.x era map to their snake_case operators, and the few
MXNet operators graphc does not declare but that compose exactly from ones it does are written
here (the `_COMPOSED` table). Anything else is an AttributeError naming what was asked.
"""
from __future__ import annotations

import re

from .ops.registry import has_op


def _snake(name: str) -> str:
    """_GreaterEqualScalar -> _greater_equal_scalar; _Greater_Equal -> _greater_equal."""
    body = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.lstrip("_")).lower()
    return "_" + body.replace("__", "_")


def _identity_with_attr_like_rhs(ns, lhs, rhs, name=None, **kw):
    # lhs's values, with rhs's shape (the two must agree: shape inference unifies them, so an
    # unknown lhs or rhs takes the other's shape); rhs gets a zero gradient, as in MXNet
    return ns.elemwise_add(lhs, ns.zeros_like(rhs), name=name, **kw)


def _hypot_scalar(ns, data, scalar=0.0, name=None, **kw):
    return ns.sqrt(ns._plus_scalar(ns.square(data), scalar=float(scalar) ** 2), name=name, **kw)


_COMPOSED = {
    "_identity_with_attr_like_rhs": _identity_with_attr_like_rhs,
    "_hypot_scalar": _hypot_scalar,
    "_hypot": lambda ns, lhs, rhs, **kw: ns.broadcast_hypot(lhs, rhs, **kw),
    "_copyto": lambda ns, data, **kw: ns._copy(data, **kw),
}


class InternalNamespace:
    """Attribute access yields MXNet's `_internal.<name>` function over `namespace` (the sym or
    nd operator namespace)."""

    def __init__(self, namespace, is_tensor):
        self._namespace = namespace
        self._is_tensor = is_tensor

    def __getattr__(self, name):
        if not name.startswith("_") or name.startswith("__"):
            raise AttributeError(name)
        for candidate in (name, _snake(name)):
            if has_op(candidate):
                return getattr(self._namespace, candidate)
            composed = _COMPOSED.get(candidate)
            if composed is not None:
                ns = self._namespace
                fn = lambda *args, **kwargs: composed(ns, *args, **kwargs)   # noqa: E731
                fn.__name__ = name
                return fn
        raise AttributeError(f"_internal has no operator {name!r}: graphc declares no operator of that name "
                             f"(nor {_snake(name)!r})")

    def __dir__(self):
        from .ops.registry import all_names
        return sorted({n for n in all_names() if n.startswith("_")} | set(_COMPOSED))
