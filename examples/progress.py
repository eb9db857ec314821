"""Progress of the examples' training loops: tqdm's bar on a terminal, plain lines elsewhere.

A bar redraws itself with carriage returns; in a log file, a CI transcript or a pipe those
become one long garbled line (or thousands of them). When the stream is not a terminal the same
loop prints a plain line every `every` seconds instead, and a last one when it ends if `leave`.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


def progress(iterable=None, *, total=None, desc="", unit="it", leave=False, every=10.0, stream=None):
    """tqdm(iterable, ...) when `stream` (default stderr) is a terminal, else a PlainProgress
    with the same methods the examples use (iteration, update, set_postfix, with, close)."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, leave=leave, every=every, stream=stream)


class PlainProgress:
    """Periodic one-line reports: `DESC: N/TOTAL UNIT (P%), S s, key=value ...`."""

    def __init__(self, iterable=None, *, total=None, desc="", unit="it", leave=False, every=10.0, stream=None):
        self.iterable, self.desc, self.unit, self.leave, self.every = iterable, desc, unit, leave, every
        self.stream = sys.stderr if stream is None else stream
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.postfix = total, 0, {}
        self.start = self._last = time.perf_counter()
        self._closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n=1):
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self._report(now)

    def set_postfix(self, **values):
        self.postfix = {k: str(v) for k, v in values.items()}

    def close(self):
        if not self._closed:
            self._closed = True
            if self.leave:
                self._report(time.perf_counter())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _report(self, now):
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc.strip()}: {count} {self.unit}{share}, {now - self.start:.1f} s{extra}",
              file=self.stream, flush=True)
