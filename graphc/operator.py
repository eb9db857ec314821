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

from collections import namedtuple

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


OperatorArguments = namedtuple("OperatorArguments", ["narg", "names", "types"])

# MXNet's words for an attribute's kind in get_operator_arguments' type strings
_KIND_WORDS = {"bool": "boolean", "int": "int", "float": "float", "str": "string", "shape": "Shape(tuple)",
               "axis": "int or None", "dtype": "dtype", "any": "any"}


def _attr_type(attr) -> str:
    from .ops.attrs import REQUIRED
    kind = ("{" + ", ".join(repr(c) for c in attr.choices) + "}") if attr.choices else \
        _KIND_WORDS.get(attr.kind, attr.kind)
    if attr.default is REQUIRED:
        return f"{kind}, required"
    default = int(attr.default) if isinstance(attr.default, bool) else attr.default
    shown = repr(default) if isinstance(default, str) else default
    return f"{kind}, optional, default={shown}"


_PLACEHOLDERS = {"int": 1, "float": 1.0, "shape": (1,), "axis": 0, "dtype": "float32", "str": "x", "bool": False}


def _input_names(op) -> tuple:
    """(every input the op can take, whether it takes a list): MXNet lists all of them
    (LeakyReLU's gamma, FullyConnected's bias) whatever the attributes, so for inputs that depend
    on attributes this is their union over each boolean either way and each choice; ops with a
    variable number of inputs (num_args) take one list, MXNet's 'data' of NDArray-or-Symbol[]."""
    from .ops.attrs import REQUIRED
    if "num_args" in op.attrs:
        return ("data",), True
    if not callable(op.inputs):
        return tuple(op.inputs), False
    base = {k: (a.choices[0] if a.choices else _PLACEHOLDERS.get(a.kind))
            for k, a in op.attrs.items() if a.default is REQUIRED}
    settings = [base] + [dict(base, **{k: v}) for k, a in op.attrs.items() if a.kind == "bool"
                         for v in (False, True)]
    settings += [dict(base, **{k: c}) for k, a in op.attrs.items() for c in a.choices or ()]
    names = []
    for attrs in settings:
        try:
            found = op.input_names(op.parse(attrs))
        except Exception:    # a placeholder this operator refuses: other settings may parse
            continue
        names += [n for n in found if n not in names]
    return tuple(names), False


def get_operator_arguments(op_name):
    """OperatorArguments(narg, names, types) of an operator, as MXNet lists them: its inputs
    ('NDArray-or-Symbol'), then its attributes ('int, required', 'boolean, optional, default=0')."""
    op = get_op(op_name)
    inputs, variadic = _input_names(op)
    names = list(inputs) + list(op.attrs)
    types = ["NDArray-or-Symbol[]" if variadic else "NDArray-or-Symbol"] * len(inputs) + \
        [_attr_type(a) for a in op.attrs.values()]
    return OperatorArguments(len(names), names, types)


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


# -- the pre-CustomOp Python operators (MXNet 1.x's deprecated PythonOp API) ---------------------
# MXNet 1.9.1 still ships PythonOp, NumpyOp and NDArrayOp and scripts still call them. Each one
# becomes a Custom node: get_symbol registers a CustomOpProp made for that operator instance
# under a name of its own, so compiling, binding and differentiating go through the one Custom
# path above instead of a second Python-callback mechanism.

import itertools as _itertools
import warnings as _warnings

_LEGACY_IDS = _itertools.count()


class PythonOp:
    """Base of the deprecated Python operators: the default is the identity with one input
    'data' and one output 'output'; subclasses override forward, backward, infer_shape and the
    name lists. need_top_grad=False says backward ignores the output gradient (a loss)."""

    def __init__(self, need_top_grad=True):
        self.info_ = None
        self.need_top_grad_ = need_top_grad
        self._op_type = None
        _warnings.warn(f"{type(self).__name__}: PythonOp has been deprecated. Please use CustomOp",
                       DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        return self.get_symbol(*args, **kwargs)

    def get_symbol(self, *args, **kwargs):
        """A Custom symbol running this operator on `args` (Symbols); `name` names the node."""
        from . import symbol
        if self._op_type is None:
            self._op_type = f"_legacy_{type(self).__name__}_{next(_LEGACY_IDS)}"
            _CUSTOM[self._op_type] = _legacy_prop_class(self)
        return symbol._NAMESPACE.Custom(*args, op_type=self._op_type, **kwargs)

    def forward(self, in_data, out_data):
        out_data[0][:] = in_data[0]

    def backward(self, out_grad, in_data, out_data, in_grad):
        in_grad[0][:] = out_grad[0]

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]]

    def list_outputs(self):
        return ["output"]

    def list_arguments(self):
        return ["data"]

    def need_top_grad(self):
        return self.need_top_grad_


class NumpyOp(PythonOp):
    """A PythonOp whose forward and backward get numpy arrays and write the outputs (and the
    input gradients) in place: out_data[0][:] = ..."""

    _numpy = True


class NDArrayOp(PythonOp):
    """A PythonOp whose forward and backward get NDArrays; declare_backward_dependency says
    which of the output gradients, inputs and outputs backward reads."""

    _numpy = False

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        deps = list(out_grad) if self.need_top_grad() else []
        return deps + list(in_data) + list(out_data)


def _legacy_prop_class(op):
    """A CustomOpProp subclass for the legacy operator instance `op` (registered per instance:
    a legacy operator's state lives on the instance, not in constructor arguments)."""

    class _LegacyProp(CustomOpProp):
        def __init__(self):
            super().__init__(need_top_grad=op.need_top_grad())

        def list_arguments(self):
            return list(op.list_arguments())

        def list_outputs(self):
            return list(op.list_outputs())

        def infer_shape(self, in_shape):
            shapes = op.infer_shape(in_shape)
            if len(shapes) < 2:
                raise GraphcError(f"{type(op).__name__}.infer_shape must return (input shapes, output shapes), "
                                  f"got {shapes!r}")
            return list(shapes[0]), list(shapes[1]), []

        def infer_type(self, in_type):
            # the legacy API has no dtypes: MXNet runs these operators in float32
            return [np.float32] * len(in_type), [np.float32] * len(self.list_outputs()), []

        def create_operator(self, ctx, in_shapes, in_dtypes):
            return _LegacyOperator(op)

    _LegacyProp.__name__ = f"{type(op).__name__}Prop"
    return _LegacyProp


class _LegacyOperator(CustomOp):
    """Runs a legacy operator's forward/backward as a CustomOp: numpy copies in and out for a
    NumpyOp, the NDArrays themselves for an NDArrayOp."""

    def __init__(self, op):
        self._op = op

    def forward(self, is_train, req, in_data, out_data, aux):
        if not getattr(self._op, "_numpy", False):
            self._op.forward(in_data=list(in_data), out_data=list(out_data))
            return
        outs = [np.zeros(o.shape, np.float32) for o in out_data]
        self._op.forward(in_data=[x.asnumpy() for x in in_data], out_data=outs)
        for r, dst, src in zip(req, out_data, outs):
            self.assign(dst, r, src)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        if not getattr(self._op, "_numpy", False):
            self._op.backward(out_grad=list(out_grad), in_data=list(in_data), out_data=list(out_data),
                              in_grad=list(in_grad))
            return
        grads = [np.zeros(g.shape, np.float32) for g in in_grad]
        self._op.backward(out_grad=[g.asnumpy() for g in out_grad], in_data=[x.asnumpy() for x in in_data],
                          out_data=[o.asnumpy() for o in out_data], in_grad=grads)
        for r, dst, src in zip(req, in_grad, grads):
            self.assign(dst, r, src)
