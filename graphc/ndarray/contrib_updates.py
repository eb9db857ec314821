"""nd.contrib's multi-tensor optimizer steps, multi_adamw_update and multi_lamb_update (and their
mp_ variants): MXNet writes them in Python over the _multi_*_update operators, taking lists of
weights, gradients and states. graphc's operators return the new states as outputs; they are
written back into the state arrays here, as MXNet mutates them, and the weights go to out=."""
from __future__ import annotations

from ..ops.declarations.update_ops import MULTI_TENSOR_STATES
from ..ops.namespace import write_out
from .ndarray import NDArray, _NAMESPACE, array

__all__ = ["multi_adamw_update", "multi_mp_adamw_update", "multi_lamb_update", "multi_mp_lamb_update"]


def _run(op_name, groups, trailing, out, attrs):
    per, n_states, _ = MULTI_TENSOR_STATES[op_name]
    n = len(groups[0])
    flat = [g[i] for i in range(n) for g in groups]
    results = getattr(_NAMESPACE, op_name)(*flat, *trailing, **attrs)
    results = results if isinstance(results, (list, tuple)) else (results,)
    weights, hidden = results[:n], results[n:]
    for i in range(n):
        for j in range(n_states):
            groups[2 + j][i][:] = hidden[i * n_states + j]
    result = list(weights)
    return result if out is None else write_out(out, result)


def _rescale(rescale_grad, like):
    return rescale_grad if isinstance(rescale_grad, NDArray) else array([rescale_grad], ctx=like.context)


def multi_adamw_update(weights, grads, mean, var, rescale_grad, lrs, wds, etas, out=None, name=None, size=0, **kwargs):
    """AdamW on every weight at once; steps are skipped when rescale_grad is not finite."""
    attrs = dict(kwargs, lrs=tuple(lrs), wds=tuple(wds), etas=tuple(etas), num_weights=size or len(weights))
    return _run("_multi_adamw_update", [weights, grads, mean, var], [_rescale(rescale_grad, weights[0])], out, attrs)


def multi_mp_adamw_update(weights, grads, mean, var, weights32, rescale_grad, lrs, wds, etas, out=None, name=None,
                          size=0, **kwargs):
    attrs = dict(kwargs, lrs=tuple(lrs), wds=tuple(wds), etas=tuple(etas), num_weights=size or len(weights))
    return _run("_multi_mp_adamw_update", [weights, grads, mean, var, weights32], [_rescale(rescale_grad, weights[0])],
                out, attrs)


def multi_lamb_update(weights, grads, mean, var, step_count, lrs, wds, out=None, num_tensors=0, **kwargs):
    """LAMB (both phases, trust ratio per tensor) on every weight at once."""
    attrs = dict(kwargs, learning_rates=tuple(lrs), wds=tuple(wds), step_count=tuple(step_count),
                 num_tensors=num_tensors or len(weights))
    return _run("_multi_lamb_update", [weights, grads, mean, var], [], out, attrs)


def multi_mp_lamb_update(weights, grads, mean, var, weights32, step_count, lrs, wds, out=None, num_tensors=0,
                         **kwargs):
    attrs = dict(kwargs, learning_rates=tuple(lrs), wds=tuple(wds), step_count=tuple(step_count),
                 num_tensors=num_tensors or len(weights))
    return _run("_multi_mp_lamb_update", [weights, grads, mean, var, weights32], [], out, attrs)
