"""Matrix products: dot, batch_dot, FullyConnected. They lower to the backend's GEMM."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, Library, register
from .common import same_dtype, like


def _dot_dims(a, b, transpose_a, transpose_b):
    """The shapes (M..., K) and (K, N...) the product contracts. MXNet's transpose of an N-d
    operand is that of its 2-D view: transpose_a makes lhs's first axis the contracted one
    (lhs seen as (K, M) and transposed), transpose_b rhs's last (rhs seen as (N, K)); for
    matrices that is the ordinary transpose."""
    ash = a.shape[1:] + a.shape[:1] if transpose_a else a.shape
    bsh = b.shape[-1:] + b.shape[:-1] if transpose_b else b.shape
    return ash, bsh


def _lhs_view(x, transpose_a):
    """lhs with its contracted axis last (numpy)."""
    return np.moveaxis(x, 0, -1) if transpose_a else x


def _rhs_view(x, transpose_b):
    """rhs with its contracted axis first (numpy)."""
    return np.moveaxis(x, -1, 0) if transpose_b else x


def _dot_infer(a, b, transpose_a, transpose_b, forward_stype=None):
    same_dtype("dot", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"dot: inputs must have at least one dimension, got {a.shape} and {b.shape}")
    if (transpose_a and a.ndim == 1) or (transpose_b and b.ndim == 1):
        raise ShapeError(f"dot: cannot transpose a vector (lhs {a.shape}, transpose_a={transpose_a}; "
                         f"rhs {b.shape}, transpose_b={transpose_b})")
    ash, bsh = _dot_dims(a, b, transpose_a, transpose_b)
    if ash[-1] != bsh[0]:
        raise ShapeError(f"dot: lhs {a.shape}{' (transposed)' if transpose_a else ''} has {ash[-1]} columns "
                         f"but rhs {b.shape}{' (transposed)' if transpose_b else ''} has {bsh[0]} rows")
    return like(a, ash[:-1] + bsh[1:] or (1,))    # vector . vector: shape (1,), as MXNet 1.x


def _dot_np(a, b, transpose_a, transpose_b, forward_stype=None):
    a, b = _lhs_view(a, transpose_a), _rhs_view(b, transpose_b)
    if a.ndim > 2 or b.ndim > 2:
        return np.tensordot(a, b, axes=1).astype(a.dtype, copy=False)
    out = np.dot(a, b)
    return np.reshape(out, (1,)) if np.ndim(out) == 0 else out


def _wanted(x) -> bool:
    """False only for an eager array whose gradient the running backward walk discards
    (NDArray._grad_wanted); a symbolic value is always wanted (dead code elimination drops it)."""
    ask = getattr(x, "_grad_wanted", None)
    return True if ask is None else ask()


def _only_wanted(ins, grads):
    """grads, with None for the inputs nobody reads a gradient of. The products are built
    lazily (callables), so a skipped one is never computed."""
    return [g() if _wanted(x) else None for x, g in zip(ins, grads)]


def _dot_grad(F, ins, outs, gs, attrs):
    a, b = ins
    g = gs[0]
    if a.ndim != 2 or b.ndim != 2:
        # N-d: out is the (m, K) x (K, n) product of A = a (its first axis moved last when
        # transpose_a) and B = b (its last axis moved first when transpose_b), each flattened
        # around the contracted axis K; the gradients move those axes back
        ta, tb = attrs["transpose_a"], attrs["transpose_b"]
        ash, bsh = _dot_dims(a, b, ta, tb)
        m, k, n = int(np.prod(ash[:-1])), ash[-1], int(np.prod(bsh[1:]))
        first_last = tuple(range(1, a.ndim)) + (0,)             # axis 0 to the end
        last_first = (b.ndim - 1,) + tuple(range(b.ndim - 1))   # the last axis to the front
        a2 = F.Reshape(F.transpose(a, axes=first_last) if ta else a, shape=(m, k))
        b2 = F.Reshape(F.transpose(b, axes=last_first) if tb else b, shape=(k, n))
        g2 = F.Reshape(g, shape=(m, n))
        ga = F.Reshape(F.dot(g2, b2, transpose_b=True), shape=ash)
        gb = F.Reshape(F.dot(a2, g2, transpose_a=True), shape=bsh)
        back_a = (a.ndim - 1,) + tuple(range(a.ndim - 1))
        back_b = tuple(range(1, b.ndim)) + (0,)
        return [F.transpose(ga, axes=back_a) if ta else ga, F.transpose(gb, axes=back_b) if tb else gb]
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    d = F.dot
    if not ta and not tb:
        return _only_wanted(ins, [lambda: d(g, b, transpose_b=True), lambda: d(a, g, transpose_a=True)])
    if ta and not tb:
        return _only_wanted(ins, [lambda: d(b, g, transpose_b=True), lambda: d(a, g)])
    if not ta and tb:
        return _only_wanted(ins, [lambda: d(g, b), lambda: d(g, a, transpose_a=True)])
    return _only_wanted(ins, [lambda: d(b, g, transpose_a=True, transpose_b=True),
                              lambda: d(g, a, transpose_a=True, transpose_b=True)])


_DOT_ATTRS = {"transpose_a": Attr("bool", False), "transpose_b": Attr("bool", False),
              "forward_stype": Attr("str", None, optional=True)}
def _dot_flops(ins, outs, attrs) -> float:
    """2*M*N*K: out has M*N elements and the inputs M*K and K*N (whatever is transposed)."""
    a, b, out = ins[0].size, ins[1].size, outs[0].size
    k = (a * b / out) ** 0.5 if out else 0.0
    return 2.0 * out * k


register(OpDef("dot", infer=_dot_infer, compute=_dot_np, inputs=("lhs", "rhs"), attrs=_DOT_ATTRS,
               gradient=_dot_grad, lowering=Library("gemm"), flops=_dot_flops))


def _batch_dot_infer(a, b, transpose_a, transpose_b, forward_stype=None):
    same_dtype("batch_dot", a, b)
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ShapeError(f"batch_dot: expects two 3-D inputs with the same batch size, got {a.shape} and {b.shape}")
    m, k = (a.shape[2], a.shape[1]) if transpose_a else (a.shape[1], a.shape[2])
    k2, n = (b.shape[2], b.shape[1]) if transpose_b else (b.shape[1], b.shape[2])
    if k != k2:
        raise ShapeError(f"batch_dot: lhs {a.shape} gives inner size {k} but rhs {b.shape} gives {k2}")
    return like(a, (a.shape[0], m, n))


def _batch_dot_np(a, b, transpose_a, transpose_b, forward_stype=None):
    a = a.transpose(0, 2, 1) if transpose_a else a
    b = b.transpose(0, 2, 1) if transpose_b else b
    return np.matmul(a, b)


def _batch_dot_grad(F, ins, outs, gs, attrs):
    a, b = ins
    g = gs[0]
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    bd = F.batch_dot
    if not ta and not tb:
        return _only_wanted(ins, [lambda: bd(g, b, transpose_b=True), lambda: bd(a, g, transpose_a=True)])
    if ta and not tb:
        return _only_wanted(ins, [lambda: bd(b, g, transpose_b=True), lambda: bd(a, g)])
    if not ta and tb:
        return _only_wanted(ins, [lambda: bd(g, b), lambda: bd(g, a, transpose_a=True)])
    return _only_wanted(ins, [lambda: bd(b, g, transpose_a=True, transpose_b=True),
                              lambda: bd(g, a, transpose_a=True, transpose_b=True)])


register(OpDef("batch_dot", infer=_batch_dot_infer, compute=_batch_dot_np, inputs=("lhs", "rhs"),
               attrs=_DOT_ATTRS, gradient=_batch_dot_grad, lowering=Library("gemm"),
               flops=lambda ins, outs, a: 2.0 * outs[0].size * ins[0].shape[1 if a["transpose_a"] else 2]))


# -- FullyConnected ---------------------------------------------------------------------------
_FC_ATTRS = {"num_hidden": Attr("int"), "no_bias": Attr("bool", False), "flatten": Attr("bool", True)}


def _fc_inputs(attrs):
    return ("data", "weight") if attrs["no_bias"] else ("data", "weight", "bias")


def _fc_infer(x, w, *bias, num_hidden, no_bias, flatten):
    same_dtype("FullyConnected", x, w, *bias)
    features = int(np.prod(x.shape[1:])) if flatten else x.shape[-1]
    if w.shape != (num_hidden, features):
        if w.ndim == 2 and w.shape[0] == num_hidden:
            raise ShapeError(f"FullyConnected: input {x.shape} has {features} features but weight expects "
                             f"{w.shape[1]} (weight shape {w.shape})")
        raise ShapeError(f"FullyConnected: weight has shape {w.shape}, expected ({num_hidden}, {features}) "
                         f"for num_hidden={num_hidden} and input {x.shape}")
    if bias and bias[0].shape != (num_hidden,):
        raise ShapeError(f"FullyConnected: bias has shape {bias[0].shape}, expected ({num_hidden},)")
    out = (x.shape[0], num_hidden) if flatten else x.shape[:-1] + (num_hidden,)
    return like(x, out)


def _fc_np(x, w, *bias, num_hidden, no_bias, flatten):
    # sizes spelled out: numpy cannot infer a -1 beside a zero-size batch
    x2 = x.reshape(x.shape[0], int(np.prod(x.shape[1:]))) if flatten else \
        x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1])
    y = x2 @ w.T
    if bias:
        y = y + bias[0]
    return y.reshape((x.shape[0], num_hidden) if flatten else x.shape[:-1] + (num_hidden,)).astype(x.dtype, copy=False)


def _fc_grad(F, ins, outs, gs, attrs):
    x, w = ins[0], ins[1]
    g = gs[0]
    k = w.shape[1]
    x2 = F.Reshape(x, shape=(-1, k)) if x.ndim != 2 else x
    g2 = F.Reshape(g, shape=(-1, attrs["num_hidden"])) if g.ndim != 2 else g
    def gx():
        out = F.dot(g2, w)
        return F.Reshape(out, shape=x.shape) if x.ndim != 2 else out
    grads = [gx, lambda: F.dot(g2, x2, transpose_a=True)]
    if not attrs["no_bias"]:
        grads.append(lambda: F.sum(g2, axis=0))
    return _only_wanted(ins, grads)


def _fc_infer_missing(in_types, attrs):
    """Weight (num_hidden, features) and bias (num_hidden,) from the data alone (sym.infer_shape)."""
    x = in_types[0]
    if x is None:
        return in_types
    n = attrs["num_hidden"]
    features = int(np.prod(x.shape[1:])) if attrs["flatten"] else x.shape[-1]
    want = [x, like(x, (n, features)), like(x, (n,))]
    return [t if t is not None else want[i] for i, t in enumerate(in_types)]


register(OpDef("FullyConnected", infer=_fc_infer, compute=_fc_np, inputs=_fc_inputs, attrs=_FC_ATTRS,
               gradient=_fc_grad, infer_missing=_fc_infer_missing, lowering=Library("gemm"),
               # a multiply-add per weight column per output, plus the bias
               flops=lambda ins, outs, a: outs[0].size * (2.0 * ins[1].shape[1] + (len(ins) > 2))))
