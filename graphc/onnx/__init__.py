"""mx.onnx: ONNX export (`export_model`, MXNet 1.9.1's signature; `export_block` for a
hybridized block) and import (`import_model`, `import_to_gluon`, `get_model_metadata`, as
MXNet 1.x's `mx.contrib.onnx`).

Needs the optional `onnx` package (`pip install 'graphc[onnx]'`) when called; importing this
module does not. The translations live in `graphc.formats.onnx_export` / `onnx_import`.
"""
from .mx2onnx import export_model, export_block
from .onnx2mx import import_model, import_to_gluon, get_model_metadata

__all__ = ["export_model", "export_block", "import_model", "import_to_gluon", "get_model_metadata"]
