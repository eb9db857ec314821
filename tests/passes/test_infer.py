"""infer_types types untyped graphs (loaded files, bare sym.var) and re-types traced ones."""
import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import ShapeError
from graphc.ops.graph import verify
from graphc.ops.types import TensorType
from graphc.passes.infer import infer_types


def test_retyping_for_a_new_batch_size():
    b = GraphBuilder("mlp")
    x = b.var("data", TensorType((1, 8)))
    w = b.var("w", TensorType((4, 8)), "param")
    y = b.F.relu(b.F.FullyConnected(x, w, num_hidden=4, no_bias=True))
    g = infer_types(b.build([y]), {"data": TensorType((32, 8))})
    verify(g)
    assert g.outputs[0].type.shape == (32, 4)


def test_missing_input_shape_is_named():
    import graphc.symbol as sym
    x = sym.var("data")
    y = sym.FullyConnected(x, num_hidden=3, name="fc")
    with pytest.raises(ShapeError, match="data"):
        infer_types(y._graph(), {})


def test_bad_new_shape_fails_at_the_op():
    b = GraphBuilder("mlp")
    x = b.var("data", TensorType((1, 8)))
    w = b.var("w", TensorType((4, 8)), "param")
    y = b.F.FullyConnected(x, w, num_hidden=4, no_bias=True, name="fc1")
    with pytest.raises(ShapeError, match="fc1"):
        infer_types(b.build([y]), {"data": TensorType((1, 9))})
