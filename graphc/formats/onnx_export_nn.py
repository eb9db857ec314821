"""ONNX translations of graphc's layer operators: convolution, dense, normalisation, activation,
pooling and MXNet's fused RNN. See `onnx_export_table` for the contract every translation
keeps. Never imports a backend.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.declarations.rnn import GATES, param_layout

from .onnx_common import pool_windows
from .onnx_export_table import converts, input_names as _ins, single as _single


def _spatial(attr, nd, default):
    return list(attr) if attr else [default] * nd


def _channels_first(ctx, node, nd):
    layout = node.attrs.get("layout")
    if layout not in (None, "NCW", "NCHW", "NCDHW"):
        raise ctx.fail(node, f"layout={layout!r}: ONNX convolutions and pools take channels-first data only")


# -- convolution, dense, normalisation ---------------------------------------------------------------
@converts("Convolution")
def _convolution(ctx, node):
    nd = len(node.attrs["kernel"])
    _channels_first(ctx, node, nd)
    pad = _spatial(node.attrs["pad"], nd, 0)
    return _single(ctx, node, "Conv", _ins(ctx, node), kernel_shape=list(node.attrs["kernel"]),
                   strides=_spatial(node.attrs["stride"], nd, 1), dilations=_spatial(node.attrs["dilate"], nd, 1),
                   pads=pad + pad, group=node.attrs["num_group"])


@converts("Deconvolution")
def _deconvolution(ctx, node):
    nd = len(node.attrs["kernel"])
    _channels_first(ctx, node, nd)
    if node.attrs["target_shape"]:
        raise ctx.fail(node, "target_shape: MXNet derives the padding from it in its own way; export "
                             "the equivalent pad/adj instead")
    pad = _spatial(node.attrs["pad"], nd, 0)
    return _single(ctx, node, "ConvTranspose", _ins(ctx, node), kernel_shape=list(node.attrs["kernel"]),
                   strides=_spatial(node.attrs["stride"], nd, 1), dilations=_spatial(node.attrs["dilate"], nd, 1),
                   pads=pad + pad, output_padding=_spatial(node.attrs["adj"], nd, 0), group=node.attrs["num_group"])


@converts("FullyConnected")
def _fully_connected(ctx, node):
    x, w = ctx.input(node.inputs[0], node), ctx.input(node.inputs[1], node)
    bias = [] if node.attrs["no_bias"] else [ctx.input(node.inputs[2], node)]
    ndim = len(ctx.shape(node.inputs[0]))
    names = ctx.result_names(node)
    if node.attrs["flatten"] or ndim == 2:
        if ndim != 2:
            x = ctx.emit("Flatten", [x], hint=node.name, axis=1)[0]
        ctx.emit("Gemm", [x, w] + bias, [names[0]], transB=1)
        return names
    wt = ctx.emit("Transpose", [w], hint=node.name, perm=[1, 0])[0]
    if not bias:
        ctx.emit("MatMul", [x, wt], [names[0]])
        return names
    y = ctx.emit("MatMul", [x, wt], hint=node.name)[0]
    ctx.emit("Add", [y, bias[0]], [names[0]])
    return names


@converts("BatchNorm")
def _batch_norm(ctx, node):
    if node.attrs["axis"] not in (1, 1 - len(ctx.shape(node.inputs[0]))):
        raise ctx.fail(node, f"axis={node.attrs['axis']}: ONNX BatchNormalization normalises axis 1 only")
    x, gamma, beta, mean, var = _ins(ctx, node)
    if node.attrs["fix_gamma"]:   # MXNet then ignores gamma's values and scales by 1
        t = ctx.type_of(node.inputs[1])
        gamma = ctx.add_initializer(np.ones(t.shape, t.dtype), f"{node.name}_fixed_gamma")
    return _single(ctx, node, "BatchNormalization", [x, gamma, beta, mean, var], epsilon=float(node.attrs["eps"]))


@converts("InstanceNorm")
def _instance_norm(ctx, node):
    return _single(ctx, node, "InstanceNormalization", _ins(ctx, node), epsilon=float(node.attrs["eps"]))


@converts("LayerNorm")
def _layer_norm(ctx, node):
    """Opset 13 has no LayerNormalization: (x - mean) / sqrt(var + eps) * gamma + beta."""
    x, gamma, beta = _ins(ctx, node)
    shape = ctx.shape(node.inputs[0])
    axis = node.attrs["axis"] % len(shape)
    h, dtype = node.name, ctx.type_of(node.inputs[0]).dtype
    mean = ctx.emit("ReduceMean", [x], hint=h, axes=[axis], keepdims=1)[0]
    d = ctx.emit("Sub", [x, mean], hint=h)[0]
    var = ctx.emit("ReduceMean", [ctx.emit("Mul", [d, d], hint=h)[0]], hint=h, axes=[axis], keepdims=1)[0]
    std = ctx.emit("Sqrt", [ctx.emit("Add", [var, ctx.scalar(node.attrs["eps"], dtype, f"{h}_eps")], hint=h)[0]],
                   hint=h)[0]
    y = ctx.emit("Div", [d, std], hint=h)[0]
    if axis != len(shape) - 1:   # gamma/beta (C,) must line up with `axis`
        trailing = ctx.ints([shape[axis]] + [1] * (len(shape) - 1 - axis), f"{h}_param_shape")
        gamma = ctx.emit("Reshape", [gamma, trailing], hint=h)[0]
        beta = ctx.emit("Reshape", [beta, trailing], hint=h)[0]
    names = ctx.result_names(node)
    ctx.emit("Add", [ctx.emit("Mul", [y, gamma], hint=h)[0], beta], [names[0]])
    return [names[0]] + [None] * (len(names) - 1)


# -- activations ---------------------------------------------------------------------------------------
_ACTIVATION = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus", "softsign": "Softsign"}


@converts("Activation")
def _activation(ctx, node):
    kind = node.attrs["act_type"]
    if kind not in _ACTIVATION:
        raise ctx.fail(node, f"act_type={kind!r} has no ONNX operator (graphc translates {sorted(_ACTIVATION)})")
    return _single(ctx, node, _ACTIVATION[kind], _ins(ctx, node))


_SELU_ALPHA, _SELU_GAMMA = 1.6732632423543772, 1.0507009873554805   # MXNet's constants


@converts("LeakyReLU")
def _leaky_relu(ctx, node):
    kind, ins = node.attrs["act_type"], _ins(ctx, node)
    if kind == "leaky":
        return _single(ctx, node, "LeakyRelu", ins[:1], alpha=float(node.attrs["slope"]))
    if kind == "rrelu":   # inference: the mean of the random slope's range
        return _single(ctx, node, "LeakyRelu", ins[:1],
                       alpha=float(node.attrs["lower_bound"] + node.attrs["upper_bound"]) / 2)
    if kind == "elu":
        return _single(ctx, node, "Elu", ins[:1], alpha=float(node.attrs["slope"]))
    if kind == "selu":
        return _single(ctx, node, "Selu", ins[:1], alpha=_SELU_ALPHA, gamma=_SELU_GAMMA)
    if kind == "prelu":   # gamma (C,) scales channel axis 1; ONNX broadcasts from the right
        ndim = len(ctx.shape(node.inputs[0]))
        slope = ins[1]
        if ndim > 2:
            c = ctx.shape(node.inputs[1])[0]
            slope = ctx.emit("Reshape", [slope, ctx.ints([c] + [1] * (ndim - 2), f"{node.name}_slope_shape")],
                             hint=node.name)[0]
        return _single(ctx, node, "PRelu", [ins[0], slope])
    if kind == "gelu":    # erf form, as MXNet computes it
        x, h, dtype = ins[0], node.name, ctx.type_of(node.inputs[0]).dtype
        e = ctx.emit("Erf", [ctx.emit("Div", [x, ctx.scalar(np.sqrt(2.0), dtype, f"{h}_sqrt2")], hint=h)[0]], hint=h)[0]
        half = ctx.emit("Mul", [x, ctx.scalar(0.5, dtype, f"{h}_half")], hint=h)[0]
        one_plus = ctx.emit("Add", [e, ctx.scalar(1.0, dtype, f"{h}_one")], hint=h)[0]
        return _single(ctx, node, "Mul", [half, one_plus])
    raise ctx.fail(node, f"act_type={kind!r} has no ONNX translation")


# -- pooling ------------------------------------------------------------------------------------------
@converts("Pooling")
def _pooling(ctx, node):
    a = node.attrs
    nd = len(ctx.shape(node.inputs[0])) - 2
    _channels_first(ctx, node, nd)
    kind, x = a["pool_type"], ctx.input(node.inputs[0], node)
    if a["global_pool"]:
        if kind == "max":
            return _single(ctx, node, "GlobalMaxPool", [x])
        if kind == "avg":
            return _single(ctx, node, "GlobalAveragePool", [x])
        if kind == "lp":
            return _single(ctx, node, "GlobalLpPool", [x], p=int(a["p_value"]))
        area = float(np.prod(ctx.shape(node.inputs[0])[2:]))
        avg = ctx.emit("GlobalAveragePool", [x], hint=node.name)[0]
        return _single(ctx, node, "Mul", [avg, ctx.scalar(area, node.types[0].dtype, f"{node.name}_area")])
    if a["pooling_convention"] not in ("valid", "full"):
        raise ctx.fail(node, f"pooling_convention={a['pooling_convention']!r} has no ONNX translation")
    pad = _spatial(a["pad"], nd, 0)
    if a["pooling_convention"] == "full":
        sizes = ctx.shape(node.inputs[0])[2:]
        for n, k, s, p in zip(sizes, a["kernel"], _spatial(a["stride"], nd, 1), pad):
            _, full, onnx_ceil = pool_windows(n, k, s, p)
            if onnx_ceil != full:
                raise ctx.fail(node, f"pooling_convention='full' keeps a last window that lies wholly in the "
                                     f"padding (input {tuple(sizes)}); ONNX's ceil_mode drops it")
    geometry = dict(kernel_shape=list(a["kernel"]), strides=_spatial(a["stride"], nd, 1), pads=pad + pad,
                    ceil_mode=int(a["pooling_convention"] == "full"))
    if kind == "max":
        return _single(ctx, node, "MaxPool", [x], **geometry)
    if kind == "avg":
        return _single(ctx, node, "AveragePool", [x], count_include_pad=int(a["count_include_pad"] is not False),
                       **geometry)
    if a["pooling_convention"] != "valid":
        raise ctx.fail(node, f"pool_type={kind!r} with pooling_convention='full' has no ONNX translation")
    if kind == "lp":
        return _single(ctx, node, "LpPool", [x], p=int(a["p_value"]),
                       **{k: v for k, v in geometry.items() if k != "ceil_mode"})
    avg = ctx.emit("AveragePool", [x], hint=node.name, count_include_pad=1, **geometry)[0]
    area = float(np.prod(a["kernel"]))
    return _single(ctx, node, "Mul", [avg, ctx.scalar(area, node.types[0].dtype, f"{node.name}_area")])


@converts("UpSampling")
def _upsampling(ctx, node):
    if node.attrs["sample_type"] != "nearest" or len(node.inputs) != 1:
        raise ctx.fail(node, "only single-input nearest UpSampling has an ONNX translation")
    s = float(node.attrs["scale"])
    scales = ctx.add_initializer(np.asarray([1, 1, s, s], np.float32), f"{node.name}_scales")
    return _single(ctx, node, "Resize", [ctx.input(node.inputs[0], node), "", scales], mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")


# -- recurrent layers ---------------------------------------------------------------------------------
# ONNX gate order from MXNet's: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_relu": [0], "rnn_tanh": [0]}
_ONNX_RNN = {"lstm": "LSTM", "gru": "GRU", "rnn_relu": "RNN", "rnn_tanh": "RNN"}


def _gates(array, mode):
    blocks = np.split(array, GATES[mode], axis=0)
    return np.concatenate([blocks[i] for i in _GATE_ORDER[mode]], axis=0)


@converts("RNN")
def _rnn(ctx, node):
    """MXNet's fused RNN as one ONNX LSTM/GRU/RNN node per layer; the packed parameter vector
    must be known at export time (Gluon's layers fold to one)."""
    a = node.attrs
    mode, layers, hidden = a["mode"], a["num_layers"], a["state_size"]
    if a["projection_size"] or a["lstm_state_clip_min"] is not None or a["use_sequence_length"]:
        raise ctx.fail(node, "projection_size, lstm_state_clip_* and use_sequence_length have no ONNX translation")
    params = ctx.const(node.inputs[1])
    if params is None:
        raise ctx.fail(node, "the parameter vector is computed from data inputs; ONNX needs it as weights")
    d = 2 if a["bidirectional"] else 1
    t, n, c = ctx.shape(node.inputs[0])
    layout = param_layout(mode, layers, d, c, hidden)
    h = node.name
    x = ctx.input(node.inputs[0], node)
    state = ctx.input(node.inputs[2], node)
    cell = ctx.input(node.inputs[3], node) if mode == "lstm" else None
    ys_h, ys_c = [], []
    extra = {"linear_before_reset": 1} if mode == "gru" else {}
    if mode in ("rnn_relu", "rnn_tanh"):
        extra["activations"] = ["Relu" if mode == "rnn_relu" else "Tanh"] * d
    for layer in range(layers):
        entries = layout[layer * d:(layer + 1) * d]

        def piece(entry, key):
            off, shape = entry[key]
            return params[off:off + int(np.prod(shape))].reshape(shape)
        w = np.stack([_gates(piece(e, "wx"), mode) for e in entries])
        r = np.stack([_gates(piece(e, "wh"), mode) for e in entries])
        b = np.stack([np.concatenate([_gates(piece(e, "bx"), mode), _gates(piece(e, "bh"), mode)]) for e in entries])
        rows = [ctx.ints([layer * d], f"{h}_l{layer}_s"), ctx.ints([(layer + 1) * d], f"{h}_l{layer}_e")]
        h0 = ctx.emit("Slice", [state] + rows, hint=h)[0]
        ins = [x, ctx.add_initializer(w, f"{h}_l{layer}_W"), ctx.add_initializer(r, f"{h}_l{layer}_R"),
               ctx.add_initializer(b, f"{h}_l{layer}_B"), "", h0]
        if mode == "lstm":
            ins.append(ctx.emit("Slice", [cell] + rows, hint=h)[0])
        outs = ctx.emit(_ONNX_RNN[mode], ins, 3 if mode == "lstm" else 2, hint=f"{h}_l{layer}",
                        hidden_size=hidden, direction="bidirectional" if d == 2 else "forward", **extra)
        y = outs[0]   # (T, D, N, H) -> (T, N, D*H)
        if d == 1:
            x = ctx.emit("Squeeze", [y, ctx.ints([1], f"{h}_axis1")], hint=h)[0]
        else:
            moved = ctx.emit("Transpose", [y], hint=h, perm=[0, 2, 1, 3])[0]
            x = ctx.emit("Reshape", [moved, ctx.ints([0, 0, -1], f"{h}_merge")], hint=h)[0]
        ys_h.append(outs[1])
        if mode == "lstm":
            ys_c.append(outs[2])
    names = ctx.result_names(node)
    ctx.emit("Identity", [x], [names[0]])
    result = [names[0]] + [None] * (len(names) - 1)
    if a["state_outputs"]:
        ctx.emit("Concat", ys_h, [names[1]], axis=0)
        result[1] = names[1]
        if mode == "lstm":
            ctx.emit("Concat", ys_c, [names[2]], axis=0)
            result[2] = names[2]
    return result
