"""Convolution and pooling layers (MXNet 1.x `gluon.nn` names, defaults and parameter names).

Conv1D/2D/3D call the `Convolution` operator, the transposed versions `Deconvolution`, the pools
`Pooling`, ReflectionPad2D `Pad`; attributes are MXNet's (kernel, stride, dilate, pad,
num_filter, num_group, no_bias, layout, adj), so an exported graph reads like MXNet's. Weights
are `conv0_weight`/`conv0_bias` (transposed convolutions are `conv` too, as in MXNet). With
in_channels=0 the weight's input-channel dimension waits for the first input (`infer_shape`).

Layouts are MXNet 1.9's: channels first by default; 'NHWC'/'NDHWC' for the 2-D/3-D convolutions
(weight (channels, *kernel, in_channels/groups)) and 'NWC'/'NHWC'/'NDHWC' for every pool. The
operators carry the layout; the compiler turns channels-last nodes into channels-first ones
between transposes (passes/channels_last.py).
"""
from __future__ import annotations

from numbers import Integral

from ..block import HybridBlock
from .activations import Activation

__all__ = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
           "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalAvgPool1D", "GlobalAvgPool2D",
           "GlobalAvgPool3D", "ReflectionPad2D"]


def _tuple(value, n, what):
    """An int broadcast to n dims, or a sequence of exactly n ints."""
    if isinstance(value, Integral):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{what} must be an int or a tuple of {n} ints, got {value}")
    return value


class _Conv(HybridBlock):
    """Shared by every (transposed) convolution: weight shape from the layout, deferred input
    channels, optional fused activation."""

    def __init__(self, channels, kernel_size, strides, padding, dilation, groups, layout, in_channels=0,
                 activation=None, use_bias=True, weight_initializer=None, bias_initializer="zeros",
                 op_name="Convolution", adj=None, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        ndim = len(layout) - 2
        kernel_size = _tuple(kernel_size, ndim, "kernel_size")
        with self.name_scope():
            self._channels = channels
            self._in_channels = in_channels
            self._groups = groups
            self._layout = layout
            self._op_name = op_name
            self._kwargs = {
                "kernel": kernel_size, "stride": _tuple(strides, ndim, "strides"),
                "dilate": _tuple(dilation, ndim, "dilation"), "pad": _tuple(padding, ndim, "padding"),
                "num_filter": channels, "num_group": groups, "no_bias": not use_bias, "layout": layout}
            if adj is not None:
                self._kwargs["adj"] = _tuple(adj, ndim, "output_padding")
            self.weight = self.params.get("weight", shape=self._weight_shape(in_channels),
                                          init=weight_initializer, allow_deferred_init=True)
            if use_bias:
                self.bias = self.params.get("bias", shape=(channels,), init=bias_initializer,
                                            allow_deferred_init=True)
            else:
                self.bias = None
            self.act = Activation(activation, prefix=activation + "_") if activation is not None else None

    def _weight_shape(self, in_channels):
        """MXNet's weight layout: Convolution (out, in/groups, *kernel), Deconvolution
        (in, out/groups, *kernel); channel-last layouts put the input channels last."""
        kernel = self._kwargs["kernel"]
        if self._op_name == "Convolution":
            out_c, in_c = self._channels, in_channels // self._groups
        else:
            out_c, in_c = in_channels, self._channels // self._groups
        if self._layout.index("C") == 1:
            return (out_c, in_c) + kernel
        return (out_c,) + kernel + (in_c,)

    def infer_shape(self, x, *args):
        in_channels = int(x.shape[self._layout.index("C")])
        if in_channels % self._groups:
            raise ValueError(f"{self.name}: {in_channels} input channels do not split into "
                             f"{self._groups} groups (input shape {tuple(x.shape)})")
        self.weight.shape = self._weight_shape(in_channels)

    def _alias(self):
        return "conv"

    def hybrid_forward(self, F, x, weight, bias=None):
        op = getattr(F, self._op_name)
        if bias is None:
            out = op(x, weight, name=self.prefix + "fwd", **self._kwargs)
        else:
            out = op(x, weight, bias, name=self.prefix + "fwd", **self._kwargs)
        if self.act is not None:
            out = self.act(out)
        return out

    def __repr__(self):
        k = self._kwargs
        s = f"{self.__class__.__name__}({{in}} -> {self._channels}, kernel_size={k['kernel']}, stride={k['stride']}"
        if any(k["pad"]):
            s += f", padding={k['pad']}"
        if any(d != 1 for d in k["dilate"]):
            s += f", dilation={k['dilate']}"
        if "adj" in k and any(k["adj"]):
            s += f", output_padding={k['adj']}"
        if self._groups != 1:
            s += f", groups={self._groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.act is not None:
            s += f", {self.act}"
        s += ")"
        return s.format(**{"in": self._known_in_channels()})

    def _known_in_channels(self):
        shape = self.weight.shape
        if self._op_name == "Deconvolution":
            n = shape[0]
        else:
            n = (shape[1] if self._layout.index("C") == 1 else shape[-1]) * self._groups
        return n or None


def _conv_class(name, ndim, layouts, transpose, doc):
    """MXNet 1.9's layouts: channels first everywhere, channels last ('NHWC', 'NDHWC') for 2-D
    and 3-D only (its Convolution operator has no 'NWC')."""
    defaults = {"strides": (1,) * ndim, "padding": (0,) * ndim, "dilation": (1,) * ndim}
    layout = layouts[0]

    if not transpose:
        def __init__(self, channels, kernel_size, strides=defaults["strides"], padding=defaults["padding"],
                     dilation=defaults["dilation"], groups=1, layout=layout, activation=None, use_bias=True,
                     weight_initializer=None, bias_initializer="zeros", in_channels=0, **kwargs):
            _check_layout(name, layout, layouts)
            _Conv.__init__(self, channels, kernel_size, strides, padding, dilation, groups, layout,
                           in_channels, activation, use_bias, weight_initializer, bias_initializer, **kwargs)
    else:
        def __init__(self, channels, kernel_size, strides=defaults["strides"], padding=defaults["padding"],
                     output_padding=(0,) * ndim, dilation=defaults["dilation"], groups=1, layout=layout,
                     activation=None, use_bias=True, weight_initializer=None, bias_initializer="zeros",
                     in_channels=0, **kwargs):
            _check_layout(name, layout, layouts)
            _Conv.__init__(self, channels, kernel_size, strides, padding, dilation, groups, layout,
                           in_channels, activation, use_bias, weight_initializer, bias_initializer,
                           op_name="Deconvolution", adj=output_padding, **kwargs)
    return type(name, (_Conv,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


_CONV_DOC = """{n}D convolution (operator `{op}`), MXNet 1.x signature: channels, kernel_size,
strides, padding, {extra}dilation, groups, layout ({layout}), activation, use_bias,
weight_initializer, bias_initializer, in_channels (0 = infer from the first input)."""

Conv1D = _conv_class("Conv1D", 1, ("NCW",), False,
                     _CONV_DOC.format(n=1, op="Convolution", extra="", layout="'NCW' only, as in MXNet"))
Conv2D = _conv_class("Conv2D", 2, ("NCHW", "NHWC"), False,
                     _CONV_DOC.format(n=2, op="Convolution", extra="", layout="'NCHW' or 'NHWC'"))
Conv3D = _conv_class("Conv3D", 3, ("NCDHW", "NDHWC"), False,
                     _CONV_DOC.format(n=3, op="Convolution", extra="", layout="'NCDHW' or 'NDHWC'"))
Conv1DTranspose = _conv_class("Conv1DTranspose", 1, ("NCW",), True, _CONV_DOC.format(
    n=1, op="Deconvolution", extra="output_padding, ", layout="'NCW' only, as in MXNet"))
Conv2DTranspose = _conv_class("Conv2DTranspose", 2, ("NCHW", "NHWC"), True, _CONV_DOC.format(
    n=2, op="Deconvolution", extra="output_padding, ", layout="'NCHW' or 'NHWC'"))
Conv3DTranspose = _conv_class("Conv3DTranspose", 3, ("NCDHW", "NDHWC"), True, _CONV_DOC.format(
    n=3, op="Deconvolution", extra="output_padding, ", layout="'NCDHW' or 'NDHWC'"))


# -- pooling ---------------------------------------------------------------------------------------
class _Pooling(HybridBlock):
    """One `Pooling` call; ceil_mode=True is MXNet's pooling_convention='full'."""

    def __init__(self, pool_size, strides, padding, ceil_mode, global_pool, pool_type, layout,
                 count_include_pad=None, **kwargs):
        super().__init__(**kwargs)
        ndim = len(layout) - 2
        pool_size = _tuple(pool_size, ndim, "pool_size")
        strides = pool_size if strides is None else _tuple(strides, ndim, "strides")
        self._kwargs = {"kernel": pool_size, "stride": strides, "pad": _tuple(padding, ndim, "padding"),
                        "global_pool": global_pool, "pool_type": pool_type, "layout": layout,
                        "pooling_convention": "full" if ceil_mode else "valid"}
        if count_include_pad is not None:
            self._kwargs["count_include_pad"] = count_include_pad

    def _alias(self):
        return "pool"

    def hybrid_forward(self, F, x):
        return F.Pooling(x, name=self.prefix + "fwd", **self._kwargs)

    def __repr__(self):
        k = self._kwargs
        return (f"{self.__class__.__name__}(size={k['kernel']}, stride={k['stride']}, padding={k['pad']}, "
                f"ceil_mode={k['pooling_convention'] == 'full'}, global_pool={k['global_pool']}, "
                f"pool_type={k['pool_type']}, layout={k['layout']})")


def _check_layout(cls, layout, allowed):
    if layout not in allowed:
        raise ValueError(f"{cls}: layout={layout!r} is not supported; MXNet 1.x's {cls} accepts "
                         f"{' or '.join(map(repr, allowed))}")


class MaxPool1D(_Pooling):
    """Max pooling over (N, C, W) (or 'NWC')."""

    def __init__(self, pool_size=2, strides=None, padding=0, layout="NCW", ceil_mode=False, **kwargs):
        _check_layout("MaxPool1D", layout, ("NCW", "NWC"))
        super().__init__(pool_size, strides, padding, ceil_mode, False, "max", layout, **kwargs)


class MaxPool2D(_Pooling):
    """Max pooling over (N, C, H, W) (or 'NHWC')."""

    def __init__(self, pool_size=(2, 2), strides=None, padding=0, layout="NCHW", ceil_mode=False, **kwargs):
        _check_layout("MaxPool2D", layout, ("NCHW", "NHWC"))
        super().__init__(pool_size, strides, padding, ceil_mode, False, "max", layout, **kwargs)


class MaxPool3D(_Pooling):
    """Max pooling over (N, C, D, H, W) (or 'NDHWC')."""

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding=0, ceil_mode=False, layout="NCDHW",
                 **kwargs):
        _check_layout("MaxPool3D", layout, ("NCDHW", "NDHWC"))
        super().__init__(pool_size, strides, padding, ceil_mode, False, "max", layout, **kwargs)


class AvgPool1D(_Pooling):
    """Average pooling over (N, C, W); count_include_pad counts padded zeros in the mean."""

    def __init__(self, pool_size=2, strides=None, padding=0, layout="NCW", ceil_mode=False,
                 count_include_pad=True, **kwargs):
        _check_layout("AvgPool1D", layout, ("NCW", "NWC"))
        super().__init__(pool_size, strides, padding, ceil_mode, False, "avg", layout, count_include_pad,
                         **kwargs)


class AvgPool2D(_Pooling):
    """Average pooling over (N, C, H, W); count_include_pad counts padded zeros in the mean."""

    def __init__(self, pool_size=(2, 2), strides=None, padding=0, ceil_mode=False, layout="NCHW",
                 count_include_pad=True, **kwargs):
        _check_layout("AvgPool2D", layout, ("NCHW", "NHWC"))
        super().__init__(pool_size, strides, padding, ceil_mode, False, "avg", layout, count_include_pad,
                         **kwargs)


class AvgPool3D(_Pooling):
    """Average pooling over (N, C, D, H, W); count_include_pad counts padded zeros in the mean."""

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding=0, ceil_mode=False, layout="NCDHW",
                 count_include_pad=True, **kwargs):
        _check_layout("AvgPool3D", layout, ("NCDHW", "NDHWC"))
        super().__init__(pool_size, strides, padding, ceil_mode, False, "avg", layout, count_include_pad,
                         **kwargs)


def _global_pool(name, ndim, pool_type, layouts):
    def __init__(self, layout=layouts[0], **kwargs):
        _check_layout(name, layout, layouts)
        _Pooling.__init__(self, (1,) * ndim, None, 0, True, True, pool_type, layout, **kwargs)
    doc = f"Global {'max' if pool_type == 'max' else 'average'} pooling to (N, C{', 1' * ndim})."
    return type(name, (_Pooling,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


GlobalMaxPool1D = _global_pool("GlobalMaxPool1D", 1, "max", ("NCW", "NWC"))
GlobalMaxPool2D = _global_pool("GlobalMaxPool2D", 2, "max", ("NCHW", "NHWC"))
GlobalMaxPool3D = _global_pool("GlobalMaxPool3D", 3, "max", ("NCDHW", "NDHWC"))
GlobalAvgPool1D = _global_pool("GlobalAvgPool1D", 1, "avg", ("NCW", "NWC"))
GlobalAvgPool2D = _global_pool("GlobalAvgPool2D", 2, "avg", ("NCHW", "NHWC"))
GlobalAvgPool3D = _global_pool("GlobalAvgPool3D", 3, "avg", ("NCDHW", "NDHWC"))


class ReflectionPad2D(HybridBlock):
    """Pads H and W of an NCHW input by reflection: padding is an int (all four sides) or
    MXNet's 8-tuple pad_width."""

    def __init__(self, padding=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, Integral):
            padding = (0, 0, 0, 0, padding, padding, padding, padding)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 8:
            raise ValueError(f"ReflectionPad2D: padding must be an int or an 8-tuple pad_width, got {padding}")
        self._padding = padding

    def hybrid_forward(self, F, x):
        return F.Pad(x, mode="reflect", pad_width=self._padding, name=self.prefix + "fwd")
