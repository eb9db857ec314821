"""mxnet.operator for graphc: Python-defined operators (CustomOp / CustomOpProp, registered by
name and called as `nd.Custom(x, op_type='name')`) and the operator-registry queries.

A custom operator runs eagerly on NDArrays: its forward writes into output arrays that this module
allocates from the Prop's infer_shape/infer_type, and while autograd records, its backward joins
the tape. Called on symbols (sym.Custom, or F.Custom in a hybridized block) it becomes a `Custom`
node (ops/declarations/custom.py) that the compiled program runs as a host step calling back into
this module (`_Host`), with its backward as a `_backward_Custom` host step.

One CustomOp instance serves the forward and the backward of one node (its __site__) and input
signature, as MXNet keeps one per node: an operator that saves state in forward for its backward
works, also where one graph calls it twice."""
from __future__ import annotations

import numpy as np

from . import autograd
from .ndarray import NDArray
from .ops.builder import Handle
from .ops.declarations.custom import SITE, set_custom_host
from .ops.errors import GraphcError
from .ops.registry import all_names, get_op

_CUSTOM: dict[str, type] = {}


class CustomOp:
    """Base of a custom operator's computation: override forward and backward."""

    def forward(self, is_train, req, in_data, out_data, aux):
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")

    def assign(self, dst, req, src):
        """Write `src` into `dst` as the request says: 'write'/'inplace' copy, 'add' accumulates,
        'null' leaves dst alone."""
        if req == "null":
            return
        if req in ("write", "inplace"):
            dst[:] = src
        elif req == "add":
            dst[:] = dst + src
        else:
            raise ValueError(f"CustomOp.assign: unknown request {req!r}; expected 'write', 'inplace', 'add' or 'null'")


class CustomOpProp:
    """Describes a custom operator: its inputs, outputs, shapes and types, and makes the CustomOp.
    The defaults are MXNet's: one input 'data', one output 'output' shaped and typed like it."""

    def __init__(self, need_top_grad=True):
        self.need_top_grad_ = need_top_grad

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]] * len(self.list_outputs()), \
            [in_shape[0]] * len(self.list_auxiliary_states())

    def infer_type(self, in_type):
        return in_type, [in_type[0]] * len(self.list_outputs()), \
            [in_type[0]] * len(self.list_auxiliary_states())

    def infer_storage_type(self, in_stype):
        return in_stype, ["default"] * len(self.list_outputs()), \
            ["default"] * len(self.list_auxiliary_states())

    def list_arguments(self):
        return ["data"]

    def list_outputs(self):
        return ["output"]

    def list_auxiliary_states(self):
        return []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        deps = list(out_grad) if self.need_top_grad_ else []
        return deps + list(in_data) + list(out_data)

    def create_operator(self, ctx, in_shapes, in_dtypes):
        return CustomOp()


def register(reg_name):
    """Class decorator: register a CustomOpProp subclass under `reg_name` (nd.Custom's op_type)."""
    def do_register(prop_cls):
        if not (isinstance(prop_cls, type) and issubclass(prop_cls, CustomOpProp)):
            raise TypeError(f"operator.register({reg_name!r}): expected a CustomOpProp subclass, got {prop_cls!r}")
        _CUSTOM[reg_name] = prop_cls
        return prop_cls
    return do_register


def get_all_registered_operators():
    """Names of every built-in operator."""
    return list(all_names())


def get_operator_arguments(op_name):
    """(argument names, their attribute kinds): the op's inputs then its attributes."""
    op = get_op(op_name)
    inputs = list(op.inputs) if isinstance(op.inputs, (list, tuple)) else []
    names = inputs + list(op.attrs)
    types = ["NDArray-or-Symbol"] * len(inputs) + [getattr(a, "kind", type(a).__name__) for a in op.attrs.values()]
    return names, types


def invoke_custom(*inputs, op_type=None, **kwargs):
    """nd.Custom: run registered custom operator `op_type` on NDArray inputs (arguments, then
    auxiliary states); keyword arguments reach the Prop's constructor as strings, as in MXNet."""
    if any(isinstance(x, Handle) for x in inputs):
        from . import symbol
        return symbol._NAMESPACE.Custom(*inputs, op_type=op_type, **kwargs)
    kwargs.pop("name", None)
    prop = _HOST.prop(op_type, {k: str(v) for k, v in kwargs.items() if not k.startswith("__")})
    n_args = len(prop.list_arguments())
    if len(inputs) != n_args + len(prop.list_auxiliary_states()):
        raise GraphcError(f"Custom {op_type!r}: expected {n_args} argument(s) {prop.list_arguments()} and "
                          f"auxiliary states {prop.list_auxiliary_states()}, got {len(inputs)} arrays")
    if not all(isinstance(x, NDArray) for x in inputs):
        kinds = sorted({type(x).__name__ for x in inputs if not isinstance(x, NDArray)})
        raise GraphcError(f"Custom {op_type!r}: inputs must be NDArrays or Symbols, got {', '.join(kinds)}")
    args, aux = list(inputs[:n_args]), list(inputs[n_args:])
    ctx = args[0].context if args else None
    in_shapes, out_shapes, in_types, out_types = _inferred(prop, args)
    op = prop.create_operator(ctx, in_shapes, in_types)
    outs = [NDArray(np.zeros(tuple(s), np.dtype(t)), ctx) for s, t in zip(out_shapes, out_types)]
    is_train = autograd.is_training()
    with autograd.pause(train_mode=is_train):
        op.forward(is_train, ["write"] * len(outs), args, outs, aux)
    if autograd.is_recording() and any(autograd.needs_grad(x) for x in args):
        def backward(F, ins, outs_, ograds):
            ograds = [g if g is not None else NDArray(np.zeros(o.shape, o._data.dtype), o.context)
                      for g, o in zip(ograds, outs_)]
            in_grad = [NDArray(np.zeros(x.shape, x._data.dtype), x.context) for x in ins]
            with autograd.pause():
                op.backward(["write"] * len(ins), ograds, list(ins), list(outs_), in_grad, aux)
            return in_grad
        autograd.record_custom(args, outs, backward, f"Custom:{op_type}")
    return outs[0] if len(outs) == 1 else outs


def _prop_kwargs(attrs) -> dict:
    return {k: v for k, v in attrs.items() if k != "op_type" and not k.startswith("__")}


def _inferred(prop, args) -> tuple:
    """(in_shapes, out_shapes, in_types, out_types) from the Prop; MXNet lets infer_shape and
    infer_type return their lists with or without the auxiliary states' third one."""
    shapes = prop.infer_shape([list(x.shape) for x in args])
    types = prop.infer_type([np.dtype(x.dtype).type for x in args])
    return shapes[0], shapes[1], types[0], types[1]


class _Host:
    """What a compiled graph's Custom and _backward_Custom host steps call: the registered Prop
    for a node's attributes, and the CustomOp's forward and backward on numpy arrays."""

    def __init__(self):
        self._props = {}
        self._operators = {}

    def prop(self, op_type, kwargs):
        cls = _CUSTOM.get(op_type)
        if cls is None:
            known = ", ".join(sorted(_CUSTOM)) or "none"
            raise GraphcError(f"Custom: no custom operator registered as {op_type!r} (registered: {known})")
        key = (cls, tuple(sorted(kwargs.items())))
        prop = self._props.get(key)
        if prop is None:
            try:
                prop = cls(**kwargs)
            except TypeError as exc:
                raise GraphcError(f"Custom {op_type!r}: {cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
                                  f"failed: {exc}") from None
            self._props[key] = prop
        return prop

    def _operator(self, attrs, args):
        """(prop, the CustomOp of this node (attrs' __site__) for these input shapes and dtypes,
        its output shapes, its output dtypes)."""
        prop = self.prop(attrs["op_type"], _prop_kwargs(attrs))
        shapes = tuple(tuple(a.shape) for a in args)
        dtypes = tuple(np.dtype(a.dtype).name for a in args)
        key = (id(prop), attrs.get(SITE), shapes, dtypes)
        entry = self._operators.get(key)
        if entry is None or entry[0] is not prop:
            in_shapes, out_shapes, in_types, out_types = _inferred(prop, args)
            entry = self._operators[key] = (prop, prop.create_operator(None, in_shapes, in_types),
                                            [tuple(s) for s in out_shapes], [np.dtype(t) for t in out_types])
        return entry

    def forward(self, attrs, arrays, training):
        prop = self.prop(attrs["op_type"], _prop_kwargs(attrs))
        n_args = len(prop.list_arguments())
        args = [NDArray(np.array(a)) for a in arrays[:n_args]]
        aux = [NDArray(np.array(a)) for a in arrays[n_args:]]
        prop, op, out_shapes, out_types = self._operator(attrs, args)
        outs = [NDArray(np.zeros(s, t)) for s, t in zip(out_shapes, out_types)]
        with autograd.pause(train_mode=training):
            op.forward(bool(training), ["write"] * len(outs), args, outs, aux)
        for name, before, after in zip(prop.list_auxiliary_states(), arrays[n_args:], aux):
            if not np.array_equal(np.asarray(before), after.asnumpy(), equal_nan=True):
                # a compiled graph is functional: the write would be lost, so say so instead
                raise GraphcError(f"Custom {attrs['op_type']!r}: forward wrote auxiliary state {name!r}; updating "
                                  "auxiliary states inside a hybridized block or bound symbol is not supported "
                                  "(call the operator eagerly, with nd.Custom, to keep such updates)")
        return [o.asnumpy() for o in outs]

    def backward(self, attrs, ograds, in_data, out_data, aux):
        args = [NDArray(np.array(a)) for a in in_data]
        op = self._operator(attrs, args)[1]
        in_grad = [NDArray(np.zeros(a.shape, a.dtype)) for a in in_data]
        wrap = lambda arrays: [NDArray(np.array(a)) for a in arrays]  # noqa: E731
        with autograd.pause():
            op.backward(["write"] * len(in_grad), wrap(ograds), args, wrap(out_data), in_grad, wrap(aux))
        return [g.asnumpy() for g in in_grad]


_HOST = _Host()
set_custom_host(_HOST)
