"""The operator functions of graphc.sym: graphc's operator namespace plus MXNet's symbol-only
calling conventions.

- Node attributes on any operator: MXNet's hidden keys (`lr_mult=0`, `wd_mult`, `ctx_group`...),
  `__dunder__` keys (`__layout__='TNC'`) and `attr={...}` are not operator parameters but
  attributes of the node, and of the weights the operator creates for itself (MXNet copies them
  there; Module and the optimizer read `__lr_mult__`/`__wd_mult__` off those variables).
- An input given by keyword after a missing one (`FullyConnected(data=x, bias=b)`) leaves the
  missing one to be created as a variable `<node>_<input>` (fc1_weight), in its place.
"""
from __future__ import annotations

import functools

from .ops.graph import variable
from .ops.namespace import OpNamespace
from .ops.registry import get_op


class SymbolNamespace(OpNamespace):
    def __init__(self, invoke, is_tensor):
        super().__init__(invoke, is_tensor)
        self._wrapped = {}

    def __getattr__(self, name):
        fn = self._wrapped.get(name)
        if fn is not None:
            return fn
        base = super().__getattr__(name)
        op = get_op(name)
        is_tensor = self._is_tensor

        @functools.wraps(base)      # (the operator function it extends: same name and signature)
        def fn(*args, **kwargs):
            from .symbol import AttrScope, _HIDDEN_KEYS
            kwargs = dict(kwargs)
            extra = kwargs.pop("attr", None)
            if extra is not None and not isinstance(extra, dict):
                raise TypeError(f"sym.{name}: attr must be a dict of strings, got {type(extra).__name__}")
            node_attrs = {k: str(v) for k, v in (extra or {}).items()}
            for key in [k for k in kwargs if k in _HIDDEN_KEYS or (k.startswith("__") and k.endswith("__"))]:
                node_attrs[key] = str(kwargs.pop(key))
            if not node_attrs:
                return base(*args, **_fill_gaps(op, args, kwargs, is_tensor))
            with AttrScope(**node_attrs):
                return base(*args, **_fill_gaps(op, args, kwargs, is_tensor))
        self._wrapped[name] = fn
        return fn


def _fill_gaps(op, args, kwargs, is_tensor) -> dict:
    """kwargs with a variable for every input missing before one given by keyword."""
    if "num_args" in op.attrs:
        return kwargs                   # (variadic: inputs are positional)
    try:
        names = list(op.input_names(op.parse({k: v for k, v in kwargs.items() if k in op.attrs})))
    except Exception:       # the call itself reports its bad attributes
        return kwargs
    if not any(k in names and is_tensor(v) for k, v in kwargs.items()):
        return kwargs
    positional = sum(1 for a in args if is_tensor(a))
    last = max(names.index(k) for k, v in kwargs.items() if k in names and is_tensor(v))
    gaps = [i for i in range(positional, last) if names[i] not in kwargs]
    if not gaps:
        return kwargs
    from .symbol import _builder_for, _scoped_hints
    tensors = [a for a in args if is_tensor(a)] + [v for v in kwargs.values() if is_tensor(v)]
    builder = _builder_for(tensors)
    kwargs = dict(kwargs)
    node_name = builder.node_name(op.name, kwargs.get("name"))
    kwargs["name"] = node_name
    for i in gaps:
        node = variable(f"{node_name}_{names[i]}", None, "aux" if i in op.aux_inputs else "param",
                        _scoped_hints({}))
        builder.inputs.append(node)
        kwargs[names[i]] = builder.wrap(node.out())
    return kwargs


__all__ = ["SymbolNamespace"]
