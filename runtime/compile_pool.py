"""Compile several LLVM modules of one program at once: the first here, the others in a helper
process (runtime/compile_worker.py) on another core.

Why a process: llvmlite holds one lock around every LLVM call, so threads compile one module at
a time. A program's module splits naturally in two (render_llvm.ModuleBuilder.texts(): its
entries and element-wise kernels, and its GEMM code), about equal in LLVM time for the
convolutional networks measured (ResNet-18's backward: 0.49 and 0.62 MB of IR).

The helper starts on first use, lives as long as this process (a forked child starts its own)
and only ever sees IR text; its object code is what this process would have made (same
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


def _text(t) -> str:
    return t() if callable(t) else t


def compile_all(texts, compile_here, level: int = 3) -> list:
    """[object code of each text], in order; a text may be a function returning it. compile_here(
    text) compiles in this process; the texts after the first go to the helper, made first, and
    the first is made and compiled here meanwhile."""
    texts = list(texts)
    rest = [_text(t) for t in texts[1:]]
    if not rest or not offload_wanted() or sum(map(len, rest)) < MIN_OFFLOAD_BYTES \
            or not _lock.acquire(blocking=False):
        return [compile_here(_text(t)) for t in texts[:1]] + [compile_here(t) for t in rest]
    results: dict = {}

    def remote():
        try:
            helper = _get_helper()
            for i, t in enumerate(rest):
                results[i] = helper.compile(t, level)
        except Exception as exc:     # the caller compiles what is missing
            results["error"] = exc

    worker = threading.Thread(target=remote, name="graphc-compile-offload", daemon=True)
    worker.start()
    try:
        first = compile_here(_text(texts[0]))
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
    return [first] + [results[i] if i in results else compile_here(t) for i, t in enumerate(rest)]


__all__ = ["compile_all", "offload_wanted", "MIN_OFFLOAD_BYTES", "stats"]
