"""Pipelined micro-batches: which (step, micro-batch) task a device runs next, and how long each
device sat idle.

A partitioned program (graphc/partitioned.py) is a DAG of steps, each bound to a device. Run
on M micro-batches it becomes M copies of that DAG, and a device need not wait for the whole
batch: while cpu(1) runs stage 2 of micro-batch m, cpu(0) runs stage 1 of micro-batch m+1
(GPipe). Each device works through its own tasks on its own thread as their inputs arrive; the
order is chosen greedily while running, not fixed ahead, so it adapts to the real durations:
among the tasks that are ready, first one that another device is waiting for (directly or
through later tasks), then the lowest micro-batch. With backward stages split at their handoff
(plan_stages(split_handoff=True)), that runs every micro-batch's input gradient, which the
previous stage waits for, before any weight gradient, which nobody waits for: the weight
gradients fill what would be the pipeline's drain bubble (the zero-bubble schedules' idea).

A step runs its micro-batches in order (task (i, m) after (i, m-1)): a stage that updates state
in place (BatchNorm's moving statistics) sees the micro-batches one after the other, and sums
over micro-batches add in one fixed order.

This module knows steps only as objects with `reads`, `makes` (value keys) and a `label`, and
runs a callable per task; it never compiles, and knows nothing of graphs, Gluon or autograd.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .ops.errors import GraphcError

__all__ = ["split_batch", "Task", "build_tasks", "run", "start", "Running", "Timeline", "bubble_fraction", "replay"]


def check_micro(micro, where: str = "pipeline"):
    """Refuse a pipeline_microbatches value that is not a positive integer, naming the block."""
    if isinstance(micro, bool) or not isinstance(micro, (int, np.integer)) or micro < 1:
        raise GraphcError(f"{where}: pipeline_microbatches must be a positive integer, got {micro!r}")


def split_batch(n: int, micro: int, where: str = "pipeline") -> list:
    """[(start, stop), ...]: n rows in `micro` contiguous micro-batches whose sizes differ by at
    most one, the larger first (10 rows in 4: 3, 3, 2, 2). `where` names the block in errors."""
    check_micro(micro, where)
    if micro > n:
        raise GraphcError(f"{where}: pipeline_microbatches={micro} is more than the batch size {n}; every "
                          "micro-batch needs at least one row")
    base, extra = divmod(n, micro)
    bounds, start = [], 0
    for m in range(micro):
        stop = start + base + (1 if m < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


class Task:
    """Step `index` of micro-batch `micro`, run on CPU device `device`."""

    __slots__ = ("index", "micro", "device", "label", "readers", "waiting", "urgent")

    def __init__(self, index, micro, device, label):
        self.index, self.micro, self.device, self.label = index, micro, device, label
        self.readers = []        # tasks that may run only after this one
        self.waiting = 0         # unfinished tasks this one runs after
        self.urgent = False      # another device waits for it (directly or through later tasks)

    def key(self):
        return (0 if self.urgent else 1, self.micro, self.index)

    def __repr__(self):
        return f"Task({self.label} micro-batch {self.micro})"


def _after(first: Task, then: Task):
    if then not in first.readers:
        first.readers.append(then)
        then.waiting += 1


def build_tasks(steps_per_micro: list, runs_on, whole_steps=(), whole_reads=None) -> list:
    """One task per (step, micro-batch). steps_per_micro[m]: the steps of micro-batch m's program
    in an order that runs it; runs_on(step, maker): the device index that runs `step`, given the
    step making its first input (None for a program input).

    whole_steps: steps that run once, on the whole batch, after the micro-batches' steps they
    read: whole_reads(key) -> [(m, key in micro-batch m's program), ...] for a key no whole step
    makes (none: a program input). Their tasks have micro-batch number M."""
    if not steps_per_micro:
        raise GraphcError("pipeline: no micro-batches to run")
    structure = [s.label for s in steps_per_micro[0]]
    tasks, grid = [], []
    for m, steps in enumerate(steps_per_micro):
        if [s.label for s in steps] != structure:
            raise GraphcError(f"pipeline: micro-batch {m}'s program has steps {[s.label for s in steps]}, "
                              f"micro-batch 0's {structure}; every micro-batch must run the same stages")
        maker, row = {}, []
        for i, step in enumerate(steps):
            first = maker.get(step.reads[0]) if step.reads else None
            task = Task(i, m, runs_on(step, steps[first.index] if first is not None else None), step.label)
            for k in step.reads:
                dep = maker.get(k)
                if dep is not None:
                    _after(dep, task)
            for k in step.makes:
                maker[k] = task
            if m > 0:
                _after(grid[m - 1][i], task)
            row.append(task)
        for task in reversed(row):     # (readers come later in the order)
            task.urgent = any(r.micro == m and (r.device != task.device or r.urgent) for r in task.readers)
        grid.append(row)
        tasks.extend(row)
    if whole_steps:
        makers = [{k: t for t, step in zip(row, steps) for k in step.makes}
                  for row, steps in zip(grid, steps_per_micro)]
        maker, row = {}, []
        for i, step in enumerate(whole_steps):
            first = maker.get(step.reads[0]) if step.reads else None
            task = Task(i, len(grid), runs_on(step, whole_steps[first.index] if first is not None else None),
                        step.label)
            for k in step.reads:
                if k in maker:
                    _after(maker[k], task)
                    continue
                for m, key in whole_reads(k):
                    dep = makers[m].get(key)
                    if dep is not None:
                        _after(dep, task)
            for k in step.makes:
                maker[k] = task
            row.append(task)
        for task in reversed(row):
            task.urgent = any(r.device != task.device or r.urgent for r in task.readers)
        tasks.extend(row)
    return tasks


class Timeline:
    """When each task ran: events (device, label, micro-batch, start, end) in seconds of
    time.perf_counter, and the run's start and end; `cpu` {task: thread CPU seconds it took}
    and `tasks` (the run's DAG) for replay()."""

    def __init__(self, name=""):
        self.name = name
        self.events = []
        self.start = self.end = None
        self.cpu = {}
        self.tasks = []

    def busy_cpu(self) -> float:
        """CPU seconds the tasks took, all devices together (less than busy() when other
        processes took the cores from them)."""
        return sum(self.cpu.values())

    @property
    def wall(self) -> float:
        return (self.end - self.start) if self.start is not None else 0.0

    def busy(self) -> dict:
        """device -> seconds its tasks ran."""
        out = {}
        for device, _, _, t0, t1 in self.events:
            out[device] = out.get(device, 0.0) + (t1 - t0)
        return out

    def bubble_fraction(self) -> float:
        """The share of device time spent idle between the run's start and end:
        1 - sum(busy) / (devices x wall)."""
        return bubble_fraction([self])


def bubble_fraction(timelines, devices=None) -> float:
    """1 - busy / (devices x wall) over several runs (a training step's forward and backward):
    walls and busy times are summed, so time between the runs counts for neither."""
    busy, wall, seen = 0.0, 0.0, set()
    for tl in timelines:
        b = tl.busy()
        busy += sum(b.values())
        wall += tl.wall
        seen.update(b)
    n = devices if devices is not None else len(seen)
    if wall <= 0 or n == 0:
        return 0.0
    return 1.0 - busy / (n * wall)


def replay(timeline, durations=None) -> float:
    """Seconds the run's tasks would take, scheduled as run() does (each device greedily, the
    most urgent ready task first), if each task took durations[task] (default: the CPU time it
    took, timeline.cpu): the pipeline's wall on cores nothing else uses, from a run on a busy
    machine, where other processes' load stretches the measured wall. A discrete-event
    simulation: the device that can start a task earliest goes next."""
    durations = timeline.cpu if durations is None else durations
    tasks = timeline.tasks
    waiting = {t: 0 for t in tasks}
    for t in tasks:
        for r in t.readers:
            waiting[r] += 1
    ready_at = {t: 0.0 for t in tasks}
    left = {}
    for t in tasks:
        left.setdefault(t.device, []).append(t)
    free = {d: 0.0 for d in left}
    end = 0.0
    for _ in range(len(tasks)):
        best = None
        for d, mine in left.items():
            ready = [t for t in mine if waiting[t] == 0]
            if not ready:
                continue
            start = max(free[d], min(ready_at[t] for t in ready))
            task = min((t for t in ready if ready_at[t] <= start), key=Task.key)
            if best is None or start < best[0]:
                best = (start, d, task)
        if best is None:
            raise GraphcError(f"pipeline replay: tasks {[t for m in left.values() for t in m][:3]} wait for "
                              "each other")
        start, d, task = best
        left[d].remove(task)
        finish = start + durations[task]
        free[d] = finish
        end = max(end, finish)
        for r in task.readers:
            waiting[r] -= 1
            ready_at[r] = max(ready_at[r], finish)
    return end


class _Run:
    def __init__(self, tasks, execute, timeline):
        self.tasks, self.execute, self.timeline = tasks, execute, timeline
        self.cond = threading.Condition()
        self.error = None
        self.left = len(tasks)

    def loop(self, device):
        """Run the tasks of `device` (all of them when None), each as soon as it is ready and
        the most urgent of those ready."""
        mine = [t for t in self.tasks if device is None or t.device == device]
        clock = time.perf_counter
        while mine:
            with self.cond:
                while True:
                    if self.error is not None:
                        return
                    ready = [t for t in mine if t.waiting == 0]
                    if ready:
                        break
                    if device is None:     # one thread runs everything: nothing else can free a task
                        self.error = GraphcError(f"pipeline: tasks {mine[:3]} wait for each other")
                        return
                    self.cond.wait()
                task = min(ready, key=Task.key)
                mine.remove(task)
            t0, c0 = clock(), time.thread_time()
            try:
                self.execute(task)
            except BaseException as exc:   # noqa: BLE001 - re-raised by run() on the caller's thread
                with self.cond:
                    if self.error is None:
                        self.error = exc
                    self.cond.notify_all()
                return
            t1, c1 = clock(), time.thread_time()
            with self.cond:
                self.timeline.events.append((task.device, task.label, task.micro, t0, t1))
                self.timeline.cpu[task] = c1 - c0
                for r in task.readers:
                    r.waiting -= 1
                self.left -= 1
                self.cond.notify_all()


def run(tasks: list, execute, parallel: bool, name: str = "pipeline") -> Timeline:
    """Run every task: execute(task) on its device's dispatcher thread (graphc/engine.py), one
    loop per device, when `parallel`; else all on the calling thread in the same greedy order.
    Returns the Timeline; raises the first task's error after every device stopped."""
    return start(tasks, execute, parallel, name).wait()


class Running:
    """A started run: wait() for the devices to finish, then the Timeline (or the first error)."""

    def __init__(self, state, jobs, name):
        self._state, self._jobs, self._name = state, jobs, name

    def wait(self) -> Timeline:
        from . import engine
        state = self._state
        for job in self._jobs:
            job.wait()
        for job in self._jobs:          # (the loop catches its tasks' errors; this is its own)
            if job.error is not None:
                engine.reported(job.error)      # raised here, not again at waitall
                if state.error is None:
                    state.error = job.error
        if state.error is not None:
            raise state.error
        if state.left:
            raise GraphcError(f"pipeline {self._name}: {state.left} task(s) never ran")
        return state.timeline


def start(tasks: list, execute, parallel: bool, name: str = "pipeline", on_finish=None) -> Running:
    """run() without the wait: the devices' loops are queued and the caller may go on (to hand
    over results that execute() publishes as they come). on_finish(): called once every loop
    stopped (on the last device's thread; on the caller's when not `parallel`)."""
    from . import engine
    timeline = Timeline(name)
    timeline.tasks = tasks
    state = _Run(tasks, execute, timeline)
    timeline.start = time.perf_counter()
    if not parallel:
        state.loop(None)
        timeline.end = time.perf_counter()
        if on_finish is not None:
            on_finish()
        return Running(state, [], name)
    devices = sorted({t.device for t in tasks})
    remaining = [len(devices)]
    lock = threading.Lock()

    def stopped(job):
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            timeline.end = time.perf_counter()
            if on_finish is not None:
                on_finish()
    jobs = [engine.push(engine.Job(lambda d=d: state.loop(d), d, f"{name}:pipeline@cpu({d})", on_done=stopped))
            for d in devices]
    return Running(state, jobs, name)
