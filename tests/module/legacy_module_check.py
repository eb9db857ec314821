"""Shared by test_sequential_module.py, test_python_module.py, test_monitor_module.py: run a
legacy_module_scenarios scenario under graphc and compare it with MXNet 1.9.1's recorded answer
(legacy_module_reference.json); re-record with MXNet where it is installed."""
import json
import os
import subprocess
import warnings

import graphc as mx
import legacy_module_scenarios
from mxnet_oracle import MXNET_PYTHON, assert_matches, needs_mxnet  # noqa: F401 (the module tests take needs_mxnet from here)

HERE = os.path.dirname(__file__)

with open(os.path.join(HERE, "legacy_module_reference.json")) as f:
    REFERENCE = json.load(f)


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
