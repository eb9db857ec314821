"""CUDA graphs for GPU programs: a program's launch sequence captured per (input pointers,
output pointers) tuple and replayed with one call when the tuple comes back.

Why per pointer tuple: a captured graph holds the addresses it was captured with. A training
step's caching allocator (runtime/cuda/memory.py) hands the same blocks back each step, so a
program sees the same few tuples again and again; replaying saves the per-launch Python and
driver cost of its tens to hundreds of launches.

Policy: a tuple is captured the second time it is seen (a tuple seen once is often a one-off:
the first step, a last partial batch); at most GRAPHS_PER_PROGRAM graphs per program, least
recently used dropped (closed); only for programs of at least MIN_CALLS driver calls (one
launch from a graph saves nothing: cuGraphLaunch costs about what a launch does); only on
drivers with `capture` (the real ones: runtime/cuda/real_driver.py; the simulator has none),
and only for programs without host steps (a host step waits for the device, which a capture
cannot hold). GRAPHC_CUDA_GRAPHS=0 turns it off. A capture that fails (CudaError) turns graphs
off for that program with one warning; the call runs launch by launch.

Capture records without running (CUDA stream capture), so the capturing call replays the new
graph once to do its own work. The seed buffer of compiled Dropout keeps its address and is
refilled before each call, so random programs replay too.

Not measured on hardware: no GPU was lent when this was written. The launch sequence a graph
replays is checked by a stand-in driver that records what a capture issues
(tests/runtime/cuda/test_cuda_dispatch.py); what it saves on a real GPU is unknown.
"""
from __future__ import annotations

import os
import warnings
from collections import OrderedDict

from .driver import CudaError

ENV = "GRAPHC_CUDA_GRAPHS"
GRAPHS_PER_PROGRAM = 4
MIN_CALLS = 4
SEEN_LIMIT = 64          # pointer tuples counted per program before the counts start over


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class ProgramGraphs:
    """One program's captured graphs by pointer tuple (see the module docstring). Not locked:
    the program calls it under its own lock."""

    def __init__(self, driver, device: int):
        self.driver, self.device = driver, device
        self._graphs: OrderedDict = OrderedDict()
        self._seen: dict = {}
        self.captures = self.replays = 0
        self.failed = False

    @classmethod
    def for_program(cls, driver, device: int, calls: int):
        """A ProgramGraphs when graphs may pay for a program of `calls` driver calls, else None."""
        if calls < MIN_CALLS or not hasattr(driver, "capture") or not enabled():
            return None
        return cls(driver, device)

    def run(self, key: tuple, issue, ptrs) -> bool:
        """Do this call's work from a graph (replaying one for `key`, or capturing it first);
        False when the caller must issue the calls itself (`issue(ptrs)`)."""
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            graph.replay()
            self.replays += 1
            return True
        if self.failed:
            return False
        seen = self._seen.get(key, 0) + 1
        if seen < 2:
            if len(self._seen) >= SEEN_LIMIT:
                self._seen.clear()
            self._seen[key] = seen
            return False
        self._seen.pop(key, None)
        try:
            graph = self.driver.capture(self.device, lambda: issue(ptrs))
        except CudaError as exc:
            self.failed = True
            warnings.warn(f"gpu({self.device}): CUDA graph capture failed, this program runs launch by launch "
                          f"from now on: {exc}", RuntimeWarning, stacklevel=4)
            return False
        self._graphs[key] = graph
        while len(self._graphs) > GRAPHS_PER_PROGRAM:
            _, old = self._graphs.popitem(last=False)
            _close(old)
        self.captures += 1
        graph.replay()              # (a capture records; this call's work is the first replay)
        self.replays += 1
        return True

    def clear(self) -> None:
        """Close every graph (the driver that made them was reset, or the program is dropped)."""
        graphs, self._graphs = self._graphs, OrderedDict()
        self._seen.clear()
        for g in graphs.values():
            _close(g)

    def __len__(self):
        return len(self._graphs)


def _close(graph) -> None:
    close = getattr(graph, "close", None)
    if close is not None:
        try:
            close()
        except CudaError:
            pass            # a graph of a driver being torn down: nothing left to free


__all__ = ["ProgramGraphs", "enabled", "ENV", "GRAPHS_PER_PROGRAM", "MIN_CALLS"]
