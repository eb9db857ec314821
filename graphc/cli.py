"""The `graphc` command line: `graphc inspect MODEL-symbol.json [--shape data=1,784] [--params F]`
prints a model file's graph, typed when input shapes are given, after each pass with --passes."""
from __future__ import annotations

import argparse
import sys

from .ops.errors import GraphcError
from .ops.types import TensorType


def _parse_shapes(items):
    shapes = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        if not dims:
            raise SystemExit(f"--shape expects NAME=D1,D2,..., got {item!r}")
        shapes[name] = tuple(int(d) for d in dims.split(",") if d)
    return shapes


def inspect(args) -> int:
    from .io.mxnet_json import load_symbol_json
    from .io.mxnet_params import load_params
    from .passes.infer import infer_types
    from .passes.pipeline import SIMPLIFY
    shapes = _parse_shapes(args.shape)
    with open(args.symbol, "r", encoding="utf-8") as fh:
        graph = load_symbol_json(fh.read(), args.symbol, data_names=list(shapes))
    if not shapes:
        print(graph)
        return 0
    types = {name: TensorType(shape, args.dtype) for name, shape in shapes.items()}
    if args.params:
        for key, value in load_params(args.params).items():
            name = key.split(":", 1)[-1]
            types.setdefault(name, TensorType(value.shape, value.dtype))
    typed = infer_types(graph, types)
    print(SIMPLIFY(typed, dump="all" if args.passes else "") if args.passes else typed)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="graphc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print the graph of a -symbol.json file")
    p.add_argument("symbol")
    p.add_argument("--shape", action="append", help="input shape, NAME=D1,D2,... (repeatable)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--params", help="a .params file giving the parameter shapes")
    p.add_argument("--passes", action="store_true", help="print the graph after each simplification pass")
    args = parser.parse_args(argv)
    try:
        return inspect(args)
    except (GraphcError, OSError) as exc:
        print(f"graphc: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
