"""The CPU's cores divided into devices: which cores `cpu(k)` owns and how many threads its
programs use.

MXNet's cpu(i) are all one device. graphc's are distinct devices, as GPUs are: each has its own
native worker pool (runtime/threads.py) and its own dispatcher thread (graphc/engine.py), both
pinned to the device's cores, so two devices' programs run at the same time without fighting
over a core. This module only decides the split; it starts no thread and pins nothing itself.

The split, over the cores this process may use (its affinity when the split is first asked for):

- `GRAPHC_CPU_DEVICES="D"`: D devices, the cores in D contiguous blocks whose sizes differ by at
  most one (D larger than the core count: devices share cores round-robin). Fixed: cpu(k) for
  k >= D is refused.
- `GRAPHC_CPU_DEVICES="0-7,8-15"`: the cores of each device, devices separated by commas; a
  device made of several ranges is written with ';' between devices ("0-3,8-11;4-7,12-15").
  Fixed, like the count form.
- unset: the number of devices grows with use. D = 1 + the highest k of any cpu(k) that has held
  data so far, N/D cores each. A process that only ever uses cpu(0) has one device with every
  core and nothing pinned: exactly how graphc ran before devices existed, so single-device
  programs pay nothing. D is the highest index, not the count of indices used, so that cpu(k)
  always means the same cores once D is known (as gpu(k) is one card), and a script that
  initializes on [cpu(0), cpu(1)] before its first forward gets its split before anything is
  compiled.

`GRAPHC_CPU_PIN=0` keeps the split (thread counts) but pins nothing: on a machine shared with
other busy processes a pinned thread cannot move to a core that is free at the moment.

The layout only grows. A program compiled while D was smaller keeps the thread count it was
built with; its device's pool caps that at the device's current size (threads.py), so it stays
correct and runs on its own cores, only without the GEMM plan a fresh compile would choose.
"""
from __future__ import annotations

import os
import threading

from graphc.ops.errors import GraphcError

ENV = "GRAPHC_CPU_DEVICES"

_lock = threading.Lock()
_layout = None           # the current Layout (replaced, never mutated, when it grows)
_listeners = []          # called with the new Layout after it changes


class Layout:
    """An immutable split: `devices[k]` is the tuple of cores of cpu(k). `fixed` when the
    environment set it; `generation` counts changes (pools and dispatchers re-pin on it)."""

    __slots__ = ("devices", "fixed", "generation", "spec")

    def __init__(self, devices, fixed, generation, spec=None):
        self.devices = tuple(tuple(c) for c in devices)
        self.fixed, self.generation, self.spec = fixed, generation, spec

    @property
    def count(self) -> int:
        return len(self.devices)

    @property
    def pinned(self) -> bool:
        """Whether devices own parts of the machine (more than one device)."""
        return len(self.devices) > 1

    @property
    def pin(self) -> bool:
        """Whether threads are bound to their device's cores (pinned, unless GRAPHC_CPU_PIN=0)."""
        return self.pinned and os.environ.get("GRAPHC_CPU_PIN", "1") != "0"

    def cores(self, k: int) -> tuple:
        return self.devices[k]

    def __repr__(self):
        parts = ", ".join(f"cpu({k}): {_format_cores(c)}" for k, c in enumerate(self.devices))
        return f"<CPU layout {parts}{' (fixed by ' + ENV + ')' if self.fixed else ''}>"


def allowed_cores() -> list:
    """The cores this process may run on, ascending."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def split_evenly(cores, count: int) -> list:
    """`cores` in `count` contiguous blocks, sizes differing by at most one (larger first);
    with more devices than cores, device k gets core k mod N."""
    cores = list(cores)
    if count < 1:
        raise GraphcError(f"{ENV}: the number of CPU devices must be at least 1, got {count}")
    n = len(cores)
    if count >= n:
        return [[cores[k % n]] for k in range(count)]
    base, extra = divmod(n, count)
    out, start = [], 0
    for k in range(count):
        size = base + (1 if k < extra else 0)
        out.append(cores[start:start + size])
        start += size
    return out


def _parse_cores(text: str, spec: str) -> list:
    """'0-3' or '5' or '0-3,8-11' (ranges inside one device) -> sorted core list."""
    cores = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise GraphcError(f"{ENV}={spec!r}: empty core range in {text!r}; write e.g. '0-7,8-15'")
        lo, dash, hi = part.partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            raise GraphcError(f"{ENV}={spec!r}: {part!r} is not a core number or a range 'a-b'")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise GraphcError(f"{ENV}={spec!r}: the range {part!r} runs backwards")
        cores.extend(range(a, b + 1))
    return sorted(set(cores))


def parse_spec(spec: str, allowed) -> list:
    """The devices' core lists that GRAPHC_CPU_DEVICES `spec` asks for, checked against the
    `allowed` cores. See the module docstring for the forms."""
    text = spec.strip()
    allowed = list(allowed)
    if text.isdigit():
        return split_evenly(allowed, int(text))
    groups = text.split(";") if ";" in text else text.split(",")
    devices = []
    for group in groups:
        cores = _parse_cores(group, spec)
        missing = [c for c in cores if c not in allowed]
        if missing:
            raise GraphcError(f"{ENV}={spec!r}: core {missing[0]} (device cpu({len(devices)})) is not one this "
                              f"process may run on ({_format_cores(allowed)})")
        devices.append(cores)
    return devices


def _format_cores(cores) -> str:
    cores = list(cores)
    if not cores:
        return "none"
    runs, start, prev = [], cores[0], cores[0]
    for c in cores[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        runs.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(runs)


def _initial() -> Layout:
    spec = os.environ.get(ENV, "").strip()
    allowed = allowed_cores()
    if spec:
        return Layout(parse_spec(spec, allowed), True, 1, spec)
    return Layout([allowed], False, 0)


def current() -> Layout:
    """The layout now (read when first needed: the process's affinity and GRAPHC_CPU_DEVICES)."""
    layout = _layout
    if layout is None:
        with _lock:
            layout = _set(_initial()) if _layout is None else _layout
    return layout


def _set(layout):
    global _layout
    _layout = layout
    return layout


def use(k: int) -> Layout:
    """Make cpu(k) a device (growing an automatic layout to k + 1 devices); the layout after.
    A fixed layout without cpu(k) is an error naming GRAPHC_CPU_DEVICES."""
    layout = current()
    if k < layout.count:
        return layout
    if layout.fixed:
        raise GraphcError(f"cpu({k}) is not a device: {ENV}={layout.spec!r} defines {layout.count} CPU device(s), "
                          f"cpu(0) .. cpu({layout.count - 1})")
    with _lock:
        layout = _layout
        if k < layout.count:
            return layout
        allowed = sorted({c for cores in layout.devices for c in cores})
        layout = _set(Layout(split_evenly(allowed, k + 1), False, layout.generation + 1))
        listeners = list(_listeners)
    for fn in listeners:
        fn(layout)
    return layout


def reset() -> Layout:
    """Back to one device with every core (an automatic layout only; a fixed one stays): for
    graphc.device.release_devices, when a process is done with its devices."""
    if _layout is None:
        return current()        # (outside the lock, which current() takes and is not reentrant)
    with _lock:
        layout = _layout
        if layout.fixed or layout.count == 1:
            return layout
        cores = sorted({c for group in layout.devices for c in group})
        layout = _set(Layout([cores], False, layout.generation + 1))
        listeners = list(_listeners)
    for fn in listeners:
        fn(layout)
    return layout


def on_change(fn) -> None:
    """Call fn(layout) after every change of the layout (pools re-pin their workers)."""
    with _lock:
        _listeners.append(fn)


def threads(k: int) -> int:
    """Threads a program of cpu(k) uses: GRAPHC_NUM_THREADS (or OMP_NUM_THREADS) when set,
    else the device's core count."""
    for var in ("GRAPHC_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var)
        if v and v.isdigit() and int(v) > 0:
            return int(v)
    layout = current()
    return len(layout.cores(k)) if k < layout.count else 1


__all__ = ["Layout", "current", "use", "reset", "threads", "parse_spec", "split_evenly", "allowed_cores", "on_change",
           "ENV"]
