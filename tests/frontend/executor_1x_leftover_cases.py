"""Executor behaviours MXNet 1.x's test_operator.py leans on, as cases that run unchanged under
MXNet 1.9.1 (`python executor_1x_leftover_cases.py mxnet` prints their answers as JSON) and under
graphc (test_executor_1x_leftovers.py imports `all_cases(graphc)`): simple_bind's keywords that
are not shapes, backward without a forward, binding a symbol of no inputs, reverse shape
inference through Reshape, integer arguments' gradients, N-d dot with transposes compiled, head
gradients nobody reads.

Inputs are deterministic; every answer is a list of (name, nested list / value) pairs."""
import json
import sys

import numpy as np


def _arr(x):
    return np.asarray(x.asnumpy()).tolist()


def simple_bind_ignores_non_shape_keywords(mx):
    """MXNet takes a keyword as a shape only when it is a tuple naming a variable."""
    a, i = mx.sym.Variable("a"), mx.sym.Variable("indices")
    sym = mx.sym.take(a, i, axis=1, mode="clip")
    exe = sym.simple_bind(mx.cpu(), a=(3, 4), indices=(2,), axis=1, mode="clip", unrelated=(7, 7))
    exe.arg_dict["a"][:] = np.arange(12, dtype="float32").reshape(3, 4)
    exe.arg_dict["indices"][:] = np.array([3, 9], dtype="float32")
    exe.forward(is_train=True)
    exe.backward(mx.nd.array(np.arange(6, dtype="float32").reshape(3, 2)))
    return {"out": _arr(exe.outputs[0]), "grad_a": _arr(exe.grad_dict["a"]),
            "shapes": [list(x.shape) for x in exe.arg_arrays]}


def backward_without_forward(mx):
    """The bound graph differentiates the bound arrays without a forward first."""
    x = mx.sym.Variable("x")
    answers = {}
    for name, sym in (("repeat", mx.sym.repeat(x, repeats=2, axis=1)), ("sin", mx.sym.sin(x))):
        data = mx.nd.array(np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3))
        grad = mx.nd.zeros((2, 3))
        exe = sym.bind(mx.cpu(), args=[data], args_grad=[grad])
        out_shape = (2, 6) if name == "repeat" else (2, 3)
        head = np.arange(int(np.prod(out_shape)), dtype="float32").reshape(out_shape)
        exe.backward(mx.nd.array(head))
        answers[name] = _arr(grad)
    return answers


def bind_without_inputs(mx):
    """A symbol of no arguments binds with empty args (list or dict) and runs."""
    answers = {}
    for label, sym, args in (("zeros_int32_list", mx.sym.zeros(shape=(2, 3), dtype="int32"), []),
                             ("ones_float64_dict", mx.sym.ones(shape=(3,), dtype="float64"), {})):
        exe = sym.bind(mx.cpu(), args=args, args_grad=[] if isinstance(args, list) else None)
        exe.forward(is_train=True)
        answers[label] = [_arr(exe.outputs[0]), np.dtype(exe.outputs[0].dtype).name]
    return answers


RESHAPES = [((2, 3, 5, 5), (0, -1), False, (2, 75)), ((2, 3, 5, 4), (-1, 0, 0), False, (8, 3, 5)),
            ((2, 3, 5, 6), (-3, -1), False, (6, 30)), ((64, 1, 2, 3), (-4, 16, -1, -2), False, (16, 4, 1, 2, 3)),
            ((2, 3, 5, 5), (5, 3, 0, -1), True, (5, 3, 5, 2)), ((2, 3, 5, 6), (-2, 1, 30), True, (2, 3, 1, 30))]


def reshape_fills_an_unknown_input_dimension(mx):
    """Each input dimension in turn unknown (0); the output's shape, known from its partner in
    elemwise_add, gives it back through Reshape."""
    answers = []
    for src, spec, reverse, dst in RESHAPES:
        for i in range(len(src)):
            held = tuple(0 if j == i else d for j, d in enumerate(src))
            net = mx.sym.elemwise_add(mx.sym.Variable("data").reshape(spec, reverse=reverse),
                                      mx.sym.ones(shape=dst))
            arg, out, _ = net.infer_shape(data=held)
            answers.append([list(held), list(arg[0]), list(out[0])])
    return answers


def integer_argument_gradients(mx):
    """An int32 argument bound with a gradient gets one, in int32 (Cast's gradient casts back)."""
    answers = {}
    values = np.array([[-2.7, 0.4, 3.9], [5.5, -0.2, 1.0]])
    for src, dst in (("int32", "float32"), ("float32", "int32"), ("int32", "int32")):
        x = mx.sym.Variable("x", dtype=src)
        exe = mx.sym.Cast(x, dtype=dst).simple_bind(mx.cpu(), x=(2, 3))
        exe.arg_arrays[0][:] = values
        exe.forward(is_train=True)
        exe.backward(mx.nd.array(values * 3, dtype=dst))
        g = exe.grad_arrays[0]
        answers[f"{src}->{dst}"] = [_arr(exe.outputs[0]), _arr(g), np.dtype(g.dtype).name]
    return answers


DOTS = [((4, 2, 3), (4, 5), True, False), ((2, 3), (5, 2, 3), False, True), ((3, 2, 2), (4, 2, 3), True, True),
        ((2, 3, 4), (4, 5), False, False)]


def nd_dot_transposed(mx):
    """dot of N-d operands with transpose_a/transpose_b (their 2-D views transposed), forward
    and both gradients through a bound executor."""
    answers = []
    for sa, sb, ta, tb in DOTS:
        a_np = np.linspace(-1, 1, int(np.prod(sa)), dtype="float32").reshape(sa)
        b_np = np.linspace(2, -1, int(np.prod(sb)), dtype="float32").reshape(sb)
        sym = mx.sym.dot(mx.sym.Variable("a"), mx.sym.Variable("b"), transpose_a=ta, transpose_b=tb)
        exe = sym.simple_bind(mx.cpu(), a=sa, b=sb)
        exe.arg_dict["a"][:] = a_np
        exe.arg_dict["b"][:] = b_np
        out = exe.forward(is_train=True)[0]
        head = np.cos(np.arange(out.size, dtype="float32")).reshape(out.shape)
        exe.backward(mx.nd.array(head))
        answers.append([_arr(out), _arr(exe.grad_dict["a"]), _arr(exe.grad_dict["b"])])
    return answers


def unread_head_gradient_of_any_shape(mx):
    """shape_array/size_array never read their head gradient, so its shape is not checked."""
    answers = {}
    for name in ("shape_array", "size_array"):
        x = mx.sym.var("x")
        grad = mx.nd.ones((2, 3, 4))
        exe = getattr(mx.sym, name)(x).bind(mx.cpu(), args={"x": mx.nd.ones((2, 3, 4))}, args_grad={"x": grad})
        exe.forward(is_train=True)
        exe.backward([mx.nd.ones((2, 3, 4))])
        answers[name] = [_arr(exe.outputs[0]), _arr(grad)]
    return answers


CASES = [simple_bind_ignores_non_shape_keywords, unread_head_gradient_of_any_shape, backward_without_forward, bind_without_inputs,
         reshape_fills_an_unknown_input_dimension, integer_argument_gradients, nd_dot_transposed]


def all_cases(mx) -> dict:
    return {case.__name__: case(mx) for case in CASES}


if __name__ == "__main__":
    assert sys.argv[1:] == ["mxnet"], "usage: executor_1x_leftover_cases.py mxnet"
    import mxnet
    json.dump(all_cases(mxnet), sys.stdout)
