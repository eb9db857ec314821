"""The operators mixed-precision training and optimizers call between steps: amp_cast and
amp_multicast (casts that leave integer arrays alone), all_finite / multi_all_finite (the
overflow check of dynamic loss scaling), multi_sum_sq (squared norms of many arrays at once)
and multi_lars (LARS learning rates from those norms). Formulas are MXNet 1.9.1's."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from .common import like


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def _variadic(count_attr):
    return lambda attrs: tuple(f"arg{i}" for i in range(attrs[count_attr]))


def _check_count(op, xs, n):
    if len(xs) != n or n < 1:
        raise ShapeError(f"{op}: expects {n} inputs (its count attribute), got {len(xs)}")


# -- amp_cast, amp_multicast -----------------------------------------------------------------------

def _amp_cast_infer(x, dtype):
    return like(x, dtype=dtype if _is_float(x.dtype) else x.dtype)


def _amp_cast_np(x, dtype):
    return x.astype(dtype) if _is_float(x.dtype) else x.copy()


register(OpDef("amp_cast", infer=_amp_cast_infer, compute=_amp_cast_np, attrs={"dtype": Attr("dtype")},
               gradient=lambda F, ins, outs, gs, attrs: [F.amp_cast(gs[0], dtype=ins[0].dtype)],
               doc="Cast floating-point data to `dtype`; other dtypes pass unchanged (AMP's cast)."))


def _multicast_target(dtypes, cast_narrow):
    floats = [np.dtype(d) for d in dtypes if _is_float(d)]
    if not floats:
        return None
    pick = min if cast_narrow else max
    return str(pick(floats, key=lambda d: d.itemsize))


def _multicast_infer(*xs, num_outputs, cast_narrow):
    _check_count("amp_multicast", xs, num_outputs)
    target = _multicast_target([x.dtype for x in xs], cast_narrow)
    return [like(x, dtype=target if _is_float(x.dtype) else x.dtype) for x in xs]


def _multicast_np(*xs, num_outputs, cast_narrow):
    target = _multicast_target([x.dtype for x in xs], cast_narrow)
    return tuple(x.astype(target) if _is_float(x.dtype) else x.copy() for x in xs)


register(OpDef("amp_multicast", infer=_multicast_infer, compute=_multicast_np, inputs=_variadic("num_outputs"),
               attrs={"num_outputs": Attr("int"), "cast_narrow": Attr("bool", False)},
               num_outputs=lambda attrs: attrs["num_outputs"],
               gradient=lambda F, ins, outs, gs, attrs: [
                   None if g is None else F.amp_cast(g, dtype=x.dtype) for x, g in zip(ins, gs)],
               doc="Cast every floating-point input to the widest (cast_narrow: narrowest) of their types."))


# -- all_finite, multi_all_finite ------------------------------------------------------------------
# init_output=False asks MXNet to AND into an existing `out`; graphc's result is a fresh array,
# so the flag is accepted and the result is this call's check (combine with broadcast_mul).

def _finite_infer(*xs, **_):
    return like(xs[0], (1,), "float32")


def _all_finite_np(*xs, **_):
    ok = all(np.isfinite(x).all() for x in xs)
    return np.array([1.0 if ok else 0.0], np.float32)


register(OpDef("all_finite", infer=_finite_infer, compute=_all_finite_np,
               attrs={"init_output": Attr("bool", True)}, gradient=lambda F, ins, outs, gs, attrs: [None],
               doc="[1.] when every value of data is finite, else [0.] (dynamic loss scaling's check)."))
register(OpDef("multi_all_finite", infer=lambda *xs, num_arrays, init_output: (
                   _check_count("multi_all_finite", xs, num_arrays), _finite_infer(*xs))[1],
               compute=_all_finite_np, inputs=_variadic("num_arrays"),
               attrs={"num_arrays": Attr("int", 1), "init_output": Attr("bool", True)},
               gradient=lambda F, ins, outs, gs, attrs: [None] * len(ins),
               doc="[1.] when every value of every input is finite, else [0.]."))


# -- multi_sum_sq, multi_lars ----------------------------------------------------------------------

def _sum_sq_infer(*xs, num_arrays):
    _check_count("multi_sum_sq", xs, num_arrays)
    return like(xs[0], (num_arrays,), "float32")


def _sum_sq_np(*xs, num_arrays):
    return np.array([np.sum(np.square(x.astype(np.float64))) for x in xs], np.float32)


register(OpDef("multi_sum_sq", infer=_sum_sq_infer, compute=_sum_sq_np, inputs=_variadic("num_arrays"),
               attrs={"num_arrays": Attr("int")},
               doc="The sum of squares of each input, as one float32 vector (LARS/LAMB norms; no gradient, as "
                   "MXNet's)."))


def _lars_infer(lrs, w, g, wds, eta, eps, rescale_grad):
    if not lrs.shape == w.shape == g.shape == wds.shape or lrs.ndim != 1:
        raise ShapeError(f"multi_lars: lrs, weights_sum_sq, grads_sum_sq and wds must be vectors of one length, "
                         f"got {lrs.shape}, {w.shape}, {g.shape}, {wds.shape}")
    return lrs


def _lars_np(lrs, w, g, wds, eta, eps, rescale_grad):
    wn, gn = np.sqrt(w.astype(np.float64)), np.sqrt(g.astype(np.float64))
    with np.errstate(all="ignore"):
        scaled = lrs * eta * wn / (gn * rescale_grad + wds * wn + eps)
    return np.where((wn > 0) & (gn > 0), scaled, lrs).astype(lrs.dtype)


register(OpDef("multi_lars", infer=_lars_infer, compute=_lars_np,
               inputs=("lrs", "weights_sum_sq", "grads_sum_sq", "wds"),
               attrs={"eta": Attr("float"), "eps": Attr("float"), "rescale_grad": Attr("float", 1.0)},
               doc="LARS learning rates: lr eta |w| / (|g| rescale_grad + wd |w| + eps) where both norms "
                   "are positive, else lr."))
