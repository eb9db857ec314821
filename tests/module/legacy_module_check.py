"""Shared by test_sequential_module.py, test_python_module.py, test_monitor_module.py: run a
legacy_module_scenarios scenario under graphc and compare it with MXNet 1.9.1's recorded answer
(legacy_module_reference.json); re-record with MXNet where it is installed."""
import json
import os
import subprocess
import warnings

import numpy as np
import pytest

import graphc as mx
import legacy_module_scenarios

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
needs_mxnet = pytest.mark.skipif(not os.path.exists(MXNET_PYTHON),
                                 reason="Apache MXNet 1.9.1 is not installed here (make bench installs it)")

with open(os.path.join(HERE, "legacy_module_reference.json")) as f:
    REFERENCE = json.load(f)


def assert_matches(ours, expected, path=""):
    """Same structure; equal strings, bools and ints; floats to float32 rounding."""
    if isinstance(expected, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(expected), f"{path}: keys {sorted(ours)}"
        for k in expected:
            assert_matches(ours[k], expected[k], f"{path}/{k}")
    elif isinstance(expected, list):
        assert isinstance(ours, list) and len(ours) == len(expected), f"{path}: {ours!r} vs {expected!r}"
        for i, (a, b) in enumerate(zip(ours, expected)):
            assert_matches(a, b, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(ours, (int, float)), f"{path}: {ours!r} vs {expected!r}"
        assert np.isclose(ours, expected, rtol=1e-4, atol=2e-5), f"{path}: {ours!r} vs MXNet's {expected!r}"
    else:
        assert ours == expected, f"{path}: {ours!r} vs MXNet's {expected!r}"


def check(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = json.loads(json.dumps(getattr(legacy_module_scenarios, name)(mx), default=float))
    assert_matches(ours, REFERENCE[name], name)


_FRESH = {}


def check_reference(name, tmp_path):
    """The committed answer of scenario `name` is what MXNet answers now."""
    if "answers" not in _FRESH:
        out = tmp_path / "ref.json"
        subprocess.run([MXNET_PYTHON, os.path.join(HERE, "record_legacy_module_reference.py"), str(out)],
                       check=True, timeout=300, capture_output=True)
        _FRESH["answers"] = json.loads(out.read_text())
    assert_matches(REFERENCE[name], _FRESH["answers"][name], name)
