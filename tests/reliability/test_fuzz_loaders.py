"""The loader fuzzer (tests/fuzz/fuzz_loaders.py, `make fuzz`) still runs, finds nothing in a
short run, and would notice a loader that accepts a damaged file."""
import os
import subprocess
import sys

import pytest

FUZZER = os.path.join(os.path.dirname(__file__), "..", "fuzz", "fuzz_loaders.py")
FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet"))
pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES),
                                reason=f"the fuzzer's seeds, MXNet's fixture files, are not at {FIXTURES}")


def test_a_short_fuzz_run_executes_cases_and_finds_no_failure(tmp_path):
    p = subprocess.run([sys.executable, FUZZER, "--seconds", "5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = p.stdout.splitlines()[0]
    assert summary.startswith("fuzz_loaders: ") and " 0 failing" in summary, p.stdout
    assert int(summary.split()[1]) >= 10, summary     # cases run


def test_the_fuzzer_reports_a_loader_that_accepts_trailing_bytes(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.dirname(FUZZER))
    try:
        import fuzz_loaders
    finally:
        sys.path.pop(0)
    from graphc.formats import mxnet_params
    seeds = fuzz_loaders.Seeds(str(tmp_path))
    case = {"target": "params", "model": "mlp", "kind": "append", "bytes": seeds.params["mlp"] + b"\0" * 8,
            "expect": None}
    with pytest.raises(Exception):   # the real loader refuses: nothing to report
        mxnet_params.load_params(_write(tmp_path, case["bytes"]))
    fuzz_loaders.run_case(case, seeds, str(tmp_path))
    real = mxnet_params.load_params
    monkeypatch.setattr(mxnet_params, "load_params", lambda path: real(_write(tmp_path, open(path, "rb").read()[:-8])))
    with pytest.raises(fuzz_loaders.Wrong, match="appended"):
        fuzz_loaders.run_case(case, seeds, str(tmp_path))


def _write(tmp_path, data):
    path = str(tmp_path / "x.params")
    with open(path, "wb") as f:
        f.write(data)
    return path
