"""Pipelined micro-batches across pipeline ranks: one StageProgram per micro-batch, this rank
running its stages for micro-batch m as soon as m's values arrive, while its peers work on
other micro-batches.

The order. Every rank derives the same global order of the M copies of the program's steps
(graphc/pipeline_schedule.build_tasks gives the dependencies and urgency: a stage whose value
another rank waits for, such as a backward stage's input gradient when the plan splits stages
at their handoff, goes before one nobody waits for, then the lowest micro-batch). The order is
that of a list-scheduling simulation in which each rank greedily starts its most urgent ready
task, a stage taking one unit of time and a copy none. Each rank then runs its own tasks in that
order: a stage placed here, the Isend of a copy it holds the source of (never waited for until
the end), the wait for a copy it receives. Because every rank's sequence is the same global
topological order restricted to it, and sends never block, the rank blocked at the earliest
position waits for a send that its peer reaches without waiting: no deadlock.

The messages. Receives for every micro-batch are posted when the run starts, into buffers of
the copy's static type (micro-batches of different sizes have their own programs and types).
A copy step keeps its tag for every micro-batch: the sender sends micro-batch m before m+1 (a
step runs its micro-batches in order), receives are posted in that order, and MPI does not let
messages with the same source, tag and communicator overtake each other, so each lands in its
micro-batch's buffer. Every wait goes through World.wait: a deadline, and a dead peer named.

This module runs steps; it never compiles or places, and knows nothing of Gluon or autograd.
"""
from __future__ import annotations

import time

import numpy as np

from ..ops.errors import GraphcError
from ..partitioned import _Copy
from ..pipeline_schedule import Task, build_tasks
from .placement import rank_index
from .stage_program import REPLICATED

__all__ = ["run_pipelined", "global_order", "broadcast_outputs"]


def _device_of(programs):
    """runs_on for build_tasks: a stage on its rank, a copy on the rank sending it (its
    receiver waits at the copy's place in the order). Each micro-batch's program has its own
    value keys, so each copy's source is looked up in its own program."""
    device = {}
    for program in programs:
        for step in program.steps:
            place = step.device
            if isinstance(step, _Copy):
                source = program.holder.get(step.reads[0], REPLICATED)
                place = step.device if source is REPLICATED else source
            device[id(step)] = rank_index(place)
    return lambda step, maker: device[id(step)]


def global_order(programs) -> list:
    """The tasks (one per step and micro-batch) in the order every rank walks them: the order
    in which a simulation of greedy ranks starts them (see the module's docstring)."""
    tasks = build_tasks([p.steps for p in programs], _device_of(programs))
    waiting = {t: t.waiting for t in tasks}
    ready_at = {t: 0.0 for t in tasks}
    left = {}
    for t in tasks:
        left.setdefault(t.device, []).append(t)
    free = {d: 0.0 for d in left}
    order = []
    while len(order) < len(tasks):
        best = None
        for d, mine in left.items():
            ready = [t for t in mine if waiting[t] == 0]
            if not ready:
                continue
            start = max(free[d], min(ready_at[t] for t in ready))
            task = min((t for t in ready if ready_at[t] <= start), key=Task.key)
            if best is None or (start, d) < best[:2]:
                best = (start, d, task)
        if best is None:
            raise GraphcError(f"{programs[0].name}: pipeline steps {[t for m in left.values() for t in m][:3]} "
                              "wait for each other")
        start, d, task = best
        left[d].remove(task)
        step = programs[task.micro].steps[task.index]
        finish = start + (0.0 if isinstance(step, _Copy) else 1.0)
        free[d] = finish
        order.append(task)
        for r in task.readers:
            waiting[r] -= 1
            ready_at[r] = max(ready_at[r], finish)
    return order


def run_pipelined(programs, feeds, rngs, on_step=None, order=None, events=None) -> list:
    """Run programs[m] (StagePrograms of one partitioned graph, one per micro-batch, the same
    steps) on feeds[m] with rngs[m], pipelined. on_step(m, index, env): called after this rank
    ran its part of step `index` of micro-batch m (to write auxiliary states back before m+1's
    run of that stage). Returns, per micro-batch, its outputs held here (None for the others);
    nothing is broadcast (broadcast_outputs does that). events: a list to which each stage this
    rank ran is appended as (label, micro-batch, start, end, CPU seconds): start and end in
    time.perf_counter seconds (the same clock in every process of a host: timelines of several
    ranks line up), the CPU time the thread spent on it (less than end - start on a busy host)."""
    if not (len(programs) == len(feeds) == len(rngs)) or not programs:
        raise GraphcError(f"run_pipelined: {len(programs)} programs, {len(feeds)} feeds and {len(rngs)} "
                          "random generators; one of each per micro-batch, at least one")
    order = global_order(programs) if order is None else order
    envs = [p.environment(a) for p, a in zip(programs, feeds)]
    receives = [p.post_receives() for p in programs]
    sends = []
    me = programs[0].me
    clock = time.perf_counter
    for task in order:
        m, index = task.micro, task.index
        step = programs[m].steps[index]
        timed = events is not None and not isinstance(step, _Copy) and step.device == me
        t0, c0 = (clock(), time.thread_time()) if timed else (0.0, 0.0)
        programs[m].run_step(index, envs[m], receives[m], sends, rngs[m])
        if timed:
            events.append((step.label, m, t0, clock(), time.thread_time() - c0))
        if on_step is not None:
            on_step(m, index, envs[m])
    results = [p.results(env) for p, env in zip(programs, envs)]
    programs[0].wait_sends(sends)
    return results


def broadcast_outputs(programs, values: dict) -> dict:
    """values: {output index: array or None}, each output in programs[0].broadcast put together
    over the micro-batches (concatenated along axis 0) where it is held, None elsewhere. Sends
    each from its holder to every rank of the pipeline (MPI_Ibcast, in the same order
    everywhere); every rank knows the holder from the plan and the shape from the micro-batches'
    static types."""
    first = programs[0]
    requests, what, out = [], [], dict(values)
    for i in first.broadcast:
        holder = first.output_holders[i]
        if holder is REPLICATED:
            continue
        types = [p.types[p.output_keys[i]] for p in programs]
        shape = (sum(t.shape[0] for t in types),) + tuple(types[0].shape[1:])
        dtype = np.dtype(types[0].dtype)
        if holder == first.me:
            out[i] = np.require(values[i], dtype, "C")
            if out[i].shape != shape:
                raise GraphcError(f"{first.name}: output {i} has shape {out[i].shape} on {holder}, but its "
                                  f"micro-batches' types add up to {shape}")
        else:
            out[i] = np.empty(shape, dtype)
        requests.append(first.comm.Ibcast(out[i], root=rank_index(holder)))
        what.append(f"output {i} from {holder}")
    if requests:
        holders = sorted({first.output_holders[i] for i in first.broadcast} - {REPLICATED, first.me})
        first.world.wait(requests, f"{first.name}: broadcasting {', '.join(what)} to the pipeline",
                         lambda: "; ".join(first._suspect(h) for h in holders) or None)
    return out
