"""Create one virtual environment per comparison system under bench/.venvs/<name>.

Idempotent: each environment carries a stamp file recording what was installed; a matching
stamp skips the install. After install (or on a stamp hit) an import check runs in the
environment. A failure of one system never stops the others; it is reported as
"not available: <reason>".

Usage: python bench/setup_envs.py [--systems torch,jax,mxnet,onnxruntime] [--force]
Prints progress; with --json prints a final JSON line {name: {"ok":..., "python":..., ...}}.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
WORK = BENCH / ".work"

# name -> (pip requirements, import-check snippet printing a version string)
ENVS: dict[str, tuple[list[str], str]] = {
    # torch==2.13.0 resolves to the CPU wheel on this machine's local disk (see
    # .library/env/machines/python.md); never ask for a bare "torch" here.
    # onnx: for torch.onnx.export (legacy TorchScript exporter, dynamo=False) of W4's model,
    # which the onnxruntime system then loads.
    "torch": (["torch==2.13.0", "numpy", "onnx"],
              "import torch, numpy, onnx; print('torch', torch.__version__, 'numpy', numpy.__version__,"
              " 'onnx', onnx.__version__)"),
    "jax": (["jax[cpu]", "numpy"],
            "import jax, jaxlib, numpy; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__,"
            " 'numpy', numpy.__version__)"),
    "mxnet": (["mxnet==1.9.1", "numpy<1.24"],
              "import mxnet, numpy; print('mxnet', mxnet.__version__, 'numpy', numpy.__version__)"),
    # ziglang: tinygrad's CPU backend compiles with clang, which this machine lacks; the
    # wheel's `zig cc` (a clang) serves through the wrapper _tinygrad_clang() writes
    "tinygrad": (["tinygrad", "numpy", "ziglang"],
                 "import tinygrad, numpy, ziglang, importlib.metadata as m; print('tinygrad', "
                 "m.version('tinygrad'), 'numpy', numpy.__version__, 'clang: zig cc of ziglang', "
                 "m.version('ziglang'))"),
    "onnxruntime": (["onnxruntime", "numpy"],
                    "import onnxruntime, numpy; print('onnxruntime', onnxruntime.__version__,"
                    " 'numpy', numpy.__version__)"),
}


def _base_python() -> str:
    """The interpreter to build venvs from: the base installation, not a venv's shim."""
    base = getattr(sys, "_base_executable", None)
    if base and os.path.exists(base):
        return base
    return sys.executable


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-600:]


def _run(cmd: list[str], log, timeout: float) -> subprocess.CompletedProcess:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env)
    log.write(p.stdout)
    log.write(f"[exit {p.returncode}]\n")
    log.flush()
    return p


def precheck(name: str) -> str | None:
    """Why a system cannot run here before anything is installed, or None."""
    if name == "tinygrad" and not (BENCH / "systems" / "tinygrad_w.py").exists():
        return "bench/systems/tinygrad_w.py is missing"
    return None


# tinygrad runs `$CC -c -x c ... --target=<arch>-none-unknown-elf ... - -o -`; zig cc spells
# that triple <arch>-freestanding-none, and by default adds debug sections whose relocations
# tinygrad's ELF loader rejects (hence -g0).
TINYGRAD_CLANG = """#!/bin/sh
# clang for tinygrad's CPU backend: zig cc from this venv's ziglang wheel (bench/setup_envs.py)
here=$(dirname "$0")
for a in "$@"; do
  shift
  case "$a" in
    --target=*-none-unknown-elf) arch=${a#--target=}; set -- "$@" -target
                                 a="${arch%-none-unknown-elf}-freestanding-none" ;;
  esac
  set -- "$@" "$a"
done
exec "$here/python" -m ziglang cc -g0 "$@"
"""


def _tinygrad_clang(env_dir: Path) -> None:
    """Put the `clang` wrapper beside the venv's python (tinygrad_w.py points CC at it)."""
    path = env_dir / "bin" / "clang"
    if not path.exists() or path.read_text() != TINYGRAD_CLANG:
        path.write_text(TINYGRAD_CLANG)
    path.chmod(0o755)


POST_INSTALL = {"tinygrad": _tinygrad_clang}


def setup_one(name: str, force: bool = False, timeout: float = 1800) -> dict:
    reason = precheck(name)
    if reason:
        return {"ok": False, "reason": reason}
    reqs, check = ENVS[name]
    env_dir = VENVS / name
    stamp = env_dir / ".bench_stamp"
    want = json.dumps({"reqs": reqs, "python": sys.version.split()[0]})
    WORK.mkdir(parents=True, exist_ok=True)
    log_path = WORK / f"setup_{name}.log"
    t0 = time.time()
    with open(log_path, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} setup {name} ===\n")
        try:
            py = venv_python(name)
            if force or not stamp.exists() or stamp.read_text() != want or not py.exists():
                print(f"[setup] {name}: installing {' '.join(reqs)} (log: {log_path})", flush=True)
                if stamp.exists():
                    stamp.unlink()
                if not py.exists():
                    p = _run([_base_python(), "-m", "venv", str(env_dir)], log, 300)
                    if p.returncode != 0:
                        return {"ok": False, "reason": "venv creation failed: " + _tail(p.stdout)}
                p = _run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], log, 600)
                p = _run([str(py), "-m", "pip", "install", *reqs], log, timeout)
                if p.returncode != 0:
                    return {"ok": False, "reason": "pip install failed: " + _tail(p.stdout)}
            else:
                print(f"[setup] {name}: up to date (stamp)", flush=True)
            if name in POST_INSTALL:
                POST_INSTALL[name](env_dir)
            p = _run([str(py), "-c", check], log, 300)
            if p.returncode != 0 and stamp.exists() and not force:
                # A stamped env that no longer imports (moved or upgraded base Python, a
                # half-deleted folder): rebuild it from scratch once.
                print(f"[setup] {name}: stamped env does not import; rebuilding", flush=True)
                shutil.rmtree(env_dir, ignore_errors=True)
                return setup_one(name, force=True, timeout=timeout)
            if p.returncode != 0:
                return {"ok": False, "reason": "import failed: " + _tail(p.stdout, 3)}
            stamp.write_text(want)
            version = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
            print(f"[setup] {name}: ok ({version}) in {time.time() - t0:.0f}s", flush=True)
            return {"ok": True, "version": version, "python": str(py)}
        except subprocess.TimeoutExpired as e:
            return {"ok": False, "reason": f"timed out after {e.timeout:.0f}s: {' '.join(e.cmd)}"}
        except Exception as e:  # noqa: BLE001 - one system's failure must not stop the rest
            return {"ok": False, "reason": f"{type(e).__name__}: {e}"}


def setup_all(names: list[str] | None = None, force: bool = False) -> dict:
    names = names or list(ENVS)
    VENVS.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        if name not in ENVS:
            continue
        res = setup_one(name, force=force)
        if not res["ok"]:
            print(f"[setup] {name}: not available: {res['reason']}", flush=True)
        out[name] = res
    (WORK / "envs.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", default=",".join(ENVS))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = setup_all([s for s in a.systems.split(",") if s], force=a.force)
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
