"""`graphc profile MODEL-symbol.json --shape ...` compiles the model, runs it and prints the time
per kernel, slowest first; --json writes the runs' Chrome trace."""
import json
import re

import pytest

import graphc as mx
from graphc import profiler
from graphc.cli import main


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A small CNN exported by graphc: convolutions lower to several kernels each."""
    net = mx.gluon.nn.HybridSequential(prefix="cnn_")
    with net.name_scope():       # layer names independent of what other tests created
        net.add(mx.gluon.nn.Conv2D(4, 3, activation="relu"), mx.gluon.nn.MaxPool2D(), mx.gluon.nn.Dense(5))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.ones((2, 1, 8, 8)))
    sym, params = net.export(str(tmp_path_factory.mktemp("model") / "cnn"))
    return sym, params


def _rows(out):
    lines = out.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("kernel "))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith(("total:", "... ")):
            break
        name, kind, calls, total, avg, share = line.split()[:6]
        rows.append((name, kind, int(calls), float(total), float(avg), float(share.rstrip("%"))))
    return rows


def test_profile_prints_every_kernel_slowest_first_and_writes_the_trace(model_files, tmp_path, capsys):
    sym, params = model_files
    trace_file = tmp_path / "trace.json"
    assert main(["profile", sym, "--shape", "data=2,1,8,8", "--params", params, "--runs", "3",
                 "--json", str(trace_file)]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) >= 5                                   # pad/transform/GEMM/epilogue, pool, dense
    assert all(r[2] == 3 and r[3] > 0 for r in rows)
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
    assert sum(r[5] for r in rows) == pytest.approx(100, abs=0.1 * len(rows))
    names = {r[0].split("[")[0] for r in rows}
    assert {"fused_cnn_conv0_relu_fwd", "cnn_pool0_fwd", "cnn_dense0_fwd"} <= names, names
    assert not any(r[0].startswith("k_") for r in rows), rows     # every kernel named by its node
    assert out.startswith("profile: ") and out.splitlines()[0].endswith(f": {len(rows)} steps per run, 3 runs")
    assert "ms per run unprofiled" in out and f"wrote {trace_file}" in out

    events = json.loads(trace_file.read_text())["traceEvents"]
    kernels = [e for e in events if e.get("cat") in ("kernel", "host")]
    assert len([e for e in events if e.get("cat") == "program"]) == 3
    assert len(kernels) == 3 * len(rows)
    for name, _, _, total, _, _ in rows:      # the table's totals are the trace's
        assert total == pytest.approx(sum(e["dur"] for e in kernels if e["name"] == name) / 1e3, abs=1e-3)


def test_profile_leaves_the_users_profiler_session_alone(model_files, tmp_path, capsys):
    sym, params = model_files
    with profiler.isolated(filename=str(tmp_path / "mine.json")):
        profiler.set_state("run")
        mx.nd.ones((2,)) + 1
        assert main(["profile", sym, "--shape", "data=2,1,8,8", "--runs", "1", "--top", "2"]) == 0
        assert profiler.state() == "run"
        mx.nd.ones((2,)) * 2
        profiler.dump()
        names = [e["name"] for e in json.loads((tmp_path / "mine.json").read_text())["traceEvents"]
                 if e.get("cat") in ("operator", "kernel", "program")]
    assert names == ["_plus_scalar", "_mul_scalar"]
    out = capsys.readouterr().out
    assert len(_rows(out)) == 2 and re.search(r"\n\.\.\. \d+ more steps, [0-9.]+ ms in all\n", out), out


@pytest.mark.parametrize("argv, message", [
    (["--runs", "3"], "profile needs the input shapes"),
    (["--shape", "data=2,1,8,8", "--runs", "0"], "--runs must be at least 1"),
])
def test_profile_usage_errors_are_one_line(model_files, capsys, argv, message):
    sym, _ = model_files
    assert main(["profile", sym, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: ") and message in err and err.count("\n") == 1


def test_profile_reports_a_missing_file(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "none-symbol.json"), "--shape", "data=1,2"]) == 1
    assert "none-symbol.json" in capsys.readouterr().err


def test_profile_runs_with_random_values_when_no_params_are_given(model_files, capsys):
    sym, _ = model_files
    assert main(["profile", sym, "--shape", "data=2,1,8,8", "--runs", "2"]) == 0
    assert all(r[2] == 2 for r in _rows(capsys.readouterr().out))
