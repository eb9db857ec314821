"""graphc benchmark suite: `make bench` runs this.

Sets up one virtualenv per other system (bench/setup_envs.py), runs every system on the
workloads of ../shared/bench/WORKLOADS.md (W0-W11, W5b), each (system, workload) as
its own subprocess in its system's environment, all pinned to 2 threads, and writes
BENCHMARKS.md at the repository root plus the raw JSON to bench/.work/results.json.

    .venv/bin/python bench/run.py [--only W1,W2] [--systems graphc,torch] [--quick]
                                  [--skip-setup] [--output BENCHMARKS.md]

A system that cannot be installed or a workload that fails (graphc included) is recorded
as "not available: ..." / "failed: ..." and the run goes on.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
SYSTEMS_DIR = BENCH / "systems"
sys.path.insert(0, str(BENCH))

import bounds  # noqa: E402
import env_variants  # noqa: E402
import report_fair  # noqa: E402
import setup_envs  # noqa: E402
import targets  # noqa: E402

THREADS = 2
WORKLOADS = ["W0", "W1", "W1b", "W2", "W3", "W4", "W5", "W5b", "W6", "W7", "W8a", "W8b", "W9",
             "W10", "W11"]
# System -> workloads its script measures.
SYSTEMS = {
    "numpy": ["W0", "W1", "W1b", "W2"],
    "torch": ["W0", "W1", "W1b", "W2", "W3", "W4", "W5", "W5b", "W6", "W7", "W8a", "W8b", "W9",
              "W10"],
    "jax": ["W1", "W1b", "W2", "W3", "W7", "W8a", "W8b", "W9"],
    "mxnet": ["W1", "W1b", "W2", "W3", "W4", "W5", "W5b", "W6", "W7", "W8a", "W8b", "W9"],
    "onnxruntime": ["W2", "W4", "W6", "W8a"],
    "tinygrad": ["W1", "W1b", "W2", "W3", "W4"],
    "graphc": ["W1", "W1b", "W2", "W3", "W4", "W5", "W5b", "W6", "W7", "W8a", "W8b", "W9", "W10",
               "W11"],   # W11: no peer (torch has no CPU pipeline)
}
OWN_VENV = {"numpy", "graphc"}          # run in graphc's own .venv (this interpreter)
NEEDS_VENV = {"onnxruntime": ["torch"]}  # its ONNX file is exported in the torch venv
PROC_TIMEOUT = 600                      # seconds per (system, workload) subprocess
PROC_TIMEOUT_WL = {"W6": 1200,          # W6 starts several fresh processes that each compile
                   "W2": 900, "W3": 900,       # torch: compiled variants incl. max-autotune
                   "W10": 2400,         # W10: a child (or 2 ranks) per configuration, torch.compile
                   "W4": 1200,                 # torch: 5 variants, 3 of them compiled
                   "W5b": 900,                 # graphc: W5 and W5b alternated, both compiled
                   "W8a": 1500, "W8b": 1500,   # torch.compile of a BERT-base / an LM step
                   "W9": 2400,                 # W9: a process per torch variant (peak RSS)
                   "W11": 1800}         # W11: one child, three nets of 8 x 2048x2048 layers, alternated

LABELS = {
    ("triad", "C gcc -O3 -march=native -fopenmp"): "STREAM triad (C, gcc -O3 -march=native -fopenmp)",
    ("numpy", "sgemm2048"): "SGEMM 2048³, numpy/OpenBLAS",
    ("numpy", "sgemm4096"): "SGEMM 4096³, numpy/OpenBLAS",
    ("torch", "matmul2048"): "SGEMM 2048³, torch.matmul",
    ("torch", "matmul4096"): "SGEMM 4096³, torch.matmul",
    ("numpy", "hand-written"): "numpy (hand-written)",
    ("numpy", "hand-written, out="): "numpy (hand-written, preallocated out=)",
    ("torch", "eager"): "PyTorch eager",
    ("torch", "compile"): "torch.compile",
    ("torch", "jit.trace"): "torch.jit.trace",
    ("jax", "jit"): "JAX jax.jit",
    ("mxnet", "hybrid"): "MXNet 1.9.1 Gluon hybridized",
    ("graphc", "hybrid"): "**graphc** Gluon hybridized",
    ("onnxruntime", "CPU EP"): "onnxruntime (CPU EP, 2 intra-op threads; torch.onnx.export)",
    ("onnxruntime", "session"): "onnxruntime InferenceSession + first run",
    ("torch", "compile-cold"): "torch.compile, cold (empty inductor cache dir)",
    ("torch", "compile-warm"): "torch.compile, warm inductor cache (2nd process)",
    ("graphc", "hybrid-cold"): "**graphc** hybridize, cold (empty GRAPHC_CACHE_DIR)",
    ("graphc", "hybrid-warm"): "**graphc** hybridize, warm kernel cache (2nd process)",
    ("fma", "C gcc -O3 -march=native -fopenmp"): "FMA peak (C, independent vector FMA chains)",
    ("graphc", "imperative"): "**graphc** eager (not hybridized)",
    ("mxnet", "imperative"): "MXNet 1.9.1 imperative (not hybridized)",
    ("jax", "op-by-op"): "JAX op by op (no jit)",
    ("mxnet", "hybrid+oneDNN"): "MXNet 1.9.1 hybridized + oneDNN subgraph (optimize_for MKLDNN)",
    ("torch", "compile+freezing"): "torch.compile, inductor freezing",
    ("torch", "compile max-autotune"): "torch.compile, mode max-autotune-no-cudagraphs",
    ("torch", "compile+freezing+channels_last"): "torch.compile, freezing, channels_last",
    ("torch", "jit.freeze"): "torch.jit.freeze(torch.jit.trace)",
    ("torch", "eager+channels_last"): "PyTorch eager, channels_last",
    ("torch", "compile+channels_last"): "torch.compile, channels_last",
    ("tinygrad", "TinyJit"): "tinygrad TinyJit (clang: zig cc from the ziglang wheel)",
}
UNIT_LABEL = {"ms": "ms", "us": "µs per call", "steps/s": "steps/s", "GB/s": "GB/s",
              "GFLOP/s": "GFLOP/s", "s": "s"}
HIGHER_IS_BETTER = {"steps/s", "GB/s", "GFLOP/s"}
TITLES = {
    "W0": "W0: machine limits (STREAM triad on 2^25 float32; SGEMM)",
    "W1": "W1: y = tanh(x*0.5 + 1) * sigmoid(x) + 0.1*x, x: 2^24 float32, forward",
    "W1b": "W1b: y = relu(x*0.5 + 1) * x - 0.25, x: 2^24 float32 (memory-bound)",
    "W2": "W2: MLP 784-512-512-10 ReLU, batch 1, inference",
    "W3": "W3: MLP 784-512-512-10, batch 256, softmax CE, forward + backward + SGD (lr 0.1); Gluon systems hybridize the network and the loss",
    "W4": "W4: ResNet-18 v1 (MXNet model-zoo structure), batch 1, 3×224×224 float32, inference (ms per image; GFLOP/s at 3.63 GFLOP, the direct-convolution equivalent: graphc's Winograd executes about 2.0)",
    "W7": "W7: imperative (not hybridized, not jitted) training step of W3's MLP, batch 64, softmax CE, SGD lr 0.1 momentum 0.9",
    "W8a": "W8a: BERT-base-shaped encoder inference (12 post-LN layers, hidden 768, 12 heads, FFN 3072, erf GELU, eps 1e-12), sequence 128, batch 1, as ordinary Gluon HybridBlocks",
    "W8b": "W8b: Transformer LM training step (2 layers, d_model 256, 4 heads, FFN 1024, vocab 10000, sequence 64, batch 32, causal mask), softmax CE, Adam lr 1e-3",
    "W9": "W9: ResNet-18 v1 training step, batch 16, 3×224×224, BatchNorm in training mode, softmax CE, SGD lr 0.01 momentum 0.9 wd 1e-4 (steps/s; peak resident memory)",
    "W5": "W5: 2-layer LSTM LM (vocab 10000, embed 200, hidden 200, seq 35, batch 20), one step: forward, softmax CE over all 700 positions, backward, global-norm clip 0.25 (per-token mean gradient), SGD lr 20",
    "W5b": "W5b: W5 in training mode with word_language_model's dropout 0.5 (on the embedding output, between the two LSTM layers, before the decoder)",
    "W6": "W6: first call of W4's model in a fresh process (trace + compile + run)",
    "W11": "W11: pipeline-parallel training, MLP 8 × 2048 ReLU layers (input 2048, 10 classes), batch 256, 4 micro-batches, 2 devices × 1 core against 1 device × 1 core, softmax CE + SGD",
    "W10": "W10: data-parallel training, 2 ranks × 1 thread against 1 process × 2 threads (same global batch): graphc kvstore dist_sync over MPI beside PyTorch DDP (gloo); all-reduce GB/s against raw mpi4py",
}


# ------------------------------------------------------------------ environment
def bench_env() -> dict:
    """Environment for every benchmark subprocess: 2 threads everywhere; the OpenBLAS
    core-type overrides of this machine are dropped (they slow a current numpy)."""
    env = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONPATH", "PYTHONHOME"):
        env.pop(k, None)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS"):
        env[k] = str(THREADS)
    # MXNet: one engine worker running 2-thread operators (2 workers x 2 OpenMP threads
    # oversubscribed the 2 cores); JAX: XLA's default flags (issue 14)
    env["MXNET_CPU_WORKER_NTHREADS"] = "1"
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _cpu_busy_s() -> float | None:
    """CPU-seconds the whole machine has spent busy since boot (from /proc/stat)."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _children_cpu_s() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class OtherLoad:
    """Cores kept busy by processes other than our benchmark child over an interval:
    (machine busy CPU-seconds - child CPU-seconds) / wall seconds."""

    def __enter__(self):
        self.t, self.busy, self.child = time.time(), _cpu_busy_s(), _children_cpu_s()
        return self

    def __exit__(self, *exc):
        wall = time.time() - self.t
        busy = _cpu_busy_s()
        if busy is None or self.busy is None or wall <= 0:
            self.value = None
        else:
            self.value = max(0.0, (busy - self.busy - (_children_cpu_s() - self.child)) / wall)
        return False


def busy_now(interval: float = 1.0) -> float | None:
    with OtherLoad() as o:
        time.sleep(interval)
    return o.value


IDLE_THRESHOLD = 0.25      # cores busy with other work above which we wait before measuring


def wait_idle(max_wait: float, budget: dict) -> float | None:
    """Wait (at most max_wait s, and within the run's remaining wait budget) until other
    processes keep less than IDLE_THRESHOLD cores busy. Returns the last busy reading."""
    t0 = time.time()
    b = busy_now(0.5)
    while (b is not None and b > IDLE_THRESHOLD and time.time() - t0 < max_wait
           and budget["left"] > 0):
        b = busy_now(1.0)
        budget["left"] -= 1.0
    waited = time.time() - t0
    if waited > 2:
        print(f"   (waited {waited:.0f} s for the machine to go quiet; other load now "
              f"{b if b is None else round(b, 2)} cores)", flush=True)
    return b


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None


def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        fields = {}
        for line in cpuinfo.splitlines():
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                fields.setdefault(k, v)
        info["cpu_model"] = fields.get("model name", "?")
        info["cpu_family_model"] = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
        flags = set(fields.get("flags", "").split())
        info["isa"] = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16",
                                           "avx512_vnni", "amx_tile") if f in flags)
        info["logical_cpus"] = cpuinfo.count("processor\t:")
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["gcc"] = subprocess.run(["gcc", "--version"], capture_output=True, text=True,
                                     timeout=30).stdout.splitlines()[0]
    except Exception:  # noqa: BLE001
        info["gcc"] = "not found"
    return info


# ------------------------------------------------------------------ runners
def _tail(text: str, n: int = 4) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-500:]


def run_triad(quick: bool, env: dict) -> list[dict]:
    variant = "C gcc -O3 -march=native -fopenmp"
    exe = WORK / "triad"
    src = BENCH / "triad.c"
    try:
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            p = subprocess.run(["gcc", "-O3", "-march=native", "-fopenmp", str(src), "-o",
                                str(exe)], capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("gcc failed: " + _tail(p.stderr))
        la = loadavg()
        with OtherLoad() as ol:
            p = subprocess.run([str(exe), "10" if quick else "30"], capture_output=True,
                               text=True, timeout=120, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"exit {p.returncode}: " + _tail(p.stdout + p.stderr))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        return [{"system": "triad", "variant": variant, "workload": "W0", "unit": "GB/s",
                 "median": r["median_gbps"], "best": r["best_gbps"], "n_samples": r["repeats"],
                 "spread": [r["worst_gbps"], r["best_gbps"]],
                 "threads": r["threads"], "loadavg_before": la, "raw": r,
                 "other_load": None if ol.value is None else round(ol.value, 2)}]
    except Exception as e:  # noqa: BLE001
        return [{"system": "triad", "variant": variant, "workload": "W0",
                 "error": f"{type(e).__name__}: {e}"}]


def run_fma(quick: bool, env: dict) -> list[dict]:
    """W0: the FMA peak (bench/fma_peak.c), the compute side of every workload's lower bound."""
    variant = "C gcc -O3 -march=native -fopenmp"
    exe, src = WORK / "fma_peak", BENCH / "fma_peak.c"
    try:
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            p = subprocess.run(["gcc", "-O3", "-march=native", "-fopenmp", str(src), "-o",
                                str(exe)], capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("gcc failed: " + _tail(p.stderr))
        with OtherLoad() as ol:
            p = subprocess.run([str(exe), "5" if quick else "15"], capture_output=True,
                               text=True, timeout=300, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"exit {p.returncode}: " + _tail(p.stdout + p.stderr))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        return [{"system": "fma", "variant": variant, "workload": "W0", "unit": "GFLOP/s",
                 "median": r["median_gflops"], "best": r["best_gflops"],
                 "n_samples": r["repeats"], "spread": [r["worst_gflops"], r["best_gflops"]],
                 "threads": r["threads"], "raw": r,
                 "other_load": None if ol.value is None else round(ol.value, 2)}]
    except Exception as e:  # noqa: BLE001
        return [{"system": "fma", "variant": variant, "workload": "W0",
                 "error": f"{type(e).__name__}: {e}"}]


ENV_VARIANT_TOP = 2     # an environment variant reruns this many of the peer's fastest variants


def fastest_variants(recs: list, n: int = ENV_VARIANT_TOP) -> str | None:
    """The `--variants` list of the base run's n fastest variants, or None (run them all) when
    there are at most n (every peer on W1/W1b, where the allocator is decisive) or a name
    cannot be passed in a comma list. Elsewhere outputs are small, and an allocator or THP
    changes a variant's time by far less than the gaps between a peer's variants (eager vs
    compiled), so a slower one cannot become the peer's best; rerunning only the fastest keeps
    the full run within its time (W4's THP rerun would otherwise compile 5 models)."""
    ok = sorted((r for r in recs if "median" in r), key=speed, reverse=True)
    names = list(dict.fromkeys(r["variant"] for r in ok))
    if len(names) <= n or any("," in v for v in names[:n]):
        return None
    return ",".join(names[:n])


def run_env_variants(s: str, wl: str, py: str, quick: bool, env: dict, jemalloc,
                     base: list | None = None) -> list:
    """The peer's runs with a tuned environment (env_variants.py), of its fastest variants in
    the base run; unavailable ones recorded with their reason."""
    out = []
    only = fastest_variants(base or [])
    for name, updates, reason in env_variants.variants(s, wl, os.environ, jemalloc):
        if updates is not None and quick and wl not in env_variants.QUICK_WORKLOADS:
            updates, reason = None, "not run with --quick (a full run measures it)"
        if updates is None:
            out.append({"system": s, "variant": f"[{name}]", "workload": wl, "skip": reason})
            continue
        recs = run_script(s, wl, py, quick, env_variants.apply(env, updates),
                          log_tag="_" + name.split("=")[0], variants=only)
        out += env_variants.tag(recs, name)
    return out


def run_script(system: str, workload: str, python: str, quick: bool, env: dict,
               log_tag: str = "", variants: str | None = None) -> list[dict]:
    script = SYSTEMS_DIR / f"{system}_w.py"
    cmd = [python, str(script), "--workload", workload] + (["--quick"] if quick else [])
    if variants:
        cmd += ["--variants", variants]
    timeout = PROC_TIMEOUT_WL.get(workload, PROC_TIMEOUT)
    la = loadavg()
    t0 = time.time()
    log = WORK / "logs" / f"{system}_{workload}{log_tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ol = OtherLoad().__enter__()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=str(ROOT))
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or ""))
        err += f"\n[timed out after {timeout}s]"
        rc = "timeout"
    ol.__exit__(None, None, None)
    log.write_text(f"$ {shlex.join(cmd)}\n[exit {rc}]\n--- stdout\n{out}\n--- stderr\n{err}\n")
    recs = []
    for line in out.splitlines():
        if line.startswith("@@BENCH "):
            try:
                recs.append(json.loads(line[len("@@BENCH "):]))
            except json.JSONDecodeError:
                pass
    for r in recs:
        r["loadavg_before"] = la
        r["other_load"] = None if ol.value is None else round(ol.value, 2)
    if rc != 0:
        msg = f"process exit {rc}: {_tail(err)}" if rc != "timeout" else \
            f"timed out after {timeout}s"
        if not recs:
            recs.append({"system": system, "variant": "-", "workload": workload, "error": msg})
        else:
            recs[-1].setdefault("note", msg)
            # the variants after the last one reported were never measured: say so in the table
            recs.append({"system": system, "variant": f"(variants after {recs[-1].get('variant')})",
                         "workload": workload, "error": msg + "; any later variants not measured"})
    wall = time.time() - t0
    for r in recs:
        r["process_wall_s"] = round(wall, 2)
    return recs


def describe(rec: dict) -> str:
    if "error" in rec:
        return f"failed: {rec['error']}"
    if "skip" in rec:
        return f"skipped: {rec['skip']}"
    return f"{rec['median']:.4g} {rec['unit']}"


# ------------------------------------------------------------------ report
def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _load(rec: dict) -> str:
    v = rec.get("other_load")
    if v is None:
        return ""
    return f"{v:.2f} ⚠" if v > NOISY else f"{v:.2f}"


NOISY = 0.3     # cores of other work during a measurement above which it is flagged


def label(rec: dict) -> str:
    v = rec.get("base_variant", rec.get("variant"))
    text = LABELS.get((rec["system"], v), f"{rec['system']} {v or ''}")
    return text + (f" [{rec['env_variant']}]" if rec.get("env_variant") else "")


def speed(rec: dict) -> float:
    """Higher is better, whatever the unit."""
    return rec["median"] if rec["unit"] in HIGHER_IS_BETTER else 1.0 / rec["median"]


def spread(rec: dict) -> str:
    s = rec.get("samples") or rec.get("spread")
    if not s:
        return ""
    return f"{_fmt(min(s))}–{_fmt(max(s))}"


def triad_gbps(results: list[dict]) -> float | None:
    for r in results:
        if r["system"] == "triad" and "median" in r:
            return r["median"]
    return None


def triad_best(results: list[dict]) -> float | None:
    for r in results:
        if r["system"] == "triad" and r.get("best"):
            return r["best"]
    return None


def render(results: list[dict], meta: dict, envs: dict) -> str:
    m = meta["machine"]
    out = ["# Benchmarks", "",
           "Generated by `bench/run.py` (`make bench`); workloads as defined in "
           "`shared/bench/WORKLOADS.md`. Every system runs in its own virtual environment, "
           f"in its own process, pinned to {THREADS} threads (OMP/MKL/OpenBLAS_NUM_THREADS, "
           "`torch.set_num_threads`, XLA_FLAGS), in one run. Figures are medians over repeats "
           "after warm-up; the spread column shows min–max of the samples. "
           "\"vs best other\" is the speed relative to the fastest system other than graphc "
           "(higher is faster; 1.00 = the best other system).", "",
           "## Machine and run", "",
           f"- date: {meta['date']}",
           f"- CPU: {m.get('cpu_model', '?')} ({m.get('cpu_family_model', '')}; ISA: {m.get('isa', '')}), "
           f"{m.get('cores')} cores, {m.get('mem_gib', '?')} GiB",
           f"- OS: {m.get('platform')}; Python {m.get('python')}; {m.get('gcc')}",
           f"- threads per system: {THREADS}; MXNet: one engine worker "
           "(MXNET_CPU_WORKER_NTHREADS=1) of 2 OpenMP threads; JAX: XLA's default flags; "
           "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for the base runs, and numpy and MXNet "
           "measured again with the environment's values where it sets them (variant "
           "[OPENBLAS_CORETYPE=...])",
           f"- tuned allocators: every peer also runs with jemalloc (LD_PRELOAD, MALLOC_CONF="
           f"{env_variants.MALLOC_CONF}) and PyTorch with THP_MEM_ALLOC_ENABLE=1, and its best "
           f"variant counts; jemalloc here: {meta.get('jemalloc', '?')}",
           "- verdicts: \"faster\"/\"slower\" only where graphc's sample range and the best "
           "other's do not overlap; otherwise \"even\"",
           f"- load average before the run: {meta.get('loadavg_start')}; after: "
           f"{meta.get('loadavg_end')} (the machine may be shared; see per-record "
           "`loadavg_before` in bench/.work/results.json)",
           f"- mode: {'quick (fewer repeats)' if meta['quick'] else 'full'}; total run time "
           f"{meta.get('total_s', 0):.0f} s",
           f"- command: `{meta['command']}`", "",
           "### Systems", "",
           "| system | status |", "|---|---|"]
    for name, e in envs.items():
        status = e.get("version") if e.get("ok") else f"not available: {e.get('reason')}"
        out.append(f"| {name} | {_md_escape(str(status))} |")
    out.append(f"| numpy (graphc's .venv) | {meta.get('own_numpy', '?')} |")
    out.append(f"| graphc | {_md_escape(meta.get('graphc_status', '?'))} |")
    out.append("")

    triad = triad_gbps(results)
    by_wl: dict[str, list[dict]] = {}
    for r in results:
        by_wl.setdefault(r["workload"], []).append(r)

    for wl in meta["workloads"]:
        recs = by_wl.get(wl, [])
        out += [f"## {TITLES.get(wl, wl)}", ""]
        if not recs:
            out += ["(not run)", ""]
            continue
        if wl == "W10":
            import report_w10
            out += report_w10.section(recs, _fmt, spread, _load)
            continue
        if wl == "W11":
            import report_w11
            out += report_w11.section(recs, _fmt, spread, _load)
            continue
        if wl == "W0":
            out += ["| what | median | best | spread | other load | notes |",
                    "|---|---|---|---|---|---|"]
            for r in recs:
                if "error" in r:
                    out.append(f"| {label(r)} | failed: {_md_escape(r['error'])} | | | | |")
                    continue
                if "median" not in r:     # an environment variant that could not run
                    out.append(f"| {label(r)} | {_md_escape(str(r.get('skip', '?')))} | | | | |")
                    continue
                best = r.get("best") or (max(r["samples"]) if r.get("samples") else None)
                note = ""
                if r["system"] == "triad":
                    note = "12 bytes/element (STREAM convention)"
                elif r.get("blas"):
                    note = f"{r['blas']} {r.get('blas_version', '')} core {r.get('blas_core', '')}"
                out.append(f"| {label(r)} | {_fmt(r['median'])} {r['unit']} | "
                           f"{_fmt(best) if best else ''} | {spread(r)} | {_load(r)} | {note} |")
            out.append("")
            continue
        ok = [r for r in recs if "median" in r]
        others = [r for r in ok if r["system"] != "graphc"]
        best_other = max(others, key=speed) if others else None
        unit = ok[0]["unit"] if ok else ""
        head = f"| system | median ({UNIT_LABEL.get(unit, unit)}) | spread | vs best other |"
        sep = "|---|---|---|---|"
        if wl in ("W1", "W1b"):
            head += " effective GB/s | of triad |"
            sep += "---|---|"
        if wl in ("W4", "W8a"):
            head += " GFLOP/s |"
            sep += "---|"
        if wl == "W9":
            head += " peak RSS MiB |"
            sep += "---|"
        if wl == "W6":
            head += " fresh processes | framework import s |"
            sep += "---|---|"
        else:
            head += " first-call s |"
            sep += "---|"
        head += " other load |"
        sep += "---|"
        out += [head, sep]
        for r in sorted(ok, key=speed, reverse=True):
            rel = speed(r) / speed(best_other) if best_other else float("nan")
            row = f"| {label(r)} | {_fmt(r['median'])} | {spread(r)} | {rel:.2f} |"
            if wl in ("W1", "W1b"):
                frac = f"{r['gbps'] / triad:.2f}" if triad else "n/a"
                row += f" {_fmt(r['gbps'])} | {frac} |"
            if wl in ("W4", "W8a"):
                row += f" {_fmt(bounds.WORK[wl][0] / 1e9 / bounds.seconds_of(r))} |"
            if wl == "W9":
                rss = r.get("peak_rss_mib")
                row += f" {rss:.0f} |" if isinstance(rss, (int, float)) else " |"
            if wl == "W6":
                imp = r.get("import_s")
                row += f" {r.get('n_samples', '')} |"
                row += f" {imp:.2f} |" if isinstance(imp, (int, float)) else " |"
            else:
                st = r.get("setup_s")
                row += f" {st:.2f} |" if isinstance(st, (int, float)) else " |"
            row += f" {_load(r)} |"
            out.append(row)
        ncols = head.count("|") - 1
        for r in recs:
            if "median" not in r and "skip" not in r:
                msg = describe(r)
                if r["system"] == "graphc":
                    msg = f"pending — {msg}"
                out.append(f"| {label(r)} | {_md_escape(msg)} |" + " |" * (ncols - 2))
        g = [r for r in ok if r["system"] == "graphc"]
        out.append("")
        if g and best_other:
            for gr in g:
                rel = speed(gr) / speed(best_other)
                which = f" ({gr['variant']})" if len(g) > 1 else ""
                out.append(f"graphc{which} vs best other ({label(best_other)}): {rel:.2f}× "
                           f"(**{report_fair.verdict(gr, best_other)}**).")
            if wl == "W1b" and triad:
                best_triad = triad_best(results)
                out.append(f"W1b triad fraction: graphc {g[0]['gbps']:.2f} GB/s / triad "
                           f"{triad:.2f} GB/s (median) = **{g[0]['gbps'] / triad:.2f}**"
                           + (f" (against the best triad repeat, {best_triad:.2f} GB/s: "
                              f"{g[0]['gbps'] / best_triad:.2f})" if best_triad else "") + ".")
        elif best_other:
            out.append(f"graphc: pending (no measurement). Best other: {label(best_other)}, "
                       f"{_fmt(best_other['median'])} {UNIT_LABEL.get(unit, unit)}.")
            if wl == "W1b" and triad:
                out.append(f"W1b triad fraction: graphc pending; best other "
                           f"{best_other['gbps'] / triad:.2f} of triad {triad:.2f} GB/s.")
        # W6 runs unseeded weights (the time does not depend on them): nothing to compare
        checked = [r for r in ok if r.get("first_loss", r.get("check")) is not None
                   and wl != "W6"]
        if checked:
            kind = {"W3": "first-step loss", "W5": "first-step loss; gradient norm before "
                    "clipping (of the per-token mean loss)",
                    "W4": "output fingerprint Σ logit_i·cos(i) with the seeded weights; "
                    "argmax", "W7": "first-step loss", "W8b": "first-step loss",
                    "W9": "first-step loss",
                    "W5b": "first-step loss in training mode with dropout 0.5; each system "
                    "draws its own dropout masks, so these agree only roughly (about ±0.01), "
                    "not to rounding, and later steps are not compared",
                    "W8a": "output fingerprint Σ y_i·cos(i) with the seeded weights"
                    }.get(wl, "output fingerprint")
            parts = []
            for r in checked:
                txt = f"{label(r).replace('**', '')} {r.get('first_loss', r.get('check')):.6g}"
                if r.get("grad_norm") is not None:
                    txt += f" / {r['grad_norm']:.5g}"
                if r.get("argmax") is not None:
                    txt += f" (argmax {r['argmax']})"
                parts.append(txt)
            out.append("")
            agree = "" if wl == "W5b" else ", should agree across systems"
            out.append(f"Sanity ({kind}{agree}): " + "; ".join(parts) + ".")
        if wl == "W5b":
            for gr in g:
                if gr.get("ratio_vs_w5") is not None:
                    lo, hi = gr.get("ratio_vs_w5_spread") or (None, None)
                    w5 = gr.get("w5_steps_per_s") or []
                    out.append(f"graphc W5b / W5 (same process, alternating blocks of "
                               f"{gr.get('steps_per_sample', '')} steps): **{gr['ratio_vs_w5']:.2f}**"
                               + (f" (per-pair range {lo:.2f}–{hi:.2f})" if lo is not None else "")
                               + (f"; W5 in those blocks {statistics.median(w5):.3g} steps/s"
                                  if w5 else "")
                               + (f"; host steps in the W5b training programs: "
                                  f"{', '.join(gr['host_ops']) or 'none'}"
                                  if gr.get("host_ops") is not None else "") + ".")
        extra = (report_fair.loss_lines(ok) + bounds.lines(wl, results, g)
                 + targets.lines(wl, recs, results) + report_fair.unavailable_lines(recs))
        for line in extra:
            out += ["", line]
        out.append("")
    out += ["## Notes", "",
            "- W1/W1b effective GB/s = 8 bytes × 2^24 / time (one read, one write); the triad "
            "counts 12 bytes per element. \"of triad\" = effective GB/s / triad median GB/s.",
            "- W2 samples are means over blocks of 1000 calls; W3 samples are blocks of 20 "
            "steps, each step waiting for its loss.",
            "- first-call s: the first call, including tracing/compilation where the system "
            "does it (torch.compile, jax.jit, hybridize). torch.compile reuses the "
            "inductor's on-disk cache from earlier runs, so its first call here is not a "
            "cold compile (W6 measures that).",
            f"- other load: cores kept busy by processes other than the benchmark during its "
            f"measurement process (machine busy CPU time minus the benchmark's own, over wall "
            f"time; 2 cores in all). Above {NOISY} (⚠) the figure is disturbed: re-run on a "
            f"quiet machine before quoting it. Before each measurement the run waits (up to "
            f"--idle-wait s) for the machine to go quiet. Systems whose 2 OpenMP threads meet "
            f"at barriers (PyTorch above all) lose far more to other load than the rest: on this "
            f"machine with ~1 core busy elsewhere, torch eager W4 took ~35 ms with 1 thread but "
            f"0.5–0.9 s with 2.",
            "- Warm-up: every timed workload (W1-W5) runs warm-up blocks for at least 2 s before "
            "its samples, whatever the system (a process's first second here ran slower: "
            "graphc's W4 measured 11-12 ms instead of 8 with one 0.1 s warm-up block).",
            "- W4: samples are means over blocks of 10 images (batch 1). All systems run the same "
            "seeded weights (He-normal convolutions, BatchNorm statistics near 0/1), BatchNorm "
            "in inference mode; graphc and MXNet use their model zoo's `resnet18_v1`, torch a "
            "hand-written copy of that structure (torchvision does not install beside torch "
            "2.13 here), onnxruntime the ONNX file `torch.onnx.export` (TorchScript exporter, "
            "opset 17) writes from it, with graph optimisation level ALL.",
            "- W5: samples are blocks of 5 steps, each waiting for its loss. Initial LSTM state "
            "zero every step, no dropout (so all systems do the same arithmetic). The Gluon "
            "systems follow MXNet's word_language_model example: summed per-position loss, "
            "`clip_global_norm(grads, 0.25 × 35 × 20)`, `trainer.step(35 × 20)`; PyTorch: mean "
            "loss, `clip_grad_norm_(params, 0.25)`, SGD lr 20 — the same update.",
            "- W5b: W5 in training mode with dropout 0.5 (embedding output, between the LSTM "
            "layers, before the decoder; PyTorch: `nn.LSTM(dropout=0.5)` and `nn.Dropout`). "
            "Each system draws its own masks, so only the first-step loss is shown (roughly "
            "equal), no step-by-step comparison. graphc's run times W5 and W5b in alternating "
            "blocks in one process and reports their ratio (the issue's target), and lists "
            "the host steps left in the W5b training programs.",
            "- tinygrad: TinyJit on its CPU backend, whose kernels clang compiles: here `zig cc` "
            "from the `ziglang` wheel in tinygrad's venv, through a `clang` wrapper "
            "bench/setup_envs.py writes there (the machine has no clang). W4 is a hand-written "
            "ResNet-18 v1 over the seeded weights, BatchNorm from running statistics.",
            "- Targets: each workload's line \"Target (issue 14)\" says \"met\" only when "
            "graphc's worst sample against the reference's best clears the target, \"not met\" "
            "when its best does not, otherwise \"not decided\". W9's first step runs on an "
            "empty GRAPHC_CACHE_DIR (cold).",
            "- W6: each sample is a fresh process: framework import and model construction are "
            "not counted (import is shown), then hybridize / torch.compile / InferenceSession "
            "+ the first call until its output is ready. \"warm\" = a second fresh process "
            "given the cache dir the cold one filled (GRAPHC_CACHE_DIR, "
            "TORCHINDUCTOR_CACHE_DIR).",
            "- W7-W9: same seeded weights and data everywhere (bench/systems/_w7_9.py); every "
            "step's loss is recorded and compared with graphc's step by step. W7: blocks of 10 "
            "steps, nothing hybridized or jitted. W8a: the encoder's input is the (1, 128, 768) "
            "embedding output; graphc and MXNet run the same Gluon source "
            "(bench/systems/_transformer.py), PyTorch a twin with the same parameter order, "
            "onnxruntime the twin's `torch.onnx.export`. W8b: learned positional embedding, "
            "post-LN layers as W8a's with an additive causal mask, untied decoder, mean "
            "per-token loss (Gluon: summed, `trainer.step(2048)`). MXNet's Adam puts ε outside "
            "the bias correction, PyTorch's inside: their losses differ in the 4th digit after "
            "a few steps. W9: the model zoo's `resnet18_v1` (torch: its hand-written twin), "
            "peak RSS = the process's `ru_maxrss` (torch: one process per variant).",
            "- Lower bounds: max(FLOP / FMA peak, bytes / triad), with W0's figures of this run "
            "or of the last full run that measured W0 (bench/.work/limits.json; failing that, "
            "the last --quick one, bench/.work/limits_quick.json, and the line says so); the "
            "FLOP counts are in bench/bounds.py.",
            "- Raw records: bench/.work/results.json; per-process logs: bench/.work/logs/.", ""]
    return "\n".join(out)


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading, lines) per '## ' section of a report; the text before the first is ('', ...)."""
    out = [("", [])]
    for line in text.splitlines():
        if line.startswith("## "):
            out.append((line, [line]))
        else:
            out[-1][1].append(line)
    return out


def _workload_of(heading: str) -> str | None:
    head = heading[3:].split(":", 1)[0].strip()
    return head if head in WORKLOADS else None


def splice(old: str, new: str, workloads: list[str], meta: dict) -> str:
    """`old` report with the sections of `workloads` replaced by (or, when missing, inserted
    before "## Notes" as) those of `new`; each spliced section says when and how it was run."""
    fresh = {_workload_of(h): lines for h, lines in _sections(new) if _workload_of(h) in workloads}
    stamp = (f"*Measured {meta['date']} by `{meta['command']}` (a partial run; load average "
             f"{meta.get('loadavg_start')} before, {meta.get('loadavg_end')} after).*")
    for lines in fresh.values():
        lines[1:1] = ["", stamp]
    out, done = [], set()
    for heading, lines in _sections(old):
        wl = _workload_of(heading)
        if heading.startswith("## Notes"):
            for w in workloads:
                if w in fresh and w not in done:
                    out += fresh[w]
                    done.add(w)
        if wl in fresh:
            out += fresh[wl]
            done.add(wl)
        else:
            out += lines
    for w in workloads:
        if w in fresh and w not in done:
            out += fresh[w]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ main
def graphc_status(env: dict) -> str:
    p = subprocess.run([sys.executable, "-c", "import graphc; from graphc import nd, autograd, "
                        "gluon; from graphc.gluon import nn; print(getattr(graphc, "
                        "'__version__', 'imported'))"],
                       capture_output=True, text=True, env=env, cwd=str(SYSTEMS_DIR), timeout=300)
    if p.returncode == 0:
        return "graphc " + p.stdout.strip().splitlines()[-1]
    return "import failed: " + _tail(p.stderr, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W2")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="e.g. graphc,torch")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--skip-setup", action="store_true", help="use the venvs as they are")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--idle-wait", type=float, default=30.0,
                    help="before each measurement, wait up to this many seconds for other "
                         "processes to leave the CPUs idle (0: don't wait)")
    ap.add_argument("--idle-wait-total", type=float, default=120.0,
                    help="cap on the total waiting over the run")
    ap.add_argument("--no-retry-noisy", dest="retry_noisy", action="store_false",
                    help="don't re-measure a system whose measurement saw other load")
    ap.add_argument("--no-env-variants", dest="env_variants", action="store_false",
                    help="run each peer once, without its jemalloc / THP / OPENBLAS_CORETYPE "
                         "variants (faster; not a fair comparison)")
    ap.add_argument("--retry-until", type=float, default=420.0,
                    help="no re-measurements once the run has taken this many seconds")
    a = ap.parse_args()
    t_start = time.time()
    workloads = [w for w in a.only.split(",") if w]
    systems = [s for s in a.systems.split(",") if s]
    bad = [w for w in workloads if w not in WORKLOADS] + [s for s in systems if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown workload/system: {', '.join(bad)}")
    WORK.mkdir(parents=True, exist_ok=True)
    rel_py = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) \
        else sys.executable
    command = shlex.join([rel_py, "bench/run.py"] + sys.argv[1:])
    env = bench_env()
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_info(), "quick": a.quick, "command": command,
            "workloads": workloads, "systems": systems, "loadavg_start": loadavg()}

    # 1. environments
    venv_systems = [s for s in systems if s not in OWN_VENV]
    for s in list(venv_systems):
        for dep in NEEDS_VENV.get(s, []):
            if dep not in venv_systems:
                venv_systems.insert(0, dep)
    print(f"== setting up environments: {', '.join(venv_systems) or '(none)'}", flush=True)
    if a.skip_setup:
        envs = {}
        for s in venv_systems:
            py = setup_envs.venv_python(s)
            envs[s] = ({"ok": True, "version": "(setup skipped)", "python": str(py)}
                       if py.exists() else {"ok": False, "reason": setup_envs.precheck(s)
                                           or "no venv (setup skipped)"})
    else:
        envs = setup_envs.setup_all(venv_systems)
    try:
        import numpy
        meta["own_numpy"] = f"numpy {numpy.__version__}"
    except ImportError:
        meta["own_numpy"] = "not available: numpy not installed in .venv"
    if "graphc" in systems:
        meta["graphc_status"] = graphc_status(env)
        print(f"== graphc: {meta['graphc_status']}", flush=True)

    # 2. workloads
    jemalloc = env_variants.find_jemalloc()
    meta["jemalloc"] = jemalloc or env_variants.JEMALLOC_MISSING
    results: list[dict] = []
    wait_budget = {"left": a.idle_wait_total}
    for wl in workloads:
        print(f"== {wl}", flush=True)
        if wl == "W0":
            wait_idle(a.idle_wait, wait_budget)
            for r in run_triad(a.quick, env) + run_fma(a.quick, env):
                print(f"   {r['system']}: {describe(r)}", flush=True)
                results.append(r)
        for s in systems:
            if wl not in SYSTEMS[s]:
                continue
            if s in OWN_VENV:
                py = sys.executable
            elif envs.get(s, {}).get("ok"):
                py = envs[s]["python"]
            else:
                r = {"system": s, "variant": "-", "workload": wl,
                     "error": f"not available: {envs.get(s, {}).get('reason', '?')}"}
                print(f"   {s}: {describe(r)}", flush=True)
                results.append(r)
                continue
            wait_idle(a.idle_wait, wait_budget)
            recs = run_script(s, wl, py, a.quick, env)
            if s == "graphc" and all("error" in r for r in recs):
                # graphc's tree may be mid-edit (an import error of a half-saved file): one
                # more try after a pause before recording a failure.
                print(f"   graphc: {describe(recs[0])[:160]}; trying once more in 10 s",
                      flush=True)
                time.sleep(10)
                recs = run_script(s, wl, py, a.quick, env)
            noisy = [r for r in recs if (r.get("other_load") or 0) > NOISY and "median" in r]
            if noisy and a.retry_noisy and time.time() - t_start < a.retry_until:
                print(f"   {s}: other load {noisy[0]['other_load']:.2f} cores during the "
                      "measurement; measuring again", flush=True)
                wait_idle(a.idle_wait, wait_budget)
                again = run_script(s, wl, py, a.quick, env)
                if (max((r.get("other_load") or 0) for r in again)
                        < max((r.get("other_load") or 0) for r in recs)):
                    for r in again:
                        r["retried"] = True
                    recs = again
            if a.env_variants:
                recs += run_env_variants(s, wl, py, a.quick, env, jemalloc, base=recs)
            for r in recs:
                print(f"   {s} {r.get('variant', '')}: {describe(r)}", flush=True)
                results.append(r)

    meta["loadavg_end"] = loadavg()
    bounds.save_limits(results, meta["date"], a.quick)
    meta["total_s"] = time.time() - t_start
    (WORK / "results.json").write_text(json.dumps({"meta": meta, "envs": envs,
                                                   "results": results}, indent=1))
    text = render(results, meta, envs)
    if set(workloads) != set(WORKLOADS) and Path(a.output).exists():
        # a partial run (--only) replaces its own sections of the existing report, keeping the rest
        text = splice(Path(a.output).read_text(), text, workloads, meta)
    Path(a.output).write_text(text)
    print(f"== wrote {a.output} and {WORK / 'results.json'} in {meta['total_s']:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
