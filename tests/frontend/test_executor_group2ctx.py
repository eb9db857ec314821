"""Symbol.bind / simple_bind with group2ctx (MXNet 1.x model parallelism): operators run on
their mx.AttrScope(ctx_group)'s device, the executor computes what the unplaced executor
computes (outputs, gradients, BatchNorm's moving statistics), arrays live where MXNet 1.9.1
puts them, and the placed graph copies only at the cuts."""
import numpy as np
import pytest

import graphc as mx
from graphc.ops.errors import GraphcError
from graphc.passes.partition import COPY, node_device

RTOL, ATOL = 1e-5, 1e-6


def _staged_symbol(groups=("a", "b", "b")):
    """FC+relu under groups[0], BatchNorm under groups[1], FC under groups[2]; the weights are
    created implicitly (`fc0_weight`...) and carry no group: they go with their reader."""
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group=groups[0]):
        h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=8, name="fc0"), act_type="relu")
    with mx.AttrScope(ctx_group=groups[1]):
        h = mx.sym.BatchNorm(h, name="bn")
    with mx.AttrScope(ctx_group=groups[2]):
        return mx.sym.FullyConnected(h, num_hidden=3, name="fc1")


def _fill(executors, seed=0):
    """The same random arguments and positive moving statistics in every executor."""
    rng = np.random.default_rng(seed)
    first = executors[0]
    for name, arr in first.arg_dict.items():
        value = rng.standard_normal(arr.shape)
        for ex in executors:
            ex.arg_dict[name][:] = value
    for name, arr in first.aux_dict.items():
        value = rng.random(arr.shape) + 0.5
        for ex in executors:
            ex.aux_dict[name][:] = value


def _contexts(arrays):
    return {k: str(v.context) for k, v in arrays.items() if v is not None}


def _placed_forward(ex, training):
    mp = ex._block._cached_op.last.model_parallel
    if training:
        (fwd, _, _, _), = mp.train.values()
        return fwd.graph
    return mp.forward[False][0]


def _assert_same(got: dict, want: dict):
    assert got.keys() == want.keys()
    for k in got:
        np.testing.assert_allclose(got[k].asnumpy(), want[k].asnumpy(), rtol=RTOL, atol=ATOL, err_msg=k)


def test_simple_bind_places_arrays_like_mxnet_and_trains_like_one_device():
    sym = _staged_symbol()
    ex = sym.simple_bind(mx.cpu(0), group2ctx={"a": mx.cpu(0), "b": mx.cpu(1)}, data=(4, 6))
    ref = sym.simple_bind(mx.cpu(0), data=(4, 6))
    # what MXNet 1.9.1 allocates for this symbol (bench/.venvs/mxnet): each array on the device
    # of the operator reading it
    stage_a = {"data": "cpu(0)", "fc0_weight": "cpu(0)", "fc0_bias": "cpu(0)"}
    stage_b = {"bn_gamma": "cpu(1)", "bn_beta": "cpu(1)", "fc1_weight": "cpu(1)", "fc1_bias": "cpu(1)"}
    assert _contexts(ex.arg_dict) == _contexts(ex.grad_dict) == {**stage_a, **stage_b}
    assert _contexts(ex.aux_dict) == {"bn_moving_mean": "cpu(1)", "bn_moving_var": "cpu(1)"}
    _fill([ex, ref])
    for step in range(2):
        head = mx.nd.array(np.random.default_rng(step).standard_normal((4, 3)))
        for e in (ex, ref):
            e.forward(is_train=True)
            e.backward(head)
        assert ex.outputs[0].context == mx.cpu(1)
        _assert_same(ex.output_dict, ref.output_dict)
        _assert_same(ex.grad_dict, ref.grad_dict)
        _assert_same(ex.aux_dict, ref.aux_dict)            # moving statistics, updated on cpu(1)
        assert _contexts(ex.grad_dict) == {**stage_a, **stage_b}
        for e in (ex, ref):                                # an SGD step through the bound arrays
            for name, g in e.grad_dict.items():
                if name != "data":
                    e.arg_dict[name][:] = e.arg_dict[name] - 0.1 * g
    # the only copy is the activation crossing from stage a to stage b: the weights are read
    # where they live
    copies = [n for n in _placed_forward(ex, True).nodes if n.op == COPY]
    assert [(node_device(c.inputs[0].node), c.attrs["device"]) for c in copies] == [("cpu(0)", "cpu(1)")]
    assert copies[0].inputs[0].node.op == "Activation"
    ex.forward(is_train=False)
    ref.forward(is_train=False)
    _assert_same(ex.output_dict, ref.output_dict)
    # reshape keeps the weights, and a new data array stays on its stage's device
    ex, ref = ex.reshape(data=(2, 6)), ref.reshape(data=(2, 6))
    assert _contexts(ex.arg_dict) == {**stage_a, **stage_b}
    for e in (ex, ref):
        e.forward(is_train=True, data=mx.nd.ones((2, 6)))
        e.backward(mx.nd.ones((2, 3)))
    _assert_same(ex.output_dict, ref.output_dict)
    _assert_same(ex.grad_dict, ref.grad_dict)


def test_three_groups_with_grad_req_add():
    sym = _staged_symbol(("a", "b", "c"))
    group2ctx = {"a": mx.cpu(0), "b": mx.cpu(1), "c": mx.cpu(2)}
    ex = sym.simple_bind(mx.cpu(0), grad_req="add", group2ctx=group2ctx, data=(5, 6))
    ref = sym.simple_bind(mx.cpu(0), grad_req="add", data=(5, 6))
    assert _contexts(ex.grad_dict)["bn_gamma"] == "cpu(1)" and _contexts(ex.grad_dict)["fc1_weight"] == "cpu(2)"
    _fill([ex, ref], seed=1)
    head = mx.nd.ones((5, 3))
    for _ in range(2):                                     # the second backward adds to the first
        for e in (ex, ref):
            e.forward(is_train=True)
            e.backward(head)
    assert ex.outputs[0].context == mx.cpu(2)
    _assert_same(ex.grad_dict, ref.grad_dict)
    _assert_same(ex.aux_dict, ref.aux_dict)
    copies = [n for n in _placed_forward(ex, True).nodes if n.op == COPY]
    assert sorted((node_device(c.inputs[0].node), c.attrs["device"]) for c in copies) == \
        [("cpu(0)", "cpu(1)"), ("cpu(1)", "cpu(2)")]


def test_bind_takes_arguments_anywhere_and_refuses_misplaced_gradients():
    sym = _staged_symbol()
    group2ctx = {"a": mx.cpu(0), "b": mx.cpu(1)}
    shapes = dict(zip(sym.list_arguments(), sym.infer_shape(data=(4, 6))[0]))
    aux_shapes = dict(zip(sym.list_auxiliary_states(), sym.infer_shape(data=(4, 6))[2]))
    rng = np.random.default_rng(2)
    args = {n: mx.nd.array(rng.standard_normal(s)) for n, s in shapes.items()}      # all on cpu(0)
    aux = {n: mx.nd.array(rng.random(s) + 0.5) for n, s in aux_shapes.items()}
    device = {n: mx.cpu(1) if n.startswith(("bn", "fc1")) else mx.cpu(0) for n in shapes}
    grads = {n: mx.nd.zeros(s, ctx=device[n]) for n, s in shapes.items()}
    ex = sym.bind(mx.cpu(0), args, args_grad=grads, aux_states=aux, group2ctx=group2ctx)
    ref = sym.bind(mx.cpu(0), {n: a.copy() for n, a in args.items()},
                   args_grad={n: mx.nd.zeros(s) for n, s in shapes.items()},
                   aux_states={n: a.copy() for n, a in aux.items()})
    assert ex.arg_dict["fc1_weight"] is args["fc1_weight"]     # used in place, where they are
    for e in (ex, ref):
        e.forward(is_train=True)
        e.backward(mx.nd.ones((4, 3)))
    assert ex.outputs[0].context == mx.cpu(1)
    _assert_same(ex.output_dict, ref.output_dict)
    _assert_same(ex.grad_dict, ref.grad_dict)
    assert ex.grad_dict["fc1_weight"] is grads["fc1_weight"] and grads["fc1_weight"].context == mx.cpu(1)
    # MXNet: "Trying to save gradient to cpu(0) while its source node ... computes it on cpu(1)"
    wrong = dict(grads, fc1_weight=mx.nd.zeros(shapes["fc1_weight"]))
    with pytest.raises(GraphcError, match=r"'fc1_weight' is computed on cpu\(1\).*array is on cpu\(0\)"):
        sym.bind(mx.cpu(0), args, args_grad=wrong, aux_states=aux, group2ctx=group2ctx)


def test_graphc_dump_shows_each_nodes_device(monkeypatch, capsys):
    sym = _staged_symbol()
    ex = sym.simple_bind(mx.cpu(0), group2ctx={"a": mx.cpu(0), "b": mx.cpu(1)}, data=(2, 6))
    capsys.readouterr()
    monkeypatch.setenv("GRAPHC_DUMP", "partition_devices")
    ex.forward()
    err = capsys.readouterr().err
    assert "-- after partition_devices --" in err
    ops = [line for line in err.splitlines() if " = " in line and line.startswith("  %")]
    assert ops and all(line.rsplit("  # ", 1)[0].endswith(("@cpu(0)", "@cpu(1)")) for line in ops)
    assert any("FullyConnected" in line and "@cpu(0)" in line for line in ops)
    assert any("BatchNorm" in line and "@cpu(1)" in line for line in ops)
