"""The cost model reads FLOPs from the operator declarations: every declared `flops` gives a
finite, non-negative count on every operator test case, a GEMM or convolution counts at least a
multiply-add per output element, and operators without a declaration count their output
elements; fused nodes count what their bodies count."""
import math
import pathlib
import sys

import numpy as np
import pytest

from graphc.ops.graph import Node, Value, variable
from graphc.ops.registry import get_op
from graphc.ops.types import TensorType
from graphc.passes.cost_model import graph_costs, node_bytes, node_flops

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "ops"))
from op_cases import CASES  # noqa: E402

HEAVY = {"FullyConnected", "dot", "batch_dot", "Convolution", "Deconvolution", "_conv_data_grad",
         "_conv_weight_grad", "RNN"}


def _node(c):
    op = get_op(c.op)
    attrs = op.parse(c.attrs)
    ins = [variable(f"in{i}", TensorType(np.shape(a), np.asarray(a).dtype)) for i, a in enumerate(c.inputs)]
    types = op.infer_types([n.types[0] for n in ins], attrs)
    return Node(op.name, [Value(n) for n in ins], attrs, None, types)


DECLARED = [c for c in CASES if get_op(c.op).flops is not None]


def test_the_heavy_operators_declare_their_flops():
    for name in HEAVY | {"Pooling", "BatchNorm", "LayerNorm", "softmax", "SoftmaxOutput"}:
        assert get_op(name).flops is not None, name


@pytest.mark.parametrize("c", DECLARED, ids=lambda c: c.id)
def test_declared_flops_are_finite_and_at_least_the_work_per_output(c):
    try:
        node = _node(c)
    except Exception as exc:            # cases that need more than a type to infer (none expected)
        pytest.skip(f"cannot infer {c.op}: {exc}")
    flops = node_flops(node)
    assert math.isfinite(flops) and flops >= 0
    out = sum(t.size for t in node.types)
    if get_op(c.op).name in HEAVY and out:
        assert flops >= 2 * node.types[0].size
    assert node_bytes(node) == sum(t.nbytes for t in node.types)


def test_undeclared_operators_count_their_output_elements():
    x = variable("x", TensorType((3, 5)))
    node = Node("exp", [x.out()], {}, None, (TensorType((3, 5)),))
    assert get_op("exp").flops is None and node_flops(node) == 15.0
    assert node_flops(x) == 0.0


def test_fused_nodes_count_their_bodies():
    import graphc as mx
    from graphc.passes.pipeline import lower_pipeline
    h = mx.sym.var("x", shape=(4, 6))
    h = mx.sym.FullyConnected(h, mx.sym.var("w", shape=(5, 6)), mx.sym.var("b", shape=(5,)), num_hidden=5)
    graph = mx.sym.tanh(h * 2.0)._graph()
    fused = lower_pipeline(False)(graph)
    assert any(n.op.startswith("_fused") for n in fused.nodes)
    assert graph_costs(fused)["total"].flops == graph_costs(graph)["total"].flops
