"""Variable attributes as MXNet 1.9.1 keeps them: sym.var's keywords become string attributes
(list_attr, attr_dict, the -symbol.json file), Module initialises from `__init__`, and the
optimizer made with sym= scales by `__lr_mult__`/`__wd_mult__`. Operators accept every attribute
MXNet's accept. Expected values were recorded from MXNet 1.9.1 running the same calls."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
from graphc.ops.registry import get_op, has_op

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))

XAVIER = '["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 2}]'


def _weight_var():
    return mx.sym.var("w", shape=(3, 4), dtype="float16", lr_mult=2, wd_mult=0, init=mx.init.Xavier(magnitude=2),
                      stype="default", attr={"foo": "bar", "ctx_group": "g1"}, __layout__="NC")


def test_var_keywords_are_listed_as_mxnet_lists_them():
    assert _weight_var().list_attr() == {
        "__layout__": "NC", "__storage_type__": "0", "__init__": XAVIER, "__dtype__": "2", "__wd_mult__": "0",
        "wd_mult": "0", "__lr_mult__": "2", "lr_mult": "2", "__shape__": "(3, 4)", "__ctx_group__": "g1",
        "ctx_group": "g1", "foo": "bar"}
    assert mx.sym.var("b", init="zeros", dtype="int32", stype="row_sparse").list_attr() == {
        "__storage_type__": "1", "__init__": "zeros", "__dtype__": "4"}
    assert mx.sym.var("c", init=mx.init.Constant(3.0)).list_attr() == {"__init__": '["constant", {"value": 3.0}]'}


def test_attr_reads_either_spelling():
    v = _weight_var()
    assert (v.attr("lr_mult"), v.attr("__lr_mult__"), v.attr("foo"), v.attr("ctx_group")) == ("2", "2", "bar", "g1")


def test_attr_dict_covers_every_node_with_attributes():
    fc = mx.sym.FullyConnected(mx.sym.var("data"), _weight_var(), num_hidden=3, no_bias=True, name="fc")
    d = fc.attr_dict()
    assert sorted(d) == ["fc", "w"]
    assert d["fc"] == {"no_bias": "True", "num_hidden": "3"}
    assert d["w"]["__init__"] == XAVIER


def test_the_file_keeps_the_variable_attributes():
    fc = mx.sym.FullyConnected(mx.sym.var("data"), _weight_var(), num_hidden=3, no_bias=True, name="fc")
    node = [n for n in json.loads(fc.tojson())["nodes"] if n["name"] == "w"][0]
    for key, value in {"__ctx_group__": "g1", "__dtype__": "2", "__init__": XAVIER, "__layout__": "NC",
                       "__lr_mult__": "2", "__shape__": "(3, 4)", "__storage_type__": "0", "__wd_mult__": "0"}.items():
        assert node["attrs"][key] == value
    back = mx.sym.load_json(fc.tojson())
    assert back.attr_dict()["w"]["__init__"] == XAVIER


def test_dtype_attribute_types_an_untyped_variable():
    v = mx.sym.var("v", dtype="float64")
    out = mx.sym.relu(v)
    _, out_types, _ = out.infer_type()
    assert out_types == [np.float64]
    assert out.infer_shape(v=(2,))[1] == [(2,)]


def test_var_refuses_what_mxnet_refuses():
    with pytest.raises(ValueError, match="name=foo is not supported"):
        mx.sym.var("v", foo=1)
    with pytest.raises(ValueError, match="stype='bogus'"):
        mx.sym.var("v", stype="bogus")


def test_optimizer_made_with_sym_reads_lr_and_wd_mult():
    out = mx.sym.FullyConnected(mx.sym.var("data"), mx.sym.var("fw2", lr_mult=0.0, wd_mult=3), num_hidden=2,
                                no_bias=True, name="f2")
    opt = mx.optimizer.SGD(learning_rate=0.1, sym=out, param_idx2name={0: "data", 1: "fw2"})
    assert opt.lr_mult == {"fw2": 0.0}
    assert opt.wd_mult == {"data": 0.0, "fw2": 3.0}
    opt.set_lr_mult({"fw2": 0.5})      # explicit multipliers win over the symbol's
    assert opt.lr_mult == {"fw2": 0.5}


def test_module_initialises_from_init_and_trains_with_the_multipliers():
    fc = mx.sym.FullyConnected(mx.sym.var("data"), mx.sym.var("fw", init=mx.init.Constant(0.5), lr_mult=0.5),
                               mx.sym.var("fb", init="ones", wd_mult=2.0), num_hidden=2, name="f")
    loss = mx.sym.MakeLoss(mx.sym.square(fc - mx.sym.var("lro_label")), name="lro")
    mod = mx.mod.Module(loss, data_names=["data"], label_names=["lro_label"])
    mod.bind(data_shapes=[("data", (4, 3))], label_shapes=[("lro_label", (4, 2))])
    mod.init_params(mx.init.Uniform(0.1))
    args, _ = mod.get_params()
    np.testing.assert_array_equal(args["fw"].asnumpy(), np.full((2, 3), 0.5))
    np.testing.assert_array_equal(args["fb"].asnumpy(), np.ones(2))
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1, "wd": 0.1})
    mod.forward(mx.io.DataBatch([mx.nd.ones((4, 3))], [mx.nd.zeros((4, 2))]))
    mod.backward()
    mod.update()
    args, _ = mod.get_params()
    # recorded from MXNet 1.9.1
    np.testing.assert_allclose(args["fw"].asnumpy(), np.full((2, 3), 0.25), rtol=1e-6)
    np.testing.assert_allclose(args["fb"].asnumpy(), np.full(2, 0.48), rtol=1e-6)


def test_operators_without_parameters_keep_any_attribute_as_mxnet_does():
    a, b = mx.nd.array([[1, 5], [3, 2]]), mx.nd.array([[2, 2], [2, 2]])
    np.testing.assert_array_equal(mx.nd.broadcast_maximum(a, b, axis=1).asnumpy(), [[2, 5], [3, 2]])
    s = mx.sym.broadcast_maximum(mx.sym.var("a"), mx.sym.var("b"), axis=1)
    assert s.infer_shape(a=(2, 2), b=(2, 2))[1] == [(2, 2)]


_MXNET_ARGS = r"""
import json, mxnet as mx
out = {}
for name in mx.operator.get_all_registered_operators():
    a = mx.operator.get_operator_arguments(name)
    out[name] = [n for n, t in zip(a.names, a.types) if "NDArray" not in t and "Symbol" not in t]
print(json.dumps(out))
"""

# MXNet parameters graphc does not take yet, with the reason
_KNOWN_GAPS = {"_linspace": {"step", "repeat", "infer_range"}}   # graphc's takes num/endpoint (numpy's form)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_every_attribute_mxnet_accepts_on_a_shared_operator_is_accepted():
    proc = subprocess.run([MXNET_PYTHON, "-c", _MXNET_ARGS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    refused = {}
    for name, params in json.loads(proc.stdout).items():
        if not has_op(name) or not get_op(name).attrs:
            continue      # missing op, or one that (like MXNet's parameterless ops) keeps any attribute
        missing = set(params) - set(get_op(name).attrs) - _KNOWN_GAPS.get(name, set())
        if missing:
            refused[name] = sorted(missing)
    assert not refused, refused


def test_symbol_block_infers_parameter_shapes_from_the_data_and_keeps_gluon_defaults():
    # MXNet 1.9.1's SymbolBlock neither reads __init__ nor __lr_mult__ (its Parameters keep the
    # defaults); it infers the shapes on the first call. Values recorded from MXNet.
    data = mx.sym.var("data")
    out = mx.sym.FullyConnected(data, mx.sym.var("fw", lr_mult=0.0, init=mx.init.Constant(0.5)), mx.sym.var("fb"),
                                num_hidden=2, name="f")
    block = mx.gluon.SymbolBlock(mx.sym.LayerNorm(out, name="ln"), data)
    block.initialize(mx.init.Constant(0.25))
    y = block(mx.nd.ones((2, 3)))
    params = block.collect_params()
    assert {k: params[k].shape for k in params} == {"fw": (2, 3), "fb": (2,), "ln_gamma": (2,), "ln_beta": (2,)}
    assert params["fw"].lr_mult == 1.0
    np.testing.assert_array_equal(params["fw"].data().asnumpy(), np.full((2, 3), 0.25))
    np.testing.assert_allclose(y.asnumpy(), np.full((2, 2), 0.25))
