"""Eager automatic differentiation: a tape of operator applications, replayed backwards.

Each recorded op keeps its inputs, outputs and a backward function. The backward functions
of ordinary ops are the operators' own gradient rules (ops/declarations), run with F = graphc.nd,
so the eager tape and the compiler's autodiff pass share one definition of every derivative.
With create_graph=True the backward pass itself is recorded, giving gradients of gradients.

Threads, as in MXNet: whether operations are recorded and whether layers run in training mode
are per thread (`record()` in one thread does not record in another, and a new thread starts
with both off). The tape lives on the arrays themselves (each output points at the node that
made it), so threads that record separate computations never share a node. The one shared
thing is a leaf's `.grad`: backward() writes it under a lock, so two threads' gradients of one
parameter both land with grad_req='add' and one of them, whole, with 'write'.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from .ops.errors import GraphcError

# what `from mxnet.autograd import *` gives (MXNet's public API, not this module's helpers)
__all__ = ["record", "pause", "train_mode", "predict_mode", "is_recording", "is_training",
           "set_recording", "set_training", "backward", "grad", "mark_variables", "get_symbol",
           "Function"]

_state = threading.local()
_grad_lock = threading.Lock()     # held while backward() writes leaves' .grad


def _get(name, default):
    return getattr(_state, name, default)


def is_recording() -> bool:
    return _get("recording", False)


def is_training() -> bool:
    return _get("training", False)


def set_recording(flag: bool) -> bool:
    old = is_recording()
    _state.recording = bool(flag)
    return old


def set_training(flag: bool) -> bool:
    old = is_training()
    _state.training = bool(flag)
    return old


@contextmanager
def _scope(recording, training):
    old_r, old_t = is_recording(), is_training()
    if recording is not None:
        _state.recording = recording
    if training is not None:
        _state.training = training
    try:
        yield
    finally:
        _state.recording, _state.training = old_r, old_t


def record(train_mode=True):
    """Record operations for differentiation (and run Dropout etc. in training mode)."""
    return _scope(True, train_mode)


def pause(train_mode=False):
    return _scope(False, train_mode)


def train_mode():
    return _scope(None, True)


def predict_mode():
    return _scope(None, False)


class TapeNode:
    """One recorded application. backward(F, ograds) -> one gradient (or None) per input."""
    __slots__ = ("inputs", "outputs", "backward", "name")

    def __init__(self, inputs, outputs, backward, name):
        self.inputs, self.outputs, self.backward, self.name = inputs, outputs, backward, name


def needs_grad(x) -> bool:
    return x._entry is not None or x._grad_req != "null"


def record_custom(inputs, outputs, backward, name):
    """Join the tape with a hand-written backward (used by compiled blocks, like MXNet's CachedOp)."""
    # outputs are kept as they are (not detached), so that a recorded backward pass can
    # differentiate through them again (create_graph); the cycle is cut after backward()
    node = TapeNode(list(inputs), list(outputs), backward, name)
    for i, o in enumerate(outputs):
        o._entry = (node, i)
    return node


def record_op(op, attrs, inputs, outputs):
    def backward(F, ins, outs, ograds):
        return op.gradient(F, ins, outs, ograds, attrs)
    record_custom(inputs, outputs, backward, op.name)


def _topo_order(heads):
    order, seen = [], set()
    stack = [(h._entry[0], False) for h in heads if h._entry is not None]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for x in node.inputs:
            if x._entry is not None and id(x._entry[0]) not in seen:
                stack.append((x._entry[0], False))
    return order  # inputs before users


def _accumulate(store, key, g):
    old = store.get(key)
    store[key] = g if old is None else old + g


def _run_backward(heads, head_grads, variables, retain_graph, create_graph, train_mode):
    from . import ndarray as nd
    from .ndarray.ndarray import NDArray
    heads = list(heads)
    if head_grads is None:
        head_grads = [None] * len(heads)
    if len(head_grads) != len(heads):
        raise GraphcError(f"backward: {len(heads)} heads but {len(head_grads)} head gradients")
    for h in heads:
        if h._entry is None and h._grad_req == "null":
            raise GraphcError("backward: a head was not computed under autograd.record() from any array "
                              "with attach_grad(); there is nothing to differentiate")
    grads = {}      # (id(tape node), out index) -> gradient
    leaf = {}       # id(leaf NDArray) -> (leaf, gradient)
    for h, g in zip(heads, head_grads):
        g = nd.ones_like(h) if g is None else (g if isinstance(g, NDArray) else nd.array(g, dtype=h.dtype))
        if g.shape != h.shape:
            raise GraphcError(f"backward: head gradient has shape {g.shape}, head has {h.shape}")
        if h._entry is not None:
            _accumulate(grads, (id(h._entry[0]), h._entry[1]), g)
        else:
            prev = leaf.get(id(h))
            leaf[id(h)] = (h, g if prev is None else prev[1] + g)
    order = _topo_order(heads)
    with _scope(create_graph, train_mode):
        for node in reversed(order):
            ograds = [grads.pop((id(node), i), None) for i in range(len(node.outputs))]
            if all(g is None for g in ograds):
                continue
            if any(g is None for g in ograds):
                ograds = [nd.zeros_like(o) if g is None else g for o, g in zip(node.outputs, ograds)]
            in_grads = node.backward(nd, node.inputs, node.outputs, ograds)
            for x, g in zip(node.inputs, in_grads):
                if g is None:
                    continue
                if not create_graph:
                    g = g.detach()
                if x._entry is not None:
                    _accumulate(grads, (id(x._entry[0]), x._entry[1]), g)
                elif x._grad_req != "null" or (variables is not None and any(v is x for v in variables)):
                    prev = leaf.get(id(x))
                    leaf[id(x)] = (x, g if prev is None else prev[1] + g)
    if not retain_graph:
        for node in order:
            for o in node.outputs:
                o._entry = None
    return leaf


def backward(heads, head_grads=None, retain_graph=False, train_mode=True, create_graph=False):
    """Accumulate d(heads)/d(x) into x.grad for every x with attach_grad()."""
    from .ndarray.ndarray import NDArray
    if isinstance(heads, NDArray):
        heads = [heads]
        head_grads = [head_grads] if isinstance(head_grads, NDArray) else head_grads
    leaf = _run_backward(heads, head_grads, None, retain_graph, create_graph, train_mode)
    # numpy releases the GIL inside `+=` and copies: without the lock two threads' 'add' could
    # each read the old gradient and one sum would be lost
    with _grad_lock:
        for x, g in leaf.values():
            if x._grad_req == "null" or x._grad is None:
                continue
            # (queued on the device when the gradient is still being computed there: engine.py)
            x._grad._store_grad(g, x._grad_req)
            x._fresh_grad = True
            if create_graph:
                x._grad._entry = g._entry


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False, train_mode=True):
    """Return d(heads)/d(variables) without touching .grad; with create_graph the results are
    themselves differentiable."""
    from .ndarray.ndarray import NDArray
    single = isinstance(variables, NDArray)
    variables = [variables] if single else list(variables)
    if isinstance(heads, NDArray):
        heads = [heads]
        head_grads = [head_grads] if isinstance(head_grads, NDArray) else head_grads
    retain = create_graph if retain_graph is None else retain_graph
    leaf = _run_backward(heads, head_grads, variables, retain, create_graph, train_mode)
    from . import ndarray as nd
    out = []
    for v in variables:
        hit = leaf.get(id(v))
        out.append(hit[1] if hit is not None else nd.zeros_like(v))
    return out[0] if single else out


def mark_variables(variables, gradients, grad_reqs="write"):
    from .ndarray.ndarray import NDArray
    if isinstance(variables, NDArray):
        variables, gradients = [variables], [gradients]
    reqs = [grad_reqs] * len(variables) if isinstance(grad_reqs, str) else grad_reqs
    for v, g, r in zip(variables, gradients, reqs):
        v._grad, v._grad_req, v._entry = g, r, None


def get_symbol(x):
    raise GraphcError("autograd.get_symbol: trace a HybridBlock instead (hybridize + export)")


class Function:
    """A user-defined differentiable function: subclass with forward() and backward()."""

    def __init__(self):
        self._saved = ()

    def save_for_backward(self, *args):
        self._saved = args

    @property
    def saved_tensors(self):
        return self._saved

    def __call__(self, *inputs):
        with pause():
            outputs = self.forward(*inputs)
        single = not isinstance(outputs, (tuple, list))
        outs = [outputs] if single else list(outputs)
        if is_recording() and any(needs_grad(x) for x in inputs):
            fn = self

            def backward(F, ins, outs_, ograds):
                with pause():
                    g = fn.backward(*ograds)
                return [g] if not isinstance(g, (tuple, list)) else list(g)
            record_custom(list(inputs), outs, backward, type(self).__name__)
        return outputs
