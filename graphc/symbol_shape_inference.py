"""MXNet 1.x's shape inference for hand-built symbols: partial shapes, forward and backward.

A symbol built with `sym.var` may know only some dimensions of its inputs (`shape=(0, 10)`,
0 = unknown, MXNet's convention) or none at all. MXNet fills the gaps by running every
operator's shape rule both ways until nothing changes: an elementwise operator unifies the
shapes of its operands and its output, FullyConnected gives its data the batch size of its
output, Concat splits its output's shape among its inputs, and so on. `infer_partial` does the
same on a graphc graph and hands back what it knows of every value.

Shapes here are None (not even the rank is known) or a tuple whose 0s are unknown dimensions.
Forward, an operator whose inputs are all known uses its OpDef's exact inference (its errors
are real errors and raise); with unknown dimensions the OpDef runs twice on probe sizes and an
output dimension that moves with the probe is unknown. Backward rules exist for the operators
whose outputs determine their inputs (table below); parameters come from `OpDef.infer_missing`.
Nothing here builds or changes a graph.
"""
from __future__ import annotations

from .ops.errors import DTypeError, GraphcError, OpAttributeError, ShapeError
from .ops.registry import Elementwise, get_op, has_op
from .ops.types import TensorType

# Two sizes no real dimension shares with a probe: an output dimension equal in both probe runs
# does not depend on the unknown dimensions.
_PROBES = (1_000_003, 1_000_033)
_MAX_SWEEPS = 64


def known(shape) -> bool:
    return shape is not None and all(d > 0 for d in shape)


def merge(a, b, where: str):
    """The shape both partial shapes describe; raises when they contradict (MXNet's
    'Incompatible attr' check)."""
    if a is None:
        return None if b is None else tuple(b)
    if b is None:
        return tuple(a)
    if len(a) != len(b):
        raise ShapeError(f"{where}: shape {_text(a)} and inferred shape {_text(b)} have different ranks")
    out = []
    for x, y in zip(a, b):
        if x and y and x != y:
            raise ShapeError(f"{where}: shape {_text(a)} contradicts the inferred shape {_text(b)} (0 = unknown)")
        out.append(x or y)
    return tuple(out)


def _text(shape) -> str:
    return "()" if shape is None else str(tuple(shape))


def _canonical(names):
    return frozenset(get_op(n).name for n in names if has_op(n))


# Operators whose output has the shape of the listed inputs (and these inputs each other's):
# MXNet's ElemwiseShape operators that are not lowered as Elementwise in graphc.
_SAME_SHAPE = {name: (0,) for name in _canonical([
    "Activation", "Dropout", "softmax", "log_softmax", "softmin", "SoftmaxActivation", "BatchNorm",
    "LayerNorm", "InstanceNorm", "L2Normalization", "LRN", "SoftmaxOutput", "Cast", "clip", "_copy",
    "BlockGrad", "MakeLoss", "make_loss", "LeakyReLU", "IdentityAttachKLSparseReg", "amp_cast",
    "SequenceMask", "SequenceReverse"])}
_SAME_SHAPE.update({name: (0, 1) for name in _canonical([
    "LinearRegressionOutput", "LogisticRegressionOutput", "MAERegressionOutput"])})


class PartialInference:
    """The fixed point of all shape rules over one graph. shapes/dtypes: (id(node), output) ->
    partial shape / dtype name (None = unknown)."""

    def __init__(self, graph, seeds: dict, dtypes: dict):
        self.graph = graph
        self.shapes = {}
        self.dtypes = {}
        self.done = set()          # id(node): inferred exactly, nothing left to learn
        self.changed = False
        for n in graph.nodes:
            if n.is_var:
                self.shapes[(id(n), 0)] = seeds.get(n.name)
                self.dtypes[(id(n), 0)] = dtypes.get(n.name)
            elif n.is_const:
                self.shapes[(id(n), 0)] = n.types[0].shape
                self.dtypes[(id(n), 0)] = n.types[0].dtype
            else:
                for i in range(len(n.types)):
                    self.shapes[(id(n), i)] = None

    # -- the fixed point -------------------------------------------------------------------
    def run(self):
        ops = [n for n in self.graph.nodes if not (n.is_var or n.is_const)]
        for strict in (True, False):
            # strict: MXNet's own rules. Then graphc's one extension: an operand of an
            # elementwise operator whose rank is unknown takes its partner's shape (`a + b`
            # with only a's shape given), tried only once MXNet's rules are exhausted.
            for _ in range(_MAX_SWEEPS):
                self.changed = False
                for n in ops:
                    self._forward(n, strict)
                if all(known(s) for s in self.shapes.values()):
                    return self
                for n in reversed(ops):
                    self._backward(n)
                if not self.changed:
                    break
        return self

    def _set(self, value, shape, dtype=None, where=""):
        key = (id(value.node), value.index)
        old = self.shapes.get(key)
        new = merge(old, shape, where or f"'{value.node.name}'")
        if new != old:
            self.shapes[key] = new
            self.changed = True
        if dtype is not None and self.dtypes.get(key) is None:
            self.dtypes[key] = dtype

    def shape_of(self, value):
        return self.shapes.get((id(value.node), value.index))

    def dtype_of(self, value):
        return self.dtypes.get((id(value.node), value.index))

    # -- forward -----------------------------------------------------------------------------
    def _forward(self, n, strict):
        if id(n) in self.done:
            return
        op = get_op(n.op)
        ins = [self.shape_of(v) for v in n.inputs]
        where = f"{n.op} '{n.name}'"
        if all(known(s) for s in ins):
            types = op.infer_types([self._tensor_type(v, s) for v, s in zip(n.inputs, ins)], n.attrs, f"'{n.name}'")
            for i, t in enumerate(types):
                self._set(n.out(i), t.shape, t.dtype, where)
            self.done.add(id(n))
            return
        if isinstance(op.lowering, Elementwise):
            if len(ins) == 1 or op.name in _NO_BROADCAST:
                out = None
                for s in ins:
                    out = merge(out, s, where)      # (operands of equal shapes: a contradiction raises)
            else:
                try:
                    out = _broadcast_partial(ins, where)
                except ShapeError:      # (not numpy broadcasting after all, e.g. `where` on rows)
                    self._probe(n, op, ins, where)
                    out = None
            if out is not None:
                self._set(n.out(0), out, None, where)
            if not strict:
                self._fill_partners(n, ins)
            return
        rule = _FORWARD.get(op.name)
        if rule is not None:
            rule(self, n, ins, where)
            return
        self._probe(n, op, ins, where)

    def _fill_partners(self, n, ins):
        ranked = [s for s in ins if s is not None]
        if len(ranked) == 1 or (ranked and all(s == ranked[0] for s in ranked)):
            for v, s in zip(n.inputs, ins):
                if s is None:
                    self._set(v, ranked[0])

    def _probe(self, n, op, ins, where):
        """Outputs of an operator with unknown input dimensions: run its exact inference with
        those dimensions set to each probe size; output dimensions that differ are unknown."""
        if any(s is None for s in ins):
            return
        runs = []
        for size in _PROBES:
            filled = [tuple(d or size for d in s) for s in ins]
            try:
                runs.append(op.infer_types([self._tensor_type(v, s) for v, s in zip(n.inputs, filled)], n.attrs))
            except (ShapeError, DTypeError, OpAttributeError, GraphcError, ValueError, ZeroDivisionError):
                return      # undecidable until more is known (MXNet leaves it unknown too)
        for i, (a, b) in enumerate(zip(*runs)):
            if len(a.shape) == len(b.shape):
                self._set(n.out(i), tuple(x if x == y else 0 for x, y in zip(a.shape, b.shape)), a.dtype, where)

    def _tensor_type(self, value, shape):
        return TensorType(shape, self.dtype_of(value) or "float32")

    # -- backward ------------------------------------------------------------------------------
    def _backward(self, n):
        if id(n) in self.done:
            return
        op = get_op(n.op)
        where = f"{n.op} '{n.name}'"
        ins = [self.shape_of(v) for v in n.inputs]
        outs = [self.shape_of(n.out(i)) for i in range(len(n.types))]
        if isinstance(op.lowering, Elementwise):
            out = outs[0]
            if out is not None:
                for v, s in zip(n.inputs, ins):
                    # an operand with the output's rank and unknown dimensions: the output's
                    # (MXNet's elementwise operators do not broadcast); an operand of unknown
                    # rank only where the operator never broadcasts (elemwise_add, a unary op)
                    if s is not None and len(s) == len(out):
                        self._set(v, tuple(d or o for d, o in zip(s, out)), None, where)
                    elif s is None and (len(n.inputs) == 1 or op.name in _NO_BROADCAST):
                        self._set(v, out, None, where)
        elif op.name in _SAME_SHAPE:
            group = [i for i in _SAME_SHAPE[op.name] if i < len(n.inputs)]
            shape = outs[0]
            for i in group:
                shape = merge(shape, ins[i], where)
            if shape is not None:
                self._set(n.out(0), shape, None, where)
                for i in group:
                    self._set(n.inputs[i], shape, None, where)
        rule = _BACKWARD.get(op.name)
        if rule is not None:
            rule(self, n, ins, outs, where)
        if op.infer_missing is not None:
            self._missing(n, op, where)

    def _missing(self, n, op, where):
        """Parameters the operator derives from its data (OpDef.infer_missing): FullyConnected
        and Convolution take partly known data, as MXNet's rules do; the others known data."""
        partial_ok = op.name in _PARTIAL_MISSING
        given = []
        for i, v in enumerate(n.inputs):
            s = self.shape_of(v)
            ok = known(s) or (partial_ok and i == 0 and s is not None)
            given.append(self._tensor_type(v, s) if ok else None)
        if all(t is not None for t in given):
            return
        try:
            wanted = op.infer_missing(list(given), n.attrs)
        except (ShapeError, GraphcError, ValueError, IndexError, ZeroDivisionError):
            return
        for v, g, want in zip(n.inputs, given, wanted):
            if g is None and want is not None:
                self._set(v, want.shape, want.dtype, where)


# elementwise operators that require equal operand shapes (MXNet's `a + b` on symbols)
_NO_BROADCAST = _canonical(["elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div", "_maximum",
                            "_minimum", "_power", "_mod", "_equal", "_not_equal", "_greater", "_greater_equal",
                            "_lesser", "_lesser_equal"])
_PARTIAL_MISSING = _canonical(["FullyConnected", "Convolution"])


def _broadcast_partial(ins, where):
    """numpy broadcasting of partial shapes: an unknown dimension beside a known one k takes k
    (as MXNet's non-broadcasting elementwise rule would), beside 1 it stays unknown."""
    if not ins or any(s is None for s in ins):
        ranked = [s for s in ins if s is not None]
        return ranked[0] if len(ranked) == 1 and len(ins) == 1 else None
    rank = max(len(s) for s in ins)
    out = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in ins if axis - rank + len(s) >= 0]
        big = {d for d in dims if d > 1}
        if len(big) > 1:
            raise ShapeError(f"{where}: shapes {', '.join(_text(s) for s in ins)} do not broadcast")
        if big:
            out.append(big.pop())
        elif 0 in dims:
            out.append(0)
        else:
            out.append(1)
    return tuple(out)


# -- operator rules --------------------------------------------------------------------------
def _concat_forward(inf, n, ins, where):
    if all(s is None for s in ins):
        return
    rank = next(len(s) for s in ins if s is not None)
    axis = n.attrs["dim"] % rank
    shape = [0] * rank
    for s in ins:
        if s is not None:
            shape = list(merge(tuple(shape), tuple(d if i != axis else 0 for i, d in enumerate(s)), where))
    total = sum(s[axis] for s in ins) if all(s is not None and s[axis] for s in ins) else 0
    shape[axis] = total
    inf._set(n.out(0), tuple(shape), None, where)


def _concat_backward(inf, n, ins, outs, where):
    out = outs[0]
    if out is None:
        return
    axis = n.attrs["dim"] % len(out)
    for v, s in zip(n.inputs, ins):
        base = list(s) if s is not None else [0] * len(out)
        for i, d in enumerate(out):
            if i != axis and d:
                base[i] = d
        inf._set(v, tuple(base), None, where)
    ins = [inf.shape_of(v) for v in n.inputs]
    missing = [i for i, s in enumerate(ins) if not s[axis]]
    if len(missing) == 1 and out[axis]:
        i = missing[0]
        rest = sum(s[axis] for j, s in enumerate(ins) if j != i)
        if out[axis] <= rest:
            raise ShapeError(f"{where}: output has {out[axis]} along axis {axis} but the other inputs already "
                             f"have {rest}")
        shape = list(ins[i])
        shape[axis] = out[axis] - rest
        inf._set(n.inputs[i], tuple(shape), None, where)


def _split_backward(inf, n, ins, outs, where):
    """SliceChannel: its outputs share one shape; the data is num_outputs of them along axis."""
    shape = None
    for s in outs:
        shape = merge(shape, s, where)
    if shape is None:
        return
    for i in range(len(outs)):
        inf._set(n.out(i), shape, None, where)
    count, squeeze = n.attrs["num_outputs"], n.attrs["squeeze_axis"]
    rank = len(shape) + (1 if squeeze else 0)
    axis = n.attrs["axis"] % rank
    data = list(shape)
    if squeeze:
        data.insert(axis, count)
    else:
        data[axis] = shape[axis] * count
    inf._set(n.inputs[0], tuple(data), None, where)


def _fc_backward(inf, n, ins, outs, where):
    data, out = ins[0], outs[0]
    if data is None or out is None:
        return
    shape = list(data)
    if n.attrs["flatten"]:
        shape[0] = out[0] or shape[0]
    else:
        shape[:-1] = [o or d for o, d in zip(out[:-1], shape[:-1])]
    inf._set(n.inputs[0], tuple(shape), None, where)


def _conv_backward(inf, n, ins, outs, where):
    """Batch size from the output; a spatial size too where the stride is 1 (MXNet's rule)."""
    data, out = ins[0], outs[0]
    layout = n.attrs.get("layout")
    if data is None or out is None or (layout and not str(layout).startswith("NC")):
        return
    kernel = tuple(n.attrs["kernel"])
    k = len(kernel)
    stride = tuple(n.attrs["stride"] or (1,) * k)
    dilate = tuple(n.attrs["dilate"] or (1,) * k)
    pad = tuple(n.attrs["pad"] or (0,) * k)
    shape = list(data)
    shape[0] = shape[0] or out[0]
    for i in range(k):
        if not shape[2 + i] and out[2 + i] and stride[i] == 1:
            shape[2 + i] = out[2 + i] + dilate[i] * (kernel[i] - 1) - 2 * pad[i]
    inf._set(n.inputs[0], tuple(shape), None, where)


def _reshape_backward(inf, n, ins, outs, where):
    """MXNet's reverse Reshape rule: a known output and an input of known rank missing one
    dimension give that dimension (the sizes must agree; the product of the rest divides)."""
    data, out = ins[0], outs[0]
    if data is None or not known(out) or known(data):
        return
    missing = [i for i, d in enumerate(data) if not d]
    rest = 1
    for d in data:
        rest *= d or 1
    total = 1
    for d in out:
        total *= d
    if len(missing) == 1 and rest and total % rest == 0:
        shape = list(data)
        shape[missing[0]] = total // rest
        inf._set(n.inputs[0], tuple(shape), None, where)


_FORWARD = {get_op("Concat").name: _concat_forward}
_BACKWARD = {get_op("Concat").name: _concat_backward, get_op("SliceChannel").name: _split_backward,
             get_op("FullyConnected").name: _fc_backward, get_op("Convolution").name: _conv_backward,
             get_op("Reshape").name: _reshape_backward}


def infer_partial(graph, seeds: dict, dtypes: dict) -> PartialInference:
    """Run every rule to its fixed point. seeds: variable name -> partial shape (or None)."""
    return PartialInference(graph, seeds, dtypes).run()



def seeds_of(graph, shapes: dict, dtypes: dict):
    """(name -> partial shape, name -> dtype) for every variable: the given shape wins over the
    variable's own type and its __shape__ attribute (MXNet's infer_shape overrides them)."""
    from .symbol import _hinted_dtype
    from .ops.attrs import _as_shape
    seeds, types = {}, {}
    for n in graph.nodes:
        if not n.is_var:
            continue
        own = n.types[0] if n.types else None
        shape = shapes.get(n.name)
        if shape is None and own is not None:
            shape = own.shape
        if shape is None and n.hints.get("__shape__"):
            shape = _as_shape(n.hints["__shape__"])
        if shape is not None:
            shape = tuple(int(d) if d is not None and d > 0 else 0 for d in shape)
            if not shape and not shapes.get(n.name) and own is None:
                shape = None        # MXNet writes an unknown rank as ()
        seeds[n.name] = shape
        dtype = dtypes.get(n.name) or (own.dtype if own is not None else None)
        if dtype is None and n.hints.get("__dtype__") is not None:
            dtype = _hinted_dtype(n)
        types[n.name] = dtype
    return seeds, types


def infer_dtypes(graph, dtypes: dict, hinted_dtype) -> dict:
    """(id(node), output) -> dtype name or None, without shapes (MXNet infers dtypes on their
    own). Forward: an untyped variable takes the dtype of its operator's first typed input
    (float32 parameters under float16 BatchNorm data), an output its operator's `dtype`
    attribute or its first input's dtype, MXNet 1.x's rule for nearly every operator.
    Backward: an operator that keeps its data's dtype (elementwise, FullyConnected...) gives
    its output's dtype to untyped inputs, until nothing changes."""
    from .ops.declarations.norm import param_dtype
    dt = {}
    for n in graph.nodes:
        if n.is_var:
            own = n.types[0] if n.types else None
            hinted = hinted_dtype(n) if n.hints.get("__dtype__") is not None else None
            dt[(id(n), 0)] = dtypes.get(n.name) or (own.dtype if own is not None else hinted)
        elif n.is_const:
            dt[(id(n), 0)] = n.types[0].dtype
    ops = [n for n in graph.nodes if not (n.is_var or n.is_const)]
    for _ in range(_MAX_SWEEPS):
        before = dict(dt)
        for n in ops:
            ins = [dt.get((id(v.node), v.index)) for v in n.inputs]
            first = next((d for d in ins if d is not None), None)
            for i, (v, d) in enumerate(zip(n.inputs, ins)):
                if d is None and v.node.is_var and first is not None:
                    dt[(id(v.node), 0)] = param_dtype(first) if n.op == "BatchNorm" and i > 0 else first
            out = n.attrs.get("dtype") or first
            for i in range(len(n.types)):
                if dt.get((id(n), i)) is None:
                    dt[(id(n), i)] = out
        for n in reversed(ops):
            out = dt.get((id(n), 0))
            if out is None or n.attrs.get("dtype") or not _keeps_dtype(n):
                continue
            for v in n.inputs if isinstance(get_op(n.op).lowering, Elementwise) else n.inputs[:1]:
                if dt.get((id(v.node), v.index)) is None:
                    dt[(id(v.node), v.index)] = out
        if dt == before:
            break
    return dt


def _keeps_dtype(node) -> bool:
    op = get_op(node.op)
    return isinstance(op.lowering, Elementwise) or op.name in _SAME_SHAPE or op.name in _PARTIAL_MISSING
