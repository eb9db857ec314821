"""Attribute schemas: parse what a user or an MXNet JSON file gives, format what we write.

MXNet writes every attribute as a Python-literal string ("True", "(3, 3)", "0.9", "relu");
users pass Python values. Both go through one parser per kind, so a value means the same
whichever way it arrived.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from .dtypes import canonical
from .errors import OpAttributeError

REQUIRED = object()


class FrozenAttrs(dict):
    """A hashable, read-only dict: attributes are part of a node's identity (CSE, caching)."""

    def _refuse(self, *a, **k):
        raise TypeError("node attributes are frozen; build a new node instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self):
        return hash(tuple(sorted((k, _hashable(v)) for k, v in self.items())))

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _hashable(v):
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if hasattr(v, "tobytes"):
        return (v.shape, str(v.dtype), v.tobytes())
    return v


def _literal(text: str):
    text = text.strip()
    if text in ("None", "none", ""):
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _as_bool(v):
    if isinstance(v, str):
        v = _literal(v)
    if isinstance(v, (bool, int)) and v in (0, 1, True, False):
        return bool(v)
    raise ValueError("expected a boolean")


def _as_int(v):
    if isinstance(v, str):
        v = _literal(v)
    if isinstance(v, bool) or not float(v).is_integer():
        raise ValueError("expected an integer")
    return int(v)


def _as_float(v):
    if isinstance(v, str):
        v = _literal(v)
    return float(v)


def _as_str(v):
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _as_shape(v):
    if isinstance(v, str):
        v = _literal(v)
    if isinstance(v, int):
        return (int(v),)
    return tuple(_as_int(x) for x in v)


def _as_axis(v):
    """An axis attribute: None, one int, or a tuple of ints (MXNet writes '()' for None too)."""
    if isinstance(v, str):
        v = _literal(v)
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return tuple(_as_int(x) for x in v) if len(v) else None
    return _as_int(v)


def _as_dtype(v):
    return canonical(v)


_PARSERS = {"bool": _as_bool, "int": _as_int, "float": _as_float, "str": _as_str,
            "shape": _as_shape, "axis": _as_axis, "dtype": _as_dtype, "any": lambda v: v}


@dataclass(frozen=True)
class Attr:
    kind: str
    default: Any = REQUIRED
    choices: tuple | None = None
    optional: bool = False  # None is an accepted value

    def parse(self, op: str, name: str, value):
        if value is None and (self.optional or self.default is None):
            return None
        if isinstance(value, str) and self.optional and value.strip() in ("None", ""):
            return None
        try:
            parsed = _PARSERS[self.kind](value)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise OpAttributeError(
                f"{op}: attribute {name}={value!r} is not a valid {self.kind} ({exc})") from None
        if self.choices is not None and parsed not in self.choices:
            raise OpAttributeError(
                f"{op}: attribute {name}={parsed!r} must be one of {list(self.choices)}")
        return parsed


def parse_attrs(op: str, schema: dict, given: dict) -> FrozenAttrs:
    """Check `given` against `schema`, fill defaults, parse strings. Keys starting with '__'
    (MXNet's hints like __shape__, __lr_mult__, __ctx_group__) pass through unparsed."""
    out = {}
    for key, value in given.items():
        if key.startswith("__") or key == "name":
            continue
        if not schema:
            # MXNet keeps and ignores any attribute on an operator declared without a parameter
            # struct (broadcast_maximum(a, b, axis=1), exp(x, foo=1)); files written so must load
            continue
        if key not in schema:
            raise OpAttributeError(
                f"{op}: unknown attribute {key!r}; it accepts {sorted(schema) or 'none'}")
        out[key] = schema[key].parse(op, key, value)
    for key, spec in schema.items():
        if key not in out:
            if spec.default is REQUIRED:
                raise OpAttributeError(f"{op}: attribute {key!r} is required")
            out[key] = spec.default
    return FrozenAttrs(out)


def format_attr(value) -> str:
    """Format one attribute value the way MXNet writes it into -symbol.json."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_attr(x) for x in value) + ("," if len(value) == 1 else "") + ")"
    if value is None:
        return "None"
    return str(value)
