"""The `graphc` command line.

    graphc inspect MODEL-symbol.json [--shape data=1,784] [--params F] [--passes]
        prints a model file's summary (parameters, bytes, FLOPs, operator histogram), then its
        graph, typed when input shapes are given, after each pass with --passes
    graphc viz MODEL-symbol.json [--shape data=1,3,224,224] [-o out.svg] [--after-passes]
               [--partition GROUP=cpu(1) ...]
        draws the graph as SVG (graphc draws it; no Graphviz needed) or DOT text (-o x.dot);
        --after-passes draws what the backend compiles (fused kernels as one box); --partition
        places ctx_groups on devices, colours boxes by device, marks the cut edges and prints
        the per-device FLOPs, memory and bytes crossing
    graphc profile MODEL-symbol.json --shape data=1,3,224,224 [--params F] [--runs N] [--top N] [--json OUT]
        compiles the model, runs it N times and prints the time per kernel, slowest first, with
        the totals (profiled and unprofiled); --json writes the runs' Chrome trace
    graphc cache info | verify [--remove] | clear
        the compile cache: where it is and how full; check every entry as the loader would; empty it
    graphc im2rec PREFIX ROOT [--list] [--recursive] [--resize N] [--quality Q] [--pass-through]
                  [--num-thread N] [--encoding .jpg|.png] [--no-shuffle] ...
        MXNet's tools/im2rec.py: --list writes PREFIX.lst for the images under ROOT (with
        --recursive, one label per folder); without it, packs the images PREFIX.lst (or every
        PREFIX*.lst) names into .rec/.idx files
    graphc convert IN OUT [--shape data=1,3,224,224] [--params F] [--dynamic-batch]
        MXNet <-> ONNX: IN -symbol.json (its .params found beside it, or --params) to OUT .onnx,
        --shape for every data input; or IN .onnx to OUT PREFIX[-symbol.json], writing
        PREFIX-symbol.json and PREFIX-0000.params (--shape fixes symbolic input dimensions)

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


def _load_model(args):
    """(graph, input shapes): the file's graph, typed when --shape was given (parameter shapes
    inferred, or read from --params)."""
    from .formats.mxnet_json import load_symbol_json
    from .formats.mxnet_params import load_params
    from .passes.infer import infer_types
    shapes = _parse_shapes(args.shape)
    graph = load_symbol_json(_read_symbol_text(args.symbol), args.symbol, data_names=list(shapes))
    if not shapes:
        return graph, shapes
    try:
        types = {name: TensorType(shape, args.dtype) for name, shape in shapes.items()}
    except GraphcError as exc:
        raise CommandError(f"--dtype {args.dtype}: {exc}", 2) from None
    if args.params:
        for key, value in load_params(args.params).items():
            name = key.split(":", 1)[-1]
            types.setdefault(name, TensorType(value.shape, value.dtype))
    else:   # parameter shapes from the data's, as MXNet's infer_shape finds them
        from .symbol import _from_graph
        inferred = _from_graph(graph)._var_types(shapes, {k: args.dtype for k in shapes}, partial=True)
        for name, t in inferred.items():
            if t is not None:
                types.setdefault(name, t)
    return infer_types(graph, types), shapes


def inspect(args) -> int:
    from .passes.pipeline import SIMPLIFY
    graph, shapes = _load_model(args)
    print(model_summary(graph, args.symbol, typed=bool(shapes)))
    print()
    print(SIMPLIFY(graph, dump="all") if args.passes and shapes else graph)
    return 0


def model_summary(graph, path: str, typed: bool) -> str:
    """The lines `graphc inspect` starts with: what the model holds and costs, before its listing."""
    from collections import Counter
    from .passes.cost_model import node_flops
    from .passes.partition_report import format_bytes, format_count
    ops = graph.op_nodes()
    variables = [n for n in graph.nodes if n.is_var]
    lines = [f"model: {graph.name} ({path}): {len(ops)} operators, {len(variables)} variables, "
             f"{len(graph.outputs)} output{'s' if len(graph.outputs) != 1 else ''}"]
    if typed:
        data = [n for n in variables if n.hints.get("kind") == "input"]
        params = [n for n in variables if n.hints.get("kind") in ("param", "aux")]
        lines.append("inputs: " + ", ".join(f"{n.name} {n.types[0]}" for n in data))
        values = sum(n.types[0].size for n in params)
        nbytes = sum(n.types[0].nbytes for n in params)
        lines.append(f"parameters: {len(params)} arrays, {values:,} values, {format_bytes(nbytes)}")
        act = sum(t.nbytes for n in ops for t in n.types if t is not None)
        lines.append(f"activations: {format_bytes(act)} (every operator output of one forward run)")
        lines.append(f"FLOPs: {format_count(sum(node_flops(n) for n in ops))} per forward run")
        lines.append("outputs: " + ", ".join(str(v.type) for v in graph.outputs))
    else:
        lines.append(f"parameters: sizes unknown (give the input shapes, --shape NAME=D1,D2,...)")
    histogram = Counter(n.op for n in ops).most_common()
    lines.append("operators: " + ", ".join(f"{op} x{k}" for op, k in histogram))
    return "\n".join(lines)


# -- graphc viz ------------------------------------------------------------------------------------
def _parse_partition(items) -> dict:
    import re
    group2ctx = {}
    for item in items or []:
        group, _, device = item.partition("=")
        if not group or not re.fullmatch(r"(cpu|gpu)\(\d+\)", device.strip()):
            raise CommandError(f"--partition expects GROUP=DEVICE with DEVICE like cpu(1) or gpu(0), got {item!r}", 2)
        group2ctx[group] = device.strip()
    return group2ctx


def viz(args) -> int:
    from . import viz as mxviz
    from .passes.partition import partition_devices
    from .passes.partition_report import partition_report
    from .passes.pipeline import INFERENCE, SIMPLIFY, lower_pipeline
    from .symbol import _from_graph
    group2ctx = _parse_partition(args.partition)
    graph, shapes = _load_model(args)
    output = args.output or f"{graph.name}.svg"
    ext = os.path.splitext(output)[1].lower().lstrip(".")
    if ext not in ("svg", "dot", "gv", "pdf", "png"):
        raise CommandError(f"-o {output}: the picture's file name must end in .svg, .dot, .gv, .pdf or .png", 2)
    if args.after_passes:
        if not shapes:
            raise CommandError("--after-passes needs the input shapes (--shape NAME=D1,D2,...): the passes "
                               "work on typed graphs", 2)
        graph = lower_pipeline(False)(INFERENCE(SIMPLIFY(graph)))
    if group2ctx:
        groups = {n.hints.get("__ctx_group__") for n in graph.nodes} - {None}
        unknown = sorted(set(group2ctx) - groups)
        if unknown:
            raise CommandError(f"--partition: {args.symbol} has no ctx_group {unknown}; its groups are "
                               f"{sorted(groups) or 'none (no node carries __ctx_group__)'}")
        graph = partition_devices(graph, group2ctx)
    hide = not args.show_weights
    if args.after_passes or group2ctx:
        plot = mxviz.plot_network(graph, title=graph.name, hide_weights=hide)
    else:   # the file as MXNet's plot_network draws it
        plot = mxviz.plot_network(_from_graph(graph), title=graph.name, hide_weights=hide,
                                  shape={n.name: n.types[0].shape for n in graph.inputs} if shapes else None)
    if ext == "svg":
        data = plot.svg().encode()
    elif ext in ("dot", "gv"):
        data = plot.source.encode()
    else:
        data = plot.pipe(ext)
    from .formats.atomic import atomic_write
    atomic_write(output, data)
    cuts = sum(1 for e in plot.scene.edges if e.cut is not None)
    print(f"wrote {output}: {len(plot.scene.boxes)} boxes, {len(plot.scene.edges)} edges"
          + (f", {cuts} cut between devices" if group2ctx else ""))
    if group2ctx:
        print(partition_report(graph))
    return 0


# -- graphc profile --------------------------------------------------------------------------------
def _model_inputs(graph, args, rng):
    """An array per graph input: the --params values where the file has them, else random
    values (timings do not depend on the values of dense operators)."""
    import numpy as np
    from .formats.mxnet_params import load_params
    given = {}
    if args.params:
        given = {key.split(":", 1)[-1]: value for key, value in load_params(args.params).items()}
    arrays = []
    for n in graph.inputs:
        t = n.types[0]
        if n.name in given:
            arrays.append(np.ascontiguousarray(given[n.name], dtype=t.dtype).reshape(t.shape))
        elif np.issubdtype(np.dtype(t.dtype), np.floating):
            arrays.append((rng.standard_normal(t.shape) * 0.1).astype(t.dtype))
        else:
            arrays.append(np.zeros(t.shape, t.dtype))
    return arrays


def profile(args) -> int:
    import time
    import numpy as np
    from . import profiler
    from .compiler import compile_graph
    from .passes.pipeline import SIMPLIFY
    if args.runs < 1 or args.top < 0:
        raise CommandError(f"--runs must be at least 1 and --top at least 0, got --runs {args.runs} "
                           f"--top {args.top}", 2)
    graph, shapes = _load_model(args)
    if not shapes:
        raise CommandError("profile needs the input shapes (--shape NAME=D1,D2,...): programs are compiled "
                           "for fixed shapes", 2)
    graph = SIMPLIFY(graph)
    program = compile_graph(graph)
    inputs = _model_inputs(graph, args, np.random.default_rng(0))
    # sessions of its own: a profiler the caller has running records none of this
    config = dict(profile_symbolic=True, profile_imperative=False, profile_memory=False)
    with profiler.isolated(**config):
        outputs = program(inputs)              # warm-up: first-touch of the arena and outputs
        start = time.perf_counter()
        for _ in range(args.runs):
            program(inputs, outputs)
        plain = (time.perf_counter() - start) / args.runs
        profiler.set_state("run")
        program(inputs, outputs)               # builds the profiled twin (one call per kernel)
    with profiler.isolated(**config):
        profiler.set_state("run")
        for _ in range(args.runs):
            program(inputs, outputs)
        profiler.set_state("stop")
        trace = profiler.chrome_trace()
    if args.json:
        from .formats.atomic import atomic_write
        import json
        atomic_write(args.json, json.dumps(trace).encode())
    print(kernel_table(trace, graph.name, args.runs, plain, args.top))
    if args.json:
        print(f"wrote {args.json}: a Chrome trace (open in chrome://tracing or https://ui.perfetto.dev)")
    return 0


def kernel_table(trace: dict, name: str, runs: int, plain_seconds: float, top: int = 0) -> str:
    """The per-kernel rows of a Chrome trace of `runs` program calls, slowest total first."""
    rows, calls = {}, []
    for e in trace["traceEvents"]:
        if e.get("cat") in ("kernel", "host"):
            r = rows.setdefault(e["name"], [e["cat"], 0, 0.0, e.get("args", {}).get("what", "")])
            r[1] += 1
            r[2] += e["dur"]
        elif e.get("cat") == "program":
            calls.append(e["dur"])
    ordered = sorted(rows.items(), key=lambda kv: -kv[1][2])
    steps_us = sum(r[2] for r in rows.values())
    width = max([len("kernel")] + [len(k) for k in rows])
    lines = [f"profile: {name}: {len(rows)} steps per run, {runs} run{'s' if runs != 1 else ''}",
             f"{'kernel':<{width}}  {'kind':<6}  {'calls':>6}  {'total ms':>10}  {'avg ms':>9}  {'share':>6}  what"]
    shown = ordered[:top] if top else ordered
    for k, (cat, n, total, what) in shown:
        lines.append(f"{k:<{width}}  {cat:<6}  {n:>6}  {total / 1e3:>10.4f}  {total / 1e3 / n:>9.4f}  "
                     f"{total / (steps_us or 1):>6.1%}  {what}")
    if len(shown) < len(ordered):
        rest = ordered[len(shown):]
        lines.append(f"... {len(rest)} more steps, {sum(r[2] for _, r in rest) / 1e3:.4f} ms in all")
    per_call = sum(calls) / len(calls) / 1e3 if calls else 0.0
    lines.append(f"total: {steps_us / 1e3 / runs:.4f} ms per run in steps; {per_call:.4f} ms per profiled call "
                 f"(min {min(calls, default=0) / 1e3:.4f}); {plain_seconds * 1e3:.4f} ms per run unprofiled "
                 "(kernels fused into one native call)")
    return "\n".join(lines)


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


# -- graphc im2rec ---------------------------------------------------------------------------------
def im2rec(args) -> int:
    from .image import im2rec as tool
    if not os.path.isdir(args.root):
        raise CommandError(f"im2rec: image folder {args.root!r} does not exist")
    if args.list:
        items, classes = tool.list_images(args.root, args.recursive, tuple(e.lower() for e in args.exts))
        for folder, label in sorted(classes.items(), key=lambda kv: kv[1]):
            print(folder, label)
        paths = tool.make_lists(args.prefix, items, not args.no_shuffle, args.chunks, args.train_ratio,
                                args.test_ratio)
        print(f"im2rec: listed {len(items)} images into {', '.join(paths)}")
        return 0
    if os.path.isfile(args.prefix) and args.prefix.endswith(".lst"):
        lists = [args.prefix]
    else:
        folder, stem = os.path.split(args.prefix)
        folder = folder or "."
        lists = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                       if f.startswith(stem) and f.endswith(".lst")) if os.path.isdir(folder) else []
    if not lists:
        raise CommandError(f"im2rec: no .lst file matches {args.prefix!r}; make one first with --list")
    options = dict(resize=args.resize, quality=args.quality, encoding=args.encoding, color=args.color,
                   center_crop=args.center_crop, pass_through=args.pass_through, pack_label=args.pack_label)
    for lst in lists:
        written, skipped = tool.pack_list(lst, args.root, args.num_thread, **options)
        stem = os.path.splitext(lst)[0]
        print(f"im2rec: wrote {written} records to {stem}.rec/.idx" + (f" ({skipped} skipped)" if skipped else ""))
    return 0


def _add_im2rec_parser(sub) -> None:
    r = sub.add_parser("im2rec", help="make an image list (.lst) or a RecordIO file (.rec/.idx), as MXNet's im2rec",
                       description="MXNet's tools/im2rec.py: --list writes PREFIX.lst; otherwise the images "
                                   "listed in PREFIX.lst (or every PREFIX*.lst) are packed into .rec/.idx.")
    r.add_argument("prefix", help="PREFIX of the .lst/.rec/.idx files (or a .lst file)")
    r.add_argument("root", help="the folder the image paths are relative to")
    r.add_argument("--list", action="store_true", help="write the image list instead of packing")
    r.add_argument("--recursive", action="store_true", help="walk subfolders; each folder of images is one label")
    r.add_argument("--exts", nargs="+", default=[".jpeg", ".jpg", ".png"], help="image extensions to list")
    r.add_argument("--no-shuffle", action="store_true", help="keep the walk order in the list")
    r.add_argument("--chunks", type=int, default=1, help="split the list into this many files")
    r.add_argument("--train-ratio", type=float, default=1.0, help="fraction of each chunk for _train.lst")
    r.add_argument("--test-ratio", type=float, default=0.0, help="fraction of each chunk for _test.lst")
    r.add_argument("--resize", type=int, default=0, help="resize the shorter edge to this many pixels")
    r.add_argument("--center-crop", action="store_true", help="crop the centre square first")
    r.add_argument("--quality", type=int, default=95, help="JPEG quality, or PNG compression level 0-9")
    r.add_argument("--encoding", default=".jpg", choices=[".jpg", ".jpeg", ".png"])
    r.add_argument("--color", type=int, default=1, choices=[0, 1], help="1 colour (RGB), 0 gray")
    r.add_argument("--pass-through", action="store_true", help="store the image files' bytes unchanged")
    r.add_argument("--pack-label", action="store_true", help="store every label column of the .lst")
    r.add_argument("--num-thread", type=int, default=1, help="encoding threads")
    r.set_defaults(run=im2rec)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="graphc", description="graphc: inspect, draw and profile model files, manage the compile cache.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print the summary and the graph of a -symbol.json file")
    p.add_argument("symbol")
    p.add_argument("--shape", action="append", help="input shape, NAME=D1,D2,... (repeatable)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--params", help="a .params file giving the parameter shapes")
    p.add_argument("--passes", action="store_true", help="print the graph after each simplification pass")
    p.set_defaults(run=inspect)
    z = sub.add_parser("viz", help="draw the graph of a -symbol.json file as SVG (or DOT text)",
                       description="Draw a model's graph. SVG is drawn by graphc (no Graphviz needed); "
                                   "-o NAME.dot writes DOT text; .pdf/.png need Graphviz's dot program.")
    z.add_argument("symbol")
    z.add_argument("--shape", action="append", help="input shape, NAME=D1,D2,... (repeatable): labels edges with shapes")
    z.add_argument("--dtype", default="float32")
    z.add_argument("--params", help="a .params file giving the parameter shapes")
    z.add_argument("-o", "--output", help="the picture (default GRAPH.svg); .svg, .dot/.gv, .pdf or .png")
    z.add_argument("--after-passes", action="store_true",
                   help="draw the graph the backend compiles (fused kernels as one box); needs --shape")
    z.add_argument("--partition", action="append", metavar="GROUP=DEVICE",
                   help="place ctx_group GROUP on DEVICE, e.g. stage2=cpu(1) (repeatable): boxes coloured by "
                        "device, cut edges marked, per-device FLOPs/memory and bytes crossing printed")
    z.add_argument("--show-weights", action="store_true", help="draw parameters too (hidden by default, as in MXNet)")
    z.set_defaults(run=viz)
    f = sub.add_parser("profile", help="compile a -symbol.json model, run it and print the time per kernel",
                       description="Compile a model for the given input shapes, run it --runs times and print "
                                   "each kernel's time (slowest first) and the totals; --json writes the "
                                   "Chrome trace (chrome://tracing, Perfetto).")
    f.add_argument("symbol")
    f.add_argument("--shape", action="append", help="input shape, NAME=D1,D2,... (repeatable; required)")
    f.add_argument("--dtype", default="float32")
    f.add_argument("--params", help="a .params file: parameter shapes and values")
    f.add_argument("--runs", type=int, default=10, help="timed runs (default 10), after one warm-up")
    f.add_argument("--top", type=int, default=0, help="print only the N slowest kernels")
    f.add_argument("--json", metavar="OUT", help="write the Chrome trace of the timed runs to OUT")
    f.set_defaults(run=profile)
    c = sub.add_parser("cache", help="the compile cache ($GRAPHC_CACHE_DIR, default ~/.cache/graphc)")
    actions = c.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="directory, entry count, size and limit").set_defaults(run=cache_info)
    v = actions.add_parser("verify", help="check every entry's header and hash as the loader would")
    v.add_argument("--remove", action="store_true", help="remove the entries that would be refused")
    v.set_defaults(run=cache_verify)
    actions.add_parser("clear", help="remove every entry").set_defaults(run=cache_clear)
    _add_im2rec_parser(sub)
    _add_convert_parser(sub)
    return parser


def _entries(n: int) -> str:
    return f"{n} {'entry' if n == 1 else 'entries'}"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def convert(args) -> int:
    """MXNet files to ONNX or back, by IN's suffix."""
    from .onnx.convert import mxnet_to_onnx, onnx_to_mxnet
    shapes = _parse_shapes(args.shape)
    if args.input.endswith(".onnx"):
        if args.params or args.dynamic_batch:
            raise CommandError("--params and --dynamic-batch apply to MXNet -> ONNX only", 2)
        for path in onnx_to_mxnet(args.input, args.output, shapes):
            print(f"wrote {path}")
        return 0
    if not args.input.endswith(".json"):
        raise CommandError(f"{args.input}: convert reads an MXNet -symbol.json or an .onnx file", 2)
    if not args.output.endswith(".onnx"):
        raise CommandError(f"{args.output}: an MXNet model converts to an .onnx file", 2)
    _read_symbol_text(args.input)   # a .params file passed as the graph gets its own message
    print(f"wrote {mxnet_to_onnx(args.input, args.params, shapes, args.output, args.dynamic_batch, args.dtype)}")
    return 0


def _add_convert_parser(sub) -> None:
    v = sub.add_parser("convert", help="convert an MXNet model (-symbol.json + .params) to ONNX, or ONNX to MXNet",
                       description="MXNet -> ONNX (opset 13): IN is PREFIX-symbol.json, OUT ends in .onnx. "
                                   "ONNX -> MXNet: IN ends in .onnx, OUT is PREFIX or PREFIX-symbol.json; "
                                   "PREFIX-symbol.json and PREFIX-0000.params are written.")
    v.add_argument("input", metavar="IN")
    v.add_argument("output", metavar="OUT")
    v.add_argument("--shape", action="append", help="input shape, NAME=D1,D2,... (repeatable)")
    v.add_argument("--params", help="the .params file (default: the one PREFIX-NNNN.params beside IN)")
    v.add_argument("--dtype", default="float32", help="data input dtype (MXNet -> ONNX)")
    v.add_argument("--dynamic-batch", action="store_true", help="make the first dimension of every input symbolic")
    v.set_defaults(run=convert)


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`graphc inspect f | head`): as cat does, stop quietly; stdout is
        # pointed at /dev/null so that the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
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
