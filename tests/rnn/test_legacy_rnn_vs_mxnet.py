"""mx.rnn (MXNet 1.x's legacy symbolic RNN API) against Apache MXNet 1.9.1, program for program.

legacy_rnn_scenarios.py runs the same code with graphc and with MXNet from the same numpy
parameters: every cell type unrolled (outputs, final states, parameter names and shapes),
unpack/pack of gate weights, the sentence iterator, lstm_bucketing-style training with RNN
checkpoints, and fused/unfused checkpoints. legacy_rnn_reference.json is MXNet's answers, so
these tests run without MXNet; where it is installed the last test re-records and compares."""
import json
import os
import subprocess
import warnings

import numpy as np
import pytest

import graphc as mx
import legacy_rnn_scenarios
from mxnet_oracle import MXNET_PYTHON, needs_mxnet, assert_matches

HERE = os.path.dirname(__file__)

with open(os.path.join(HERE, "legacy_rnn_reference.json")) as f:
    REFERENCE = json.load(f)




def _plain(x):
    return json.loads(json.dumps(x, default=float))


@pytest.mark.parametrize("scenario", legacy_rnn_scenarios.SCENARIOS, ids=lambda s: s.__name__)
def test_scenario_matches_mxnet(scenario):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = _plain(scenario(mx))
    assert_matches(ours, REFERENCE[scenario.__name__], scenario.__name__)


def test_comparison_catches_a_changed_output():
    ref = REFERENCE["lstm_ntc_merged"]
    changed = json.loads(json.dumps(ref))
    changed["outputs"][0][0][0][0] += 1e-3
    with pytest.raises(AssertionError, match="outputs"):
        assert_matches(changed, ref)


def test_fused_and_unfused_scores_agree():
    """The checkpoint written from the fused cell means the same network to its unfused stack."""
    ref = REFERENCE["fused_checkpoint_unfused_score"]
    assert np.isclose(ref["fused"], ref["unfused"], rtol=1e-5)


def test_parameter_names_are_mxnets():
    cell = mx.rnn.LSTMCell(4, prefix="lstm_l0_")
    out, _ = cell.unroll(2, inputs=mx.sym.var("data"))
    assert sorted(out[0].list_arguments()) == ["data", "lstm_l0_h2h_bias", "lstm_l0_h2h_weight",
                                               "lstm_l0_i2h_bias", "lstm_l0_i2h_weight"]
    assert out[1].name == "lstm_l0_t1_out"


def test_modified_cell_refuses_direct_use():
    base = mx.rnn.LSTMCell(3)
    mx.rnn.ZoneoutCell(base, 0.1, 0.1)
    with pytest.raises(AssertionError, match="modifier"):
        base.begin_state()


def test_unroll_without_inputs_is_refused():
    with pytest.raises(AssertionError, match="deprecated"):
        mx.rnn.GRUCell(3).unroll(2, inputs=None)


@needs_mxnet
def test_reference_is_what_mxnet_answers(tmp_path):
    out = tmp_path / "ref.json"
    subprocess.run([MXNET_PYTHON, os.path.join(HERE, "record_legacy_rnn_reference.py"), str(out)], check=True,
                   timeout=300, capture_output=True)
    fresh = json.loads(out.read_text())
    for name, answer in REFERENCE.items():
        assert_matches(answer, fresh[name], name)


_CROSS_SCRIPT = r"""
import sys, numpy as np, mxnet as mx
prefix, out = sys.argv[1], sys.argv[2]
fused = mx.rnn.FusedRNNCell(3, num_layers=2, mode='gru', bidirectional=True, prefix='g_')
sym, args, aux = mx.rnn.load_rnn_checkpoint(fused, prefix, 1)
np.save(out + '.npy', args['g_parameters'].asnumpy())
mx.rnn.save_rnn_checkpoint(fused, out, 2, sym, args, aux)
"""


@needs_mxnet
def test_rnn_checkpoints_load_both_ways(tmp_path):
    """graphc's RNN checkpoint loads in MXNet (packed to the same vector) and MXNet's loads back."""
    fused = mx.rnn.FusedRNNCell(3, num_layers=2, mode="gru", bidirectional=True, prefix="g_")
    size = 2 * 3 * 3 * (4 + 3 + 2) + 2 * 3 * 3 * (2 * 3 + 3 + 2)
    packed = np.random.RandomState(0).uniform(-1, 1, size).astype(np.float32)
    outputs, _ = fused.unroll(2, inputs=mx.sym.var("data"), layout="TNC", merge_outputs=True)
    mx.rnn.save_rnn_checkpoint(fused, str(tmp_path / "ours"), 1, outputs, {"g_parameters": mx.nd.array(packed)}, {})
    script = tmp_path / "cross.py"
    script.write_text(_CROSS_SCRIPT)
    done = subprocess.run([MXNET_PYTHON, str(script), str(tmp_path / "ours"), str(tmp_path / "theirs")],
                          timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(str(tmp_path / "theirs.npy")), packed)
    _, args, _ = mx.rnn.load_rnn_checkpoint(fused, str(tmp_path / "theirs"), 2)
    np.testing.assert_array_equal(args["g_parameters"].asnumpy(), packed)
