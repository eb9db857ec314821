"""mx.contrib.autograd: MXNet's first autograd API, kept by MXNet 1.x beside mx.autograd.

Its one switch, "is training", means recording and training mode together; the functions
here are that switch and thin wrappers over graphc.autograd (same tape, same gradients)."""
from __future__ import annotations

import functools

from .. import autograd as _ag

__all__ = ["set_is_training", "TrainingStateScope", "train_section", "test_section", "mark_variables",
           "backward", "compute_gradient", "grad_and_loss", "grad"]


def set_is_training(is_train):
    """Turn recording and training mode on or off together; returns the previous state."""
    previous = _ag.is_recording()
    _ag.set_recording(bool(is_train))
    _ag.set_training(bool(is_train))
    return previous


class TrainingStateScope:
    """A `with` scope in which set_is_training(enter_state) holds; the previous recording and
    training modes come back on exit."""

    def __init__(self, enter_state):
        self._enter_state = enter_state
        self._saved = None

    def __enter__(self):
        self._saved = (_ag.is_recording(), _ag.is_training())
        set_is_training(self._enter_state)
        return self

    def __exit__(self, *exc):
        _ag.set_recording(self._saved[0])
        _ag.set_training(self._saved[1])


def train_section():
    """Record, in training mode (`with train_section(): y = f(x)`)."""
    return TrainingStateScope(True)


def test_section():
    """Neither record nor train, e.g. inside a train_section."""
    return TrainingStateScope(False)


def mark_variables(variables, gradients, grad_reqs="write"):
    """Make `variables` leaves whose gradients go to the matching `gradients` arrays."""
    _ag.mark_variables(variables, gradients, grad_reqs)


def backward(outputs, out_grads=None, retain_graph=False):
    """Back-propagate from `outputs` (a list) with head gradients `out_grads` (ones by default)."""
    from ..ndarray.ndarray import NDArray
    outputs = [outputs] if isinstance(outputs, NDArray) else list(outputs)
    _ag.backward(outputs, out_grads, retain_graph=retain_graph)


def compute_gradient(outputs):
    """backward(outputs) with ones as head gradients (MXNet's older name)."""
    backward(outputs)


def grad_and_loss(func, argnum=None):
    """A function returning (gradients of func's outputs with respect to its array arguments, or
    those at positions `argnum`, and func's outputs)."""
    from ..ndarray.ndarray import NDArray
    from ..ndarray import zeros_like

    @functools.wraps(func)
    def wrapped(*args):
        positions = range(len(args)) if argnum is None else (argnum if isinstance(argnum, list) else [argnum])
        variables = [args[i] for i in positions]
        for i, x in zip(positions, variables):
            if not isinstance(x, NDArray):
                raise TypeError(f"grad_and_loss: argument {i} is {type(x).__name__}; the differentiated "
                                f"arguments must be NDArrays")
        grads = [zeros_like(x) for x in variables]
        mark_variables(variables, grads)
        with train_section():
            outputs = func(*args)
        compute_gradient([outputs] if isinstance(outputs, NDArray) else outputs)
        return grads, outputs
    return wrapped


def grad(func, argnum=None):
    """A function returning only the gradients of grad_and_loss(func, argnum)."""
    with_loss = grad_and_loss(func, argnum)

    @functools.wraps(func)
    def wrapped(*args):
        return with_loss(*args)[0]
    return wrapped
