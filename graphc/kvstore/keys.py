"""The shapes KVStore calls accept for keys and values, flattened into (key, NDArray) pairs.

MXNet's rules (python/mxnet/kvstore/base.py `_ctype_key_value`): a key is an int or a str; a
single key takes an NDArray or a list of NDArrays (one per device); a list of keys takes a list
of the same length whose items are NDArrays or lists of NDArrays; the keys of one call are all
int or all str. Grouping repeated keys and the key order of updates are the store's business.
"""
from __future__ import annotations

import numbers

from ..ndarray import NDArray
from ..ops.errors import GraphcError

__all__ = ["flatten", "key_type"]


def key_type(key) -> str:
    """'int' or 'str'; anything else is refused naming the key."""
    if isinstance(key, str):
        return "str"
    if isinstance(key, numbers.Integral):
        return "int"
    raise GraphcError(f"kvstore: a key must be an int or a str, got {key!r} ({type(key).__name__})")


def flatten(op: str, keys, values, what: str = "value"):
    """[(key, NDArray), ...] in call order, and the key type of the call ('int', 'str' or None
    when there are no keys)."""
    if isinstance(keys, (list, tuple)):
        if not isinstance(values, (list, tuple)) or len(values) != len(keys):
            got = len(values) if isinstance(values, (list, tuple)) else f"a single {type(values).__name__}"
            raise GraphcError(f"kvstore.{op}: {len(keys)} keys need a list of {len(keys)} {what}s, got {got}")
        pairs, kind = [], None
        for k, v in zip(keys, values):
            sub, sub_kind = flatten(op, k, v, what)
            if kind is not None and sub_kind != kind:
                raise GraphcError(f"kvstore.{op}: inconsistent types of keys detected: {keys!r} mixes int and str "
                                  "keys (MXNet allows one key type)")
            kind = sub_kind
            pairs += sub
        return pairs, kind
    kind = key_type(keys)
    key = int(keys) if kind == "int" else keys
    if isinstance(values, NDArray):
        return [(key, values)], kind
    if isinstance(values, (list, tuple)):
        for i, v in enumerate(values):
            if not isinstance(v, NDArray):
                raise GraphcError(f"kvstore.{op}: {what} {i} for key {key!r} is a {type(v).__name__}, "
                                  "expected an NDArray")
        return [(key, v) for v in values], kind
    raise GraphcError(f"kvstore.{op}: the {what} for key {key!r} is a {type(values).__name__}, expected an NDArray "
                      "or a list of NDArrays (one per device)")
