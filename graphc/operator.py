"""mxnet.operator for graphc: Python-defined operators (CustomOp / CustomOpProp, registered by
name and called as `nd.Custom(x, op_type='name')`) and the operator-registry queries.

A custom operator runs eagerly: its forward writes into output arrays that this module allocates
from the Prop's infer_shape/infer_type, and while autograd records, its backward joins the tape.
It has no graph form, so a hybridized block that calls one is refused when traced."""
from __future__ import annotations

import numpy as np

from . import autograd
from .ndarray import NDArray
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
    if op_type not in _CUSTOM:
        known = ", ".join(sorted(_CUSTOM)) or "none"
        raise GraphcError(f"Custom: no custom operator registered as {op_type!r} (registered: {known})")
    kwargs.pop("name", None)
    prop = _CUSTOM[op_type](**{k: str(v) for k, v in kwargs.items()})
    n_args = len(prop.list_arguments())
    if len(inputs) != n_args + len(prop.list_auxiliary_states()):
        raise GraphcError(f"Custom {op_type!r}: expected {n_args} argument(s) {prop.list_arguments()} and "
                          f"auxiliary states {prop.list_auxiliary_states()}, got {len(inputs)} arrays")
    if not all(isinstance(x, NDArray) for x in inputs):
        raise GraphcError(f"Custom {op_type!r}: runs on NDArrays only (it has no graph form, so it "
                          "cannot be traced inside a hybridized block)")
    args, aux = list(inputs[:n_args]), list(inputs[n_args:])
    ctx = args[0].context if args else None
    in_shapes, out_shapes, _ = prop.infer_shape([list(x.shape) for x in args])
    in_types, out_types, _ = prop.infer_type([np.dtype(x.dtype).type for x in args])
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
