"""Apache MXNet 1.9.1, the oracle of the differential tests: where `make test` installs it (its
own venv, bench/.venvs/mxnet; GRAPHC_MXNET_PYTHON overrides), a marker that skips a live
comparison where it is absent (the recorded answers still run), and one comparison of recorded
answers. Importable from every test folder: pytest puts tests/ (the conftest's folder) on sys.path."""
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
needs_mxnet = pytest.mark.skipif(not os.path.exists(MXNET_PYTHON),
                                 reason="Apache MXNet 1.9.1 is not installed here (make test installs it in bench/.venvs/mxnet)")


def assert_matches(ours, expected, path="", rtol=1e-4, atol=2e-5):
    """Same structure; equal strings, bools and ints; floats to float32 rounding."""
    if isinstance(expected, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(expected), f"{path}: keys {sorted(ours)}"
        for k in expected:
            assert_matches(ours[k], expected[k], f"{path}/{k}", rtol, atol)
    elif isinstance(expected, list):
        assert isinstance(ours, list) and len(ours) == len(expected), f"{path}: {ours!r} vs {expected!r}"
        for i, (a, b) in enumerate(zip(ours, expected)):
            assert_matches(a, b, f"{path}[{i}]", rtol, atol)
    elif isinstance(expected, float):
        assert isinstance(ours, (int, float)), f"{path}: {ours!r} vs {expected!r}"
        assert np.isclose(ours, expected, rtol=rtol, atol=atol), f"{path}: {ours!r} vs MXNet's {expected!r}"
    else:
        assert ours == expected, f"{path}: {ours!r} vs MXNet's {expected!r}"
