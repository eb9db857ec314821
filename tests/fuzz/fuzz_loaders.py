"""Fuzz graphc's model-file loaders: `.params` (load_params, nd.load), symbol JSON
(load_symbol_json, sym.load) and SymbolBlock.imports, for a set time.

    .venv/bin/python tests/fuzz/fuzz_loaders.py --seconds 60      (or: make fuzz FUZZ_SECONDS=60)

Cases start from real files: MXNet 1.9.1's fixtures (shared/fixtures/mxnet: mlp, cnn, lstm) and
files graphc itself writes (an export with BatchNorm states and nested outputs). Hypothesis
draws the mutations: byte flips, truncation, appended and spliced bytes, header fields set to
edge values, flips confined to an array's data; for JSON, text flips and truncation plus
structural edits (operator names, attributes, shapes and dtypes, input and head indices, node
counts, arg_nodes, the output tree) and edits that must not change the model at all (key order,
whitespace, node_row_ptr, unknown graph attributes).

A case fails when a loader
- raises anything but a GraphcError (FormatError, ShapeError, OpAttributeError, DTypeError,
  ...): those are the loaders' documented refusals, each naming the file or the operator. A
  bare ValueError, KeyError, IndexError, TypeError, RecursionError, MemoryError or
  UnicodeDecodeError is a bug: it names neither the file nor the problem;
- hangs (no answer within --case-timeout seconds) or kills the process (a crash);
- returns a wrong result: a truncated or extended .params file accepted; a flip inside an
  array's data not giving exactly that array with that byte flipped; accepted arrays that do
  not survive save_params -> load_params bit for bit; a semantics-preserving JSON edit whose
  model no longer computes the fixture's recorded output.

Each distinct failure (exception type and the line that raised it) is reported once, with the
case written to --out for reproduction. Exit status 1 when anything failed.

Cases run in a worker process that the driver restarts when it dies, so a crash is reported
(with the case that caused it) instead of ending the run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "mxnet"))
MODELS = ("mlp", "cnn", "lstm")


class Hang(Exception):
    pass


# -- seeds -----------------------------------------------------------------------------------------
def graphc_written_models(directory):
    """Files graphc writes: an exported block with BatchNorm (aux states) whose outputs nest."""
    import graphc as mx
    from graphc.gluon import nn

    class Net(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.conv = nn.Conv2D(4, 3, padding=1)
                self.bn = nn.BatchNorm()
                self.fc = nn.Dense(5)

        def hybrid_forward(self, F, x):
            y = self.bn(self.conv(x)).relu()
            z = self.fc(y)
            return [z, (z.sigmoid(), y.mean(axis=1))]

    mx.random.seed(3)
    net = Net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(0).rand(2, 3, 6, 6).astype(np.float32))
    out = net(x)
    prefix = os.path.join(directory, "graphcnet")
    net.export(prefix)
    flat = [out[0], out[1][0], out[1][1]]
    np.savez(prefix + "-io.npz", input0=x.asnumpy(), **{f"output{i}": o.asnumpy() for i, o in enumerate(flat)})
    return prefix


class Seeds:
    """The seed files, their bytes, and what each model must compute."""

    def __init__(self, workdir):
        self.models = {}
        for name in MODELS:
            self.models[name] = os.path.join(FIXTURES, name)
        self.models["graphcnet"] = graphc_written_models(workdir)
        self.params, self.symbols, self.io = {}, {}, {}
        for name, prefix in self.models.items():
            with open(prefix + "-0000.params", "rb") as f:
                self.params[name] = f.read()
            with open(prefix + "-symbol.json", "rb") as f:
                self.symbols[name] = f.read()
            with np.load(prefix + "-io.npz") as z:
                self.io[name] = {k: z[k] for k in z.files}
        from graphc.formats.mxnet_params import load_params
        self.arrays = {name: load_params(prefix + "-0000.params") for name, prefix in self.models.items()}
        self.data_regions = {name: _data_regions(raw) for name, raw in self.params.items()}


def _data_regions(raw: bytes) -> list:
    """(start, end, array index) of each array's data bytes in a V2/V3 .params file."""
    pos, regions = 24, []
    (count,) = struct.unpack_from("<Q", raw, 16)
    sizes = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1, 12: 2}
    for i in range(count):
        _magic, _stype, ndim = struct.unpack_from("<Iii", raw, pos)
        pos += 12
        shape = struct.unpack_from(f"<{ndim}q", raw, pos)
        pos += 8 * ndim + 8
        (flag,) = struct.unpack_from("<i", raw, pos)
        pos += 4
        n = int(np.prod(shape)) * sizes[flag]
        regions.append((pos, pos + n, i))
        pos += n
    return regions


# -- hypothesis strategies --------------------------------------------------------------------------
def strategies(seeds):
    from hypothesis import strategies as st
    from graphc.ops.registry import all_ops

    names = sorted(seeds.models)
    op_names = sorted(all_ops())
    edge_u64 = [0, 1, 2, 3, 7, 8, 31, 32, 33, 0x112, 0xF993FAC9, 0xF993FACA, 0xF993FAC8, 2**31 - 1, 2**31,
                2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
    attr_values = ["0", "1", "-1", "2", "-2147483649", "99999999999999999999", "1e30", "nan", "inf", "-inf",
                   "()", "(0,)", "(1, 1)", "(2, 3)", "(-1,)", "[1, 2, 3]", "(1, 2, 3, 4, 5, 6, 7)", "True",
                   "False", "None", "", "abc", "relu", "tanh", "float16", "int8", "bool", "NCHW", "'x'",
                   "{}", "(((1,),),)", "1.5", "0x10", "--1", "(1,)*3", "__import__('os')"]

    @st.composite
    def params_case(draw):
        name = draw(st.sampled_from(names))
        raw = bytearray(seeds.params[name])
        kind = draw(st.sampled_from(["flip", "truncate", "append", "splice", "field", "data", "stack"]))
        expect = None
        if kind == "flip":
            for _ in range(draw(st.integers(1, 8))):
                raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            raw = raw[:draw(st.integers(0, len(raw) - 1))]
        elif kind == "append":
            raw += draw(st.binary(min_size=1, max_size=64))
        elif kind == "splice":
            other = seeds.params[draw(st.sampled_from(names))]
            a = draw(st.integers(0, len(raw)))
            b = draw(st.integers(0, len(other)))
            raw = raw[:a] + other[b:b + draw(st.integers(0, 256))] + raw[a + draw(st.integers(0, 256)):]
        elif kind == "field":   # a header word set to an edge value
            regions = seeds.data_regions[name]
            headers = [(0, 24)] + [(regions[i - 1][1] if i else 24, regions[i][0]) for i in range(len(regions))] \
                + [(regions[-1][1], len(raw))]
            lo, hi = draw(st.sampled_from([h for h in headers if h[1] > h[0]]))
            at = draw(st.integers(lo, hi - 1))
            width = draw(st.sampled_from([4, 8]))
            value = draw(st.sampled_from(edge_u64)) % (1 << (8 * width))
            raw[at:at + width] = value.to_bytes(width, "little")[:max(0, min(width, len(raw) - at))]
        elif kind == "data":    # flips inside one array's data: must load, with exactly those flips
            regions = [r for r in seeds.data_regions[name] if r[1] > r[0]]
            start, end, index = draw(st.sampled_from(regions))
            flips = draw(st.lists(st.tuples(st.integers(start, end - 1), st.integers(1, 255)), min_size=1, max_size=4))
            for at, x in flips:
                raw[at] ^= x
            key = list(seeds.arrays[name])[index]
            want = seeds.arrays[name][key].copy()
            view = want.reshape(-1).view(np.uint8)
            for at, x in flips:
                view[at - start] ^= x
            expect = (key, want)
        else:                   # several of the above, stacked
            for _ in range(draw(st.integers(2, 4))):
                at = draw(st.integers(0, max(0, len(raw) - 1)))
                op = draw(st.sampled_from(["flip", "cut", "dup"]))
                if op == "flip" and raw:
                    raw[at] ^= draw(st.integers(1, 255))
                elif op == "cut":
                    del raw[at:at + draw(st.integers(1, 32))]
                else:
                    raw[at:at] = raw[at:at + draw(st.integers(1, 32))]
        return {"target": "params", "model": name, "kind": kind, "bytes": bytes(raw), "expect": expect}

    @st.composite
    def json_case(draw):
        name = draw(st.sampled_from(names))
        text = seeds.symbols[name]
        kind = draw(st.sampled_from(["text", "structure", "structure", "structure", "neutral"]))
        if kind == "text":
            raw = bytearray(text)
            for _ in range(draw(st.integers(1, 6))):
                op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
                at = draw(st.integers(0, max(0, len(raw) - 1)))
                if op == "flip" and raw:
                    raw[at] ^= draw(st.integers(1, 255))
                elif op == "truncate":
                    raw = raw[:at]
                elif op == "insert":
                    raw[at:at] = draw(st.sampled_from([b"[", b"]", b"{", b"}", b",", b'"', b"0", b"-1", b"null",
                                                       b"1e999", b"\\u0000", b"\xff", b"\xc3"]))
                else:
                    del raw[at:at + draw(st.integers(1, 16))]
            return {"target": "json", "model": name, "kind": kind, "bytes": bytes(raw)}
        doc = json.loads(text)
        nodes = doc["nodes"]
        if kind == "neutral":
            edits = draw(st.lists(st.sampled_from(["reorder", "indent", "row_ptr", "graph_attr", "drop_row_ptr",
                                                   "drop_arg_nodes", "version"]), min_size=1, max_size=4))
            if "row_ptr" in edits:
                doc["node_row_ptr"] = [draw(st.integers(0, 50)) for _ in nodes]
            if "drop_row_ptr" in edits:
                doc.pop("node_row_ptr", None)
            if "drop_arg_nodes" in edits:
                doc.pop("arg_nodes", None)
            if "graph_attr" in edits:
                doc.setdefault("attrs", {})[draw(st.text(min_size=1, max_size=8))] = ["str", draw(st.text(max_size=8))]
            if "version" in edits:
                doc.setdefault("attrs", {})["mxnet_version"] = ["int", draw(st.sampled_from([901, 10300, 10600, 10901, 20000]))]
            if "reorder" in edits:
                rng = random.Random(draw(st.integers(0, 2**32)))
                doc = {k: doc[k] for k in rng.sample(list(doc), len(doc))}
                for n in doc["nodes"]:
                    keys = list(n)
                    rng.shuffle(keys)
                    n2 = {k: n[k] for k in keys}
                    n.clear()
                    n.update(n2)
            indent = draw(st.sampled_from([None, 0, 1, 4])) if "indent" in edits else 2
            return {"target": "json", "model": name, "kind": kind, "bytes": json.dumps(doc, indent=indent).encode()}
        for _ in range(draw(st.integers(1, 3))):
            try:
                structural_edit(draw, doc)
            except (TypeError, AttributeError, KeyError, IndexError, ValueError):
                pass            # an earlier edit changed a type this one relies on
        return {"target": "json", "model": name, "kind": kind, "bytes": json.dumps(doc).encode()}

    def structural_edit(draw, doc):
        """One edit of the document's structure (it may find a type an earlier edit broke)."""
        nodes = doc["nodes"]
        edit = draw(st.sampled_from(["op", "attr_value", "attr_drop", "attr_add", "input_index", "input_drop",
                                     "input_add", "head", "node_drop", "node_dup", "shape_hint", "dtype_hint",
                                     "arg_nodes", "type_swap", "output_tree", "name"]))
        i = draw(st.integers(0, len(nodes) - 1)) if nodes else 0
        node = nodes[i] if nodes else {}
        attrs = node.setdefault("attrs", {}) if isinstance(node, dict) else {}
        if edit == "op" and nodes:
            node["op"] = draw(st.sampled_from(op_names + ["null", "NoSuchOp", ""]))
        elif edit == "attr_value" and attrs:
            attrs[draw(st.sampled_from(sorted(attrs)))] = draw(st.sampled_from(attr_values))
        elif edit == "attr_drop" and attrs:
            attrs.pop(draw(st.sampled_from(sorted(attrs))))
        elif edit == "attr_add" and nodes:
            key = draw(st.sampled_from(["num_hidden", "kernel", "stride", "pad", "axis", "shape", "num_args",
                                        "act_type", "no_bias", "flatten", "num_group", "layout", "dtype",
                                        "state_size", "num_layers", "mode", "__foo__", "bogus"]))
            attrs[key] = draw(st.sampled_from(attr_values))
        elif edit == "input_index" and nodes and node.get("inputs"):
            k = draw(st.integers(0, len(node["inputs"]) - 1))
            entry = list(node["inputs"][k])
            entry[draw(st.integers(0, len(entry) - 1))] = draw(st.sampled_from([0, 1, 2, i - 1, i, i + 1, -1,
                                                                                 len(nodes), 2**31, 2**64]))
            node["inputs"][k] = entry
        elif edit == "input_drop" and nodes and node.get("inputs"):
            node["inputs"].pop(draw(st.integers(0, len(node["inputs"]) - 1)))
        elif edit == "input_add" and nodes:
            node.setdefault("inputs", []).append([draw(st.integers(0, max(0, i))), 0, 0])
        elif edit == "head":
            doc["heads"] = draw(st.sampled_from([[], [[len(nodes) - 1, 1, 0]], [[len(nodes), 0, 0]], [[0, 0, 0]],
                                                 [[len(nodes) - 1, 0]], [[len(nodes) - 1, 0, 0]] * 2, "x", None]))
        elif edit == "node_drop" and nodes:
            nodes.pop(i)
        elif edit == "node_dup" and nodes:
            nodes.insert(i, json.loads(json.dumps(nodes[i])))
        elif edit == "shape_hint" and nodes:
            attrs["__shape__"] = draw(st.sampled_from(attr_values))
        elif edit == "dtype_hint" and nodes:
            attrs["__dtype__"] = draw(st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "7", "8", "12", "99", "-1", "x"]))
        elif edit == "arg_nodes":
            doc["arg_nodes"] = draw(st.sampled_from([[], [0], [len(nodes)], [-1], "x", [1.5]]))
        elif edit == "type_swap":
            target = draw(st.sampled_from(["nodes", "heads", "attrs", "node", "inputs", "op", "name", "attr"]))
            value = draw(st.sampled_from([None, 0, 1.5, "s", [], {}, [[]], True]))
            if target in ("nodes", "heads", "attrs"):
                doc[target] = value
            elif target == "node" and nodes:
                nodes[i] = value
            elif target in ("inputs", "op", "name") and nodes:
                node[target] = value
            elif target == "attr" and attrs:
                attrs[draw(st.sampled_from(sorted(attrs)))] = value
        elif edit == "output_tree":
            doc.setdefault("attrs", {})["graphc_output_tree"] = draw(st.sampled_from([
                ["str", "0"], ["str", "1"], ["str", '["list", [0, 0]]'], ["str", '["tuple", [0]]'],
                ["str", '["dict", [0]]'], ["str", "[]"], ["str", "-1"], ["str", "{"], "x", ["str"],
                ["str", '["list", [' * 50 + "0" + "]]" * 50], ["str", '["list", [0, ["tuple", [1, 2]]]]']]))
        elif edit == "name" and nodes:
            node["name"] = draw(st.sampled_from(["", "data", nodes[0].get("name", "x") if isinstance(nodes[0], dict) else "x",
                                                 "a" * 300, "é", "with space"]))

    return st.one_of(params_case(), json_case())


# -- running a case ---------------------------------------------------------------------------------
class Wrong(Exception):
    """The loader accepted the file and returned something it should not have."""


def run_case(case, seeds, workdir):
    import graphc as mx
    from graphc.formats.mxnet_params import load_params, save_params
    from graphc.formats.mxnet_json import load_symbol_json, dump_symbol_json, read_symbol_file

    name = case["model"]
    if case["target"] == "params":
        path = os.path.join(workdir, "case-0000.params")
        with open(path, "wb") as f:
            f.write(case["bytes"])
        try:
            arrays = load_params(path)
        except mx.GraphcError:
            arrays = None
        if case["kind"] == "truncate" and arrays is not None:
            raise Wrong(f"a truncated file ({len(case['bytes'])} of {len(seeds.params[name])} bytes) was accepted")
        if case["kind"] == "append" and arrays is not None:
            raise Wrong("a file with bytes appended after its end was accepted")
        if case["expect"] is not None:
            if arrays is None:
                raise Wrong("flips confined to array data made the file unreadable")
            key, want = case["expect"]
            got = arrays.get(key)
            if got is None or got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
                raise Wrong(f"array {key!r}: the data read is not the data in the file")
        if arrays is not None:
            again = os.path.join(workdir, "again.params")
            save_params(again, arrays)
            back = load_params(again)
            if list(back) != list(arrays) or any(
                    back[k].dtype != arrays[k].dtype or back[k].shape != arrays[k].shape
                    or back[k].tobytes() != arrays[k].tobytes() for k in arrays):
                raise Wrong("accepted arrays do not survive save_params -> load_params")
            try:
                mx.nd.load(path)
            except mx.GraphcError:
                pass
        return
    # symbol JSON (with the model's real parameters)
    path = os.path.join(workdir, "case-symbol.json")
    with open(path, "wb") as f:
        f.write(case["bytes"])
    params = seeds.models[name] + "-0000.params"
    try:
        graph = load_symbol_json(read_symbol_file(path), path, data_names=["data"])
    except mx.GraphcError:
        graph = None
    if graph is not None:
        try:
            text = dump_symbol_json(graph)
        except mx.GraphcError:
            text = None
        if text is not None:
            load_symbol_json(text, "<dumped>", data_names=["data"])
    try:
        mx.sym.load(path)
    except mx.GraphcError:
        pass
    try:
        block = mx.gluon.SymbolBlock.imports(path, ["data"], params)
    except mx.GraphcError:
        block = None
    if case["kind"] == "neutral" and block is None:
        raise Wrong("an edit that does not change the model made SymbolBlock.imports refuse it")
    if block is None:
        return
    io = seeds.io[name]
    try:
        out = block(mx.nd.array(io["input0"]))
    except mx.GraphcError:
        if case["kind"] == "neutral":
            raise
        return
    if case["kind"] == "neutral":
        flat = [out]
        while any(isinstance(o, (list, tuple)) for o in flat):
            flat = [x for o in flat for x in (o if isinstance(o, (list, tuple)) else [o])]
        for k, o in enumerate(flat):
            if not np.allclose(o.asnumpy(), io[f"output{k}"], rtol=1e-4, atol=1e-5):
                raise Wrong(f"output {k} differs from the recorded output after an edit that changes nothing")


def signature(exc) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frame = tb[-1] if tb else None
    where = f"{os.path.relpath(frame.filename)}:{frame.lineno}" if frame else "?"
    if isinstance(exc, Wrong):
        return f"wrong result: {exc}"
    return f"{type(exc).__name__} at {where}"


# -- the worker: runs cases until its time is up ----------------------------------------------------
def worker(args):
    from hypothesis import given, settings, HealthCheck, Phase
    import graphc as mx  # noqa: F401  (import once, before timing cases)

    os.environ.setdefault("GRAPHC_CACHE_DIR", os.path.join(args.out, "cache"))
    workdir = tempfile.mkdtemp(prefix="fuzz-", dir=args.out)
    seeds = Seeds(workdir)
    deadline = time.monotonic() + args.seconds
    current = os.path.join(args.out, "current.case")
    report = open(os.path.join(args.out, f"worker-{os.getpid()}.jsonl"), "a")

    def on_alarm(signum, frame):
        raise Hang()
    signal.signal(signal.SIGALRM, on_alarm)

    @settings(max_examples=args.batch, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategies(seeds))
    def one(case):
        if time.monotonic() > deadline:
            return
        with open(current, "wb") as f:          # survives a crash: the driver reports it
            f.write(json.dumps({k: v for k, v in case.items() if k not in ("bytes", "expect")}).encode()
                    + b"\n" + case["bytes"])
        outcome = {"ok": True}
        signal.alarm(args.case_timeout)
        try:
            run_case(case, seeds, workdir)
        except Hang:
            outcome = {"ok": False, "signature": f"hang (> {args.case_timeout} s)"}
        except BaseException as exc:  # noqa: BLE001  (the fuzzer's whole point)
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome = {"ok": False, "signature": signature(exc),
                       "message": f"{type(exc).__name__}: {str(exc)[:300]}",
                       "traceback": "".join(traceback.format_exception(exc))[-3000:]}
        finally:
            signal.alarm(0)
        outcome.update(model=case["model"], target=case["target"], kind=case["kind"])
        if not outcome["ok"]:
            blob = os.path.join(args.out, f"failure-{abs(hash(outcome['signature'])) % 10**8:08d}.case")
            if not os.path.exists(blob):
                os.replace(current, blob)
            outcome["case"] = blob
        report.write(json.dumps(outcome) + "\n")
        report.flush()

    while time.monotonic() < deadline:
        one()
    return 0


# -- the driver ------------------------------------------------------------------------------------
def drive(args) -> int:
    out = args.out or tempfile.mkdtemp(prefix="graphc-fuzz-")
    os.makedirs(out, exist_ok=True)
    start = time.monotonic()
    crashes = []
    while True:
        left = args.seconds - (time.monotonic() - start)
        if left < 1:
            break
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seconds", str(left), "--out", out,
               "--batch", str(args.batch), "--case-timeout", str(args.case_timeout)]
        try:
            p = subprocess.run(cmd, timeout=left + args.case_timeout + 120)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        if rc == 0:
            break
        current = os.path.join(out, "current.case")
        blob = os.path.join(out, f"crash-{len(crashes)}.case")
        if os.path.exists(current):
            os.replace(current, blob)
        crashes.append({"ok": False, "signature": f"worker died (exit {rc})", "case": blob})
    results = []
    for fname in sorted(os.listdir(out)):
        if fname.startswith("worker-") and fname.endswith(".jsonl"):
            with open(os.path.join(out, fname)) as f:
                results.extend(json.loads(line) for line in f if line.strip())
    results.extend(crashes)
    failures = [r for r in results if not r["ok"]]
    by_sig = {}
    for r in failures:
        by_sig.setdefault(r["signature"], []).append(r)
    kinds = {}
    for r in results:
        if "target" in r:
            kinds[f"{r['target']}/{r['kind']}"] = kinds.get(f"{r['target']}/{r['kind']}", 0) + 1
    print(f"fuzz_loaders: {len(results)} cases in {time.monotonic() - start:.0f} s, {len(failures)} failing, "
          f"{len(by_sig)} distinct failure(s); cases kept in {out}")
    print("  cases by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for sig, rs in sorted(by_sig.items()):
        first = rs[0]
        print(f"FAIL x{len(rs)}: {sig} [{first.get('target')}/{first.get('kind')} {first.get('model')}]")
        if first.get("message"):
            print(f"    {first['message']}")
        print(f"    reproduce: {first.get('case')}")
        if args.verbose and first.get("traceback"):
            print("    " + first["traceback"].replace("\n", "\n    "))
    return 1 if failures else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 60)))
    ap.add_argument("--out", default=None, help="folder for reports and failing cases (default: a new temp folder)")
    ap.add_argument("--batch", type=int, default=100, help="hypothesis examples per round")
    ap.add_argument("--case-timeout", type=int, default=30, help="seconds before a case counts as a hang")
    ap.add_argument("--verbose", action="store_true", help="print each failure's traceback")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
