"""Compile the LLVM modules of one program at once: some here, the others in a helper process
(runtime/compile_worker.py) on another core.

Why a process: llvmlite holds one lock around every LLVM call, so threads compile one module at
a time. A large program comes as several modules (render_llvm.ModuleBuilder.texts(): its
kernels module cut into parts by runtime/module_split.py, and its GEMM code); they are shared
between the two processes by estimated LLVM time (llvm_jit.estimated_cost), costliest first.
ResNet-18's training backward, as two modules: 1.9 CPU-s here and 0.8 in the helper; in parts,
about 1.25 each.

The helper starts on first use (or earlier: warm_up), lives as long as this process (a forked
child starts its own) and only ever sees IR text; its object code is what this process would have made (same
llvmlite, same target machine settings from llvm_jit). Anything wrong with it (no spare core,
GRAPHC_COMPILE_WORKERS=0, a failed start, a dead helper, an error) means the text is compiled
here instead, so results never depend on it.
"""
from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import threading

from . import llvm_jit

# modules smaller than this compile here: a round trip costs more than their LLVM time
MIN_OFFLOAD_BYTES = 64 * 1024
# beyond this a helper is deemed hung (the largest module seen compiles in under 5 s)
HELPER_TIMEOUT_S = 300.0
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compile_worker.py")


def offload_wanted() -> bool:
    """GRAPHC_COMPILE_WORKERS=0 turns the helper off; so does a process bound to one core."""
    if os.environ.get("GRAPHC_COMPILE_WORKERS", "").strip() == "0":
        return False
    try:
        return len(os.sched_getaffinity(0)) > 1
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) > 1


class _Helper:
    """One compile_worker.py process and its pipes."""

    def __init__(self):
        self.pid = os.getpid()
        self.proc = subprocess.Popen([sys.executable, _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, close_fds=True)

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.proc.poll() is None

    def compile(self, text: str, level: int) -> bytes:
        data = bytes([level]) + text.encode()
        self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
        self.proc.stdin.flush()
        head = self.proc.stdout.read(8)
        if len(head) != 8:
            raise RuntimeError("the compile helper exited")
        (n,) = struct.unpack("<Q", head)
        reply = self.proc.stdout.read(n)
        if len(reply) != n or reply[:1] != b"\0":
            raise RuntimeError(f"the compile helper failed: {reply[1:].decode(errors='replace')[:300]}")
        return reply[1:]

    def close(self) -> None:
        if self.pid != os.getpid():
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
        self.proc.stdout.close()


_lock = threading.Lock()        # one request at a time on the helper's pipes
_helper: _Helper | None = None
stats = {"offloaded": 0, "fell_back": 0}


def _discard_helper() -> None:
    global _helper
    if _helper is not None and _helper.pid == os.getpid():
        _helper.proc.kill()
    _helper = None


def _get_helper() -> _Helper:
    global _helper
    if _helper is None or not _helper.alive():
        _helper = _Helper()
        atexit.register(_helper.close)
    return _helper


def warm_up() -> None:
    """Start the helper now, if it will be wanted and is not running: its start (a Python that
    imports llvmlite, about 0.15 s) then overlaps the passes and lowering of the program that
    needs it instead of delaying its first compile (graphc/compiler.py calls this for large
    graphs). A failed start is ignored here; compile_all starts it again or compiles here."""
    if not offload_wanted() or not _lock.acquire(blocking=False):
        return
    try:
        _get_helper()
    except Exception:
        _discard_helper()
    finally:
        _lock.release()


def _text(t) -> str:
    return t() if callable(t) else t


def _share(sizes) -> set:
    """Indices of the texts the helper compiles: the costliest first, each to whichever side has
    less so far (this process gets ties, and so never waits on a helper with nothing to do)."""
    here = there = 0
    mine = set()
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        if there < here:
            mine.add(i)
            there += sizes[i]
        else:
            here += sizes[i]
    return mine


def compile_all(texts, compile_here, level: int = 3) -> list:
    """[object code of each text], in order; a text may be a function returning it. compile_here(
    text) compiles in this process. The texts are made first, then shared between this process
    and the helper by estimated LLVM time, the helper's sent before this
    process starts on its own."""
    texts = [_text(t) for t in texts]
    if len(texts) < 2 or not offload_wanted() or sum(map(len, texts)) < 2 * MIN_OFFLOAD_BYTES:
        return [compile_here(t) for t in texts]
    remote_ids = sorted(_share([llvm_jit.estimated_cost(t) for t in texts]))
    if not remote_ids or not _lock.acquire(blocking=False):
        return [compile_here(t) for t in texts]
    results: dict = {}

    def remote():
        try:
            helper = _get_helper()
            for i in remote_ids:
                results[i] = helper.compile(texts[i], level)
        except Exception as exc:     # the caller compiles what is missing
            results["error"] = exc

    worker = threading.Thread(target=remote, name="graphc-compile-offload", daemon=True)
    worker.start()
    try:
        for i, t in enumerate(texts):
            if i not in remote_ids:
                results[i] = compile_here(t)
    finally:
        # the pipes are free for the next caller only once this request's answer is read
        worker.join(timeout=HELPER_TIMEOUT_S)
        if worker.is_alive():        # a helper that hangs is killed, which ends its read
            results["error"] = TimeoutError("the compile helper did not answer")
            _discard_helper()
            worker.join()
        elif "error" in results:
            _discard_helper()
        _lock.release()
    if "error" in results:
        stats["fell_back"] += 1
    else:
        stats["offloaded"] += 1
    return [results[i] if i in results else compile_here(t) for i, t in enumerate(texts)]


__all__ = ["compile_all", "warm_up", "offload_wanted", "MIN_OFFLOAD_BYTES", "stats"]
