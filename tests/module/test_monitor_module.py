"""mx.mon.Monitor and Executor.set_monitor_callback against MXNet 1.9.1
(legacy_module_scenarios.py, recorded answers)."""
import numpy as np
import pytest

import graphc as mx
from legacy_module_check import check, check_reference, needs_mxnet

SCENARIOS = ["monitor_forward_backward", "monitor_all_callback"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_matches_mxnet(name):
    check(name)


def test_backward_stats_are_the_gradients():
    """fc's backward_output1 is its weight's gradient: the one Executor.backward writes."""
    data = mx.sym.var("data")
    out = mx.sym.LinearRegressionOutput(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="lro")
    exe = out.simple_bind(mx.cpu(), data=(4, 2), grad_req={"data": "null", "fc_weight": "write",
                                                            "fc_bias": "write", "lro_label": "null"})
    rs = np.random.RandomState(0)
    for name, arr in exe.arg_dict.items():
        arr[:] = rs.uniform(-1, 1, arr.shape)
    seen = {}
    exe.set_monitor_callback(lambda name, arr: seen.__setitem__(name, arr.asnumpy()))
    exe.forward(is_train=True)
    exe.backward()
    np.testing.assert_allclose(seen["fc_backward_output1"], exe.grad_dict["fc_weight"].asnumpy(), rtol=1e-5)
    np.testing.assert_allclose(seen["fc_backward_output2"], exe.grad_dict["fc_bias"].asnumpy(), rtol=1e-5)
    np.testing.assert_allclose(seen["fc_output"], exe.outputs[0].asnumpy(), rtol=1e-5)


def test_default_stat_is_norm_over_sqrt_size():
    mon = mx.mon.Monitor(1, pattern="fc.*")
    exe = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc").simple_bind(mx.cpu(), data=(1, 2))
    exe.arg_dict["fc_weight"][:] = np.array([[3., 0.], [0., 4.]])
    mon.install(exe)
    mon.tic()
    exe.forward()
    stats = {k: float(v) for _, k, v in mon.toc()}
    assert np.isclose(stats["fc_weight"], 5.0 / 2.0)


@needs_mxnet
@pytest.mark.parametrize("name", SCENARIOS)
def test_reference_is_what_mxnet_answers(name, tmp_path):
    check_reference(name, tmp_path)
