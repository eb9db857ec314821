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

Gradient-ready hooks (what a distributed Trainer uses to start all-reduces while backward still
runs, as PyTorch DDP's autograd hooks): a leaf's gradient is final once every tape node that
reads it has been visited, so while any hook is registered backward() writes that leaf's .grad
at that moment, not at the end, and then calls the hooks registered for it
(`_add_grad_ready_hook`); with none registered it walks and writes exactly as before. A node's
backward may hand its gradients over one at a time, by returning an iterator of (input
position, gradient) pairs instead of a list (a segmented compiled backward yields each
segment's gradients when its program returns), so a leaf read only by that node is ready
before the node finishes.
`grad()` writes no .grad and calls no hook.

Gradients without a copy: while backward() (with no hook registered) walks the tape,
grad_buffer(leaf) offers a compiled backward the leaf's .grad array when backward would
overwrite it whole anyway; the node writes the gradient there and hands that array over, and
backward skips the copy (a pipelined block's weight gradients: one pass over every weight
less per step).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from . import eager_tape_cache as _tape_cache
from .ops.errors import GraphcError

# what `from mxnet.autograd import *` gives (MXNet's public API, not this module's helpers)
__all__ = ["record", "pause", "train_mode", "predict_mode", "is_recording", "is_training",
           "set_recording", "set_training", "backward", "grad", "mark_variables", "get_symbol",
           "Function"]

class _ThreadState(threading.local):
    """Per-thread flags; the class attributes are a new thread's values, so reading a flag is
    one attribute lookup (every eager operator asks is_recording and is_training)."""
    recording = False
    training = False
    walk = None
    grad_buffers = None


_state = _ThreadState()
_grad_lock = threading.Lock()     # held while backward() writes leaves' .grad
# id(leaf NDArray) -> (the leaf, [hooks]): NDArray has __slots__ without __weakref__, and the
# arrays hooked are a Trainer's parameters, which outlive their hooks anyway
_ready_hooks: dict = {}
_before_write_hooks: dict = {}      # the same, for hooks called just before backward writes .grad
# id(.grad NDArray) -> the thread whose running backward lets a compiled backward write into it
# (grad_buffer); the condition's lock guards the dict
_claims: dict = {}
_claims_changed = threading.Condition(threading.Lock())


def _get(name, default):
    return getattr(_state, name, default)


def is_recording() -> bool:
    return _state.recording


def is_training() -> bool:
    return _state.training


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
    """One recorded application. backward(F, ograds) -> one gradient (or None) per input.
    op/attrs: the operator and its parsed attributes when the node is an operator's own
    gradient rule (record_op), None for a hand-written backward: eager_tape_cache.py compiles
    tapes of the former only."""
    __slots__ = ("inputs", "outputs", "backward", "name", "op", "attrs")

    def __init__(self, inputs, outputs, backward, name, op=None, attrs=None):
        self.inputs, self.outputs, self.backward, self.name = inputs, outputs, backward, name
        self.op, self.attrs = op, attrs


def needs_grad(x) -> bool:
    return x._entry is not None or x._grad_req != "null"


def grad_wanted(x) -> bool:
    """Whether the backward walk running on this thread keeps a gradient for x (False only
    inside a walk, for an array that is neither recorded, nor a leaf with a gradient buffer, nor
    one of grad()'s variables). Gradient functions skip the products nobody reads: the data
    gradient of a first FullyConnected layer, as MXNet's kNullOp."""
    walk = getattr(_state, "walk", None)
    if walk is None or x._entry is not None or x._grad_req != "null":
        return True
    variables = walk[0]
    return variables is not None and any(v is x for v in variables)


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
    node = TapeNode(list(inputs), list(outputs), backward, op.name, op, attrs)
    for i, o in enumerate(outputs):
        o._entry = (node, i)


def _add_grad_ready_hook(array, fn, before_write=None):
    """Call fn(array) each time backward() has written array's final .grad of that pass
    (array: a leaf with attach_grad), and before_write(array), when given, just before that
    write (a reader of the old .grad, such as an all-reduce still summing it in place, must be
    done with it first). Hooks run on the thread that runs backward."""
    _add(_ready_hooks, array, fn)
    if before_write is not None:
        _add(_before_write_hooks, array, before_write)


def _remove_grad_ready_hook(array, fn, before_write=None):
    _remove(_ready_hooks, array, fn)
    if before_write is not None:
        _remove(_before_write_hooks, array, before_write)


def _add(table, array, fn):
    entry = table.get(id(array))
    if entry is None or entry[0] is not array:
        entry = table[id(array)] = (array, [])
    entry[1].append(fn)


def _remove(table, array, fn):
    entry = table.get(id(array))
    if entry is None or entry[0] is not array:
        return
    entry[1][:] = [f for f in entry[1] if f is not fn]
    if not entry[1]:
        del table[id(array)]


def _grad_ready_hooks(array, table=_ready_hooks):
    """The hooks registered for `array` (empty when none): compiled blocks segment their
    backward only when one of their parameters has some."""
    entry = table.get(id(array))
    return entry[1] if entry is not None and entry[0] is array else ()


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


def _run_backward(heads, head_grads, variables, retain_graph, create_graph, train_mode, on_ready=None,
                  offer_buffers=False):
    """Walk the tape from `heads`; return {id(leaf): (leaf, gradient)} for the leaves not yet
    handed to on_ready. on_ready(leaf, gradient), when given, is called for each leaf the
    moment its gradient is final (every node reading it visited); those leaves are left out.
    offer_buffers: grad_buffer() offers the .grad arrays this walk's gradients replace whole."""
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
        if g.shape != h.shape and g.size == h.size:
            g = g.reshape(h.shape)      # MXNet reads a head gradient as flat memory of the head's size
        if g.dtype != h.dtype:
            g = g.astype(h.dtype)       # (MXNet copies head gradients into the head's dtype)
        # another shape is an error only where a gradient rule reads it (_walk); MXNet checks
        # nothing, and an operator without gradient (shape_array) never reads it
        if h._entry is not None:
            _accumulate(grads, (id(h._entry[0]), h._entry[1]), g)
        else:
            prev = leaf.get(id(h))
            leaf[id(h)] = (h, g if prev is None else prev[1] + g)
    order = _topo_order(heads)
    readers = _leaf_readers(order) if on_ready is not None or offer_buffers else None
    previous = getattr(_state, "grad_buffers", None)
    # (a walk nested in another's node, e.g. grad() in a Function's backward, offers nothing)
    _state.grad_buffers = _replaced_buffers(order, readers, leaf) if offer_buffers and not create_graph else None
    if on_ready is None:
        readers = None
    outer_walk = getattr(_state, "walk", None)
    _state.walk = (variables,)
    try:
        return _walk(order, grads, leaf, readers, variables, retain_graph, create_graph, train_mode, on_ready)
    finally:
        _state.walk = outer_walk
        if _state.grad_buffers:
            _release_buffers(_state.grad_buffers)
        _state.grad_buffers = previous


def _walk(order, grads, leaf, readers, variables, retain_graph, create_graph, train_mode, on_ready):
    from . import ndarray as nd

    def give(x, g):
        if g is None:
            return
        if not create_graph:
            g = g.detach()
        if x._entry is not None:
            _accumulate(grads, (id(x._entry[0]), x._entry[1]), g)
        elif x._grad_req != "null" or (variables is not None and any(v is x for v in variables)):
            prev = leaf.get(id(x))
            leaf[id(x)] = (x, g if prev is None else prev[1] + g)

    def visited(x):
        """One more reader of leaf x is done; hand x over once none is left."""
        if readers is None or x._entry is not None:
            return      # (nobody waits, or not a leaf)
        left = readers[id(x)] - 1
        readers[id(x)] = left
        if left == 0:
            hit = leaf.pop(id(x), None)
            if hit is not None:
                on_ready(*hit)

    with _scope(create_graph, train_mode):
        for node in reversed(order):
            ograds = [grads.pop((id(node), i), None) for i in range(len(node.outputs))]
            if all(g is None for g in ograds):
                if readers is not None:
                    for x in node.inputs:
                        visited(x)
                continue
            if any(g is None for g in ograds):
                ograds = [nd.zeros_like(o) if g is None else g for o, g in zip(node.outputs, ograds)]
            in_grads = node.backward(nd, node.inputs, node.outputs, ograds)
            bad = [(g.shape, o.shape) for g, o in zip(ograds, node.outputs) if g.shape != o.shape]
            if bad and not (isinstance(in_grads, (list, tuple)) and all(g is None for g in in_grads)):
                raise GraphcError(f"backward: head gradient has shape {bad[0][0]}, head has {bad[0][1]}")
            if isinstance(in_grads, (list, tuple)):
                for x, g in zip(node.inputs, in_grads):
                    give(x, g)
                if readers is not None:
                    for x in node.inputs:
                        visited(x)
                continue
            # an iterator of (input position, gradient): each leaf as soon as it is handed over
            pending = set(range(len(node.inputs)))
            for pos, g in in_grads:
                if pos not in pending:
                    raise GraphcError(f"backward of {node.name}: input position {pos} handed over twice or out "
                                      f"of range (the node has {len(node.inputs)} inputs)")
                pending.discard(pos)
                give(node.inputs[pos], g)
                visited(node.inputs[pos])
            for pos in sorted(pending):
                visited(node.inputs[pos])
    if not retain_graph:
        for node in order:
            for o in node.outputs:
                o._entry = None
    return leaf


def _replaced_buffers(order, readers, heads_leaf) -> dict:
    """id(leaf) -> (leaf, its .grad NDArray) for the leaves whose .grad backward() will replace
    whole with one node's gradient: grad_req 'write', a plain dense buffer with no queued work,
    read by exactly one (node, input) of the tape and not a head (either would sum gradients).
    Each is claimed for this thread until _release_buffers: another thread's backward of the
    same parameter is offered none and copies into it only after (one gradient lands whole)."""
    from .ndarray.ndarray import NDArray
    out, me = {}, threading.get_ident()
    with _grad_lock, _claims_changed:       # (not while another thread copies into .grad)
        for node in order:
            for x in node.inputs:
                buf = x._grad
                if x._entry is None and x._grad_req == "write" and type(buf) is NDArray \
                        and readers.get(id(x)) == 1 and id(x) not in heads_leaf and id(buf) not in _claims:
                    out[id(x)] = (x, buf)
                    _claims[id(buf)] = me
    return out


def _release_buffers(offered):
    with _claims_changed:
        for _, buf in offered.values():
            _claims.pop(id(buf), None)
        _claims_changed.notify_all()


def _locked_for_writing(leaves):
    """Take _grad_lock for writing these leaves' .grad once no other thread's backward has
    them claimed (waiting without the lock, so that thread can finish its walk)."""
    me = threading.get_ident()

    def claimed():
        return any(_claims.get(id(x._grad), me) != me for x in leaves)
    while True:
        if _claims:
            with _claims_changed:
                while claimed():
                    _claims_changed.wait()
        _grad_lock.acquire()
        if not _claims or not claimed():
            return
        _grad_lock.release()          # (claimed again meanwhile)


def grad_buffer(x):
    """The .grad NDArray that the backward() running on this thread will overwrite whole with
    leaf x's gradient, or None (autograd.grad(), grad_req 'add', x read twice, create_graph...).
    A compiled backward may write x's gradient straight into it and hand that same array over:
    backward() then copies nothing (MXNet's backward writes its outputs into the gradient
    arrays likewise), which for big weights saves a pass over every gradient per step."""
    offered = getattr(_state, "grad_buffers", None)
    hit = offered.get(id(x)) if offered else None
    return hit[1] if hit is not None and hit[0] is x and x._grad is hit[1] else None


def _leaf_readers(order):
    """id(leaf) -> how many (node, input position) pairs of the tape read it."""
    counts = {}
    for node in order:
        for x in node.inputs:
            if x._entry is None:
                counts[id(x)] = counts.get(id(x), 0) + 1
    return counts


def backward(heads, head_grads=None, retain_graph=False, train_mode=True, create_graph=False):
    """Accumulate d(heads)/d(x) into x.grad for every x with attach_grad(). While any
    gradient-ready hook is registered, each leaf's .grad is written (and its hooks called) as
    soon as its gradient is final; otherwise all are written when the tape walk ends."""
    from .ndarray.ndarray import NDArray
    if isinstance(heads, NDArray):
        heads = [heads]
        head_grads = [head_grads] if isinstance(head_grads, NDArray) else head_grads

    def store(x, g):
        if x._grad_req == "null" or x._grad is None:
            return False
        buf = x._grad
        if x._grad_req != "write" or type(g) is not NDArray or type(buf) is not NDArray or g._data is not buf._data:
            # (queued on the device when the gradient is still being computed there: engine.py)
            buf._store_grad(g, x._grad_req)
        # else the node's backward wrote the gradient into .grad itself (grad_buffer)
        x._fresh_grad = True
        if create_graph:
            x._grad._entry = g._entry
        return True

    if not _ready_hooks:
        # a tape seen often enough runs as one compiled program (eager_tape_cache.py)
        if not create_graph and _tape_cache.try_backward(heads, head_grads, retain_graph, train_mode):
            return
        # (with hooks, a before-write hook must see the old .grad until the write: no buffers offered)
        leaf = _run_backward(heads, head_grads, None, retain_graph, create_graph, train_mode, offer_buffers=True)
        # numpy releases the GIL inside `+=` and copies: without the lock two threads' 'add' could
        # each read the old gradient and one sum would be lost
        _locked_for_writing([x for x, _ in leaf.values() if x._grad is not None])
        try:
            for x, g in leaf.values():
                store(x, g)
        finally:
            _grad_lock.release()
        return

    def write(x, g):
        if x._grad_req == "null" or x._grad is None:
            return
        for fn in tuple(_grad_ready_hooks(x, _before_write_hooks)):
            fn(x)
        _locked_for_writing([x])
        try:
            store(x, g)
        finally:
            _grad_lock.release()
        for fn in tuple(_grad_ready_hooks(x)):
            fn(x)

    leaf = _run_backward(heads, head_grads, None, retain_graph, create_graph, train_mode, on_ready=write)
    for x, g in leaf.values():      # leaves no tape node reads (heads themselves)
        write(x, g)


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
    """The computation recorded for x, as a Symbol (symbol_autograd.py)."""
    from .symbol_autograd import recorded_symbol
    return recorded_symbol(x)


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
