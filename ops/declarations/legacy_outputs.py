"""MXNet's legacy output layers: LinearRegressionOutput, LogisticRegressionOutput,
MAERegressionOutput, SVMOutput, and SoftmaxActivation.

The output layers end a network the way SoftmaxOutput does: their forward is (almost) the
identity and their gradient is the loss's derivative with respect to the data, *ignoring the
head gradient* (MXNet's legacy backward), scaled by grad_scale; the label gets no gradient.
The regression outputs divide by the number of outputs per sample (label.size / batch), as
MXNet's regression_output-inl.h does."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register


def _regression_infer(name):
    def infer(data, label, grad_scale):
        if label.size != data.size or (label.ndim and data.ndim and label.shape[0] != data.shape[0]):
            raise ShapeError(f"{name}: label {label.shape} must hold one value per output of data {data.shape}")
        return data
    return infer


def _per_sample(label_shape) -> float:
    """MXNet's num_output: label values per sample (the first dimension is the batch)."""
    return float(np.prod(label_shape[1:])) if len(label_shape) > 1 else 1.0


def _regression(name, forward, backward, doc):
    def compute(data, label, grad_scale):
        return forward(data).astype(data.dtype)

    def gradient(F, ins, outs, gs, attrs):
        data, label = ins
        target = F.reshape(label, shape=data.shape)
        scale = attrs["grad_scale"] / _per_sample(label.shape)
        return [backward(F, outs[0], target) * scale, None]

    register(OpDef(name, infer=_regression_infer(name), compute=compute, inputs=("data", "label"),
                   attrs={"grad_scale": Attr("float", 1.0)}, gradient=gradient, doc=doc))


_regression("LinearRegressionOutput", lambda x: x.copy(), lambda F, y, t: y - t,
            "Identity forward; gradient (out - label) * grad_scale / outputs per sample (squared loss).")
_regression("LogisticRegressionOutput", lambda x: 1.0 / (1.0 + np.exp(-x)), lambda F, y, t: y - t,
            "Sigmoid forward; gradient (sigmoid(x) - label) * grad_scale / outputs per sample (log loss).")
_regression("MAERegressionOutput", lambda x: x.copy(), lambda F, y, t: F.sign(y - t),
            "Identity forward; gradient sign(out - label) * grad_scale / outputs per sample (absolute loss).")


# -- SVMOutput -------------------------------------------------------------------------------------
_SVM_ATTRS = {"margin": Attr("float", 1.0), "regularization_coefficient": Attr("float", 1.0),
              "use_linear": Attr("bool", False)}


def _svm_infer(data, label, **_):
    if data.ndim < 2 or label.shape != data.shape[:1]:
        raise ShapeError(f"SVMOutput: data must be (batch, classes) with label (batch,), got data {data.shape} "
                         f"and label {label.shape}")
    return data


def svm_output_grad_np(data, label, margin, regularization_coefficient, use_linear):
    """The hinge loss's derivative per element, as MXNet's L1_SVM / L2_SVM kernels: the labelled
    class is pushed above `margin`, every other class below -margin."""
    x = data.reshape(data.shape[0], -1).astype(np.float64)
    hot = np.zeros_like(x, dtype=bool)
    hot[np.arange(x.shape[0]), label.astype(np.int64)] = True
    c = regularization_coefficient
    if use_linear:
        g = np.where(hot, -1.0 * (margin > x) * c, 1.0 * (margin > -x) * c)
    else:
        g = np.where(hot, np.where(margin > x, -2.0 * (margin - x), 0.0),
                     np.where(margin > -x, 2.0 * (margin + x), 0.0)) * c
    return g.reshape(data.shape).astype(data.dtype)


def _svm_grad(F, ins, outs, gs, attrs):
    return [F._svm_output_grad(ins[0], ins[1], **attrs), None]


register(OpDef("SVMOutput", infer=_svm_infer, compute=lambda data, label, **_: data.copy(),
               inputs=("data", "label"), attrs=_SVM_ATTRS, gradient=_svm_grad,
               doc="Identity forward; the gradient is the (L1 with use_linear, else squared) hinge loss's."))
register(OpDef("_svm_output_grad", infer=_svm_infer, compute=svm_output_grad_np, inputs=("data", "label"),
               attrs=_SVM_ATTRS, gradient=lambda F, ins, outs, gs, attrs: [None, None],
               doc="SVMOutput's backward: the hinge loss's derivative with respect to the data."))


# -- SoftmaxActivation ----------------------------------------------------------------------------

def _softmax_activation_axis(x_ndim, mode):
    """instance: the last axis (MXNet flattens the data to 2-D keeping the last dimension, so
    each row of that view is an instance); channel: axis 1."""
    if x_ndim < (2 if mode == "channel" else 1):
        raise ShapeError(f"SoftmaxActivation: mode={mode!r} needs at least {2 if mode == 'channel' else 1}-D "
                         f"data, got {x_ndim}-D")
    return 1 if mode == "channel" else x_ndim - 1


def _sa_infer(x, mode):
    _softmax_activation_axis(x.ndim, mode)
    return x


def _sa_np(x, mode):
    axis = _softmax_activation_axis(x.ndim, mode)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def _sa_grad(F, ins, outs, gs, attrs):
    y, g = outs[0], gs[0]
    axis = _softmax_activation_axis(y.ndim, attrs["mode"])
    return [y * (g - F.sum(g * y, axis=axis, keepdims=True))]


register(OpDef("SoftmaxActivation", infer=_sa_infer, compute=_sa_np,
               attrs={"mode": Attr("str", "instance", choices=("instance", "channel"))}, gradient=_sa_grad,
               doc="Softmax over the last axis (instance) or over axis 1 (channel)."))
