"""GRAPHC_DUMP prints a pass's graph only when the pass changed it; a pass that found nothing to
do is one line, and a pipeline's input that is the graph the previous dump ended with is not
printed again."""
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.passes import pipeline as pipeline_module
from graphc.passes.pipeline import Pipeline
from graphc.passes.simplify import eliminate_dead_code, fold_constants, simplify_algebra


def _graph_with_one_simplification():
    gb = GraphBuilder("dumped")
    F = gb.F
    x = gb.var("x", TensorType((4, 3)))
    # x * 1 is simplified away; nothing is constant, so fold_constants has nothing to do
    return gb.build([F.relu(x * 1.0)])


def test_a_changing_pass_prints_its_graph_and_an_idle_one_says_unchanged(capsys, monkeypatch):
    monkeypatch.setattr(pipeline_module, "_last_dump", None)
    graph = _graph_with_one_simplification()
    before = str(graph)
    out = Pipeline([fold_constants, simplify_algebra, eliminate_dead_code], "t")(graph, dump="all")
    err = capsys.readouterr().err
    assert err.count(before) == 1                          # the input, once
    assert "-- after fold_constants: unchanged --\n" in err
    assert f"-- after simplify_algebra --\n{out}\n" in err   # it removed the multiplication
    assert "-- after eliminate_dead_code: unchanged --\n" in err
    assert str(out) != before and err.count(str(out)) == 1


def test_a_named_pass_prints_even_when_other_passes_change_the_graph(capsys, monkeypatch):
    monkeypatch.setattr(pipeline_module, "_last_dump", None)
    graph = _graph_with_one_simplification()
    Pipeline([fold_constants, simplify_algebra], "t")(graph, dump="fold_constants")
    err = capsys.readouterr().err
    assert err == "-- after fold_constants: unchanged --\n"


def test_the_next_pipelines_input_is_not_printed_twice(capsys, monkeypatch):
    monkeypatch.setattr(pipeline_module, "_last_dump", None)
    graph = _graph_with_one_simplification()
    first = Pipeline([simplify_algebra], "first")(graph, dump="all")
    Pipeline([eliminate_dead_code], "second")(first, dump="all")
    err = capsys.readouterr().err
    assert "-- second: input: unchanged --\n" in err
    assert err.count(str(first)) == 1
