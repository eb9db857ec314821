"""`mx.onnx.export_model` with MXNet 1.9.1's signature, and `export_block` for a hybridized block.

This layer only gathers what the user handed over (a Symbol or a `-symbol.json` path, arrays
as a dict, a [arg, aux] pair or a `.params` path, data shapes and types), types the graph, and
passes it to `graphc.formats.onnx_export`, which does the translation. MXNet's conventions kept:
data inputs are the symbol's inputs that have no array, in `list_inputs()` order, minus the
label a loss output reads in training only; `in_shapes` lists their shapes in that order.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ..formats.atomic import atomic_write
from ..formats.onnx_common import require_onnx
from ..formats.onnx_export import graph_to_onnx
from ..ops.errors import GraphcError
from ..ops.graph import Graph
from ..ops.registry import get_op, has_op

_log = logging.getLogger(__name__)


def _numpy(value):
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def _strip(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name


def _load_inputs(sym, params):
    """(Symbol, name -> numpy array) from any of the forms export_model accepts."""
    from .. import symbol as _symbol
    from ..formats.mxnet_params import load_params
    if isinstance(sym, (str, os.PathLike)):
        sym = _symbol.load(os.fspath(sym))
    if not isinstance(sym, _symbol.Symbol):
        raise TypeError(f"export_model: sym must be a Symbol or the path of a -symbol.json file, not "
                        f"{type(sym).__name__}")
    if isinstance(params, (str, os.PathLike)):
        params = load_params(os.fspath(params))
    elif isinstance(params, (list, tuple)):
        if len(params) != 2:
            raise ValueError(f"export_model: params as a list must be [arg_params, aux_params], got {len(params)} items")
        params = {**params[0], **params[1]}
    elif not isinstance(params, dict):
        raise TypeError(f"export_model: params must be a dict, a [arg_params, aux_params] list or a .params "
                        f"path, not {type(params).__name__}")
    return sym, {_strip(k): _numpy(v) for k, v in params.items()}


def label_inputs(graph: Graph) -> set:
    """Variables read only where an operator takes its training label (SoftmaxOutput's
    `label`): MXNet's exporter leaves them out of the ONNX inputs and of `in_shapes`."""
    readers: dict = {}
    for n in graph.nodes:
        if n.is_var or n.is_const or not has_op(n.op):
            continue
        names = get_op(n.op).input_names(n.attrs)
        for pos, v in enumerate(n.inputs):
            if v.node.is_var:
                readers.setdefault(v.node.name, []).append(pos < len(names) and names[pos] == "label")
    return {name for name, flags in readers.items() if all(flags)}


def data_inputs(sym, arrays) -> list:
    """The symbol's data inputs in MXNet's order: inputs without an array, labels left out."""
    labels = label_inputs(sym._graph())
    return [n for n in sym.list_inputs() if n not in arrays and n not in labels]


def _dynamic_shapes(names, in_shapes, dynamic, dynamic_input_shapes):
    if not dynamic:
        if dynamic_input_shapes is not None:
            raise ValueError("export_model: dynamic_input_shapes is given; set dynamic=True to use it")
        return {}
    if dynamic_input_shapes is None:
        return {n: [None] * len(s) for n, s in zip(names, in_shapes)}
    if len(dynamic_input_shapes) != len(in_shapes):
        raise ValueError(f"export_model: dynamic_input_shapes has {len(dynamic_input_shapes)} shapes for "
                         f"{len(in_shapes)} inputs")
    return {n: list(s) for n, s in zip(names, dynamic_input_shapes)}


def _write(model, path):
    atomic_write(os.fspath(path), model.SerializeToString())
    return os.fspath(path)


def export_model(sym, params, in_shapes=None, in_types=np.float32, onnx_file_path="model.onnx", verbose=False,
                 dynamic=False, dynamic_input_shapes=None, run_shape_inference=False, input_type=None,
                 input_shape=None):
    """Write `sym` with `params` as an ONNX model (opset 13) at `onnx_file_path`; returns the path.

    Arguments as MXNet 1.9.1's: `input_type`/`input_shape` are the old names of `in_types`/
    `in_shapes`; `dynamic` makes every data dimension symbolic unless `dynamic_input_shapes`
    (None per dimension that varies) says which. A HybridBlock that has run hybridized may be
    passed as `sym` (with params=None): see `export_block`."""
    onnx = require_onnx()
    if input_type is not None:
        in_types = input_type
    if input_shape is not None:
        in_shapes = input_shape
    from ..gluon.block import HybridBlock
    if isinstance(sym, HybridBlock):
        return export_block(sym, onnx_file_path, dynamic=dynamic, dynamic_input_shapes=dynamic_input_shapes,
                            run_shape_inference=run_shape_inference)
    if in_shapes is None:
        raise ValueError("export_model: in_shapes is required (one shape per data input)")
    sym, arrays = _load_inputs(sym, params)
    data = data_inputs(sym, arrays)
    in_shapes = [tuple(int(d) for d in s) for s in in_shapes]
    if len(in_shapes) < len(data):
        raise ValueError(f"export_model: the symbol has {len(data)} data inputs {data} but in_shapes gives "
                         f"{len(in_shapes)} shapes")
    types = in_types if isinstance(in_types, (list, tuple)) else [in_types] * len(data)
    if len(types) < len(data):
        raise ValueError(f"export_model: {len(data)} data inputs {data} but in_types gives {len(types)} types")
    try:
        typed = _typed_graph(sym, arrays, dict(zip(data, in_shapes)), {n: np.dtype(t).name for n, t in zip(data, types)})
    except GraphcError as exc:
        raise GraphcError(f"export_model: cannot type the symbol from in_shapes {in_shapes}: {exc}") from None
    model = graph_to_onnx(typed, arrays, dynamic_shapes=_dynamic_shapes(data, in_shapes, dynamic, dynamic_input_shapes),
                          name="graphc_converted_model")
    if verbose:
        _log.info("ONNX export: %d nodes, %d initializers", len(model.graph.node), len(model.graph.initializer))
    if run_shape_inference:
        model = onnx.shape_inference.infer_shapes(model)
    return _write(model, onnx_file_path)


def _typed_graph(sym, arrays, shapes, dtypes) -> Graph:
    """The symbol's graph typed from the data shapes and the arrays' own types, through the
    pass that also binds MXNet's files (it resolves `_zeros` begin states whose batch size the
    file leaves 0). Labels, which no array or data shape gives, are inferred as MXNet does."""
    from ..ops.types import TensorType
    from ..passes.infer import infer_types
    inputs = set(sym.list_inputs())
    types = {n: TensorType(s, dtypes[n]) for n, s in shapes.items()}
    types.update({n: TensorType(a.shape, a.dtype.name) for n, a in arrays.items() if n in inputs})
    missing = [n for n in sym.list_inputs() if n not in types]
    if missing:
        guessed = sym._var_types(shapes, dtypes, partial=True)
        types.update({n: guessed[n] for n in missing if guessed.get(n) is not None})
    return infer_types(sym._graph(), types)


def block_graph(block):
    """(typed graph of the block's last hybridized call, its arrays by name)."""
    cached = getattr(block, "_cached_op", None)
    if cached is None or cached.last is None:
        raise GraphcError(f"{block.name}: ONNX export needs a traced graph; call hybridize() and run the block "
                          "once on an input first")
    graph = cached.last.graph
    if len(graph.outputs) != cached.last.n_visible:   # drop the aux-state updates of training
        graph = graph.with_outputs(graph.outputs[:cached.last.n_visible], graph.output_tree)
    arrays = {p.name: p.data().asnumpy() for p in cached.last.param_list}
    return graph, arrays


def export_block(block, onnx_file_path, dynamic=False, dynamic_input_shapes=None, run_shape_inference=False):
    """Write a hybridized block's last traced graph (at the shapes it ran with) as ONNX. Data
    inputs are named as in `HybridBlock.export`: 'data', or 'data0', 'data1', ..."""
    onnx = require_onnx()
    graph, arrays = block_graph(block)
    data = [n for n in graph.inputs if n.name not in arrays]
    dyn = _dynamic_shapes([n.name for n in data], [n.types[0].shape for n in data], dynamic, dynamic_input_shapes)
    model = graph_to_onnx(graph, arrays, dynamic_shapes=dyn, name=block.name)
    if run_shape_inference:
        model = onnx.shape_inference.infer_shapes(model)
    return _write(model, onnx_file_path)
