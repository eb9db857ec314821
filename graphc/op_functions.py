"""MXNet's Python-level operator functions that are not one operator each: they pick the
operator from the argument types (nd.maximum -> broadcast_maximum or _maximum_scalar,
nd.random.poisson -> _random_poisson or _sample_poisson) or live in a sub-namespace
(nd.linalg.gemm -> _linalg_gemm). Written once over an operator namespace, so graphc.nd and
graphc.symbol (and with them hybrid_forward's F) get the same functions. Never imports a backend.
"""
from __future__ import annotations

import numbers

import numpy as np

from .ops.errors import OpAttributeError
from .ops.namespace import write_out
from .ops.registry import has_op


class PrefixNamespace:
    """`ns.linalg.gemm(...)` calls `ns._linalg_gemm(...)`: MXNet's sub-namespaces of operators."""

    def __init__(self, namespace, prefix):
        self._namespace, self._prefix = namespace, prefix

    def __getattr__(self, name):
        if name.startswith("_") or not has_op(self._prefix + name):
            raise AttributeError(f"no operator {self._prefix + name!r} (for {name!r})")
        return getattr(self._namespace, self._prefix + name)

    def __dir__(self):
        from .ops.registry import all_names
        return [n[len(self._prefix):] for n in all_names() if n.startswith(self._prefix)]


def _is_number(x):
    return isinstance(x, numbers.Number)


# name -> (array-array operator, array-number operator, number-array operator, number-number rule)
_BINARY = {
    "add": ("broadcast_add", "_plus_scalar", "_plus_scalar", lambda a, b: a + b),
    "subtract": ("broadcast_sub", "_minus_scalar", "_rminus_scalar", lambda a, b: a - b),
    "multiply": ("broadcast_mul", "_mul_scalar", "_mul_scalar", lambda a, b: a * b),
    "divide": ("broadcast_div", "_div_scalar", "_rdiv_scalar", lambda a, b: a / b),
    "true_divide": ("broadcast_div", "_div_scalar", "_rdiv_scalar", lambda a, b: a / b),
    "modulo": ("broadcast_mod", "_mod_scalar", "_rmod_scalar", lambda a, b: a % b),
    "power": ("broadcast_power", "_power_scalar", "_rpower_scalar", lambda a, b: a ** b),
    "maximum": ("broadcast_maximum", "_maximum_scalar", "_maximum_scalar", max),
    "minimum": ("broadcast_minimum", "_minimum_scalar", "_minimum_scalar", min),
    # comparisons of two numbers give 1 or 0, as MXNet's
    "equal": ("broadcast_equal", "_equal_scalar", "_equal_scalar", lambda a, b: int(a == b)),
    "not_equal": ("broadcast_not_equal", "_not_equal_scalar", "_not_equal_scalar", lambda a, b: int(a != b)),
    "greater": ("broadcast_greater", "_greater_scalar", "_lesser_scalar", lambda a, b: int(a > b)),
    "greater_equal": ("broadcast_greater_equal", "_greater_equal_scalar", "_lesser_equal_scalar",
                      lambda a, b: int(a >= b)),
    "lesser": ("broadcast_lesser", "_lesser_scalar", "_greater_scalar", lambda a, b: int(a < b)),
    "lesser_equal": ("broadcast_lesser_equal", "_lesser_equal_scalar", "_greater_equal_scalar",
                     lambda a, b: int(a <= b)),
}
# MXNet's symbol module has only these of the functions above
SYMBOL_BINARY = ("power", "maximum", "minimum")


class ElementwiseFunctions:
    """MXNet 1.x's nd.add/subtract/.../maximum/minimum: two arrays broadcast, an array and a
    number use the scalar operator (its reflected form when the number comes first), two
    numbers give a number."""

    def __init__(self, namespace, is_tensor):
        self._namespace, self._is_tensor = namespace, is_tensor

    def function(self, name):
        tensor_op, scalar_op, rscalar_op, numbers_rule = _BINARY[name]
        ns, is_tensor = self._namespace, self._is_tensor

        def fn(lhs, rhs, out=None, **kw):
            if _is_number(lhs) and _is_number(rhs):
                return numbers_rule(lhs, rhs)
            if is_tensor(lhs) and is_tensor(rhs):
                return getattr(ns, tensor_op)(lhs, rhs)
            if is_tensor(lhs) and _is_number(rhs):
                return getattr(ns, scalar_op)(lhs, scalar=float(rhs))
            if _is_number(lhs) and is_tensor(rhs):
                return getattr(ns, rscalar_op)(rhs, scalar=float(lhs))
            raise TypeError(f"{name}: expects arrays or numbers, got {type(lhs).__name__} and {type(rhs).__name__}")
        fn.__name__ = name
        fn.__doc__ = f"{name}(lhs, rhs): {tensor_op} for two arrays, {scalar_op}/{rscalar_op} with a number."
        return fn

    def functions(self, names=tuple(_BINARY)) -> dict:
        return {name: self.function(name) for name in names}


class RandomFunctions:
    """nd.random / sym.random: number parameters call _random_<dist>(shape=...), array parameters
    _sample_<dist>(params, shape=...) (one distribution per element); a mix is refused, as MXNet."""

    def __init__(self, namespace, is_tensor):
        self._namespace, self._is_tensor = namespace, is_tensor

    def _draw(self, dist, params: dict, shape, dtype, ctx, out=None, **extra):
        if out is not None:
            # MXNet's out=: the draw takes out's shape and dtype unless given, and is written into out
            shape = tuple(out.shape) if shape is None else shape
            dtype = np.dtype(out.dtype).name if dtype is None else dtype
            return write_out(out, self._draw(dist, params, shape, dtype, ctx, **extra))
        values = list(params.values())
        shape = () if shape is None else (int(shape),) if isinstance(shape, numbers.Integral) else tuple(shape)
        if all(self._is_tensor(v) for v in values):
            attrs = {"shape": shape}
            if dtype is not None:
                attrs["dtype"] = dtype
            return getattr(self._namespace, "_sample_" + dist)(*values, **attrs, **extra)
        if all(_is_number(v) for v in values):
            attrs = dict(params, shape=shape or (1,), dtype=dtype or "float32")
            if ctx is not None:
                attrs["ctx"] = str(ctx)
            return getattr(self._namespace, "_random_" + dist)(**attrs, **extra)
        kinds = ", ".join(f"{k}={type(v).__name__}" for k, v in params.items())
        raise OpAttributeError(f"random.{dist}: distribution parameters must be all numbers or all arrays, "
                               f"got {kinds}")

    def uniform(self, low=0.0, high=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        return self._draw("uniform", {"low": low, "high": high}, shape, dtype, ctx, out)

    def normal(self, loc=0.0, scale=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        if self._is_tensor(loc) or self._is_tensor(scale):
            return self._draw("normal", {"mu": loc, "sigma": scale}, shape, dtype, ctx, out)
        return self._draw("normal", {"loc": loc, "scale": scale}, shape, dtype, ctx, out)

    def randn(self, *shape, loc=0.0, scale=1.0, dtype="float32", ctx=None, **kw):
        return self.normal(loc, scale, shape, dtype, ctx)

    def poisson(self, lam=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        return self._draw("poisson", {"lam": lam}, shape, dtype, ctx, out)

    def exponential(self, scale=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        # MXNet's samplers take the rate; the Python function takes the scale
        return self._draw("exponential", {"lam": 1.0 / scale}, shape, dtype, ctx, out)

    def gamma(self, alpha=1.0, beta=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        return self._draw("gamma", {"alpha": alpha, "beta": beta}, shape, dtype, ctx, out)

    def negative_binomial(self, k=1, p=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        return self._draw("negative_binomial", {"k": k, "p": p}, shape, dtype, ctx, out)

    def generalized_negative_binomial(self, mu=1.0, alpha=1.0, shape=None, dtype=None, ctx=None, out=None, **kw):
        return self._draw("generalized_negative_binomial", {"mu": mu, "alpha": alpha}, shape, dtype, ctx, out)

    def multinomial(self, data, shape=None, get_prob=False, out=None, dtype="int32", **kw):
        shape = () if shape is None else (int(shape),) if isinstance(shape, numbers.Integral) else tuple(shape)
        return self._namespace._sample_multinomial(data, shape=shape, get_prob=get_prob, dtype=dtype)

    def randint(self, low, high, shape=None, dtype="int32", ctx=None, out=None, **kw):
        if not (isinstance(low, numbers.Integral) and isinstance(high, numbers.Integral)):
            raise OpAttributeError(f"random.randint: low and high must be integers (MXNet has no per-element "
                                   f"randint), got {type(low).__name__} and {type(high).__name__}")
        return self._draw("randint", {"low": low, "high": high}, shape, dtype, ctx, out)

    def shuffle(self, data, **kw):
        return self._namespace._shuffle(data)

    def __getattr__(self, name):
        # uniform_like, poisson_like, ...: operators of their own (attributes as the scalar samplers')
        if name.endswith("_like") and has_op("_random_" + name):
            return getattr(self._namespace, "_random_" + name)
        raise AttributeError(f"random has no function {name!r}")
