"""MXNet 1.x operators that fill gaps beside the elementwise and shape families: erfinv,
hard_sigmoid, rint (ties go down, as MXNet's), softmin, cumsum, depth_to_space/space_to_depth,
reshape_like, argmax_channel, khatri_rao, ravel/unravel of indices, _histogram, _split_v2,
fill_element_0index and _onehot_encode. Each has its numpy reference and, where the result
depends smoothly on the input, a gradient built from other operators. None of them has a
lowering: compiled graphs run them as host steps."""
from __future__ import annotations

import math

import numpy as np

from .. import layout as L
from .. import scalar as S
from .. import special_formulas as _special
from ..attrs import Attr
from ..errors import ShapeError, OpAttributeError
from ..registry import OpDef, Elementwise, Movement, View, register
from .common import like, normalize_axes
from .length_mask import with_length


def _same(x, **_):
    return x


# -- erfinv ----------------------------------------------------------------------------------------

def _erfinv_np(x):
    """Giles' approximation (single precision) polished by two Newton steps on math.erf: the
    result is the double-precision inverse without scipy."""
    x0 = np.asarray(x)
    v = x0.astype(np.float64)
    with np.errstate(all="ignore"):
        w = -np.log((1.0 - v) * (1.0 + v))
        small = w < 5.0
        ws = w - 2.5
        p_small = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                  -0.00417768164, 0.246640727, 1.50140941):
            p_small = c + p_small * ws
        wl = np.sqrt(np.where(small, 5.0, w)) - 3.0
        p_large = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                  0.00943887047, 1.00167406, 2.83297682):
            p_large = c + p_large * wl
        y = np.where(small, p_small, p_large) * v
        erf = np.vectorize(math.erf, otypes=[np.float64])
        inside = np.abs(v) < 1.0
        for _ in range(2):
            if not v.size:
                break
            step = (erf(np.where(inside, y, 0.0)) - v) / (2.0 / math.sqrt(math.pi) * np.exp(-y * y))
            y = np.where(inside, y - step, y)
        y = np.where(v == 1.0, np.inf, np.where(v == -1.0, -np.inf, np.where(np.abs(v) > 1.0, np.nan, y)))
    return y.astype(x0.dtype)


register(OpDef("erfinv", infer=_same, compute=_erfinv_np,
               lowering=Elementwise(_special.erfinv, _special.float_only),
               gradient=lambda F, ins, outs, gs, attrs: [gs[0] * F.exp(F.square(outs[0])) * (math.sqrt(math.pi) / 2)],
               doc="The inverse error function: erf(erfinv(x)) = x on (-1, 1); +-inf at +-1, NaN beyond."))


# -- hard_sigmoid, rint ----------------------------------------------------------------------------

def _hard_sigmoid_np(x, alpha, beta):
    return np.clip(x * x.dtype.type(alpha) + x.dtype.type(beta), 0, 1).astype(x.dtype)


def _hard_sigmoid_grad(F, ins, outs, gs, attrs):
    y = outs[0]
    return [gs[0] * (y > 0.0) * (y < 1.0) * attrs["alpha"]]


register(OpDef("hard_sigmoid", infer=_same, compute=_hard_sigmoid_np,
               attrs={"alpha": Attr("float", 0.2), "beta": Attr("float", 0.5)}, gradient=_hard_sigmoid_grad,
               lowering=Elementwise(lambda x, alpha, beta: S.minimum(S.maximum(x * alpha + beta, 0.0), 1.0)),
               doc="max(0, min(1, alpha x + beta)); the gradient is alpha strictly between the clips."))


def _rint_np(x):
    # MXNet's rint: the nearer of floor and ceil, floor on a tie (rint(2.5) = 2, rint(-2.5) = -3)
    lo, hi = np.floor(x), np.ceil(x)
    return np.where(x - lo <= hi - x, lo, hi).astype(x.dtype)


register(OpDef("rint", infer=_same, compute=_rint_np, gradient=lambda F, ins, outs, gs, attrs: [None],
               lowering=Elementwise(lambda x: S.select(x - S.floor(x) <= S.ceil(x) - x, S.floor(x), S.ceil(x))),
               doc="Nearest integer, ties to the lower one (MXNet's rint, unlike numpy's ties to even)."))


# -- softmin ---------------------------------------------------------------------------------------
_SOFTMIN_ATTRS = {"axis": Attr("int", -1), "temperature": Attr("float", None, optional=True),
                  "dtype": Attr("dtype", None, optional=True), "use_length": Attr("bool", False)}


def _softmin_np(x, axis, temperature=None, dtype=None, use_length=False):
    z = -x.astype(np.float64) / (1.0 if temperature is None else temperature)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(dtype or x.dtype)


def _softmin_infer(x, axis, temperature=None, dtype=None, use_length=False):
    normalize_axes(axis, x.ndim, "softmin")
    return like(x, dtype=dtype or x.dtype)


def _softmin_grad(F, ins, outs, gs, attrs):
    y, g = outs[0], gs[0]
    t = attrs["temperature"] or 1.0
    return [y * (F.sum(g * y, axis=attrs["axis"], keepdims=True) - g) / t]


register(OpDef("softmin", **with_length("softmin", _softmin_infer, _softmin_np, _softmin_grad, fill="highest"),
               attrs=_SOFTMIN_ATTRS,
               doc="softmax(-x / temperature) along `axis` (over the first `length` positions with use_length)."))


# -- cumsum (MXNet's _np_cumsum, nd.cumsum) --------------------------------------------------------

def _cumsum_infer(x, axis=None, dtype=None):
    if axis is None:
        return like(x, (x.size,), dtype or x.dtype)
    normalize_axes(axis, x.ndim, "_np_cumsum")
    return like(x, dtype=dtype or x.dtype)


def _cumsum_np(x, axis=None, dtype=None):
    return np.cumsum(x, axis=axis, dtype=dtype or x.dtype)


def _cumsum_grad(F, ins, outs, gs, attrs):
    x, g, axis = ins[0], gs[0], attrs["axis"]
    if axis is None:
        back = F.reverse(F._np_cumsum(F.reverse(g, axis=0), axis=0), axis=0)
        return [F.reshape(back, shape=x.shape)]
    return [F.reverse(F._np_cumsum(F.reverse(g, axis=axis), axis=axis), axis=axis)]


register(OpDef("_np_cumsum", infer=_cumsum_infer, compute=_cumsum_np, inputs=("a",),
               attrs={"axis": Attr("int", None, optional=True), "dtype": Attr("dtype", None, optional=True)},
               gradient=_cumsum_grad, aliases=("cumsum",),
               doc="Running sums along `axis` (of the flattened input when axis is None)."))


# -- depth_to_space / space_to_depth (NCHW) --------------------------------------------------------

def _d2s_infer(x, block_size):
    b = block_size
    if x.ndim != 4 or b < 1 or x.shape[1] % (b * b):
        raise ShapeError(f"depth_to_space: data must be 4-D NCHW with channels divisible by block_size^2="
                         f"{b * b}, got {x.shape}")
    n, c, h, w = x.shape
    return like(x, (n, c // (b * b), h * b, w * b))


def _d2s_np(x, block_size):
    b = block_size
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return np.ascontiguousarray(y.reshape(n, c // (b * b), h * b, w * b))


def _s2d_infer(x, block_size):
    b = block_size
    if x.ndim != 4 or b < 1 or x.shape[2] % b or x.shape[3] % b:
        raise ShapeError(f"space_to_depth: data must be 4-D NCHW with height and width divisible by "
                         f"block_size={b}, got {x.shape}")
    n, c, h, w = x.shape
    return like(x, (n, c * b * b, h // b, w // b))


def _s2d_np(x, block_size):
    b = block_size
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return np.ascontiguousarray(y.reshape(n, c * b * b, h // b, w // b))


def _d2s_pieces(in_types, out_types, attrs):
    """One strided copy: the output, seen as _d2s_np's transposed 6-D view, reads the input."""
    b = attrs["block_size"]
    n, c, h, w = in_types[0].shape
    view = L.probe((n, c, h, w)).reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return [L.gather(view, view.shape)]


def _s2d_pieces(in_types, out_types, attrs):
    b = attrs["block_size"]
    n, c, h, w = in_types[0].shape
    view = L.probe((n, c, h, w)).reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return [L.gather(view, view.shape)]


register(OpDef("depth_to_space", infer=_d2s_infer, compute=_d2s_np, attrs={"block_size": Attr("int")},
               lowering=Movement(_d2s_pieces),
               gradient=lambda F, ins, outs, gs, attrs: [F.space_to_depth(gs[0], block_size=attrs["block_size"])],
               doc="Moves blocks of channels into spatial blocks (DCR order, as MXNet and ONNX's default)."))
register(OpDef("space_to_depth", infer=_s2d_infer, compute=_s2d_np, attrs={"block_size": Attr("int")},
               lowering=Movement(_s2d_pieces),
               gradient=lambda F, ins, outs, gs, attrs: [F.depth_to_space(gs[0], block_size=attrs["block_size"])],
               doc="The inverse of depth_to_space: spatial blocks become channels."))


# -- reshape_like ----------------------------------------------------------------------------------
_RL_ATTRS = {k: Attr("int", None, optional=True) for k in ("lhs_begin", "lhs_end", "rhs_begin", "rhs_end")}


def _span(begin, end, ndim):
    b = 0 if begin is None else (begin + ndim if begin < 0 else begin)
    e = ndim if end is None else (end + ndim if end < 0 else end)
    return b, e


def _reshape_like_infer(lhs, rhs, lhs_begin, lhs_end, rhs_begin, rhs_end):
    lb, le = _span(lhs_begin, lhs_end, lhs.ndim)
    rb, re = _span(rhs_begin, rhs_end, rhs.ndim)
    if not (0 <= lb <= le <= lhs.ndim and 0 <= rb <= re <= rhs.ndim):
        raise ShapeError(f"reshape_like: ranges [{lhs_begin}, {lhs_end}) of lhs {lhs.shape} or "
                         f"[{rhs_begin}, {rhs_end}) of rhs {rhs.shape} are out of bounds")
    shape = lhs.shape[:lb] + rhs.shape[rb:re] + lhs.shape[le:]
    if math.prod(shape) != lhs.size:
        raise ShapeError(f"reshape_like: lhs {lhs.shape} has {lhs.size} elements, the new shape {shape} "
                         f"(from rhs {rhs.shape}) has {math.prod(shape)}")
    return like(lhs, shape)


def _reshape_like_np(lhs, rhs, **attrs):
    from ..types import TensorType
    return lhs.reshape(_reshape_like_infer(TensorType(lhs.shape, lhs.dtype), TensorType(rhs.shape, rhs.dtype),
                                           **attrs).shape).copy()


register(OpDef("reshape_like", infer=_reshape_like_infer, compute=_reshape_like_np, inputs=("lhs", "rhs"),
               attrs=_RL_ATTRS, lowering=View(),
               gradient=lambda F, ins, outs, gs, attrs: [F.reshape(gs[0], shape=ins[0].shape), None],
               doc="lhs reshaped so that dimensions [lhs_begin, lhs_end) take rhs's [rhs_begin, rhs_end)."))


# -- argmax_channel --------------------------------------------------------------------------------

def _argmax_channel_infer(x):
    if x.ndim < 1:
        raise ShapeError(f"argmax_channel: data must have at least one dimension, got {x.shape}")
    return like(x, x.shape[:-1])


register(OpDef("argmax_channel", infer=_argmax_channel_infer,
               compute=lambda x: np.argmax(x, axis=-1).astype(x.dtype),
               gradient=lambda F, ins, outs, gs, attrs: [None],
               doc="Index of the largest value along the last axis, in data's dtype (MXNet's)."))


# -- khatri_rao: column-wise Kronecker product -----------------------------------------------------

def _variadic(attrs):
    return tuple(f"arg{i}" for i in range(attrs["num_args"]))


def _khatri_rao_infer(*xs, num_args):
    if len(xs) != num_args or not xs:
        raise ShapeError(f"khatri_rao: num_args={num_args} but {len(xs)} inputs were given")
    cols = {x.shape[-1] if x.ndim == 2 else None for x in xs}
    if len(cols) != 1 or None in cols:
        raise ShapeError(f"khatri_rao: inputs must be matrices with the same number of columns, got "
                         f"{[x.shape for x in xs]}")
    return like(xs[0], (math.prod(x.shape[0] for x in xs), xs[0].shape[1]))


def _khatri_rao_np(*xs, num_args):
    out = xs[0]
    for x in xs[1:]:
        out = (out[:, None, :] * x[None, :, :]).reshape(-1, x.shape[1])
    return out.astype(xs[0].dtype)


def _khatri_rao_grad(F, ins, outs, gs, attrs):
    """Every input as an axis of a (m1, ..., mk, n) product; the gradient of one input is the
    head gradient times the other factors, summed over their axes."""
    k, n = len(ins), ins[0].shape[1]
    dims = [x.shape[0] for x in ins]
    g = F.reshape(gs[0], shape=tuple(dims) + (n,))

    def spread(i):
        return F.reshape(ins[i], shape=tuple(dims[j] if j == i else 1 for j in range(k)) + (n,))
    grads = []
    for i in range(k):
        prod = g
        for j in range(k):
            if j != i:
                prod = F.broadcast_mul(prod, spread(j))
        others = tuple(j for j in range(k) if j != i)
        grads.append(F.sum(prod, axis=others) if others else prod)
    return grads


register(OpDef("khatri_rao", infer=_khatri_rao_infer, compute=_khatri_rao_np, inputs=_variadic,
               attrs={"num_args": Attr("int")}, gradient=_khatri_rao_grad,
               doc="Column-wise Kronecker product of matrices (m_i, n): (prod m_i, n)."))


# -- ravel / unravel of indices --------------------------------------------------------------------

def _ravel_infer(x, shape):
    if x.ndim < 1 or x.shape[0] != len(shape):
        raise ShapeError(f"_ravel_multi_index: data's first dimension must be len(shape)={len(shape)}, got {x.shape}")
    return like(x, x.shape[1:])


def _ravel_np(x, shape):
    strides = np.cumprod((shape[1:] + (1,))[::-1])[::-1].astype(np.int64)
    idx = x.astype(np.int64)
    return np.tensordot(strides, idx, axes=(0, 0)).astype(x.dtype)


def _unravel_np(x, shape):
    idx = x.astype(np.int64) % max(math.prod(shape), 1)
    return np.stack(np.unravel_index(idx, shape)).astype(x.dtype) if shape else idx[None].astype(x.dtype)


register(OpDef("_ravel_multi_index", infer=_ravel_infer, compute=_ravel_np, attrs={"shape": Attr("shape")},
               gradient=lambda F, ins, outs, gs, attrs: [None], aliases=("ravel_multi_index",),
               doc="Flat (row-major) indices of coordinates given as rows of data."))
register(OpDef("_unravel_index", infer=lambda x, shape: like(x, (len(shape),) + x.shape), compute=_unravel_np,
               attrs={"shape": Attr("shape")}, gradient=lambda F, ins, outs, gs, attrs: [None],
               aliases=("unravel_index",), doc="Row-major coordinates of flat indices, one row per dimension."))


# -- _histogram ------------------------------------------------------------------------------------

def _hist_inputs(attrs):
    return ("data",) if attrs["bin_cnt"] is not None else ("data", "bins")


def _hist_infer(x, *bins, bin_cnt=None, range=None):
    if bin_cnt is None and not bins:
        raise OpAttributeError("_histogram: give bin_cnt (with range) or a bins array")
    n = bin_cnt if bin_cnt is not None else bins[0].size - 1
    if n < 1:
        raise ShapeError(f"_histogram: needs at least one bin, got {n} (bins {bins[0].shape if bins else None})")
    return [like(x, (n,), "int64"), like(x, (n + 1,))]


def _hist_np(x, *bins, bin_cnt=None, range=None):
    if bins:
        edges = bins[0].astype(np.float64)
    else:
        lo, hi = (float(x.min()), float(x.max())) if range is None else (float(range[0]), float(range[1]))
        edges = lo + np.arange(bin_cnt + 1) * ((hi - lo) / bin_cnt)
    counts, _ = np.histogram(x.astype(np.float64), bins=edges)
    return counts.astype(np.int64), edges.astype(x.dtype)


register(OpDef("_histogram", infer=_hist_infer, compute=_hist_np, inputs=_hist_inputs,
               attrs={"bin_cnt": Attr("int", None, optional=True), "range": Attr("any", None, optional=True)},
               num_outputs=2, doc="Counts of data in equal bins over `range` (or given edges), and the edges."))


# -- _split_v2: pieces at given indices along an axis ----------------------------------------------

def _split_v2_bounds(n, indices, sections):
    if sections > 0:
        if n % sections:
            raise ShapeError(f"_split_v2: size {n} does not split into sections={sections} equal parts")
        step = n // sections
        return [(i * step, (i + 1) * step) for i in range(sections)]
    starts = list(indices)
    ends = starts[1:] + [n]
    return [(min(b, n), min(max(e, b), n)) for b, e in zip(starts, ends)]


def _split_v2_count(attrs):
    return attrs["sections"] if attrs["sections"] > 0 else len(attrs["indices"])


def _split_v2_infer(x, indices, axis, squeeze_axis, sections):
    a = normalize_axes(axis, x.ndim, "_split_v2")[0]
    out = []
    for b, e in _split_v2_bounds(x.shape[a], indices, sections):
        if squeeze_axis and e - b != 1:
            raise ShapeError(f"_split_v2: squeeze_axis needs pieces of size 1, a piece of {x.shape} along "
                             f"axis {a} has {e - b}")
        out.append(like(x, x.shape[:a] + (() if squeeze_axis else (e - b,)) + x.shape[a + 1:]))
    return out


def _split_v2_np(x, indices, axis, squeeze_axis, sections):
    a = axis % x.ndim
    parts = []
    for b, e in _split_v2_bounds(x.shape[a], indices, sections):
        p = np.take(x, np.arange(b, e), axis=a)
        parts.append(np.ascontiguousarray(p.squeeze(a) if squeeze_axis else p))
    return tuple(parts)


def _split_v2_grad(F, ins, outs, gs, attrs):
    a = attrs["axis"] % ins[0].ndim
    parts = [g if g is not None else F.zeros_like(o) for g, o in zip(gs, outs)]
    if attrs["squeeze_axis"]:
        parts = [F.expand_dims(p, axis=a) for p in parts]
    return [parts[0] if len(parts) == 1 else F.Concat(*parts, dim=a)]


register(OpDef("_split_v2", infer=_split_v2_infer, compute=_split_v2_np,
               attrs={"indices": Attr("shape", ()), "axis": Attr("int", 0), "squeeze_axis": Attr("bool", False),
                      "sections": Attr("int", 0)},
               num_outputs=_split_v2_count, gradient=_split_v2_grad,
               doc="Pieces of data along `axis`, cut at `indices` (starting with 0) or into equal `sections`."))


# -- fill_element_0index, _onehot_encode ----------------------------------------------------------

def _fill0_infer(lhs, mhs, rhs):
    if lhs.ndim != 2 or mhs.shape != lhs.shape[:1] or rhs.shape != lhs.shape[:1]:
        raise ShapeError(f"fill_element_0index: lhs must be 2-D (n, k) with mhs and rhs of shape (n,), got "
                         f"lhs {lhs.shape}, mhs {mhs.shape}, rhs {rhs.shape}")
    return lhs


def _fill0_np(lhs, mhs, rhs):
    out = lhs.copy()
    out[np.arange(lhs.shape[0]), rhs.astype(np.int64)] = mhs
    return out


def _fill0_grad(F, ins, outs, gs, attrs):
    lhs, _, rhs = ins
    hot = F.one_hot(rhs, depth=lhs.shape[1], dtype=lhs.dtype)
    return [gs[0] * (1.0 - hot), F.pick(gs[0], rhs, axis=1), None]


register(OpDef("fill_element_0index", infer=_fill0_infer, compute=_fill0_np, inputs=("lhs", "mhs", "rhs"),
               gradient=_fill0_grad, doc="lhs with lhs[i, rhs[i]] = mhs[i] for every row i."))


def _onehot_encode_infer(lhs, rhs):
    if lhs.ndim != 1 or rhs.ndim != 2 or rhs.shape[0] != lhs.shape[0]:
        raise ShapeError(f"_onehot_encode: indices must be (n,) and out (n, depth), got {lhs.shape} and {rhs.shape}")
    return rhs


def _onehot_encode_np(lhs, rhs):
    out = np.zeros_like(rhs)
    out[np.arange(lhs.shape[0]), lhs.astype(np.int64)] = 1
    return out


register(OpDef("_onehot_encode", infer=_onehot_encode_infer, compute=_onehot_encode_np, inputs=("lhs", "rhs"),
               gradient=lambda F, ins, outs, gs, attrs: [None, None],
               doc="One-hot rows of the shape of `rhs` (MXNet's legacy onehot_encode writes into it)."))
