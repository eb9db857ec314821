"""mx.mod.SequentialModule against MXNet 1.9.1 (legacy_module_scenarios.py, recorded answers)."""
import pytest

import graphc as mx
from legacy_module_check import check, check_reference, needs_mxnet

SCENARIOS = ["sequential_module_fit", "sequential_module_fit_loop"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_matches_mxnet(name):
    check(name)


def test_unknown_meta_is_refused():
    with pytest.raises(AssertionError, match='Unknown meta "take_label"'):
        mx.mod.SequentialModule().add(mx.mod.Module(mx.sym.var("data")), take_label=True)


def test_duplicated_parameter_names_are_refused():
    def layer():
        return mx.mod.Module(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc"), label_names=None)
    seq = mx.mod.SequentialModule().add(layer()).add(layer(), auto_wiring=True)
    seq.bind([("data", (3, 2))])
    with pytest.raises(AssertionError, match='Duplicated parameter names: name "fc_weight"'):
        seq.init_params()


def test_binding_empty_chain_is_refused():
    with pytest.raises(AssertionError, match="empty SequentialModule"):
        mx.mod.SequentialModule().bind([("data", (1, 2))])


@needs_mxnet
@pytest.mark.parametrize("name", SCENARIOS)
def test_reference_is_what_mxnet_answers(name, tmp_path):
    check_reference(name, tmp_path)
