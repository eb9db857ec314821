"""Loss building blocks: smooth_l1, softmax_cross_entropy, and make_loss/MakeLoss, whose
gradient is a constant (ones, scaled) instead of the head gradient: they end a network."""
from __future__ import annotations

import numpy as np

from .. import scalar as S
from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, Elementwise, register
from .common import like


# -- smooth_l1: 0.5 (s x)^2 where |x| < 1/s^2, else |x| - 0.5/s^2 --------------------------------

def _smooth_l1_np(x, scalar):
    s2 = x.dtype.type(scalar * scalar)
    ax = np.abs(x)
    return np.where(ax < 1 / s2, 0.5 * s2 * x * x, ax - 0.5 / s2).astype(x.dtype)


def _smooth_l1_formula(x, scalar):
    s2 = scalar * scalar
    ax = S.abs_(x)
    return S.select(ax < 1.0 / s2, x * x * (0.5 * s2), ax - 0.5 / s2)


def _smooth_l1_grad(F, ins, outs, gs, attrs):
    x, s2 = ins[0], attrs["scalar"] ** 2
    inside = F.abs(x) < 1.0 / s2
    return [gs[0] * (inside * x * s2 + (1.0 - inside) * F.sign(x))]


register(OpDef("smooth_l1", infer=lambda x, scalar: x, compute=_smooth_l1_np,
               attrs={"scalar": Attr("float", 1.0)}, gradient=_smooth_l1_grad,
               lowering=Elementwise(_smooth_l1_formula)))


# -- softmax_cross_entropy: sum over the batch of -log softmax(data)[label], shape (1,) ----------

def _sce_infer(data, label):
    if data.ndim != 2:
        raise ShapeError(f"softmax_cross_entropy: data must be 2-D (batch, classes), got {data.shape} "
                         f"with label {label.shape}")
    if label.shape != data.shape[:1]:
        raise ShapeError(f"softmax_cross_entropy: label has shape {label.shape}, expected ({data.shape[0]},) "
                         f"for data {data.shape}")
    return like(data, (1,))


def _sce_np(data, label):
    z = data - data.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    i = np.clip(label.astype(np.int64), 0, data.shape[1] - 1)
    return np.asarray([-logp[np.arange(data.shape[0]), i].sum()], dtype=data.dtype)


def _sce_grad(F, ins, outs, gs, attrs):
    data, label = ins
    hot = F.one_hot(label, depth=data.shape[1], dtype=data.dtype)
    return [(F.softmax(data, axis=1) - hot) * gs[0], None]


register(OpDef("softmax_cross_entropy", infer=_sce_infer, compute=_sce_np, inputs=("data", "label"),
               gradient=_sce_grad))


# -- make_loss / MakeLoss --------------------------------------------------------------------------

register(OpDef("make_loss", infer=lambda x: x, compute=lambda x: x.copy(),
               gradient=lambda F, ins, outs, gs, attrs: [F.ones_like(ins[0])],
               lowering=Elementwise(lambda x: x),
               doc="Marks a loss: forward is the identity, the gradient is ones (the head gradient is ignored)."))

_MAKELOSS_ATTRS = {"grad_scale": Attr("float", 1.0), "valid_thresh": Attr("float", 0.0),
                   "normalization": Attr("str", "null", choices=("null", "batch", "valid"))}


def _makeloss_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    g = F.ones_like(x) * attrs["grad_scale"]
    if attrs["normalization"] == "batch":
        g = g / float(x.shape[0] if x.ndim else 1)
    elif attrs["normalization"] == "valid":
        valid = F.sum(x > attrs["valid_thresh"])
        g = F.broadcast_div(g, F._maximum_scalar(valid, scalar=1.0))
    return [g]


register(OpDef("MakeLoss", infer=lambda x, **_: x, compute=lambda x, **_: x.copy(), attrs=_MAKELOSS_ATTRS,
               gradient=_makeloss_grad, lowering=Elementwise(lambda x, **_: x),
               doc="Marks a loss with a scaled constant gradient (normalized by batch or valid count)."))
