"""mx.viz (graphc/viz/): print_summary prints MXNet's table, plot_network writes MXNet's DOT and
draws valid SVG itself, for Symbols, traced blocks, graphs after passes (fused kernels one box)
and device-partitioned graphs (boxes coloured by device, cut edges marked)."""
import json
import os
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import graphc as mx
from graphc.passes.partition import COPY, node_device, partition_devices
from graphc.passes.pipeline import INFERENCE, SIMPLIFY, lower_pipeline
from graphc.viz import GraphvizMissingWarning

import viz_cases
from dot_reader import read_dot

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "viz_mxnet_expected.json")
MXNET_PYTHON = os.path.join(HERE, "..", "..", "bench", ".venvs", "mxnet", "bin", "python")
SVG = "{http://www.w3.org/2000/svg}"


def recorded():
    with open(EXPECTED) as fh:
        return json.load(fh)


# -- print_summary -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(recorded()["summaries"]))
def test_print_summary_prints_mxnets_table(case):
    ours = viz_cases.summaries(mx)
    if case not in ours:
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    assert ours[case] == recorded()["summaries"][case]


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="the MXNet 1.9.1 venv (bench/.venvs/mxnet) is absent")
def test_the_recorded_tables_and_dot_are_what_mxnet_prints_today():
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "viz_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == recorded()


def test_print_summary_of_a_fused_graph_counts_the_parameters_its_kernels_read(capsys):
    graph = lower_pipeline(False)(INFERENCE(SIMPLIFY(viz_cases.mlp(mx)._bind({"data": (1, 784)}))))
    assert any(n.op == "_fused_gemm" for n in graph.nodes)
    mx.viz.print_summary(graph)
    out = capsys.readouterr().out
    assert "(_fused_gemm)" in out
    assert f"Total params: {784 * 128 + 128 + 128 * 10 + 10}" in out


# -- DOT ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["mlp", "cnn", "cnn, oval nodes", "cnn, dtypes only"])
def test_dot_text_has_mxnets_nodes_labels_colours_and_edges(case):
    kwargs = {"mlp": dict(shape={"data": (1, 784)}),
              "cnn": dict(shape={"data": (2, 3, 8, 8)}, dtype={"data": "float32"}, hide_weights=False, title="cnn"),
              "cnn, oval nodes": dict(node_attrs={"shape": "oval", "fixedsize": "false"}),
              "cnn, dtypes only": dict(dtype={"data": "float32"})}[case]
    sym = viz_cases.mlp(mx) if case == "mlp" else viz_cases.cnn(mx)
    ours = read_dot(mx.viz.plot_network(sym, **kwargs).source)
    theirs = read_dot(recorded()["dot"][case])
    assert ours.name == theirs.name
    assert sorted(ours.edges, key=repr) == sorted(theirs.edges, key=repr)
    for name, attrs in theirs.nodes.items():
        assert ours.nodes[name] == attrs, name
    # MXNet leaves shown weights undeclared (Graphviz draws them as plain ellipses); graphc
    # declares them as such
    for extra in set(ours.nodes) - set(theirs.nodes):
        assert ours.nodes[extra] == {"label": extra, "shape": "oval"}


def test_hide_weights_leaves_out_parameters_and_their_edges():
    shown = read_dot(mx.viz.plot_network(viz_cases.cnn(mx), hide_weights=False).source)
    hidden = read_dot(mx.viz.plot_network(viz_cases.cnn(mx)).source)
    weights = {"conv1_weight", "conv1_bias", "bn1_gamma", "bn1_beta", "bn1_moving_mean", "bn1_moving_var",
               "conv2_weight", "fc_weight", "fc_bias"}
    assert set(shown.nodes) - set(hidden.nodes) == weights
    assert {h for _, h, _ in shown.edges} - {h for _, h, _ in hidden.edges} == weights


def test_the_dot_reader_refuses_broken_text():
    with pytest.raises(ValueError):
        read_dot('digraph g { a -> [label=x] }')
    with pytest.raises(ValueError):
        read_dot('digraph g { a [label="x] }')


# -- SVG -------------------------------------------------------------------------------------------
def svg_of(plot):
    root = ET.fromstring(plot.svg())
    assert root.tag == f"{SVG}svg"
    nodes = {g.get("data-key"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("edge") and g.get("data-from")]
    return root, nodes, edges


def bounds(g):
    rect = g.find(f"{SVG}rect")
    if rect is not None:
        x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
        return x, y, x + w, y + h
    e = g.find(f"{SVG}ellipse")
    cx, cy, rx, ry = (float(e.get(k)) for k in ("cx", "cy", "rx", "ry"))
    return cx - rx, cy - ry, cx + rx, cy + ry


def assert_no_box_overlaps(nodes):
    boxes = [(k, bounds(g)) for k, g in nodes.items()]
    for i, (ka, a) in enumerate(boxes):
        for kb, b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (ka, a, kb, b)


def test_svg_draws_every_node_and_edge_without_overlaps_inputs_below_outputs():
    sym = viz_cases.cnn(mx)
    plot = mx.viz.plot_network(sym, shape={"data": (2, 3, 8, 8)}, hide_weights=False)
    root, nodes, edges = svg_of(plot)
    dot = read_dot(plot.source)
    assert set(nodes) == set(dot.nodes)
    assert sorted((e.get("data-from"), e.get("data-to")) for e in edges) == \
        sorted((head, tail) for tail, head, _ in dot.edges)
    assert_no_box_overlaps(nodes)
    for e in edges:   # a value flows upward: producer below its consumer
        assert bounds(nodes[e.get("data-from")])[1] > bounds(nodes[e.get("data-to")])[3]
    assert nodes["conv1"].get("data-op") == "Convolution"
    assert "".join(nodes["conv1"].itertext()).endswith("Convolution3x3/1, 8")
    width, height = float(root.get("width")), float(root.get("height"))
    assert all(0 <= b <= max(width, height) for g in nodes.values() for b in bounds(g))


def test_svg_layout_reduces_crossings_on_a_wide_graph():
    """Two independent branches over one input join at the end: a layered drawing keeps each
    branch in its own column, so the boxes of one branch never cross the other's edges."""
    data = mx.sym.var("data")
    a = mx.sym.Activation(mx.sym.Activation(data, act_type="relu", name="a1"), act_type="tanh", name="a2")
    b = mx.sym.Activation(mx.sym.Activation(data, act_type="sigmoid", name="b1"), act_type="relu", name="b2")
    out = mx.sym.elemwise_add(b, a, name="join")
    _, nodes, _ = svg_of(mx.viz.plot_network(out))
    x = {k: (bounds(g)[0] + bounds(g)[2]) / 2 for k, g in nodes.items()}
    assert (x["a1"] < x["b1"]) == (x["a2"] < x["b2"])
    assert_no_box_overlaps(nodes)


def test_a_graph_after_passes_draws_each_fused_kernel_as_one_box():
    graph = lower_pipeline(False)(INFERENCE(SIMPLIFY(viz_cases.cnn(mx)._bind({"data": (2, 3, 8, 8)}))))
    fused = [n for n in graph.nodes if n.op.startswith("_fused")]
    assert fused
    plot = mx.viz.plot_network(graph)
    _, nodes, edges = svg_of(plot)
    for n in fused:
        box = nodes[n.name]
        assert box.get("data-op") == n.op
        assert box.get("data-fused").split() == [m.op for m in n.attrs["body"].graph.op_nodes()]
    # every operator is a box; parameters (by kind) are hidden, the data input is shown
    assert set(nodes) == {n.name for n in graph.op_nodes()} | {"data"}
    labels = {}
    for e in edges:
        labels[e.get("data-from")] = labels.get(e.get("data-from"), "") + "".join(e.itertext())
    assert "f32[2,8,4,4]" in labels["pool1"]


def partitioned_cnn():
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="stage1"):
        c = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, pad=(1, 1), name="conv1")
        c = mx.sym.Activation(c, act_type="relu", name="relu1")
    with mx.AttrScope(ctx_group="stage2"):
        c2 = mx.sym.Convolution(c, kernel=(1, 1), num_filter=8, name="conv2")
        c = mx.sym.elemwise_add(c, c2, name="add1")
        c = mx.sym.FullyConnected(mx.sym.Flatten(c, name="flat"), num_hidden=10, name="fc")
    graph = c._bind({"data": (2, 3, 8, 8)})
    return partition_devices(graph, {"stage1": mx.cpu(0), "stage2": mx.cpu(1)})


def test_a_partition_is_coloured_by_device_with_cut_edges_marked():
    graph = partitioned_cnn()
    plot = mx.viz.plot_network(graph, title="partitioned")
    root, nodes, edges = svg_of(plot)
    placed = {n.name: node_device(n) for n in graph.nodes if n.op != COPY and n.name in nodes}
    assert {k: g.get("data-device") for k, g in nodes.items()} == placed
    fill = {k: (g.find(f"{SVG}rect") if g.find(f"{SVG}rect") is not None else g.find(f"{SVG}ellipse")).get("fill")
            for k, g in nodes.items()}
    for a in nodes:
        for b in nodes:
            assert (fill[a] == fill[b]) == (placed[a] == placed[b]), (a, b)
    # one copy (relu1's output to cpu(1)) read by two operators: two cut edges, from relu1
    cuts = [e for e in edges if "cut" in e.get("class").split()]
    assert sorted(e.get("data-to") for e in cuts) == ["add1", "conv2"]
    assert {e.get("data-from") for e in cuts} == {"relu1"}
    assert {e.get("data-cut") for e in cuts} == {"cpu(0)->cpu(1)"}
    assert {int(e.get("data-bytes")) for e in cuts} == {2 * 8 * 8 * 8 * 4}
    assert not any(g.get("data-op") == COPY for g in nodes.values())
    legend = [g.get("data-device") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-device"]
    assert legend == ["cpu(0)", "cpu(1)"]
    dot = read_dot(plot.source)
    members = {attrs["label"]: set(m) for attrs, m in dot.subgraphs.values()}
    assert members == {d: {k for k in nodes if placed[k] == d} for d in ("cpu(0)", "cpu(1)")}
    red = [(t, h) for t, h, a in dot.edges if a.get("style") == "dashed"]
    assert sorted(red) == [("add1", "relu1"), ("conv2", "relu1")]


def test_print_partition_summary_gives_the_per_device_numbers(capsys):
    mx.viz.print_partition_summary(partitioned_cnn())
    out = capsys.readouterr().out
    assert "cpu(0) -> cpu(1): 1 copy, 4.0 KiB (4096 bytes)" in out


# -- blocks, files, errors ---------------------------------------------------------------------------
def test_a_hybridized_block_is_drawn_from_its_traced_graph():
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(16, activation="relu"), mx.gluon.nn.Dense(4))
    net.initialize()
    net.hybridize()
    with pytest.raises(mx.GraphcError, match="run it once"):
        mx.viz.plot_network(net)
    net(mx.nd.array(np.ones((3, 8), np.float32)))
    plot = mx.viz.plot_network(net)
    _, nodes, edges = svg_of(plot)
    graph = net._cached_op.last.graph
    assert set(nodes) == {n.name for n in graph.op_nodes()} | {"data"}
    assert "f32[3,16]" in "".join("".join(e.itertext()) for e in edges)
    with pytest.raises(TypeError, match="plot_network"):
        mx.viz.plot_network(42)


def test_render_without_dot_saves_the_dot_text_and_draws_svg(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    plot = mx.viz.plot_network(viz_cases.mlp(mx), title="mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot.render(str(tmp_path / "net.gv"), format="svg")
    assert out == str(tmp_path / "net.gv.svg")
    ET.parse(out)
    with pytest.warns(GraphvizMissingWarning, match="not installed.*net2.gv"):
        out = plot.render(str(tmp_path / "net2.gv"))          # save_format defaults to pdf, as in MXNet
    assert out.endswith(".svg") and not os.path.exists(tmp_path / "net2.gv.pdf")
    assert read_dot((tmp_path / "net2.gv").read_text()).nodes.keys() == read_dot(plot.source).nodes.keys()
    with pytest.raises(mx.GraphcError, match="'dot' program"):
        plot.pipe("pdf")
    assert plot._repr_svg_() == plot.pipe("svg").decode()


def test_repeated_names_are_drawn_apart_with_a_warning():
    data = mx.sym.var("data")
    a = mx.sym.Activation(data, act_type="relu", name="act")
    b = mx.sym.Activation(a, act_type="relu", name="act")
    with pytest.warns(RuntimeWarning, match="act"):
        plot = mx.viz.plot_network(b)
    _, nodes, edges = svg_of(plot)
    assert set(nodes) == {"data", "act", "act#2"}
    assert [(e.get("data-from"), e.get("data-to")) for e in edges] == [("data", "act"), ("act", "act#2")]


def test_viz_is_a_lazy_module_of_graphc():
    assert isinstance(mx.viz.plot_network(viz_cases.mlp(mx)), mx.viz.NetworkPlot)


def test_a_block_running_model_parallel_is_drawn_partitioned(capsys):
    data = mx.sym.var("data")
    h, n_in = data, 8
    for k, (group, n) in enumerate(zip(["a", "b"], [16, 4])):
        with mx.AttrScope(ctx_group=group):
            w = mx.sym.var(f"fc{k}_weight", shape=(n, n_in))
            b = mx.sym.var(f"fc{k}_bias", shape=(n,))
            h = mx.sym.FullyConnected(h, w, b, num_hidden=n, name=f"fc{k}")
        n_in = n
    net = mx.gluon.SymbolBlock(h, data)
    net.initialize()
    net.hybridize(group2ctx={"a": mx.cpu(0), "b": mx.cpu(1)})
    net(mx.nd.ones((2, 8)))
    scene = mx.viz.plot_network(net).scene
    assert [(b.name, b.device) for b in scene.boxes] == [("data", "cpu(0)"), ("fc0", "cpu(0)"), ("fc1", "cpu(1)")]
    assert [(e.src, e.dst, e.cut) for e in scene.edges] == [("data", "fc0", None), ("fc0", "fc1", ("cpu(0)", "cpu(1)"))]
    mx.viz.print_partition_summary(net)
    assert "cpu(0) -> cpu(1): 1 copy, 128 B (128 bytes)" in capsys.readouterr().out
