"""Record MXNet 1.9.1's public Python API into tests/compat/mxnet_api_surface.json.

Run under MXNet's environment (graphc's does not have mxnet):

    bench/.venvs/mxnet/bin/python tools/mxnet_api_names.py

The JSON is the fixed half of docs/compatibility.md: tools/compat_table.py reads it under graphc's
environment and checks each name against graphc. It is recorded once per MXNet version, so the
document can be regenerated (and tested) on a machine without MXNet. Never imports graphc.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_surface import CLASS_FACTORIES, MODULE_PATHS, kind_of, parameters, public_names, resolve  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPO, "tests", "compat", "mxnet_api_surface.json")


def describe(owner, name) -> dict:
    try:
        value = getattr(owner, name)
    except Exception:  # noqa: BLE001  (a property that cannot run on a bare instance)
        return {"kind": "property"}
    entry = {"kind": kind_of(owner, name, value)}
    if entry["kind"] in ("class", "function"):
        sig = parameters(value)
        if sig is not None:
            entry["params"] = sig[0]
    return entry


def record_module(mx, path: str) -> dict:
    module = resolve(mx, path) if path else mx
    return {"path": path, "module": module.__name__,
            "names": {name: describe(module, name) for name in public_names(module, "mxnet")
                      if not (path == "" and name in ("np", "npx"))}}


def record_instance(mx, path: str, factory: str) -> dict:
    instance = eval(factory, {"mx": mx})  # noqa: S307  (factories are this repository's constants)
    return {"path": path, "factory": factory,
            "names": {name: describe(instance, name) for name in public_names(instance, "mxnet")}}


def to_json(surface: dict) -> str:
    """Sorted JSON with one line per recorded name, so a re-recording diffs name by name."""
    head = {k: v for k, v in surface.items() if k != "namespaces"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(head.items())]
    lines.append(' "namespaces": [')
    for i, ns in enumerate(surface["namespaces"]):
        fields = {k: v for k, v in ns.items() if k != "names"}
        lines.append("  {" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(fields.items()))
                     + ', "names": {')
        entries = sorted(ns["names"].items())
        lines += [f"   {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" + ("," if j < len(entries) - 1 else "")
                  for j, (k, v) in enumerate(entries)]
        lines.append("  }}" + ("," if i < len(surface["namespaces"]) - 1 else ""))
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    mx = importlib.import_module("mxnet")
    for path in MODULE_PATHS:  # submodules reached only by import (gluon.contrib.estimator)
        try:
            resolve(mx, path)
        except AttributeError:
            importlib.import_module("mxnet." + path)
    surface = {
        "about": "MXNet's public Python API as recorded by tools/mxnet_api_names.py; "
                 "read by tools/compat_table.py to write docs/compatibility.md",
        "mxnet_version": mx.__version__,
        "namespaces": [record_module(mx, p) for p in MODULE_PATHS]
                      + [record_instance(mx, p, f) for p, f in CLASS_FACTORIES],
    }
    with open(args.output, "w") as f:
        f.write(to_json(surface))
    total = sum(len(ns["names"]) for ns in surface["namespaces"])
    print(f"wrote {args.output}: {len(surface['namespaces'])} namespaces, {total} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
