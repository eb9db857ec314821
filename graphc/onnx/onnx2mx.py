"""`import_model`, `import_to_gluon` and `get_model_metadata`, as MXNet 1.x's `mx.contrib.onnx`.

The translation is `graphc.formats.onnx_import`; this layer wraps its graph and arrays in the
objects MXNet's API returns (a Symbol with NDArray dicts, or a SymbolBlock with loaded
parameters). `input_shapes` (a graphc addition) fixes inputs the file leaves symbolic, which
models that compute with their own shape (PyTorch's `x.view(x.size(0), -1)`) need.
"""
from __future__ import annotations

from ..formats.onnx_import import import_onnx, model_metadata


def import_model(model_file, input_shapes=None):
    """(sym, arg_params, aux_params) of an ONNX model; the params are NDArrays by name."""
    from .. import nd
    from ..symbol import _from_graph
    model = import_onnx(model_file, input_shapes)
    sym = _from_graph(model.graph)
    return (sym, {k: nd.array(v, dtype=v.dtype) for k, v in model.arg_params.items()},
            {k: nd.array(v, dtype=v.dtype) for k, v in model.aux_params.items()})


def import_to_gluon(model_file, ctx=None, input_shapes=None):
    """A SymbolBlock computing the ONNX model, its parameters loaded (on `ctx`)."""
    from ..gluon.block import HybridBlock
    from ..gluon.symbol_block import SymbolBlock
    model = import_onnx(model_file, input_shapes)
    block = SymbolBlock.__new__(SymbolBlock)
    HybridBlock.__init__(block, prefix="", params=None)
    block._setup(model.graph, model.data_names, None)
    arrays = {**model.arg_params, **model.aux_params}
    for name, param in block._params_by_var.items():
        param._load_init(arrays[name], ctx)
    return block


def get_model_metadata(model_file):
    """{'input_tensor_data': [(name, shape)], 'output_tensor_data': [(name, shape)]}; a
    symbolic dimension shows as its name."""
    return model_metadata(model_file)
