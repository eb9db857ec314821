"""The disk cache's directory: which directories and files graphc trusts, how an entry is read
and written, and how the directory is kept under its size limit.

Object code read from here is executed, so a file is used only when this process's user owns
it and nobody else can write to it or its directory; anything else is refused with a
CacheWarning and the program is compiled instead. Files are opened without following symbolic
links and without blocking (a FIFO named like an entry must not hang the process), only
regular files are read, and never more bytes than the size limit allows. Writes go to a
temporary file in the same directory, are fsynced, renamed over the entry and the directory is
fsynced, so a crash leaves either the old entry or the new one, never half of one; a failed
write removes its temporary file.

Size: GRAPHC_CACHE_MAX_BYTES (default 1 GiB; suffixes K, M, G, T in powers of 1024; 0 turns the
disk cache off). Every hit bumps its entry's modification time and every write trims the
least recently used entries until the directory fits.

Entries are <key>.o (object code) and <key>.p (a program's layout, runtime/program_cache.py):
one format, one set of checks, one size limit for both.

This module knows files, not LLVM: runtime/cache.py decides what to compile and load.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
import warnings

from .cache_entry import BadEntry, decode_entry

DEFAULT_MAX_BYTES = 1 << 30
# however large the limit, one object file beyond this is damage, not a program
MAX_ENTRY_BYTES = 1 << 30
# <key>.o holds object code, <key>.p a program (runtime/program_cache.py); both are entries
OBJECT, PROGRAM = ".o", ".p"
ENTRY_RE = re.compile(r"[0-9a-f]{16,64}\.[op]")
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".o.tmp"
STALE_TEMP_SECONDS = 3600     # a temporary file this old belongs to a writer that died
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class CacheWarning(RuntimeWarning):
    """The compile cache refused a directory or entry, or could not write one; graphc compiled
    the program instead, so results are unaffected (only the time to load them)."""


def warn(message: str) -> None:
    warnings.warn(f"graphc compile cache: {message}", CacheWarning, stacklevel=3)


def cache_dir() -> str:
    return os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "graphc")


def max_bytes() -> int:
    """GRAPHC_CACHE_MAX_BYTES in bytes ('1G', '512M', '1000000'; 0: no disk cache)."""
    text = os.environ.get("GRAPHC_CACHE_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    m = re.fullmatch(r"(\d+)\s*([kmgt]?)(?:i?b)?", text, re.IGNORECASE)
    if m is None:
        warn(f"GRAPHC_CACHE_MAX_BYTES={text!r} is not a size (expected bytes, or a number with K, M, G "
             f"or T); using the default {format_size(DEFAULT_MAX_BYTES)}")
        return DEFAULT_MAX_BYTES
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def format_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def entry_path(directory: str, key: str, suffix: str = OBJECT) -> str:
    return os.path.join(directory, key + suffix)


def _ownership_problem(st: os.stat_result, what: str) -> str | None:
    """Why a file or directory with this stat must not feed the JIT, or None when it may."""
    uid = os.geteuid()
    if st.st_uid != uid:
        return f"{what} is owned by uid {st.st_uid}, not by this process's uid {uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):#o})"
    return None


def prepare_dir(directory: str) -> str | None:
    """Create the cache directory (mode 0700) if it is missing; None when it may be used, else
    the reason it may not."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.stat(directory)
    except OSError as exc:
        return f"cannot create or open the directory ({exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    return _ownership_problem(st, "the directory")


def dir_problem(directory: str) -> str | None:
    """Like prepare_dir without creating anything (a missing directory is no problem)."""
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot open the directory ({exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    return _ownership_problem(st, "the directory")


def read_entry_bytes(path: str, limit: int) -> bytes | None:
    """The bytes of the entry at `path`, None if there is none. Raises BadEntry for anything
    that is not a regular file owned by this user, writable only by it, of at most `limit`
    bytes."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadEntry("the entry is a symbolic link") from None
        raise BadEntry(f"cannot open the entry ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadEntry(f"the entry is not a regular file ({_file_kind(st.st_mode)})")
        problem = _ownership_problem(st, "the entry")
        if problem:
            raise BadEntry(problem)
        if st.st_size > limit:
            raise BadEntry(f"the entry is {st.st_size} bytes, more than the {limit}-byte limit")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise BadEntry(f"the entry grew past the {limit}-byte limit while being read")
        return data
    except OSError as exc:
        raise BadEntry(f"cannot read the entry ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return f"mode {mode:#o}"


def load_entry(directory: str, key: str, target: dict, limit: int, suffix: str = OBJECT) -> bytes | None:
    """The verified payload (object code, or a program for suffix PROGRAM) for `key`, None when
    there is no entry; BadEntry when there is one that must not be used (the caller recompiles
    and replaces it)."""
    path = entry_path(directory, key, suffix)
    data = read_entry_bytes(path, limit)
    if data is None:
        return None
    obj = decode_entry(data, key, target)
    try:
        os.utime(path, follow_symlinks=False)     # the LRU clock: verified, so recently used
    except OSError:
        pass      # a read-only file system still serves hits; only the eviction order suffers
    return obj


def write_entry(directory: str, key: str, data: bytes, suffix: str = OBJECT) -> None:
    """Atomically make `data` the entry for `key`: temporary file, fsync, rename, fsync of the
    directory. Raises OSError; the temporary file never outlives a failure. (Not graphc.formats'
    atomic_write: the runtime never imports the front end, and an entry must be 0600 from its
    first byte, which mkstemp gives, rather than take the umask or an old file's mode.)"""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, entry_path(directory, key, suffix))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dfd)
    except OSError:
        pass      # some file systems cannot fsync a directory; the rename itself is atomic
    finally:
        os.close(dfd)


def list_entries(directory: str) -> list[tuple[str, os.stat_result]]:
    """(path, lstat) of every file named like an entry, oldest use first."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if ENTRY_RE.fullmatch(name):
            path = os.path.join(directory, name)
            try:
                found.append((path, os.lstat(path)))
            except OSError:
                pass      # removed by another process meanwhile
    found.sort(key=lambda item: item[1].st_mtime_ns)
    return found


def _stale_temp_files(directory: str, older_than: float) -> list[str]:
    now = time.time()
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
            path = os.path.join(directory, name)
            try:
                if now - os.lstat(path).st_mtime >= older_than:
                    out.append(path)
            except OSError:
                pass
    return out


def _remove(path: str) -> bool:
    try:
        os.unlink(path)      # a symbolic link goes, never its target
        return True
    except OSError:
        return False


def trim(directory: str, limit: int) -> list[str]:
    """Remove least recently used entries until the regular ones total at most `limit` bytes
    (plus temporary files left by writers that died); returns the removed paths."""
    removed = [p for p in _stale_temp_files(directory, STALE_TEMP_SECONDS) if _remove(p)]
    entries = list_entries(directory)
    total = sum(st.st_size for _, st in entries if stat.S_ISREG(st.st_mode))
    for path, st in entries:
        if total <= limit:
            break
        if stat.S_ISREG(st.st_mode) and _remove(path):
            total -= st.st_size
            removed.append(path)
    return removed


def usage(directory: str) -> tuple[int, int]:
    """(number of entries, bytes they take)."""
    entries = list_entries(directory)
    return len(entries), sum(st.st_size for _, st in entries if stat.S_ISREG(st.st_mode))


def verify(directory: str, target: dict, remove: bool = False) -> list[tuple[str, str, bool]]:
    """Check every entry as the loader would (file kind, owner, mode, size, header, key, hash,
    target; a program entry's description too). Returns (path, reason, removed) for each entry
    that the loader would refuse."""
    from .program_entry import decode_layout
    bad = []
    for path, _ in list_entries(directory):
        key = os.path.basename(path)[:-2]
        try:
            data = read_entry_bytes(path, MAX_ENTRY_BYTES)
            if data is None:
                continue
            payload = decode_entry(data, key, target)
            if path.endswith(PROGRAM):
                decode_layout(payload)
        except BadEntry as exc:
            reason = f"{'stale' if exc.stale else 'bad'}: {exc.reason}"
            bad.append((path, reason, remove and _remove(path)))
    return bad


def clear(directory: str) -> tuple[int, int]:
    """Remove every entry (and temporary files older than a minute); returns (count, bytes)."""
    count = size = 0
    for path, st in list_entries(directory):
        if _remove(path):
            count += 1
            size += st.st_size if stat.S_ISREG(st.st_mode) else 0
    for path in _stale_temp_files(directory, 60):
        _remove(path)
    return count, size


__all__ = ["CacheWarning", "cache_dir", "max_bytes", "prepare_dir", "dir_problem", "load_entry",
           "write_entry", "trim", "usage", "verify", "clear", "list_entries", "format_size",
           "DEFAULT_MAX_BYTES", "MAX_ENTRY_BYTES", "OBJECT", "PROGRAM"]
