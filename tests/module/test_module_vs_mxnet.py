"""mx.mod.Module and BucketingModule against Apache MXNet 1.9.1, program for program.

module_scenarios.py runs the same training code with graphc and with MXNet from the same numpy
parameters; mxnet_module_reference.json is MXNet's output (weights after training, scores,
predictions, input gradients, the log lines of fit and its callbacks), so these tests run
without MXNet. Where it is installed (bench/.venvs/mxnet or $GRAPHC_MXNET_PYTHON) the last test
re-records and checks the committed file. Floats agree to float32 rounding (rtol 1e-4): both
sides sum in float32 but not in the same order; strings (log lines, names) must be equal."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import module_scenarios

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
needs_mxnet = pytest.mark.skipif(not os.path.exists(MXNET_PYTHON),
                                 reason="Apache MXNet 1.9.1 is not installed here (make bench installs it)")

with open(os.path.join(HERE, "mxnet_module_reference.json")) as f:
    REFERENCE = json.load(f)


def assert_matches(ours, expected, path=""):
    """Same structure; equal strings, bools and None; numbers within float32 training noise."""
    if isinstance(expected, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(expected), f"{path}: keys {sorted(ours)}"
        for k in expected:
            assert_matches(ours[k], expected[k], f"{path}/{k}")
    elif isinstance(expected, list):
        assert isinstance(ours, list) and len(ours) == len(expected), f"{path}: {ours!r} vs {expected!r}"
        for i, (a, b) in enumerate(zip(ours, expected)):
            assert_matches(a, b, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(ours, (int, float)), f"{path}: {ours!r} vs {expected!r}"
        assert np.isclose(ours, expected, rtol=1e-4, atol=1e-5), f"{path}: {ours!r} vs MXNet's {expected!r}"
    else:
        assert ours == expected, f"{path}: {ours!r} vs MXNet's {expected!r}"


def _plain(x):
    return json.loads(json.dumps(x, default=float))


def test_assert_matches_catches_a_changed_weight_and_a_changed_log_line():
    ref = REFERENCE["fit_mlp_sgd_momentum"]
    changed = json.loads(json.dumps(ref))
    changed["params"]["fc1_bias"][0] += 1e-3
    with pytest.raises(AssertionError, match="fc1_bias"):
        assert_matches(changed, ref)
    changed = json.loads(json.dumps(ref))
    changed["log"][0] = changed["log"][0].replace("Epoch[0]", "Epoch[1]")
    with pytest.raises(AssertionError, match="log"):
        assert_matches(changed, ref)


@pytest.mark.parametrize("scenario", module_scenarios.SCENARIOS, ids=lambda fn: fn.__name__)
def test_scenario_gives_what_mxnet_gives(scenario):
    assert_matches(_plain(scenario(mx)), REFERENCE[scenario.__name__], scenario.__name__)


@needs_mxnet
def test_reference_is_still_what_mxnet_says(tmp_path):
    out = tmp_path / "ref.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "record_module_reference.py"), str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=HERE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_matches(json.loads(out.read_text()), REFERENCE)
