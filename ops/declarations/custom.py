"""Custom and _backward_Custom: an operator written in Python (mxnet.operator.CustomOp) as a
node of a graph, so a hybridized block or a symbol that calls one compiles; the program calls
back into Python for it (a host step: neither op has a lowering).

The node carries what MXNet's `Custom` node carries, `op_type` and the Prop's keyword arguments
as strings, so a graph exports as the node MXNet writes and loads back from it. Everything else
(the Prop's inputs, shapes, dtypes and the Python forward/backward) comes from the operator
registered under `op_type`. That registry lives in the front end (graphc/operator.py), which
runs a CustomOp on NDArrays; `ops` must not import the front end, so the front end installs
itself here with `set_custom_host` when it is imported.

Both ops are declared random: the Python behind them may draw or keep state, so no pass may merge
two calls, fold one over constants or recompute one in the backward."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..attrs import FrozenAttrs
from ..errors import GraphcError, OpAttributeError, ShapeError
from ..registry import OpDef, register
from ..types import TensorType

_HOST = None
# MXNet keeps one CustomOp per node, so state an operator saves in forward reaches its backward;
# each Custom node gets a call site number (attribute __site__, which its backward node copies)
# and the host keeps one operator per site. The number is graphc's: files never carry it.
_SITES = itertools.count()
SITE = "__site__"


def set_custom_host(host) -> None:
    """host: prop(op_type, kwargs) -> CustomOpProp instance; forward(attrs, arrays, training) ->
    list of numpy outputs; backward(attrs, ograds, in_data, out_data, aux) -> list of in_grads."""
    global _HOST
    _HOST = host


def _host(op_type):
    if _HOST is None:
        # graphc/operator.py installs the host when imported, which mx.operator.register does
        raise GraphcError(f"Custom: no custom operator registered as {op_type!r} (none is: register one "
                          "with mx.operator.register before building or loading a graph that calls it)")
    return _HOST


def _kwargs(attrs) -> dict:
    """The Prop's constructor arguments."""
    return {k: v for k, v in attrs.items() if k != "op_type" and not k.startswith("__")}


def _prop(attrs):
    if not attrs.get("op_type"):
        raise OpAttributeError("Custom: attribute 'op_type' is required (the name the operator was "
                               "registered under with mx.operator.register)")
    return _host(attrs["op_type"]).prop(attrs["op_type"], _kwargs(attrs))


def _counts(attrs) -> tuple:
    """(arguments, auxiliary states, outputs) of the custom op these attrs name."""
    prop = _prop(attrs)
    return len(prop.list_arguments()), len(prop.list_auxiliary_states()), len(prop.list_outputs())


@dataclass(frozen=True)
class _CustomOpDef(OpDef):
    """MXNet keeps every keyword of a Custom call (they are the Prop's constructor arguments) as
    a string; there is no fixed schema to check them against. A missing op_type is reported by
    whatever needs the Prop first (the calling convention parses before it knows every keyword)."""

    def parse(self, attrs: dict) -> FrozenAttrs:
        out = {k: v if isinstance(v, str) else str(v) for k, v in attrs.items()
               if not k.startswith("__") and k != "name"}
        site = attrs.get(SITE)
        out[SITE] = int(site) if site is not None else next(_SITES)
        return FrozenAttrs(out)

    def output_names(self, attrs) -> list:
        """What MXNet calls the outputs (`<node>_<name>`): the Prop's list_outputs(); the
        backward's are its gradients, named after the arguments."""
        prop = _prop(attrs)
        if self.name == "_backward_Custom":
            return [f"{a}_grad" for a in prop.list_arguments()]
        return list(prop.list_outputs())


def _check_inputs(label, attrs, in_types, expected):
    if len(in_types) != expected:
        prop = _prop(attrs)
        raise ShapeError(f"{label} {attrs['op_type']!r}: expects {expected} inputs (arguments "
                         f"{prop.list_arguments()}, auxiliary states {prop.list_auxiliary_states()}), "
                         f"got {len(in_types)}")


def _custom_infer(*in_types, **attrs):
    n_args, n_aux, n_out = _counts(attrs)
    _check_inputs("Custom", attrs, in_types, n_args + n_aux)
    prop = _prop(attrs)
    args = in_types[:n_args]
    shapes = prop.infer_shape([list(t.shape) for t in args])
    out_shapes = shapes[1]
    types = prop.infer_type([_np_type(t.dtype) for t in args])
    out_types = types[1]
    if len(out_shapes) != n_out or len(out_types) != n_out:
        raise ShapeError(f"Custom {attrs['op_type']!r}: infer_shape/infer_type gave {len(out_shapes)}/"
                         f"{len(out_types)} outputs, list_outputs() names {n_out}")
    device = in_types[0].device if in_types else "cpu(0)"
    return [TensorType(tuple(int(d) for d in s), t, device) for s, t in zip(out_shapes, out_types)]


def _np_type(dtype: str):
    import numpy as np
    return np.dtype(dtype).type


def _custom_infer_missing(in_types, attrs):
    """Shapes of untyped arguments from the Prop's infer_shape, as MXNet asks it (a loss's label
    from the data's shape); unknown shapes reach it as []. A Prop that cannot answer with some
    shapes unknown leaves them unknown (infer_shape then names them)."""
    n_args = len(_prop(attrs).list_arguments())
    known = [t for t in in_types[:n_args] if t is not None]
    if not known:
        return in_types
    prop = _prop(attrs)
    try:
        shapes = prop.infer_shape([list(t.shape) if t is not None else [] for t in in_types[:n_args]])[0]
        types = prop.infer_type([_np_type(t.dtype if t is not None else known[0].dtype)
                                 for t in in_types[:n_args]])[0]
    except Exception:   # the Prop's own code, given [] for a shape it reads: nothing to learn
        return in_types
    out = list(in_types)
    for i, t in enumerate(in_types[:n_args]):
        if t is None and i < len(shapes) and len(shapes[i]) and all(int(d) > 0 for d in shapes[i]):
            import numpy as np
            out[i] = TensorType(tuple(int(d) for d in shapes[i]), np.dtype(types[i]).name, known[0].device)
    return out


def _custom_compute(*arrays, op_type, training=False, rng=None, **attrs):
    return tuple(_host(op_type).forward(dict(attrs, op_type=op_type), list(arrays), training))


def _custom_grad(F, ins, outs, ograds, attrs):
    n_args, n_aux, n_out = _counts(attrs)
    grads = F._backward_Custom(*ograds, *ins[:n_args], *outs, *ins[n_args:], **dict(attrs))
    grads = list(grads) if isinstance(grads, (list, tuple)) else [grads]
    return grads + [None] * n_aux


def _custom_inputs(attrs) -> tuple:
    if not attrs.get("op_type"):
        return ()
    prop = _prop(attrs)
    return tuple(prop.list_arguments()) + tuple(prop.list_auxiliary_states())


register(_CustomOpDef(
    "Custom", infer=_custom_infer, compute=_custom_compute, inputs=_custom_inputs,
    gradient=_custom_grad, num_outputs=lambda attrs: _counts(attrs)[2], random=True, uses_training=True,
    infer_missing=_custom_infer_missing,
    doc="A Python operator registered with mx.operator.register(op_type): its forward, run on the host."))


def _backward_inputs(attrs) -> tuple:
    if not attrs.get("op_type"):
        return ()
    prop = _prop(attrs)
    outs = list(prop.list_outputs())
    return (tuple(f"{o}_grad" for o in outs) + tuple(prop.list_arguments()) + tuple(outs)
            + tuple(prop.list_auxiliary_states()))


def _backward_infer(*in_types, **attrs):
    n_args, n_aux, n_out = _counts(attrs)
    _check_inputs("_backward_Custom", attrs, in_types, 2 * n_out + n_args + n_aux)
    return list(in_types[n_out:n_out + n_args])


def _backward_compute(*arrays, op_type, training=False, rng=None, **kwargs):
    attrs = dict(kwargs, op_type=op_type)     # with the forward node's __site__
    n_args, n_aux, n_out = _counts(attrs)
    ograds = list(arrays[:n_out])
    in_data = list(arrays[n_out:n_out + n_args])
    out_data = list(arrays[n_out + n_args:2 * n_out + n_args])
    aux = list(arrays[2 * n_out + n_args:])
    return tuple(_host(op_type).backward(attrs, ograds, in_data, out_data, aux))


def _no_second_order(F, ins, outs, ograds, attrs):
    raise GraphcError(f"Custom {attrs['op_type']!r}: a custom operator's backward has no gradient of its own "
                      "(MXNet's has none either)")


register(_CustomOpDef(
    "_backward_Custom", infer=_backward_infer, compute=_backward_compute, inputs=_backward_inputs,
    gradient=_no_second_order, num_outputs=lambda attrs: _counts(attrs)[0], random=True, uses_training=True,
    doc="The gradient of a Custom node: its CustomOp.backward, run on the host."))
