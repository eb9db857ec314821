"""mx.mod.PythonModule / PythonLossModule against MXNet 1.9.1, and NumpyOp / PReLU in a Module
(legacy_module_scenarios.py, recorded answers)."""
import numpy as np
import pytest

import graphc as mx
from legacy_module_check import check, check_reference, needs_mxnet

SCENARIOS = ["python_loss_module", "numpy_op_identity", "prelu_module_params"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_matches_mxnet(name):
    check(name)


def test_loss_module_refuses_out_grads_and_needs_grad_func():
    loss = mx.mod.PythonLossModule()
    loss.bind([("data", (2, 3))], [("softmax_label", (2,))])
    loss.forward(mx.io.DataBatch([mx.nd.ones((2, 3))], [mx.nd.zeros((2,))]), is_train=True)
    with pytest.raises(AssertionError, match="out_grads should be None"):
        loss.backward(out_grads=[mx.nd.ones((2, 3))])
    with pytest.raises(NotImplementedError, match="grad_func"):
        loss.backward()


def test_python_module_checks_names_at_bind():
    with pytest.raises(AssertionError, match="data_names"):
        mx.mod.PythonLossModule().bind([("x", (2, 3))], [("softmax_label", (2,))])


class _Softmax(mx.operator.NumpyOp):
    """A loss written as a NumpyOp (MXNet's old numpy-ops example): its label's shape comes
    from infer_shape; backward ignores the output gradient."""

    def __init__(self):
        super().__init__(False)

    def list_arguments(self):
        return ["data", "label"]

    def infer_shape(self, in_shape):
        return [in_shape[0], (in_shape[0][0],)], [in_shape[0]]

    def forward(self, in_data, out_data):
        x = in_data[0]
        y = np.exp(x - x.max(axis=1, keepdims=True))
        out_data[0][:] = y / y.sum(axis=1, keepdims=True)

    def backward(self, out_grad, in_data, out_data, in_grad):
        label = in_data[1].astype(int)
        in_grad[0][:] = out_data[0]
        in_grad[0][np.arange(label.shape[0]), label] -= 1.0


class _Square(mx.operator.NDArrayOp):
    def forward(self, in_data, out_data):
        out_data[0][:] = in_data[0] * in_data[0]

    def backward(self, out_grad, in_data, out_data, in_grad):
        in_grad[0][:] = 2 * in_data[0] * out_grad[0]


def test_numpy_op_loss_infers_label_shape_and_differentiates():
    with pytest.warns(DeprecationWarning):
        op = _Softmax()
    sym = op(mx.sym.var("data"), mx.sym.var("label"), name="sm")
    assert sym.list_outputs() == ["sm_output"]
    assert sym.infer_shape(data=(2, 3))[0] == [(2, 3), (2,)]
    x = np.array([[1., 2., 3.], [0., 0., 1.]], np.float32)
    grad = mx.nd.zeros((2, 3))
    exe = sym.bind(mx.cpu(), args={"data": mx.nd.array(x), "label": mx.nd.array([0, 2])}, args_grad={"data": grad},
                   grad_req={"data": "write", "label": "null"})
    exe.forward(is_train=True)
    exe.backward()
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), p, rtol=1e-6)
    p[[0, 1], [0, 2]] -= 1
    np.testing.assert_allclose(grad.asnumpy(), p, rtol=1e-6, atol=1e-7)


def test_ndarray_op_gradient_against_finite_differences():
    with pytest.warns(DeprecationWarning):
        sym = _Square()(mx.sym.var("a"))
    a = np.array([1.5, -2., 0.25], np.float32)
    grad = mx.nd.zeros((3,))
    exe = sym.bind(mx.cpu(), args={"a": mx.nd.array(a)}, args_grad={"a": grad})
    exe.forward(is_train=True)
    head = np.array([1., 2., 3.], np.float32)
    exe.backward(mx.nd.array(head))
    eps = 1e-3
    numeric = ((a + eps) ** 2 - (a - eps) ** 2) / (2 * eps) * head
    np.testing.assert_allclose(grad.asnumpy(), numeric, rtol=1e-3)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), a * a)


@needs_mxnet
@pytest.mark.parametrize("name", SCENARIOS)
def test_reference_is_what_mxnet_answers(name, tmp_path):
    check_reference(name, tmp_path)


def test_get_operator_arguments_lists_inputs_then_attributes_as_mxnet():
    # MXNet 1.9.1's answer for FullyConnected, recorded
    assert tuple(mx.operator.get_operator_arguments("FullyConnected")) == (
        6, ["data", "weight", "bias", "num_hidden", "no_bias", "flatten"],
        ["NDArray-or-Symbol", "NDArray-or-Symbol", "NDArray-or-Symbol", "int, required",
         "boolean, optional, default=0", "boolean, optional, default=1"])
    concat = mx.operator.get_operator_arguments("Concat")
    assert concat.names[:2] == ["data", "num_args"] and concat.types[0] == "NDArray-or-Symbol[]"


def test_custom_op_label_shape_comes_from_its_infer_shape():
    """A CustomOp loss bound by Module with only the data's shape: the Prop's infer_shape gives
    the label's (as MXNet's Custom does); unknown shapes reach infer_shape as []."""
    seen = []

    @mx.operator.register("h3_label_from_data")
    class _Prop(mx.operator.CustomOpProp):
        def __init__(self):
            super().__init__(need_top_grad=False)

        def list_arguments(self):
            return ["data", "label"]

        def infer_shape(self, in_shape):
            seen.append([list(s) for s in in_shape])
            return [in_shape[0], [in_shape[0][0]]], [in_shape[0]], []

        def create_operator(self, ctx, shapes, dtypes):
            class _Op(mx.operator.CustomOp):
                def forward(self, is_train, req, in_data, out_data, aux):
                    self.assign(out_data[0], req[0], in_data[0] * 2)

                def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
                    self.assign(in_grad[0], req[0], in_data[0] * 0 + 2)
            return _Op()

    sym = mx.sym.Custom(mx.sym.var("data"), mx.sym.var("label"), op_type="h3_label_from_data")
    assert sym.infer_shape(data=(4, 3))[0] == [(4, 3), (4,)]
    assert [[4, 3], []] in seen
