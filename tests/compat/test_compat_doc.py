"""docs/compatibility.md is what tools/compat_table.py writes today: a name added to (or removed
from) graphc without regenerating the document fails here. The comparison itself is checked to
see what it should (missing names, parameter gaps, operator declarations), and to give the same
text whatever the hash seed or working directory."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

import graphc as mx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
SURFACE = os.path.join(ROOT, "tests", "compat", "mxnet_api_surface.json")
DOC = os.path.join(ROOT, "docs", "compatibility.md")
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
REGENERATE = ".venv/bin/python tools/compat_table.py"
needs_surface = pytest.mark.skipif(
    not os.path.exists(SURFACE), reason="tests/compat/mxnet_api_surface.json is absent: record it with "
                                        "bench/.venvs/mxnet/bin/python tools/mxnet_api_names.py")


def _load_tool(name):
    sys.path.insert(0, TOOLS)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(TOOLS)


compat_table = _load_tool("compat_table")


def _generate(tmp_path, seed="0", cwd=ROOT):
    out = tmp_path / f"compatibility-{seed}.md"
    env = dict(os.environ, PYTHONHASHSEED=seed)
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, "compat_table.py"), "--output", str(out)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"tools/compat_table.py failed:\n{proc.stdout}\n{proc.stderr}"
    return out.read_text()


@needs_surface
def test_the_compatibility_doc_is_up_to_date(tmp_path):
    generated = _generate(tmp_path)
    current = open(DOC).read() if os.path.exists(DOC) else ""
    if generated != current:
        import difflib
        diff = "\n".join(list(difflib.unified_diff(current.splitlines(), generated.splitlines(),
                                                   "docs/compatibility.md", "generated", lineterm=""))[:40])
        pytest.fail(f"docs/compatibility.md is out of date with graphc's API: run `{REGENERATE}`\n{diff}")


@needs_surface
def test_the_doc_does_not_depend_on_hash_seed_or_working_directory(tmp_path):
    assert _generate(tmp_path, seed="1") == _generate(tmp_path, seed="2", cwd=str(tmp_path))


def _namespace(path, names, **extra):
    return dict({"path": path, "module": "mxnet." + path if path else "mxnet", "names": names}, **extra)


def test_a_name_graphc_lacks_is_missing_and_one_it_has_is_present():
    result = compat_table.compare_namespace(mx, _namespace("nd", {
        "zeros": {"kind": "function"}, "no_such_function_in_graphc": {"kind": "function"}}))
    assert result["missing"] == ["no_such_function_in_graphc"]
    assert result["total"] == 2


def test_a_parameter_graphc_lacks_is_a_gap():
    # gluon.nn.Dense: units..in_units are its own, prefix/params its base Block's (through **kwargs)
    result = compat_table.compare_namespace(mx, _namespace("gluon.nn", {
        "Dense": {"kind": "class", "params": ["units", "activation", "prefix", "params", "not_a_dense_param"]}}))
    assert result["missing"] == [] and result["gaps"] == {"Dense": ["not_a_dense_param"]}


def test_a_base_parameter_the_constructor_sets_itself_is_not_offered():
    class Base:
        def __init__(self, a=1, fuse=False, prefix=None):
            pass

    class Child(Base):
        def __init__(self, b, **kwargs):
            helper = dict(prefix="x")  # a keyword to some other call fixes nothing
            super().__init__(fuse=True, **kwargs)
            del helper

    assert compat_table.parameters(Child) == (["b", "a", "prefix"], False)


def test_operator_functions_are_checked_against_the_operator_declaration():
    # nd.Convolution's signature is (*args, **kwargs); its declaration knows inputs and attributes
    result = compat_table.compare_namespace(mx, _namespace("nd", {
        "Convolution": {"kind": "function", "params": ["data", "weight", "bias", "kernel", "num_filter",
                                                       "no_bias", "layout", "out", "name", "not_an_attribute"]}}))
    assert result["gaps"] == {"Convolution": ["not_an_attribute"]}


def test_inputs_that_only_some_attribute_settings_declare_are_accepted():
    # SequenceLast's sequence_length input exists with use_sequence_length=True only
    params = compat_table.operator_parameters(mx.nd.SequenceLast)
    assert params is not None and "sequence_length" in params[0] and "use_sequence_length" in params[0]


def test_a_graphc_signature_taking_any_keyword_is_not_checkable():
    result = compat_table.compare_namespace(mx, _namespace("nd.random", {
        "uniform": {"kind": "function", "params": ["low", "high", "whatever"]}}))
    assert result["gaps"] == {} and result["unchecked"] == 1


def test_a_namespace_graphc_lacks_says_so_and_lists_every_name(tmp_path):
    ns = _namespace("no_such_namespace", {"a": {"kind": "function"}, "b": {"kind": "value"}})
    result = compat_table.compare_namespace(mx, ns)
    assert result["missing"] == ["a", "b"] and "no_such_namespace" in result["absent"]
    differences = "## Deliberate differences\n\n- one\n\n## Not supported\n\n- two\n"
    text = compat_table.render({"mxnet_version": "1.9.1"}, [result], differences)
    assert "| [`mx.no_such_namespace`](#mxno_such_namespace) | 2 | 0 | 2 | 0 | 0 | 0% |" in text
    assert text.rstrip().endswith(differences.rstrip()) and REGENERATE in text


def test_instance_namespaces_see_methods_supplied_by_getattr():
    # NDArray's fluent operator methods come from __getattr__, so they are looked up on an instance
    ns = _namespace("nd.NDArray", {"exp": {"kind": "function"}, "asnumpy": {"kind": "function"},
                                   "no_such_method": {"kind": "function"}}, factory="mx.nd.zeros((2, 3))")
    assert compat_table.compare_namespace(mx, ns)["missing"] == ["no_such_method"]


@needs_surface
@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1's environment (bench/.venvs/mxnet) is absent")
def test_the_recorded_mxnet_surface_is_what_the_recorder_writes(tmp_path):
    out = tmp_path / "surface.json"
    proc = subprocess.run([MXNET_PYTHON, os.path.join(TOOLS, "mxnet_api_names.py"), "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text()) == json.load(open(SURFACE)), \
        "tests/compat/mxnet_api_surface.json is stale: run bench/.venvs/mxnet/bin/python tools/mxnet_api_names.py"


@needs_surface
def test_the_recorded_surface_covers_the_modules_users_import():
    surface = json.load(open(SURFACE))
    paths = {ns["path"] for ns in surface["namespaces"]}
    assert {"", "nd", "sym", "gluon.nn", "gluon.loss", "optimizer", "metric", "io", "module", "nd.NDArray",
            "gluon.HybridBlock", "gluon.Trainer"} <= paths
    assert surface["mxnet_version"] == "1.9.1"
    assert isinstance(surface["namespaces"][0]["names"], dict)
    assert all(isinstance(ns["names"], dict) and ns["names"] for ns in surface["namespaces"])

