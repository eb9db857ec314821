"""Normalisation layers: BatchNorm, LayerNorm, InstanceNorm, GroupNorm, L2Normalization, and
SoftmaxOutput (MXNet's legacy softmax loss layer). Gradients are written with other registered
operators, recomputing the statistics from the data, so second derivatives work too.

BatchNorm follows MXNet 1.9's CPU operator (src/operator/nn/batch_norm.cc): in training it
normalises with the batch mean and the biased batch variance, and its outputs are
(out, mean, inverse std, new moving_mean, new moving_var); the moving statistics move by
`moving = moving * momentum + batch * (1 - momentum)` with the biased variance. MXNet writes the
moving statistics in place (in its backward pass on the CPU); graphc returns them as outputs
that `mutates` maps back onto inputs 3 and 4. In inference (or with use_global_stats) the
moving statistics normalise and the "new" values are the old ones.

Whether a BatchNorm runs in training is known only when the graph runs (the `training=` flag),
so its gradient reads it through `_is_training`, a one-element 1/0 tensor: the same gradient
graph is right in both modes.
"""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..dtypes import is_float
from ..errors import DTypeError, ShapeError
from ..registry import OpDef, register
from .common import normalize_axes, like, same_dtype


def _is_training_np(x, training=False):
    return np.array([1.0 if training else 0.0], dtype=x.dtype)


register(OpDef("_is_training", infer=lambda x: like(x, (1,)), compute=_is_training_np, uses_training=True,
               gradient=lambda F, ins, outs, gs, attrs: [None],
               doc="[1] while the graph runs in training mode, else [0] (dtype of its input, which it never reads)."))


def _bshape(ndim, axis, n):
    return tuple(n if i == axis else 1 for i in range(ndim))


# -- BatchNorm -------------------------------------------------------------------------------------
_BN_ATTRS = {"eps": Attr("float", 1e-3), "momentum": Attr("float", 0.9), "fix_gamma": Attr("bool", True),
             "use_global_stats": Attr("bool", False), "output_mean_var": Attr("bool", False),
             "axis": Attr("int", 1), "cudnn_off": Attr("bool", False),
             "min_calib_range": Attr("float", None, optional=True),
             "max_calib_range": Attr("float", None, optional=True)}


def param_dtype(data_dtype: str) -> str:
    """The dtype of BatchNorm's gamma, beta and moving statistics for data of `data_dtype`:
    MXNet's accumulation type (float16 data keeps them in float32, where a running variance
    and its updates keep their precision), else the data's own dtype."""
    return "float32" if data_dtype in ("float16", "bfloat16") else data_dtype


def _bn_infer(x, gamma, beta, mm, mv, axis, **_):
    if x.ndim < 1:
        raise ShapeError(f"BatchNorm: data {x.shape} has no channel axis")
    if not is_float(x.dtype):
        raise DTypeError(f"BatchNorm: data is {x.dtype}; it must be a floating-point type")
    a = normalize_axes(axis, x.ndim, "BatchNorm")[0]
    c = x.shape[a]
    want = param_dtype(x.dtype)
    for name, t in (("gamma", gamma), ("beta", beta), ("moving_mean", mm), ("moving_var", mv)):
        if t.shape != (c,):
            raise ShapeError(f"BatchNorm: {name} has shape {t.shape}, expected ({c},) for data {x.shape} "
                             f"with channel axis {a}")
        if t.dtype != want:
            raise DTypeError(f"BatchNorm: {name} is {t.dtype} but {x.dtype} data needs {want} gamma, beta and "
                             f"moving statistics (as in MXNet: float16 data keeps them in float32); "
                             f"net.cast('{x.dtype}') casts a network's layers to match")
    stat = like(mm, (c,))
    return [like(x), stat, stat, like(mm), like(mv)]


def _bn_np(x, gamma, beta, mm, mv, eps, momentum, fix_gamma, use_global_stats, axis, training=False, **_):
    a = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != a)
    bs = _bshape(x.ndim, a, x.shape[a])
    batch = training and not use_global_stats
    out_dtype = x.dtype
    x = x.astype(mm.dtype, copy=False)       # float16 data: statistics and arithmetic in float32
    if batch:
        # an empty batch has no statistics: NaN mean and variance, which (as in MXNet) the
        # moving statistics take on; numpy's "mean of empty slice" warning says nothing new
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = x.mean(axis=red) if x.size else np.full(x.shape[a], np.nan, x.dtype)
            var = np.square(x - mean.reshape(bs)).mean(axis=red) if x.size else mean.copy()
    else:
        mean, var = mm, mv
    invstd = 1.0 / np.sqrt(var + eps)
    out = (x - mean.reshape(bs)) * invstd.reshape(bs)
    if not fix_gamma:
        out = out * gamma.reshape(bs)
    out = (out + beta.reshape(bs)).astype(out_dtype, copy=False)
    sd = mm.dtype
    if batch:
        new_mm = (mm * momentum + mean * (1 - momentum)).astype(sd)
        new_mv = (mv * momentum + var * (1 - momentum)).astype(sd)
    else:
        new_mm, new_mv = mm.copy(), mv.copy()
    return out, mean.astype(sd), invstd.astype(sd), new_mm, new_mv


def _bn_grad(F, ins, outs, gs, attrs):
    x, gamma, beta, mm, mv = ins
    # float16 data: the gradient is computed in the statistics' float32 (as MXNet's AccReal),
    # and only dx goes back to float16; every operator below sees one dtype
    data_dtype, stat_dtype = np.dtype(x.dtype).name, np.dtype(mm.dtype).name
    if data_dtype != stat_dtype:
        x = F.Cast(x, dtype=stat_dtype)
    g = gs[0] if np.dtype(gs[0].dtype).name == stat_dtype else F.Cast(gs[0], dtype=stat_dtype)
    a = attrs["axis"] % x.ndim
    red = tuple(i for i in range(x.ndim) if i != a)
    bs = _bshape(x.ndim, a, x.shape[a])
    mu, var = F.Reshape(mm, shape=bs), F.Reshape(mv, shape=bs)
    flag = None
    if not attrs["use_global_stats"]:
        flag = F._is_training(x)
        bm = F.mean(x, axis=red, keepdims=True)
        bv = F.mean(F.square(x - bm), axis=red, keepdims=True)
        keep = F._rminus_scalar(flag, scalar=1.0)
        mu = flag * bm + keep * mu
        var = flag * bv + keep * var
    invstd = F.rsqrt(var + attrs["eps"])
    xhat = (x - mu) * invstd
    gw = g if attrs["fix_gamma"] else g * F.Reshape(gamma, shape=bs)
    if flag is None:
        dx = gw * invstd
    else:
        corr = F.mean(gw, axis=red, keepdims=True) + xhat * F.mean(gw * xhat, axis=red, keepdims=True)
        dx = (gw - flag * corr) * invstd
    dgamma = F.zeros_like(gamma) if attrs["fix_gamma"] else F.sum(g * xhat, axis=red)
    if data_dtype != stat_dtype:
        dx = F.Cast(dx, dtype=data_dtype)
    return [dx, dgamma, F.sum(g, axis=red), None, None]


def _bn_infer_missing(in_types, attrs):
    """gamma, beta and the moving statistics: one value per channel of the data (`axis`)."""
    x = in_types[0]
    if x is None:
        return in_types
    c = x.shape[normalize_axes(attrs["axis"], x.ndim, "BatchNorm")[0]]
    want = like(x, (c,)).with_(dtype=param_dtype(x.dtype))
    return [t if t is not None or i == 0 else want for i, t in enumerate(in_types)]


# per element: mean, variance (two passes), then scale and shift (the cost model's estimate)
_NORM_FLOPS = 8.0


# BatchNorm_v1: MXNet's first BatchNorm, the same computation over axis 1 with the same defaults
register(OpDef("BatchNorm", infer=_bn_infer, compute=_bn_np, attrs=_BN_ATTRS, aliases=("BatchNorm_v1",),
               inputs=("data", "gamma", "beta", "moving_mean", "moving_var"), gradient=_bn_grad,
               num_outputs=5, num_visible_outputs=lambda a: 3 if a["output_mean_var"] else 1,
               uses_training=True, aux_inputs=(3, 4), mutates=((3, 3), (4, 4)), infer_missing=_bn_infer_missing,
               flops=lambda ins, outs, a: _NORM_FLOPS * ins[0].size,
               doc="Batch normalisation over every axis but `axis`; outputs (out, mean, inverse std, "
                   "new moving_mean, new moving_var), the first one (three with output_mean_var) visible."))


# -- LayerNorm, InstanceNorm, GroupNorm: statistics per sample ---------------------------------------

def _moments(x, red):
    mean = x.mean(axis=red, keepdims=True)
    var = np.square(x - mean).mean(axis=red, keepdims=True)
    return mean, var


def _norm_grad_core(F, x, g, red, eps, scale=None):
    """d/dx of sum(g * scale * (x - mean) / sqrt(var + eps)) with moments over `red`, and xhat."""
    mean = F.mean(x, axis=red, keepdims=True)
    xc = x - mean
    rstd = F.rsqrt(F.mean(F.square(xc), axis=red, keepdims=True) + eps)
    xhat = xc * rstd
    gw = g if scale is None else g * scale
    dx = (gw - F.mean(gw, axis=red, keepdims=True) - xhat * F.mean(gw * xhat, axis=red, keepdims=True)) * rstd
    return dx, xhat


_LN_ATTRS = {"axis": Attr("int", -1), "eps": Attr("float", 1e-5), "output_mean_var": Attr("bool", False)}


def _ln_infer(x, gamma, beta, axis, eps, output_mean_var):
    same_dtype("LayerNorm", x, gamma, beta, names=("data", "gamma", "beta"))
    a = normalize_axes(axis, x.ndim, "LayerNorm")[0]
    for name, t in (("gamma", gamma), ("beta", beta)):
        if t.shape != (x.shape[a],):
            raise ShapeError(f"LayerNorm: {name} has shape {t.shape}, expected ({x.shape[a]},) for data {x.shape} "
                             f"normalised along axis {a}")
    stat = like(x, x.shape[:a] + (1,) + x.shape[a + 1:])
    return [like(x), stat, stat]


def _ln_np(x, gamma, beta, axis, eps, output_mean_var):
    a = axis % x.ndim
    mean, var = _moments(x, (a,))
    std = np.sqrt(var + eps)
    bs = _bshape(x.ndim, a, x.shape[a])
    out = (x - mean) / std * gamma.reshape(bs) + beta.reshape(bs)
    return out.astype(x.dtype, copy=False), mean.astype(x.dtype), std.astype(x.dtype)


def _ln_grad(F, ins, outs, gs, attrs):
    x, gamma, beta = ins
    g = gs[0]
    a = attrs["axis"] % x.ndim
    others = tuple(i for i in range(x.ndim) if i != a)
    dx, xhat = _norm_grad_core(F, x, g, (a,), attrs["eps"], F.Reshape(gamma, shape=_bshape(x.ndim, a, x.shape[a])))
    return [dx, F.sum(g * xhat, axis=others), F.sum(g, axis=others)]


def _scale_shift_missing(size_of):
    """infer_missing for a norm whose gamma and beta are vectors of size_of(data shape, attrs)."""
    def infer_missing(in_types, attrs):
        x = in_types[0]
        if x is None:
            return in_types
        want = like(x, (size_of(x.shape, attrs),))
        return [x] + [t if t is not None else want for t in in_types[1:]]
    return infer_missing


register(OpDef("LayerNorm", infer=_ln_infer, compute=_ln_np, attrs=_LN_ATTRS, inputs=("data", "gamma", "beta"),
               infer_missing=_scale_shift_missing(lambda shape, a: shape[a["axis"] % len(shape)]),
               gradient=_ln_grad, num_outputs=3, num_visible_outputs=lambda a: 3 if a["output_mean_var"] else 1,
               flops=lambda ins, outs, a: _NORM_FLOPS * ins[0].size,
               doc="Normalise along `axis` per position; outputs (out, mean, std)."))


def _in_infer(x, gamma, beta, eps):
    same_dtype("InstanceNorm", x, gamma, beta, names=("data", "gamma", "beta"))
    if x.ndim < 3:
        raise ShapeError(f"InstanceNorm: data {x.shape} must have at least 3 dimensions (batch, channel, spatial...)")
    for name, t in (("gamma", gamma), ("beta", beta)):
        if t.shape != (x.shape[1],):
            raise ShapeError(f"InstanceNorm: {name} has shape {t.shape}, expected ({x.shape[1]},) for data {x.shape}")
    stat = like(x, x.shape[:2] + (1,) * (x.ndim - 2))
    return [like(x), stat, stat]


def _in_np(x, gamma, beta, eps):
    red = tuple(range(2, x.ndim))
    mean, var = _moments(x, red)
    bs = _bshape(x.ndim, 1, x.shape[1])
    out = (x - mean) / np.sqrt(var + eps) * gamma.reshape(bs) + beta.reshape(bs)
    return out.astype(x.dtype, copy=False), mean.astype(x.dtype), var.astype(x.dtype)


def _in_grad(F, ins, outs, gs, attrs):
    x, gamma, beta = ins
    g = gs[0]
    red = tuple(range(2, x.ndim))
    others = (0,) + red
    dx, xhat = _norm_grad_core(F, x, g, red, attrs["eps"], F.Reshape(gamma, shape=_bshape(x.ndim, 1, x.shape[1])))
    return [dx, F.sum(g * xhat, axis=others), F.sum(g, axis=others)]


register(OpDef("InstanceNorm", infer=_in_infer, compute=_in_np, attrs={"eps": Attr("float", 1e-3)},
               inputs=("data", "gamma", "beta"), gradient=_in_grad, num_outputs=3, num_visible_outputs=1,
               infer_missing=_scale_shift_missing(lambda shape, a: shape[1]),
               flops=lambda ins, outs, a: _NORM_FLOPS * ins[0].size,
               doc="Normalise each (sample, channel) over its spatial positions, then scale and shift per channel."))


_GN_ATTRS = {"num_groups": Attr("int", 1), "eps": Attr("float", 1e-5), "output_mean_var": Attr("bool", False)}


def _gn_infer(x, gamma, beta, num_groups, eps, output_mean_var):
    same_dtype("GroupNorm", x, gamma, beta, names=("data", "gamma", "beta"))
    if x.ndim < 2 or num_groups < 1 or x.shape[1] % num_groups:
        raise ShapeError(f"GroupNorm: data {x.shape} needs a channel axis divisible by num_groups={num_groups}")
    for name, t in (("gamma", gamma), ("beta", beta)):
        # MXNet 1.x: one scale and shift per group (not per channel)
        if t.shape != (num_groups,):
            raise ShapeError(f"GroupNorm: {name} has shape {t.shape}, expected ({num_groups},) (one per group) "
                             f"for data {x.shape}")
    stat = like(x, (x.shape[0], num_groups))
    return [like(x), stat, stat]


def _gn_np(x, gamma, beta, num_groups, eps, output_mean_var):
    xr = x.reshape(x.shape[0], num_groups, int(np.prod(x.shape[1:])) // num_groups)
    mean, var = _moments(xr, (2,))
    std = np.sqrt(var + eps)
    out = (xr - mean) / std * gamma.reshape(1, -1, 1) + beta.reshape(1, -1, 1)
    return out.reshape(x.shape).astype(x.dtype, copy=False), mean[..., 0].astype(x.dtype), std[..., 0].astype(x.dtype)


def _gn_grad(F, ins, outs, gs, attrs):
    x, gamma, beta = ins
    G = attrs["num_groups"]
    shape = (x.shape[0], G, int(np.prod(x.shape[1:])) // G)
    xr, gr = F.Reshape(x, shape=shape), F.Reshape(gs[0], shape=shape)
    dx, xhat = _norm_grad_core(F, xr, gr, (2,), attrs["eps"], F.Reshape(gamma, shape=(1, G, 1)))
    return [F.Reshape(dx, shape=x.shape), F.sum(gr * xhat, axis=(0, 2)), F.sum(gr, axis=(0, 2))]


register(OpDef("GroupNorm", infer=_gn_infer, compute=_gn_np, attrs=_GN_ATTRS, inputs=("data", "gamma", "beta"),
               infer_missing=_scale_shift_missing(lambda shape, a: a["num_groups"]),
               gradient=_gn_grad, num_outputs=3, num_visible_outputs=lambda a: 3 if a["output_mean_var"] else 1,
               flops=lambda ins, outs, a: _NORM_FLOPS * ins[0].size,
               doc="Normalise each group of num_groups channel groups per sample; gamma/beta per group (MXNet 1.x)."))


# -- L2Normalization --------------------------------------------------------------------------------
_L2_ATTRS = {"eps": Attr("float", 1e-10), "mode": Attr("str", "instance", choices=("instance", "channel", "spatial"))}


def _l2_axes(ndim, mode):
    if mode == "instance":
        return tuple(range(1, ndim))
    if mode == "channel":
        return (1,)
    return tuple(range(2, ndim))


def _l2_infer(x, eps, mode):
    if x.ndim < (3 if mode == "spatial" else 2):
        raise ShapeError(f"L2Normalization: data {x.shape} has too few dimensions for mode={mode!r}")
    keep = set(_l2_axes(x.ndim, mode))
    return [like(x), like(x, tuple(1 if i in keep else d for i, d in enumerate(x.shape)))]


def _l2_np(x, eps, mode):
    norm = np.sqrt(np.square(x).sum(axis=_l2_axes(x.ndim, mode), keepdims=True) + eps)
    return (x / norm).astype(x.dtype, copy=False), norm.astype(x.dtype)


def _l2_grad(F, ins, outs, gs, attrs):
    x, g = ins[0], gs[0]
    red = _l2_axes(x.ndim, attrs["mode"])
    inv = F.rsqrt(F.sum(F.square(x), axis=red, keepdims=True) + attrs["eps"])
    y = x * inv
    return [(g - y * F.sum(g * y, axis=red, keepdims=True)) * inv]


register(OpDef("L2Normalization", infer=_l2_infer, compute=_l2_np, attrs=_L2_ATTRS, gradient=_l2_grad,
               num_outputs=2, num_visible_outputs=1, flops=lambda ins, outs, a: 3.0 * ins[0].size,
               doc="x / sqrt(sum(x^2) + eps) over each instance, channel column, or spatial map; hidden output: the norm."))


# -- SoftmaxOutput ----------------------------------------------------------------------------------
_SO_ATTRS = {"grad_scale": Attr("float", 1.0), "ignore_label": Attr("float", -1.0),
             "multi_output": Attr("bool", False), "use_ignore": Attr("bool", False),
             "preserve_shape": Attr("bool", False),
             "normalization": Attr("str", "null", choices=("null", "batch", "valid")),
             "out_grad": Attr("bool", False), "smooth_alpha": Attr("float", 0.0)}


def _so_label_shape(x, multi_output, preserve_shape):
    if preserve_shape:
        return x.shape[:-1]
    if multi_output:
        return (x.shape[0],) + x.shape[2:]
    return x.shape[:1]


def _so_infer(x, label, multi_output, preserve_shape, **_):
    if x.ndim < (3 if multi_output else 2) - (1 if preserve_shape else 0) or x.ndim < 1:
        raise ShapeError(f"SoftmaxOutput: data {x.shape} has too few dimensions (label {label.shape})")
    want = _so_label_shape(x, multi_output, preserve_shape)
    if label.shape != want and label.size != int(np.prod(want)) and label.shape != x.shape:
        raise ShapeError(f"SoftmaxOutput: label has shape {label.shape}, expected {want} for data {x.shape}")
    return like(x)


def _so_infer_missing(in_types, attrs):
    """The label's shape from the data's, so a module bound without label shapes (prediction)
    still binds, as MXNet's backward shape inference allows."""
    x, label = in_types
    if x is None or label is not None:
        return in_types
    return [x, like(x, _so_label_shape(x, attrs["multi_output"], attrs["preserve_shape"]))]


def _so_np(x, label, multi_output, preserve_shape, **_):
    if preserve_shape:
        axis, z = -1, x
    elif multi_output:
        axis, z = 1, x
    else:
        axis, z = 1, x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).reshape(x.shape).astype(x.dtype, copy=False)


def _so_grad(F, ins, outs, gs, attrs):
    x, label = ins
    p = outs[0]
    if label.shape == x.shape:
        # a label shaped as the data is a distribution over the classes (MXNet's probability
        # labels): the gradient is out - label, scaled by grad_scale whatever the normalization
        soft = label if np.dtype(label.dtype) == np.dtype(x.dtype) else F.Cast(label, dtype=np.dtype(x.dtype).name)
        grad = p - soft
        grad = grad * attrs["grad_scale"] if attrs["grad_scale"] != 1.0 else grad
        return [grad * gs[0] if attrs["out_grad"] else grad, None]
    mo, ps = attrs["multi_output"], attrs["preserve_shape"]
    lab = F.Reshape(label, shape=_so_label_shape(x, mo, ps))
    if ps:
        k = x.shape[-1]
        hot = F.one_hot(lab, depth=k, dtype=x.dtype)
        pk = p
    elif mo:
        k = x.shape[1]
        hot = F.one_hot(lab, depth=k, dtype=x.dtype)
        hot = F.transpose(hot, axes=(0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))
        pk = p
    else:
        k = int(np.prod(x.shape[1:]))
        hot = F.one_hot(lab, depth=k, dtype=x.dtype)
        pk = F.Reshape(p, shape=(x.shape[0], k))
    alpha = attrs["smooth_alpha"]
    if alpha:
        hot = hot * (1.0 - alpha - alpha / (k - 1)) + alpha / (k - 1)
    grad = pk - hot
    if attrs["use_ignore"] or attrs["normalization"] == "valid":
        valid = F._not_equal_scalar(lab, scalar=attrs["ignore_label"]) if attrs["use_ignore"] else F.ones_like(lab)
        if attrs["use_ignore"]:
            # the class axis of grad: last with preserve_shape, else 1 (grad is (n, k) or (n, k, ...))
            grad = grad * F.expand_dims(valid, axis=x.ndim - 1 if ps else 1)
    scale = attrs["grad_scale"]
    if attrs["normalization"] == "batch":
        scale = scale / x.shape[0]
    grad = grad * scale if scale != 1.0 else grad
    if attrs["normalization"] == "valid":
        grad = F.broadcast_div(grad, F._maximum_scalar(F.sum(valid), scalar=1.0))
    grad = F.Reshape(grad, shape=x.shape)
    if attrs["out_grad"]:
        grad = grad * gs[0]
    return [grad, None]


register(OpDef("SoftmaxOutput", infer=_so_infer, compute=_so_np, attrs=_SO_ATTRS, inputs=("data", "label"),
               gradient=_so_grad, infer_missing=_so_infer_missing, aliases=("Softmax",),
               flops=lambda ins, outs, a: 5.0 * ins[0].size,
               doc="Forward: softmax. Backward: (softmax - one_hot(label)) * grad_scale, ignoring the head "
                   "gradient (MXNet's legacy loss layer)."))
