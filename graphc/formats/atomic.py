"""Write a file so that readers see either the old contents or the new, never a half-written mix.

The bytes go to a temporary file in the destination's own directory (os.replace is atomic only
within one filesystem), are flushed and fsynced, and then replace the destination in one rename;
the directory is fsynced too, so the rename survives a power cut. If anything fails before the
rename, the temporary file is removed and the old file is untouched.

A process killed mid-save (SIGKILL, OOM killer, power cut) cannot remove its temporary file, and
a model-sized one is hundreds of megabytes. So every save first removes the orphans that earlier,
interrupted saves of the *same destination* left, and only those: a temporary file names its
host and writer pid (`.{base}.graphc-{host}-{pid}-{token}.tmp`), and one is an orphan when

* its writer was on this host and that process is gone (or the pid now belongs to a process
  that started after the file was last written, a recycled pid), or it is this process's own
  and no save in this process is writing it; or
* nobody has written to it for STALE_SECONDS (a writer on another host, whose pid means
  nothing here, or one that cannot be checked).

A temporary file of a save still running in another process is left alone: removing it would
make that save fail. Files this module did not name this way are never touched.

This module must never write to the destination path directly.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import threading
import time
from typing import Callable, Union

Writer = Callable[["object"], None]

# A writer on another host (or whose liveness cannot be checked) that has not written for this
# long is taken to be dead. Every write to the temporary file moves its mtime, so a live save
# would have to stall for a whole day to lose its file.
STALE_SECONDS = 24 * 3600
_TMP_SUFFIX = ".tmp"

_active: set = set()           # temporary files this process is writing right now
_active_lock = threading.Lock()


def _host_tag() -> str:
    """8 hex digits naming this host (pids are only meaningful on the host that issued them)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def temp_name(path: str) -> str:
    """A fresh temporary path beside `path`, named for cleanup (see the module doc)."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.graphc-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{_TMP_SUFFIX}")


def _temp_pattern(base: str):
    # (host, pid) of a temporary file for `base`; the legacy name `.{base}.{pid}.{token}.tmp`
    # (before host tags) counts as this host's. The anchored pattern cannot match another
    # destination's files: after `.{base}.` comes one fixed-shape component, then the end.
    b = re.escape(base)
    return re.compile(rf"^\.{b}\.(?:graphc-(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)-|(?P<legacy_pid>\d+)\.)"
                      rf"[0-9a-f]{{8}}{re.escape(_TMP_SUFFIX)}$")


def _process_start_time(pid: int):
    """When `pid` started (seconds since the epoch), from /proc on Linux; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        ticks = int(stat.rsplit(")", 1)[1].split()[19])   # field 22, counted after "(comm)"
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, last_write: float) -> bool:
    """Whether process `pid` on this host may still be writing a file last written at `last_write`."""
    if pid <= 0:
        return False
    if os.name != "posix":
        return True               # os.kill(pid, 0) would terminate it on Windows: age decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                      # alive, another user's
    except OSError:
        return True               # cannot tell: assume alive, age decides
    started = _process_start_time(pid)
    # a process that started after the file's last write cannot have written it: a recycled pid
    # (the 1-second slack absorbs the clock-tick rounding of the start time)
    return started is None or started <= last_write + 1.0


def remove_orphans(path) -> list:
    """Remove temporary files that interrupted saves of `path` left behind; returns their paths.
    Never raises: a cleanup that fails must not fail the save that asked for it."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = _temp_pattern(base)
    here, me, now = _host_tag(), os.getpid(), time.time()
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        full = os.path.join(directory, name)
        try:
            last_write = os.lstat(full).st_mtime
        except OSError:
            continue              # gone already (its writer finished, or another cleanup)
        host = m.group("host") or here
        pid = int(m.group("pid") or m.group("legacy_pid"))
        if now - last_write > STALE_SECONDS:
            orphan = True
        elif host != here:
            orphan = False        # another host's pid: only age can tell
        elif pid == me:
            with _active_lock:
                orphan = full not in _active   # ours, but no save of this process writes it
        else:
            orphan = not _writer_alive(pid, last_write)
        if orphan:
            try:
                os.unlink(full)
                removed.append(full)
            except OSError:
                pass
    return removed


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

    Orphaned temporary files of earlier interrupted saves of `path` are removed first (they may
    be what stands between this save and a full disk). The new file gets the old file's
    permission bits when one existed, else the usual 0o666 & ~umask (a plain open would give
    that too; mkstemp's 0o600 would not)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_orphans(path)
    tmp = temp_name(path)
    with _active_lock:
        _active.add(tmp)
    try:
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
    finally:
        with _active_lock:
            _active.discard(tmp)
    _fsync_directory(directory)
