"""A helper process that turns LLVM IR text into object code, for runtime/compile_pool.py.

llvmlite serialises every LLVM call in a process behind one lock, so a second core can only
help from another process. This script is that process: it imports llvmlite and the shared
target/pipeline settings of llvm_jit (by file path: not the graphc package, whose import would
cost more than most compiles), then answers requests on stdin/stdout until stdin closes.

Protocol (both directions: an 8-byte little-endian length, then that many bytes):
request = 1 byte -O level + UTF-8 IR text; reply = 1 status byte (0 ok, 1 error) + object
code or the error's text.
"""
from __future__ import annotations

import importlib.util
import os
import struct
import sys


def _load_llvm_jit():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llvm_jit.py")
    spec = importlib.util.spec_from_file_location("_graphc_compile_worker_llvm_jit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(stream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def compile_text(llvm_jit, tm, text: str, level: int) -> bytes:
    import llvmlite.binding as llvm
    mod = llvm.parse_assembly(text)
    mod.verify()
    llvm_jit.optimize(mod, tm, speed_level=level)
    return tm.emit_object(mod)


def main() -> None:
    llvm_jit = _load_llvm_jit()
    tm = llvm_jit.create_target_machine(opt=3)
    src, dst = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            (n,) = struct.unpack("<Q", _read(src, 8))
            request = _read(src, n)
        except EOFError:
            return
        try:
            reply = b"\0" + compile_text(llvm_jit, tm, request[1:].decode(), request[0])
        except Exception as exc:       # reported to the parent, which compiles the text itself
            reply = b"\1" + f"{type(exc).__name__}: {exc}".encode()
        dst.write(struct.pack("<Q", len(reply)) + reply)
        dst.flush()


if __name__ == "__main__":
    main()
