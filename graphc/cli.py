"""The `graphc` command line.

    graphc inspect MODEL-symbol.json [--shape data=1,784] [--params F] [--passes]
        prints a model file's graph, typed when input shapes are given, after each pass with --passes
    graphc cache info | verify [--remove] | clear
        the compile cache: where it is and how full; check every entry as the loader would; empty it

Every failure is one line on stderr, `graphc: error: ...`, with exit status 2 for a wrong
command line and 1 for anything else (a missing or malformed file, a damaged cache); never a
traceback (GRAPHC_TRACEBACK=1 shows one for an unexpected internal error).
"""
from __future__ import annotations

import argparse
import os
import struct
import sys

from .ops.errors import GraphcError
from .ops.types import TensorType

PARAMS_MAGIC = struct.pack("<Q", 0x112)    # an MXNet .params (NDArray list) file starts with this


class CommandError(Exception):
    """A failure to report as one line; `status` is the exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the same one line as every other error."""

    def error(self, message):
        self.exit(2, f"graphc: error: {message} (see '{self.prog} --help')\n")


def _parse_shapes(items):
    shapes = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        parts = [d.strip() for d in dims.split(",") if d.strip()]
        if not name or not parts or not all(d.isdigit() for d in parts):
            raise CommandError(f"--shape expects NAME=D1,D2,... with whole-number dimensions, got {item!r}", 2)
        shapes[name] = tuple(int(d) for d in parts)
    return shapes


def _read_symbol_text(path: str) -> str:
    """The text of a -symbol.json file; a binary file is named for what it is."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw.startswith(PARAMS_MAGIC):
        raise CommandError(f"{path} is an MXNet .params file (binary parameters), not a -symbol.json "
                           "graph; pass the -symbol.json file, and the .params file with --params")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                           "inspect expects an MXNet -symbol.json file") from None


def inspect(args) -> int:
    from .formats.mxnet_json import load_symbol_json
    from .formats.mxnet_params import load_params
    from .passes.infer import infer_types
    from .passes.pipeline import SIMPLIFY
    shapes = _parse_shapes(args.shape)
    graph = load_symbol_json(_read_symbol_text(args.symbol), args.symbol, data_names=list(shapes))
    if not shapes:
        print(graph)
        return 0
    try:
        types = {name: TensorType(shape, args.dtype) for name, shape in shapes.items()}
    except GraphcError as exc:
        raise CommandError(f"--dtype {args.dtype}: {exc}", 2) from None
    if args.params:
        for key, value in load_params(args.params).items():
            name = key.split(":", 1)[-1]
            types.setdefault(name, TensorType(value.shape, value.dtype))
    typed = infer_types(graph, types)
    print(SIMPLIFY(typed, dump="all" if args.passes else "") if args.passes else typed)
    return 0


# -- graphc cache ... ----------------------------------------------------------------------------
def cache_info(args) -> int:
    from .runtime import cache, cache_store
    directory = cache_store.cache_dir()
    problem = cache_store.dir_problem(directory)
    if problem:
        status = f"not used: {problem}"
    elif not os.path.isdir(directory):
        status = "not created yet"
    else:
        status = "in use"
    count, size = cache_store.usage(directory)
    limit = cache_store.max_bytes()
    print(f"directory: {directory} ({status})")
    print(f"entries:   {count}")
    print(f"size:      {cache_store.format_size(size)} ({size} bytes)")
    print(f"limit:     {cache_store.format_size(limit)} ({limit} bytes, GRAPHC_CACHE_MAX_BYTES)"
          + ("; the disk cache is off" if limit <= 0 else ""))
    print(f"in memory: up to {cache.max_programs()} programs kept loaded (GRAPHC_CACHE_MAX_PROGRAMS)")
    return 0


def cache_verify(args) -> int:
    from .runtime import cache, cache_store
    directory = cache_store.cache_dir()
    problem = cache_store.dir_problem(directory)
    if problem:
        raise CommandError(f"cache directory {directory} is not used: {problem}")
    count, _ = cache_store.usage(directory)
    bad = cache_store.verify(directory, cache.host_target(), remove=args.remove)
    for path, reason, removed in bad:
        print(f"{path}: {reason}{' (removed)' if removed else ''}")
    kept = [b for b in bad if not b[2]]
    print(f"{directory}: {_entries(count)} checked, {len(bad)} refused"
          + (f", {len(bad) - len(kept)} removed" if args.remove else ""))
    if kept:
        raise CommandError(f"{_entries(len(kept))} in {directory} would be refused by the loader"
                           + ("" if args.remove else "; `graphc cache verify --remove` removes them"))
    return 0


def cache_clear(args) -> int:
    from .runtime import cache_store
    directory = cache_store.cache_dir()
    count, size = cache_store.clear(directory)
    print(f"removed {_entries(count)} ({cache_store.format_size(size)}) from {directory}")
    left, _ = cache_store.usage(directory)
    if left:
        raise CommandError(f"{_entries(left)} in {directory} could not be removed")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="graphc", description="graphc: inspect model files and manage the compile cache.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print the graph of a -symbol.json file")
    p.add_argument("symbol")
    p.add_argument("--shape", action="append", help="input shape, NAME=D1,D2,... (repeatable)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--params", help="a .params file giving the parameter shapes")
    p.add_argument("--passes", action="store_true", help="print the graph after each simplification pass")
    p.set_defaults(run=inspect)
    c = sub.add_parser("cache", help="the compile cache ($GRAPHC_CACHE_DIR, default ~/.cache/graphc)")
    actions = c.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="directory, entry count, size and limit").set_defaults(run=cache_info)
    v = actions.add_parser("verify", help="check every entry's header and hash as the loader would")
    v.add_argument("--remove", action="store_true", help="remove the entries that would be refused")
    v.set_defaults(run=cache_verify)
    actions.add_parser("clear", help="remove every entry").set_defaults(run=cache_clear)
    return parser


def _entries(n: int) -> str:
    return f"{n} {'entry' if n == 1 else 'entries'}"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        message, status = str(exc), exc.status
    except GraphcError as exc:
        message, status = str(exc), 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        message, status = f"{where}{exc.strerror or exc}", 1
    except Exception as exc:   # noqa: BLE001 - the promise is one line, whatever went wrong
        if os.environ.get("GRAPHC_TRACEBACK", "") not in ("", "0"):
            raise
        message = (f"internal error in 'graphc {args.command}': {type(exc).__name__}: {exc} "
                   "(GRAPHC_TRACEBACK=1 shows where)")
        status = 1
    print(f"graphc: error: {_one_line(message)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
