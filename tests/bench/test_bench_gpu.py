"""The lent-GPU run (bench/gpu/): its harness is tested here, without a GPU, through --smoke
(graphc on the CUDA simulator, PyTorch on the CPU), and its shell scripts at least parse, so a
session that gets a GPU spends its minutes measuring, not debugging the harness."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / "bench" / "gpu"
sys.path.insert(0, str(GPU))

import report_gpu  # noqa: E402

TORCH_PY = ROOT / "bench" / ".venvs" / "torch" / "bin" / "python"


def bench(tmp_path, *args, timeout=120):
    out = tmp_path / "bench_gpu.md"
    cmd = [sys.executable, str(GPU / "bench_gpu.py"), "--smoke", "--output", str(out), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(out.with_suffix(".json").read_text())
    return out.read_text(), data["records"], p


@pytest.mark.parametrize("script", ["run_on_device.sh", "prepare_wheels.sh"])
def test_scripts_parse(script):
    p = subprocess.run(["bash", "-n", str(GPU / script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_device_command_fits_the_tool():
    """README's command is what a session passes to the device tool (2,000 characters at most)
    and it names the script that exists."""
    text = (GPU / "README.md").read_text()
    cmd = "bash bench/gpu/run_on_device.sh"
    assert cmd in text and len(cmd) < 2000
    assert os.access(GPU / "run_on_device.sh", os.R_OK)


@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA simulator needs g++")
def test_smoke_run_measures_graphc_on_the_simulator_beside_torch(tmp_path):
    torch_py = str(TORCH_PY) if TORCH_PY.exists() else sys.executable
    md, recs, _ = bench(tmp_path, "--workloads", "W1b", "--systems", "graphc,torch",
                        "--torch-python", torch_py)
    info = {k: v for r in recs if "info" in r for k, v in r["info"].items()}
    assert info.get("graphc_driver") == "sim", info
    g = [r for r in recs if r.get("system") == "graphc" and r.get("workload") == "W1b"]
    assert len(g) == 1 and "error" not in g[0], g
    assert g[0]["ctx"] == "gpu(0)" and g[0]["max_abs_err"] < 1e-3 and g[0]["median"] > 0
    assert "### W1b" in md and "| graphc gpu hybrid |" in md
    if TORCH_PY.exists():
        copy = [r for r in recs if r.get("workload") == "W0" and r.get("variant") == "copy"]
        assert copy and copy[0]["median"] > 0
        assert "of copy" in md and "| torch eager |" in md
        assert "graphc" in md.split("### W1b")[1] and "the speed of torch eager" in md


def test_a_failing_system_is_listed_and_the_run_goes_on(tmp_path):
    md, recs, _ = bench(tmp_path, "--workloads", "W1", "--systems", "graphc",
                        "--graphc-python", "/bin/false")
    (err,) = [r for r in recs if "error" in r]
    assert err["system"] == "graphc" and "exited with status 1" in err["error"]
    assert "### Not measured" in md and "exited with status 1" in md


def test_a_hanging_system_is_killed_at_its_share_of_the_budget(tmp_path):
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    md, recs, p = bench(tmp_path, "--workloads", "W1", "--systems", "graphc",
                        "--graphc-python", str(hang), "--budget", "1", timeout=30)
    (err,) = [r for r in recs if "error" in r]
    assert "timed out after 1 s" in err["error"], err
    assert "timed out" in md


def test_a_crash_loses_only_the_workload_it_was_running(tmp_path):
    """A child that dies (a segfault in a driver) is started again on the workloads after the
    one it was running; that one is listed with the exit status."""
    fake = tmp_path / "crashy.sh"
    fake.write_text("""#!/bin/sh
# called as: crashy.sh bench_gpu.py --child graphc --workloads LIST ...
case "$5" in
  W1,*) echo '@@BENCH {"start": "W1", "system": "graphc"}'; kill -SEGV $$ ;;
  *) echo '@@BENCH {"start": "W1b", "system": "graphc"}'
     echo '@@BENCH {"system": "graphc", "variant": "gpu hybrid", "workload": "W1b", "unit": "ms", "median": 1.0, "samples": [1.0], "n_samples": 1}' ;;
esac
""")
    fake.chmod(0o755)
    md, recs, _ = bench(tmp_path, "--workloads", "W1,W1b", "--systems", "graphc",
                        "--graphc-python", str(fake))
    (err,) = [r for r in recs if "error" in r]
    assert err["workload"] == "W1" and "status -11" in err["error"], err
    assert [r["workload"] for r in recs if "median" in r] == ["W1b"]
    assert "| graphc gpu hybrid | 1 |" in md


def rec(system, samples, unit, variant="v", wl="W2", **kw):
    import statistics
    return {"system": system, "variant": variant, "workload": wl, "unit": unit,
            "median": statistics.median(samples), "samples": samples, **kw}


def test_verdict_follows_the_spreads_and_the_unit_direction():
    fast_t = rec("graphc", [1.0, 1.1], "ms")
    slow_t = rec("torch", [2.0, 2.2], "ms", variant="eager")
    assert "**faster**" in report_gpu.verdict(fast_t, [slow_t])
    assert "2.00x" in report_gpu.verdict(fast_t, [slow_t])
    assert "**slower**" in report_gpu.verdict(rec("graphc", [3.0, 3.1], "ms"), [slow_t])
    assert "even" in report_gpu.verdict(rec("graphc", [1.9, 2.1], "ms"), [slow_t])
    # steps/s: larger is better; the best peer is the fastest of several
    g = rec("graphc", [100.0, 110.0], "steps/s")
    peers = [rec("torch", [50.0, 60.0], "steps/s", variant="eager"),
             rec("torch", [120.0, 130.0], "steps/s", variant="compile")]
    v = report_gpu.verdict(g, peers)
    assert "torch compile" in v and "**slower**" in v


def test_w1b_is_reported_as_a_fraction_of_the_copy_bandwidth():
    recs = [{"info": {"device": "H100"}, "system": "torch"},
            {"system": "torch", "variant": "copy", "workload": "W0", "unit": "GB/s",
             "median": 3000.0, "samples": [3000.0]},
            rec("graphc", [0.05], "ms", variant="gpu hybrid", wl="W1b", gbps=2700.0),
            {"system": "torch", "variant": "compile", "workload": "W9",
             "skip": "not run: the time budget had 0 s left"}]
    md = report_gpu.render(recs, {"workloads": ["W1b", "W9"]})
    assert "on H100" in md and "0.90 of copy" in md and "2700 GB/s" in md
    assert "- torch compile, W9: not run: the time budget" in md


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None or not TORCH_PY.exists(),
                    reason="needs g++ (simulator) and bench/.venvs/torch")
def test_smoke_run_of_every_workload_and_system(tmp_path):
    """Every workload of every system runs through the harness: PyTorch measures each one,
    graphc measures it or is listed with its error (its GPU backend is still growing); where
    both measured a training step, the seeded first-step losses agree."""
    md, recs, _ = bench(tmp_path, "--torch-python", str(TORCH_PY), "--budget", "600",
                        timeout=700)
    for wl in ("W1", "W1b", "W2", "W3", "W4", "W5", "W8a", "W8b", "W9"):
        torch_ok = [r for r in recs if r.get("workload") == wl and r["system"] == "torch"
                    and "median" in r]
        assert torch_ok, (wl, [r for r in recs if r.get("workload") == wl])
        graphc = [r for r in recs if r.get("workload") == wl and r["system"] == "graphc"]
        assert graphc, wl
        for r in graphc:
            assert "median" in r or str(r.get("error", ""))[:40] in md, r
    for wl in ("W3", "W5", "W8b", "W9"):
        losses = [r["first_loss"] for r in recs if r.get("workload") == wl and "first_loss" in r]
        if len(losses) > 1:
            assert max(losses) - min(losses) < 1e-3 * max(1.0, abs(losses[0])), (wl, losses)
