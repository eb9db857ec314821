"""lp pooling (p_value 1, 2, 3) compiles: the forward in runtime/pool.py's window kernel, the
gradient as sum pooling's gradient of a scale (ops/declarations/pool.py). Results match the
numpy references (Pooling's and _pooling_grad's), gradients also finite differences."""
import numpy as np
import pytest

from graphc import autograd, nd
from graphc.gluon import nn
from graphc.ops.declarations.pool import _pool_np, _pooling_grad_np
from graphc.ops.registry import get_op
from graphc.runtime.lower import HostStep

RNG = np.random.default_rng(21)


class Pool(nn.HybridBlock):
    def __init__(self, attrs):
        super().__init__()
        self.attrs = attrs

    def hybrid_forward(self, F, x):
        return F.Pooling(x, **self.attrs)


def _attrs(**kw):
    return {k: a.default for k, a in get_op("Pooling").attrs.items()} | kw


def _run(attrs, x, w):
    net = Pool(attrs)
    net.hybridize()
    xs = nd.array(x, dtype=x.dtype)
    xs.attach_grad()
    with autograd.record():
        y = net(xs)
        (y * nd.array(w, dtype=x.dtype)).sum().backward()
    entry = net._cached_op.last
    host = [s.node.op for p in entry.train.values() for prog in p[:2] for s in prog.steps if isinstance(s, HostStep)]
    assert host == [], f"lp pooling {attrs}: host steps {host}"
    return y.asnumpy(), xs.grad.asnumpy()


CASES = [dict(kernel=(2, 2), stride=(2, 2), p_value=2),
         dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), p_value=3),
         dict(kernel=(3, 2), stride=(2, 1), p_value=1, pooling_convention="full"),
         dict(kernel=(3,), stride=(2,), pad=(1,), p_value=2, pooling_convention="same"),
         dict(global_pool=True, kernel=(1, 1), p_value=2)]


@pytest.mark.parametrize("kw", CASES)
def test_lp_pooling_forward_and_gradient_match_the_references(kw):
    attrs = _attrs(pool_type="lp", **kw)
    shape = (2, 3, 7) if len(kw["kernel"]) == 1 else (2, 3, 7, 6)
    x = RNG.uniform(0.1, 2.0, shape).astype("float64")
    x[0, 0, 0] = 0.0                      # a zero row/window where it fits
    want = _pool_np(x, **attrs)
    w = RNG.standard_normal(want.shape)
    y, dx = _run(attrs, x, w)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    np.testing.assert_allclose(dx, _pooling_grad_np(w, x, want, **attrs), rtol=1e-10, atol=1e-12)


def test_lp_pooling_gradient_against_finite_differences():
    attrs = _attrs(pool_type="lp", kernel=(2, 2), stride=(1, 1), p_value=3)
    x = RNG.uniform(0.2, 1.5, (1, 2, 4, 4))
    w = RNG.standard_normal(_pool_np(x, **attrs).shape)
    _, dx = _run(attrs, x, w)
    eps, fd = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        fd[i] = ((_pool_np(up, **attrs) - _pool_np(down, **attrs)) * w).sum() / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)


def test_lp_pooling_float32_with_negative_inputs():
    attrs = _attrs(pool_type="lp", kernel=(2, 2), stride=(2, 2), p_value=3)
    x = RNG.standard_normal((2, 2, 6, 6)).astype("float32")
    y, _ = _run(attrs, x, np.ones((2, 2, 3, 3), "float32"))
    np.testing.assert_allclose(y, _pool_np(x, **attrs), rtol=2e-5, atol=1e-6)
