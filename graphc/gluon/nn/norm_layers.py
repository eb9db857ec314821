"""Normalization layers and Embedding (MXNet 1.x `gluon.nn` names, defaults and parameters).

BatchNorm keeps its moving statistics in `running_mean`/`running_var`: Parameters with
grad_req='null' and differentiable=False (auxiliary states; exported as `aux:`). The
`BatchNorm` operator returns their new values as extra outputs that it declares it mutates
(OpDef.mutates), and eager calls and compiled blocks write them back, so this layer only
calls the operator. Channel counts left at 0 are inferred from the first input (`infer_shape`).
"""
from __future__ import annotations

import numpy as np

from ..block import HybridBlock

__all__ = ["BatchNorm", "LayerNorm", "InstanceNorm", "GroupNorm", "Embedding"]


def _visible(out):
    """The normalized data: operators with hidden extra outputs may hand back a tuple."""
    return out[0] if isinstance(out, (list, tuple)) else out


class _Normalization(HybridBlock):
    """What the normalization layers share: a `gamma` scale and a `beta` shift of `size`
    values (0: inferred from the channel axis at the first call), learned only when `scale`
    / `center` ask for it, and MXNet's repr."""

    def _scale_and_shift(self, size, scale, center, gamma_initializer, beta_initializer, **extra):
        self.gamma = self.params.get("gamma", grad_req="write" if scale else "null", shape=(size,),
                                     init=gamma_initializer, allow_deferred_init=True, **extra)
        self.beta = self.params.get("beta", grad_req="write" if center else "null", shape=(size,),
                                    init=beta_initializer, allow_deferred_init=True, **extra)

    def _per_channel(self):
        return (self.gamma, self.beta)

    def infer_shape(self, x, *args):
        channels = int(x.shape[self._axis])
        for p in self._per_channel():
            p.shape = (channels,)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self._kwargs.items())
        return f"{self.__class__.__name__}({args}, in_channels={self.gamma.shape[0]})"


class BatchNorm(_Normalization):
    """Batch normalization over axis `axis` (the channel axis). In training (autograd.record())
    it normalizes with the batch statistics and updates running_mean/running_var with
    `momentum`; otherwise (or with use_global_stats) it uses the running statistics.
    scale=False fixes gamma at 1 (MXNet's fix_gamma), center=False fixes beta at 0."""

    def __init__(self, axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True, use_global_stats=False,
                 beta_initializer="zeros", gamma_initializer="ones", running_mean_initializer="zeros",
                 running_variance_initializer="ones", in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {"axis": axis, "eps": epsilon, "momentum": momentum, "fix_gamma": not scale,
                        "use_global_stats": use_global_stats}
        self._axis = axis
        if in_channels != 0:
            self.in_channels = in_channels
        self.gamma = self.params.get("gamma", grad_req="write" if scale else "null", shape=(in_channels,),
                                     init=gamma_initializer, allow_deferred_init=True, differentiable=scale)
        self.beta = self.params.get("beta", grad_req="write" if center else "null", shape=(in_channels,),
                                    init=beta_initializer, allow_deferred_init=True, differentiable=center)
        self.running_mean = self.params.get("running_mean", grad_req="null", shape=(in_channels,),
                                            init=running_mean_initializer, allow_deferred_init=True,
                                            differentiable=False)
        self.running_var = self.params.get("running_var", grad_req="null", shape=(in_channels,),
                                           init=running_variance_initializer, allow_deferred_init=True,
                                           differentiable=False)

    def _per_channel(self):
        return (self.gamma, self.beta, self.running_mean, self.running_var)

    def cast(self, dtype):
        """float16 networks keep BatchNorm's statistics in float32 (as MXNet)."""
        if np.dtype(dtype).name == "float16":
            dtype = "float32"
        super().cast(dtype)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return _visible(F.BatchNorm(x, gamma, beta, running_mean, running_var, name=self.prefix + "fwd",
                                    **self._kwargs))

    def __repr__(self):
        in_channels = self.gamma.shape[0]
        args = ", ".join(f"{k}={v}" for k, v in self._kwargs.items())
        return f"{self.__class__.__name__}({args}, in_channels={in_channels if in_channels else None})"


class LayerNorm(_Normalization):
    """Normalizes over `axis` (default the last) per sample: (x - mean) / sqrt(var + eps) *
    gamma + beta, gamma and beta of size x.shape[axis]."""

    def __init__(self, axis=-1, epsilon=1e-5, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", in_channels=0, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._kwargs = {"eps": epsilon, "axis": axis, "center": center, "scale": scale}
        self._axis = axis
        self._epsilon = epsilon
        self._center = center
        self._scale = scale
        self._scale_and_shift(in_channels, scale, center, gamma_initializer, beta_initializer)

    def hybrid_forward(self, F, data, gamma, beta):
        return _visible(F.LayerNorm(data, gamma=gamma, beta=beta, axis=self._axis, eps=self._epsilon,
                                    name=self.prefix + "fwd"))


class InstanceNorm(_Normalization):
    """Normalizes each sample and channel over the remaining (spatial) axes; gamma/beta per
    channel (`axis`, default 1). scale defaults to False, as in MXNet."""

    def __init__(self, axis=1, epsilon=1e-5, center=True, scale=False, beta_initializer="zeros",
                 gamma_initializer="ones", in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {"eps": epsilon, "axis": axis, "center": center, "scale": scale}
        self._axis = axis
        self._epsilon = epsilon
        self._scale_and_shift(in_channels, scale, center, gamma_initializer, beta_initializer)

    def hybrid_forward(self, F, x, gamma, beta):
        if self._axis == 1:
            return _visible(F.InstanceNorm(x, gamma, beta, name=self.prefix + "fwd", eps=self._epsilon))
        x = F.swapaxes(x, dim1=1, dim2=self._axis)
        out = _visible(F.InstanceNorm(x, gamma, beta, name=self.prefix + "fwd", eps=self._epsilon))
        return F.swapaxes(out, dim1=1, dim2=self._axis)


class GroupNorm(_Normalization):
    """Splits the channels (axis 1) into num_groups groups and normalizes each group per
    sample. As in MXNet 1.x, gamma and beta have one value per group (shape (num_groups,))."""

    def __init__(self, num_groups=1, epsilon=1e-5, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._kwargs = {"eps": epsilon, "num_groups": num_groups, "center": center, "scale": scale}
        self._num_groups = num_groups
        self._epsilon = epsilon
        self._scale_and_shift(num_groups, scale, center, gamma_initializer, beta_initializer)

    infer_shape = HybridBlock.infer_shape      # one gamma/beta per group: known from num_groups

    def hybrid_forward(self, F, data, gamma, beta):
        return _visible(F.GroupNorm(data, gamma=gamma, beta=beta, num_groups=self._num_groups,
                                    eps=self._epsilon, name=self.prefix + "fwd"))

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self._kwargs.items())
        return f"{self.__class__.__name__}({args})"


class Embedding(HybridBlock):
    """Maps integer indices to rows of weight (input_dim, output_dim).

    sparse_grad=True makes the weight's gradient a RowSparseNDArray holding the rows looked up,
    as MXNet's, so that lazy optimizers touch only those rows. That holds eagerly; a hybridized
    block's compiled backward computes the gradient densely (the compiler has no sparse values)
    and it is stored as the row_sparse array of its nonzero rows: equal values, a row whose
    gradient sums to exactly zero is left out, and the speed of the sparse path is lost. A
    warning says so when such a block is traced."""

    def __init__(self, input_dim, output_dim, dtype="float32", weight_initializer=None, sparse_grad=False,
                 **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {"input_dim": input_dim, "output_dim": output_dim, "dtype": dtype,
                        "sparse_grad": sparse_grad}
        self.weight = self.params.get("weight", shape=(input_dim, output_dim), init=weight_initializer,
                                      dtype=dtype, allow_deferred_init=True,
                                      grad_stype="row_sparse" if sparse_grad else "default")

    def hybrid_forward(self, F, x, weight):
        if self._kwargs["sparse_grad"]:
            from ... import ndarray
            if F is ndarray:
                return ndarray.sparse.embedding(x, weight, name=self.prefix + "fwd", **self._kwargs)
            import warnings
            from ... import autograd
            if autograd.is_recording():     # (a trace for inference computes no gradient)
                warnings.warn(f"{self.name}: Embedding(sparse_grad=True) in a hybridized block computes its "
                              "weight gradient densely (stored as row_sparse of the nonzero rows); call it "
                              "unhybridized for the sparse gradient", stacklevel=2)
        return F.Embedding(x, weight, name=self.prefix + "fwd", **self._kwargs)

    def __repr__(self):
        k = self._kwargs
        return f"{self.__class__.__name__}({k['input_dim']} -> {k['output_dim']}, {k['dtype']})"
