"""mx.profiler: MXNet's API; the file it writes is a Chrome trace of the compiled programs'
kernels and host steps and of eager operators; dumps() is MXNet's aggregate table."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
from graphc import profiler
from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.declarations.special import gammaln_np
from graphc.ops.errors import GraphcError
from graphc.ops.types import TensorType

MXNET_PYTHON = os.path.join(os.path.dirname(__file__), "..", "..", "bench", ".venvs", "mxnet", "bin", "python")


@pytest.fixture(autouse=True)
def session(tmp_path):
    """Each test profiles in a session of its own, writing into tmp_path."""
    with profiler.isolated(filename=str(tmp_path / "profile.json")):
        yield tmp_path / "profile.json"


def _mlp():
    net = mx.gluon.nn.HybridSequential(prefix="mlp_")
    with net.name_scope():       # layer names independent of what other tests created
        net.add(mx.gluon.nn.Dense(16, activation="relu"), mx.gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    return net


def _mlp_reference(net, x):
    w0, b0 = net[0].weight.data().asnumpy(), net[0].bias.data().asnumpy()
    w1, b1 = net[1].weight.data().asnumpy(), net[1].bias.data().asnumpy()
    return np.maximum(x @ w0.T + b0, 0) @ w1.T + b1


def _events(path, cat=None):
    trace = json.loads(path.read_text())
    return [e for e in trace["traceEvents"] if cat is None or e.get("cat") == cat]


def test_profiled_mlp_writes_a_chrome_trace_with_its_kernels_nested_in_each_call(session):
    net = _mlp()
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    net(mx.nd.array(x))                             # compiled before the profiler runs
    program = net._cached_op.last.forward[1]
    profiler.set_config(profile_all=True, aggregate_stats=True)
    profiler.set_state("run")
    outs = [net(mx.nd.array(x)).asnumpy() for _ in range(3)]
    profiler.set_state("stop")
    profiler.dump()
    for out in outs:     # the profiled twin computes what the program does
        np.testing.assert_allclose(out, _mlp_reference(net, x), rtol=1e-5, atol=1e-5)

    trace = json.loads(session.read_text())
    assert set(trace) >= {"traceEvents", "displayTimeUnit"}
    events = trace["traceEvents"]
    for e in events:
        assert {"name", "ph", "pid", "tid"} <= set(e), e
        assert e["ph"] in ("X", "i", "C", "M"), e
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] > 1e15, e     # epoch microseconds
            assert isinstance(e["cat"], str)
        if e["ph"] == "X":
            assert e["dur"] > 0, e
    assert {e["args"]["name"] for e in events if e["name"] == "process_name"} == {"cpu/0"}

    calls = [e for e in events if e.get("cat") == "program"]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    assert len(calls) == 3 and {c["name"] for c in calls} == {program.graph.name}
    assert len(kernels) == 3 * len(program.kernels())
    fused_ops = [n.name for n in program.fused.op_nodes()]
    assert "mlp_dense1_fwd" in fused_ops
    assert {k["name"].split("[")[0] for k in kernels} == set(fused_ops)
    assert any(k["args"]["what"].startswith("gemm 1x2x16x8") for k in kernels)
    for k in kernels:        # each kernel lies inside one call, on the same thread
        inside = [c for c in calls if c["tid"] == k["tid"] and c["ts"] - 0.01 <= k["ts"]
                  and k["ts"] + k["dur"] <= c["ts"] + c["dur"] + 0.01]
        assert len(inside) == 1, k
    # the twin is compiled once, on the first profiled call
    assert [e["name"] for e in events if e.get("cat") == "compile"] == [f"compile {program.graph.name} (profiled)"]
    memory = [e for e in events if e["ph"] == "C"]
    assert len(memory) == 3 and memory[0]["args"]["Memory: cpu/0"] == sum(program.plan.arena_size.values())


def test_host_steps_and_eager_operators_are_recorded(session):
    gb = GraphBuilder("hosted")
    F = gb.F
    x = gb.var("x", TensorType((4, 6)))
    g = gb.build([F.gammaln(F.tanh(x))])          # gammaln runs on the host
    program = compile_graph(g)
    a = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    profiler.set_state("run")
    got = program([a])[0]
    y = mx.nd.dot(mx.nd.array(a), mx.nd.array(a.T)) + 1
    profiler.set_state("stop")
    profiler.dump()
    np.testing.assert_allclose(got, gammaln_np(np.tanh(a)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.asnumpy(), a @ a.T + 1, rtol=1e-5)
    call = _events(session, "program")[0]
    host = _events(session, "host")
    assert [h["name"] for h in host] == ["gammaln"]
    assert call["ts"] - 0.01 <= host[0]["ts"] and host[0]["ts"] + host[0]["dur"] <= call["ts"] + call["dur"] + 0.01
    assert [e["name"] for e in _events(session, "operator")] == ["dot", "_plus_scalar"]


def test_nothing_is_recorded_unless_running(session):
    net = _mlp()
    x = mx.nd.ones((2, 8))
    net(x)
    program = net._cached_op.last.forward[1]
    net(x)
    assert program._twin is None           # an unprofiled call never builds the twin
    profiler.set_state("run")
    profiler.pause()
    net(x)
    mx.nd.ones((3,)) * 2
    assert profiler.state() == "pause"
    profiler.resume()
    net(x)
    profiler.set_state("stop")
    net(x)
    mx.nd.ones((3,)) * 2
    profiler.dump()
    assert len(_events(session, "program")) == 1
    assert [e["name"] for e in _events(session, "operator")] == []   # the resumed part had no eager ops


def test_config_selects_what_is_recorded(session):
    net = _mlp()
    x = mx.nd.ones((2, 8))
    net(x)
    profiler.set_config(profile_symbolic=False, profile_memory=False)
    profiler.set_state("run")
    net(x)
    x * 3
    profiler.set_state("stop")
    profiler.dump()
    cats = {e.get("cat") for e in _events(session)} - {None}
    assert cats == {"operator"}


def test_aggregate_table_has_mxnets_layout_and_the_traces_numbers(session):
    net = _mlp()
    x = mx.nd.ones((2, 8))
    profiler.set_config(aggregate_stats=True)
    profiler.set_state("run")
    for _ in range(4):
        net(x)
    mx.nd.dot(x, x.T)
    profiler.set_state("stop")
    table = profiler.dumps()
    profiler.dump(finished=False)
    lines = table.split("\n")
    assert lines[:3] == ["", "Profile Statistics:", "\tNote the difference in units for different entries."]
    header = ("Name                          Total Count        Time (ms)    Min Time (ms)    Max Time (ms)"
              "    Avg Time (ms)")
    k = lines.index("kernel")
    assert lines[k + 1] == "=================" and lines[k + 2] == header
    assert lines[k + 3] == ("----                          -----------        ---------    -------------"
                            "    -------------    -------------")
    rows = {}
    for line in lines[k + 4:]:
        if not line:
            break
        name, count, total, lo, hi, avg = line.rsplit(None, 5)
        rows[name] = (int(count), float(total), float(lo), float(hi), float(avg))
    durations = {}
    for e in _events(session, "kernel"):
        durations.setdefault(e["name"], []).append(e["dur"] / 1e3)
    assert set(rows) == set(durations)
    for name, (count, total, lo, hi, avg) in rows.items():
        d = durations[name]
        assert count == len(d) == 4
        assert total == pytest.approx(sum(d), abs=1e-4) and lo == pytest.approx(min(d), abs=1e-4)
        assert hi == pytest.approx(max(d), abs=1e-4) and avg == pytest.approx(sum(d) / 4, abs=1e-4)
    totals = [r[1] for r in rows.values()]
    ordered = [float(line.rsplit(None, 5)[2]) for line in lines[k + 4:k + 4 + len(rows)]]
    assert ordered == sorted(totals, reverse=True)                 # sort_by='total', descending
    assert "Device Storage" in lines and "Min Use  (kB)" in table

    doc = json.loads(profiler.dumps(format="json", sort_by="count", ascending=True))
    assert doc["Unit"] == {"Time": "ms", "Memory": "kB"}
    assert doc["Time"]["operator"]["dot"]["Count"] == 1
    assert set(doc["Time"]["operator"]["dot"]) == {"Count", "Total", "Min", "Max", "Avg"}
    profiler.dumps(reset=True)
    assert "kernel" not in profiler.dumps().split("\n")


def test_user_objects_record_in_their_domain(session):
    domain = profiler.Domain("train")
    profiler.set_state("run")
    with domain.new_task("step"):
        pass
    frame = profiler.Frame(domain, "iteration")
    frame.start()
    frame.stop()
    with profiler.Event("load"):
        pass
    counter = profiler.Counter(domain, "batches", 5)
    counter += 2
    counter -= 3
    profiler.Marker(domain, "epoch end").mark("global")
    profiler.set_state("stop")
    profiler.dump()
    got = {(e["name"], e["cat"], e["ph"]) for e in _events(session) if e["ph"] != "M"}
    assert got == {("step", "train", "X"), ("iteration", "train,frame", "X"), ("load", "event", "X"),
                   ("batches", "train", "C"), ("epoch end", "train,instant_marker", "i")}
    assert [e["args"]["batches"] for e in _events(session, "train") if e["ph"] == "C"] == [5, 7, 4]
    assert [e["s"] for e in _events(session) if e["ph"] == "i"] == ["g"]
    assert "Min Value" in profiler.dumps()


def test_dump_finished_stops_and_starts_a_new_trace(session):
    profiler.set_state("run")
    mx.nd.ones((2,)) + 1
    profiler.dump(finished=False)
    assert profiler.state() == "run"
    mx.nd.ones((2,)) * 2
    profiler.dump()                          # finished=True
    assert profiler.state() == "stop"
    assert [e["name"] for e in _events(session, "operator")] == ["_plus_scalar", "_mul_scalar"]
    profiler.set_state("run")
    mx.nd.ones((2,)) - 1
    profiler.dump()
    assert [e["name"] for e in _events(session, "operator")] == ["_minus_scalar"]


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(GraphcError, match="unknown argument bogus.*accepted: aggregate_stats"):
        profiler.set_config(bogus=1, profile_all=True)
    with pytest.raises(GraphcError, match="profile_all must be a boolean.*'maybe'"):
        profiler.set_config(profile_all="maybe")
    with pytest.raises(GraphcError, match="state must be 'run' or 'stop', got 'go'"):
        profiler.set_state("go")
    with pytest.raises(GraphcError, match="server"):
        profiler.set_state("run", profile_process="server")
    with pytest.raises(GraphcError, match="format must be 'table' or 'json', got 'xml'"):
        profiler.dumps(format="xml")
    with pytest.raises(GraphcError, match="sort_by must be one of"):
        profiler.dumps(sort_by="median")
    profiler.set_config(profile_all="1", dump_period="0.5")      # MXNet passes every value as text
    assert profiler.state() == "stop"


def test_mx_profiler_is_the_module():
    assert mx.profiler is profiler


@pytest.mark.skipif(not os.access(MXNET_PYTHON, os.X_OK), reason="the MXNet 1.9.1 oracle venv is not installed")
def test_table_sections_read_as_mxnets(tmp_path, session):
    script = ("import mxnet as mx\n"
              f"mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename={str(tmp_path / 'm.json')!r})\n"
              "mx.profiler.set_state('run')\n"
              "a = mx.nd.ones((4, 4)); b = mx.nd.dot(a, a); b.wait_to_read()\n"
              "mx.profiler.set_state('stop')\n"
              "print(mx.profiler.dumps(), end='')\n")
    proc = subprocess.run([MXNET_PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = proc.stdout.split("\n")
    profiler.set_state("run")
    a = mx.nd.ones((4, 4))
    mx.nd.dot(a, a)
    profiler.set_state("stop")
    ours = profiler.dumps().split("\n")
    assert ours[:3] == theirs[:3]
    i, j = theirs.index("operator"), ours.index("operator")
    assert ours[j:j + 4] == theirs[i:i + 4]              # title, rule, header, dashes
    their_dot = next(line for line in theirs[i:] if line.startswith("dot "))
    our_dot = next(line for line in ours[j:] if line.startswith("dot "))
    assert len(our_dot) == len(their_dot) and our_dot.split()[:2] == their_dot.split()[:2]
    trace = json.loads((tmp_path / "m.json").read_text())
    assert set(trace) == {"traceEvents", "displayTimeUnit"} and trace["displayTimeUnit"] == "ms"


def test_program_table_formats_graphc_profile_timings(monkeypatch):
    gb = GraphBuilder("tabled")
    F = gb.F
    x = gb.var("x", TensorType((8, 16)))
    w = gb.var("w", TensorType((4, 16)), "param")
    g = gb.build([F.gammaln(F.FullyConnected(x, w, num_hidden=4, no_bias=True))])
    arrays = [np.ones((8, 16), np.float32), np.ones((4, 16), np.float32)]
    plain = compile_graph(g)
    plain(arrays)
    with pytest.raises(GraphcError, match="tabled has no timings.*GRAPHC_PROFILE=1"):
        profiler.program_table(plain)
    profiler.set_state("run")
    plain(arrays)                                   # profiled through its twin
    profiler.set_state("stop")
    assert "1 calls" in profiler.program_table(plain)
    monkeypatch.setenv("GRAPHC_PROFILE", "1")
    built = compile_graph(g, cache=False)
    for _ in range(2):
        built(arrays)
    lines = profiler.program_table(built).split("\n")
    assert lines[0].startswith("program tabled: 2 steps, 2 calls, ")      # the GEMM, the host gammaln
    assert lines[1].split() == ["kernel", "kind", "ms/call", "share", "what"]
    kinds = sorted(line.split()[1] for line in lines[2:])
    assert kinds == ["host", "native"]
    shares = [float(line.split()[3].rstrip("%")) for line in lines[2:]]
    assert sum(shares) == pytest.approx(100, abs=0.2) and shares == sorted(shares, reverse=True)
    assert any("gemm 1x8x4x16 tB" in line for line in lines[2:])


def test_a_process_that_never_dumps_leaves_its_trace_at_exit(tmp_path):
    import sys
    script = ("import graphc as mx\n"
              f"mx.profiler.set_config(filename={str(tmp_path / 'exit.json')!r})\n"
              "mx.profiler.set_state('run')\n"
              "mx.nd.ones((2, 2)) + 1\n"
              "mx.profiler.set_state('stop')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [e["name"] for e in json.loads((tmp_path / "exit.json").read_text())["traceEvents"]]
    assert "_plus_scalar" in names
    proc = subprocess.run([sys.executable, "-c", script.replace("exit.json", "none.json").replace(
        "set_config(", "set_config(continuous_dump=False, ")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not (tmp_path / "none.json").exists()
