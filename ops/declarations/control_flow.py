"""The two operators that traced control flow (graphc/control_flow.py) is built from.

A traced `cond` or `while_loop` step computes its branch unconditionally and keeps the result
only where its predicate holds. `_cond_select` keeps it; `_cond_gate` sits on every value a
branch reads from outside, the identity going forward, and going backward passes the gradient
only when the branch was taken. The gate is what keeps gradients clean: inside an untaken
branch the backward pass may form 0 * inf = NaN (sqrt'(0), log'(0)), and a multiply by the
predicate would carry that NaN out; the gate selects instead, so it never leaves the branch."""
from __future__ import annotations

from .. import scalar as S
from ..attrs import Attr
from ..errors import DTypeError, ShapeError
from ..registry import OpDef, Elementwise, View, register

import numpy as np


def _check_pred(op, pred):
    if pred.size != 1:
        raise ShapeError(f"{op}: the predicate must hold one value (shape (1,) or ()), got shape {pred.shape}")


def _taken(pred, negate) -> bool:
    return bool(np.asarray(pred).reshape(()) != 0) != bool(negate)


def _select_infer(pred, x, y):
    _check_pred("_cond_select", pred)
    if x.shape != y.shape or x.dtype != y.dtype:
        error = ShapeError if x.shape != y.shape else DTypeError
        raise error(f"_cond_select: both branches must give the same shape and dtype, got "
                    f"{x.dtype}{list(x.shape)} and {y.dtype}{list(y.shape)}")
    return x


def _select_np(pred, x, y):
    return (x if _taken(pred, False) else y).copy()


def _select_grad(F, ins, outs, gs, attrs):
    g = gs[0]
    zero = F.zeros_like(g)
    return [None, F._cond_select(ins[0], g, zero), F._cond_select(ins[0], zero, g)]


def _pred_formula(p):
    return S.call("ne", p, S.const(0, p.dtype))


register(OpDef("_cond_select", infer=_select_infer, compute=_select_np, inputs=("pred", "then", "else"),
               gradient=_select_grad,
               lowering=Elementwise(lambda p, x, y: S.select(_pred_formula(p), x, y),
                                    applies=lambda types, attrs: types[0].ndim <= types[1].ndim),
               doc="then if the one-value pred is nonzero, else else: the join of a traced cond."))


def _gate_infer(x, pred, negate):
    _check_pred("_cond_gate", pred)
    return x


def _gate_grad(F, ins, outs, gs, attrs):
    g = gs[0]
    zero = F.zeros_like(g)
    taken = F._cond_select(ins[1], zero, g) if attrs["negate"] else F._cond_select(ins[1], g, zero)
    return [taken, None]


register(OpDef("_cond_gate", infer=_gate_infer, compute=lambda x, pred, negate: x.copy(), inputs=("data", "pred"),
               attrs={"negate": Attr("bool", False)}, gradient=_gate_grad,
               lowering=View(),   # the data's own bytes: a gate never copies (pred only orders it)
               doc="data, unchanged; its gradient flows only when pred is nonzero (zero when negate): "
                   "the entry of a traced branch, which keeps the untaken branch's NaN gradients out."))
