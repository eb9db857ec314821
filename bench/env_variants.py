"""Environment variants of a peer's run: each peer at its best, as issue 14 and WORKLOADS.md ask.

A peer's script runs once per variant with the environment changed, and the report compares
graphc with the best of them:
- "jemalloc": LD_PRELOAD of libjemalloc with decay off (freed pages stay mapped, so a fresh
  64 MiB output costs no page faults: graphc reuses its planned buffers, and the others get the
  same chance);
- "THP" (PyTorch): THP_MEM_ALLOC_ENABLE=1, PyTorch's transparent-huge-page allocation;
- "OPENBLAS_CORETYPE" (numpy, MXNet): the machine environment's OpenBLAS core-type overrides
  put back (the base run drops them), so both settings are measured and the faster counts.
A variant that cannot run here is returned with the reason instead of an environment, and the
report says so; none is skipped silently.
"""
from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
# workloads whose steady state allocates (the allocator can matter); W0, W6 (first call) and
# the multi-process W10/W11 are left as they are
ALLOC_WORKLOADS = {"W1", "W1b", "W2", "W3", "W4", "W5", "W5b", "W7", "W8a", "W8b", "W9"}
# --quick runs the variants only where they are cheap (no compiled models to rebuild)
QUICK_WORKLOADS = {"W1", "W1b", "W2", "W7"}
ALLOC_SYSTEMS = {"numpy", "torch", "jax", "mxnet", "onnxruntime", "tinygrad"}
OPENBLAS_SYSTEMS = {"numpy", "mxnet"}
OPENBLAS_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def find_jemalloc() -> str | None:
    """A libjemalloc shared object: the dynamic linker's cache, the usual Debian path, or one a
    pip wheel ships inside a bench venv."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                             timeout=30).stdout
        for line in out.splitlines():
            if "libjemalloc.so" in line and "=>" in line:
                return line.split("=>", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    site = BENCH / ".venvs" / "*" / "lib" / "python*" / "site-packages"
    pats = ["/usr/lib/*-linux-gnu/libjemalloc.so*", "/usr/lib64/libjemalloc.so*",
            "/usr/local/lib/libjemalloc.so*", str(site / "*" / "libjemalloc*.so*")]
    for pat in pats:
        hits = sorted(glob.glob(pat))
        if hits:
            return hits[0]
    return None


JEMALLOC_MISSING = ("not available: no libjemalloc on this machine (not in the linker cache, "
                    "/usr/lib or a bench venv) and no PyPI wheel ships one (no PyPI project is "
                    "named or described as jemalloc; searched 2026-12); Debian's libjemalloc2 "
                    "would provide it, and the harness installs no system packages")


def variants(system: str, workload: str, original_env: dict, jemalloc: str | None) -> list:
    """[(name, env_updates | None, reason | None)] beyond the base run, for this pair."""
    if system == "graphc":
        return []
    out = []
    if workload in ALLOC_WORKLOADS and system in ALLOC_SYSTEMS:
        if jemalloc:
            out.append(("jemalloc", {"LD_PRELOAD": jemalloc, "MALLOC_CONF": MALLOC_CONF}, None))
        else:
            out.append(("jemalloc", None, JEMALLOC_MISSING))
        if system == "torch":
            out.append(("THP", {"THP_MEM_ALLOC_ENABLE": "1"}, None))
    # OpenBLAS serves their GEMMs (and convolutions' im2col GEMMs): not W1/W1b's element-wise
    if system in OPENBLAS_SYSTEMS and workload not in ("W1", "W1b", "W6", "W10", "W11"):
        set_ = {k: original_env[k] for k in OPENBLAS_KEYS if original_env.get(k)}
        if set_:
            out.append(("OPENBLAS_CORETYPE=" + set_.get("OPENBLAS_CORETYPE", "-"), set_, None))
        else:
            out.append(("OPENBLAS_CORETYPE", None, "not measured: this run's environment sets "
                        "no OPENBLAS_CORETYPE, so only OpenBLAS's own core detection ran"))
    return out


def apply(env: dict, updates: dict) -> dict:
    out = dict(env)
    for k, v in updates.items():
        if k == "LD_PRELOAD" and out.get(k):
            v = f"{v}:{out[k]}"
        out[k] = v
    return out


def tag(records: list, name: str) -> list:
    """Mark a variant run's records: variant 'eager' becomes 'eager [jemalloc]'."""
    for r in records:
        r["env_variant"] = name
        r["base_variant"] = r.get("variant", "-")
        r["variant"] = f"{r['base_variant']} [{name}]"
    return records
