"""partition_report (passes/partition_report.py): per device, operators, FLOPs, parameter and
activation bytes; per pair of devices, the copies and bytes crossing."""
import pytest

import graphc as mx
from graphc.passes.cost_model import node_flops
from graphc.passes.partition import COPY, node_device, partition_devices
from graphc.passes.partition_report import format_partition_report, partition_report


def two_stage_mlp(batch=2):
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=128, name="fc1"), act_type="relu", name="relu1")
    with mx.AttrScope(ctx_group="b"):
        out = mx.sym.FullyConnected(h, num_hidden=10, name="fc2")
    graph = out._bind({"data": (batch, 784)})
    return partition_devices(graph, {"a": mx.cpu(0), "b": mx.cpu(1)})


def test_bytes_and_ops_per_device_and_crossing():
    graph = two_stage_mlp()
    report = partition_report(graph)
    a, b = report.device("cpu(0)"), report.device("cpu(1)")
    assert (a.ops, b.ops) == (2, 1)
    assert a.param_bytes == (784 * 128 + 128) * 4
    assert b.param_bytes == (128 * 10 + 10) * 4
    # data in, fc1 and relu1 out on cpu(0); fc2 out on cpu(1) (the copy is the crossing, not an activation)
    assert a.activation_bytes == (2 * 784 + 2 * 128 + 2 * 128) * 4
    assert b.activation_bytes == 2 * 10 * 4
    [cross] = report.crossings
    assert (cross.source, cross.target, cross.copies, cross.bytes) == ("cpu(0)", "cpu(1)", 1, 2 * 128 * 4)


def test_flops_are_the_cost_models_and_the_gemms_dominate():
    graph = two_stage_mlp()
    report = partition_report(graph)
    for load in report.devices:
        ops = [n for n in graph.op_nodes() if n.op != COPY and node_device(n) == load.device]
        assert load.flops == pytest.approx(sum(node_flops(n) for n in ops))
    assert report.device("cpu(0)").flops >= 2 * 2 * 784 * 128 * 0.5   # a GEMM counts ~2*M*N*K
    assert report.device("cpu(0)").flops > 50 * report.device("cpu(1)").flops


def test_text_names_every_device_and_the_crossing():
    text = format_partition_report(partition_report(two_stage_mlp()))
    lines = text.splitlines()
    assert lines[0] == "partition of symbol: 2 devices, 1 copy, 1.0 KiB crossing per forward run"
    assert any(line.split()[:2] == ["cpu(0)", "2"] for line in lines)
    assert "  cpu(0) -> cpu(1): 1 copy, 1.0 KiB (1024 bytes)" in lines


def test_an_unpartitioned_graph_reports_one_device_and_no_crossing():
    out = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc")
    graph = partition_devices(out._bind({"data": (1, 3)}))
    report = partition_report(graph)
    assert [d.device for d in report.devices] == ["cpu(0)"] and report.crossings == []
    assert "no value crosses devices" in str(report)
    with pytest.raises(KeyError, match="cpu\\(1\\)"):
        report.device("cpu(1)")
