"""Operator cases for the MXNet 1.x gap fillers (ops/declarations/misc_math.py, legacy_outputs.py,
amp.py, update_ops.py, spatial.py, image_ops.py), appended to op_cases.CASES by the import at
the end of op_cases.py. Expectations are plain numpy written here, element by element where that
is the clearer statement; the same operators are compared with MXNet 1.9.1 in
test_gap_ops_mxnet.py."""
from __future__ import annotations

import math

import numpy as np

from op_cases import FD_EXEMPT, U, case

_rng = np.random.default_rng(9753)


def _softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- misc math -------------------------------------------------------------------------------------
_ERF = np.vectorize(math.erf)
case("erfinv", [U(2, 5, lo=-0.95, hi=0.95)], {}, lambda x: _bisect_erfinv(x), rtol=1e-9)


def _bisect_erfinv(x):
    lo, hi = np.full(x.shape, -6.0), np.full(x.shape, 6.0)
    for _ in range(200):
        mid = (lo + hi) / 2
        below = _ERF(mid) < x
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


case("hard_sigmoid", [U(3, 4, lo=-4, hi=4)], {"alpha": 0.3, "beta": 0.4},
     lambda x: np.array([[min(1.0, max(0.0, 0.3 * v + 0.4)) for v in row] for row in x]))
case("hard_sigmoid", [U(5)], {}, lambda x: np.clip(0.2 * x + 0.5, 0, 1))
case("rint", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6, -2.6, 0.2])], {},
     lambda x: np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, 0.0]), fd=False)
case("softmin", [U(3, 4)], {"axis": 0, "temperature": 2.0}, lambda x: _softmax(-x / 2.0, 0))
case("softmin", [U(2, 3)], {}, lambda x: _softmax(-x, 1))
case("_np_cumsum", [U(2, 3)], {"axis": 1}, lambda x: np.stack([x[:, :k + 1].sum(1) for k in range(3)], axis=1))
case("_np_cumsum", [U(2, 3)], {}, lambda x: np.array([x.reshape(-1)[:k + 1].sum() for k in range(6)]))
case("_np_cumsum", [np.arange(6, dtype=np.int32).reshape(2, 3)], {"axis": 0, "dtype": "int64"},
     lambda x: np.array([[0, 1, 2], [3, 5, 7]], np.int64), fd=False)


def _d2s(x, b):
    n, c, h, w = x.shape
    out = np.zeros((n, c // (b * b), h * b, w * b))
    for ch in range(c):
        i, j, k = ch // (b * c // (b * b)), (ch // (c // (b * b))) % b, ch % (c // (b * b))
        out[:, k, i::b, j::b] = x[:, ch]
    return out


case("depth_to_space", [U(1, 8, 2, 3)], {"block_size": 2}, lambda x: _d2s(x, 2))
case("space_to_depth", [U(2, 2, 4, 6)], {"block_size": 2},
     lambda x: np.concatenate([x[:, :, i::2, j::2] for i in range(2) for j in range(2)], axis=1))
case("reshape_like", [U(6, 2), U(3, 4)], {}, lambda a, b: a.reshape(3, 4), wrt=(0,))
case("reshape_like", [U(30, 7), U(15, 2, 4)], {"lhs_begin": 0, "lhs_end": 1, "rhs_begin": 0, "rhs_end": 2},
     lambda a, b: a.reshape(15, 2, 7), wrt=(0,))
case("argmax_channel", [np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])], {}, lambda x: np.array([1.0, 0.0]), fd=False)


def _khatri_rao(*ms):
    rows = [np.array(r) for r in np.ndindex(*[m.shape[0] for m in ms])]
    return np.stack([np.prod([m[i] for m, i in zip(ms, r)], axis=0) for r in rows])


case("khatri_rao", [U(2, 3), U(3, 3), U(2, 3)], {"num_args": 3}, _khatri_rao)
case("khatri_rao", [U(4, 2)], {"num_args": 1}, lambda a: a)
case("_ravel_multi_index", [np.array([[1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])], {"shape": (2, 3)},
     lambda x: np.array([5.0, 1.0, 3.0]), fd=False)
case("_unravel_index", [np.array([5.0, 1.0, 3.0])], {"shape": (2, 3)},
     lambda x: np.array([[1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]), fd=False)
_H = np.array([0.1, 0.5, 0.9, 1.0, 0.3, -0.2, 0.49])
case("_histogram", [_H], {"bin_cnt": 3, "range": (0.0, 1.0)},
     lambda x: (np.array([2, 2, 2], np.int64), np.array([0.0, 1 / 3, 2 / 3, 1.0])), fd=False)
case("_histogram", [_H, np.array([-1.0, 0.0, 0.5, 2.0])], {},
     lambda x, b: (np.array([1, 3, 3], np.int64), b), fd=False)
case("_split_v2", [U(2, 7)], {"indices": (0, 2, 3), "axis": 1}, lambda x: (x[:, :2], x[:, 2:3], x[:, 3:]))
case("_split_v2", [U(6, 2)], {"sections": 3, "axis": 0, "squeeze_axis": False},
     lambda x: (x[:2], x[2:4], x[4:]))
case("_split_v2", [U(2, 3)], {"indices": (0, 1, 2), "axis": 1, "squeeze_axis": True},
     lambda x: (x[:, 0], x[:, 1], x[:, 2]))


def _fill0(lhs, mhs, rhs):
    out = lhs.copy()
    for i in range(lhs.shape[0]):
        out[i, int(rhs[i])] = mhs[i]
    return out


case("fill_element_0index", [U(3, 4), U(3), np.array([1.0, 0.0, 3.0])], {}, _fill0, wrt=(0, 1))
case("_onehot_encode", [np.array([3.0, 0.0, 1.0]), np.zeros((3, 4))], {},
     lambda i, o: np.eye(4)[[3, 0, 1]], fd=False)
FD_EXEMPT.update({
    "rint": "piecewise constant: its gradient is zero and finite differences straddle the steps",
    "argmax_channel": "returns indices: piecewise constant, so no gradient flows into the data",
    "_ravel_multi_index": "its input holds integer coordinates: the result is not differentiable",
    "_unravel_index": "its input holds integer indices: the result is not differentiable",
})
FD_EXEMPT["_onehot_encode"] = "its inputs are indices and an output buffer: no gradient flows through it"

# -- legacy output layers: forward here; their head-gradient-ignoring backward in test_gap_ops.py
_LBL = U(3, 4, lo=0.0, hi=1.0)
case("LinearRegressionOutput", [U(3, 4), _LBL], {"grad_scale": 2.0}, lambda x, y: x, fd=False)
case("LogisticRegressionOutput", [U(3, 4), _LBL], {}, lambda x, y: 1 / (1 + np.exp(-x)), fd=False)
case("MAERegressionOutput", [U(3, 4), _LBL], {}, lambda x, y: x, fd=False)
case("SVMOutput", [U(3, 4), np.array([0.0, 3.0, 1.0])], {"margin": 0.5}, lambda x, y: x, fd=False)


def _hinge_grad(x, label, margin, c, linear):
    g = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if j == int(label[i]):
                g[i, j] = -c * (margin > x[i, j]) if linear else -c * 2 * max(margin - x[i, j], 0.0)
            else:
                g[i, j] = c * (margin > -x[i, j]) if linear else c * 2 * max(margin + x[i, j], 0.0)
    return g


_X = U(3, 4)
case("_svm_output_grad", [_X, np.array([0.0, 3.0, 1.0])],
     {"margin": 0.5, "regularization_coefficient": 1.5, "use_linear": True},
     lambda x, y: _hinge_grad(x, y, 0.5, 1.5, True), fd=False)
case("_svm_output_grad", [_X, np.array([2.0, 3.0, 1.0])],
     {"margin": 1.0, "regularization_coefficient": 1.0, "use_linear": False},
     lambda x, y: _hinge_grad(x, y, 1.0, 1.0, False), fd=False)
case("SoftmaxActivation", [U(3, 4)], {}, lambda x: _softmax(x, 1))
case("SoftmaxActivation", [U(2, 3, 2)], {"mode": "channel"}, lambda x: _softmax(x, 1))
case("SoftmaxActivation", [U(2, 3, 2)], {"mode": "instance"}, lambda x: _softmax(x, 2))
FD_EXEMPT.update({
    "LinearRegressionOutput": "an output layer: its gradient ignores the head gradient by definition "
                              "(tested in test_gap_ops.py and against MXNet)",
    "LogisticRegressionOutput": "an output layer: its gradient ignores the head gradient by definition "
                                "(tested in test_gap_ops.py and against MXNet)",
    "MAERegressionOutput": "an output layer: its gradient ignores the head gradient by definition "
                           "(tested in test_gap_ops.py and against MXNet)",
    "SVMOutput": "an output layer: its gradient is the hinge loss's, ignoring the head gradient (against MXNet)",
    "_svm_output_grad": "SVMOutput's backward: piecewise linear in the data and never differentiated again",
})

# -- AMP casts and checks ---------------------------------------------------------------------------
case("amp_cast", [U(2, 3)], {"dtype": "float16"}, lambda x: x.astype(np.float16), fd=False, f32=False)
case("amp_cast", [np.arange(4, dtype=np.int32)], {"dtype": "float16"}, lambda x: x, fd=False)
case("amp_cast", [U(2, 3)], {"dtype": "float64"}, lambda x: x, f32=False)
case("amp_multicast", [U(2).astype(np.float16), U(3).astype(np.float32)], {"num_outputs": 2},
     lambda a, b: (a.astype(np.float32), b), fd=False)
case("amp_multicast", [U(2).astype(np.float16), U(3).astype(np.float32)], {"num_outputs": 2, "cast_narrow": True},
     lambda a, b: (a, b.astype(np.float16)), fd=False)
case("amp_multicast", [U(2, 2), U(3)], {"num_outputs": 2}, lambda a, b: (a, b))
case("all_finite", [np.array([1.0, -2.0])], {}, lambda x: np.array([1.0], np.float32), fd=False)
case("all_finite", [np.array([1.0, np.inf])], {}, lambda x: np.array([0.0], np.float32), fd=False)
case("multi_all_finite", [np.array([1.0]), np.array([np.nan, 2.0])], {"num_arrays": 2},
     lambda a, b: np.array([0.0], np.float32), fd=False)
case("multi_all_finite", [np.array([1.0]), np.array([3.0, 2.0])], {"num_arrays": 2},
     lambda a, b: np.array([1.0], np.float32), fd=False)
case("multi_sum_sq", [U(3, 2), U(4)], {"num_arrays": 2},
     lambda a, b: np.array([sum(v * v for v in a.reshape(-1)), sum(v * v for v in b)], np.float32), rtol=1e-6)
case("multi_lars", [np.array([0.1, 0.2, 0.3]), np.array([4.0, 0.0, 9.0]), np.array([1.0, 1.0, 0.0]),
                    np.array([0.01, 0.1, 0.0])], {"eta": 0.5, "eps": 1e-3, "rescale_grad": 2.0},
     lambda lr, w, g, wd: np.array([0.1 * 0.5 * 2.0 / (1.0 * 2.0 + 0.01 * 2.0 + 1e-3), 0.2, 0.3]))
for _name in ("all_finite", "multi_all_finite"):
    FD_EXEMPT[_name] = "a 0/1 flag: piecewise constant in the data, so its gradient is zero"
FD_EXEMPT["amp_multicast"] = "the float16 case has no float64 finite differences; the float64 case is an identity"


# -- optimizer updates: the new weight (the states' new values are tested in test_gap_ops.py) --------
_W, _G = U(2, 3), U(2, 3, lo=-3, hi=3)
_POS = U(2, 3, lo=0.1, hi=1.0)


def _clip(v, c):
    return max(-c, min(c, v)) if c >= 0 else v


def _elementwise(rule):
    """Apply a per-element rule written with Python floats to whole arrays."""
    def run(*arrays):
        flat = [a.reshape(-1) for a in arrays]
        return np.array([rule(*vals) for vals in zip(*flat)]).reshape(arrays[0].shape)
    return run


case("sgd_update", [_W, _G], {"lr": 0.1, "wd": 0.01, "rescale_grad": 0.5, "clip_gradient": 0.4},
     _elementwise(lambda w, g: w - 0.1 * (_clip(0.5 * g, 0.4) + 0.01 * w)), fd=False)
case("sgd_mom_update", [_W, _G, U(2, 3)], {"lr": 0.1, "momentum": 0.9, "wd": 0.01},
     _elementwise(lambda w, g, m: w + 0.9 * m - 0.1 * (g + 0.01 * w)), fd=False)
case("nag_mom_update", [_W, _G, U(2, 3)], {"lr": 0.1, "momentum": 0.9, "wd": 0.05},
     _elementwise(lambda w, g, m: w + 0.81 * m - 1.9 * 0.1 * (g + 0.05 * w)), fd=False)
case("mp_sgd_update", [_W.astype(np.float16), _G.astype(np.float16), _W], {"lr": 0.1},
     lambda w, g, w32: (w32 - 0.1 * g.astype(np.float64)).astype(np.float16), fd=False, f32=False)
case("mp_sgd_mom_update", [_W, _G, U(2, 3), _W + 1], {"lr": 0.1, "momentum": 0.5},
     _elementwise(lambda w, g, m, w32: w32 + 0.5 * m - 0.1 * g), fd=False)
case("mp_nag_mom_update", [_W, _G, U(2, 3), _W + 1], {"lr": 0.1, "momentum": 0.5},
     _elementwise(lambda w, g, m, w32: w32 + 0.25 * m - 1.5 * 0.1 * g), fd=False)


def _adam(w, g, m, v, lr=0.01, b1=0.8, b2=0.9, eps=1e-6, wd=0.1):
    g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - lr * m / (math.sqrt(v) + eps)


case("adam_update", [_W, _G, U(2, 3), _POS], {"lr": 0.01, "beta1": 0.8, "beta2": 0.9, "epsilon": 1e-6, "wd": 0.1},
     _elementwise(_adam), fd=False)
case("rmsprop_update", [_W, _G, _POS], {"lr": 0.01, "gamma1": 0.8, "clip_weights": 0.9},
     _elementwise(lambda w, g, n: _clip(w - 0.01 * g / math.sqrt(0.2 * g * g + 0.8 * n + 1e-8), 0.9)), fd=False)


def _alex(w, g, n, gb, d):
    n = 0.2 * g * g + 0.8 * n
    gb = 0.2 * g + 0.8 * gb
    d = 0.7 * d - 0.01 * g / math.sqrt(n - gb * gb + 1e-8)
    return w + d


case("rmspropalex_update", [_W, _G, _POS + 1, U(2, 3) * 0.1, U(2, 3)], {"lr": 0.01, "gamma1": 0.8, "gamma2": 0.7},
     _elementwise(_alex), fd=False)


def _ftrl(w, g, z, n, lr=0.1, l1=0.05, beta=1.5, wd=0.1):
    z = z + g - (math.sqrt(n + g * g) - math.sqrt(n)) * w / lr
    n = n + g * g
    return 0.0 if abs(z) <= l1 else (math.copysign(l1, z) - z) / ((beta + math.sqrt(n)) / lr + wd)


case("ftrl_update", [_W, _G, U(2, 3), _POS], {"lr": 0.1, "lamda1": 0.05, "beta": 1.5, "wd": 0.1},
     _elementwise(_ftrl), fd=False)


def _ftml(w, g, d, v, z, lr=0.1, b1=0.6, b2=0.9, t=3, eps=1e-8):
    v = b2 * v + (1 - b2) * g * g
    dt = (1 - b1 ** t) / lr * (math.sqrt(v / (1 - b2 ** t)) + eps)
    z = b1 * z + (1 - b1) * g - (dt - b1 * d) * w
    return -z / dt


case("ftml_update", [_W, _G, _POS, _POS, U(2, 3)], {"lr": 0.1, "beta1": 0.6, "beta2": 0.9, "t": 3},
     _elementwise(_ftml), fd=False)
case("signsgd_update", [_W, _G], {"lr": 0.1, "wd": 0.1},
     _elementwise(lambda w, g: (1 - 0.01) * w - 0.1 * math.copysign(1.0, g)), fd=False)
case("signum_update", [_W, _G, U(2, 3)], {"lr": 0.1, "momentum": 0.8, "wd_lh": 0.05},
     _elementwise(lambda w, g, m: (1 - 0.005) * w + 0.1 * math.copysign(1.0, 0.8 * m - 0.2 * g)), fd=False)


def _lamb1(w, g, m, v, b1=0.8, b2=0.9, t=2, wd=0.1, eps=1e-6):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps) + wd * w


case("lamb_update_phase1", [_W, _G, U(2, 3), _POS], {"beta1": 0.8, "beta2": 0.9, "t": 2, "wd": 0.1},
     _elementwise(_lamb1), fd=False)
case("mp_lamb_update_phase1", [_W, _G, U(2, 3), _POS, _W + 1], {"beta1": 0.8, "beta2": 0.9, "t": 2, "wd": 0.1},
     lambda w, g, m, v, w32: _elementwise(_lamb1)(w32, g, m, v), fd=False)
case("lamb_update_phase2", [_W, _G, np.array([2.0]), np.array([0.5])], {"lr": 0.1, "upper_bound": 1.5},
     lambda w, g, r1, r2: w - 0.1 * (1.5 / 0.5) * g, fd=False)
case("lamb_update_phase2", [_W, _G, np.array([0.0]), np.array([0.5])], {"lr": 0.1},
     lambda w, g, r1, r2: w - 0.1 * g, fd=False)
case("mp_lamb_update_phase2", [_W, _G, np.array([2.0]), np.array([4.0]), _W + 1], {"lr": 0.1},
     lambda w, g, r1, r2, w32: w32 - 0.05 * g, fd=False)
case("multi_sgd_update", [_W, _G, _W * 2, _G], {"lrs": (0.1, 0.2), "wds": (0.0, 0.1), "num_weights": 2},
     lambda w0, g0, w1, g1: (w0 - 0.1 * g0, w1 - 0.2 * (g1 + 0.1 * w1)), fd=False)
case("preloaded_multi_sgd_update", [_W, _G, _W * 2, _G, np.array([0.1, 0.2]), np.array([0.0, 0.1])],
     {"num_weights": 2}, lambda w0, g0, w1, g1, lr, wd: (w0 - 0.1 * g0, w1 - 0.2 * (g1 + 0.1 * w1)), fd=False)
_M0, _M1 = U(2, 3), U(2, 3)
case("multi_sgd_mom_update", [_W, _G, _M0, _W * 2, _G, _M1],
     {"lrs": (0.1, 0.2), "wds": (0.0, 0.0), "momentum": 0.5, "num_weights": 2},
     lambda w0, g0, m0, w1, g1, m1: (w0 + 0.5 * m0 - 0.1 * g0, w1 + 0.5 * m1 - 0.2 * g1,
                                     0.5 * m0 - 0.1 * g0, 0.5 * m1 - 0.2 * g1), fd=False)
case("preloaded_multi_sgd_mom_update", [_W, _G, _M0, np.array([0.1]), np.array([0.0])],
     {"momentum": 0.5, "num_weights": 1},
     lambda w0, g0, m0, lr, wd: (w0 + 0.5 * m0 - 0.1 * g0, 0.5 * m0 - 0.1 * g0), fd=False)
case("multi_mp_sgd_update", [_W, _G, _W + 1], {"lrs": (0.1,), "wds": (0.0,), "num_weights": 1},
     lambda w, g, w32: (w32 - 0.1 * g, w32 - 0.1 * g), fd=False)
case("preloaded_multi_mp_sgd_update", [_W, _G, _W + 1, np.array([0.1]), np.array([0.0])], {"num_weights": 1},
     lambda w, g, w32, lr, wd: (w32 - 0.1 * g, w32 - 0.1 * g), fd=False)
case("multi_mp_sgd_mom_update", [_W, _G, _M0, _W + 1], {"lrs": (0.1,), "wds": (0.0,), "momentum": 0.5,
                                                       "num_weights": 1},
     lambda w, g, m, w32: (w32 + 0.5 * m - 0.1 * g, 0.5 * m - 0.1 * g, w32 + 0.5 * m - 0.1 * g), fd=False)
case("preloaded_multi_mp_sgd_mom_update", [_W, _G, _M0, _W + 1, np.array([0.1]), np.array([0.0])],
     {"momentum": 0.5, "num_weights": 1},
     lambda w, g, m, w32, lr, wd: (w32 + 0.5 * m - 0.1 * g, 0.5 * m - 0.1 * g, w32 + 0.5 * m - 0.1 * g), fd=False)


def _adamw(w, g, m, v, lr=0.01, eta=0.5, b1=0.9, b2=0.999, eps=1e-8, wd=0.1, s=0.5):
    g = s * g
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - eta * (lr * m / (math.sqrt(v) + eps) + wd * w)


case("_adamw_update", [_W, _G, U(2, 3), _POS, np.array([0.5])], {"lr": 0.01, "eta": 0.5, "wd": 0.1},
     lambda w, g, m, v, s: _elementwise(_adamw)(w, g, m, v), fd=False)
case("_adamw_update", [_W, _G, U(2, 3), _POS, np.array([np.inf])], {"lr": 0.01, "eta": 0.5},
     lambda w, g, m, v, s: w, fd=False)
case("_mp_adamw_update", [_W, _G, U(2, 3), _POS, _W + 1, np.array([0.5])], {"lr": 0.01, "eta": 0.5, "wd": 0.1},
     lambda w, g, m, v, w32, s: _elementwise(_adamw)(w32, g, m, v), fd=False)
_HIST = U(2, lo=0.1, hi=1.0)
case("_contrib_group_adagrad_update", [_W, _G, _HIST], {"lr": 0.1, "rescale_grad": 0.5},
     lambda w, g, h: np.stack([w[r] - 0.1 * 0.5 * g[r] / math.sqrt(h[r] + np.mean((0.5 * g[r]) ** 2) + 1e-5)
                               for r in range(2)]), fd=False)


# -- spatial operators: loops over output positions ----------------------------------------------

def _vjp(fn, arrays, g, wrt, h=1e-6):
    """sum(fn(*arrays) * g) differentiated numerically with respect to arrays[wrt]."""
    x = arrays[wrt]
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = [a.copy() for a in arrays], [a.copy() for a in arrays]
        up[wrt][idx] += h
        down[wrt][idx] -= h
        out[idx] = (np.sum(fn(*up) * g) - np.sum(fn(*down) * g)) / (2 * h)
    return out


def _lrn(x, alpha, beta, knorm, n):
    out = np.zeros_like(x)
    for c in range(x.shape[1]):
        lo, hi = max(c - n // 2, 0), min(c + n // 2, x.shape[1] - 1)
        s = knorm + alpha / n * np.sum(x[:, lo:hi + 1] ** 2, axis=1)
        out[:, c] = x[:, c] / s ** beta
    return out


_LRN_X = U(1, 4, 2, 2)
case("LRN", [_LRN_X], {"alpha": 0.01, "beta": 0.6, "knorm": 1.5, "nsize": 3}, lambda x: _lrn(x, 0.01, 0.6, 1.5, 3))
case("LRN", [U(2, 3, 2)], {"nsize": 5}, lambda x: _lrn(x, 1e-4, 0.75, 2.0, 5))
_LRN_G = U(1, 4, 2, 2)
case("_lrn_grad", [_LRN_X, _LRN_G], {"alpha": 0.5, "beta": 0.6, "knorm": 1.5, "nsize": 3},
     lambda x, g: _vjp(lambda a: _lrn(a, 0.5, 0.6, 1.5, 3), [x], g, 0), rtol=1e-6)
case("Crop", [U(1, 2, 4, 6)], {"offset": (1, 2), "h_w": (2, 3)}, lambda x: x[:, :, 1:3, 2:5])
case("Crop", [U(1, 2, 5, 6), U(1, 1, 2, 3)], {"num_args": 2, "center_crop": True},
     lambda x, l: x[:, :, 1:3, 1:4], wrt=(0,))


def _im2col(x, k, s, d, p):
    n, c, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.zeros((n, c * k[0] * k[1], oh * ow))
    for ch in range(c):
        for i in range(k[0]):
            for j in range(k[1]):
                row = (ch * k[0] + i) * k[1] + j
                for y in range(oh):
                    for xx in range(ow):
                        out[:, row, y * ow + xx] = xp[:, ch, y * s[0] + i * d[0], xx * s[1] + j * d[1]]
    return out


_I2C = {"kernel": (2, 3), "stride": (1, 2), "dilate": (2, 1), "pad": (1, 1)}
case("im2col", [U(1, 2, 4, 5)], _I2C, lambda x: _im2col(x, (2, 3), (1, 2), (2, 1), (1, 1)))
case("im2col", [U(2, 1, 3, 3)], {"kernel": (2, 2)}, lambda x: _im2col(x, (2, 2), (1, 1), (1, 1), (0, 0)))
_COLS = U(1, 12, 12)   # im2col of (1, 2, 4, 5) with _I2C: 4 x 3 output positions
case("col2im", [_COLS], {"output_size": (4, 5), **_I2C},
     lambda c: _vjp(lambda a: _im2col(a, (2, 3), (1, 2), (2, 1), (1, 1)), [np.zeros((1, 2, 4, 5))], c, 0), rtol=1e-6)


def _grid(theta, h, w):
    out = np.zeros((theta.shape[0], 2, h, w))
    for n in range(theta.shape[0]):
        t = theta[n].reshape(2, 3)
        for i in range(h):
            for j in range(w):
                xs, ys = -1 + 2 * j / (w - 1), -1 + 2 * i / (h - 1)
                out[n, :, i, j] = t @ np.array([xs, ys, 1.0])
    return out


def _warp(flow):
    n, _, h, w = flow.shape
    out = np.zeros_like(flow)
    for i in range(h):
        for j in range(w):
            out[:, 0, i, j] = (flow[:, 0, i, j] + j) * 2 / (w - 1) - 1
            out[:, 1, i, j] = (flow[:, 1, i, j] + i) * 2 / (h - 1) - 1
    return out


case("GridGenerator", [U(2, 6)], {"transform_type": "affine", "target_shape": (3, 4)}, lambda t: _grid(t, 3, 4))
case("GridGenerator", [U(1, 2, 3, 4)], {"transform_type": "warp"}, _warp)
case("_grid_generator_grad", [U(2, 2, 3, 4)], {"transform_type": "affine", "target_shape": (3, 4)},
     lambda g: _vjp(lambda t: _grid(t, 3, 4), [np.zeros((2, 6))], g, 0), rtol=1e-6)
case("_grid_generator_grad", [U(1, 2, 3, 4)], {"transform_type": "warp"},
     lambda g: _vjp(_warp, [np.zeros((1, 2, 3, 4))], g, 0), rtol=1e-6)


def _sample(data, grid):
    n, c, h, w = data.shape
    out = np.zeros((n, c) + grid.shape[2:])
    for b in range(n):
        for i in range(grid.shape[2]):
            for j in range(grid.shape[3]):
                x = (grid[b, 0, i, j] + 1) * (w - 1) / 2
                y = (grid[b, 1, i, j] + 1) * (h - 1) / 2
                x0, y0 = math.floor(x), math.floor(y)
                for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                    if 0 <= yy < h and 0 <= xx < w:
                        out[b, :, i, j] += data[b, :, yy, xx] * (1 - abs(y - yy)) * (1 - abs(x - xx))
    return out


_SD, _SG = U(1, 2, 3, 4), U(1, 2, 2, 3, lo=-1.1, hi=1.1)
case("BilinearSampler", [_SD, _SG], {}, _sample)
case("BilinearSampler", [U(2, 1, 4, 3), U(2, 2, 3, 2, lo=-0.9, hi=0.9)], {}, _sample)
_SO = U(1, 2, 2, 3)
case("_bilinear_sampler_grad", [_SD, _SG, _SO], {},
     lambda d, g, o: (_vjp(_sample, [d, g], o, 0), _vjp(_sample, [d, g], o, 1)), rtol=1e-5)
_THETA = np.array([[0.9, 0.1, 0.05, -0.2, 1.1, 0.1]]) + U(1, 6, lo=-0.05, hi=0.05)
case("SpatialTransformer", [U(1, 2, 4, 5), _THETA], {"target_shape": (3, 3)},
     lambda d, t: _sample(d, _grid(t, 3, 3)))


def _roi_pool(data, rois, ph, pw, scale):
    out = np.zeros((rois.shape[0], data.shape[1], ph, pw))
    for r, (b, *box) in enumerate(rois):
        x1, y1, x2, y2 = [int(np.floor(v * scale + 0.5)) for v in box]
        bh, bw = max(y2 - y1 + 1, 1) / ph, max(x2 - x1 + 1, 1) / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(int(np.floor(i * bh)) + y1, 0), data.shape[2])
                he = min(max(int(np.ceil((i + 1) * bh)) + y1, 0), data.shape[2])
                ws = min(max(int(np.floor(j * bw)) + x1, 0), data.shape[3])
                we = min(max(int(np.ceil((j + 1) * bw)) + x1, 0), data.shape[3])
                if he > hs and we > ws:
                    out[r, :, i, j] = data[int(b), :, hs:he, ws:we].max(axis=(1, 2))
    return out


_FEAT = (_rng.permutation(2 * 2 * 4 * 5).reshape(2, 2, 4, 5) * 0.1)
_ROIS = np.array([[0, 0.0, 0.0, 7.0, 5.0], [1, 2.2, 1.4, 6.6, 7.9], [0, 3.0, 3.0, 3.0, 3.0]])
case("ROIPooling", [_FEAT, _ROIS], {"pooled_size": (2, 3), "spatial_scale": 0.5},
     lambda d, r: _roi_pool(d, r, 2, 3, 0.5), wrt=(0,))
_ROI_G = U(3, 2, 2, 3)
case("_roi_pooling_grad", [_FEAT, _ROIS, _ROI_G], {"pooled_size": (2, 3), "spatial_scale": 0.5},
     lambda d, r, g: _vjp(lambda a, b: _roi_pool(a, b, 2, 3, 0.5), [d, r], g, 0), rtol=1e-6, f32=False)


# -- image operators (HWC / NHWC) ------------------------------------------------------------------
_IMG = _rng.integers(0, 256, (4, 5, 3)).astype(np.float64)
_IMGS = _rng.integers(0, 256, (2, 3, 4, 3)).astype(np.float64)
case("_image_to_tensor", [_IMG.astype(np.uint8)], {},
     lambda x: np.array([[[x[h, w, c] / 255.0 for w in range(5)] for h in range(4)] for c in range(3)]), rtol=1e-6)
case("_image_to_tensor", [_IMGS], {}, lambda x: np.stack([np.moveaxis(im, -1, 0) for im in x]) / 255.0, rtol=1e-6)
case("_image_normalize", [U(3, 2, 4)], {"mean": (0.1, 0.2, 0.3), "std": (0.5, 2.0, 4.0)},
     lambda x: np.stack([(x[c] - m) / s for c, m, s in zip(range(3), (0.1, 0.2, 0.3), (0.5, 2.0, 4.0))]))
case("_image_normalize", [U(2, 2, 3, 3)], {"mean": 0.5, "std": 2.0}, lambda x: (x - 0.5) / 2.0)
case("_image_flip_left_right", [U(3, 4, 2)], {}, lambda x: x[:, ::-1])
case("_image_flip_left_right", [U(2, 3, 4, 2)], {}, lambda x: x[:, :, ::-1])
case("_image_flip_top_bottom", [U(3, 4, 2)], {}, lambda x: x[::-1])
case("_image_flip_top_bottom", [U(2, 3, 4, 2)], {}, lambda x: x[:, ::-1])
case("_image_crop", [U(4, 5, 3)], {"x": 1, "y": 2, "width": 3, "height": 2}, lambda x: x[2:4, 1:4])
case("_image_crop", [U(2, 4, 5, 1)], {"x": 0, "y": 1, "width": 4, "height": 3}, lambda x: x[:, 1:4, 0:4])


def _cv_linear(img, h, w):
    """Bilinear resizing sample by sample: source (d + 0.5) * scale - 0.5, clamped to the edges."""
    sh, sw = img.shape[:2]
    out = np.zeros((h, w, img.shape[2]))
    for i in range(h):
        fy = min(max((i + 0.5) * sh / h - 0.5, 0.0), sh - 1)
        for j in range(w):
            fx = min(max((j + 0.5) * sw / w - 0.5, 0.0), sw - 1)
            y0, x0 = int(fy), int(fx)
            y1, x1 = min(y0 + 1, sh - 1), min(x0 + 1, sw - 1)
            dy, dx = fy - y0, fx - x0
            out[i, j] = ((1 - dy) * ((1 - dx) * img[y0, x0] + dx * img[y0, x1])
                         + dy * ((1 - dx) * img[y1, x0] + dx * img[y1, x1]))
    return out


case("_image_resize", [_IMG], {"size": (7, 3)}, lambda x: _cv_linear(x, 3, 7), rtol=1e-6)
case("_image_resize", [_IMGS], {"size": (2,)}, lambda x: np.stack([_cv_linear(im, 2, 2) for im in x]), rtol=1e-6)
case("_image_resize", [_IMG], {"size": (3,), "keep_ratio": True}, lambda x: _cv_linear(x, 3, 3), rtol=1e-6)
case("_image_resize", [_IMG], {"size": (10, 8), "interp": 0},
     lambda x: x[[i * 4 // 8 for i in range(8)]][:, [j * 5 // 10 for j in range(10)]])
case("_image_resize", [_IMG.astype(np.uint8)], {"size": (7, 3)},
     lambda x: _cv_linear(x.astype(np.float64), 3, 7), rtol=0.03, fd=False)   # 11-bit fixed point, rounded

_EIG = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
case("_image_adjust_lighting", [_IMG], {"alpha": (0.1, -0.2, 0.3)},
     lambda x: x + np.array([sum(_EIG[c, k] * a * v for k, (a, v) in enumerate(zip((0.1, -0.2, 0.3),
                                                                                  (55.46, 4.794, 1.148))))
                             for c in range(3)]))
case("_image_adjust_lighting", [_IMG.astype(np.uint8)], {"alpha": (3.0, 0.0, 0.0)},
     lambda x: np.clip(x.astype(np.float64) + 3.0 * 55.46 * _EIG[:, 0], 0, 255).astype(np.uint8), fd=False)


def _check_random_flip(axis):
    def check(outs, inputs):
        x = inputs[0]
        assert np.array_equal(outs[0], x) or np.array_equal(outs[0], np.flip(x, axis)), "neither flipped nor kept"
    return check


case("_image_random_flip_left_right", [U(3, 4, 2)], {}, check=_check_random_flip(1))
case("_image_random_flip_top_bottom", [U(3, 4, 2)], {}, check=_check_random_flip(0))


def _check_factor(fn, lo, hi):
    """The output is fn(x, alpha) for one alpha in [lo, hi]: solve for alpha on one value, then
    check every value with it."""
    def check(outs, inputs):
        x, y = inputs[0].astype(np.float64), outs[0].astype(np.float64)
        grid = np.linspace(lo, hi, 2001)
        errors = [np.abs(fn(x, a) - y).max() for a in grid]
        assert min(errors) < 0.5, f"no factor in [{lo}, {hi}] explains the output (best error {min(errors)})"
    return check


_GW = np.array([0.299, 0.587, 0.114])
case("_image_random_brightness", [_IMG], {"min_factor": 0.5, "max_factor": 1.5},
     check=_check_factor(lambda x, a: x * a, 0.5, 1.5))
case("_image_random_contrast", [_IMG], {"min_factor": 0.5, "max_factor": 1.5},
     check=_check_factor(lambda x, a: x * a + (x @ _GW).mean() * (1 - a), 0.5, 1.5))
case("_image_random_saturation", [_IMG], {"min_factor": 0.5, "max_factor": 1.5},
     check=_check_factor(lambda x, a: x * a + 0.114 * x[..., 2:3] * (1 - a), 0.5, 1.5))


def _hue_colorsys(x, a):
    import colorsys
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        h, l, s = colorsys.rgb_to_hls(*(x[idx] / 255.0))
        out[idx] = np.array(colorsys.hls_to_rgb((h + a) % 1.0, l, s)) * 255.0
    return out


case("_image_random_hue", [_IMG], {"min_factor": -0.2, "max_factor": 0.2},
     check=_check_factor(_hue_colorsys, -0.2, 0.2))
case("_image_random_color_jitter", [_IMG], {"brightness": 0.3},
     check=_check_factor(lambda x, a: x * a, 0.7, 1.3))
case("_image_random_lighting", [_IMG], {"alpha_std": 0.1},
     check=lambda outs, ins: np.testing.assert_allclose(
         (outs[0] - ins[0]).std(axis=(0, 1)), 0.0, atol=1e-9))   # one colour shift for every pixel


# -- densities: each written out with math per element ---------------------------------------------
def _pdf_case(dist, arrays, fn, wrt=None, is_log=False):
    """fn(x, *params) -> log density of one sample value; parameters index by the leading dims."""
    def expect(x, *params):
        out = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            out[idx] = fn(x[idx], *[p[idx[:p.ndim]] for p in params])
        return out if is_log else np.exp(out)
    case(f"_random_pdf_{dist}", arrays, {"is_log": is_log}, expect, wrt=wrt, rtol=1e-6)


_S2 = U(2, 3)
_pdf_case("uniform", [U(2, 3, lo=0.1, hi=0.9), np.zeros(2), np.array([1.0, 2.0])], lambda x, lo, hi: -math.log(hi - lo))
_pdf_case("normal", [_S2, U(2), U(2, lo=0.3, hi=2.0)],
          lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi)))
_pdf_case("normal", [_S2, U(2), U(2, lo=0.3, hi=2.0)],
          lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi)), is_log=True)
_pdf_case("gamma", [U(2, 3, lo=0.2, hi=2.0), U(2, lo=1.0, hi=3.0), U(2, lo=0.2, hi=2.0)],
          lambda x, a, b: math.log(b ** a * x ** (a - 1) * math.exp(-b * x) / math.gamma(a)))
_pdf_case("exponential", [U(2, 3, lo=0.2, hi=2.0), U(2, lo=0.2, hi=2.0)], lambda x, lam: math.log(lam) - lam * x)
_COUNTS = np.array([[0.0, 1.0, 3.0], [2.0, 5.0, 1.0]])
_pdf_case("poisson", [_COUNTS, U(2, lo=0.5, hi=4.0)],
          lambda x, lam: math.log(lam ** x * math.exp(-lam) / math.factorial(int(x))), wrt=(1,))
_pdf_case("negative_binomial", [_COUNTS, U(2, lo=1.0, hi=4.0), U(2, lo=0.2, hi=0.8)],
          lambda x, k, p: math.log(math.gamma(x + k) / (math.factorial(int(x)) * math.gamma(k)) * p ** k * (1 - p) ** x),
          wrt=(1, 2))
_pdf_case("generalized_negative_binomial", [_COUNTS, U(2, lo=0.5, hi=3.0), U(2, lo=0.2, hi=0.9)],
          lambda x, mu, a: math.log(math.gamma(x + 1 / a) / (math.factorial(int(x)) * math.gamma(1 / a))
                                    * (1 / (1 + a * mu)) ** (1 / a) * (a * mu / (1 + a * mu)) ** x), wrt=(1, 2))
_SIMPLEX = np.array([[[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]], [[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]])
_ALPHA = U(2, 3, lo=0.5, hi=3.0)
case("_random_pdf_dirichlet", [_SIMPLEX, _ALPHA], {},
     lambda x, a: np.array([[math.gamma(a[i].sum()) / np.prod([math.gamma(v) for v in a[i]])
                             * np.prod(x[i, j] ** (a[i] - 1)) for j in range(2)] for i in range(2)]),
     wrt=(1,), rtol=1e-6)   # (the sample lives on the simplex: finite differences would leave it)
_PG = U(2, 3)
case("_random_pdf_grad", [_S2, U(2), U(2, lo=0.3, hi=2.0), np.zeros((2, 3)), _PG], {"distribution": "normal", "is_log": True},
     lambda x, m, s, o, g: (_vjp(lambda *a: _pdf_normal_log(*a), [x, m, s], g, 0),
                            _vjp(lambda *a: _pdf_normal_log(*a), [x, m, s], g, 1),
                            _vjp(lambda *a: _pdf_normal_log(*a), [x, m, s], g, 2)), rtol=1e-6)


def _pdf_normal_log(x, m, s):
    return -0.5 * ((x - m[:, None]) / s[:, None]) ** 2 - np.log(s[:, None] * math.sqrt(2 * math.pi))


# -- contrib leftovers -----------------------------------------------------------------------------

def _bilinear_at(img, y, x):
    """img (C, H, W) sampled at (y, x) with MXNet ROIAlign's edge rules."""
    c, h, w = img.shape
    if y < -1 or y > h or x < -1 or x > w:
        return np.zeros(c)
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * ((1 - dx) * img[:, y0, x0] + dx * img[:, y0, x1])
            + dy * ((1 - dx) * img[:, y1, x0] + dx * img[:, y1, x1]))


def _roi_align(data, rois, ph, pw, scale, ratio, aligned=False):
    out = np.zeros((rois.shape[0], data.shape[1], ph, pw))
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
        rh, rw = (y2 - y1, x2 - x1) if aligned else (max(y2 - y1, 1.0), max(x2 - x1, 1.0))
        gh = ratio if ratio > 0 else math.ceil(rh / ph)
        gw = ratio if ratio > 0 else math.ceil(rw / pw)
        for i in range(ph):
            for j in range(pw):
                pts = [_bilinear_at(data[int(b)], y1 + (i + (a + 0.5) / gh) * rh / ph, x1 + (j + (c + 0.5) / gw) * rw / pw)
                       for a in range(gh) for c in range(gw)]
                out[r, :, i, j] = np.mean(pts, axis=0)
    return out


_RA_DATA = U(2, 2, 5, 6)
_RA_ROIS = np.array([[0, 0.5, 0.5, 3.2, 2.6], [1, 1.0, 0.0, 4.0, 3.0]])
case("_contrib_ROIAlign", [_RA_DATA, _RA_ROIS], {"pooled_size": (2, 3), "spatial_scale": 0.8, "sample_ratio": 2},
     lambda d, r: _roi_align(d, r, 2, 3, 0.8, 2), wrt=(0,))
case("_contrib_ROIAlign", [_RA_DATA, _RA_ROIS], {"pooled_size": (2, 2), "spatial_scale": 1.0, "aligned": True},
     lambda d, r: _roi_align(d, r, 2, 2, 1.0, -1, True), wrt=(0,))
_RA_G = U(2, 2, 2, 3)
case("_roi_align_grad", [_RA_DATA, _RA_ROIS, _RA_G], {"pooled_size": (2, 3), "spatial_scale": 0.8, "sample_ratio": 2},
     lambda d, r, g: _vjp(lambda a, b: _roi_align(a, b, 2, 3, 0.8, 2), [d, r], g, 0), rtol=1e-6)
case("_contrib_allclose", [np.array([1.0, 2.0]), np.array([1.0, 2.00001])], {},
     lambda a, b: np.array(1, np.uint8), fd=False)
case("_contrib_allclose", [np.array([1.0, np.nan]), np.array([1.0, np.nan])], {"equal_nan": False},
     lambda a, b: np.array(0, np.uint8), fd=False)
_NNZ = np.array([[0.0, 1.0, 0.0], [2.0, 3.0, 0.0]])
case("_contrib_getnnz", [_NNZ], {}, lambda x: np.array([3], np.int64), fd=False)
case("_contrib_getnnz", [_NNZ], {"axis": 0}, lambda x: np.array([1, 2, 0], np.int64), fd=False)
case("_contrib_getnnz", [_NNZ], {"axis": 1}, lambda x: np.array([1, 2], np.int64), fd=False)
_CS_H, _CS_S = np.array([[0.0, 2.0, 0.0, 1.0]]), np.array([[1.0, -1.0, 1.0, -1.0]])
case("_contrib_count_sketch", [U(3, 4), _CS_H, _CS_S], {"out_dim": 3},
     lambda x, h, s: np.stack([x[:, 0] + x[:, 2], -x[:, 3], -x[:, 1]], axis=1), wrt=(0,))


def _encode(samples, matches, anchors, refs, means, stds):
    t, m = np.zeros(anchors.shape), np.zeros(anchors.shape)
    for b, i in np.ndindex(*samples.shape):
        if samples[b, i] > 0.5:
            ax0, ay0, ax1, ay1 = anchors[b, i]
            gx0, gy0, gx1, gy1 = refs[b, int(matches[b, i])]
            aw, ah, gw, gh = ax1 - ax0, ay1 - ay0, gx1 - gx0, gy1 - gy0
            raw = [((gx0 + gx1) / 2 - (ax0 + ax1) / 2) / aw, ((gy0 + gy1) / 2 - (ay0 + ay1) / 2) / ah,
                   math.log(gw / aw), math.log(gh / ah)]
            t[b, i] = [(v - mu) / sd for v, mu, sd in zip(raw, means, stds)]
            m[b, i] = 1
    return t, m


_ANCH = np.array([[[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8], [0.0, 0.0, 0.3, 0.4]]])
_REFS = np.array([[[0.15, 0.1, 0.55, 0.7], [0.3, 0.3, 0.8, 0.9]]])
case("_contrib_box_encode", [np.array([[1.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]), _ANCH, _REFS,
                             np.array([0.0, 0.1, 0.0, -0.1]), np.array([0.1, 0.1, 0.2, 0.2])], {}, _encode, fd=False)


def _decode(d, anchors, stds=(1, 1, 1, 1), clip=-1.0, corner=False):
    out = np.zeros(d.shape)
    for b, i in np.ndindex(*d.shape[:2]):
        a = anchors[0, i]
        ax, ay, aw, ah = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[2] - a[0], a[3] - a[1]) if corner else a
        dw, dh = d[b, i, 2] * stds[2], d[b, i, 3] * stds[3]
        if clip > 0:
            dw, dh = min(dw, clip), min(dh, clip)
        x, y = d[b, i, 0] * stds[0] * aw + ax, d[b, i, 1] * stds[1] * ah + ay
        w, h = math.exp(dw) * aw, math.exp(dh) * ah
        out[b, i] = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]
    return out


case("_contrib_box_decode", [U(2, 3, 4), _ANCH], {"std0": 0.1, "std1": 0.1, "std2": 0.2, "std3": 0.2, "clip": 0.1,
                                                  "format": "corner"},
     lambda d, a: _decode(d, a, (0.1, 0.1, 0.2, 0.2), 0.1, True), fd=False)
case("_contrib_box_decode", [U(1, 3, 4), _ANCH], {}, lambda d, a: _decode(d, a), fd=False)


def _greedy(score, ascend, thr, topk):
    pairs = sorted(((v, i, j) for (i, j), v in np.ndenumerate(score)), key=lambda t: t[0] if ascend else -t[0])
    rows, cols, n = -np.ones(score.shape[0]), -np.ones(score.shape[1]), 0
    for v, i, j in pairs:
        if (ascend and v > thr) or (not ascend and v < thr):
            break
        if rows[i] < 0 and cols[j] < 0:
            rows[i], cols[j], n = j, i, n + 1
            if 0 < topk < n:
                break
    return rows, cols


_SC = _rng.permutation(12).reshape(3, 4) / 12.0
case("_contrib_bipartite_matching", [_SC], {"threshold": 0.3}, lambda s: _greedy(s, False, 0.3, -1), fd=False)
case("_contrib_bipartite_matching", [np.stack([_SC, _SC[::-1]])], {"threshold": 0.6, "is_ascend": True, "topk": 1},
     lambda s: tuple(np.stack(p) for p in zip(*[_greedy(m, True, 0.6, 1) for m in s])), fd=False)


# -- softmax / softmin over the first `length` positions ---------------------------------------------
def _masked_softmax(x, length, axis, sign=1.0):
    out = np.zeros_like(x)
    xt, ot = np.moveaxis(x, axis, -1), np.moveaxis(out, axis, -1)
    for idx in np.ndindex(*xt.shape[:-1]):
        n = int(length[idx])
        ot[idx][:n] = _softmax(sign * xt[idx][:n], 0)
    return out


case("softmax", [U(3, 4), np.array([1.0, 3.0, 4.0])], {"use_length": True},
     lambda x, n: _masked_softmax(x, n, -1), wrt=(0,))
case("softmin", [U(3, 2, 4), np.array([[1.0, 2.0, 4.0, 3.0], [3.0, 3.0, 1.0, 2.0]])], {"axis": 0, "use_length": True},
     lambda x, n: _masked_softmax(x, n, 0, -1.0), wrt=(0,))


# -- Correlation: one output value at a time --------------------------------------------------------
def _correlate(a, b, k, md, s1, s2, pad, multiply=True):
    pa = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    pb = np.pad(b, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    r = md // s2
    border = md + (k - 1) // 2
    oh = math.ceil((pa.shape[2] - 2 * border) / s1)
    ow = math.ceil((pa.shape[3] - 2 * border) / s1)
    out = np.zeros((a.shape[0], (2 * r + 1) ** 2, oh, ow))
    for n, tc, i, j in np.ndindex(*out.shape):
        dy, dx = (tc // (2 * r + 1) - r) * s2, (tc % (2 * r + 1) - r) * s2
        y, x = i * s1 + md, j * s1 + md
        p, q = pa[n, :, y:y + k, x:x + k], pb[n, :, y + dy:y + dy + k, x + dx:x + dx + k]
        out[n, tc, i, j] = (p * q if multiply else np.abs(p - q)).sum() / (k * k * a.shape[1])
    return out


_C1, _C2 = U(1, 2, 5, 6), U(1, 2, 5, 6)
case("Correlation", [_C1, _C2], {"kernel_size": 1, "max_displacement": 1, "pad_size": 1},
     lambda a, b: _correlate(a, b, 1, 1, 1, 1, 1))
case("Correlation", [_C1, _C2], {"kernel_size": 3, "max_displacement": 2, "stride1": 2, "stride2": 2, "pad_size": 3,
                                 "is_multiply": False},
     lambda a, b: _correlate(a, b, 3, 2, 2, 2, 3, False))
_CG = U(1, 9, 5, 6)
case("_correlation_grad", [_C1, _C2, _CG], {"kernel_size": 1, "max_displacement": 1, "pad_size": 1},
     lambda a, b, g: (_vjp(lambda x, y: _correlate(x, y, 1, 1, 1, 1, 1), [a, b], g, 0),
                      _vjp(lambda x, y: _correlate(x, y, 1, 1, 1, 1, 1), [a, b], g, 1)), rtol=1e-6)


# -- multi-tensor AdamW / LAMB: new weights, then each weight's states -------------------------------
def _lamb_full(w, g, m, v, lr, wd, t, b1=0.9, b2=0.999, eps=1e-6):
    m2 = b1 * m + (1 - b1) * g
    v2 = b2 * v + (1 - b2) * g * g
    d = (m2 / (1 - b1 ** t)) / (np.sqrt(v2 / (1 - b2 ** t)) + eps) + wd * w
    r1, r2 = math.sqrt((w * w).sum()), math.sqrt((d * d).sum())
    return w - lr * (r1 / r2) * d, m2, v2


_V2 = U(3, lo=0.1, hi=1.0)
case("_multi_lamb_update", [_W, _G, U(2, 3), _POS, _W[0], _G[0], U(3), _V2],
     {"learning_rates": (0.1, 0.2), "wds": (0.01, 0.0), "step_count": (2, 3), "num_tensors": 2},
     lambda w0, g0, m0, v0, w1, g1, m1, v1: (lambda a, b: (a[0], b[0], a[1], a[2], b[1], b[2]))(
         _lamb_full(w0, g0, m0, v0, 0.1, 0.01, 2), _lamb_full(w1, g1, m1, v1, 0.2, 0.0, 3)), fd=False)
case("_multi_mp_lamb_update", [_W, _G, U(2, 3), _POS, _W + 1],
     {"learning_rates": (0.1,), "wds": (0.01,), "step_count": (2,)},
     lambda w, g, m, v, w32: (lambda a: (a[0], a[1], a[2], a[0]))(_lamb_full(w32, g, m, v, 0.1, 0.01, 2)), fd=False)
_AM, _AV = U(2, 3), _POS
case("_multi_adamw_update", [_W, _G, _AM, _AV, np.array([0.5])],
     {"lrs": (0.01,), "wds": (0.1,), "etas": (0.5,)},
     lambda w, g, m, v, s: (_elementwise(_adamw)(w, g, m, v), 0.9 * m + 0.1 * 0.5 * g,
                            0.999 * v + 0.001 * (0.5 * g) ** 2), fd=False)
case("_multi_mp_adamw_update", [_W, _G, _AM, _AV, _W + 1, np.array([np.nan])],
     {"lrs": (0.01,), "wds": (0.1,), "etas": (0.5,)},
     lambda w, g, m, v, w32, s: (w32, m, v, w32), fd=False)


# -- MultiBoxDetection: zero offsets keep the anchors; worked by hand -------------------------------
# anchors 0 and 1 overlap (IoU 0.6), 2 is apart; class probabilities (background first):
#   anchor 0: class 1 at 0.7, anchor 1: class 1 at 0.6 (suppressed by 0), anchor 2: class 2 at 0.5
_MB_CLS = np.array([[[0.3, 0.4, 0.5], [0.7, 0.6, 0.0], [0.0, 0.0, 0.5]]])
_MB_ANC = np.array([[[0.0, 0.0, 0.4, 0.4], [0.0, 0.1, 0.4, 0.5], [0.6, 0.6, 0.9, 0.9]]])
case("_contrib_MultiBoxDetection", [_MB_CLS, np.zeros((1, 12)), _MB_ANC], {},
     lambda c, l, a: np.array([[[0, 0.7, 0.0, 0.0, 0.4, 0.4], [-1, 0.6, 0.0, 0.1, 0.4, 0.5],
                                [1, 0.5, 0.6, 0.6, 0.9, 0.9]]]), fd=False)
case("_contrib_MultiBoxDetection", [_MB_CLS, np.zeros((1, 12)), _MB_ANC], {"threshold": 0.55, "nms_threshold": 0.7},
     lambda c, l, a: np.array([[[0, 0.7, 0.0, 0.0, 0.4, 0.4], [0, 0.6, 0.0, 0.1, 0.4, 0.5], [-1] * 6]]), fd=False)


# -- MultiBoxTarget, worked by hand: object 0 (class 0) sits on anchor 0 (IoU 1) and overlaps anchor 1
# (IoU 0.6 > 0.5); anchor 2 is apart. Targets: anchor 0 zero offsets, anchor 1 (0, (0.2 - 0.3) / 0.4 / 0.1,
# 0, 0): centres 0.2 and 0.3, height 0.4, variance 0.1
_MT_ANC = np.array([[[0.0, 0.0, 0.4, 0.4], [0.0, 0.1, 0.4, 0.5], [0.6, 0.6, 0.9, 0.9]]])
_MT_LABEL = np.array([[[0.0, 0.0, 0.0, 0.4, 0.4], [-1.0, -1.0, -1.0, -1.0, -1.0]]])
_MT_CLS = np.array([[[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]]])   # background logits: anchor 2's is the lowest
case("_contrib_MultiBoxTarget", [_MT_ANC, _MT_LABEL, _MT_CLS], {},
     lambda a, l, c: (np.array([[0, 0, 0, 0, 0, -2.5, 0, 0, 0, 0, 0, 0]]),
                      np.array([[1.0] * 8 + [0.0] * 4]), np.array([[1.0, 1.0, 0.0]])), fd=False)
