"""MXNet's `contrib` namespaces, nd.contrib and sym.contrib (hybrid_forward's F.contrib): the
`_contrib_*` operators under their short names, the control flow of graphc.control_flow, and
functions built from other operators: MXNet's Python-level isinf/isnan/isfinite/rand_zipfian,
the interleaved attention matmuls of GluonNLP's BERT (reshapes and batch_dot, so they compile
to GEMMs and differentiate through their parts), SyncBatchNorm (one process holds one batch:
BatchNorm) and SparseEmbedding (Embedding; graphc's gradients are dense). Written once over an
operator namespace, as graphc.op_functions is. Never imports a backend."""
from __future__ import annotations

import math

from . import control_flow
from .ops.builder import Handle
from .ops.errors import GraphcError
from .ops.registry import all_names, has_op

_PREFIX = "_contrib_"


class ContribFunctions:
    """`ns.contrib.X(...)` calls `ns._contrib_X(...)`, or the function of the same name here."""

    foreach = staticmethod(control_flow.foreach)
    while_loop = staticmethod(control_flow.while_loop)
    cond = staticmethod(control_flow.cond)

    def __init__(self, namespace):
        self._namespace = namespace

    def isnan(self, data):
        return self._namespace.broadcast_not_equal(data, data)

    def isinf(self, data):
        return self._namespace._equal_scalar(self._namespace.abs(data), scalar=float("inf"))

    def isfinite(self, data):
        ns = self._namespace
        not_nan = ns.broadcast_equal(data, data)
        return ns.broadcast_mul(not_nan, ns._not_equal_scalar(ns.abs(data), scalar=float("inf")))

    def rand_zipfian(self, true_classes, num_sampled, range_max, ctx=None):
        """num_sampled classes from the log-uniform (Zipfian) distribution over [0, range_max), with
        the expected counts of the true and the sampled classes, as MXNet's (candidate sampling)."""
        ns = self._namespace
        log_range = math.log(range_max + 1)
        draw = ns._random_uniform(low=0.0, high=log_range, shape=(int(num_sampled),), dtype="float64",
                                  **({"ctx": str(ctx)} if ctx is not None else {}))
        sampled = ns._mod_scalar(ns.Cast(ns._minus_scalar(ns.exp(draw), scalar=1.0), dtype="int64"),
                                 scalar=float(range_max))

        def expected(classes, times):
            c = ns.Cast(classes, dtype="float64")
            ratio = ns.broadcast_div(ns._plus_scalar(c, scalar=2.0), ns._plus_scalar(c, scalar=1.0))
            return ns._mul_scalar(ns.log(ratio), scalar=times / log_range)
        return sampled, expected(true_classes, float(num_sampled)), expected(sampled, float(num_sampled))

    # -- attention over interleaved projections (sequence, batch, heads * parts * head_dim) ---------
    def _part(self, x, heads, parts, part):
        """Part `part` of x (seq, batch, heads * parts * d) as (batch * heads, seq, d)."""
        ns = self._namespace
        seq, batch, width = x.shape
        d = width // (heads * parts)
        if d * heads * parts != width:
            raise GraphcError(f"contrib.interleaved_matmul: the last axis ({width}) must be heads ({heads}) x "
                              f"{parts} x head size")
        x = ns.Reshape(x, shape=(seq, batch, heads, parts, d))
        x = ns.Reshape(ns.slice_axis(x, axis=3, begin=part, end=part + 1), shape=(seq, batch, heads, d))
        return ns.Reshape(ns.transpose(x, axes=(1, 2, 0, 3)), shape=(batch * heads, seq, d))

    def _merge_heads(self, x, batch, heads):
        """(batch * heads, seq, d) -> (seq, batch, heads * d)."""
        ns = self._namespace
        _, seq, d = x.shape
        x = ns.transpose(ns.Reshape(x, shape=(batch, heads, seq, d)), axes=(2, 0, 1, 3))
        return ns.Reshape(x, shape=(seq, batch, heads * d))

    def _scaled_qk(self, q, k):
        ns = self._namespace
        return ns.batch_dot(ns._div_scalar(q, scalar=math.sqrt(q.shape[-1])), k, transpose_b=True)

    def interleaved_matmul_selfatt_qk(self, queries_keys_values, heads, **kw):
        x = queries_keys_values
        return self._scaled_qk(self._part(x, heads, 3, 0), self._part(x, heads, 3, 1))

    def interleaved_matmul_selfatt_valatt(self, queries_keys_values, attention, heads, **kw):
        v = self._part(queries_keys_values, heads, 3, 2)
        return self._merge_heads(self._namespace.batch_dot(attention, v), queries_keys_values.shape[1], heads)

    def interleaved_matmul_encdec_qk(self, queries, keys_values, heads, **kw):
        return self._scaled_qk(self._part(queries, heads, 1, 0), self._part(keys_values, heads, 2, 0))

    def interleaved_matmul_encdec_valatt(self, keys_values, attention, heads, **kw):
        v = self._part(keys_values, heads, 2, 1)
        return self._merge_heads(self._namespace.batch_dot(attention, v), keys_values.shape[1], heads)

    # -- layers that are another operator in one process ---------------------------------------------
    def SyncBatchNorm(self, data, gamma, beta, moving_mean, moving_var, ndev=1, key=None, **attrs):
        """BatchNorm: across devices MXNet syncs the batch statistics; one process holds one batch.
        Its statistics outputs (output_mean_var) are the mean and the variance, where BatchNorm's
        are the mean and the inverse standard deviation."""
        out = self._namespace.BatchNorm(data, gamma, beta, moving_mean, moving_var, **attrs)
        if not attrs.get("output_mean_var"):
            return out
        y, mean, invstd = out
        eps = float(attrs.get("eps", 1e-3))
        return [y, mean, self._namespace.reciprocal(self._namespace.square(invstd)) - eps]

    def SparseEmbedding(self, data, weight, input_dim, output_dim, dtype="float32", deterministic=False, **kw):
        return self._namespace.Embedding(data, weight, input_dim=input_dim, output_dim=output_dim, dtype=dtype, **kw)

    def boolean_mask(self, data, index, axis=0, **kw):
        """The rows of data whose index is nonzero: eager only (graphc.ndarray.contrib)."""
        if isinstance(data, Handle) or isinstance(index, Handle):
            raise GraphcError(f"contrib.boolean_mask: its output length is the number of nonzero values of index, "
                              f"which a traced graph (hybridize, sym) cannot know; call it on NDArrays, or keep "
                              f"shapes static with F.where / a multiply by the mask")
        from .ndarray.contrib import eager_boolean_mask
        return eager_boolean_mask(data, index, axis)

    def __getattr__(self, name):
        if name.startswith("_") or not has_op(_PREFIX + name):
            raise AttributeError(f"contrib has no function or operator {name!r} (no operator {_PREFIX + name!r})")
        return getattr(self._namespace, _PREFIX + name)

    def __dir__(self):
        names = {n[len(_PREFIX):] for n in all_names() if n.startswith(_PREFIX)}
        return sorted(names | {n for n in dir(type(self)) if not n.startswith("_")})
