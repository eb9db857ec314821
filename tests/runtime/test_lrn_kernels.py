"""runtime/lrn_kernels.py: LRN and its gradient compile and equal the numpy references
(ops/declarations/spatial.py) for channel counts below, at and above the window, any trailing
axes and both float dtypes; the compiled gradient matches finite differences."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep

RNG = np.random.default_rng(12)


def _compiled(op, arrays, attrs):
    gb = GraphBuilder(op)
    vs = [gb.var(f"x{k}", TensorType(a.shape, str(a.dtype))) for k, a in enumerate(arrays)]
    g = gb.build([getattr(gb.F, op)(*vs, **attrs)])
    prog = compile_graph(g, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == [], f"{op} {attrs} ran on the host"
    return prog, g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,nsize", [((2, 1, 3), 3), ((2, 3, 2, 2), 5), ((1, 7, 3, 2), 3), ((2, 12, 4), 5),
                                         ((1, 9), 1)])
def test_lrn_and_its_gradient_match_the_references(shape, nsize, dtype):
    attrs = {"nsize": nsize, "alpha": 0.3, "beta": 0.75, "knorm": 1.5}
    x = RNG.standard_normal(shape).astype(dtype)
    g = RNG.standard_normal(shape).astype(dtype)
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == "float32" else dict(rtol=1e-13, atol=1e-14)
    for op, arrays in (("LRN", [x]), ("_lrn_grad", [x, g])):
        prog, graph = _compiled(op, arrays, attrs)
        np.testing.assert_allclose(prog(arrays)[0], interpret(graph, arrays)[0], **tol, err_msg=f"{op} {shape}")


def test_lrn_gradient_against_finite_differences():
    attrs = {"nsize": 3, "alpha": 0.5, "beta": 0.6, "knorm": 1.0}
    x, w = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 5, 3))
    forward, _ = _compiled("LRN", [x], attrs)
    backward, _ = _compiled("_lrn_grad", [x, w], attrs)
    eps, fd = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        fd[i] = ((forward([up])[0] - forward([down])[0]) * w).sum() / (2 * eps)
    np.testing.assert_allclose(backward([x, w])[0], fd, rtol=1e-6, atol=1e-8)
