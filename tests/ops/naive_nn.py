"""Direct, loop-per-output-element definitions of the neural-network operators, written from the
MXNet documentation and independent of graphc's references (which use strided views and
tensordot): the expectations in op_cases.py. Slow; for tiny shapes only."""
from __future__ import annotations

import itertools
import math

import numpy as np


def _tup(v, nd, default):
    return tuple(v) if v else (default,) * nd


def conv(x, w, b=None, stride=(), pad=(), dilate=(), groups=1):
    nd = x.ndim - 2
    k = w.shape[2:]
    s, p, d = _tup(stride, nd, 1), _tup(pad, nd, 0), _tup(dilate, nd, 1)
    out = [(x.shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    F, cg = w.shape[0], w.shape[1]
    fg = F // groups
    y = np.zeros((x.shape[0], F) + tuple(out))
    for n, f in itertools.product(range(x.shape[0]), range(F)):
        grp = f // fg
        for o in itertools.product(*map(range, out)):
            acc = 0.0
            for c in range(cg):
                for kk in itertools.product(*map(range, k)):
                    pos = [o[i] * s[i] + kk[i] * d[i] - p[i] for i in range(nd)]
                    if all(0 <= pos[i] < x.shape[2 + i] for i in range(nd)):
                        acc += w[(f, c) + kk] * x[(n, grp * cg + c) + tuple(pos)]
            y[(n, f) + o] = acc + (b[f] if b is not None else 0.0)
    return y


def deconv(x, w, b=None, stride=(), pad=(), dilate=(), adj=(), groups=1):
    """Every input element spreads w-weighted copies over the output: out[i*s + k*d - p] += x[i] w[k]."""
    nd = x.ndim - 2
    k = w.shape[2:]
    s, p, d, a = _tup(stride, nd, 1), _tup(pad, nd, 0), _tup(dilate, nd, 1), _tup(adj, nd, 0)
    out = [s[i] * (x.shape[2 + i] - 1) + d[i] * (k[i] - 1) + 1 - 2 * p[i] + a[i] for i in range(nd)]
    cin, fg = w.shape[0], w.shape[1]
    cg = cin // groups
    y = np.zeros((x.shape[0], fg * groups) + tuple(out))
    for n, c in itertools.product(range(x.shape[0]), range(cin)):
        grp = c // cg
        for i in itertools.product(*map(range, x.shape[2:])):
            for f in range(fg):
                for kk in itertools.product(*map(range, k)):
                    pos = [i[j] * s[j] + kk[j] * d[j] - p[j] for j in range(nd)]
                    if all(0 <= pos[j] < out[j] for j in range(nd)):
                        y[(n, grp * fg + f) + tuple(pos)] += x[(n, c) + i] * w[(c, f) + kk]
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nd)
    return y


def conv_weight_grad(gy, x, kernel, stride=(), pad=(), dilate=(), groups=1):
    """d/dw of sum(gy * conv(x, w)), one weight element at a time."""
    nd = x.ndim - 2
    s, p, d = _tup(stride, nd, 1), _tup(pad, nd, 0), _tup(dilate, nd, 1)
    F = gy.shape[1]
    cg = x.shape[1] // groups
    fg = F // groups
    dw = np.zeros((F, cg) + tuple(kernel))
    for f, c in itertools.product(range(F), range(cg)):
        grp = f // fg
        for kk in itertools.product(*map(range, kernel)):
            acc = 0.0
            for n in range(x.shape[0]):
                for o in itertools.product(*map(range, gy.shape[2:])):
                    pos = [o[i] * s[i] + kk[i] * d[i] - p[i] for i in range(nd)]
                    if all(0 <= pos[i] < x.shape[2 + i] for i in range(nd)):
                        acc += gy[(n, f) + o] * x[(n, grp * cg + c) + tuple(pos)]
            dw[(f, c) + kk] = acc
    return dw


def pool(x, kernel, pool_type="max", stride=(), pad=(), convention="valid", count_include_pad=True,
         global_pool=False, p_value=None):
    """MXNet's pooling windows, clipped one output element at a time."""
    nd = x.ndim - 2
    if global_pool:
        kernel, stride, pad = x.shape[2:], (1,) * nd, (0,) * nd
    s, p = _tup(stride, nd, 1), _tup(pad, nd, 0)
    n = x.shape[2:]
    if convention == "valid":
        out = [(n[i] + 2 * p[i] - kernel[i]) // s[i] + 1 for i in range(nd)]
    elif convention == "full":
        out = [math.ceil((n[i] + 2 * p[i] - kernel[i]) / s[i]) + 1 for i in range(nd)]
    else:
        out = [math.ceil((n[i] + 2 * p[i]) / s[i]) for i in range(nd)]
    if global_pool:
        out = [1] * nd
    y = np.zeros(x.shape[:2] + tuple(out))
    for o in itertools.product(*map(range, out)):
        lo = [o[i] * s[i] - p[i] for i in range(nd)]
        hi = [min(lo[i] + kernel[i], n[i] + p[i]) for i in range(nd)]
        size_incl = math.prod(hi[i] - lo[i] for i in range(nd))
        lo = [max(v, 0) for v in lo]
        hi = [min(hi[i], n[i]) for i in range(nd)]
        size_excl = math.prod(hi[i] - lo[i] for i in range(nd))
        win = x[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in zip(lo, hi))].reshape(x.shape[:2] + (-1,))
        if pool_type == "max":
            v = win.max(-1)
        elif pool_type == "sum":
            v = win.sum(-1)
        elif pool_type == "avg":
            v = win.sum(-1) / (size_incl if count_include_pad else size_excl)
        else:
            v = (win ** p_value).sum(-1) ** (1.0 / p_value)
        y[(slice(None), slice(None)) + o] = v
    return y


def batch_norm(x, gamma, beta, mm, mv, eps=1e-3, momentum=0.9, fix_gamma=True, training=False, axis=1):
    red = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = -1
    if training:
        mean = x.mean(axis=red)
        var = ((x - mean.reshape(shape)) ** 2).mean(axis=red)
    else:
        mean, var = mm, mv
    g = np.ones_like(gamma) if fix_gamma else gamma
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * g.reshape(shape) + beta.reshape(shape)
    if training:
        new_mm, new_mv = momentum * mm + (1 - momentum) * mean, momentum * mv + (1 - momentum) * var
    else:
        new_mm, new_mv = mm, mv
    return out, mean, 1 / np.sqrt(var + eps), new_mm, new_mv
