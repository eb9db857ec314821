"""File conversion between MXNet model files (`-symbol.json` + `.params`) and ONNX, for
`graphc convert`. Each direction goes through the same translations as `mx.onnx`."""
from __future__ import annotations

import glob
import os
import re

from ..ops.errors import FormatError, GraphcError


def find_params(symbol_file: str) -> str:
    """The `.params` file beside `PREFIX-symbol.json`: PREFIX-NNNN.params when exactly one
    epoch is there (otherwise the caller must say which)."""
    prefix = symbol_file[:-len("-symbol.json")] if symbol_file.endswith("-symbol.json") else os.path.splitext(symbol_file)[0]
    found = sorted(p for p in glob.glob(glob.escape(prefix) + "-*.params")
                   if re.fullmatch(r"-\d{4}\.params", p[len(prefix):]))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(os.path.basename(p) for p in found)})"
        raise GraphcError(f"{symbol_file}: found {what} {os.path.basename(prefix)}-NNNN.params files beside it; "
                          "name the parameters with --params")
    return found[0]


def mxnet_to_onnx(symbol_file: str, params_file: str | None, shapes: dict, onnx_file: str,
                  dynamic_batch: bool = False, dtype: str = "float32") -> str:
    """Write the MXNet model as ONNX; `shapes` gives each data input's shape by name."""
    from .. import symbol as _symbol
    from .mx2onnx import _load_inputs, data_inputs, export_model
    params_file = params_file or find_params(symbol_file)
    sym, arrays = _load_inputs(_symbol.load(symbol_file), params_file)
    data = data_inputs(sym, arrays)
    missing = [n for n in data if n not in shapes]
    extra = sorted(set(shapes) - set(data))
    if missing or extra:
        raise GraphcError(f"{symbol_file}: data inputs are {data}; --shape must give exactly those"
                          + (f" (missing {missing})" if missing else "") + (f" (not inputs: {extra})" if extra else ""))
    in_shapes = [shapes[n] for n in data]
    dynamic = [(None,) + tuple(s[1:]) for s in in_shapes] if dynamic_batch else None
    return export_model(sym, arrays, in_shapes=in_shapes, in_types=[dtype] * len(data), onnx_file_path=onnx_file,
                        dynamic=dynamic_batch, dynamic_input_shapes=dynamic)


def onnx_to_mxnet(onnx_file: str, out: str, shapes: dict | None = None, epoch: int = 0) -> tuple:
    """Write PREFIX-symbol.json and PREFIX-NNNN.params (MXNet 1.x's formats); `out` is PREFIX
    or PREFIX-symbol.json. Returns the two paths."""
    from ..formats.atomic import atomic_write
    from ..formats.mxnet_json import dump_symbol_json
    from ..formats.mxnet_params import save_params
    from ..formats.onnx_import import import_onnx
    prefix = out[:-len("-symbol.json")] if out.endswith("-symbol.json") else out
    if prefix.endswith((".json", ".params", ".onnx")):
        raise FormatError(f"{out}: name the MXNet output as PREFIX or PREFIX-symbol.json")
    model = import_onnx(onnx_file, shapes)
    arrays = {f"arg:{k}": v for k, v in model.arg_params.items()}
    arrays.update({f"aux:{k}": v for k, v in model.aux_params.items()})
    sym_path, params_path = f"{prefix}-symbol.json", f"{prefix}-{epoch:04d}.params"
    atomic_write(sym_path, dump_symbol_json(model.graph).encode())
    save_params(params_path, arrays)
    return sym_path, params_path
