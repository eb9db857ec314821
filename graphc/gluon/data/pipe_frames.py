"""Length-prefixed messages over a one-way OS pipe, between the DataLoader and its workers.

Each message is an 8-byte little-endian length followed by that many bytes (a pickle). The worker
side reads and writes blocking, one whole message at a time. The parent side never blocks: its
ends are non-blocking, `FrameWriter` keeps what the pipe could not take yet and `FrameReader`
keeps a partly received message, so the parent only ever waits in one `select` that also
watches the workers' exit sentinels. That is what makes a dead worker visible at once, and what
rules out the classic deadlock of a parent blocked writing a task to a worker that is itself
blocked writing a large batch back.

This module must never import the front end: it moves bytes, nothing else.
"""
from __future__ import annotations

import os
import struct

_HEADER = struct.Struct("<Q")
_READ_CHUNK = 1 << 20


def enlarge_pipe(fd, size=1 << 20):
    """Ask Linux for a bigger pipe buffer (fewer wake-ups per large batch); harmless elsewhere."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError):
        pass


# -- worker side: blocking, one message at a time ------------------------------------------------
def write_frame(fd, payload: bytes):
    """Write one message; raises BrokenPipeError when the parent has gone away."""
    view = memoryview(_HEADER.pack(len(payload)) + payload) if len(payload) < 65536 else None
    if view is None:
        _write_all(fd, memoryview(_HEADER.pack(len(payload))))
        view = memoryview(payload)
    _write_all(fd, view)


def _write_all(fd, view):
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd):
    """Read one message; None when the writer closed its end (the parent is done or gone)."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exact(fd, size)
    if body is None:
        raise EOFError(f"pipe closed in the middle of a {size}-byte message")
    return body


def _read_exact(fd, size):
    buf = bytearray(size)
    view, pos = memoryview(buf), 0
    while pos < size:
        n = os.readv(fd, [view[pos:]])
        if n == 0:
            if pos == 0:
                return None
            raise EOFError(f"pipe closed after {pos} of {size} bytes")
        pos += n
    return bytes(buf)


# -- parent side: non-blocking -------------------------------------------------------------------
class FrameWriter:
    """Queues messages for a non-blocking pipe and writes as much as the pipe takes."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self._pending = bytearray()

    @property
    def has_pending(self):
        return bool(self._pending)

    def send(self, payload: bytes):
        self._pending += _HEADER.pack(len(payload))
        self._pending += payload
        self.flush()

    def discard(self):
        """Drop what was not written: the reader has exited."""
        self._pending.clear()

    def flush(self):
        """Write what the pipe accepts now; BrokenPipeError when the reader has exited."""
        while self._pending:
            try:
                n = os.write(self.fd, self._pending)
            except BlockingIOError:
                return
            del self._pending[:n]


class FrameReader:
    """Collects messages from a non-blocking pipe, however the bytes arrive in pieces."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self._header = bytearray()
        self._body = None
        self._filled = 0

    @property
    def mid_message(self):
        return bool(self._header) or self._body is not None

    def read_available(self):
        """All complete messages readable now, and whether the writer has closed its end."""
        messages = []
        while True:
            try:
                if self._body is None:
                    chunk = os.read(self.fd, _HEADER.size - len(self._header))
                    if not chunk:
                        return messages, True
                    self._header += chunk
                    if len(self._header) == _HEADER.size:
                        (size,) = _HEADER.unpack(self._header)
                        self._header.clear()
                        self._body, self._filled = bytearray(size), 0
                else:
                    view = memoryview(self._body)[self._filled:self._filled + _READ_CHUNK]
                    n = os.readv(self.fd, [view]) if len(view) else 0
                    if n == 0 and len(view):
                        return messages, True
                    self._filled += n
                if self._body is not None and self._filled == len(self._body):
                    messages.append(self._body)
                    self._body = None
            except BlockingIOError:
                return messages, False
