"""Write docs/compatibility.md: which of MXNet 1.9.1's public names graphc has, lacks, or has with
fewer parameters, per namespace, followed by the hand-written docs/compatibility_differences.md.

    .venv/bin/python tools/compat_table.py            # rewrite docs/compatibility.md
    .venv/bin/python tools/compat_table.py --check    # exit 1 when the file is out of date

MXNet's side comes from tests/compat/mxnet_api_surface.json (tools/mxnet_api_names.py), so this
runs without MXNet. The output depends only on that JSON, graphc's code and the differences file:
sorted, no dates, paths or addresses, so tests/compat/test_compat_doc.py can demand it be current.
It reads graphc's API and never changes it.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import re
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_surface import parameters, resolve  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SURFACE = os.path.join(REPO, "tests", "compat", "mxnet_api_surface.json")
DIFFERENCES = os.path.join(REPO, "docs", "compatibility_differences.md")
OUTPUT = os.path.join(REPO, "docs", "compatibility.md")
COMMAND = ".venv/bin/python tools/compat_table.py"

# accepted by every operator function whatever the operator: graphc's OpNamespace takes name= and
# out= itself, and graphc.sym's invoke takes MXNet's attr={...}
OPERATOR_CALL_KEYWORDS = ("name", "out", "attr")


def operator_parameters(fn):
    """Parameters of a function graphc builds per registered operator (`nd.Convolution`): its
    signature is (*args, **kwargs), but the operator's declaration lists the inputs and
    attributes it accepts. None when `fn` is not such a function or its inputs cannot be
    found; open (second item True) when the operator keeps any attribute (no schema)."""
    if not getattr(fn, "__qualname__", "").startswith("OpNamespace."):
        return None
    from graphc.ops.registry import get_op, has_op
    if not has_op(getattr(fn, "__name__", "")):
        return None
    op = get_op(fn.__name__)
    inputs = list(op.inputs) if not callable(op.inputs) else _probe_inputs(op)
    if inputs is None:
        return None
    return inputs + list(op.attrs) + list(OPERATOR_CALL_KEYWORDS), not op.attrs


_PLACEHOLDERS = {"int": 1, "float": 1.0, "shape": (1,), "axis": 0, "dtype": "float32", "str": "x", "bool": False}


def _probe_inputs(op):
    """Input names of an operator whose inputs depend on its attributes (SequenceLast's
    sequence_length with use_sequence_length=True, LeakyReLU's gamma with act_type='prelu'):
    the union over its defaults, each boolean attribute either way and each choice of a
    choice attribute. None when no setting parses."""
    from graphc.ops.attrs import REQUIRED
    base = {k: (a.choices[0] if a.choices else _PLACEHOLDERS.get(a.kind))
            for k, a in op.attrs.items() if a.default is REQUIRED}
    settings = [base] + [dict(base, **{k: v}) for k, a in op.attrs.items() if a.kind == "bool" for v in (True, False)]
    settings += [dict(base, **{k: c}) for k, a in op.attrs.items() for c in a.choices or ()]
    names, parsed_any = [], False
    for attrs in settings:
        try:
            found = op.input_names(op.parse(attrs))
        except Exception:  # noqa: BLE001  (a setting this probe got wrong; others may parse)
            continue
        parsed_any = True
        names += [n for n in found if n not in names]
    return names if parsed_any else None


def graphc_parameters(obj):
    return operator_parameters(obj) or parameters(obj)


def _lookup(owner, name):
    """(present, value). A name whose lookup raises NotImplementedError is graphc saying 'not
    supported'; any other error from a property still means the name exists."""
    try:
        return True, getattr(owner, name)
    except (AttributeError, NotImplementedError):
        return False, None
    except Exception:  # noqa: BLE001
        return True, None


def _quiet(message: str) -> str:
    """An error message with addresses and this machine's paths taken out (the doc must not
    depend on where it was generated)."""
    message = re.sub(r"0x[0-9a-fA-F]+", "0x...", message.splitlines()[0] if message else "")
    return message.replace(REPO + os.sep, "")[:160]


def graphc_namespace(mx, ns):
    """(object to look names up on, None) or (None, why graphc has no such namespace)."""
    if "factory" in ns:
        try:
            return eval(ns["factory"], {"mx": mx}), None  # noqa: S307  (the repository's own constants)
        except Exception as exc:  # noqa: BLE001
            return None, f"`{ns['factory']}` fails in graphc: {type(exc).__name__}: {_quiet(str(exc))}"
    try:
        return resolve(mx, ns["path"]), None
    except AttributeError:
        pass
    module = "graphc" + ns["module"][len("mxnet"):]
    try:
        return importlib.import_module(module), None
    except ImportError:
        return None, f"graphc has no `mx.{ns['path']}` (nor a module `{module}`)"


def compare_namespace(mx, ns) -> dict:
    target, why_absent = graphc_namespace(mx, ns)
    result = {"path": ns["path"], "label": label(ns), "total": len(ns["names"]), "absent": why_absent,
              "missing": [], "gaps": {}, "unchecked": 0}
    for name, entry in sorted(ns["names"].items()):
        present, value = _lookup(target, name) if target is not None else (False, None)
        if not present:
            result["missing"].append(name)
            continue
        wanted = [p for p in entry.get("params") or () if p != "self"]
        if not wanted or value is None:
            continue
        have = graphc_parameters(value)
        if have is None or have[1]:
            result["unchecked"] += 1
            continue
        lacking = [p for p in wanted if p not in have[0]]
        if lacking:
            result["gaps"][name] = lacking
    return result


def label(ns) -> str:
    path = ns["path"]
    if "factory" in ns:
        return f"`mx.{path}` (methods and attributes)"
    return f"`mx.{path}`" if path else "`mx`"


def anchor(text: str) -> str:
    """GitHub's heading anchor for a label."""
    return re.sub(r"[^a-z0-9 _-]", "", text.lower()).replace(" ", "-")


def render(surface: dict, results: list, differences: str) -> str:
    total = sum(r["total"] for r in results)
    present = sum(r["total"] - len(r["missing"]) for r in results)
    out = [
        "# MXNet compatibility",
        "",
        f"<!-- Generated by `{COMMAND}`; do not edit by hand. Edit docs/compatibility_differences.md",
        "     (the last two sections) and regenerate. tests/compat/test_compat_doc.py fails when this",
        "     file is out of date. -->",
        "",
        f"Which of MXNet {surface['mxnet_version']}'s public Python names `import graphc as mx` provides: "
        f"{present} of {total} ({_pct(present, total)}).",
        f"Regenerate with `{COMMAND}` after adding API; MXNet's side is recorded in",
        "`tests/compat/mxnet_api_surface.json` by `bench/.venvs/mxnet/bin/python tools/mxnet_api_names.py`.",
        "",
        "How to read it:",
        "- A name is *present* when graphc has it at the same place (`mx.nd.Convolution`, "
        "`mx.gluon.nn.Dense`, `NDArray.asnumpy`); present does not by itself promise identical "
        "behaviour: see [Deliberate differences](#deliberate-differences).",
        "- *Parameter gaps*: parameters MXNet's function or class accepts that graphc's does not. "
        "Checked where graphc's parameters can be read: its signature, or for an operator function its "
        "declaration's inputs and attributes. A constructor's `**kwargs` count as handed to its base "
        "class, on both sides (Gluon's `prefix=`/`params=` reach `Block` that way), except those the "
        "constructor passes itself (`nn.BatchNorm` fixes its base's `fuse_relu`). *Not checkable* "
        "counts present names whose graphc side takes any keyword (`**kwargs`, or an operator "
        "declared without attributes, which keeps whatever it is given) or has no readable signature.",
        "- Namespaces follow MXNet's: public names only, without what a module re-imports from numpy, "
        "ctypes or MXNet's own plumbing. MXNet's numpy interface (`mx.np`, `mx.npx`) is out of scope "
        "(see [Not supported](#not-supported)).",
        "",
        "## Summary",
        "",
        "| namespace | MXNet names | in graphc | missing | parameter gaps | not checkable | coverage |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        have = r["total"] - len(r["missing"])
        out.append(f"| [{r['label']}](#{anchor(r['label'])}) | {r['total']} | {have} | {len(r['missing'])} "
                   f"| {len(r['gaps'])} | {r['unchecked']} | {_pct(have, r['total'])} |")
    out.append(f"| **all** | {total} | {present} | {total - present} | {sum(len(r['gaps']) for r in results)} "
               f"| {sum(r['unchecked'] for r in results)} | {_pct(present, total)} |")
    out += ["", "## Per namespace", ""]
    for r in results:
        out += [f"### {r['label']}", ""]
        if r["absent"]:
            out += [r["absent"] + ".", ""]
        if not r["missing"] and not r["gaps"]:
            out += [f"All {r['total']} names present, no parameter gaps found.", ""]
            continue
        if r["missing"]:
            out += [f"Missing ({len(r['missing'])}): " + ", ".join(f"`{n}`" for n in r["missing"]), ""]
        if r["gaps"]:
            out += ["| name | MXNet parameters graphc lacks |", "|---|---|"]
            out += [f"| `{n}` | {', '.join(f'`{p}`' for p in ps)} |" for n, ps in sorted(r["gaps"].items())]
            out.append("")
    out.append(differences.strip())
    return "\n".join(out) + "\n"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole else "-"


def generate(surface_path=SURFACE, differences_path=DIFFERENCES) -> str:
    with open(surface_path) as f:
        surface = json.load(f)
    with open(differences_path) as f:
        differences = f.read()
    warnings.simplefilter("ignore")
    mx = importlib.import_module("graphc")
    results = [compare_namespace(mx, ns) for ns in surface["namespaces"]]
    return render(surface, results, differences)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = open(args.output).read() if os.path.exists(args.output) else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), args.output, "generated", lineterm="")
        print("\n".join(list(diff)[:60]))
        print(f"{args.output} is out of date: run `{COMMAND}`")
        return 1
    with open(args.output, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
