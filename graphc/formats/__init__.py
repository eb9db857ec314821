"""File formats: MXNet 1.x model files (`-symbol.json` graphs and `.params` arrays).

Readers refuse malformed files with FormatError naming the file and the place; they never
execute or unpickle anything. Writers replace files atomically. This package builds graphs
through `graphc.ops` only; it must never import a backend.
"""
from .atomic import atomic_write
from .mxnet_params import load_params, save_params, split_arg_aux
from .mxnet_json import (load_symbol_json, dump_symbol_json, constants_of, bind_types, read_symbol_json,
                         read_symbol_file)

__all__ = ["atomic_write", "load_params", "save_params", "split_arg_aux", "load_symbol_json",
           "dump_symbol_json", "constants_of", "bind_types", "read_symbol_json", "read_symbol_file"]
