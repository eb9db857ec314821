"""mx.profiler: MXNet's profiler API over graphc's recorder (runtime/trace.py).

    mx.profiler.set_config(profile_all=True, filename='profile.json', aggregate_stats=True)
    mx.profiler.set_state('run')
    ...                                   # eager operators, compiled programs, user Tasks
    mx.profiler.set_state('stop')
    print(mx.profiler.dumps())            # the aggregate table, as MXNet prints it
    mx.profiler.dump()                    # profile.json: a Chrome trace (chrome://tracing, Perfetto)

What is recorded while running (and not paused):
  * profile_symbolic: every call of a compiled program (hybridized blocks, executors, Module) as a
    'program' span, with each kernel ('kernel') and host-run operator ('host') inside it. A
    program built before the profiler started is profiled too: it runs on a twin compiled with
    one native call per kernel (runtime/executor.py), built on its first profiled call (a
    'compile' span; later runs reuse it and the compile cache keeps it).
  * profile_imperative: every eager NDArray operator ('operator', as in MXNet).
  * profile_memory: the arena bytes each program call uses ('Device Storage', in kB).
  * the user's Task, Frame and Event spans, Counter values and Marker instants, in their
    domain's category.
profile_api has nothing to record (graphc has no C API). The file is written by dump(), whole and
valid each time, and, with continuous_dump (MXNet's default), at exit if events were recorded
and not dumped, as MXNet leaves it; dump_period is accepted and unused (no periodic rewrite).
aggregate_stats costs nothing here (the table is computed from the recorded events), so dumps()
answers whether or not it was set.

The trace file is {"traceEvents": [...], "displayTimeUnit": "ms"}: spans are complete events
(ph 'X' with dur), markers ph 'i', counters ph 'C', with process_name/thread_name metadata
('M'); ts and dur in microseconds since the epoch, pid the CPU device (cpu/k), tid the thread.
Spans are written as one 'X' when they end (not 'B' then 'E'), so that tasks which overlap
without nesting still draw correctly.

This module only configures the recorder and formats what it recorded; it never runs in a hot
path (recorders read runtime.trace's flags).
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import threading
import time

from .ops.errors import GraphcError
from .runtime import trace as _trace

# MXNet 1.9.1's keys and defaults (MXSetProcessProfilerConfig)
_DEFAULTS = {"profile_all": False, "profile_symbolic": True, "profile_imperative": True,
             "profile_memory": True, "profile_api": True, "filename": "profile.json",
             "continuous_dump": True, "dump_period": 1.0, "aggregate_stats": False,
             "profile_process": "worker"}
_config = dict(_DEFAULTS)
_state = "stop"
_paused = False
_lock = threading.Lock()
# aggregate statistics folded from the events (dumps(reset=True) clears them, dump() does not)
_stats: dict = {}
_folded = 0            # events[:_folded] are in _stats
_EPOCH_NS = time.time_ns() - time.perf_counter_ns()
_SORT_KEYS = ("total", "avg", "min", "max", "count")


# -- configuration and state ----------------------------------------------------------------------
def _as_bool(key, value) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "0", "false"):
        return value.strip().lower() in ("1", "true")
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise GraphcError(f"profiler.set_config: {key} must be a boolean (True/False, 1/0), got {value!r}")


def set_config(**kwargs):
    """Configure the profiler (keyword arguments only, MXNet's names; see the module docstring
    for what each records). An unknown key is refused, naming it and the accepted ones."""
    unknown = sorted(set(kwargs) - set(_DEFAULTS))
    if unknown:
        raise GraphcError(f"profiler.set_config: unknown argument{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(unknown)}; accepted: {', '.join(sorted(_DEFAULTS))}")
    new = dict(_config)
    for key, value in kwargs.items():
        default = _DEFAULTS[key]
        if isinstance(default, bool):
            new[key] = _as_bool(key, value)
        elif key == "dump_period":
            try:
                new[key] = float(value)
            except (TypeError, ValueError):
                raise GraphcError(f"profiler.set_config: dump_period must be a number of seconds, "
                                  f"got {value!r}") from None
        elif key == "profile_process":
            new[key] = _process(value, "set_config")
        else:
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise GraphcError(f"profiler.set_config: filename must be a file name, got {value!r}")
            new[key] = os.fspath(value)
    _config.update(new)
    _apply()


def _process(profile_process, where) -> str:
    if profile_process == "worker":
        return profile_process
    if profile_process == "server":
        raise GraphcError(f"profiler.{where}: profile_process='server' profiles a kvstore server, and "
                          "graphc's distributed kvstore has none (workers all-reduce over MPI); use 'worker'")
    raise GraphcError(f"profiler.{where}: profile_process must be 'worker' or 'server', got {profile_process!r}")


def _apply():
    """Set the recorder's flags from the state and the configuration."""
    on = _state == "run" and not _paused
    everything = _config["profile_all"]
    _trace.symbolic = on and (everything or _config["profile_symbolic"])
    _trace.imperative = on and (everything or _config["profile_imperative"])
    _trace.memory = on and (everything or _config["profile_memory"])
    _trace.recording = on


def set_state(state="stop", profile_process="worker"):
    """'run' starts recording, 'stop' stops it (what was recorded stays for dump/dumps)."""
    global _state, _paused
    _process(profile_process, "set_state")
    if state not in ("run", "stop"):
        raise GraphcError(f"profiler.set_state: state must be 'run' or 'stop', got {state!r}")
    _state, _paused = state, False
    _apply()


def state() -> str:
    """'run', 'pause' or 'stop'."""
    return "pause" if _state == "run" and _paused else _state


def pause(profile_process="worker"):
    """Stop recording until resume(), without leaving the 'run' state."""
    global _paused
    _process(profile_process, "pause")
    _paused = True
    _apply()


def resume(profile_process="worker"):
    global _paused
    _process(profile_process, "resume")
    _paused = False
    _apply()


# -- the Chrome trace -------------------------------------------------------------------------------
def _us(ns) -> float:
    return round((ns + _EPOCH_NS) / 1000.0, 3)


def chrome_trace(events=None) -> dict:
    """The recorded events (default: all since the last dump(finished=True)) as a Chrome trace."""
    events = list(_trace.events) if events is None else events
    names = {t.ident: t.name for t in threading.enumerate()}
    tids, out = {}, []
    for ph, name, cat, ts, dur, pid, ident, args in events:
        tid = tids.setdefault((pid, ident), len(tids))
        e = {"name": name, "cat": cat, "ph": ph, "ts": _us(ts), "pid": pid, "tid": tid}
        if ph == "X":
            e["dur"] = round(dur / 1000.0, 3)
            if args:
                e["args"] = args
        elif ph == "i":
            e["s"] = args["s"]
        elif ph == "C":
            e["args"] = {name: args}
        out.append(e)
    meta = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": _trace.track_name(pid)}}
            for pid in sorted({p for p, _ in tids})]
    meta += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
              "args": {"name": names.get(ident, f"thread {tid}")}} for (pid, ident), tid in tids.items()]
    return {"traceEvents": meta + out, "displayTimeUnit": "ms"}


def dump(finished=True, profile_process="worker"):
    """Write the Chrome trace of everything recorded so far to set_config's filename. With
    finished=True (MXNet's default) the profiler then stops and the written events are dropped
    (the aggregate statistics stay for dumps()); finished=False keeps recording, and the next
    dump writes the whole trace again."""
    global _folded, _state
    _process(profile_process, "dump")
    from .formats.atomic import atomic_write
    with _lock:
        events = list(_trace.events)
        atomic_write(_config["filename"], json.dumps(chrome_trace(events)).encode())
        if finished:
            _fold()
            del _trace.events[:len(events)]
            _folded = 0
            _state = "stop"
            _apply()


def dump_profile():
    """MXNet's deprecated name for dump()."""
    dump(True)


@atexit.register
def _dump_at_exit():
    """As MXNet does with continuous_dump (its default): a process that recorded events and
    never dumped them still leaves its trace file."""
    if _trace.events and _config["continuous_dump"]:
        try:
            dump(finished=True)
        except (OSError, GraphcError) as exc:
            print(f"graphc.profiler: could not write {_config['filename']} at exit: {exc}", file=sys.stderr)


# -- aggregate statistics ---------------------------------------------------------------------------
def _fold():
    """Add the events recorded since the last fold to _stats (under _lock)."""
    global _folded
    events = _trace.events
    end = len(events)
    for ph, name, cat, _, dur, _, _, args in events[_folded:end]:
        if ph == "X":
            kind, value = "time", dur / 1e6          # ms
        elif ph == "C":
            kind, value = ("memory", args / 1e3) if cat == "Device Storage" else ("counter", args)   # kB
        else:
            continue
        s = _stats.setdefault((kind, cat, name), [0, 0.0, value, value])
        s[0] += 1
        s[1] += value
        s[2] = min(s[2], value)
        s[3] = max(s[3], value)
    _folded = end


def stats(reset=False) -> dict:
    """{(kind, category, name): (count, total, min, max)}: kind 'time' (ms), 'memory' (kB) or
    'counter' (the counter's values)."""
    with _lock:
        _fold()
        out = {k: tuple(v) for k, v in _stats.items()}
        if reset:
            _stats.clear()
    return out


_TABLES = {   # kind -> (JSON section, table columns after Total Count, value unit)
    "time": ("Time", ("Time (ms)", "Min Time (ms)", "Max Time (ms)", "Avg Time (ms)")),
    "memory": ("Memory", ("Min Use  (kB)", "Max Use  (kB)", "Avg Use  (kB)")),
    "counter": ("Counter", ("Min Value", "Max Value", "Avg Value")),
}


def _sorted_rows(rows, sort_by, ascending):
    key = {"total": lambda r: r[1][1], "avg": lambda r: r[1][1] / r[1][0], "min": lambda r: r[1][2],
           "max": lambda r: r[1][3], "count": lambda r: r[1][0]}[sort_by]
    return sorted(rows, key=key, reverse=not ascending)


def dumps(reset=False, format="table", sort_by="total", ascending=False) -> str:
    """The aggregate statistics: per category a table of each name's count, total, min, max and
    average time (ms; memory in kB, counters in their values), laid out as MXNet's, or the same
    as JSON (format='json': {"Time": {category: {name: {Count, Total, Min, Max, Avg}}}, ...}).
    reset=True clears the statistics after reading them."""
    if format not in ("table", "json"):
        raise GraphcError(f"profiler.dumps: format must be 'table' or 'json', got {format!r}")
    if sort_by not in _SORT_KEYS:
        raise GraphcError(f"profiler.dumps: sort_by must be one of {', '.join(_SORT_KEYS)}, got {sort_by!r}")
    if ascending not in (True, False) or reset not in (True, False):
        raise GraphcError(f"profiler.dumps: ascending and reset must be True or False, got "
                          f"ascending={ascending!r}, reset={reset!r}")
    groups: dict = {}
    for (kind, cat, name), s in stats(reset).items():
        groups.setdefault((kind, cat), []).append((name, s))
    ordered = sorted(groups, key=lambda kc: (kc[0] != "memory", kc[1]))
    if format == "json":
        doc = {}
        for kind, cat in ordered:
            section = doc.setdefault(_TABLES[kind][0], {}).setdefault(cat, {})
            for name, (n, total, lo, hi) in _sorted_rows(groups[kind, cat], sort_by, ascending):
                entry = {"Count": n, "Total": total, "Min": lo, "Max": hi, "Avg": total / n}
                if kind != "time":
                    del entry["Total"]
                section[name] = entry
        doc["Unit"] = {"Time": "ms", "Memory": "kB"}
        return json.dumps(doc, indent=4)
    lines = ["", "Profile Statistics:", "\tNote the difference in units for different entries."]
    for kind, cat in ordered:
        columns = _TABLES[kind][1]
        lines += [cat, "=================",
                  f"{'Name':<30}{'Total Count':>11}" + "".join(f"{c:>17}" for c in columns),
                  f"{'----':<30}{'-' * 11:>11}" + "".join(f"{'-' * len(c):>17}" for c in columns)]
        for name, (n, total, lo, hi) in _sorted_rows(groups[kind, cat], sort_by, ascending):
            values = (total, lo, hi, total / n) if kind == "time" else (lo, hi, total / n)
            lines.append(f"{name:<30}{n:>11}" + "".join(f"{v:>17.4f}" for v in values))
        lines.append("")
    return "\n".join(lines) + "\n"


def program_table(program) -> str:
    """A compiled program's step timings as a table: per step the time per call, its share of
    the total, and what it computes; slowest first. The program must have been built with
    GRAPHC_PROFILE=1 (or profile=True), or have run while this profiler recorded (its timings
    are then its profiled twin's, summed over every profiled call)."""
    timed = program if program._timings is not None else program._twin
    if timed is None:
        raise GraphcError(f"profiler.program_table: graph {program.graph.name} has no timings: build it with "
                          "GRAPHC_PROFILE=1, or call it while the profiler runs (set_state('run'))")
    rows = timed.profile()
    total = sum(r[0] for r in rows) or 1.0
    width = max([len("kernel")] + [len(r[2]) for r in rows])
    out = [f"program {program.graph.name}: {len(rows)} steps, {timed._calls} calls, "
           f"{total * 1e3:.4f} ms per call in steps",
           f"{'kernel':<{width}}  {'kind':<6}  {'ms/call':>10}  {'share':>6}  what"]
    for seconds, kind, name, what in rows:
        out.append(f"{name:<{width}}  {kind:<6}  {seconds * 1e3:>10.4f}  {seconds / total:>6.1%}  {what}")
    return "\n".join(out)


# -- the user's objects -----------------------------------------------------------------------------
class Domain:
    """A category grouping the user's tasks, frames, counters and markers (the trace's 'cat')."""

    def __init__(self, name):
        self.name = str(name)

    def __str__(self):
        return self.name

    def new_task(self, name):
        return Task(self, name)

    def new_frame(self, name):
        return Frame(self, name)

    def new_counter(self, name, value=None):
        return Counter(self, name, value)

    def new_marker(self, name):
        return Marker(self, name)


class _Span:
    """A timed scope: start()/stop(), or `with`. Recorded (one 'X' event) when it stops, if the
    profiler was recording when it started."""
    _category = ""

    def __init__(self, name):
        self.name = str(name)
        self._t0 = None

    def start(self):
        self._t0 = _trace.now() if _trace.recording else None

    def stop(self):
        if self._t0 is not None:
            _trace.span(self.name, self._category, self._t0, _trace.now())
            self._t0 = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __str__(self):
        return self.name


class Task(_Span):
    """A unit of work in a domain; every pass through it adds to one row of the statistics."""

    def __init__(self, domain, name):
        super().__init__(name)
        self._category = str(domain)


class Frame(_Span):
    """A period (one frame, one iteration) in a domain; listed under 'DOMAIN,frame', as in MXNet."""

    def __init__(self, domain, name):
        super().__init__(name)
        self._category = f"{domain},frame"


class Event(_Span):
    """A timed region of the calling thread, outside any domain (category 'event')."""
    _category = "event"


class Counter:
    """A value tracked over time in a domain (a 'C' event at each change)."""

    def __init__(self, domain, name, value=None):
        self.name, self._category = str(name), str(domain)
        self._value = 0
        if value is not None:
            self.set_value(value)

    def set_value(self, value):
        self._value = int(value)
        if _trace.recording:
            _trace.counter(self.name, self._category, self._value)

    def increment(self, delta=1):
        self.set_value(self._value + int(delta))

    def decrement(self, delta=1):
        self.set_value(self._value - int(delta))

    def __iadd__(self, delta):
        self.increment(delta)
        return self

    def __isub__(self, delta):
        self.decrement(delta)
        return self

    def __str__(self):
        return self.name


_SCOPES = {"global": "g", "process": "p", "thread": "t", "task": "t", "marker": "t"}


class Marker:
    """An instant in a domain (listed under 'DOMAIN,instant_marker', as in MXNet)."""

    def __init__(self, domain, name):
        self.name, self.domain = str(name), domain

    def mark(self, scope="process"):
        if scope not in _SCOPES:
            raise GraphcError(f"profiler.Marker.mark: scope must be one of {', '.join(_SCOPES)}, got {scope!r}")
        if _trace.recording:
            _trace.instant(self.name, f"{self.domain},instant_marker", _SCOPES[scope])


@contextlib.contextmanager
def isolated(**config):
    """A profiling session of its own: inside, the profiler starts stopped and empty with
    `config` applied (over the defaults); on leaving, the caller's configuration, state, events
    and statistics are back as they were. For tools (`graphc profile`) and tests that profile
    without disturbing a session the user may have running."""
    global _state, _paused, _folded
    with _lock:
        saved = (dict(_config), _state, _paused, _folded, dict(_stats), list(_trace.events))
        _config.clear()
        _config.update(_DEFAULTS)
        _state, _paused, _folded = "stop", False, 0
        _stats.clear()
        del _trace.events[:]
        _apply()
    try:
        set_config(**config)
        yield
    finally:
        with _lock:
            (config_, _state, _paused, _folded, stats_, events) = saved
            _config.clear()
            _config.update(config_)
            _stats.clear()
            _stats.update(stats_)
            _trace.events[:] = events
            _apply()


__all__ = ["set_config", "set_state", "state", "pause", "resume", "dump", "dump_profile", "dumps", "stats",
           "chrome_trace", "program_table", "isolated", "Domain", "Task", "Frame", "Event", "Counter", "Marker"]
