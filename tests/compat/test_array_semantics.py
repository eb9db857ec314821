"""MXNet 1.x NDArray semantics: full reductions and single-element indexing give shape (1,),
arrays print as MXNet prints them, ctx=/dtype= are accepted where MXNet accepts them, and
NDArrays pickle. Expected values were recorded from Apache MXNet 1.9.1; the live differential
test at the end re-checks them against MXNet when its venv is installed (skips elsewhere)."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import graphc as mx
from graphc import nd, autograd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))


def _a():
    return nd.array([[1, 2], [3, 4]])


# -- shape (1,), never 0-d ------------------------------------------------------------------------

# expression -> shape, as MXNet 1.9.1 gives it
SHAPES = {
    "a.max()": (1,), "a.min()": (1,), "a.sum()": (1,), "a.mean()": (1,), "a.prod()": (1,),
    "nd.norm(a)": (1,), "a.norm()": (1,), "nd.norm(a, ord=1)": (1,), "nd.norm(v, axis=0)": (1,),
    "nd.sum(a, axis=(0, 1))": (1,), "nd.sum(a, axis=[0, 1])": (1,), "v.sum(axis=0)": (1,),
    "a.mean(axis=None)": (1,), "nd.sum_axis(a)": (1,), "nd.max_axis(a)": (1,),
    "nd.max(a, axis=None, keepdims=True)": (1, 1), "nd.sum(v, axis=0, keepdims=True)": (1,),
    "nd.sum(a, axis=0, exclude=True)": (2,), "nd.max(a, axis=1)": (2,),
    "nd.argmax(a)": (1,), "nd.argmin(v)": (1,), "nd.argmax(v, axis=0)": (1,),
    "nd.argmax(a, axis=None, keepdims=True)": (1, 1),
    "a[0, 1]": (1,), "a[-1, -1]": (1,), "a[1][0]": (1,), "v[1]": (1,), "a[0]": (2,),
    "nd.dot(v, v)": (1,), "nd.pick(v, nd.array([0]), axis=0)": (1,), "nd.squeeze(nd.ones((1, 1)))": (1,),
    "a.sum() + 1": (1,), "nd.L2Normalization(a).sum()": (1,),
}


@pytest.mark.parametrize("expr", sorted(SHAPES))
def test_shape_matches_mxnet_1x(expr):
    a, v = _a(), nd.array([1, 2, 3])
    assert eval(expr).shape == SHAPES[expr]


def test_full_reduction_values_are_right():
    a = _a()
    assert a.sum().asnumpy().tolist() == [10.0]
    assert a.max().asscalar() == 4.0
    assert nd.argmax(a).asnumpy().tolist() == [3.0]
    np.testing.assert_allclose(nd.norm(a).asnumpy(), [np.sqrt(30.0)], rtol=1e-6)
    assert a[1, 0].asnumpy().tolist() == [3.0]


# (function of x, x, value, gradient) recorded from MXNet 1.9.1
GRADIENTS = [
    (lambda x: x[1] * 3, [1., 2., 3.], [6.0], [0.0, 3.0, 0.0]),
    (lambda x: x[0, 1] * x[1, 0], [[1., 2.], [3., 4.]], [6.0], [[0.0, 3.0], [2.0, 0.0]]),
    (lambda x: nd.dot(x, x), [1., 2., 3.], [14.0], [2.0, 4.0, 6.0]),
    (lambda x: nd.pick(x, nd.array([2]), axis=0) * 2, [1., 2., 3.], [6.0], [0.0, 0.0, 2.0]),
    (lambda x: x.max() * x.sum(), [[1., 2.], [3., 4.]], [40.0], [[4.0, 4.0], [4.0, 14.0]]),
]


@pytest.mark.parametrize("case", range(len(GRADIENTS)))
def test_gradients_flow_through_shape_one_results(case):
    f, value, want_y, want_g = GRADIENTS[case]
    x = nd.array(value)
    x.attach_grad()
    with autograd.record():
        y = f(x)
    y.backward()
    assert y.shape == (1,)
    np.testing.assert_allclose(y.asnumpy(), want_y, rtol=1e-6)
    np.testing.assert_allclose(x.grad.asnumpy(), want_g, rtol=1e-6)


class _Reduce(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return (F.dot(F.sum(x, axis=1), F.max(x, axis=1)) + F.norm(x)
                + F.squeeze(F.sum(x, axis=(0, 1), keepdims=True)))


def test_hybridized_full_reductions_also_give_shape_one():
    net = _Reduce()
    net.hybridize()
    x = nd.array([[1., 2.], [3., 4.]])
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward()
    assert y.shape == (1,)
    # MXNet 1.9.1: 49.4772, and this gradient
    np.testing.assert_allclose(y.asnumpy(), [49.4772], rtol=1e-5)
    np.testing.assert_allclose(x.grad.asnumpy(), [[3.1826, 6.3651], [5.5477, 12.7303]], rtol=1e-4)


# -- printing -------------------------------------------------------------------------------------

PRINTS = {
    "nd.array([[1, 2]])": "\n[[1. 2.]]\n<NDArray 1x2 @cpu(0)>",
    "nd.array([1, 2], dtype='int32')": "\n[1 2]\n<NDArray 2 @cpu(0)>",
    "nd.array([[1, 2], [3, 4]]).sum()": "\n[10.]\n<NDArray 1 @cpu(0)>",
    "nd.zeros((2, 1, 2))": "\n[[[0. 0.]]\n\n [[0. 0.]]]\n<NDArray 2x1x2 @cpu(0)>",
    "nd.array(5)": "\n5.0\n<NDArray  @cpu(0)>",
}


@pytest.mark.parametrize("expr", sorted(PRINTS))
def test_ndarray_prints_as_mxnet_prints_it(expr):
    x = eval(expr)
    assert repr(x) == PRINTS[expr]
    assert str(x) == PRINTS[expr]


# -- ctx= and dtype= ------------------------------------------------------------------------------

CREATORS = {
    "nd.zeros((2, 3), ctx=c, dtype='float64')": ("float64", (2, 3)),
    "nd.ones(3, c, 'int32')": ("int32", (3,)),
    "nd.full((2,), 7, ctx=c, dtype='int64')": ("int64", (2,)),
    "nd.empty((2,), ctx=c, dtype='float16')": ("float16", (2,)),
    "nd.arange(0, 5, ctx=c, dtype='int32')": ("int32", (5,)),
    "nd.array([1, 2], ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.eye(3, ctx=c, dtype='int32')": ("int32", (3, 3)),
    "nd.linspace(0, 1, 5, ctx=c, dtype='float64')": ("float64", (5,)),
    "nd.ones(shape=(2,), ctx=c, dtype=np.float64)": ("float64", (2,)),
    "nd.random.uniform(0, 1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random.normal(0, 1, shape=(2,), ctx=c, dtype='float16')": ("float16", (2,)),
    "nd.random.randint(0, 5, shape=(2,), ctx=c, dtype='int64')": ("int64", (2,)),
    "nd.random.poisson(1, shape=(2,), ctx=c, dtype='float32')": ("float32", (2,)),
    "nd.random.gamma(1, 1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random.exponential(1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random.negative_binomial(1, 0.5, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random.generalized_negative_binomial(1, 0.5, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random.randn(2, 3, ctx=c, dtype='float64')": ("float64", (2, 3)),
    "nd.random_uniform(0, 1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random_normal(0, 1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "nd.random.multinomial(nd.array([[0.5, 0.5]]), shape=2, dtype='int32')": ("int32", (1, 2)),
    "mx.random.uniform(0, 1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "mx.random.normal(0, 1, shape=(2,), ctx=c, dtype='float64')": ("float64", (2,)),
    "mx.random.randint(0, 3, shape=(2,), ctx=c, dtype='int64')": ("int64", (2,)),
}


@pytest.mark.parametrize("expr", sorted(CREATORS))
def test_creation_and_sampling_take_ctx_and_dtype(expr):
    c = mx.cpu(0)
    x = eval(expr)
    assert (np.dtype(x.dtype).name, x.shape) == CREATORS[expr]
    assert x.context == c


def test_samplers_are_seeded_by_mx_random_seed():
    mx.random.seed(7)
    a = nd.random.negative_binomial(3, 0.4, shape=(50,)).asnumpy()
    mx.random.seed(7)
    b = nd.random.negative_binomial(3, 0.4, shape=(50,)).asnumpy()
    assert (a == b).all() and (a >= 0).all() and (a == np.round(a)).all()


# -- pickling -------------------------------------------------------------------------------------

def test_ndarray_pickles_values_dtype_and_context():
    x = nd.array([[1, 2], [3, 4]], dtype="int32")
    got = pickle.loads(pickle.dumps(x))
    assert type(got) is nd.NDArray and got.dtype == np.int32 and got.context == mx.cpu(0)
    assert got.asnumpy().tolist() == [[1, 2], [3, 4]]
    got[0, 0] = 9                       # a copy: the original is untouched
    assert x.asnumpy()[0, 0] == 1


def test_unpickled_array_leaves_gradient_and_history_behind():
    x = nd.ones((2,))
    x.attach_grad()
    with autograd.record():
        y = x * 2
    got = pickle.loads(pickle.dumps(y))
    assert got.grad is None and got._entry is None
    assert got.asnumpy().tolist() == [2.0, 2.0]


def test_cpu_arrays_unpickle_on_cpu0_as_in_mxnet():
    # MXNet 1.9.1: an array made on cpu(1) comes back on cpu(0)
    x = nd.array([1.0], ctx=mx.cpu(1), dtype="float16")
    got = pickle.loads(pickle.dumps(x))
    assert got.context == mx.cpu(0) and got.dtype == np.float16


def _double(x):
    return (x * 2).asnumpy().tolist()


def test_ndarrays_cross_process_boundaries():
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_double, (nd.array([1, 2]),)).get(timeout=60)
    assert got == [2.0, 4.0]


# -- live differential check against MXNet --------------------------------------------------------

_SNIPPET = r"""
import json, sys
import numpy as np
if sys.argv[1] == "mxnet":
    import mxnet as mx
else:
    import graphc as mx
nd = mx.nd
a = nd.array([[1, 2], [3, 4]]); v = nd.array([1, 2, 3])
out = {}
for e in json.loads(sys.argv[2]):
    r = eval(e)
    text = repr(r)
    out[e] = [list(r.shape), r.asnumpy().tolist(), text.splitlines()[-1], text.count("\n")]
print(json.dumps(out))
"""


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_shapes_and_printing_match_mxnet():
    exprs = sorted(SHAPES) + ["nd.array([[1.5, 2]], dtype='float64')", "nd.arange(6).reshape((2, 3)).max(axis=1)"]
    runs = {}
    for side, python in (("mxnet", MXNET_PYTHON), ("graphc", sys.executable)):
        proc = subprocess.run([python, "-c", _SNIPPET, side, json.dumps(exprs)], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"{side} side failed:\n{proc.stderr[-2000:]}"
        runs[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    for e in exprs:
        (g_shape, g_values, g_trailer, g_lines), (m_shape, m_values, m_trailer, m_lines) = \
            runs["graphc"][e], runs["mxnet"][e]
        assert (g_shape, g_trailer, g_lines) == (m_shape, m_trailer, m_lines), e
        np.testing.assert_allclose(g_values, m_values, rtol=1e-6, err_msg=e)
