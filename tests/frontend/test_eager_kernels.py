"""Eager matrix products through compiled one-op programs (graphc/eager_kernels.py): results
equal the numpy references, the hot/cold policy decides which path runs, gradients still flow."""
import numpy as np
import pytest

import graphc as mx
from graphc import eager_kernels as ek
from graphc.ndarray.ndarray import NDArray
from graphc.ops.registry import get_op


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("GRAPHC_EAGER_COMPILE", raising=False)
    # these count per-operator programs: the op-by-op backward, not one program per tape
    monkeypatch.setenv("GRAPHC_EAGER_TAPE", "0")
    ek.clear()
    yield
    ek.clear()


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _reference(op_name, arrays, attrs):
    op = get_op(op_name)
    return op.run(arrays, op.parse(attrs))[0]


# odd sizes (edge tiles), every transpose combination, >2-D inputs, each above MIN_FLOPS
CASES = [
    ("dot", [(33, 130), (130, 129)], {}),
    ("dot", [(130, 33), (130, 129)], {"transpose_a": True}),
    ("dot", [(33, 130), (129, 130)], {"transpose_b": True}),
    ("dot", [(130, 33), (129, 130)], {"transpose_a": True, "transpose_b": True}),
    ("dot", [(6, 9, 80), (80, 131)], {}),
    ("batch_dot", [(3, 40, 70), (3, 70, 65)], {}),
    ("batch_dot", [(3, 70, 40), (3, 65, 70)], {"transpose_a": True, "transpose_b": True}),
    ("FullyConnected", [(21, 3, 5, 9), (200, 135), (200,)], {"num_hidden": 200}),
    ("FullyConnected", [(5, 7, 135), (200, 135), (200,)], {"num_hidden": 200, "flatten": False}),
    ("FullyConnected", [(37, 150), (111, 150)], {"num_hidden": 111, "no_bias": True}),
    ("Convolution", [(2, 8, 17, 19), (16, 8, 3, 3), (16,)],
     {"kernel": (3, 3), "pad": (1, 1), "num_filter": 16}),
    ("Convolution", [(3, 6, 41, 39), (10, 3, 5, 5)],
     {"kernel": (5, 5), "stride": (2, 2), "num_filter": 10, "num_group": 2, "no_bias": True}),
    ("Convolution", [(2, 4, 9, 9, 9), (8, 4, 3, 3, 3), (8,)], {"kernel": (3, 3, 3), "num_filter": 8}),
]


@pytest.mark.parametrize("op_name,shapes,attrs", CASES, ids=lambda c: str(c))
def test_compiled_equals_numpy_reference(monkeypatch, op_name, shapes, attrs):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    rng = np.random.default_rng(len(shapes) + sum(map(len, shapes)))
    arrays = [_rand(rng, *s) for s in shapes]
    want = _reference(op_name, arrays, attrs)
    fn = getattr(mx.nd, op_name)
    for _ in range(2):        # the compiling call and a call of the cached program
        got = fn(*[mx.nd.array(a) for a in arrays], **attrs).asnumpy()
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    st = ek.stats()
    assert st["calls"] == 2 and st["compiled"] == 1 and st["failed"] == 0, st


def test_signature_compiles_only_once_hot():
    rng = np.random.default_rng(0)
    a, b = mx.nd.array(_rand(rng, 64, 200)), mx.nd.array(_rand(rng, 200, 100))
    for i in range(1, ek.HOT_AFTER):
        mx.nd.dot(a, b).wait_to_read()
        assert ek.stats()["calls"] == 0 and ek.stats()["programs"] == 0, f"compiled after {i} uses"
    mx.nd.dot(a, b).wait_to_read()
    assert ek.stats() == {"calls": 1, "compiled": 1, "failed": 0, "programs": 1}
    # another shape is another signature, cold again
    mx.nd.dot(a, mx.nd.array(_rand(rng, 200, 101))).wait_to_read()
    assert ek.stats()["programs"] == 1 and ek.stats()["calls"] == 1


@pytest.mark.parametrize("case", ["float64", "small", "disabled"])
def test_stays_on_numpy(monkeypatch, case):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "0" if case == "disabled" else "1")
    rng = np.random.default_rng(1)
    m, k, n = (4, 8, 8) if case == "small" else (64, 200, 100)
    dtype = "float64" if case == "float64" else "float32"
    a, b = _rand(rng, m, k), _rand(rng, k, n)
    for _ in range(3):
        got = mx.nd.dot(mx.nd.array(a, dtype=dtype), mx.nd.array(b, dtype=dtype)).asnumpy()
    np.testing.assert_allclose(got, a.astype(dtype) @ b.astype(dtype), rtol=1e-5, atol=1e-5)
    assert ek.stats()["calls"] == 0 and ek.stats()["programs"] == 0


def test_non_contiguous_input(monkeypatch):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    rng = np.random.default_rng(2)
    base = _rand(rng, 200, 64)
    view = base.T                     # (64, 200), Fortran order: the program needs C order
    b = _rand(rng, 200, 100)
    got = mx.nd.dot(NDArray(view), mx.nd.array(b)).asnumpy()
    np.testing.assert_allclose(got, view @ b, rtol=1e-4, atol=1e-4)
    assert ek.stats()["calls"] == 1


def test_gradients_through_compiled_products(monkeypatch):
    """Dense forward and its backward (two dots per layer) all compiled; gradients against
    the closed form in float64."""
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    rng = np.random.default_rng(3)
    xn, wn, bn = _rand(rng, 48, 150), _rand(rng, 120, 150), _rand(rng, 120)
    gn = _rand(rng, 48, 120)
    x, w, b = mx.nd.array(xn), mx.nd.array(wn), mx.nd.array(bn)
    for v in (x, w, b):
        v.attach_grad()
    with mx.autograd.record():
        y = mx.nd.FullyConnected(x, w, b, num_hidden=120)
    y.backward(mx.nd.array(gn))
    x64, w64, g64 = xn.astype(np.float64), wn.astype(np.float64), gn.astype(np.float64)
    np.testing.assert_allclose(y.asnumpy(), x64 @ w64.T + bn, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x.grad.asnumpy(), g64 @ w64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.grad.asnumpy(), g64.T @ x64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.grad.asnumpy(), g64.sum(0), rtol=1e-4, atol=1e-4)
    assert ek.stats()["calls"] == 3 and ek.stats()["programs"] == 3


def test_compile_failure_falls_back(monkeypatch):
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")

    def broken(op, in_types, attrs):
        raise RuntimeError("no backend today")
    monkeypatch.setattr(ek, "_program_for", broken)
    rng = np.random.default_rng(4)
    a, b = _rand(rng, 64, 200), _rand(rng, 200, 100)
    with pytest.warns(RuntimeWarning, match=r"eager dot .*no backend today.*numpy reference"):
        got = mx.nd.dot(mx.nd.array(a), mx.nd.array(b)).asnumpy()
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)
    mx.nd.dot(mx.nd.array(a), mx.nd.array(b)).wait_to_read()   # remembered: no second warning
    assert ek.stats() == {"calls": 0, "compiled": 0, "failed": 1, "programs": 0}


def _conv_step(x, w, b, g):
    for v in (x, w, b):
        v.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Convolution(x, w, b, kernel=(3, 3), stride=(2, 1), pad=(1, 0), num_filter=w.shape[0])
    y.backward(g)
    return [v.asnumpy() for v in (y, x.grad, w.grad, b.grad)]


def test_conv_gradients_match_numpy_gradient_ops(monkeypatch):
    """Convolution's backward (_conv_data_grad, _conv_weight_grad) compiled, against the same
    step with every operator on its numpy reference."""
    rng = np.random.default_rng(5)
    arrays = [_rand(rng, 4, 12, 21, 20), _rand(rng, 14, 12, 3, 3), _rand(rng, 14), _rand(rng, 4, 14, 11, 18)]
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "0")
    want = _conv_step(*[mx.nd.array(a) for a in arrays])
    assert ek.stats()["calls"] == 0
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    got = _conv_step(*[mx.nd.array(a) for a in arrays])
    for name, a, b in zip(("out", "data grad", "weight grad", "bias grad"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3, err_msg=name)
    assert ek.stats()["calls"] == 3 and ek.stats()["failed"] == 0


def test_backward_skips_gradients_nobody_reads(monkeypatch):
    """The input batch has no gradient buffer: FullyConnected's data-gradient product is never
    run (one compiled forward and one weight-gradient product), while grad() with the batch as
    a variable still gets it."""
    monkeypatch.setenv("GRAPHC_EAGER_COMPILE", "1")
    rng = np.random.default_rng(6)
    xn, wn, gn = _rand(rng, 48, 150), _rand(rng, 120, 150), _rand(rng, 48, 120)
    x, w = mx.nd.array(xn), mx.nd.array(wn)
    w.attach_grad()
    with mx.autograd.record():
        y = mx.nd.FullyConnected(x, w, num_hidden=120, no_bias=True)
    y.backward(mx.nd.array(gn))
    np.testing.assert_allclose(w.grad.asnumpy(), gn.astype(np.float64).T @ xn, rtol=1e-4, atol=1e-4)
    assert x.grad is None
    assert ek.stats()["calls"] == 2, ek.stats()
    with mx.autograd.record():
        y = mx.nd.dot(x, w, transpose_b=True)
    gx, = mx.autograd.grad(y, [x], head_grads=mx.nd.array(gn))
    np.testing.assert_allclose(gx.asnumpy(), gn.astype(np.float64) @ wn, rtol=1e-4, atol=1e-4)
