"""MXNet's module paths import under graphc (`import graphc.X` wherever users `import mxnet.X`),
hold the names MXNet code takes from them, and mxnet.test_utils' helpers work on graphc.
Expected values were recorded from Apache MXNet 1.9.1."""
import importlib
import os
import pickle

import numpy as np
import pytest

import graphc as mx
from graphc import nd, autograd


@pytest.mark.parametrize("module, names", [
    ("base", ["MXNetError", "py_str", "integer_types", "numeric_types", "string_types",
              "NotImplementedForSymbol", "NotSupportedForSparseNDArray", "mx_real_t", "data_dir",
              "classproperty", "with_metaclass"]),
    ("util", ["getenv", "setenv", "is_np_array", "is_np_shape", "set_np", "reset_np", "use_np",
              "set_module", "get_gpu_count"]),
    ("context", ["Context", "cpu", "gpu", "cpu_pinned", "current_context", "num_gpus", "gpu_memory_info"]),
    ("optimizer", ["Optimizer", "SGD", "NAG", "Adam", "RMSProp", "AdaGrad", "AdaDelta", "Adamax",
                   "Nadam", "Signum", "Updater", "get_updater", "create", "register"]),
    ("metric", ["EvalMetric", "CompositeEvalMetric", "Accuracy", "TopKAccuracy", "F1", "MAE", "MSE",
                "RMSE", "CrossEntropy", "Perplexity", "PearsonCorrelation", "Loss", "CustomMetric",
                "create", "check_label_shapes"]),
    ("initializer", ["Initializer", "InitDesc", "Zero", "One", "Constant", "Uniform", "Normal",
                     "Orthogonal", "Xavier", "MSRAPrelu", "Bilinear", "LSTMBias", "Mixed", "Load",
                     "register", "create"]),
    ("lr_scheduler", ["LRScheduler", "FactorScheduler", "MultiFactorScheduler", "PolyScheduler",
                      "CosineScheduler"]),
    ("ndarray.ndarray", ["NDArray", "array"]),
    ("symbol.symbol", ["Symbol", "var", "Group", "load", "load_json"]),
    ("operator", ["CustomOp", "CustomOpProp", "register", "get_all_registered_operators"]),
    ("test_utils", ["assert_almost_equal", "almost_equal", "same", "rand_ndarray", "rand_shape_nd",
                    "rand_shape_2d", "rand_shape_3d", "default_context", "set_default_context",
                    "check_numeric_gradient", "check_symbolic_forward", "check_symbolic_backward",
                    "assert_exception", "environment", "default_dtype", "get_atol", "get_rtol",
                    "simple_forward", "random_arrays", "np_reduce", "assert_almost_equal_ignore_nan"]),
])
def test_mxnet_module_path_imports_with_its_names(module, names):
    mod = importlib.import_module(f"graphc.{module}")
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"graphc.{module} lacks {missing}"
    top, _, _ = module.partition(".")
    assert getattr(mx, top) is importlib.import_module(f"graphc.{top}")


def test_top_level_aliases_are_the_real_modules():
    assert mx.optimizer.SGD is importlib.import_module("graphc.optimizer").SGD
    assert mx.init is mx.initializer
    assert mx.symbol.symbol.Symbol is mx.sym.Symbol
    assert mx.ndarray.ndarray.NDArray is mx.nd.NDArray
    assert isinstance(mx.optimizer.create("sgd", learning_rate=0.5), mx.optimizer.SGD)
    assert isinstance(mx.metric.create("acc"), mx.metric.Accuracy)
    assert isinstance(mx.lr_scheduler.FactorScheduler(step=2), mx.lr_scheduler.LRScheduler)


def test_base_errors_and_type_tuples():
    assert mx.base.MXNetError is mx.MXNetError
    with pytest.raises(mx.base.MXNetError):
        nd.dot(nd.ones((2, 3)), nd.ones((2, 3)))
    assert isinstance(np.int64(3), mx.base.integer_types) and isinstance(3, mx.base.integer_types)
    assert isinstance(np.float32(1), mx.base.numeric_types) and isinstance("s", mx.base.string_types)
    assert mx.base.py_str(b"abc") == "abc"
    err = mx.base.NotImplementedForSymbol(len, "foo", 1)
    assert isinstance(err, mx.base.MXNetError)
    # MXNet 1.9.1's message, verbatim
    assert str(err) == ('Function len (namely operator "foo") with arguments (<class \'int\'>) is not '
                        'implemented for Symbol and only available in NDArray.')


def test_util_environment_and_numpy_switches():
    mx.util.setenv("GRAPHC_COMPAT_PROBE", "3")
    assert mx.util.getenv("GRAPHC_COMPAT_PROBE") == "3"
    mx.util.setenv("GRAPHC_COMPAT_PROBE", None)
    assert mx.util.getenv("GRAPHC_COMPAT_PROBE") is None
    assert mx.util.is_np_array() is False and mx.util.is_np_shape() is False
    mx.util.reset_np()
    with pytest.raises(mx.GraphcError, match="numpy semantics"):
        mx.util.set_np()


def test_context_default_ctx_is_settable_like_mxnet():
    assert mx.context.Context.default_ctx == mx.cpu(0)
    try:
        mx.context.Context.default_ctx = mx.cpu(1)
        assert mx.current_context() == mx.cpu(1)
        assert mx.test_utils.default_context() == mx.cpu(1)
    finally:
        mx.context.Context.default_ctx = mx.cpu(0)
    assert mx.current_context() == mx.cpu(0)


def test_set_default_context_moves_new_arrays():
    try:
        mx.test_utils.set_default_context(mx.cpu(1))
        assert nd.zeros((1,)).context == mx.cpu(1)
    finally:
        mx.test_utils.set_default_context(mx.cpu(0))


def test_autograd_star_import_exposes_mxnet_api():
    ns = {}
    exec("from graphc.autograd import *", ns)
    want = {"record", "pause", "train_mode", "predict_mode", "is_recording", "is_training",
            "set_recording", "set_training", "backward", "grad", "mark_variables", "Function"}
    got = {k for k in ns if not k.startswith("__")}
    assert want <= got
    assert not got & {"np", "threading", "TapeNode", "record_op"}, "module internals leak"


# -- mx.operator: custom operators ----------------------------------------------------------------

class _Scaled(mx.operator.CustomOp):
    def __init__(self, k):
        self.k = k

    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], 1 / (1 + nd.exp(-in_data[0] * self.k)))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        y = out_data[0]
        self.assign(in_grad[0], req[0], out_grad[0] * y * (1 - y) * self.k)


@mx.operator.register("compat_scaled_sigmoid")
class _ScaledProp(mx.operator.CustomOpProp):
    def __init__(self, k=1):
        super().__init__(need_top_grad=True)
        self.k = float(k)

    def create_operator(self, ctx, shapes, dtypes):
        return _Scaled(self.k)


def test_custom_op_forward_and_backward_match_mxnet():
    x = nd.array([[0., 1., -2.]])
    x.attach_grad()
    with autograd.record():
        y = nd.Custom(x, op_type="compat_scaled_sigmoid", k=2)
        z = (y * y).sum()
    z.backward()
    # MXNet 1.9.1
    np.testing.assert_allclose(y.asnumpy(), [[0.5, 0.8808, 0.01799]], atol=1e-4)
    np.testing.assert_allclose(x.grad.asnumpy(), [[0.5, 0.36991, 0.00127]], atol=1e-4)


def test_unknown_custom_op_is_named():
    with pytest.raises(mx.GraphcError, match="no custom operator registered as 'nope'"):
        nd.Custom(nd.ones(1), op_type="nope")


def test_registered_operator_listing():
    names = mx.operator.get_all_registered_operators()
    assert "FullyConnected" in names and "sum" in names


# -- mx.test_utils --------------------------------------------------------------------------------

tu = mx.test_utils


def _fc_tanh():
    x, w = mx.sym.var("x"), mx.sym.var("w")
    return mx.sym.tanh(mx.sym.FullyConnected(x, w, no_bias=True, num_hidden=3))


def _point():
    rng = np.random.RandomState(0)
    return rng.randn(2, 4).astype("f"), (rng.randn(3, 4) * 0.3).astype("f")


def test_check_symbolic_forward_and_backward_pass_on_right_answers():
    sym, (X, W) = _fc_tanh(), _point()
    Y = np.tanh(X @ W.T)
    got = tu.check_symbolic_forward(sym, [X, W], [Y])
    assert got[0].shape == (2, 3)
    G = np.random.RandomState(1).randn(2, 3).astype("f")
    dY = G * (1 - Y ** 2)
    grads = tu.check_symbolic_backward(sym, {"x": X, "w": W}, [G], {"x": dY @ W, "w": dY.T @ X})
    assert sorted(grads) == ["w", "x"]


def test_check_symbolic_forward_and_backward_catch_wrong_answers():
    sym, (X, W) = _fc_tanh(), _point()
    Y = np.tanh(X @ W.T)
    with pytest.raises(AssertionError, match="exceeds tolerance"):
        tu.check_symbolic_forward(sym, [X, W], [Y + 0.1])
    G = np.ones((2, 3), "f")
    with pytest.raises(AssertionError, match="BACKWARD_w"):
        tu.check_symbolic_backward(sym, [X, W], [G], {"w": np.zeros((3, 4), "f")})


def test_check_numeric_gradient_accepts_true_and_rejects_false_gradients():
    sym, (X, W) = _fc_tanh(), _point()
    tu.check_numeric_gradient(sym, [X, W], numeric_eps=1e-3, rtol=1e-2, atol=1e-3)
    # a symbol whose recorded gradient is wrong: BlockGrad hides x from backward
    x = mx.sym.var("x")
    lying = x * x + mx.sym.BlockGrad(x * 3)
    with pytest.raises(AssertionError, match="NUMERICAL_x"):
        tu.check_numeric_gradient(lying, [np.array([0.5, -1.0], "f")], numeric_eps=1e-3, rtol=1e-2)


def test_assert_almost_equal_uses_mxnet_default_tolerances():
    tu.assert_almost_equal(nd.array([1, 2]), np.array([1, 2.0001]))      # float32: rtol 1e-4, atol 1e-3
    with pytest.raises(AssertionError, match=r"rtol=1\.000000e-05"):
        tu.assert_almost_equal(np.array([1.0]), np.array([1.1]))          # float64: rtol 1e-5
    assert tu.almost_equal(np.array([1., 2.]), np.array([1., 2.00001]))
    assert not tu.almost_equal(np.array([1., 2.]), np.array([1., 2.1]))
    assert (tu.get_rtol(), tu.get_atol()) == (1e-5, 1e-20)                 # MXNet 1.9.1's float64 defaults
    tu.assert_almost_equal_ignore_nan(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))


def test_same_and_assert_exception():
    assert tu.same(np.array([1, 2]), np.array([1, 2])) and not tu.same(np.array([1]), np.array([2]))
    tu.assert_exception(lambda: 1 / 0, ZeroDivisionError)
    with pytest.raises(AssertionError):
        tu.assert_exception(lambda: None, ZeroDivisionError)


def test_random_shapes_and_arrays():
    for _ in range(20):
        shape = tu.rand_shape_nd(3, dim=4)
        assert len(shape) == 3 and all(1 <= d <= 4 for d in shape)
    assert all(1 <= d <= 5 for d in tu.rand_shape_2d(5, 5))
    arr = tu.rand_ndarray((2, 3), dtype="float64")
    assert arr.shape == (2, 3) and arr.dtype == np.float64 and arr.context == tu.default_context()
    assert tu.rand_ndarray((2, 3), stype="csr").stype == "csr"
    with pytest.raises(mx.GraphcError, match="storage type must be one of"):
        tu.rand_ndarray((2, 3), stype="coo")


def test_environment_sets_and_restores():
    os.environ.pop("GRAPHC_COMPAT_ENV", None)
    with tu.environment("GRAPHC_COMPAT_ENV", "1"):
        assert os.environ["GRAPHC_COMPAT_ENV"] == "1"
        with tu.environment({"GRAPHC_COMPAT_ENV": None}):
            assert "GRAPHC_COMPAT_ENV" not in os.environ
        assert os.environ["GRAPHC_COMPAT_ENV"] == "1"
    assert "GRAPHC_COMPAT_ENV" not in os.environ


def test_np_reduce_and_simple_forward():
    data = np.arange(24.0).reshape(2, 3, 4)
    assert tu.np_reduce(data, (0, 2), True, np.sum).shape == (1, 3, 1)
    np.testing.assert_allclose(tu.np_reduce(data, 1, False, np.max), data.max(1))
    sym, (X, W) = _fc_tanh(), _point()
    np.testing.assert_allclose(tu.simple_forward(sym, x=X, w=W), np.tanh(X @ W.T), rtol=1e-5)


def test_optimizer_state_pickles_with_ndarrays():
    # Updater states hold NDArrays; MXNet pickles them (Trainer.save_states)
    opt = mx.optimizer.SGD(learning_rate=0.1, momentum=0.9)
    state = opt.create_state(0, nd.ones((2,)))
    got = pickle.loads(pickle.dumps(state))
    assert np.asarray(got.asnumpy() if hasattr(got, "asnumpy") else got).shape == (2,)
