"""MXNet symbol JSON: the fixtures written by MXNet 1.9.1 load into graphc's IR with their
structure intact, write back to an equivalent file, and (where their operators are declared)
compute what MXNet computed. Malformed files are refused with the file named."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from graphc.ops import has_op
from graphc.ops import registry
from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import FormatError, GraphcError, ShapeError
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.registry import OpDef
from graphc.ops.types import TensorType
from graphc.formats.mxnet_json import (bind_types, constants_of, dump_symbol_json, load_symbol_json,
                                  read_symbol_json)
from graphc.formats.mxnet_params import load_params, split_arg_aux

FIXTURES = Path("/work/shared/fixtures/mxnet")
NAMES = ["mlp", "cnn", "lstm"]


def fixture_text(name: str) -> tuple:
    path = FIXTURES / f"{name}-symbol.json"
    if not path.exists():
        pytest.skip(f"fixture {path} is missing")
    return path.read_text(), str(path)


def missing_ops(doc: dict) -> list:
    return sorted({n["op"] for n in doc["nodes"] if n["op"] != "null" and not has_op(n["op"])})


def load_fixture(name: str):
    """The untyped graph, or a skip naming the operators graphc does not declare yet (after
    checking that the loader refuses the file with that operator, the node and the file named)."""
    text, source = fixture_text(name)
    missing = missing_ops(json.loads(text))
    if missing:
        with pytest.raises(FormatError) as info:
            load_symbol_json(text, source)
        msg = str(info.value)
        assert source in msg and "unknown operator" in msg
        assert any(repr(op) in msg for op in missing), msg
        pytest.skip(f"{name}: operators not declared yet: {', '.join(missing)}")
    return load_symbol_json(text, source, data_names=("data",)), json.loads(text)


def structure(graph) -> list:
    """(op, name, attrs, hints, [(input node name, output index)]) per node, and the outputs."""
    nodes = [(n.op, n.name, dict(n.attrs), dict(n.hints), [(v.node.name, v.index) for v in n.inputs],
              len(n.types)) for n in graph.nodes]
    return nodes, [(v.node.name, v.index) for v in graph.outputs], [n.name for n in graph.inputs]


# -- structure, without operator knowledge ------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_read_keeps_every_node_input_and_head_as_written(name):
    text, source = fixture_text(name)
    doc = json.loads(text)
    sf = read_symbol_json(text, source)
    assert [(n.op, n.name) for n in sf.nodes] == [(n["op"], n["name"]) for n in doc["nodes"]]
    assert [[list(e) for e in n.inputs] for n in sf.nodes] == [n["inputs"] for n in doc["nodes"]]
    assert [n.attrs for n in sf.nodes] == [n.get("attrs", {}) for n in doc["nodes"]]
    assert [list(h) for h in sf.heads] == doc["heads"]


# -- the MLP fixture, end to end ----------------------------------------------------------------
def test_mlp_loads_as_untyped_graph_with_variables_in_file_order():
    g, doc = load_fixture("mlp")
    assert [n.op for n in g.nodes] == ["var", "var", "var", "FullyConnected", "Activation", "var", "var",
                                       "FullyConnected", "Activation", "var", "var", "FullyConnected"]
    assert [n.name for n in g.nodes] == [n["name"] for n in doc["nodes"]]
    assert [n.name for n in g.inputs] == ["data", "mlp_dense0_weight", "mlp_dense0_bias", "mlp_dense1_weight",
                                          "mlp_dense1_bias", "mlp_dense2_weight", "mlp_dense2_bias"]
    assert all(t is None for n in g.nodes for t in n.types)
    fc = g.nodes[3]
    assert [v.node.name for v in fc.inputs] == ["data", "mlp_dense0_weight", "mlp_dense0_bias"]
    assert fc.attrs["num_hidden"] == 32 and fc.attrs["flatten"] is True
    assert g.nodes[8].attrs["act_type"] == "tanh"
    assert [(v.node.name, v.index) for v in g.outputs] == [("mlp_dense2_fwd", 0)]
    w = g.input_by_name("mlp_dense0_weight")
    assert w.hints == {"__dtype__": "0", "__lr_mult__": "1.0", "__shape__": "(32, 0)",
                       "__storage_type__": "0", "__wd_mult__": "1.0", "kind": "param"}
    assert g.input_by_name("data").hints == {"kind": "input"}
    assert g.name == "mlp"


def fixture_types(name: str, graph):
    """Variable types from the .params file and the data shape from the -io.npz input."""
    args, auxs = split_arg_aux(load_params(FIXTURES / f"{name}-0000.params"))
    io = np.load(FIXTURES / f"{name}-io.npz")
    values = {**args, **auxs, "data": io["input0"]}
    types = {k: TensorType(v.shape, v.dtype) for k, v in values.items()}
    return types, values, io


@pytest.mark.parametrize("name", NAMES)
def test_fixture_computes_what_mxnet_computed(name):
    g, _ = load_fixture(name)
    types, values, io = fixture_types(name, g)
    typed = verify(bind_types(g, types))
    assert [n.name for n in typed.inputs] == [n.name for n in g.inputs]
    outputs = interpret(typed, values)
    expected = [io[k] for k in sorted(io.files) if k.startswith("output")]
    assert len(outputs) >= len(expected)
    for got, want in zip(outputs, expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_typed_mlp_written_back_carries_complete_parameter_shapes():
    g, _ = load_fixture("mlp")
    types, values, io = fixture_types("mlp", g)
    text = dump_symbol_json(bind_types(g, types))
    doc = json.loads(text)
    attrs = {n["name"]: n.get("attrs", {}) for n in doc["nodes"]}
    assert attrs["mlp_dense0_weight"]["__shape__"] == "(32, 64)"
    assert attrs["mlp_dense0_weight"]["__dtype__"] == "0"
    assert attrs["data"] == {}  # a data input gets no __shape__: it would pin the batch size
    again = bind_types(load_symbol_json(text, "again.json", data_names=("data",)), {"data": types["data"]})
    np.testing.assert_allclose(interpret(again, values)[0], io["output0"], rtol=1e-5, atol=1e-6)


# -- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_dump_then_load_gives_an_equivalent_graph(name):
    g, doc = load_fixture(name)
    text = dump_symbol_json(g)
    again = load_symbol_json(text, "dumped.json", data_names=("data",))
    assert structure(again) == structure(g)
    out = json.loads(text)
    assert [n["op"] for n in out["nodes"]] == [n["op"] for n in doc["nodes"]]
    assert [n["name"] for n in out["nodes"]] == [n["name"] for n in doc["nodes"]]
    # inputs including NNVM's versions (BatchNorm's mutated statistics are at version 1)
    assert [n["inputs"] for n in out["nodes"]] == [n["inputs"] for n in doc["nodes"]]
    assert out["arg_nodes"] == doc["arg_nodes"]
    assert out["heads"] == doc["heads"]
    # Output counts come from graphc's declarations, not the file: MXNet's MKLDNN build (the
    # one that wrote cnn) gives max-Pooling a second, workspace output (cnn node 10).
    assert out["node_row_ptr"] == list(np.cumsum([0] + [len(n.types) for n in g.nodes]))
    assert out["attrs"] == {"mxnet_version": ["int", 10901]}
    # variables keep their hints as written; op attributes differ only by omitted defaults
    for mine, theirs in zip(out["nodes"], doc["nodes"]):
        if mine["op"] == "null":
            assert mine.get("attrs", {}) == theirs.get("attrs", {})
        else:
            assert set(mine.get("attrs", {})) <= set(theirs.get("attrs", {}))


def test_cnn_marks_batchnorm_statistics_as_aux():
    g, _ = load_fixture("cnn")
    kinds = {n.name: n.hints["kind"] for n in g.inputs}
    assert kinds["cnn_batchnorm0_running_mean"] == kinds["cnn_batchnorm0_running_var"] == "aux"
    assert kinds["cnn_batchnorm0_gamma"] == "param" and kinds["data"] == "input"


def test_built_graph_with_constants_and_hidden_outputs_round_trips():
    b = GraphBuilder("net")
    x = b.var("x", TensorType((2, 3)), "input")
    w = b.var("w", TensorType((4, 3)), "param", {"__lr_mult__": "0.5"})
    h = b.invoke("FullyConnected", [x, w], {"num_hidden": 4, "no_bias": True}, name="fc")
    h = b.invoke("Dropout", [h], {"p": 0.25}, name="drop")
    c = b.const(np.arange(4, dtype=np.float32))
    y = b.invoke("broadcast_add", [h, c], name="add")
    y = b.invoke("_plus_scalar", [y], {"scalar": 1.5}, name="plus")
    graph = verify(b.build([y]))
    consts = constants_of(graph)
    (cname, cvalue), = consts.items()
    assert np.array_equal(cvalue, np.arange(4, dtype=np.float32))

    text = dump_symbol_json(graph)
    doc = json.loads(text)
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert nodes[cname]["op"] == "null"
    assert nodes[cname]["attrs"] == {"__dtype__": "0", "__shape__": "(4,)"}
    assert nodes["w"]["attrs"] == {"__dtype__": "0", "__lr_mult__": "0.5", "__shape__": "(4, 3)"}
    assert nodes["fc"]["attrs"] == {"no_bias": "True", "num_hidden": "4"}  # flatten=True is default
    assert nodes["drop"]["attrs"] == {"p": "0.25"}
    assert doc["node_row_ptr"][-1] - doc["node_row_ptr"][-2] == 1
    assert doc["node_row_ptr"][4] - doc["node_row_ptr"][3] == 2  # Dropout's hidden mask counts

    loaded = load_symbol_json(text, "net-symbol.json", data_names=("x",))
    assert loaded.input_by_name(cname).hints["kind"] == "param"
    typed = verify(bind_types(loaded, {"x": TensorType((2, 3)), "w": TensorType((4, 3))}))
    rng = np.random.default_rng(1)
    xs, ws = rng.standard_normal((2, 3), np.float32), rng.standard_normal((4, 3), np.float32)
    want = interpret(graph, {"x": xs, "w": ws})[0]
    got = interpret(typed, {"x": xs, "w": ws, cname: cvalue})[0]
    assert np.array_equal(got, want)


def test_op_dunder_attributes_go_to_hints_and_back():
    text = json.dumps({"nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "Activation", "name": "act", "attrs": {"act_type": "relu", "__ctx_group__": "dev1"},
         "inputs": [[0, 0, 0]]}], "arg_nodes": [0], "heads": [[1, 0, 0]]})
    g = load_symbol_json(text)
    assert {k: v for k, v in g.nodes[1].hints.items() if k.startswith("__")} == {"__ctx_group__": "dev1"}
    assert "__ctx_group__" not in g.nodes[1].attrs
    doc = json.loads(dump_symbol_json(g))
    assert doc["nodes"][1]["attrs"] == {"__ctx_group__": "dev1", "act_type": "relu"}


def test_old_files_with_param_and_attr_keys_and_no_row_pointers_load():
    text = json.dumps({"nodes": [
        {"op": "null", "name": "data", "param": {}, "inputs": []},
        {"op": "null", "name": "w", "attr": {"__shape__": "(3, 5)"}, "inputs": []},
        {"op": "FullyConnected", "name": "fc", "param": {"num_hidden": "3", "no_bias": "True"},
         "attr": {"__ctx_group__": "a"}, "inputs": [[0, 0], [1, 0]]}], "heads": [[2, 0]]})
    g = load_symbol_json(text, "old.json", data_names=["data"])
    assert g.nodes[2].attrs["num_hidden"] == 3 and {k: v for k, v in g.nodes[2].hints.items() if k.startswith("__")} == {"__ctx_group__": "a"}
    typed = bind_types(g, {"data": TensorType((2, 5))})  # w's type comes from its complete __shape__
    assert typed.outputs[0].type.shape == (2, 3)


def test_mutated_variables_are_aux_and_get_nnvm_versions(monkeypatch):
    op = OpDef("_test_mutate", infer=lambda x, s: x, compute=lambda x, s: x, inputs=("data", "state"),
               aux_inputs=(1,))
    monkeypatch.setitem(registry._REGISTRY, "_test_mutate", op)
    text = json.dumps({"nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "s", "inputs": []},
        {"op": "_test_mutate", "name": "m0", "inputs": [[0, 0, 0], [1, 0, 1]]},
        {"op": "_test_mutate", "name": "m1", "inputs": [[2, 0, 0], [1, 0, 2]]},
        {"op": "elemwise_add", "name": "add", "inputs": [[3, 0, 0], [1, 0, 2]]}],
        "heads": [[4, 0, 0]]})
    g = load_symbol_json(text, data_names=("data",))
    assert g.input_by_name("s").hints["kind"] == "aux"
    doc = json.loads(dump_symbol_json(g))
    assert [n["inputs"] for n in doc["nodes"][2:]] == [[[0, 0, 0], [1, 0, 1]], [[2, 0, 0], [1, 0, 2]],
                                                       [[3, 0, 0], [1, 0, 2]]]


# -- refusals -------------------------------------------------------------------------------------
def graph_doc(nodes, heads=((1, 0, 0),)):
    return json.dumps({"nodes": [{"op": "null", "name": "data", "inputs": []}] + nodes,
                       "heads": [list(h) for h in heads]})


def refused(text, *fragments, source="bad-symbol.json", **kw):
    with pytest.raises(FormatError) as info:
        load_symbol_json(text, source, **kw)
    msg = str(info.value)
    assert source in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_unknown_operator_is_refused_naming_op_node_and_file():
    text = graph_doc([{"op": "MagicOp", "name": "magic0", "inputs": [[0, 0, 0]]}])
    refused(text, "unknown operator 'MagicOp'", "node 1 'magic0'")


def test_forward_input_reference_is_refused():
    text = graph_doc([{"op": "relu", "name": "r0", "inputs": [[2, 0, 0]]},
                      {"op": "relu", "name": "r1", "inputs": [[0, 0, 0]]}])
    refused(text, "node 1 'r0'", "refers to node 2", "topological")


def test_self_reference_is_refused():
    refused(graph_doc([{"op": "relu", "name": "r0", "inputs": [[1, 0, 0]]}]), "refers to node 1")


def test_head_out_of_range_is_refused():
    refused(graph_doc([{"op": "relu", "name": "r0", "inputs": [[0, 0, 0]]}], heads=[(7, 0, 0)]),
            "head 0 refers to node 7")


def test_output_index_beyond_the_operators_outputs_is_refused():
    text = graph_doc([{"op": "relu", "name": "r0", "inputs": [[0, 0, 0]]},
                      {"op": "relu", "name": "r1", "inputs": [[1, 1, 0]]}], heads=[(2, 0, 0)])
    refused(text, "node 2 'r1'", "output 1 of 'r0'")
    refused(graph_doc([{"op": "relu", "name": "r0", "inputs": [[0, 3, 0]]}]), "variable 'data'")


def test_missing_keys_and_bad_json_are_refused():
    refused("{not json", "not valid JSON", "line 1")
    refused(json.dumps({"nodes": []}), "'heads'")
    refused(graph_doc([{"op": "relu", "inputs": [[0, 0, 0]]}]), "node 1", "'name'")
    refused(graph_doc([{"op": "relu", "name": "r", "inputs": [["0", 0, 0]]}]), "'r'", "input 0")
    refused(graph_doc([{"op": "relu", "name": "r", "attrs": {"x": 1}, "inputs": [[0, 0, 0]]}]), "string")
    refused(json.dumps({"nodes": [{"op": "null", "name": "d", "inputs": []}], "heads": []}), "no heads")


def test_wrong_input_count_and_bad_attributes_are_refused():
    refused(graph_doc([{"op": "relu", "name": "r", "inputs": [[0, 0, 0], [0, 0, 0]]}]), "takes 1 inputs")
    refused(graph_doc([{"op": "Activation", "name": "a", "attrs": {"act_type": "nope"},
                        "inputs": [[0, 0, 0]]}]), "node 1 'a'", "act_type")


def test_unknown_data_name_is_refused():
    refused(graph_doc([{"op": "relu", "name": "r", "inputs": [[0, 0, 0]]}]), "'x'", data_names=("x",))


def test_bind_types_names_what_is_missing_or_inconsistent():
    g = load_symbol_json(fixture_text("mlp")[0], data_names=("data",))
    with pytest.raises(GraphcError, match="mlp_dense0_weight.*\\(32, 0\\)"):
        bind_types(g, {"data": TensorType((4, 64))})
    with pytest.raises(ShapeError, match="mlp_dense0_bias"):
        bind_types(g, {"data": TensorType((4, 64)), "mlp_dense0_weight": TensorType((32, 64)),
                       "mlp_dense0_bias": TensorType((7,))})
    with pytest.raises(GraphcError, match="'data', and it has no __shape__ hint"):
        bind_types(g, {})
    with pytest.raises(GraphcError, match="nonexistent"):
        bind_types(g, {"nonexistent": TensorType((1,))})


def test_dump_refuses_graphc_internal_operators_and_duplicate_variable_names():
    g = load_symbol_json(graph_doc([{"op": "relu", "name": "r", "inputs": [[0, 0, 0]]}]))
    g.nodes[1].op = "_fused_elementwise0"
    with pytest.raises(FormatError, match="_fused_elementwise0"):
        dump_symbol_json(g)
    twice = load_symbol_json(json.dumps({"nodes": [
        {"op": "null", "name": "a", "inputs": []}, {"op": "null", "name": "a", "inputs": []},
        {"op": "elemwise_add", "name": "s", "inputs": [[0, 0, 0], [1, 0, 0]]}], "heads": [[2, 0, 0]]}))
    with pytest.raises(FormatError, match="'a'"):
        dump_symbol_json(twice)


# -- properties -----------------------------------------------------------------------------------
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 20) | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_mutated_file_is_a_format_error_or_a_valid_graph(data):
    """Replacing any part of a real file with arbitrary JSON never escapes as a KeyError,
    TypeError or IndexError: the file loads into a graph that writes back, or is refused."""
    doc = json.loads(fixture_text("mlp")[0])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = data.draw(_JSON)
    try:
        g = load_symbol_json(json.dumps(doc), "fuzz-symbol.json")
    except FormatError as exc:
        assert "fuzz-symbol.json" in str(exc)
    else:
        load_symbol_json(dump_symbol_json(g), "again.json")
