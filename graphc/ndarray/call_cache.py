"""What an eager call decides from its arguments alone, decided once per call shape.

Why: a training loop calls each operator the same way every step (Dense's FullyConnected with
the same keywords, the loss's pick with the same axis), yet each nd.<op>(...) call used to split
its arguments by MXNet's convention (ops/namespace.split_call), parse its attributes against the
schema and hash them for the type-inference and kernel caches: about a third of the Python time
of a small eager operator. Here those results are remembered:

- parse(): the operator and its parsed attributes per (op, attribute values with their types,
  nested ones too: (3, 1) and (3, True) are equal tuples but a shape refuses the bool); the
  parsed attributes cache their hash;
- EagerNamespace: graphc.nd's operator functions; per operator, per call shape (which arguments
  are arrays and where, the values and types of the others) the split of the arguments into
  inputs, attributes and node name, and the parse, so that a repeated call is a dict lookup
  and the operator's application (ndarray._apply).

Anything unusual takes the generic path, which behaves (and fails) as before: out=, arrays in
a list, inputs that are not plain NDArrays (numbers, numpy arrays, sparse or pending arrays,
symbols), an attribute value that is not a number, string, dtype, context or tuple of those,
more than MAX_CALL_SHAPES shapes of one operator.
"""
from __future__ import annotations

import functools

import numpy as np

from ..device import Context
from ..ops.attrs import FrozenAttrs
from ..ops.namespace import OpNamespace, split_call
from ..ops.registry import get_op

MAX_PARSED = 4096
MAX_CALL_SHAPES = 64         # per operator
_PARSED: dict = {}           # (op name, (attr, value key)...) -> (op, parsed attrs)
_TENSOR = ("tensor",)        # a call-shape key's mark for an array argument
_PLAIN_TYPES = frozenset({int, float, bool, str, type(None), type, np.dtype, Context})


class ParsedAttrs(FrozenAttrs):
    """Parsed attributes handed out again and again: hashed once, since every eager call keys
    a few dicts on them (type inference, eager kernels, tape signatures)."""

    def __hash__(self):
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = FrozenAttrs.__hash__(self)
        return h


def value_key(v):
    """A non-array value as part of a key: its type and value, recursively for tuples
    (TypeError for anything else: lists, arrays, symbols... are not cached)."""
    t = type(v)
    if t in _PLAIN_TYPES or isinstance(v, np.generic):
        return (t, v)
    if t is tuple:
        return (t, tuple([value_key(x) for x in v]))
    raise TypeError(t.__name__)


def parse(op_name, attrs):
    """(op, parsed attributes) of an eager call; errors are the schema's (op.parse)."""
    try:
        key = (op_name,) + tuple([(k, value_key(v)) for k, v in attrs.items()])
        hit = _PARSED.get(key)
    except TypeError:            # a list or array value: parsed each time
        key = hit = None
    if hit is not None:
        return hit
    op = get_op(op_name)
    if isinstance(attrs.get("ctx"), Context):   # MXNet takes ctx=mx.cpu() or 'cpu(0)'
        attrs = {**attrs, "ctx": str(attrs["ctx"])}
    parsed = op.parse(attrs)
    if key is None:
        return op, parsed
    if len(_PARSED) >= MAX_PARSED:
        _PARSED.clear()
    hit = _PARSED[key] = (op, ParsedAttrs(parsed))
    return hit


class _Slot:
    """Stands for the array argument at `ref` (a position or a keyword) while a call shape is
    split once."""
    __slots__ = ("ref",)

    def __init__(self, ref):
        self.ref = ref


class EagerNamespace(OpNamespace):
    """An OpNamespace whose functions remember each call shape's split and parse. array_type:
    the class whose exact instances count as arrays here (NDArray); apply(op, parsed, inputs,
    name): runs the operator on them."""

    def __init__(self, invoke, is_tensor, array_type, apply):
        super().__init__(invoke, is_tensor)
        self._array_type, self._apply = array_type, apply

    def __getattr__(self, name):
        generic = OpNamespace.__getattr__(self, name)
        fast = _fast_call(get_op(name), generic, self._array_type, self._apply)
        if name not in vars(self):
            # found as a plain attribute from now on (no __getattr__ call per use)
            setattr(self, name, fast)
        return fast


def _fast_call(op, generic, array_type, apply):
    plans = {}

    def call(*args, **kwargs):
        try:
            key = (tuple([_TENSOR if type(a) is array_type else value_key(a) for a in args]),
                   tuple([(k, _TENSOR if type(v) is array_type else value_key(v)) for k, v in kwargs.items()]))
            plan = plans.get(key)
        except TypeError:
            return generic(*args, **kwargs)
        if plan is None:
            if "out" in kwargs or len(plans) >= MAX_CALL_SHAPES:
                return generic(*args, **kwargs)
            plan = plans[key] = _plan(op, args, kwargs, array_type)
        if plan is False:
            return generic(*args, **kwargs)
        slots, parsed, node_name = plan
        return apply(op, parsed, [args[i] if i.__class__ is int else kwargs[i] for i in slots], node_name)
    # same name, qualname, doc and signature as the generic function (help() and the
    # compatibility table read them)
    functools.update_wrapper(call, generic)
    return call


def _plan(op, args, kwargs, array_type):
    """(array argument refs in input order, parsed attributes, node name) of one call shape,
    or False where the generic path must run (it also raises any error of the call)."""
    a = [_Slot(i) if type(x) is array_type else x for i, x in enumerate(args)]
    k = {n: _Slot(n) if type(v) is array_type else v for n, v in kwargs.items()}
    try:
        inputs, attrs, node_name = split_call(op, a, k, lambda x: isinstance(x, _Slot))
        if not all(type(x) is _Slot for x in inputs) or any(type(v) is _Slot for v in attrs.values()):
            return False
        _, parsed = parse(op.name, attrs)
    except Exception:        # noqa: BLE001 - the generic call raises it with its usual message
        return False
    return [x.ref for x in inputs], parsed, node_name


__all__ = ["EagerNamespace", "ParsedAttrs", "parse", "value_key"]
