"""Behaviours MXNet 1.9.1's own unit tests (tests/python/unittest, run against graphc through an
`import mxnet` shim) rely on: the rest of mxnet.test_utils, Executors bound without gradient
arrays or read before forward, gluon losses applied to free symbols, NDArrayIter with a label
table longer than the data. Each test pins the MXNet behaviour (checked against MXNet 1.9.1)
with numpy references; none is copied from MXNet's suite."""
import os

import numpy as np
import pytest

import graphc as mx
from graphc import gluon, sym
import graphc.test_utils as tu
from graphc.executor import UnknownParameterError
from graphc.ops.errors import GraphcError


# -- mxnet.test_utils ------------------------------------------------------------------------------

def test_star_import_gives_the_names_mxnet_tests_use():
    scope = {}
    exec("from graphc.test_utils import *", scope)
    for name in ("mx", "np", "rnd", "npt", "discard_stderr", "rand_sparse_ndarray", "check_consistency",
                 "compare_optimizer", "random_sample", "set_env_var", "same_array", "retry",
                 "assert_almost_equal_with_err", "DummyIter", "Symbol"):
        assert name in scope, name
    assert scope["mx"] is mx


@pytest.mark.parametrize("stype", ["row_sparse", "csr"])
def test_rand_sparse_ndarray_parts_rebuild_the_array(stype):
    np.random.seed(3)
    arr, parts = tu.rand_sparse_ndarray((6, 5), stype, density=0.4)
    assert arr.stype == stype and arr.shape == (6, 5)
    dense = arr.asnumpy()
    rebuilt = np.zeros((6, 5), np.float32)
    if stype == "row_sparse":
        data, rows = parts
        rebuilt[rows] = data
        assert (dense[np.setdiff1d(np.arange(6), rows)] == 0).all()
    else:
        data, cols, indptr = parts
        for r in range(6):
            rebuilt[r, cols[indptr[r]:indptr[r + 1]]] = data[indptr[r]:indptr[r + 1]]
    np.testing.assert_array_equal(rebuilt, dense)
    assert tu.rand_ndarray((4, 4), stype, density=1.0).stype == stype


def test_rand_sparse_ndarray_refuses_unknown_storage_and_3d_csr():
    with pytest.raises(GraphcError, match="storage type must be one of"):
        tu.rand_sparse_ndarray((2, 2), "coo")
    with pytest.raises(GraphcError, match="csr arrays are 2-D"):
        tu.rand_sparse_ndarray((2, 2, 2), "csr")


def test_check_consistency_compares_dtypes_and_catches_a_wrong_symbol():
    x = sym.var("x")
    good = sym.tanh(x) * 2
    specs = [{"ctx": mx.cpu(0), "x": (3, 4), "type_dict": {"x": np.float32}},
             {"ctx": mx.cpu(0), "x": (3, 4), "type_dict": {"x": np.float64}}]
    outs = tu.check_consistency(good, specs)
    assert len(outs) == 2 and outs[0][0].dtype == np.float32 and outs[1][0].dtype == np.float64
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-3, atol=1e-3)
    with pytest.raises(AssertionError, match="ctx_list"):
        tu.check_consistency([good, sym.tanh(x) * 2.5], specs)


def test_compare_optimizer_passes_for_equal_and_fails_for_different_updates():
    np.random.seed(0)
    tu.compare_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9),
                         mx.optimizer.SGD(learning_rate=0.1, momentum=0.9), (4, 3), np.float32)
    with pytest.raises(AssertionError):
        tu.compare_optimizer(mx.optimizer.SGD(learning_rate=0.1), mx.optimizer.SGD(learning_rate=0.5),
                             (4, 3), np.float32, compare_states=False)


def test_discard_stderr_silences_the_file_descriptor(capfd):
    with tu.discard_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_set_env_var_returns_what_to_restore():
    os.environ.pop("GRAPHC_UT_VAR", None)
    assert tu.set_env_var("GRAPHC_UT_VAR", "1", "unset") == "unset"
    assert tu.set_env_var("GRAPHC_UT_VAR", "2") == "1"
    assert os.environ.pop("GRAPHC_UT_VAR") == "2"


def test_same_array_tells_shared_storage_from_a_copy():
    a = mx.nd.ones((2, 3))
    assert tu.same_array(a, a)
    assert not tu.same_array(a, a.copy())
    np.testing.assert_array_equal(a.asnumpy(), np.ones((2, 3)))


def test_collapse_sum_like_and_random_sample():
    a = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(tu.collapse_sum_like(a, (3, 1)), a.sum(axis=0).sum(axis=1, keepdims=True))
    picked = tu.random_sample(range(10), 4)
    assert len(set(picked)) == 4 and all(0 <= p < 10 for p in picked)


# -- Executor ----------------------------------------------------------------------------------

def _product():
    return sym.var("a") * sym.var("b")


def test_bind_without_gradient_arrays_runs_and_backward_is_a_no_op():
    a, b = mx.nd.array([1.0, 2.0]), mx.nd.array([3.0, 4.0])
    ex = _product().bind(mx.cpu(), args=[a, b])
    ex.forward(is_train=True)
    np.testing.assert_array_equal(ex.outputs[0].asnumpy(), [3.0, 8.0])
    ex.backward([mx.nd.ones((2,))])
    assert ex.grad_dict == {}


def test_outputs_read_before_forward_are_the_arrays_forward_fills():
    ex = _product().bind(mx.cpu(), args=[mx.nd.array([1.0, 2.0]), mx.nd.array([5.0, 6.0])])
    early = ex.outputs[0]
    np.testing.assert_array_equal(early.asnumpy(), [0.0, 0.0])
    ex.forward()
    np.testing.assert_array_equal(early.asnumpy(), [5.0, 12.0])
    assert ex.outputs[0] is early


def test_backward_after_an_inference_forward_differentiates_it():
    a, b = mx.nd.array([1.0, 2.0]), mx.nd.array([3.0, 4.0])
    ga, gb = mx.nd.zeros((2,)), mx.nd.zeros((2,))
    ex = _product().bind(mx.cpu(), args=[a, b], args_grad=[ga, gb])
    ex.forward(is_train=False)
    ex.backward([mx.nd.array([1.0, 10.0])])
    np.testing.assert_array_equal(ga.asnumpy(), [3.0, 40.0])
    np.testing.assert_array_equal(gb.asnumpy(), [1.0, 20.0])
    # no forward at all: MXNet differentiates the bound arrays (test_operator's test_repeat)
    _product().bind(mx.cpu(), args=[a, b], args_grad=[ga, gb]).backward([mx.nd.array([1.0, 10.0])])
    np.testing.assert_array_equal(ga.asnumpy(), [3.0, 40.0])
    np.testing.assert_array_equal(gb.asnumpy(), [1.0, 20.0])


def test_copy_params_from_an_unknown_name_is_a_value_error():
    ex = _product().bind(mx.cpu(), args=[mx.nd.ones((2,)), mx.nd.ones((2,))])
    with pytest.raises(ValueError, match="'c' is not in the symbol"):
        ex.copy_params_from({"c": mx.nd.ones((2,))})
    assert issubclass(UnknownParameterError, GraphcError)
    ex.copy_params_from({"a": mx.nd.array([7.0, 8.0]), "c": mx.nd.ones((2,))}, allow_extra_params=True)
    np.testing.assert_array_equal(ex.arg_dict["a"].asnumpy(), [7.0, 8.0])


# -- gluon losses on free symbols ------------------------------------------------------------------

@pytest.mark.parametrize("loss, reference", [
    (gluon.loss.L2Loss(), lambda p, l: 0.5 * ((p - l.reshape(p.shape)) ** 2).mean(axis=1)),
    (gluon.loss.L1Loss(), lambda p, l: np.abs(p - l.reshape(p.shape)).mean(axis=1)),
])
def test_loss_of_unshaped_symbols_reshapes_the_label_in_the_graph(loss, reference):
    out = loss(sym.var("pred"), sym.var("label"))
    pred = np.array([[0.5], [2.0], [-1.0]], np.float32)
    label = np.array([1.0, 1.0, 1.0], np.float32)
    ex = out.bind(mx.cpu(), args={"pred": mx.nd.array(pred), "label": mx.nd.array(label)})
    np.testing.assert_allclose(ex.forward()[0].asnumpy(), reference(pred, label), rtol=1e-6)


# -- NDArrayIter -----------------------------------------------------------------------------------

def test_ndarray_iter_reads_a_longer_label_up_to_the_data_count():
    data = np.arange(10.0).reshape(5, 2)
    it = mx.io.NDArrayIter(data, np.arange(8.0), batch_size=5)
    batch = next(iter(it))
    np.testing.assert_array_equal(batch.label[0].asnumpy(), np.arange(5.0))
    with pytest.raises(ValueError, match="has 3 examples"):
        mx.io.NDArrayIter(data, np.arange(3.0), batch_size=5)


def test_mxnets_storage_type_ids_are_importable_from_the_ndarray_module():
    from graphc.ndarray.ndarray import _STORAGE_TYPE_ID_TO_STR, _STORAGE_TYPE_STR_TO_ID
    assert _STORAGE_TYPE_STR_TO_ID == {"undefined": -1, "default": 0, "row_sparse": 1, "csr": 2}
    assert all(_STORAGE_TYPE_ID_TO_STR[i] == s for s, i in _STORAGE_TYPE_STR_TO_ID.items())


def test_asscalar_gives_a_numpy_scalar_of_the_arrays_dtype_as_mxnet():
    import numpy as np
    from graphc import nd
    x = nd.array([3.5]).asscalar()
    assert type(x) is np.float32 and x == np.float32(3.5)
    assert type(nd.array([3], dtype="int32").asscalar()) is np.int32
    assert type(nd.array([3.5]).item()) is float
