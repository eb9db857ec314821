"""MXNet's control flow, `contrib.foreach`, `contrib.while_loop` and `contrib.cond`, for arrays
and for symbols (hybrid_forward's F.contrib).

Eagerly they are Python loops and branches over recorded operators, so autograd differentiates
through them as through any code. While tracing, a graph has no loops or branches, so:
- foreach unrolls over axis 0 of its data, whose length the trace knows;
- cond computes both branches and keeps the taken one (`_cond_select`);
- while_loop unrolls `max_iterations` steps, each computed and kept only while the condition
  has held so far; its stacked outputs are zero past the last step (MXNet leaves them undefined).
Every value a branch or a step reads from outside passes through `_cond_gate`, so the backward
pass of an untaken branch, where 0 * inf = NaN can arise, never reaches the values outside
(see ops/declarations/control_flow.py). The cost: traced branches and padded steps are
computed, not skipped. Never imports a backend.
"""
from __future__ import annotations

import numpy as np

from .ops.builder import Handle
from .ops.errors import GraphcError


# -- nested lists of arrays, as MXNet's _flatten/_regroup --------------------------------------------

def flatten(tree, what) -> tuple:
    """(flat list of arrays, format): format None is one array, a list is a (nested) list."""
    if tree is None:
        return [], []
    if isinstance(tree, (list, tuple)):
        flat, fmt = [], []
        for item in tree:
            sub, sub_fmt = flatten(item, what)
            flat.extend(sub)
            fmt.append(sub_fmt)
        return flat, fmt
    if not hasattr(tree, "shape"):
        raise GraphcError(f"{what}: expected an array, a symbol or a (nested) list of them, got {type(tree).__name__}")
    return [tree], None


def regroup(flat, fmt):
    """Rebuild the structure `flatten` gave `fmt` for from the arrays in `flat` (in order)."""
    items = iter(flat)

    def build(f):
        return next(items) if f is None else [build(sub) for sub in f]
    return build(fmt)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _is_traced(values) -> bool:
    return any(isinstance(v, Handle) for v in values)


# -- branches of a traced graph -----------------------------------------------------------------------

class _Branch:
    """`with _Branch(pred):` the operators created inside read every outside value through
    `_cond_gate(value, pred)`: the identity, whose gradient flows only when pred (with
    negate: not pred) holds. Variables first used inside (a layer's parameters) count as outside."""

    def __init__(self, pred: Handle, negate=False):
        self.pred, self.negate, self.builder = pred, negate, pred.builder

    def __enter__(self):
        self.start = len(self.builder.nodes)
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self._gate_outside_reads(self.builder.nodes[self.start:])

    def _gate_outside_reads(self, created):
        inside = {id(n) for n in created if not n.is_var and not n.is_const}
        gates = {}
        for node in created:
            if id(node) in inside:
                node.inputs = tuple(v if id(v.node) in inside or v.node.is_const else self._gate(v, gates)
                                    for v in node.inputs)

    def _gate(self, value, gates):
        key = (id(value.node), value.index)
        if key not in gates:
            node = self.builder.emit("_cond_gate", [value, self.pred.value], {"negate": self.negate})
            gates[key] = node.out()
        return gates[key]


def _invoke(builder, op, inputs, **attrs):
    return builder.invoke(op, list(inputs), attrs)


def _select(pred, then, other):
    if not isinstance(then, Handle) or not isinstance(other, Handle):
        raise GraphcError(f"contrib control flow: a traced branch must give symbols, got "
                          f"{type(then).__name__} and {type(other).__name__}")
    return _invoke(pred.builder, "_cond_select", [pred, then, other])


def _stack(items, builder=None):
    if builder is not None:
        return _invoke(builder, "stack", items, axis=0, num_args=len(items))
    from .ndarray.ndarray import _NAMESPACE as nd
    return nd.stack(*items, axis=0, num_args=len(items))


def _to_bool(value, what) -> bool:
    if isinstance(value, Handle):
        raise GraphcError(f"{what} gave a symbol, but the values it decides on are arrays: a traced loop or "
                          f"branch needs symbolic loop variables / predicate (e.g. F.zeros(...), not nd.zeros)")
    if hasattr(value, "asnumpy"):
        value = value.asnumpy()
    try:
        return bool(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise GraphcError(f"{what} must give one value (a scalar array), got shape "
                          f"{getattr(value, 'shape', None)}") from None


# -- foreach ---------------------------------------------------------------------------------------

def foreach(body, data, init_states, name="foreach"):
    """out, states = body(data[i], states) for each i along axis 0; returns (outs stacked along
    axis 0, the last states). data and states may be arrays or (nested) lists of them."""
    flat_data, _ = flatten(data, "foreach data")
    if not flat_data:
        raise GraphcError("foreach: data is empty; give an array or a list of arrays")
    lengths = set()
    for d in flat_data:
        if isinstance(d, Handle) and d.value.type is None:
            raise GraphcError(f"foreach: data {d.name!r} has no known shape; graphc unrolls the loop over axis 0 "
                              f"while tracing, so give the input its shape (sym.var(..., shape=...))")
        lengths.add(d.shape[0])
    if len(lengths) != 1:
        raise GraphcError(f"foreach: every data array must have the same length on axis 0, got {sorted(lengths)}")
    builder = next((d.builder for d in flat_data if isinstance(d, Handle)), None)
    states, outputs, out_fmt = init_states, [], None
    for i in range(lengths.pop()):
        step = data[i] if not isinstance(data, (list, tuple)) else [d[i] for d in data]
        outs, states = body(step, states)
        flat, out_fmt = flatten(outs, "foreach output")
        if outputs and len(flat) != len(outputs[0]):
            raise GraphcError(f"foreach: body gave {len(flat)} outputs at step {i}, {len(outputs[0])} before")
        outputs.append(flat)
    if not outputs:
        raise GraphcError("foreach: data has length 0 on axis 0; there is no step to take the output shapes from")
    stacked = [_stack(list(items), builder) for items in zip(*outputs)]
    return regroup(stacked, out_fmt), states


# -- while_loop ------------------------------------------------------------------------------------

def _step(func, loop_vars):
    out, new_vars = func(*loop_vars)
    new_vars = _as_list(new_vars if new_vars is not None else [])
    if len(new_vars) != len(loop_vars):
        raise GraphcError(f"while_loop: func gave {len(new_vars)} loop variables, the loop has {len(loop_vars)}")
    return ([] if out is None else out), new_vars


def while_loop(cond, func, loop_vars, max_iterations=None, name="while_loop"):
    """while cond(*loop_vars): step_output, loop_vars = func(*loop_vars), at most max_iterations
    times; returns (step outputs stacked along axis 0 and padded to max_iterations, loop_vars)."""
    if max_iterations is None:
        raise GraphcError("while_loop: max_iterations must be given (the outputs are padded to it)")
    max_iterations = int(max_iterations.asscalar() if hasattr(max_iterations, "asscalar") else max_iterations)
    single = not isinstance(loop_vars, (list, tuple))
    loop_vars = _as_list(loop_vars)
    if not loop_vars:
        raise GraphcError("while_loop: loop_vars must hold at least one array")
    flat, _ = flatten(loop_vars, "while_loop loop_vars")
    run = _traced_while if _is_traced(flat) else _eager_while
    outputs, loop_vars = run(cond, func, loop_vars, max_iterations)
    return outputs, (loop_vars[0] if single else loop_vars)


def _eager_while(cond, func, loop_vars, max_iterations):
    from .ndarray.ndarray import _NAMESPACE as nd
    steps, outputs, out_fmt = 0, [], None
    while steps < max_iterations and _to_bool(cond(*loop_vars), "while_loop: cond"):
        out, loop_vars = _step(func, loop_vars)
        flat, out_fmt = flatten(out, "while_loop step output")
        if outputs and len(flat) != len(outputs[0]):
            raise GraphcError(f"while_loop: func gave {len(flat)} step outputs at step {steps}, "
                              f"{len(outputs[0])} before")
        outputs.append(flat)
        steps += 1
    stacked = []
    for items in zip(*outputs):
        rows = [nd.expand_dims(x, axis=0) for x in items]
        if steps < max_iterations:
            first = items[0]
            rows.append(nd._zeros(shape=(max_iterations - steps,) + tuple(first.shape), dtype=first.dtype,
                                  ctx=str(first.context)))
        stacked.append(nd.Concat(*rows, dim=0, num_args=len(rows)))
    return (regroup(stacked, out_fmt) if outputs else []), loop_vars


def _traced_while(cond, func, loop_vars, max_iterations):
    flat_vars, var_fmt = flatten(loop_vars, "while_loop loop_vars")
    builder = next(v.builder for v in flat_vars if isinstance(v, Handle))
    active, outputs, out_fmt = None, [], None
    for step in range(max_iterations):
        holds = _invoke(builder, "_not_equal_scalar", [cond(*regroup(flat_vars, var_fmt))], scalar=0.0)
        active = holds if active is None else _invoke(builder, "broadcast_mul", [active, holds])
        with _Branch(active):
            out, new_vars = _step(func, regroup(flat_vars, var_fmt))
        flat_out, out_fmt = flatten(out, "while_loop step output")
        if outputs and len(flat_out) != len(outputs[0]):
            raise GraphcError(f"while_loop: func gave {len(flat_out)} step outputs at step {step}, "
                              f"{len(outputs[0])} before")
        outputs.append([_select(active, o, _invoke(builder, "zeros_like", [o])) for o in flat_out])
        flat_new, _ = flatten(new_vars, "while_loop loop_vars")
        flat_vars = [_select(active, new, old) for new, old in zip(flat_new, flat_vars)]
    stacked = [_stack(list(items), builder) for items in zip(*outputs)]
    return (regroup(stacked, out_fmt) if outputs else []), regroup(flat_vars, var_fmt)


# -- cond ------------------------------------------------------------------------------------------

def cond(pred, then_func, else_func, name="cond"):
    """then_func() if pred (one value) is nonzero, else else_func(). Traced, both run and the
    taken branch's outputs are kept; gradients reach only what the taken branch read."""
    if not isinstance(pred, Handle):
        return then_func() if _to_bool(pred, "cond: pred") else else_func()
    with _Branch(pred):
        then_out = then_func()
    with _Branch(pred, negate=True):
        else_out = else_func()
    then_flat, then_fmt = flatten(then_out, "cond then_func output")
    else_flat, else_fmt = flatten(else_out, "cond else_func output")
    if then_fmt != else_fmt:
        raise GraphcError(f"cond: then_func and else_func must give the same structure of outputs, got "
                          f"{len(then_flat)} and {len(else_flat)} arrays ({then_fmt} vs {else_fmt})")
    return regroup([_select(pred, t, e) for t, e in zip(then_flat, else_flat)], then_fmt)
