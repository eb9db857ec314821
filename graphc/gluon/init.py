"""Weight initializers (`mx.init`): MXNet 1.9.1's Initializer protocol and its family (Zero,
One, Constant, Uniform, Normal, Orthogonal, Xavier, MSRAPrelu, Bilinear, LSTMBias, FusedRNN,
and the combinators Mixed and Load).

An initializer is called as `init(desc, arr)` where `desc` is an InitDesc (a str: the parameter
name, plus attrs). Gluon parameters pass `attrs={'__init__': <their own initializer>}`, and
then that initializer's `_init_weight` fills the array whatever the name; without `__init__`
the name's suffix picks the rule (weight / bias / gamma / beta / min / max), as in MXNet's
module API. One addition: MXNet's BatchNorm gives its moving_mean/moving_var variables an
`__init__` attribute, graphc's symbols do not, so here the names moving_* / running_* pick
zero / one themselves. A plain str instead of an InitDesc takes MXNet's older name rules
(`_legacy_init`: upsampling* is bilinear, stn_loc* an identity transform), as MXNet does.
Random draws come from graphc.random's generator, so `mx.random.seed(n)` makes them repeatable.
Arrays are filled in place (`arr._data`), never replaced: a Parameter's data keeps its identity.
"""
from __future__ import annotations

import json
import logging
import re
import warnings

import numpy as np

from .. import random as _random

__all__ = ["InitDesc", "Initializer", "register", "alias", "create", "Zero", "One", "Constant",
           "Uniform", "Normal", "Orthogonal", "Xavier", "MSRAPrelu", "Bilinear", "LSTMBias", "FusedRNN", "Mixed",
           "Load"]

_REGISTRY: dict[str, type] = {}


def register(klass):
    """Register an Initializer subclass under its lower-cased class name (for `create('xavier')`)."""
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def alias(*aliases):
    def reg(klass):
        for a in aliases:
            _REGISTRY[a.lower()] = klass
        return klass
    return reg


def create(*args, **kwargs):
    """An Initializer from an instance (returned as is), a registered name ('xavier'), a dict
    {'initializer': name, **kwargs}, or JSON: its dumps() '[name, kwargs]' or that dict.
    The first argument is positional only: FusedRNN has a keyword argument named `init`."""
    if args:
        init, args = args[0], args[1:]
    else:
        init = kwargs.pop("initializer")
    if isinstance(init, Initializer):
        if args or kwargs:
            raise ValueError(f"initializer.create: {init!r} is already an Initializer; extra arguments "
                             f"{args or ''}{kwargs or ''} cannot apply to it")
        return init
    if isinstance(init, type) and issubclass(init, Initializer):
        return init(*args, **kwargs)
    if isinstance(init, dict):
        return create(**init)
    if isinstance(init, str):
        text = init.strip()
        if text.startswith("["):
            name, kw = json.loads(text)
            return create(name, **kw)
        if text.startswith("{"):
            return create(**json.loads(text))
        klass = _REGISTRY.get(text.lower())
        if klass is None:
            raise ValueError(f"unknown initializer {init!r}; registered: {sorted(_REGISTRY)}")
        return klass(*args, **kwargs)
    raise TypeError(f"cannot make an initializer from {init!r}")


class InitDesc(str):
    """A parameter name with its attributes (`__init__` names the parameter's own initializer)."""

    def __new__(cls, name, attrs=None, global_init=None):
        ret = super().__new__(cls, name)
        ret.attrs = attrs or {}
        ret.global_init = global_init
        return ret


def _fill(arr, value):
    """Write `value` (scalar or array) into arr in place; arr is an NDArray or numpy array."""
    data = arr._data if hasattr(arr, "_data") else arr
    data[...] = value


def _shape(arr):
    return tuple(arr.shape)


def _dtype(arr):
    data = arr._data if hasattr(arr, "_data") else arr
    return data.dtype


class Initializer:
    """Base class: `__call__(desc, arr)` dispatches to `_init_weight`, `_init_bias`, ..."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._verbose = False
        self._print_func = None

    def set_verbosity(self, verbose=False, print_func=None):
        """Log each initialized array with print_func(arr) (default: its root mean square)."""
        self._verbose = verbose
        self._print_func = print_func or _root_mean_square
        return self

    def _verbose_print(self, desc, init, arr):
        if self._verbose and self._print_func:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self):
        """JSON `[name, kwargs]`, the form MXNet stores in a variable's `__init__` attribute."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __repr__(self):
        kw = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{self.__class__.__name__}({kw})"

    def __eq__(self, other):
        if not isinstance(other, Initializer):
            return NotImplemented
        return type(self) is type(other) and self._kwargs == other._kwargs

    __hash__ = object.__hash__

    def __call__(self, desc, arr):
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")
        if init:
            # the parameter's own initializer: its weight rule fills the array whatever the name
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        if desc.endswith("weight"):
            self._init_weight(desc, arr)
            self._verbose_print(desc, "weight", arr)
        elif desc.endswith("bias"):
            self._init_bias(desc, arr)
        elif desc.endswith("gamma"):
            self._init_gamma(desc, arr)
        elif desc.endswith("beta"):
            self._init_beta(desc, arr)
        elif desc.endswith(("running_mean", "moving_mean", "moving_inv_var", "moving_avg", "min")):
            self._init_zero(desc, arr)
        elif desc.endswith(("running_var", "moving_var", "max")):
            self._init_one(desc, arr)
        elif desc.endswith("weight_quantize"):
            self._init_quantized_weight(desc, arr)
        elif desc.endswith("bias_quantize"):
            self._init_zero(desc, arr)
        else:
            self._init_default(desc, arr)

    def _legacy_init(self, name, arr):
        """MXNet's rules for a bare name (deprecated there too): checked in this order."""
        warnings.warn("Calling initializer with init(str, NDArray) has been deprecated. Please use "
                      "init(mx.init.InitDesc(...), NDArray) instead.", DeprecationWarning, stacklevel=3)
        if not isinstance(name, str):
            raise TypeError(f"initializer: name must be a str or InitDesc, got {type(name).__name__}")
        if name.startswith("upsampling"):
            _fill(arr, _bilinear_kernel(_shape(arr)))
        elif name.startswith("stn_loc") and name.endswith("weight"):
            self._init_zero(name, arr)
        elif name.startswith("stn_loc") and name.endswith("bias"):
            if _shape(arr) != (6,):
                raise ValueError(f"initializer: {name} is a spatial transformer's affine bias and must have shape "
                                 f"(6,), got {_shape(arr)}")
            _fill(arr, np.array([1.0, 0, 0, 0, 1.0, 0]))
        elif name.endswith("bias"):
            self._init_bias(name, arr)
        elif name.endswith("gamma"):
            self._init_gamma(name, arr)
        elif name.endswith("beta"):
            self._init_beta(name, arr)
        elif name.endswith("weight"):
            self._init_weight(name, arr)
        elif name.endswith(("moving_mean", "moving_inv_var", "moving_avg", "min")):
            self._init_zero(name, arr)
        elif name.endswith(("moving_var", "max")):
            self._init_one(name, arr)
        else:
            self._init_default(name, arr)

    # -- the rules ------------------------------------------------------------------------
    def _init_zero(self, _, arr):
        _fill(arr, 0.0)

    def _init_one(self, _, arr):
        _fill(arr, 1.0)

    def _init_bias(self, _, arr):
        _fill(arr, 0.0)

    def _init_gamma(self, _, arr):
        _fill(arr, 1.0)

    def _init_beta(self, _, arr):
        _fill(arr, 0.0)

    def _init_quantized_weight(self, _, arr):
        _fill(arr, _random.generator().integers(-127, 127, _shape(arr)).astype(np.int8))

    def _init_weight(self, name, arr):
        raise NotImplementedError(f"{type(self).__name__} must implement _init_weight")

    def _init_default(self, name, _):
        raise ValueError(
            f"Unknown initialization pattern for {name}. Default initialization is now limited to "
            '"weight", "bias", "gamma" (1.0), and "beta" (0.0). Please use mx.sym.Variable(init=mx.init.*) '
            "to set initialization pattern")


@register
@alias("zeros")
class Zero(Initializer):
    """Fills with 0."""

    def _init_weight(self, _, arr):
        _fill(arr, 0.0)


@register
@alias("ones")
class One(Initializer):
    """Fills with 1."""

    def _init_weight(self, _, arr):
        _fill(arr, 1.0)


@register
class Constant(Initializer):
    """Fills with `value` (a scalar, or an array broadcast to the parameter's shape); dumps()
    writes an array value as nested lists."""

    def __init__(self, value):
        value = value.asnumpy() if hasattr(value, "asnumpy") else value
        super().__init__(value=value.tolist() if isinstance(value, np.ndarray) else value)
        self.value = value

    def _init_weight(self, _, arr):
        _fill(arr, self.value)


@register
class Uniform(Initializer):
    """Draws from U(-scale, scale)."""

    def __init__(self, scale=0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _, arr):
        _fill(arr, _random.generator().uniform(-self.scale, self.scale, _shape(arr)).astype(_dtype(arr)))


@register
class Normal(Initializer):
    """Draws from N(0, sigma^2)."""

    def __init__(self, sigma=0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _, arr):
        _fill(arr, _random.generator().normal(0.0, self.sigma, _shape(arr)).astype(_dtype(arr)))


@register
class Orthogonal(Initializer):
    """A (scaled) orthogonal matrix from the SVD of a random one (Saxe et al., 2013)."""

    def __init__(self, scale=1.414, rand_type="uniform"):
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, _, arr):
        shape = _shape(arr)
        nout, nin = shape[0], int(np.prod(shape[1:]))
        rng = _random.generator()
        if self.rand_type == "uniform":
            tmp = rng.uniform(-1.0, 1.0, (nout, nin))
        elif self.rand_type == "normal":
            tmp = rng.normal(0.0, 1.0, (nout, nin))
        else:
            raise ValueError(f"Orthogonal: unknown rand_type {self.rand_type!r}; use 'uniform' or 'normal'")
        u, _, v = np.linalg.svd(tmp, full_matrices=False)
        res = u if u.shape == tmp.shape else v
        _fill(arr, (self.scale * res.reshape(shape)).astype(_dtype(arr)))


@register
class Xavier(Initializer):
    """Glorot: scale = sqrt(magnitude / factor), factor from fan-in/fan-out ('avg', 'in', 'out');
    uniform on [-scale, scale] or gaussian with std scale. Conv kernels count their window."""

    def __init__(self, rnd_type="uniform", factor_type="avg", magnitude=3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name, arr):
        shape = _shape(arr)
        if len(shape) < 2:
            raise ValueError(f"Xavier initializer cannot be applied to vector {name}. It requires at least 2D.")
        hw_scale = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * hw_scale, shape[0] * hw_scale
        if self.factor_type == "avg":
            factor = (fan_in + fan_out) / 2.0
        elif self.factor_type == "in":
            factor = fan_in
        elif self.factor_type == "out":
            factor = fan_out
        else:
            raise ValueError("Incorrect factor type")
        scale = np.sqrt(self.magnitude / factor)
        rng = _random.generator()
        if self.rnd_type == "uniform":
            value = rng.uniform(-scale, scale, shape)
        elif self.rnd_type == "gaussian":
            value = rng.normal(0.0, scale, shape)
        else:
            raise ValueError("Unknown random type")
        _fill(arr, value.astype(_dtype(arr)))


@register
class MSRAPrelu(Xavier):
    """He et al. 2015: gaussian Xavier with magnitude 2 / (1 + slope^2)."""

    def __init__(self, factor_type="avg", slope=0.25):
        magnitude = 2.0 / (1 + slope ** 2)
        super().__init__("gaussian", factor_type, magnitude)
        self._kwargs = {"factor_type": factor_type, "slope": slope}


def _bilinear_kernel(shape):
    """The (out, in, kh, kw) Deconvolution weight that upsamples by bilinear interpolation:
    every (out, in) pair gets the same separable tent of radius ceil(kw / 2)."""
    if len(shape) != 4:
        raise ValueError(f"Bilinear initializer needs a 4-D (out, in, height, width) weight, got shape {shape}")
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    tent_x = 1 - np.abs(np.arange(shape[3]) / f - c)
    tent_y = 1 - np.abs(np.arange(shape[2]) / f - c)
    return np.broadcast_to(np.outer(tent_y, tent_x), shape).astype(np.float32)


def _root_mean_square(arr):
    data = arr._data if hasattr(arr, "_data") else np.asarray(arr)
    return str(float(np.linalg.norm(data.ravel()) / np.sqrt(max(data.size, 1))))


@register
class Bilinear(Initializer):
    """Bilinear upsampling kernels (for Deconvolution)."""

    def _init_weight(self, _, arr):
        _fill(arr, _bilinear_kernel(_shape(arr)))


@register
class LSTMBias(Initializer):
    """Zero biases except the forget gate's (the second quarter), set to `forget_bias`."""

    def __init__(self, forget_bias=1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name, arr):
        data = arr._data if hasattr(arr, "_data") else arr
        data[...] = 0.0
        n = data.shape[0] // 4
        data[n:2 * n] = self.forget_bias


_GATES = {"rnn_relu": ("",), "rnn_tanh": ("",), "lstm": ("_i", "_f", "_c", "_o"), "gru": ("_r", "_z", "_o")}


def fused_rnn_pieces(flat, num_hidden, num_layers, mode, bidirectional):
    """name -> view of `flat` (MXNet's fused RNN parameter vector) for every gate's weight and
    bias: all weights first (layer by layer, direction l then r, i2h gates then h2h gates),
    then all biases in the same order. The input size is whatever makes the sizes add up."""
    if mode not in _GATES:
        raise ValueError(f"FusedRNN: mode must be one of {sorted(_GATES)}, got {mode!r}")
    gates, directions, h = _GATES[mode], ("l", "r") if bidirectional else ("l",), num_hidden
    b, m = len(directions), len(_GATES[mode])
    deeper = (num_layers - 1) * (h + b * h + 2)
    num_input, rest = divmod(flat.size, b * h * m)
    num_input -= deeper + h + 2
    if rest or num_input <= 0:
        raise ValueError(f"FusedRNN: a parameter vector of {flat.size} values does not fit {num_layers} "
                         f"{'bidirectional ' if bidirectional else ''}{mode} layer(s) of {h} hidden units")
    pieces, p = {}, 0

    def take(name, shape):
        nonlocal p
        size = int(np.prod(shape))
        pieces[name] = flat[p:p + size].reshape(shape)
        p += size

    for layer in range(num_layers):
        for d in directions:
            for g in gates:
                take(f"{d}{layer}_i2h{g}_weight", (h, b * h if layer else num_input))
            for g in gates:
                take(f"{d}{layer}_h2h{g}_weight", (h, h))
    for layer in range(num_layers):
        for d in directions:
            for group in ("i2h", "h2h"):
                for g in gates:
                    take(f"{d}{layer}_{group}{g}_bias", (h,))
    return pieces


@register
class FusedRNN(Initializer):
    """Initializes the single parameter vector of a fused RNN layer (the RNN operator) gate by
    gate, as if each gate's weight and bias were a parameter of its own: `init` (or, when None,
    the global initializer) fills each piece by its name's rule, and LSTM forget-gate biases
    (i2h and h2h both) get `forget_bias`."""

    def __init__(self, init, num_hidden, num_layers, mode, bidirectional=False, forget_bias=1.0):
        if isinstance(init, str):
            init = create(init)
        super().__init__(init=init.dumps() if init is not None else None, num_hidden=num_hidden,
                         num_layers=num_layers, mode=mode, bidirectional=bidirectional, forget_bias=forget_bias)
        self._init = init
        self._num_hidden = num_hidden
        self._num_layers = num_layers
        self._mode = mode
        self._bidirectional = bidirectional
        self._forget_bias = forget_bias

    def _init_weight(self, desc, arr):
        data = arr._data if hasattr(arr, "_data") else arr
        flat = np.zeros(data.size, dtype=data.dtype)
        global_init = getattr(desc, "global_init", None)
        for name, piece in fused_rnn_pieces(flat, self._num_hidden, self._num_layers, self._mode,
                                            self._bidirectional).items():
            if self._mode == "lstm" and name.endswith("_f_bias"):
                piece[...] = self._forget_bias
                continue
            init = self._init if self._init is not None else global_init
            if init is None:
                raise ValueError(f"FusedRNN for {desc}: no initializer for the pieces (init=None and no global "
                                 "initializer in the InitDesc)")
            init(InitDesc(name, global_init=global_init), piece)
        _fill(arr, flat.reshape(data.shape))


class Mixed:
    """Initialize each parameter with the first initializer whose regex matches its name."""

    def __init__(self, patterns, initializers):
        if len(patterns) != len(initializers):
            raise ValueError("Mixed: patterns and initializers must have the same length")
        self.map = list(zip([re.compile(p) for p in patterns], [create(i) for i in initializers]))

    def __call__(self, name, arr):
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        raise ValueError(f"Parameter name {name} did not match any pattern. Consider add a \".*\" pattern "
                         "at the and with default Initializer.")


class Load:
    """Initialize from a dict (or .params file) of arrays by name, falling back to `default_init`."""

    def __init__(self, param, default_init=None, verbose=False):
        if isinstance(param, str):
            from ..formats.mxnet_params import load_params
            param = load_params(param)
        self.param = {}
        for name, arr in param.items():
            if name.startswith(("arg:", "aux:")):
                name = name[4:]
            self.param[name] = arr.asnumpy() if hasattr(arr, "asnumpy") else np.asarray(arr)
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name, arr):
        if name in self.param:
            if tuple(arr.shape) != self.param[name].shape:
                raise ValueError(f"Load: parameter {name} cannot be initialized from loading: shape "
                                 f"{arr.shape} vs loaded {self.param[name].shape}")
            _fill(arr, self.param[name])
            if self.verbose:
                logging.info("Initialized %s by loading", name)
        else:
            if self.default_init is None:
                raise ValueError(f"Cannot Initialize {name}. Not found in loaded param and no default "
                                 "Initializer is provided.")
            self.default_init(name, arr)
            if self.verbose:
                logging.info("Initialized %s by default", name)
