"""runtime/grid_kernels.py: GridGenerator (affine and warp) and its gradient compile, and equal
their numpy references (ops/declarations/spatial.py) over shapes and dtypes; the gradient of
the compiled forward also matches finite differences (it is linear)."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep

RNG = np.random.default_rng(8)


def _compiled(op, x, attrs):
    gb = GraphBuilder(op)
    v = gb.var("x", TensorType(x.shape, str(x.dtype)))
    g = gb.build([getattr(gb.F, op)(v, **attrs)])
    prog = compile_graph(g, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == [], f"{op} {attrs} ran on the host"
    return prog, g


def _check(op, x, attrs):
    prog, g = _compiled(op, x, attrs)
    got, want = prog([x])[0], interpret(g, [x])[0]
    tol = 1e-6 if x.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"{op} {attrs} {x.dtype}{x.shape}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hw", [(1, 1), (1, 5), (4, 3), (7, 9)])
def test_affine_grid_and_its_gradient(dtype, hw):
    attrs = {"transform_type": "affine", "target_shape": hw}
    _check("GridGenerator", RNG.standard_normal((3, 6)).astype(dtype), attrs)
    _check("_grid_generator_grad", RNG.standard_normal((3, 2) + hw).astype(dtype), attrs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 2, 3, 4), (1, 2, 6, 2)])
def test_warp_grid_and_its_gradient(dtype, shape):
    attrs = {"transform_type": "warp", "target_shape": (0, 0)}
    _check("GridGenerator", RNG.standard_normal(shape).astype(dtype), attrs)
    _check("_grid_generator_grad", RNG.standard_normal(shape).astype(dtype), attrs)


def test_affine_gradient_against_finite_differences():
    attrs = {"transform_type": "affine", "target_shape": (3, 4)}
    theta = RNG.standard_normal((2, 6))
    w = RNG.standard_normal((2, 2, 3, 4))
    forward, _ = _compiled("GridGenerator", theta, attrs)
    backward, _ = _compiled("_grid_generator_grad", w, attrs)
    eps, fd = 1e-6, np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        up, down = theta.copy(), theta.copy()
        up[i] += eps
        down[i] -= eps
        fd[i] = ((forward([up])[0] - forward([down])[0]) * w).sum() / (2 * eps)
    np.testing.assert_allclose(backward([w])[0], fd, rtol=1e-7, atol=1e-9)
