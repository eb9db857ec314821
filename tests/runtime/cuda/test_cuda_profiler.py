"""mx.profiler on the GPU: a profiled training step on gpu(0) writes named spans on the 'gpu/0'
track of the Chrome trace: the hybridized forward/backward programs ('gpu program'), the eager
operators ('operator') and the Trainer's compiled update ('gpu update'); each span waits for the
device (runtime/trace.py), and nothing is recorded while the profiler is stopped."""
import json

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd, profiler
from graphc.gluon import nn
from graphc.runtime import trace


@pytest.fixture
def session(tmp_path, cuda_device):
    import graphc.runtime.lower  # noqa: F401  (program.py imported first meets an import cycle)
    from graphc.runtime.cuda.program import clear_program_cache
    clear_program_cache()
    with profiler.isolated(filename=str(tmp_path / "profile.json")):
        yield tmp_path / "profile.json", cuda_device
    clear_program_cache()


def _net():
    net = nn.HybridSequential(prefix="gpumlp_")
    with net.name_scope():
        net.add(nn.Dense(8, activation="relu", in_units=5), nn.Dense(3, in_units=8))
    net.initialize(mx.init.Xavier(), ctx=mx.gpu(0))
    net.hybridize()
    return net


def _step(net, trainer, lossf, x, y):
    with autograd.record():
        l = lossf(net(x), y)
    l.backward()
    trainer.step(x.shape[0])
    return l


def test_a_profiled_gpu_training_step_has_named_spans_on_the_gpu_track(session, monkeypatch):
    path, drv = session
    net = _net()
    lossf = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    rs = np.random.RandomState(0)
    x = nd.array(rs.randn(4, 5), ctx=mx.gpu(0))
    y = nd.array(rs.randint(0, 3, 4), ctx=mx.gpu(0))
    _step(net, trainer, lossf, x, y).asnumpy()          # compiled before profiling
    syncs = []
    real_sync = drv.synchronize
    monkeypatch.setattr(drv, "synchronize", lambda device: (syncs.append(device), real_sync(device))[1])

    profiler.set_config(profile_all=True, aggregate_stats=True)
    profiler.set_state("run")
    l = _step(net, trainer, lossf, x, y)
    profiler.set_state("stop")
    profiler.dump()
    assert np.isfinite(l.asnumpy()).all()

    events = json.loads(path.read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    gpu_pid = trace.gpu_pid(0)
    assert names.get(gpu_pid) == "gpu/0", names
    on_gpu = [e for e in events if e["ph"] == "X" and e["pid"] == gpu_pid]
    by_cat = {}
    for e in on_gpu:
        assert e["dur"] > 0 and e["ts"] > 1e15, e
        by_cat.setdefault(e["cat"], []).append(e["name"])
    programs = by_cat.get("gpu program", [])
    assert len(programs) >= 2, by_cat                  # the forward and the backward at least
    assert any("gpumlp" in n for n in programs), programs
    assert by_cat.get("gpu update") == ["adam update"], by_cat
    assert "operator" in by_cat, by_cat                # the loss's eager operators
    assert set(syncs) == {0} and len(syncs) >= len(on_gpu)
    # the GPU spans are not on a CPU track
    assert not [e for e in events if e["ph"] == "X" and e.get("cat") in ("gpu program", "gpu update")
                and e["pid"] != gpu_pid]
    assert any(k[1] == "gpu program" for k in profiler.stats())


def test_an_eager_gpu_operator_records_one_span_and_nothing_while_stopped(session):
    path, _ = session
    a = nd.array(np.arange(6, dtype=np.float32), ctx=mx.gpu(0))
    (a * 2).wait_to_read()
    profiler.set_config(profile_imperative=True, profile_symbolic=False)
    profiler.set_state("run")
    b = nd.relu(a - 3)
    profiler.set_state("stop")
    c = a + 1                               # not recorded
    profiler.dump()
    np.testing.assert_array_equal(b.asnumpy(), np.maximum(np.arange(6) - 3, 0))
    np.testing.assert_array_equal(c.asnumpy(), np.arange(6) + 1)
    spans = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    assert [(e["name"], e["cat"], e["pid"]) for e in spans] == \
        [("_minus_scalar", "operator", trace.gpu_pid(0)), ("relu", "operator", trace.gpu_pid(0))]
