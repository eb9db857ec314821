"""graphc graphs to ONNX models (opset 13), for inference.

The input is a *typed* graph (`bind_types`, a Symbol bound to shapes, or a hybridized block's
traced graph) and its arrays by name. Each operator is translated by one function in
`onnx_export_table.CONVERTERS` (filled by `onnx_export_nn` and `onnx_export_tensor`); an
operator with no translation is refused naming the operator and the node, because writing an
approximation would ship a different model.

Exports describe inference: Dropout is the identity, BatchNorm uses its moving statistics.
Before translating, every operator whose inputs are all known arrays (parameters, constants,
or values already folded) is evaluated with its numpy reference, so parameter plumbing
(Gluon's `_rnn_param_concat` of reshaped weights, a weight scaled by a constant) reaches ONNX as
plain initializers. Only arrays some ONNX node reads become initializers.

With `dynamic_shapes`, graph inputs get symbolic dimensions where the caller says so, and
converters that would bake a shape in (Reshape) compute it at run time instead.

The result passes `onnx.checker.check_model`. This module must never import a backend.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from graphc.ops.errors import FormatError
from graphc.ops.graph import Graph, Node, Value, format_node, value_names
from graphc.ops.registry import get_op, has_op
from graphc.ops.types import TensorType

from .onnx_common import EXPORT_OPSET, onnx_elem_type, require_onnx


class ExportContext:
    """The ONNX graph under construction, and what is known about each graphc value: its ONNX
    name once emitted, its array when known at export time, its graphc type."""

    def __init__(self, graph: Graph, dynamic: bool, opset: int):
        self.graph = graph
        self.dynamic = dynamic
        self.opset = opset
        self.onnx_nodes: list = []
        self.initializers: dict = {}      # ONNX name -> array
        self.names: dict = {}             # (id(node), index) -> ONNX name
        self.known: dict = {}             # (id(node), index) -> array known at export time
        self._taken: set = set()
        self._listing = None

    # -- names ----------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A name no other ONNX value has: `hint`, or `hint_2`, `hint_3`, ..."""
        name, k = hint, 1
        while name in self._taken:
            k += 1
            name = f"{hint}_{k}"
        self._taken.add(name)
        return name

    def result_names(self, node: Node) -> list:
        """ONNX names of `node`'s outputs, as MXNet's exporter names them: the node's name for a
        single visible output, name + index when the node shows several."""
        n = len(node.types)
        visible = get_op(node.op).n_visible(node.attrs) if has_op(node.op) else n
        if visible == 1:
            return [self.fresh(node.name)] + [self.fresh(f"{node.name}_hidden{i}") for i in range(1, n)]
        return [self.fresh(f"{node.name}{i}") for i in range(n)]

    # -- values ---------------------------------------------------------------------------------
    def type_of(self, value: Value) -> TensorType:
        return value.type

    def shape(self, value: Value) -> tuple:
        return tuple(value.type.shape)

    def const(self, value: Value):
        """The array of `value` when known at export time (a parameter, a constant, a folded
        result), else None."""
        return self.known.get((id(value.node), value.index))

    def input(self, value: Value, user: Node | None = None) -> str:
        """The ONNX name holding `value`; a known array becomes an initializer the first time a
        node reads it."""
        key = (id(value.node), value.index)
        if key in self.names:
            return self.names[key]
        if key in self.known:
            hint = value.node.name if len(value.node.types) == 1 else f"{value.node.name}{value.index}"
            name = self.add_initializer(self.known[key], hint)
            self.names[key] = name
            return name
        where = f" (read by {self.describe(user)})" if user is not None else ""
        raise FormatError(f"ONNX export: output {value.index} of {self.describe(value.node)} has no ONNX "
                          f"value{where}: its converter does not produce it (hidden outputs such as "
                          "Dropout's mask or BatchNorm's batch statistics exist only in training)")

    def add_initializer(self, array, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def ints(self, values, hint: str) -> str:
        """An int64 initializer (shapes, axes, pads)."""
        return self.add_initializer(np.asarray(values, dtype=np.int64).reshape(-1), hint)

    def scalar(self, value, dtype, hint: str) -> str:
        return self.add_initializer(np.asarray(value, dtype=dtype), hint)

    # -- nodes ----------------------------------------------------------------------------------
    def emit(self, op_type: str, inputs: Sequence[str], outputs=1, hint: str = "", **attrs) -> list:
        """Append one ONNX node; `outputs` is a count (fresh names from `hint`) or a list of
        names. Returns the output names."""
        onnx = require_onnx()
        if isinstance(outputs, int):
            outputs = [self.fresh(f"{hint or op_type.lower()}_{op_type.lower()}") for _ in range(outputs)]
        node_name = self.fresh(f"{hint or outputs[0]}/{op_type}")
        self.onnx_nodes.append(onnx.helper.make_node(op_type, list(inputs), list(outputs), name=node_name,
                                                     **{k: v for k, v in attrs.items() if v is not None}))
        return list(outputs)

    def describe(self, node: Node) -> str:
        if self._listing is None:
            self._listing = value_names(self.graph)
        try:
            return f"{node.op} node {node.name!r} ({format_node(node, self._listing).strip()})"
        except KeyError:
            return f"{node.op} node {node.name!r}"

    def fail(self, node: Node, why: str) -> FormatError:
        return FormatError(f"ONNX export: {self.describe(node)}: {why}")


# -- folding what is known at export time -------------------------------------------------------------
def _foldable(node: Node, ctx: ExportContext) -> bool:
    if node.is_var or node.is_const or not has_op(node.op):
        return False
    op = get_op(node.op)
    if op.random:
        return False
    return all((id(v.node), v.index) in ctx.known for v in node.inputs)


def _fold(node: Node, ctx: ExportContext) -> None:
    op = get_op(node.op)
    arrays = [ctx.known[(id(v.node), v.index)] for v in node.inputs]
    outs = op.run(arrays, node.attrs, rng=np.random.default_rng(0), training=False)
    for i, out in enumerate(outs):
        ctx.known[(id(node), i)] = np.asarray(out)


# -- the driver -----------------------------------------------------------------------------------
def _input_dims(name: str, static: tuple, dynamic_shape) -> list:
    """ONNX dims of a graph input: ints, or strings (symbolic) where `dynamic_shape` has None."""
    if dynamic_shape is None:
        return list(static)
    if len(dynamic_shape) != len(static):
        raise FormatError(f"ONNX export: input {name!r} has {len(static)} dimensions {static} but its "
                          f"dynamic shape {tuple(dynamic_shape)} has {len(dynamic_shape)}")
    return [f"{name}_dim{i}" if d is None else int(d) for i, d in enumerate(dynamic_shape)]


def graph_to_onnx(graph: Graph, params: Mapping[str, np.ndarray], *,
                  dynamic_shapes: Mapping[str, Sequence] | None = None,
                  opset: int = EXPORT_OPSET, name: str | None = None, check: bool = True):
    """ModelProto of the typed `graph`. Variables named in `params` become initializers, the
    others graph inputs. `dynamic_shapes`: input name -> shape with None for each dimension that
    may vary (inputs not named keep their traced shape)."""
    from .onnx_export_table import all_converters
    CONVERTERS = all_converters()
    onnx = require_onnx()
    helper = onnx.helper
    dynamic_shapes = dict(dynamic_shapes or {})
    ctx = ExportContext(graph, dynamic=any(d is None for s in dynamic_shapes.values() for d in s), opset=opset)
    untyped = [n.name for n in graph.nodes if not n.types or any(t is None for t in n.types)]
    if untyped:
        raise FormatError(f"ONNX export of graph {graph.name}: nodes {untyped[:5]} have no types; bind the "
                          "graph to input shapes first (bind_types, or run the hybridized block once)")
    for n in graph.nodes:
        if n.is_var or n.is_const:
            ctx._taken.add(n.name)
    data_inputs = []
    for n in graph.nodes:
        key = (id(n), 0)
        if n.is_const:
            ctx.known[key] = n.attrs["value"]
        elif n.is_var and n.name in params:
            array = np.asarray(params[n.name])
            if tuple(array.shape) != n.types[0].shape:
                raise FormatError(f"ONNX export: parameter {n.name!r} has shape {tuple(array.shape)} but the "
                                  f"graph expects {n.types[0].shape}")
            ctx.known[key] = array.astype(n.types[0].dtype, copy=False)
        elif n.is_var:
            ctx.names[key] = n.name
            data_inputs.append(n)
    unknown = sorted(set(dynamic_shapes) - {n.name for n in data_inputs})
    if unknown:
        raise FormatError(f"ONNX export: dynamic shapes given for {unknown}, which are not data inputs "
                          f"(data inputs: {[n.name for n in data_inputs]})")
    for node in graph.nodes:
        if node.is_var or node.is_const:
            continue
        if _foldable(node, ctx):
            _fold(node, ctx)
            continue
        convert = CONVERTERS.get(node.op)
        if convert is None:
            raise ctx.fail(node, f"operator {node.op!r} has no ONNX translation in graphc "
                                 f"(graphc translates {len(CONVERTERS)} operators; see "
                                 "graphc/formats/onnx_export_nn.py and onnx_export_tensor.py)")
        outs = convert(ctx, node)
        for i, out in enumerate(outs):
            if out is not None:
                ctx.names[(id(node), i)] = out
    used = {i for n in ctx.onnx_nodes for i in n.input}
    outputs, out_names = [], set()
    for k, v in enumerate(graph.outputs):
        src = ctx.input(v)
        want = src
        if v.node.is_var or v.node.is_const or src in out_names or src in ctx.initializers or ctx.const(v) is not None:
            want = ctx.fresh(f"{v.node.name}_output")
            ctx.emit("Identity", [src], [want])
        out_names.add(want)
        t = v.type
        dims = list(t.shape) if not ctx.dynamic else [None] * len(t.shape)
        outputs.append(helper.make_tensor_value_info(want, onnx_elem_type(t.dtype), dims))
    used |= {i for n in ctx.onnx_nodes for i in n.input}
    inputs = []
    for n in data_inputs:
        if n.name not in used:   # a label MXNet's loss outputs read in training only
            continue
        t = n.types[0]
        dims = _input_dims(n.name, t.shape, dynamic_shapes.get(n.name))
        inputs.append(helper.make_tensor_value_info(n.name, onnx_elem_type(t.dtype), dims))
    initializers = [onnx.numpy_helper.from_array(a, nm) for nm, a in ctx.initializers.items() if nm in used]
    onnx_graph = helper.make_graph(ctx.onnx_nodes, name or graph.name, inputs, outputs, initializers)
    model = helper.make_model(onnx_graph, producer_name="graphc", producer_version=_version(),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)   # readable by onnxruntime >= 1.14
    if check:
        onnx.checker.check_model(model)
    return model


def _version() -> str:
    import graphc
    return graphc.__version__
