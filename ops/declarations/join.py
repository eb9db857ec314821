"""Operators over several arrays: Concat, stack, add_n, and split (several outputs). Variadic
inputs are named arg0, arg1, ... and counted by `num_args`, as MXNet writes them."""
from __future__ import annotations

import numpy as np

from .. import scalar as S
from ..attrs import Attr
from ..errors import ShapeError
from .. import layout as L
from ..registry import OpDef, Elementwise, Movement, register
from .common import normalize_axes, same_dtype, like


def _variadic(attrs):
    return tuple(f"arg{i}" for i in range(attrs["num_args"]))


def _check_count(op, xs, num_args):
    if len(xs) != num_args or num_args < 1:
        raise ShapeError(f"{op}: num_args={num_args} but {len(xs)} inputs were given")


def concat_infer(op_name):
    """Concat's shape rule, under the name of the operator that uses it (Concat and MXNet's
    _rnn_param_concat are the same computation)."""
    def infer(*xs, num_args, dim):
        _check_count(op_name, xs, num_args)
        same_dtype(op_name, *xs)
        first = xs[0]
        a = normalize_axes(dim, first.ndim, op_name)[0]
        for x in xs[1:]:
            if x.ndim != first.ndim or x.shape[:a] + x.shape[a + 1:] != first.shape[:a] + first.shape[a + 1:]:
                raise ShapeError(f"{op_name}: input shapes {first.shape} and {x.shape} differ outside dimension {dim}")
        return like(first, first.shape[:a] + (sum(x.shape[a] for x in xs),) + first.shape[a + 1:])
    return infer


def concat_grad(F, ins, outs, gs, attrs):
    a = attrs["dim"] % ins[0].ndim
    grads, start = [], 0
    for x in ins:
        grads.append(F.slice_axis(gs[0], axis=a, begin=start, end=start + x.shape[a]))
        start += x.shape[a]
    return grads


def concat_pieces(in_types, out_types, attrs):
    """Each input to its block of the output along `dim`."""
    out = out_types[0]
    a = attrs["dim"] % out.ndim
    dst, pieces, start = L.probe(out.shape), [], 0
    for j, t in enumerate(in_types):
        block = dst[(slice(None),) * a + (slice(start, start + t.shape[a]),)]
        pieces.append(L.scatter(block, t.shape, src=j))
        start += t.shape[a]
    return pieces


register(OpDef("Concat", infer=concat_infer("Concat"), inputs=_variadic,
               compute=lambda *xs, num_args, dim: np.concatenate(xs, axis=dim),
               attrs={"num_args": Attr("int"), "dim": Attr("int", 1)}, gradient=concat_grad,
               lowering=Movement(concat_pieces), aliases=("concat",)))


def _stack_infer(*xs, num_args, axis):
    _check_count("stack", xs, num_args)
    same_dtype("stack", *xs)
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ShapeError(f"stack: input shapes {xs[0].shape} and {x.shape} differ")
    if not -xs[0].ndim - 1 <= axis <= xs[0].ndim:
        raise ShapeError(f"stack: axis {axis} is out of range for inputs of shape {xs[0].shape}")
    a = axis % (xs[0].ndim + 1)
    return like(xs[0], xs[0].shape[:a] + (len(xs),) + xs[0].shape[a:])


def _stack_grad(F, ins, outs, gs, attrs):
    a = attrs["axis"] % (ins[0].ndim + 1)
    parts = F.split(gs[0], num_outputs=len(ins), axis=a, squeeze_axis=True)
    return list(parts) if isinstance(parts, (tuple, list)) else [parts]


def _stack_pieces(in_types, out_types, attrs):
    out = out_types[0]
    a = attrs["axis"] % out.ndim
    dst = L.probe(out.shape)
    return [L.scatter(dst[(slice(None),) * a + (j,)], t.shape, src=j) for j, t in enumerate(in_types)]


register(OpDef("stack", infer=_stack_infer, inputs=_variadic,
               compute=lambda *xs, num_args, axis: np.stack(xs, axis=axis),
               attrs={"axis": Attr("int", 0), "num_args": Attr("int")}, gradient=_stack_grad,
               lowering=Movement(_stack_pieces)))


def _add_n_infer(*xs, num_args):
    _check_count("add_n", xs, num_args)
    same_dtype("add_n", *xs)
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ShapeError(f"add_n: input shapes {xs[0].shape} and {x.shape} differ")
    return xs[0]


def _add_n_np(*xs, num_args):
    out = xs[0].copy()
    for x in xs[1:]:
        out = out + x
    return out


def _add_n_formula(*xs, num_args):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


register(OpDef("add_n", infer=_add_n_infer, inputs=_variadic, compute=_add_n_np,
               attrs={"num_args": Attr("int")}, lowering=Elementwise(_add_n_formula),
               gradient=lambda F, ins, outs, gs, attrs: [gs[0]] * len(ins),
               aliases=("ElementWiseSum", "_grad_add_n")))


# -- split (SliceChannel): equal pieces along an axis, one output each ---------------------------
_SPLIT_ATTRS = {"num_outputs": Attr("int"), "axis": Attr("int", 1), "squeeze_axis": Attr("bool", False)}


def _split_infer(x, num_outputs, axis, squeeze_axis):
    a = normalize_axes(axis, x.ndim, "split")[0]
    n = num_outputs
    if n < 1 or x.shape[a] % n:
        raise ShapeError(f"split: dimension {a} of input {x.shape} (size {x.shape[a]}) does not split "
                         f"into num_outputs={n} equal parts")
    piece = x.shape[a] // n
    if squeeze_axis and piece != 1:
        raise ShapeError(f"split: squeeze_axis needs pieces of size 1, but input {x.shape} split {n} ways "
                         f"along axis {a} gives size {piece}")
    shape = x.shape[:a] + (() if squeeze_axis else (piece,)) + x.shape[a + 1:]
    return [like(x, shape)] * n


def _split_np(x, num_outputs, axis, squeeze_axis):
    parts = np.split(x, num_outputs, axis=axis)
    return tuple(np.ascontiguousarray(p.squeeze(axis) if squeeze_axis else p) for p in parts)


def _split_grad(F, ins, outs, gs, attrs):
    a = attrs["axis"] % ins[0].ndim
    parts = [g if g is not None else F.zeros_like(o) for g, o in zip(gs, outs)]
    if attrs["squeeze_axis"]:
        parts = [F.expand_dims(p, axis=a) for p in parts]
    if len(parts) == 1:
        return [parts[0]]
    return [F.Concat(*parts, dim=a)]


def _split_pieces(in_types, out_types, attrs):
    x = in_types[0]
    a = attrs["axis"] % x.ndim
    parts = np.split(L.probe(x.shape), attrs["num_outputs"], axis=a)
    if attrs["squeeze_axis"]:
        parts = [p.squeeze(a) for p in parts]
    return [L.gather(p, t.shape, dst=j) for j, (p, t) in enumerate(zip(parts, out_types))]


register(OpDef("split", infer=_split_infer, compute=_split_np, attrs=_SPLIT_ATTRS, gradient=_split_grad,
               num_outputs=lambda attrs: attrs["num_outputs"], lowering=Movement(_split_pieces),
               aliases=("SliceChannel",)))
