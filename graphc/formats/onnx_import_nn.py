"""ONNX layer operators as graphc's: Conv, ConvTranspose, Gemm, MatMul, the normalisations and
pooling. See `onnx_import_table` for the contract. Never imports a backend.
"""
from __future__ import annotations

import numpy as np

from .onnx_common import pool_windows
from .onnx_import_table import CONVERTERS, converts, explicit_pads, symmetric_pads


# -- convolution, dense, normalisation ---------------------------------------------------------------
@converts("Conv")
def _conv(ctx, node, attrs):
    x, w = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    kernel = tuple(attrs.get("kernel_shape", w.shape[2:]))
    nd = len(kernel)
    strides = tuple(attrs.get("strides", (1,) * nd))
    dilations = tuple(attrs.get("dilations", (1,) * nd))
    pad = explicit_pads(ctx, attrs, x.shape, kernel, strides, dilations)
    ins = [x, w]
    if len(node.input) > 2 and node.input[2]:
        ins.append(ctx.tensor(node.input[2]))
    return ctx.emit("Convolution", ins, dict(kernel=kernel, stride=strides, dilate=dilations, pad=pad,
                                             num_filter=w.shape[0], num_group=int(attrs.get("group", 1)),
                                             no_bias=len(ins) == 2))


@converts("ConvTranspose")
def _conv_transpose(ctx, node, attrs):
    if "output_shape" in attrs or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise ctx.fail("output_shape/auto_pad SAME: give explicit pads and output_padding instead")
    x, w = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    kernel = tuple(attrs.get("kernel_shape", w.shape[2:]))
    nd, group = len(kernel), int(attrs.get("group", 1))
    ins = [x, w] + ([ctx.tensor(node.input[2])] if len(node.input) > 2 and node.input[2] else [])
    return ctx.emit("Deconvolution", ins, dict(
        kernel=kernel, stride=tuple(attrs.get("strides", (1,) * nd)), dilate=tuple(attrs.get("dilations", (1,) * nd)),
        pad=symmetric_pads(ctx, attrs.get("pads"), nd), adj=tuple(attrs.get("output_padding", (0,) * nd)),
        num_filter=w.shape[1] * group, num_group=group, no_bias=len(ins) == 2))


@converts("Gemm")
def _gemm(ctx, node, attrs):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    a = ctx.tensor(node.input[0])
    b_known = ctx.const(node.input[1])
    c_name = node.input[2] if len(node.input) > 2 else ""
    c_known = ctx.const(c_name)
    if not trans_a and alpha == 1.0 and (b_known is not None or trans_b):
        # y = a W^T + c: FullyConnected, with W (out, in) as MXNet stores it
        if b_known is not None:
            w = ctx.tensor(node.input[1]) if trans_b else ctx.param(b_known.T, f"{node.input[1]}_T")
        else:
            w = ctx.tensor(node.input[1])
        hidden = w.shape[0]
        if c_name and (c_known is None or beta != 1.0 or c_known.size != hidden):
            c_name = None   # a bias that is not one value per output: added after
        ins = [a, w]
        if c_name:
            ins.append(ctx.param(c_known.reshape(hidden), c_name) if c_known.shape != (hidden,) else ctx.tensor(c_name))
        y = ctx.emit("FullyConnected", ins, dict(num_hidden=hidden, no_bias=len(ins) == 2, flatten=True))
        if c_name is None and len(node.input) > 2 and node.input[2]:
            y = _add_scaled(ctx, y, node.input[2], beta)
        return y
    y = ctx.emit("dot", [a, ctx.tensor(node.input[1])], dict(transpose_a=bool(trans_a), transpose_b=bool(trans_b)))
    if alpha != 1.0:
        y = ctx.emit("_mul_scalar", [y], dict(scalar=alpha), name=f"{ctx.node_name()}_alpha")
    if len(node.input) > 2 and node.input[2]:
        y = _add_scaled(ctx, y, node.input[2], beta)
    return y


def _add_scaled(ctx, y, name, beta):
    c = ctx.tensor(name)
    if beta != 1.0:
        c = ctx.emit("_mul_scalar", [c], dict(scalar=beta), name=f"{ctx.node_name()}_beta")
    return ctx.emit("broadcast_add", [y, c], name=f"{ctx.node_name()}_bias")


@converts("MatMul")
def _matmul(ctx, node, attrs):
    a = ctx.tensor(node.input[0])
    b_known = ctx.const(node.input[1])
    if b_known is not None and b_known.ndim == 2:
        w = ctx.param(np.ascontiguousarray(b_known.T), f"{node.input[1]}_T")
        if a.ndim == 1:
            raise ctx.fail("a 1-D left operand has no MXNet translation")
        return ctx.emit("FullyConnected", [a, w], dict(num_hidden=w.shape[0], no_bias=True, flatten=False))
    b = ctx.tensor(node.input[1])
    if b.ndim == 2 and a.ndim >= 2:
        return ctx.emit("dot", [a, b])
    if a.ndim == b.ndim == 3:
        return ctx.emit("batch_dot", [a, b])
    raise ctx.fail(f"MatMul of shapes {a.shape} and {b.shape}: graphc translates a 2-D right operand or two "
                   "3-D batches")


@converts("BatchNormalization")
def _batch_norm(ctx, node, attrs):
    if int(attrs.get("training_mode", 0)):
        raise ctx.fail("training_mode=1: graphc imports inference graphs")
    if len([o for o in node.output if o]) > 1:
        raise ctx.fail("the running-statistics outputs exist only in training")
    ins = [ctx.tensor(node.input[0]), ctx.tensor(node.input[1]), ctx.tensor(node.input[2]),
           ctx.tensor(node.input[3], "aux"), ctx.tensor(node.input[4], "aux")]
    return ctx.emit("BatchNorm", ins, dict(eps=float(attrs.get("epsilon", 1e-5)), fix_gamma=False,
                                           use_global_stats=True, momentum=float(attrs.get("momentum", 0.9))))


@converts("InstanceNormalization")
def _instance_norm(ctx, node, attrs):
    return ctx.emit("InstanceNorm", [ctx.tensor(n) for n in node.input], dict(eps=float(attrs.get("epsilon", 1e-5))))


@converts("LayerNormalization")
def _layer_norm(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    axis = int(attrs.get("axis", -1)) % x.ndim
    if axis != x.ndim - 1 or len([o for o in node.output if o]) > 1:
        raise ctx.fail("MXNet's LayerNorm normalises one axis: translated for axis=-1 with one output")
    gamma = ctx.tensor(node.input[1])
    beta = ctx.tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else \
        ctx.param(np.zeros(gamma.shape, np.dtype(gamma.dtype)), f"{ctx.node_name()}_beta")
    return ctx.emit("LayerNorm", [x, gamma, beta], dict(axis=-1, eps=float(attrs.get("epsilon", 1e-5))))


# -- pooling ------------------------------------------------------------------------------------------
def _convention(ctx, sizes, kernel, strides, pad, ceil_mode) -> str:
    """MXNet's pooling convention giving ONNX's windows: ceil_mode is MXNet's 'full', except
    along an axis where ONNX drops the last window (it starts in the end padding): there only
    'valid' gives the same windows, and MXNet has one convention for all axes."""
    if not ceil_mode:
        return "valid"
    wanted = set()
    for n, k, s, p in zip(sizes, kernel, strides, pad):
        floor, full, onnx_ceil = pool_windows(n, k, s, p)
        if floor != full:
            wanted.add("full" if onnx_ceil == full else "valid")
    if len(wanted) > 1:
        raise ctx.fail(f"ceil_mode=1 gives windows no single MXNet pooling convention gives for input "
                       f"{tuple(sizes)}, kernel {kernel}, strides {strides}, pads {pad}")
    return wanted.pop() if wanted else "valid"


def _pool(kind):
    def convert(ctx, node, attrs):
        if len([o for o in node.output if o]) > 1:
            raise ctx.fail("MaxPool's Indices output has no MXNet translation")
        x = ctx.tensor(node.input[0])
        kernel = tuple(attrs["kernel_shape"])
        nd = len(kernel)
        if any(d != 1 for d in attrs.get("dilations", (1,) * nd)) or attrs.get("storage_order", 0):
            raise ctx.fail("dilated pooling / column-major indices have no MXNet translation")
        strides = tuple(attrs.get("strides", (1,) * nd))
        pad = explicit_pads(ctx, attrs, x.shape, kernel, strides, (1,) * nd)
        a = dict(kernel=kernel, stride=strides, pad=pad, pool_type=kind,
                 pooling_convention=_convention(ctx, x.shape[2:], kernel, strides, pad, attrs.get("ceil_mode", 0)))
        if kind == "avg":
            a["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        return ctx.emit("Pooling", [x], a)
    return convert


CONVERTERS["MaxPool"] = _pool("max")
CONVERTERS["AveragePool"] = _pool("avg")


@converts("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, node, attrs):
    x = ctx.tensor(node.input[0])
    return ctx.emit("Pooling", [x], dict(kernel=(1,) * (x.ndim - 2), global_pool=True,
                                         pool_type="avg" if node.op_type == "GlobalAveragePool" else "max"))
