"""The IR: printing, verification, networkx view, builder errors."""
import numpy as np
import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import ShapeError
from graphc.ops.graph import Graph, Node, VerifyError, verify
from graphc.ops.types import TensorType


def mlp_graph():
    b = GraphBuilder("mlp")
    x = b.var("data", TensorType((1, 784)))
    w = b.var("fc1_weight", TensorType((512, 784)), "param")
    bias = b.var("fc1_bias", TensorType((512,)), "param")
    h = b.F.FullyConnected(x, w, bias, num_hidden=512, name="fc1")
    y = b.F.Activation(h, act_type="relu", name="relu1")
    return b.build([y])


def test_graph_prints_like_a_program():
    text = str(mlp_graph())
    assert text.splitlines() == [
        "graph mlp(data: f32[1,784], fc1_weight: f32[512,784], fc1_bias: f32[512]):",
        "  %0: f32[1,512] = FullyConnected(data, fc1_weight, fc1_bias, num_hidden=512)  # fc1",
        "  %1: f32[1,512] = Activation(%0, act_type='relu')  # relu1",
        "  return %1",
    ]


def test_verifier_accepts_built_graphs_and_rejects_bad_order():
    g = mlp_graph()
    verify(g)
    bad = Graph(list(reversed(g.nodes)), g.inputs, g.outputs, "bad")
    with pytest.raises(VerifyError, match="before it is defined"):
        verify(bad)


def test_verifier_catches_types_that_disagree_with_inference():
    g = mlp_graph()
    relu = g.nodes[-1]
    relu.types = (TensorType((1, 511)),)
    with pytest.raises(VerifyError, match="disagree"):
        verify(g)


def test_networkx_view_has_every_edge():
    g = mlp_graph()
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == len(g.nodes)
    assert nxg.number_of_edges() == sum(len(n.inputs) for n in g.nodes)
    import networkx as nx
    assert nx.is_directed_acyclic_graph(nxg)


def test_shape_error_names_op_node_and_both_shapes():
    b = GraphBuilder()
    x = b.var("data", TensorType((16, 20)))
    w = b.var("dense1_weight", TensorType((16, 30)), "param")
    with pytest.raises(ShapeError, match=r"FullyConnected 'dense1_fwd'.*20 features.*\(16, 30\)"):
        b.F.FullyConnected(x, w, num_hidden=16, no_bias=True, name="dense1_fwd")


def test_unknown_attribute_is_refused_with_the_op_name():
    from graphc.ops.errors import OpAttributeError
    b = GraphBuilder()
    x = b.var("x", TensorType((2,)))
    with pytest.raises(OpAttributeError, match="Activation: unknown attribute 'kind'"):
        b.F.Activation(x, act_type="relu", kind=1)


def test_constants_print_their_value():
    b = GraphBuilder("c")
    x = b.var("x", TensorType((3,)))
    y = x + b.const(np.array([1, 2, 3], np.float32))
    assert "_const(value=[1. 2. 3.])" in str(b.build([y]))
