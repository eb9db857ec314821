"""Shape inference refuses what an operator cannot compute, with a ShapeError that names the
operator and the shapes involved (the registry adds the node)."""
import pytest

from graphc.ops import ShapeError
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType

# op, input shapes, attrs
BAD = [
    ("broadcast_add", [(2, 3), (4, 3)], {}),
    ("broadcast_mul", [(2, 3), (2,)], {}),
    ("elemwise_add", [(2, 3), (3, 2)], {}),
    ("where", [(2, 3), (2, 3), (3, 2)], {}),
    ("where", [(3,), (2, 3), (2, 3)], {}),
    ("dot", [(2, 3), (4, 5)], {}),
    ("dot", [(2, 3), (2, 3)], {"transpose_b": False}),
    ("batch_dot", [(2, 3, 4), (2, 5, 6)], {}),
    ("batch_dot", [(2, 3, 4), (3, 4, 6)], {}),
    ("FullyConnected", [(2, 5), (4, 3)], {"num_hidden": 4, "no_bias": True}),
    ("Reshape", [(2, 3)], {"shape": (4,)}),
    ("Reshape", [(2, 3)], {"shape": (4, -1)}),
    ("broadcast_to", [(2, 3)], {"shape": (4, 3)}),
    ("_sum_to", [(2, 3)], {"shape": (4,)}),
    ("expand_dims", [(2, 3)], {"axis": 5}),
    ("squeeze", [(2, 3)], {"axis": 1}),
    ("SwapAxis", [(2, 3)], {"dim1": 0, "dim2": 4}),
    ("broadcast_axis", [(2, 3)], {"axis": (1,), "size": (4,)}),
    ("broadcast_like", [(2, 3), (2, 4)], {}),
    ("broadcast_like", [(2, 3), (2, 4, 1)], {}),
    ("Concat", [(2, 3), (3, 3)], {"dim": 1, "num_args": 2}),
    ("Concat", [(2, 3), (2, 3)], {"dim": 1, "num_args": 3}),
    ("stack", [(2, 3), (3, 2)], {"num_args": 2}),
    ("add_n", [(2, 3), (3, 2)], {"num_args": 2}),
    ("split", [(2, 5)], {"num_outputs": 2}),
    ("split", [(2, 4)], {"num_outputs": 2, "squeeze_axis": True}),
    ("slice", [(2, 3)], {"begin": (0, 0, 0), "end": (1, 1, 1)}),
    ("slice", [(2, 3)], {"begin": (0,), "end": (1, 2)}),
    ("slice_like", [(2, 3), (4, 3)], {}),
    ("_slice_assign", [(4, 5), (3, 5)], {"begin": (1,), "end": (3,)}),
    ("_backward_take", [(3, 2), (4,)], {"shape": (4, 2)}),
    ("pick", [(3, 4), (2,)], {}),
    ("softmax_cross_entropy", [(3, 4), (2,)], {}),
    ("softmax_cross_entropy", [(3, 4, 2), (3,)], {}),
    ("LeakyReLU", [(2, 3, 4), (5,)], {"act_type": "prelu"}),
]


# ops whose message quotes only the input at fault (and the expectation it broke)
ONE_SHAPE_AT_FAULT = {"Concat"}


@pytest.mark.parametrize("op, shapes, attrs", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_shapes_raise_a_shape_error_naming_op_and_shapes(op, shapes, attrs):
    b = GraphBuilder()
    xs = [b.var(f"x{i}", TensorType(s)) for i, s in enumerate(shapes)]
    with pytest.raises(ShapeError) as info:
        b.invoke(op, xs, attrs)
    msg = str(info.value)
    assert msg.startswith(op), msg
    missing = [s for s in set(shapes) if str(s) not in msg]
    assert not missing or op in ONE_SHAPE_AT_FAULT, f"{op}: message does not quote {missing}: {msg}"


def test_the_error_names_the_node():
    b = GraphBuilder()
    x, y = b.var("x", TensorType((2, 3))), b.var("y", TensorType((4, 3)))
    with pytest.raises(ShapeError, match=r"broadcast_add 'mysum'.*\(2, 3\).*\(4, 3\)"):
        b.invoke("broadcast_add", [x, y], {}, name="mysum")
