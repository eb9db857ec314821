"""The hand-built symbol API's MXNet 1.x behaviours (symbol1x_cases.py) against Apache MXNet
1.9.1's recorded answers (mxnet_symbol1x_reference.json) and, where its venv exists, live ones;
plus graphc-side checks of what the cases cannot compare directly (debug_str's allocation
figures, Module's batch axis from `__layout__`, the optimizer's per-weight multipliers)."""
import json
import os
import re
import subprocess
import warnings

import numpy as np
import pytest

import graphc as mx
import symbol1x_cases
from graphc.ops.errors import GraphcError, ShapeError
from mxnet_oracle import MXNET_PYTHON, needs_mxnet

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "mxnet_symbol1x_reference.json")) as f:
    RECORDED = json.load(f)


@pytest.fixture(scope="module")
def graphc_answers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return symbol1x_cases._jsonable(symbol1x_cases.all_cases(mx))


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_graphc_gives_mxnets_recorded_answer(case, graphc_answers):
    assert graphc_answers[case] == RECORDED[case], f"{case}: graphc {graphc_answers[case]}, MXNet {RECORDED[case]}"


def test_every_case_is_recorded(graphc_answers):
    assert sorted(graphc_answers) == sorted(RECORDED)


@needs_mxnet
def test_live_mxnet_gives_the_recorded_answers(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "symbol1x_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    assert live == RECORDED
    assert graphc_answers == live


# -- graphc-side checks ------------------------------------------------------------------------

def test_contradicting_partial_shapes_raise_naming_the_operator():
    a = mx.sym.Variable("a", shape=(0, 10))
    b = mx.sym.Variable("b", shape=(3, 0))
    c = mx.sym.Variable("c", shape=(4, 10))
    bad = mx.sym.elemwise_add(mx.sym.elemwise_add(a, b, name="ab"), c, name="abc")
    with pytest.raises(ShapeError, match="abc|ab"):
        bad.infer_shape()
    cat = mx.sym.Concat(mx.sym.var("x", shape=(2, 3)), mx.sym.var("y", shape=(2, 0)), dim=1, name="cat")
    with pytest.raises(ShapeError, match="cat"):
        (cat + mx.sym.var("z", shape=(2, 3))).infer_shape()


def test_an_unknown_operand_of_plus_takes_its_partners_shape():
    # graphc's `a + b` is broadcast_add; as with MXNet's `a + b` (elementwise), b follows a
    a, b = mx.sym.var("a", shape=(2, 3)), mx.sym.var("b")
    args, outs, _ = (a + b).infer_shape()
    assert args == [(2, 3), (2, 3)] and outs == [(2, 3)]


def test_infer_shape_of_a_bound_symbol_is_exact_after_backward_inference():
    # the inferred shapes bind and run: conv data shape (5, 4, 9, 7) came from the output side
    a = mx.sym.Variable("a", shape=(0, 4, 0, 0))
    conv = mx.sym.Convolution(data=a, num_filter=6, kernel=(3, 3), pad=(1, 1), name="conv")
    d = conv + mx.sym.Variable("c", shape=(5, 6, 9, 7))
    exe = d.simple_bind(mx.cpu(), grad_req="null")
    assert exe.arg_dict["a"].shape == (5, 4, 9, 7)
    assert exe.forward()[0].shape == (5, 6, 9, 7)


def _allocated(exe):
    return int(re.search(r"Total (\d+) MB allocated", exe.debug_str()).group(1))


def test_debug_str_counts_the_backward_pass_only_where_a_gradient_flows():
    data = mx.sym.Variable("data")
    for _ in range(4):
        data = data * data
    shape = (4, 256, 256)       # 1 MB per value
    with_grad = _allocated(data.simple_bind(mx.cpu(), data=shape))
    no_grad = _allocated(data.simple_bind(mx.cpu(), data=shape, grad_req="null"))
    blocked = _allocated(mx.sym.stop_gradient(data).simple_bind(mx.cpu(), data=shape))
    assert with_grad > no_grad > 0
    assert blocked == no_grad
    text = data.simple_bind(mx.cpu(), data=shape, grad_req="null").debug_str()
    assert text.startswith("Symbol Outputs:") and "Variable:data" in text and text.count("Op:") == 4


def test_module_splits_and_merges_outputs_along_their_layouts_batch_axis():
    net = mx.sym.Activation(data=mx.sym.Variable("data"), act_type="relu", __layout__="TNC")
    shape = (3, 8, 7)
    mod = mx.mod.Module(net, ("data",), None, context=[mx.cpu(0), mx.cpu(1)])
    mod.bind(data_shapes=[mx.io.DataDesc("data", shape, layout="TNC")])
    mod.init_params()
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    mod.forward(mx.io.DataBatch(data=[mx.nd.array(x)], label=None))
    mod.backward([mx.nd.ones(shape)])
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), np.maximum(x, 0))
    assert [o.shape for o in mod.get_outputs(merge_multi_context=False)[0]] == [(3, 4, 7), (3, 4, 7)]


def test_operator_lr_mult_reaches_its_weights_and_the_optimizer():
    data = mx.sym.Variable("data")
    bias = mx.sym.Variable("fc1_bias", lr_mult=1.0)
    fc1 = mx.sym.FullyConnected(data=data, bias=bias, name="fc1", num_hidden=6, lr_mult=0)
    fc2 = mx.sym.FullyConnected(data=fc1, name="fc2", num_hidden=6, wd_mult=0.5)
    mod = mx.mod.Module(symbol=fc2, label_names=None)
    mod.bind(data_shapes=[("data", (5, 4))])
    mod.init_params(initializer=mx.init.Uniform(1.0))
    mod.init_optimizer(optimizer_params={"learning_rate": 1.0})
    before = {k: v.asnumpy() for k, v in mod.get_params()[0].items()}
    mod.forward(mx.io.DataBatch(data=[mx.nd.ones((5, 4))], label=None), is_train=True)
    mod.backward(mod.get_outputs())
    mod.update()
    after = {k: v.asnumpy() for k, v in mod.get_params()[0].items()}
    assert mod._optimizer.lr_mult == {"fc1_bias": 1.0, "fc1_weight": 0.0}
    assert mod._optimizer.wd_mult["fc2_weight"] == 0.5 and mod._optimizer.wd_mult["fc2_bias"] == 0.5
    np.testing.assert_array_equal(after["fc1_weight"], before["fc1_weight"])
    assert not np.allclose(after["fc1_bias"], before["fc1_bias"])


def test_composition_refuses_what_mxnet_refuses():
    net = mx.sym.FullyConnected(mx.sym.var("x"), num_hidden=2, name="fc")
    with pytest.raises(TypeError, match="not both"):
        net(mx.sym.var("y"), fc_weight=mx.sym.var("w"))
    with pytest.raises(GraphcError, match="nothere"):
        net(nothere=mx.sym.var("y"))
    # positional composition replaces arguments in list_arguments() order
    composed = net(mx.sym.var("y") * 2)
    assert composed.list_arguments() == ["y", "fc_weight", "fc_bias"]


def test_internal_namespace_names_what_it_lacks():
    with pytest.raises(AttributeError, match="_no_such_op"):
        mx.sym._internal._no_such_op
    with pytest.raises(AttributeError):
        mx.nd._internal.plus        # (only underscore names live there)


def test_identity_with_attr_like_rhs_passes_lhs_and_no_gradient_to_rhs():
    lhs, rhs = mx.sym.var("lhs"), mx.sym.var("rhs")
    y = mx.sym._internal._identity_with_attr_like_rhs(lhs, rhs)
    exe = y.simple_bind(mx.cpu(), lhs=(2, 3), rhs=(2, 3))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = exe.forward(is_train=True, lhs=mx.nd.array(x), rhs=mx.nd.ones((2, 3)))[0]
    exe.backward(mx.nd.full((2, 3), 3.0))
    np.testing.assert_array_equal(out.asnumpy(), x)
    np.testing.assert_array_equal(exe.grad_dict["lhs"].asnumpy(), np.full((2, 3), 3.0))
    np.testing.assert_array_equal(exe.grad_dict["rhs"].asnumpy(), np.zeros((2, 3)))
