"""Running a partitioned program (graphc/partitioned.py) on micro-batches as a pipeline: one
program per micro-batch size, each micro-batch's steps as tasks that the devices run as their
inputs arrive (graphc/pipeline_schedule.py orders them), plus an optional program run once on
the whole batch from the micro-batches' row values (passes/batch_sums.py says which part of a
backward can). Callbacks receive each output as soon as its step ran, on the device's thread.

Knows steps, environments and arrays; never compiles, never decides the order, and knows
nothing of Gluon or autograd.
"""
from __future__ import annotations

import threading

import numpy as np

from . import engine, pipeline_schedule
from .ops.errors import GraphcError
from .partitioned import PartitionedProgram, _Copy, _Stage, device_index

__all__ = ["run_micro_batches", "start_micro_batches", "MicroBatchRun", "WholeBatch"]


class WholeBatch:
    """A program run once on the whole batch beside the micro-batches' programs (its steps are
    tasks of the same pipeline): input i is sources[i] = ("output", j), output j of every
    micro-batch's program concatenated along axis 0, or ("input", i, batch), the micro-batches'
    input i concatenated (batch) or micro-batch 0's (a shared array). on_output(j, array) as for
    the micro-batches (passes/batch_sums.py says which part of a backward runs this way).
    targets: {output j: numpy array} that the stage making output j writes it into (a weight's
    .grad buffer: no copy afterwards); on_output then gets that array. An output another step
    reads, or one of the wrong shape, dtype or layout, is made in an array of its own instead."""

    def __init__(self, program, sources, on_output=None, targets=None):
        self.program, self.sources, self.on_output = program, sources, on_output
        self.targets = targets or {}


def run_micro_batches(programs: list, feeds: list, rngs: list, on_output=None, whole: WholeBatch = None,
                      reuse_outputs: bool = False):
    """start_micro_batches(...).wait(): (outputs per micro-batch, Timeline)."""
    return start_micro_batches(programs, feeds, rngs, on_output, whole, reuse_outputs).wait()


class MicroBatchRun:
    """A started run_micro_batches: wait() -> (outputs per micro-batch, Timeline)."""

    def __init__(self, running, finish):
        self._running, self._finish = running, finish

    def wait(self):
        return self._finish(self._running.wait())


def start_micro_batches(programs: list, feeds: list, rngs: list, on_output=None, whole: WholeBatch = None,
                        reuse_outputs: bool = False, on_finish=None) -> MicroBatchRun:
    """Start programs[m] on feeds[m] for every micro-batch m, pipelined across the devices
    (graphc/pipeline_schedule.py decides the order). The programs are one partitioned graph
    compiled per micro-batch size, so their steps correspond one to one. on_output(m, j, array):
    called on the device's thread as soon as the step making output j of micro-batch m ran
    (before the next micro-batch's run of that step): for accumulating gradients and writing
    auxiliary states back while the pipeline runs; the array is the callback's to keep and
    write. reuse_outputs: the stages write into the arrays they returned for the same micro-batch
    last time when nothing holds those any more (static_alloc). on_finish(): called once every
    device stopped (pipeline_schedule.start). The caller may go on while the devices run."""
    if not (len(programs) == len(feeds) == len(rngs)):
        raise GraphcError(f"run_micro_batches: {len(programs)} programs, {len(feeds)} feeds and {len(rngs)} "
                          "random generators; one of each per micro-batch")
    envs = []
    for prog, arrays in zip(programs, feeds):
        if len(arrays) != len(prog.input_keys):
            raise GraphcError(f"{prog.graph.name}: partitioned program takes {len(prog.input_keys)} inputs, "
                              f"got {len(arrays)}")
        env = dict(prog.consts)
        env.update(zip(prog.input_keys, arrays))
        envs.append(env)
    out_index = []                 # per micro-batch: value key -> output positions
    for prog in programs:
        where = {}
        for j, k in enumerate(prog.output_keys):
            where.setdefault(k, []).append(j)
        out_index.append(where)
    # an output that a later step still reads is passed as a copy (the callback may keep and
    # write what it gets); one no step makes (an input returned as it is) is reported at the end
    read = [{k for s in prog.steps for k in s.reads} for prog in programs]
    made = [{k for s in prog.steps for k in s.makes} for prog in programs]

    micro = len(programs)
    if whole is not None:
        run_whole, whole_reads = _whole_batch(whole, programs, feeds, envs, rngs, reuse_outputs)

    def execute(task):
        m = task.micro
        if m == micro:
            return run_whole(task.index)
        step = programs[m].steps[task.index]
        env = envs[m]
        PartitionedProgram._step(step, env, rngs[m], m if reuse_outputs else None)
        if on_output is not None:
            for k in step.makes:
                for n, j in enumerate(out_index[m].get(k, ())):
                    value = env[k]
                    on_output(m, j, np.array(value, copy=True) if n or k in read[m] else value)

    tasks = pipeline_schedule.build_tasks([prog.steps for prog in programs], _runs_on,
                                          whole.program.steps if whole is not None else (),
                                          whole_reads if whole is not None else None)
    parallel = not engine.on_dispatcher() and len({t.device for t in tasks}) > 1
    running = pipeline_schedule.start(tasks, execute, parallel, programs[0].graph.name, on_finish)

    def finish(timeline):
        if on_output is not None:
            for m, (env, prog) in enumerate(zip(envs, programs)):
                for j, k in enumerate(prog.output_keys):
                    if k not in made[m]:
                        on_output(m, j, np.array(env[k], copy=True))
        return [[env[k] for k in prog.output_keys] for env, prog in zip(envs, programs)], timeline
    return MicroBatchRun(running, finish)


def _whole_batch(whole: WholeBatch, programs, feeds, envs, rngs, reuse_outputs):
    """(run(step index), reads(key)) for the whole-batch program's tasks: its inputs are put
    together from the micro-batches when a step first reads them."""
    prog = whole.program
    if len(whole.sources) != len(prog.input_keys):
        raise GraphcError(f"{prog.graph.name}: {len(prog.input_keys)} inputs but {len(whole.sources)} sources")
    env = dict(prog.consts)
    lock = threading.Lock()
    source_of = dict(zip(prog.input_keys, whole.sources))
    out_index = {}
    for j, k in enumerate(prog.output_keys):
        out_index.setdefault(k, []).append(j)
    read = {k for s in prog.steps for k in s.reads}

    def reads(key):
        src = source_of.get(key)
        if src is None or src[0] != "output":
            return []
        return [(m, p.output_keys[src[1]]) for m, p in enumerate(programs)]

    def assemble(key):
        src = source_of[key]
        if src[0] == "output":
            parts = [e[p.output_keys[src[1]]] for e, p in zip(envs, programs)]
        elif src[2]:
            parts = [f[src[1]] for f in feeds]
        else:
            return np.require(feeds[0][src[1]], requirements="C")
        return np.concatenate(parts, axis=0)

    def run(index):
        step = prog.steps[index]
        for k in step.reads:
            if k in source_of:
                with lock:
                    if k not in env:
                        env[k] = assemble(k)
        PartitionedProgram._step(step, env, rngs[0], "whole" if reuse_outputs else None,
                                 _target_arrays(step, whole.targets, out_index, read) if whole.targets else None)
        if whole.on_output is not None:
            for k in step.makes:
                for n, j in enumerate(out_index.get(k, ())):
                    value = env[k]
                    whole.on_output(j, np.array(value, copy=True) if n or k in read else value)
    return run, reads


def _target_arrays(step, targets, out_index, read):
    """The output arrays of a stage when some of its outputs have targets (WholeBatch), else
    None. A target is used for the value handed to the callback itself: the first output
    position of a value no other step reads (the others get copies); the rest of the stage's
    outputs get fresh arrays."""
    if not isinstance(step, _Stage):
        return None
    arrays, hit = [], False
    for k, v in zip(step.makes, step.graph.outputs):
        places = out_index.get(k, ())
        t = targets.get(places[0]) if places and k not in read else None
        shape, dtype = tuple(v.type.shape), np.dtype(v.type.dtype)
        if t is not None and (t.shape != shape or t.dtype != dtype or not t.flags.c_contiguous
                              or not t.flags.writeable):
            t = None
        hit = hit or t is not None
        arrays.append(t if t is not None else np.empty(shape, dtype))
    return arrays if hit else None


def _runs_on(step, maker) -> int:
    """The device whose thread runs a step: a copy runs on its source's device right after the
    stage making it (a hand-over, or a memcpy far shorter than waiting for the destination's
    thread to come free); a copy of an input runs at its destination."""
    if isinstance(step, _Copy) and maker is not None:
        return device_index(maker.device)
    return device_index(step.device)
