"""The profiler's recording buffer: the flags a hot path reads and the list events go to.

It sits below everything that records (runtime/executor.py for compiled programs, the eager
NDArray dispatch, graphc/profiler.py's Task/Frame/Event/Counter/Marker) so that the runtime can
record without importing the front end; `graphc.profiler` (mx.profiler) is the only writer of
the flags and the only reader of the events.

Cost when the profiler is not running: a caller reads one module attribute (`symbolic` or
`imperative`) and goes on; nothing else here runs. While it runs, an event is one tuple appended
to a list (atomic under the GIL, so threads need no lock):

    (ph, name, cat, ts_ns, dur_ns, pid, tid, args)

with ph a Chrome-trace phase ('X' a span, 'i' an instant, 'C' a counter), times from
time.perf_counter_ns (monotonic; graphc.profiler turns them into epoch microseconds), pid the
CPU device (cpu(k) -> k) and tid the recording Python thread.
"""
from __future__ import annotations

import threading
import time

# What to record now. The profiler sets these (running and not paused, and the kind enabled by
# set_config); recorders read them and nothing else.
symbolic = False      # compiled programs: every kernel and host step (runtime/executor.py)
imperative = False    # eager NDArray operators
memory = False        # arena bytes of each compiled program call, as counter events
recording = False     # user objects (Task, Frame, Event, Counter, Marker)

events: list = []

now = time.perf_counter_ns
_ident = threading.get_ident


def span(name: str, cat: str, t0: int, t1: int, pid: int = 0, args=None) -> None:
    """A complete event ('X') from t0 to t1 (perf_counter_ns)."""
    events.append(("X", name, cat, t0, t1 - t0, pid, _ident(), args))


def instant(name: str, cat: str, scope: str = "p", pid: int = 0) -> None:
    """An instant event ('i'); scope 'g' (global), 'p' (process) or 't' (thread)."""
    events.append(("i", name, cat, now(), 0, pid, _ident(), {"s": scope}))


def counter(name: str, cat: str, value, pid: int = 0) -> None:
    """A counter sample ('C'): the value `name` has from now on."""
    events.append(("C", name, cat, now(), 0, pid, _ident(), value))
