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
device (cpu(k) -> k, gpu(k) -> GPU_PID + k, the trace's 'cpu/k' and 'gpu/k' tracks) and tid
the recording Python thread.

GPU spans (gpu_span: GPU program calls, eager GPU operators, the Trainer's compiled update)
are host-side times: from before the work is issued until the device has finished it (the
recorder passes the driver's synchronize, so while profiling each call waits for its device,
which removes the overlap of host and device work the unprofiled run has). They hold the
device's queueing and execution together; per-kernel device times would need CUDA events
around each launch (cuEventRecord / cuEventElapsedTime), which the driver seam does not offer.
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


GPU_PID = 1 << 16       # pid of gpu(0)'s track; gpu(k) is GPU_PID + k (CPU devices are small ints)


def gpu_pid(device: int) -> int:
    return GPU_PID + device


def track_name(pid: int) -> str:
    """The trace's name for a pid's track: 'cpu/k' or 'gpu/k'."""
    return f"gpu/{pid - GPU_PID}" if pid >= GPU_PID else f"cpu/{pid}"


def gpu_span(name: str, cat: str, t0: int, device: int, wait=None, args=None) -> None:
    """A span on gpu(device)'s track from t0 until `wait(device)` returns (the driver's
    synchronize; None: until now). See the module docstring for what the time includes."""
    if wait is not None:
        wait(device)
    events.append(("X", name, cat, t0, now() - t0, GPU_PID + device, _ident(), args))
