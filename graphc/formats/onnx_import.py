"""ONNX models to graphc graphs built from MXNet operators, plus their arrays.

Reading never executes anything from the file: the protobuf is parsed by the `onnx` package,
each node is looked up in `onnx_import_table` (a table of translations, one function per ONNX
operator) and refused, naming the operator and the node, when graphc has no translation. Nodes
from other operator domains, subgraphs (If/Loop) and weights stored in external files are
refused likewise.

Shape plumbing is folded while reading: a node whose inputs are all known arrays (initializers,
Constant nodes, results already folded) is evaluated in numpy by `onnx_import_fold`
when it is one of the shape-arithmetic operators exporters emit (Shape, Gather, Unsqueeze,
Concat, Cast, ...). `Shape` of a computed value folds to the static shape graphc inferred; when
a graph input has symbolic dimensions that would pin those dimensions, so it is refused unless
the caller fixed the input shapes.

The graph is typed as it is built (graphc's inference at each node); where ONNX's own shape
inference knows a node's output shape, the two must agree, so a translation that computes a
different geometry (pooling's ceil mode, say) fails at import instead of giving wrong numbers.
This module must never import a backend.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from graphc.ops.builder import GraphBuilder, Handle
from graphc.ops.errors import FormatError, GraphcError
from graphc.ops.graph import Graph
from graphc.ops.types import TensorType

from .onnx_common import numpy_dtype, require_onnx

SUPPORTED_OPSETS = range(7, 22)


@dataclass
class ImportedModel:
    """graph: inputs are the data inputs (in the file's order) then the parameters.
    arg_params / aux_params: name -> array, as MXNet's import_model splits them (BatchNorm's
    running statistics are auxiliary states)."""
    graph: Graph
    arg_params: dict
    aux_params: dict
    data_names: list
    output_names: list = field(default_factory=list)


class ImportContext:
    """What is known about each ONNX value while nodes are translated in order: a graph value
    (Handle) or an array known at import time."""

    def __init__(self, source: str, opset: int, name: str):
        self.source = source
        self.opset = opset
        self.builder = GraphBuilder(name)
        self.values: dict = {}       # ONNX name -> Handle | np.ndarray
        self.params: dict = {}       # variable name -> array
        self.aux: set = set()
        self._materialized: dict = {}   # (ONNX name, kind) -> Handle
        self._node_names: set = set()
        self.symbolic_inputs: list = []  # (input, dimension) pairs the file leaves symbolic
        self.node = None
        self._name = None

    def begin(self, node) -> None:
        """Translate `node` next: errors name it, and its graphc nodes are named after it."""
        self.node, self._name = node, None

    # -- values ---------------------------------------------------------------------------------
    def get(self, name: str):
        if name not in self.values:
            raise self.fail(f"input {name!r} is not produced by any earlier node, initializer or graph input")
        return self.values[name]

    def const(self, name: str):
        """The array of value `name` when known at import time, else None ('' = absent: None)."""
        if not name:
            return None
        v = self.get(name)
        return v if isinstance(v, np.ndarray) else None

    def tensor(self, name: str, kind: str = "param") -> Handle:
        """Value `name` as a graph value; a known array becomes a parameter variable the first
        time (kind 'aux' for BatchNorm's running statistics)."""
        v = self.get(name)
        if isinstance(v, Handle):
            return v
        key = (name, kind)
        if key not in self._materialized:
            self._materialized[key] = self.param(v, name, kind)
        return self._materialized[key]

    def param(self, array, hint: str, kind: str = "param") -> Handle:
        """A new parameter variable holding `array` (a name not taken yet, from `hint`)."""
        name, k = hint, 1
        while name in self.params or any(n.name == name for n in self.builder.inputs):
            k += 1
            name = f"{hint}_{k}"
        array = np.ascontiguousarray(array)
        self.params[name] = array
        if kind == "aux":
            self.aux.add(name)
        return self.builder.var(name, TensorType(array.shape, array.dtype.name), kind)

    def shape(self, name: str) -> tuple:
        v = self.get(name)
        return tuple(v.shape)

    # -- nodes ----------------------------------------------------------------------------------
    def node_name(self) -> str:
        """The graphc name of the node being translated (its ONNX name made unique); a
        translation into several operators names the others `<this>_<suffix>`."""
        if self._name is None:
            base = self.node.name or self.node.op_type.lower()
            name, k = base, 1
            while name in self._node_names:
                k += 1
                name = f"{base}_{k}"
            self._node_names.add(name)
            self._name = name
        return self._name

    def emit(self, op: str, inputs: Sequence, attrs: Mapping | None = None, name: str | None = None):
        """An operator on graph values (arrays are made parameters first); returns a Handle, or
        a tuple when the operator shows several outputs."""
        handles = [x if isinstance(x, Handle) else self.param(np.asarray(x), f"{self.node_name()}_const")
                   for x in inputs]
        try:
            return self.builder.invoke(op, handles, dict(attrs or {}), name or self.node_name())
        except GraphcError as exc:
            raise self.fail(f"its translation to {op} does not apply: {exc}") from None

    def fail(self, why: str) -> FormatError:
        node = self.node
        where = f"node {node.name or '(unnamed)'!r} ({node.op_type})" if node is not None else "the graph"
        return FormatError(f"{self.source}: {where}: {why}")


def _attributes(node) -> dict:
    onnx = require_onnx()
    out = {}
    for a in node.attribute:
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise FormatError(f"node {node.name!r} ({node.op_type}) has a subgraph attribute {a.name!r}; graphc "
                              "does not import control flow")
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, onnx.TensorProto):
            v = onnx.numpy_helper.to_array(v)
        out[a.name] = v
    return out


def _check_weights_inline(model, source):
    onnx = require_onnx()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise FormatError(f"{source}: initializer {t.name!r} is stored in an external file; graphc reads "
                              "self-contained .onnx files only (onnx.load_model(..., load_external_data=True) "
                              "then onnx.save_model without external data)")


def _inferred_shapes(model) -> dict:
    """ONNX's own static shape for each value it can infer fully (best effort: exporters write
    models its inference cannot always follow). None for models with ceil-mode pooling: the
    onnx package's inference keeps a last window that starts in the end padding where
    onnxruntime and PyTorch drop it, so its shapes there (and below) are not the runtime's."""
    onnx = require_onnx()
    if any(n.op_type in ("MaxPool", "AveragePool") and any(a.name == "ceil_mode" and a.i for a in n.attribute)
           for n in model.graph.node):
        return {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # noqa: BLE001 - the check is an extra, never a reason to refuse a model
        return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    return out


def _input_shape(ctx, vi, given):
    t = vi.type.tensor_type
    dims = []
    for i, d in enumerate(t.shape.dim):
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        else:
            dims.append(1)
            ctx.symbolic_inputs.append((vi.name, i))
    if given is not None:
        given = tuple(int(x) for x in given)
        fixed = {i for i, d in enumerate(t.shape.dim) if d.HasField("dim_value")}
        clash = [i for i in fixed if i < len(given) and given[i] != dims[i]]
        if len(given) != len(dims) or clash:
            raise FormatError(f"{ctx.source}: input {vi.name!r} has shape {tuple(dims)} (1 where symbolic) in "
                              f"the file; the given shape {given} does not fit it")
        ctx.symbolic_inputs = [(n, i) for n, i in ctx.symbolic_inputs if n != vi.name]
        return given
    return tuple(dims)


def load_onnx(source):
    """ModelProto from a path, bytes or a ModelProto; the path names the file in errors."""
    onnx = require_onnx()
    if isinstance(source, onnx.ModelProto):
        return source, "<ModelProto>"
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(source)), "<bytes>"
        except Exception as exc:   # noqa: BLE001 - protobuf's DecodeError and friends
            raise FormatError(f"<bytes>: not an ONNX model: {exc}") from None
    path = os.fspath(source)
    try:
        return onnx.load_model(path, load_external_data=False), path
    except OSError:
        raise
    except Exception as exc:   # noqa: BLE001
        raise FormatError(f"{path}: not an ONNX model: {exc}") from None


def import_onnx(source, input_shapes: Mapping[str, Sequence[int]] | None = None) -> ImportedModel:
    """Translate an ONNX model (path, bytes or ModelProto). `input_shapes` fixes the shapes of
    inputs the file leaves symbolic (required where the model computes with its own shape)."""
    from .onnx_import_table import all_translations
    CONVERTERS, FOLDERS = all_translations()
    onnx = require_onnx()
    model, source = load_onnx(source)
    _check_weights_inline(model, source)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = opsets.get("ai.onnx")
    if opset is None or opset not in SUPPORTED_OPSETS:
        raise FormatError(f"{source}: default-domain opset {opset} is not one graphc reads "
                          f"({SUPPORTED_OPSETS.start}-{SUPPORTED_OPSETS.stop - 1})")
    g = model.graph
    ctx = ImportContext(source, opset, g.name or "onnx_model")
    input_shapes = dict(input_shapes or {})
    init_names = {t.name for t in g.initializer}
    data_inputs = [vi for vi in g.input if vi.name not in init_names]
    unknown = sorted(set(input_shapes) - {vi.name for vi in data_inputs})
    if unknown:
        raise FormatError(f"{source}: shapes given for {unknown}, which are not inputs (inputs: "
                          f"{[vi.name for vi in data_inputs]})")
    for vi in data_inputs:
        dtype = numpy_dtype(vi.type.tensor_type.elem_type)
        shape = _input_shape(ctx, vi, input_shapes.get(vi.name))
        ctx.values[vi.name] = ctx.builder.var(vi.name, TensorType(shape, dtype.name), "input")
    for t in g.initializer:
        ctx.values[t.name] = onnx.numpy_helper.to_array(t)
    expected = _inferred_shapes(model)   # static shapes only: symbolic dimensions never compare
    for node in g.node:
        ctx.begin(node)
        if node.domain not in ("", "ai.onnx"):
            raise ctx.fail(f"operator domain {node.domain!r} is not ONNX's default; graphc reads only that one")
        attrs = _attributes(node)
        known = [ctx.const(i) if i else None for i in node.input]
        if node.op_type in FOLDERS and all(k is not None or not i for k, i in zip(known, node.input)) \
                and (node.input or node.op_type == "Constant"):
            outs = FOLDERS[node.op_type](ctx, known, attrs)
        else:
            convert = CONVERTERS.get(node.op_type)
            if convert is None:
                raise ctx.fail(f"operator {node.op_type!r} has no translation in graphc "
                               "(see graphc/formats/onnx_import_nn.py and onnx_import_tensor.py)")
            outs = convert(ctx, node, attrs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(outs) or outs[i] is None:
                raise ctx.fail(f"output {i} ({name!r}) has no translation (graphc computes {len(outs)} of them)")
            value = outs[i] if isinstance(outs[i], Handle) else np.asarray(outs[i])   # numpy scalars too
            want = expected.get(name)
            if want is not None and tuple(value.shape) != want:
                raise ctx.fail(f"output {name!r}: graphc's translation gives shape {tuple(value.shape)} but ONNX "
                               f"infers {want}; the two operators disagree on this geometry")
            ctx.values[name] = value
    ctx.begin(None)
    outputs = []
    for vi in g.output:
        v = ctx.get(vi.name)
        if not isinstance(v, Handle):
            v = ctx.param(v, vi.name)
        outputs.append(v)
    values = [h.value for h in outputs]
    used = {n.name for n in Graph.from_outputs([], values).nodes if n.is_var}
    # data inputs all stay (the calling convention); parameters only where something reads them
    kept = [n for n in ctx.builder.inputs if n.hints.get("kind") == "input" or n.name in used]
    graph = Graph.from_outputs(kept, values, g.name or "onnx_model")
    args = {k: v for k, v in ctx.params.items() if k in used and k not in ctx.aux}
    auxs = {k: v for k, v in ctx.params.items() if k in used and k in ctx.aux}
    return ImportedModel(graph, args, auxs, [vi.name for vi in data_inputs], [vi.name for vi in g.output])


def model_metadata(source) -> dict:
    """MXNet's get_model_metadata: {'input_tensor_data': [(name, shape)], 'output_tensor_data':
    [(name, shape)]}, symbolic dimensions as their names."""
    model, _ = load_onnx(source)
    g = model.graph
    init_names = {t.name for t in g.initializer}

    def dims(vi):
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                     for d in vi.type.tensor_type.shape.dim)
    return {"input_tensor_data": [(vi.name, dims(vi)) for vi in g.input if vi.name not in init_names],
            "output_tensor_data": [(vi.name, dims(vi)) for vi in g.output]}
