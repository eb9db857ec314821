"""Write a file so that readers see either the old contents or the new, never a half-written mix.

The bytes go to a temporary file in the destination's own directory (os.replace is atomic only
within one filesystem), are flushed and fsynced, and then replace the destination in one rename.
If anything fails before the rename, the temporary file is removed and the old file is untouched.
This module must never write to the destination path directly.
"""
from __future__ import annotations

import os
import secrets
from typing import Callable, Union

Writer = Callable[["object"], None]


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable. Not every platform can open a directory (Windows cannot);
    there the rename is as durable as the OS makes it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data: Union[bytes, bytearray, memoryview, Writer]) -> None:
    """Replace `path` with `data` (bytes), or with what `data(fileobj)` writes to a binary file.

    The new file gets the old file's permission bits when one existed, else the usual
    0o666 & ~umask (a plain open would give that too; mkstemp's 0o600 would not)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
