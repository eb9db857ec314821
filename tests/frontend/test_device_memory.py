"""GRAPHC_DEVICE_MEMORY budgets: the text is read exactly (units, devices) or refused in one
line; a program's need is its parameters, inputs, outputs and planned intermediate values; and a
program over its device's budget is refused naming the program, the device, the budget and the
need."""
import pytest

import graphc as mx
from graphc.device_memory import DeviceMemoryError, budgets, check_program, parse_budgets, program_need
from graphc.passes.memory import plan_memory


def test_budgets_parse_decimal_and_binary_units():
    assert parse_budgets("cpu(0):200MB, cpu(1):1.5GB") == {"cpu(0)": 200 * 10 ** 6, "cpu(1)": 1500 * 10 ** 6}
    assert parse_budgets("cpu(2):3KiB,gpu(0):1GiB,cpu(3):512") == {"cpu(2)": 3072, "gpu(0)": 2 ** 30, "cpu(3)": 512}
    assert parse_budgets("CPU(0):2mb") == {"cpu(0)": 2 * 10 ** 6}
    assert parse_budgets("") == {}


@pytest.mark.parametrize("text, message", [("cpu0:200MB", "cannot read 'cpu0:200MB'"),
                                           ("cpu(0):200XB", "unknown unit 'XB'"),
                                           ("cpu(0):1MB,cpu(0):2MB", "cpu(0) is given twice"),
                                           ("cpu(0)=1MB", "expected DEVICE:SIZE")])
def test_bad_budget_text_is_one_clear_line(text, message):
    with pytest.raises(DeviceMemoryError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_budgets(text)
    assert "GRAPHC_DEVICE_MEMORY" in str(err.value) and "\n" not in str(err.value)


def _mlp_graph():
    h = mx.sym.var("data", shape=(8, 300))
    for k, n in enumerate([500, 400]):
        h = mx.sym.FullyConnected(h, mx.sym.var(f"fc{k}_weight", shape=(n, h._graph().outputs[0].type.shape[1])),
                                  mx.sym.var(f"fc{k}_bias", shape=(n,)), num_hidden=n, name=f"fc{k}")
        h = mx.sym.Activation(h, act_type="tanh")
    graph = h._graph()
    for node in graph.inputs:
        if node.name != "data":
            node.hints["kind"] = "param"
    return graph


def test_need_is_parameters_inputs_outputs_and_the_planned_arena():
    graph = _mlp_graph()
    need = program_need(graph)
    assert need.parameters == 4 * (500 * 300 + 500 + 400 * 500 + 400)
    assert need.inputs == 4 * 8 * 300 and need.outputs == 4 * 8 * 400
    assert need.arena == sum(plan_memory(graph).arena_size.values()) > 0
    assert need.total == need.parameters + need.inputs + need.outputs + need.arena


def test_a_program_over_its_budget_is_refused_with_the_numbers(monkeypatch):
    graph = _mlp_graph()
    total = program_need(graph).total
    monkeypatch.setenv("GRAPHC_DEVICE_MEMORY", f"cpu(1):{total // 2}")
    check_program(graph, "cpu(0)")                      # no budget there
    with pytest.raises(DeviceMemoryError) as err:
        check_program(graph, "cpu(1)")
    text = str(err.value)
    assert f"'{graph.name}' needs" in text and "on cpu(1)" in text and "hybridize(devices=" in text
    assert "parameters 1.4 MB" in text and "budget of" in text
    monkeypatch.setenv("GRAPHC_DEVICE_MEMORY", f"cpu(1):{total}")
    check_program(graph, "cpu(1)")                      # exactly the need fits
    assert budgets() == {"cpu(1)": total}
