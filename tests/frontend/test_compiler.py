"""graphc.compiler.compile_graph: the passes that prepare a graph for the backend run here, in
view of GRAPHC_DUMP, and the backend receives their result."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes import memory


def _graph():
    gb = GraphBuilder("small")
    F = gb.F
    x = gb.var("x", TensorType((4, 8)))
    w = gb.var("w", TensorType((3, 8)), "param")
    return gb.build([F.tanh(F.FullyConnected(x, w, no_bias=True, num_hidden=3) * 2.0 + 1.0)])


def _arrays():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((3, 8)).astype(np.float32)]


def test_the_program_runs_the_fused_graph_and_matches_the_interpreter():
    g = _graph()
    prog = compile_graph(g, cache=False)
    assert [n.op for n in prog.fused.op_nodes()] == ["_fused_gemm"]
    np.testing.assert_allclose(prog(_arrays())[0], interpret(g, _arrays())[0], rtol=1e-5, atol=1e-5)


def test_dump_shows_the_fused_graph_and_the_memory_plan(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DUMP", "fuse_elementwise,plan_memory")
    compile_graph(_graph(), cache=False)
    err = capsys.readouterr().err
    assert "-- after fuse_elementwise --" in err and "_fused_gemm(x, w, body=[" in err
    assert "-- after plan_memory --" in err and "memory plan for small" in err
    assert err.index("after fuse_elementwise") < err.index("after plan_memory")


def test_no_dump_unless_asked(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DUMP", "simplify_algebra")
    compile_graph(_graph(), cache=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("check, proved", [(None, True), (True, True), (False, False)])
def test_the_memory_plan_is_proved_unless_check_is_false(monkeypatch, check, proved):
    calls = []
    real = memory.check_plan
    monkeypatch.setattr("graphc.compiler.check_plan", lambda g, p: calls.append(1) or real(g, p))
    compile_graph(_graph(), check=check, cache=False)
    assert bool(calls) == proved
