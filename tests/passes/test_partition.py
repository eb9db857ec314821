"""The device-partitioning pass: every node placed by MXNet's annotations (ctx_group via
group2ctx, parameters' devices, inputs on the default device, the rest with its inputs), a
`_CrossDeviceCopy` at every edge between two devices and nowhere else, devices in the listing,
gradients built where their forward nodes run; and the multi-device runner computes what the
unpartitioned graph computes."""
import numpy as np
import pytest

import graphc as mx
from graphc.ops.graph import VerifyError, verify
from graphc.ops.interpret import interpret
from graphc.partitioned import PartitionedProgram, plan_stages
from graphc.passes.autodiff import differentiate
from graphc.passes.partition import COPY, check_partition, node_device, partition_devices

TWO = {"a": mx.cpu(0), "b": mx.cpu(1)}


def _fc(x, n_in, n, name):
    return mx.sym.FullyConnected(x, mx.sym.var(f"{name}_weight", shape=(n, n_in)),
                                 mx.sym.var(f"{name}_bias", shape=(n,)), num_hidden=n, name=name)


def _two_stage_mlp():
    data = mx.sym.var("data", shape=(4, 6))
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.Activation(_fc(data, 6, 8, "fc0"), act_type="relu", name="relu0")
    with mx.AttrScope(ctx_group="b"):
        out = _fc(h, 8, 3, "fc1")
    return out._graph()


def _copies(graph):
    return [n for n in graph.nodes if n.op == COPY]


def _arrays(graph, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n.types[0].shape).astype(n.types[0].dtype) for n in graph.inputs]


def test_attrscope_sets_ctx_group_on_operators_and_variables():
    with mx.AttrScope(ctx_group="a"):
        x = mx.sym.var("x")
        with mx.AttrScope(ctx_group="b", lr_mult="2"):
            y = mx.sym.exp(x)
    assert x.attr("ctx_group") == "a" and y.attr("ctx_group") == "b" and y.attr("lr_mult") == "2"
    assert y.value.node.hints["__ctx_group__"] == "b"
    assert mx.sym.exp(x).attr("ctx_group") is None          # the scope ended
    with pytest.raises(ValueError, match="need to be strings"):
        mx.AttrScope(ctx_group=1)


def test_copies_only_at_the_cut_and_every_node_placed():
    graph = verify(_two_stage_mlp())
    placed = check_partition(verify(partition_devices(graph, TWO)))
    copies = _copies(placed)
    assert len(copies) == 1
    assert copies[0].inputs[0].node.name == "relu0" and copies[0].attrs["device"] == "cpu(1)"
    by_name = {n.name: node_device(n) for n in placed.nodes}
    assert by_name["fc0"] == by_name["relu0"] == by_name["fc0_weight"] == "cpu(0)"
    assert by_name["fc1"] == by_name["fc1_weight"] == by_name["fc1_bias"] == "cpu(1)"
    assert by_name["data"] == "cpu(0)"                      # inputs: the default device
    assert all(node_device(n) is not None for n in placed.nodes if not n.is_const)


def test_listing_shows_each_nodes_device():
    text = str(partition_devices(_two_stage_mlp(), TWO))
    assert "fc1_weight: f32[3,8]@cpu(1)" in text
    assert "= _CrossDeviceCopy(%1, device='cpu(1)')  @cpu(1)" in text
    assert "= FullyConnected(data, fc0_weight, fc0_bias, num_hidden=8)  @cpu(0)" in text


def test_graphc_dump_prints_the_placed_graph(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DUMP", "partition_devices")
    placed = partition_devices(_two_stage_mlp(), TWO)
    err = capsys.readouterr().err
    assert err == f"-- after partition_devices --\n{placed}\n"
    assert "= FullyConnected(%2, fc1_weight, fc1_bias, num_hidden=3)  @cpu(1)" in err
    monkeypatch.setenv("GRAPHC_DUMP", "fuse_elementwise")
    partition_devices(_two_stage_mlp(), TWO)
    assert capsys.readouterr().err == ""


def test_one_device_needs_no_copy_and_unknown_groups_fall_back_to_the_default():
    graph = _two_stage_mlp()
    assert not _copies(partition_devices(graph, {"a": mx.cpu(1), "b": mx.cpu(1)}, default=mx.cpu(1)))
    # (the data input sits on the default device: one copy to the stage that reads it)
    assert [c.inputs[0].node.name for c in _copies(partition_devices(graph, {"a": mx.cpu(1), "b": mx.cpu(1)}))] \
        == ["data"]
    placed = partition_devices(graph, {}, default="cpu(2)")
    assert not _copies(placed) and {node_device(n) for n in placed.nodes} == {"cpu(2)"}


def test_a_value_read_on_two_devices_is_copied_once_to_each():
    data = mx.sym.var("data", shape=(2, 3))
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.tanh(data)
    with mx.AttrScope(ctx_group="b"):
        u, v = mx.sym.exp(h), mx.sym.sin(h)
    with mx.AttrScope(ctx_group="c"):
        w = mx.sym.cos(h)
    graph = mx.sym.Group([u + v, w])._graph()
    placed = check_partition(partition_devices(graph, {**TWO, "c": mx.cpu(2)}))
    assert sorted(c.attrs["device"] for c in _copies(placed)) == ["cpu(1)", "cpu(2)"]
    got = PartitionedProgram(placed, lambda g, k: _interpreted(g))(_arrays(placed))
    want = interpret(graph, _arrays(graph))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_operators_follow_their_parameters_device():
    graph = _two_stage_mlp()
    placed = partition_devices(graph, None, var_devices={"fc0_weight": mx.cpu(0), "fc1_weight": mx.cpu(1),
                                                         "fc1_bias": (mx.cpu(1),)})
    devices = {n.name: node_device(n) for n in placed.nodes}
    assert devices["fc0"] == "cpu(0)" and devices["fc1"] == "cpu(1)"
    assert len(_copies(placed)) == 1


def test_values_computed_from_parameters_alone_count_as_parameters():
    """An unrolled LSTM reads slices of its packed weights, not the weights: the product of an
    activation from cpu(0) and such a slice runs where the weights are (one copy, of the
    activation), not where the activation comes from (a copy per slice)."""
    x = mx.sym.var("x", shape=(4, 6))
    w = mx.sym.var("w", shape=(2, 6, 6))
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.tanh(x)
    pieces = mx.sym.split(mx.sym.Reshape(w, shape=(12, 6)), num_outputs=2, axis=0)
    out = mx.sym.dot(h, pieces[0], transpose_b=True) + mx.sym.dot(h, pieces[1], transpose_b=True)
    placed = check_partition(partition_devices(out._graph(), TWO, var_devices={"w": mx.cpu(1)}))
    assert [c.inputs[0].node.name for c in _copies(placed)] == [h.name]
    assert {node_device(n) for n in placed.nodes if n.op in ("dot", "split", "Reshape")} == {"cpu(1)"}


def test_operators_of_data_alone_run_where_their_reader_runs():
    """MXNet's PlaceDevice places an ungrouped node from its consumers: splitting an input
    state for a stage on cpu(1) happens on cpu(1), so the state is copied once, not per piece;
    an operator that no placed node reads falls back to the default device."""
    state = mx.sym.var("state", shape=(2, 3, 4))
    h0, h1 = mx.sym.split(state, num_outputs=2, axis=0, squeeze_axis=True)
    with mx.AttrScope(ctx_group="b"):
        out = mx.sym.tanh(h0) * mx.sym.exp(h1)
    lone = mx.sym.sin(state)
    placed = check_partition(partition_devices(mx.sym.Group([out, lone])._graph(), TWO))
    assert [c.inputs[0].node.name for c in _copies(placed)] == ["state"]
    devices = {n.op: node_device(n) for n in placed.nodes if not n.is_var}
    assert devices["split"] == "cpu(1)" and devices["sin"] == node_device(placed.inputs[0]) == "cpu(0)"


def test_partitioning_twice_adds_nothing():
    once = partition_devices(_two_stage_mlp(), TWO)
    twice = partition_devices(once, TWO)
    assert str(twice) == str(once)


def test_check_partition_refuses_an_uncopied_cut():
    placed = partition_devices(_two_stage_mlp(), TWO)
    fc1 = next(n for n in placed.nodes if n.name == "fc1")
    fc1.hints["device"] = "cpu(0)"        # now it reads fc1_weight on cpu(1) directly
    with pytest.raises(VerifyError, match="without a _CrossDeviceCopy"):
        check_partition(placed)


def test_gradients_are_built_where_their_forward_nodes_run():
    placed = partition_devices(_two_stage_mlp(), TWO)
    gg = differentiate(placed)
    joint = check_partition(verify(partition_devices(gg.graph, TWO)))
    forward_devices = {n.name: node_device(n) for n in placed.nodes}
    # the copy's gradient is a copy back to cpu(0); nothing else crosses
    back = [c for c in _copies(joint) if c.name not in forward_devices]
    assert [c.attrs["device"] for c in back] == ["cpu(0)"]
    grads = dict(zip([w.name for w in gg.wrt], joint.outputs[gg.num_forward_outputs:]))
    assert node_device(grads["fc1_weight"].node) == "cpu(1)"
    assert node_device(grads["fc0_weight"].node) == "cpu(0)"
    assert node_device(grads["data"].node) == "cpu(0)"
    # and the partitioned joint graph computes the unpartitioned gradients
    plain = differentiate(_two_stage_mlp())
    got = PartitionedProgram(joint, lambda g, k: _interpreted(g))(_arrays(joint))
    want = interpret(plain.graph, _arrays(plain.graph))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_stages_are_ordered_even_when_data_returns_to_a_device():
    data = mx.sym.var("data", shape=(2, 3))
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.tanh(data)
    with mx.AttrScope(ctx_group="b"):
        g = mx.sym.exp(h)
    with mx.AttrScope(ctx_group="a"):
        out = g * h
    placed = partition_devices(out._graph(), TWO)
    steps = plan_stages(placed)
    kinds = [(type(s).__name__, s.device, s.rank) for s in steps]
    assert kinds == [("_Stage", "cpu(0)", 0), ("_Copy", "cpu(1)", 1), ("_Stage", "cpu(1)", 1),
                     ("_Copy", "cpu(0)", 2), ("_Stage", "cpu(0)", 2)]
    got = PartitionedProgram(placed, lambda g, k: _interpreted(g))(_arrays(placed))
    np.testing.assert_allclose(got[0], interpret(out._graph(), _arrays(placed))[0], rtol=1e-6)


def test_compiled_stages_run_on_their_devices():
    from graphc import engine
    from graphc.gluon.cached_op import compile_program
    placed = partition_devices(_two_stage_mlp(), TWO)
    mx.nd.zeros((1,), ctx=mx.cpu(1))              # a second device holds data
    program = PartitionedProgram(placed, lambda g, k: compile_program(g, device=k))
    with engine.trace() as events:
        got = program(_arrays(placed))
    assert {device for device, *_ in events} == {0, 1}
    np.testing.assert_allclose(got[0], interpret(placed, _arrays(placed))[0], rtol=1e-5, atol=1e-6)


def _interpreted(graph):
    def run(arrays, outputs=None, rng=None):
        return [np.array(r) for r in interpret(graph, arrays)]
    return run
