"""Operator cases for ops/declarations/stats.py (nansum, nanprod, moments, shape_array,
size_array, diag) and custom.py (Custom and _backward_Custom, through a custom operator
registered here), appended to op_cases.CASES by the import at the end of op_cases.py.
Expectations are plain numpy written here."""
from __future__ import annotations

import numpy as np

from op_cases import FD_EXEMPT, A, U, case

import graphc as mx

_rng = np.random.default_rng(1357)


def _with_nans(*shape):
    x = _rng.uniform(0.5, 1.5, shape)
    x.reshape(-1)[::3] = np.nan
    return x


# -- nansum / nanprod -----------------------------------------------------------------------------
case("nansum", [U(3, 4)], {"axis": 1}, lambda x: x.sum(axis=1))
case("nansum", [_with_nans(3, 4)], {"axis": 0, "keepdims": True},
     lambda x: np.where(np.isnan(x), 0, x).sum(axis=0, keepdims=True), fd=False)
case("nansum", [_with_nans(2, 3, 2)], {"axis": 1, "exclude": True},
     lambda x: np.where(np.isnan(x), 0, x).sum(axis=(0, 2)), fd=False)
case("nanprod", [A(3, 4)], {"axis": 1}, lambda x: x.prod(axis=1))
case("nanprod", [_with_nans(3, 4)], {}, lambda x: np.array([np.where(np.isnan(x), 1, x).prod()]), fd=False)

# -- moments: population variance --------------------------------------------------------------
case("moments", [U(3, 4, 2)], {"axes": (0, 2)},
     lambda x: (x.mean(axis=(0, 2)), ((x - x.mean(axis=(0, 2), keepdims=True)) ** 2).mean(axis=(0, 2))))
case("moments", [U(2, 5)], {"axes": (1,), "keepdims": True},
     lambda x: (x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)))

# -- shape queries -------------------------------------------------------------------------------
case("shape_array", [U(2, 3, 4)], {}, lambda x: np.array([2, 3, 4]), fd=False, f32=False)
case("size_array", [U(2, 3, 4)], {}, lambda x: np.array([24]), fd=False, f32=False)

# -- diag ------------------------------------------------------------------------------------------


def _diag_of(x, k, a1, a2):
    m = np.moveaxis(x, (a1, a2), (-2, -1))
    n1, n2 = m.shape[-2:]
    idx = [(i, i + k) for i in range(n1) if 0 <= i + k < n2]
    return np.stack([m[..., i, j] for i, j in idx], axis=-1)


case("diag", [U(4)], {"k": 1}, lambda x: np.array([[x[i] if j == i + 1 else 0.0 for j in range(5)] for i in range(5)]))
case("diag", [U(3, 4)], {"k": -1}, lambda x: np.array([x[1, 0], x[2, 1]]))
case("diag", [U(2, 3, 4)], {"k": 1, "axis1": 1, "axis2": 2}, lambda x: _diag_of(x, 1, 1, 2))
case("diag", [U(3, 2, 4)], {"k": 0, "axis1": 2, "axis2": 0}, lambda x: _diag_of(x, 0, 2, 0))


def _diag_back(g, x, k, a1, a2):
    out = np.zeros_like(x)
    m = np.moveaxis(out, (a1, a2), (-2, -1))
    n = g.shape[-1]
    for t in range(n):
        i, j = t + max(-k, 0), t + max(k, 0)
        m[..., i, j] = g[..., t]
    return out


case("_backward_diag", [U(2, 3), U(2, 3, 4)], {"k": 1, "axis1": 1, "axis2": 2},
     lambda g, x: _diag_back(g, x, 1, 1, 2), fd=False)
case("_backward_diag", [U(4, 4), U(3)], {"k": 1}, lambda g, x: np.array([g[0, 1], g[1, 2], g[2, 3]]), fd=False)


# -- Custom: a Python operator, forward and backward --------------------------------------------
class _CubePlus(mx.operator.CustomOp):
    """out0 = x**3 + y, out1 = x*y: two inputs, two outputs."""

    def forward(self, is_train, req, in_data, out_data, aux):
        x, y = (a.asnumpy() for a in in_data)
        self.assign(out_data[0], req[0], mx.nd.array(x ** 3 + y, dtype=x.dtype))
        self.assign(out_data[1], req[1], mx.nd.array(x * y, dtype=x.dtype))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        x, y = (a.asnumpy() for a in in_data)
        g0, g1 = (a.asnumpy() for a in out_grad)
        self.assign(in_grad[0], req[0], mx.nd.array(3 * x * x * g0 + y * g1, dtype=x.dtype))
        self.assign(in_grad[1], req[1], mx.nd.array(g0 + x * g1, dtype=x.dtype))


@mx.operator.register("op_cases_cube_plus")
class _CubePlusProp(mx.operator.CustomOpProp):
    def list_arguments(self):
        return ["x", "y"]

    def list_outputs(self):
        return ["cube", "product"]

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0], in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _CubePlus()


case("Custom", [U(3, 2), U(3, 2)], {"op_type": "op_cases_cube_plus"}, lambda x, y: (x ** 3 + y, x * y))
case("_backward_Custom", [U(3, 2), U(3, 2), U(3, 2), U(3, 2), U(3, 2), U(3, 2)], {"op_type": "op_cases_cube_plus"},
     lambda g0, g1, x, y, o0, o1: (3 * x * x * g0 + y * g1, g0 + x * g1), fd=False)

FD_EXEMPT["_backward_Custom"] = ("a custom operator's backward is the user's Python; it has no gradient of its "
                                 "own (MXNet's has none either)")
FD_EXEMPT["_backward_diag"] = ("diag's gradient: linear in the output gradient and checked through diag's "
                               "finite-difference cases")
FD_EXEMPT["shape_array"] = ("its int64 output depends on the input's shape only; the gradient is zero (MXNet's "
                            "MakeZeroGradNodes)")
FD_EXEMPT["size_array"] = ("its int64 output depends on the input's shape only; the gradient is zero (MXNet's "
                           "MakeZeroGradNodes)")
