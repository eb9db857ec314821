"""Python operator sugar shared by NDArray (eager) and symbolic handles (graph building).

Both spell `a + b` the same way, so a gradient rule written with operators runs unchanged
in eager autograd and in the autodiff pass. Arrays combine with numpy broadcasting.
"""
from __future__ import annotations

import numbers

_BINARY = {  # python op -> (array-array op, array-scalar op, scalar-array op)
    "add": ("broadcast_add", "_plus_scalar", "_plus_scalar"),
    "sub": ("broadcast_sub", "_minus_scalar", "_rminus_scalar"),
    "mul": ("broadcast_mul", "_mul_scalar", "_mul_scalar"),
    "truediv": ("broadcast_div", "_div_scalar", "_rdiv_scalar"),
    "mod": ("broadcast_mod", "_mod_scalar", "_rmod_scalar"),
    "pow": ("broadcast_power", "_power_scalar", "_rpower_scalar"),
    "lt": ("broadcast_lesser", "_lesser_scalar", "_greater_scalar"),
    "le": ("broadcast_lesser_equal", "_lesser_equal_scalar", "_greater_equal_scalar"),
    "gt": ("broadcast_greater", "_greater_scalar", "_lesser_scalar"),
    "ge": ("broadcast_greater_equal", "_greater_equal_scalar", "_lesser_equal_scalar"),
    "eq": ("broadcast_equal", "_equal_scalar", "_equal_scalar"),
    "ne": ("broadcast_not_equal", "_not_equal_scalar", "_not_equal_scalar"),
}


class ArithmeticMixin:
    """Subclasses implement `_invoke(op_name, inputs, attrs)` returning one value of their kind."""

    __array_priority__ = 1000  # numpy scalars on the left defer to us

    def _invoke(self, op, inputs, attrs):  # pragma: no cover - abstract
        raise NotImplementedError

    def _binary(self, kind, other, reverse=False):
        tensor_op, scalar_op, rscalar_op = _BINARY[kind]
        if not isinstance(other, ArithmeticMixin) and (
                isinstance(other, numbers.Number) or getattr(other, "ndim", 1) == 0):
            return self._invoke(rscalar_op if reverse else scalar_op, [self], {"scalar": float(other)})
        if not isinstance(other, ArithmeticMixin):
            other = self._lift(other)
        a, b = (other, self) if reverse else (self, other)
        return self._invoke(tensor_op, [a, b], {})

    def _lift(self, other):
        raise TypeError(f"cannot combine {type(self).__name__} with {type(other).__name__}")

    def __add__(self, o): return self._binary("add", o)
    def __radd__(self, o): return self._binary("add", o, True)
    def __sub__(self, o): return self._binary("sub", o)
    def __rsub__(self, o): return self._binary("sub", o, True)
    def __mul__(self, o): return self._binary("mul", o)
    def __rmul__(self, o): return self._binary("mul", o, True)
    def __truediv__(self, o): return self._binary("truediv", o)
    def __rtruediv__(self, o): return self._binary("truediv", o, True)
    def __mod__(self, o): return self._binary("mod", o)
    def __rmod__(self, o): return self._binary("mod", o, True)
    def __pow__(self, o): return self._binary("pow", o)
    def __rpow__(self, o): return self._binary("pow", o, True)
    def __lt__(self, o): return self._binary("lt", o)
    def __le__(self, o): return self._binary("le", o)
    def __gt__(self, o): return self._binary("gt", o)
    def __ge__(self, o): return self._binary("ge", o)
    def __eq__(self, o): return self._binary("eq", o)
    def __ne__(self, o): return self._binary("ne", o)
    def __neg__(self): return self._invoke("negative", [self], {})
    def __abs__(self): return self._invoke("abs", [self], {})
    __hash__ = object.__hash__
