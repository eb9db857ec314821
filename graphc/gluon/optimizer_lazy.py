"""Lazy updates: an optimizer step with a row_sparse gradient touches only the gradient's rows.

MXNet 1.9.1's sparse kernels (sgd_update / sgd_mom_update / adam_update with lazy_update=True)
apply the dense formula to the rows present in the gradient and leave every other row of the
weight and of its states alone: no weight decay, no momentum decay, no moment decay there. That
is exactly the dense rule run on the gathered rows, so this module gathers the rows of the
weight and of each state, runs the optimizer's own dense `update` on them, and scatters them
back: one formula per optimizer, shared by the dense and the lazy path.

AdaGrad is the exception: MXNet's sparse kernel (adagrad_update) refuses weight decay and
keeps the rows untouched by the gradient, written out here.

Any other optimizer, or lazy_update=False, reads the gradient's dense form (rows missing are
zeros) through the dense rule, which is MXNet's "standard update" for sparse gradients."""
from __future__ import annotations

import numpy as np

from ..ndarray import NDArray
from ..ops.errors import GraphcError


def applies(opt, weight, grad) -> bool:
    """Whether this step is lazy: a row_sparse gradient and an optimizer that MXNet updates lazily."""
    from .optimizer import SGD, AdaGrad, Adam
    # a row_sparse weight (Parameter(stype='row_sparse')) stores every row: updated like a dense one
    if getattr(grad, "stype", "default") != "row_sparse" or \
            getattr(weight, "stype", "default") not in ("default", "row_sparse"):
        return False
    if isinstance(opt, AdaGrad):
        return True
    return isinstance(opt, (SGD, Adam)) and type(opt).update in (SGD.update, Adam.update) and \
        bool(getattr(opt, "lazy_update", False))


def _gather(state, rows):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_gather(s, rows) for s in state)
    return NDArray(state._data[rows], state.context)


def _scatter(state, part, rows):
    if state is None:
        return
    if isinstance(state, (tuple, list)):
        for s, p in zip(state, part):
            _scatter(s, p, rows)
        return
    state._data[rows] = part._data


def lazy_update(opt, index, weight, grad, state):
    """One lazy step of `opt` (see the module docstring); in place on weight and state."""
    from .optimizer import AdaGrad
    rows = grad._aux[0]
    if isinstance(opt, AdaGrad):
        return _sparse_adagrad(opt, index, weight, grad, state, rows)
    w_rows = NDArray(weight._data[rows], weight.context)
    s_rows = _gather(state, rows)
    g_rows = NDArray(grad._values, grad.context)
    # the dense rules keep scratch buffers by shape; the row count changes every step, so these
    # steps get their own (dropped afterwards) instead of growing the optimizer's
    kept, opt._buffers = opt._buffers, {}
    try:
        from .optimizer import Optimizer
        Optimizer.update_multi_precision(opt, index, w_rows, g_rows, s_rows)
    finally:
        opt._buffers = kept
    weight._data[rows] = w_rows._data
    _scatter(state, s_rows, rows)


def _sparse_adagrad(opt, index, weight, grad, history, rows):
    """MXNet's sparse adagrad_update on the gradient's rows (epsilon inside the root, as MXNet
    1.9.1 computes it):
        g = clip(rescale_grad * grad);  history += g^2;  weight -= lr * g / sqrt(history + eps)"""
    lr, wd, _ = opt._begin(index)
    if wd != 0:
        raise GraphcError(f"AdaGrad: a row_sparse gradient does not support weight decay (wd={wd} for parameter "
                          f"{opt.idx2name.get(index, index)!r}), as MXNet's sparse adagrad_update")
    g = grad._values * opt.rescale_grad
    if opt._clipping():
        np.clip(g, -opt.clip_gradient, opt.clip_gradient, out=g)
    h = history._data[rows] + np.square(g)
    history._data[rows] = h
    w = weight._data
    w[rows] = w[rows] - (lr * g / np.sqrt(h + opt.float_stable_eps)).astype(w.dtype, copy=False)
