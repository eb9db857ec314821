"""A compiled backward for a recorded tape whose signature keeps coming back.

Why: an eager training step records the same operators on the same shapes every iteration, and
replaying its tape op by op costs a Python dispatch, a shape check and a numpy temporary per
gradient operator (W7's MLP: about 25 eager calls and six .grad copies per backward). So
backward() computes the tape's signature (operators, attributes, input and output types, which
arrays are the same, each leaf's grad_req, the training mode), and once a signature has been
seen HOT_AFTER times (eager_kernels.py's policy and its GRAPHC_EAGER_COMPILE switch;
GRAPHC_EAGER_TAPE=0 turns off this module alone) its whole backward is compiled into one
program: the gradient rules of every node (the rules the op-by-op walk runs, with F = a graph
builder's namespace, as passes/autodiff.py does) from the recorded inputs and outputs to the
leaves' gradients. From then on backward() is one program call whose outputs are the leaves'
.grad buffers themselves (grad_req 'write'; 'add' sums a temporary in). A tape that differs in
any part of its signature is another signature: it walks op by op until it is hot itself.

Only plain tapes take this path: every node recorded by an operator (record_op), plain dense
NDArrays on one device, no gradient-ready hook, no create_graph, at most MAX_NODES nodes.
Anything else, a gradient rule that does not build, or a program needing random numbers, walks
op by op; a compile failure is warned about once per signature. The forward is untouched (every
intermediate array stays readable), and the results equal the op-by-op walk's up to float32
rounding of a differently ordered sum, as eager_kernels' programs do.
"""
from __future__ import annotations

import os
import threading
import warnings

import numpy as np

from . import eager_kernels as _kernels
from .ops.builder import GraphBuilder
from .ops.registry import get_op

MAX_TAPES = 64              # compiled backward programs kept
MAX_COUNTED = 1024          # signatures counted but not yet hot (by hash: keys of long tapes are big)
MAX_NODES = 400             # longer tapes walk op by op (their compile would take seconds)

_lock = threading.Lock()
_plans: dict = {}           # signature -> _Plan, or None (does not compile: op-by-op)
_counts: dict = {}
_stats = {"runs": 0, "compiled": 0, "failed": 0}


class _Plan:
    """A compiled tape backward: where each program input comes from, which leaf each output
    belongs to."""
    __slots__ = ("program", "sources", "leaves")

    def __init__(self, program, sources, leaves):
        self.program, self.sources, self.leaves = program, sources, leaves


def try_backward(heads, head_grads, retain_graph, train_mode) -> bool:
    """backward() through a compiled program: True when done (.grad written, tape released),
    False when the caller must walk the tape op by op (nothing was changed)."""
    from . import device as _device
    if _device.MULTI or _kernels._hot_after() == 0 or not _enabled():
        return False
    found = _signature(heads, head_grads, train_mode)
    if found is None:
        return False
    key, order, externals, hgrads = found
    try:
        plan = _plans.get(key, False)
    except TypeError:                        # an attribute value that does not hash
        return False
    if plan is False:
        plan = _maybe_compile(key, order, externals, heads, hgrads, train_mode)
    if plan is None:
        return False
    _run(plan, order, externals, hgrads)
    _stats["runs"] += 1
    if not retain_graph:
        for node in order:
            for o in node.outputs:
                o._entry = None
    return True


def _enabled() -> bool:
    """GRAPHC_EAGER_TAPE=0 keeps the per-operator kernels but walks every tape op by op."""
    return os.environ.get("GRAPHC_EAGER_TAPE", "1").strip().lower() not in ("0", "off", "false", "no")


def _signature(heads, head_grads, train_mode):
    """(key, tape order, external arrays, head gradients as numpy) or None where the tape is not
    one this module runs. Called on every backward(), so it stays a plain walk building a tuple."""
    from .autograd import _topo_order
    from .ndarray.ndarray import NDArray
    if head_grads is not None and (not isinstance(head_grads, (list, tuple)) or len(head_grads) != len(heads)):
        return None
    for h in heads:
        if type(h) is not NDArray or h._entry is None:
            return None
    order = _topo_order(heads)
    if len(order) > MAX_NODES:
        return None
    index = {id(node): i for i, node in enumerate(order)}
    ext_ix: dict = {}
    externals = []
    key = [bool(train_mode)]
    for node in order:
        op = node.op
        if op is None:
            return None                      # a custom backward (compiled block, Function...)
        refs = []
        for x in node.inputs:
            if type(x) is not NDArray:
                return None
            e = x._entry
            if e is not None:
                j = index.get(id(e[0]))
                if j is None:
                    return None
                refs.append((j, e[1]))
                continue
            k = ext_ix.get(id(x))
            if k is None:
                k = ext_ix[id(x)] = len(externals)
                externals.append(x)
                g, req = x._grad, x._grad_req
                if req != "null" and g is not None:
                    if type(g) is not NDArray or g._data.dtype != x._data.dtype or g._data.shape != x._data.shape:
                        return None          # a sparse or odd gradient buffer: the walk stores it
                else:
                    req = "null"
                d = x._data
                key.append((req, d.shape, d.dtype))
            refs.append(k)
        key.append((op.name, node.attrs, tuple(refs), tuple([(o._data.shape, o._data.dtype) for o in node.outputs])))
    hgrads = []
    for i, h in enumerate(heads):
        g = head_grads[i] if head_grads is not None else None
        if g is None:
            g = np.ones(h._data.shape, h._data.dtype)
        else:
            g = g._data if isinstance(g, NDArray) else np.asarray(g, dtype=h._data.dtype)
            if type(g) is not np.ndarray or g.shape != h._data.shape or g.dtype != h._data.dtype:
                return None                  # the walk reports it (or casts it)
        hgrads.append(g)
        key.append(("head", index[id(h._entry[0])], h._entry[1]))
    return tuple(key), order, externals, hgrads


def _maybe_compile(key, order, externals, heads, hgrads, train_mode):
    need = _kernels._hot_after()
    with _lock:
        if key in _plans:
            return _plans[key]
        h = hash(key)
        n = _counts.get(h, 0) + 1
        if n < need or len(_plans) >= MAX_TAPES:
            if len(_counts) >= MAX_COUNTED:
                _counts.clear()
            _counts[h] = n
            return None
        _counts.pop(h, None)
        try:
            plan = _compile(order, externals, heads, hgrads, train_mode)
        except Exception as exc:             # noqa: BLE001 - the op-by-op walk still answers
            warnings.warn(f"graphc eager backward of a {len(order)}-node tape "
                          f"({', '.join(n.name for n in order[:6])}{'...' if len(order) > 6 else ''}): "
                          f"compiled backward failed ({type(exc).__name__}: {exc}); walking it op by op",
                          RuntimeWarning, stacklevel=4)
            _stats["failed"] += 1
            plan = None
        else:
            if plan is not None:
                _stats["compiled"] += 1
        _plans[key] = plan
        return plan


def _compile(order, externals, heads, hgrads, train_mode):
    """Build the tape's backward graph from the nodes' gradient rules and compile it."""
    from .autograd import _scope
    from .compiler import compile_graph
    from .ops.graph import Graph
    from .ops.types import TensorType
    b = _FoldingBuilder("eager_tape_backward")
    F = b.F
    index = {id(node): i for i, node in enumerate(order)}
    ext_ix = {id(x): k for k, x in enumerate(externals)}

    def tt(a):
        return a._type().with_(device="cpu(0)")
    # every recorded value as an input; the ones no gradient reads are dropped below
    ext_h = [b.var(f"x{k}", tt(x)) for k, x in enumerate(externals)]
    out_h = [[b.var(f"n{i}_{j}", tt(o)) for j, o in enumerate(node.outputs)] for i, node in enumerate(order)]
    head_h = [b.var(f"head_grad{i}", TensorType(g.shape, h._type().dtype, "cpu(0)"))
              for i, (h, g) in enumerate(zip(heads, hgrads))]
    sources = {}
    for k in range(len(externals)):
        sources[id(ext_h[k].value.node)] = ("x", k)
    for i, hs in enumerate(out_h):
        for j, h in enumerate(hs):
            sources[id(h.value.node)] = ("n", i, j)
    for i, h in enumerate(head_h):
        sources[id(h.value.node)] = ("h", i)
    grads: dict = {}            # (node index, out) or ("x", k) -> Handle

    def add(slot, g):
        old = grads.get(slot)
        grads[slot] = g if old is None else old + g
    for h, hh in zip(heads, head_h):
        add((index[id(h._entry[0])], h._entry[1]), hh)
    with _scope(False, train_mode):
        for i in range(len(order) - 1, -1, -1):
            node = order[i]
            ograds = [grads.pop((i, j), None) for j in range(len(node.outputs))]
            if all(g is None for g in ograds):
                continue
            ograds = [F.zeros_like(out_h[i][j]) if g is None else g for j, g in enumerate(ograds)]
            ins = [out_h[index[id(x._entry[0])]][x._entry[1]] if x._entry is not None else ext_h[ext_ix[id(x)]]
                   for x in node.inputs]
            in_grads = node.op.gradient(F, ins, out_h[i], ograds, node.attrs)
            if len(in_grads) != len(node.inputs):
                raise ValueError(f"gradient rule of {node.name} returned {len(in_grads)} gradients for "
                                 f"{len(node.inputs)} inputs")
            for x, h, g in zip(node.inputs, ins, in_grads):
                if g is None:
                    continue
                if tuple(g.shape) != tuple(h.shape) or g.type.dtype != h.type.dtype:
                    raise ValueError(f"gradient rule of {node.name} gave {g.type.dtype}{tuple(g.shape)} for an "
                                     f"input of {h.type.dtype}{tuple(h.shape)}")
                if x._entry is not None:
                    add((index[id(x._entry[0])], x._entry[1]), g)
                elif x._grad_req != "null" and x._grad is not None:
                    add(("x", ext_ix[id(x)]), g)
    leaves, outputs, seen = [], [], set()
    for k, x in enumerate(externals):
        g = grads.get(("x", k))
        if g is None:
            continue            # no gradient reached it: its .grad is left alone, as the walk does
        v = g.value
        if v.node.is_var or v.node.is_const or id(v) in seen:
            v = F._copy(g).value          # each output its own buffer, never an input's
        seen.add(id(v))
        leaves.append(k)
        outputs.append(v)
    if not outputs:
        return None
    stack, visited = [v.node for v in outputs], set()
    while stack:
        n = stack.pop()
        if id(n) in visited:
            continue
        visited.add(id(n))
        if n.is_var:
            continue
        stack.extend(u.node for u in n.inputs)
    inputs = [n for n in b.inputs if id(n) in visited]
    program = compile_graph(Graph.from_outputs(inputs, outputs, b.name), training=bool(train_mode))
    if getattr(program, "_seeded", False):
        return None                       # random numbers in a gradient: the walk draws them
    return _Plan(program, tuple(sources[id(n)] for n in inputs), tuple(leaves))


class _FoldingBuilder(GraphBuilder):
    """A builder that computes an operator without inputs (the arange of pick's one-hot
    gradient) once, as a constant: the program would run it on the host at every call."""

    def invoke(self, op_name, inputs, attrs=None, name=None):
        op = get_op(op_name)
        if inputs or op.random or op.mutates:
            return super().invoke(op_name, inputs, attrs, name)
        parsed = op.parse(attrs or {})
        types = op.infer_types([], parsed)
        if op.n_visible(parsed) != 1 or len(types) != 1:
            return super().invoke(op_name, inputs, attrs, name)
        value = np.asarray(op.run([], parsed)[0], dtype=types[0].dtype).reshape(types[0].shape)
        return self.const(value)


def _run(plan, order, externals, hgrads):
    """One call of the plan's program, its outputs written into the leaves' .grad."""
    from .autograd import _grad_lock, _locked_for_writing
    args = []
    for s in plan.sources:
        if s[0] == "x":
            a = externals[s[1]]._data
        elif s[0] == "n":
            a = order[s[1]].outputs[s[2]]._data
        else:
            a = hgrads[s[1]]
        args.append(a if a.flags.c_contiguous else np.ascontiguousarray(a))
    leaves = [externals[k] for k in plan.leaves]
    read = None
    outs, adds = [], []
    for x in leaves:
        buf = x._grad._data
        if x._grad_req == "write" and buf.flags.c_contiguous and buf.flags.writeable:
            # written in place unless the program also reads that memory (a tape that reads
            # a .grad array or a view of it)
            if read is None:
                read = _owners(args)
            if read is not True and id(_owner(buf)) not in read:
                outs.append(buf)
                continue
        tmp = np.empty(buf.shape, buf.dtype)
        outs.append(tmp)
        adds.append((x, tmp))
    # the .grad buffers are written under the lock backward() writes them under (another
    # thread's backward of the same parameters lands whole, before or after this one)
    _locked_for_writing(leaves)
    try:
        plan.program(args, outs)
        for x, tmp in adds:
            if x._grad_req == "add":
                x._grad._data += tmp
            else:
                x._grad._data[...] = tmp
        for x in leaves:
            x._fresh_grad = True
    finally:
        _grad_lock.release()


def _owner(a):
    """The array that owns a's memory (a itself, or the base its view chain ends at)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _owners(args):
    """ids of the arrays owning the memory the program reads, or True when some of it is not
    owned by a numpy array (then every gradient goes through a temporary)."""
    out = set()
    for a in args:
        o = _owner(a)
        if o.base is not None:
            return True
        out.add(id(o))
    return out


def stats() -> dict:
    """Counters: tape backwards run compiled, signatures compiled, compiles that failed."""
    return dict(_stats, programs=sum(p is not None for p in _plans.values()))


def clear() -> None:
    """Forget every compiled tape and count (tests)."""
    with _lock:
        _plans.clear()
        _counts.clear()
        for k in _stats:
            _stats[k] = 0


__all__ = ["try_backward", "stats", "clear", "MAX_TAPES"]
