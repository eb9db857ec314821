"""Build `F.<op>(...)` functions from the registry for any way of invoking an operator.

graphc.nd, graphc.sym and the autodiff pass's builder each pass their own `invoke`; the calling
convention (which arguments are inputs and which are attributes) is decided here, once.
"""
from __future__ import annotations

from .registry import get_op, has_op, all_names


def split_call(op, args, kwargs, is_tensor):
    """MXNet's calling convention: tensors (positional, or keywords named like inputs) are inputs;
    other positionals fill attributes in declared order; `name` names the node; None inputs
    (e.g. bias=None with no_bias) are dropped."""
    kwargs = dict(kwargs)
    name = kwargs.pop("name", None)
    kwargs.pop("out", None)
    inputs, extra = [], []
    for a in args:
        (inputs if is_tensor(a) else extra).append(a)
    if extra and all(isinstance(a, (list, tuple)) and all(is_tensor(x) for x in a) for a in extra) and not inputs:
        inputs = [x for a in extra for x in a]  # F.concat([a, b]) style
        extra = []
    probe = dict(kwargs)
    if "num_args" in op.attrs and "num_args" not in probe:
        probe["num_args"] = max(len(inputs), 1)
    names = list(op.input_names(op.parse({k: v for k, v in probe.items() if k in op.attrs}))) if callable(op.inputs) else list(op.inputs)
    for key in list(kwargs):
        if kwargs[key] is None and key not in op.attrs:
            del kwargs[key]     # an absent optional input (sequence_length=None), as MXNet's functions take it
            continue
        if key in names and key not in op.attrs:
            value = kwargs.pop(key)
            pos = names.index(key)
            while len(inputs) <= pos:
                inputs.append(None)
            inputs[pos] = value
    if extra:
        attr_names = [k for k in op.attrs if k not in kwargs]
        for k, v in zip(attr_names, extra):
            kwargs[k] = v
    if "num_args" in op.attrs and "num_args" not in kwargs:
        kwargs["num_args"] = len([x for x in inputs if x is not None])
    inputs = [x for x in inputs if x is not None]
    return inputs, kwargs, name


def write_out(out, result):
    """MXNet's `out=`: the result is written into the given array(s) (an optimizer's update
    writes the weight so), which are returned in its place."""
    outs = out if isinstance(out, (list, tuple)) else [out]
    results = result if isinstance(result, (list, tuple)) else [result]
    for target, value in zip(outs, results):
        target[:] = value
    return out


class OpNamespace:
    """Attribute access yields a function per registered operator: `ns.broadcast_add(a, b)`."""

    def __init__(self, invoke, is_tensor):
        self._invoke = invoke
        self._is_tensor = is_tensor
        self._cache = {}

    def __getattr__(self, name):
        if name.startswith("__") or not has_op(name):
            raise AttributeError(name)
        fn = self._cache.get(name)
        if fn is None:
            op = get_op(name)

            def fn(*args, **kwargs):
                inputs, attrs, node_name = split_call(op, args, kwargs, self._is_tensor)
                result = self._invoke(op.name, inputs, attrs, node_name)
                out = kwargs.get("out")
                first = result[0] if isinstance(result, tuple) and result else result
                # out= names arrays to write; a graph value (a traced call) has no storage to fill
                return result if out is None or hasattr(first, "builder") else write_out(out, result)
            fn.__name__ = name
            fn.__doc__ = op.doc
            self._cache[name] = fn
        return fn

    def __dir__(self):
        return all_names()
