"""graphc beside PyTorch on one GPU: W1, W1b, W2, W3, W4, W5, W8a, W8b, W9 (WORKLOADS.md's GPU row).

    python3 bench/gpu/bench_gpu.py [--budget 300] [--workloads W1,W2] [--systems graphc,torch]
    python3 bench/gpu/bench_gpu.py --smoke        # tiny shapes: graphc on the CUDA simulator,
                                                  # PyTorch on the CPU (tests the harness here)

Each system runs in its own process (graphc; PyTorch eager, which also measures the copy
bandwidth and the float32 matmul rate; torch.compile), one after the other so that none shares
the GPU with another, each with a share of the time budget: a child starts no variant past its
deadline, and the parent kills a child that outlives it. A system that fails, hangs or cannot
import is listed with its reason and the run goes on. The markdown section goes to stdout and to
--output (default $OUT/bench_gpu.md on the lent machine, else bench/.work/bench_gpu.md), the raw
records beside it as JSON, each child's stderr under logs/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKLOADS = ["W1", "W1b", "W2", "W3", "W4", "W5", "W8a", "W8b", "W9"]
SYSTEMS = ["graphc", "torch", "torch.compile"]
# shares of the time budget (a system that ends early leaves its rest to the next ones):
# torch.compile spends most of its time compiling
SHARES = {"graphc": 0.35, "torch": 0.15, "torch.compile": 0.5}
STOP_MARGIN_S = 15.0       # a child's deadline is this much before its kill: time to finish
PREFIX = "@@BENCH "


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for all systems")
    ap.add_argument("--output", default="")
    ap.add_argument("--logs", default="", help="children's stdout/stderr (default: logs/ "
                                                "beside --output)")
    ap.add_argument("--graphc-python", default=sys.executable)
    ap.add_argument("--torch-python", default=sys.executable)
    ap.add_argument("--torch-modes", default="default,reduce-overhead",
                    help="torch.compile modes: default, reduce-overhead, "
                         "max-autotune-no-cudagraphs, max-autotune")
    ap.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ------------------------------------------------------------------ child
def child(a) -> None:
    sys.path.insert(0, str(HERE))
    import gpu_common as G
    G.setup_timing(a.smoke)
    if a.smoke:
        G.shrink_for_smoke()
    wls = [w for w in a.workloads.split(",") if w]
    if a.child == "graphc":
        import graphc_gpu
        graphc_gpu.run(wls, a.smoke)
    else:
        import torch_gpu
        torch_gpu.run("eager" if a.child == "torch" else "compile", wls, a.smoke,
                      tuple(m for m in a.torch_modes.split(",") if m))


# ------------------------------------------------------------------ parent
def default_output() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "bench_gpu.md" if out else ROOT / "bench" / ".work" / "bench_gpu.md"


def child_env(system: str, smoke: bool, deadline: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_GPU_DEADLINE=f"{deadline:.0f}")
    if smoke and system == "graphc":
        env["GRAPHC_CUDA_SIM"] = "1"
    if smoke and system != "graphc":
        env["CUDA_VISIBLE_DEVICES"] = ""      # the smoke run is the CPU path, GPU or not
    return env


def run_child(system: str, a, workloads: list, timeout: float, logs: Path, attempt: int):
    """Run one process of `system` on `workloads`: (its records, a failure message or None,
    the workloads it started, in order)."""
    py = a.graphc_python if system == "graphc" else a.torch_python
    cmd = [py, str(Path(__file__).resolve()), "--child", system, "--workloads",
           ",".join(workloads), "--torch-modes", a.torch_modes] + (["--smoke"] if a.smoke else [])
    deadline = time.time() + max(timeout - STOP_MARGIN_S, timeout / 2)
    stem = system if attempt == 0 else f"{system}.{attempt}"
    out_path, err_path = logs / f"{stem}.out", logs / f"{stem}.err"
    t0 = time.perf_counter()
    failure = None
    with open(out_path, "w") as out, open(err_path, "w") as err:
        try:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT,
                                 env=child_env(system, a.smoke, deadline),
                                 start_new_session=True)
        except OSError as e:
            return [], f"could not start {py}: {e}", []
        try:
            rc = p.wait(timeout=timeout)
            if rc != 0:
                failure = f"process exited with status {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)    # the child's own session: it and its workers
            p.wait()
            failure = f"timed out after {timeout:.0f} s (its share of --budget); killed"
    recs, started = [], []
    for ln in out_path.read_text(errors="replace").splitlines():
        if ln.startswith(PREFIX):
            try:
                r = json.loads(ln[len(PREFIX):])
            except json.JSONDecodeError:
                continue
            if "start" in r:
                started.append(r["start"])
            else:
                recs.append(r)
    for r in recs:
        if system == "torch.compile" and "info" not in r:
            r.setdefault("process", "torch.compile")
    if failure:
        tail = " | ".join(err_path.read_text(errors="replace").strip().splitlines()[-3:])
        failure = f"{failure} after {time.perf_counter() - t0:.0f} s; stderr: {tail}"
    return recs, failure, started


def run_system(system: str, a, timeout: float, logs: Path) -> list:
    """Every workload of `system`, in one process, unless it dies: a crash (a segfault in a
    driver, say) loses the workload it was running, which is listed with the exit status, and
    the workloads after it run in a fresh process. A timeout ends the system (its share is
    spent)."""
    end = time.time() + timeout
    todo = [w for w in a.workloads.split(",") if w]
    recs, attempt = [], 0
    while todo:
        got, failure, started = run_child(system, a, todo, end - time.time(), logs, attempt)
        recs += got
        if not failure:
            break
        where = started[-1] if started else "-"
        recs.append({"system": system, "variant": "(process)", "workload": where,
                     "error": failure[:600]})
        if "timed out" in failure or where not in todo or end - time.time() < 5:
            break
        todo = todo[todo.index(where) + 1:]
        attempt += 1
    return recs


def main(argv=None) -> int:
    a = parse(argv)
    if a.child:
        child(a)
        return 0
    output = Path(a.output) if a.output else default_output()
    output.parent.mkdir(parents=True, exist_ok=True)
    logs = Path(a.logs) if a.logs else output.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    systems = [s for s in a.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"bench_gpu: unknown system(s) {unknown}; known: {SYSTEMS}")
    end = time.time() + a.budget
    records = []
    for i, system in enumerate(systems):
        rest = systems[i:]
        share = SHARES[system] / sum(SHARES[s] for s in rest)
        timeout = max(min(10.0, a.budget), (end - time.time()) * share)
        t0 = time.perf_counter()
        got = run_system(system, a, timeout, logs)
        print(f"bench_gpu: {system}: {len(got)} records in {time.perf_counter() - t0:.0f} s "
              f"(limit {timeout:.0f} s)", file=sys.stderr, flush=True)
        records += got
    import report_gpu
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python3 bench/gpu/bench_gpu.py " + shlex.join(argv or sys.argv[1:]),
            "smoke": a.smoke, "workloads": a.workloads.split(",")}
    md = report_gpu.render(records, meta)
    output.write_text(md + "\n")
    output.with_suffix(".json").write_text(json.dumps({"meta": meta, "records": records},
                                                      indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
