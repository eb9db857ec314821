"""softmax/log_softmax decompose into natively compiled reductions and elementwise ops, with
the same results as the numpy references."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.decompose import decompose_softmax


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis, temperature", [((4, 7), -1, None), ((3, 5, 6), 1, None),
                                                      ((6, 9), 0, 2.0), ((2, 3), -1, 0.5)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decomposed_softmax_matches_the_reference_compiled(op, shape, axis, temperature, dtype):
    b = GraphBuilder("s")
    x = b.var("x", TensorType(shape, dtype))
    y = getattr(b.F, op)(x, axis=axis, temperature=temperature)
    g = b.build([y])
    d = decompose_softmax(g)
    verify(d)
    assert not any(n.op == op for n in d.nodes)
    xs = (np.random.default_rng(0).normal(size=shape) * 30).astype(dtype)   # large logits: stability
    want = interpret(g, [xs])[0]
    np.testing.assert_allclose(interpret(d, [xs])[0], want, rtol=1e-5, atol=1e-6)
    got = compile_graph(g)([xs])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_compiled_softmax_stores_nothing_data_sized_but_its_output(op):
    """x - max is recomputed inside the reduction and the output loop, not stored: the
    program's full-size buffers are its input and its output only."""
    from graphc.passes.memory import plan_memory
    from graphc.passes.pipeline import lower_pipeline
    b = GraphBuilder("s")
    x = b.var("x", TensorType((64, 1000), "float32"))
    g = b.build([getattr(b.F, op)(x, axis=-1)])
    fused = lower_pipeline(False)(g)
    big = [n for n in fused.op_nodes() if any(t.size == 64 * 1000 for t in n.types)]  # (log_softmax: fused, 3 outputs)
    assert len(big) == 1, [n.op for n in big]
    plan = plan_memory(fused)
    assert max(plan.arena_size.values(), default=0) < 64 * 1000 * 4
