"""PartitionedProgram: runs a device-partitioned graph (passes/partition.py) as one program per
device stage, with the `_CrossDeviceCopy` steps between them.

The graph is cut into stages: a stage is the operators of one device at one *rank*, where a
node's rank is the highest rank of its same-device inputs and one more than that of an input
that reaches it through a copy. Every edge then goes from a lower rank to a higher one or stays
inside a stage, so the stages form a DAG even when data goes cpu(0) -> cpu(1) -> cpu(0) (a
residual around a stage; one program per device could not be ordered). Each stage is compiled
by the ordinary compiler for its device (compile_graph(device=k): that device's worker pool);
a copy is a memory copy on one machine, done between stages, or a hand-over of the array when a
stage made it (nothing writes a stage's output again). plan_stages(split_handoff=True) cuts a
stage in two at what other devices wait for (a backward stage's input gradient first, its
weight gradients after).

Running: the steps are queued, each to its device's dispatcher (graphc/engine.py), with the
steps it reads as dependencies, so stages of different devices that do not depend on each other
run at the same time; the call waits for the steps that make its outputs. Called on a
dispatcher thread the steps run in order there (graphc/micro_batches.py runs the same steps
per micro-batch, pipelined). This module compiles and runs; it never decides placement (that is
the pass) and knows nothing of Gluon or autograd.
"""
from __future__ import annotations

import re
import sys
import threading

import numpy as np

from .ops.errors import GraphcError
from .ops.graph import Graph, Node, Value, variable
from .passes.partition import COPY, node_device


_spare_lock = threading.Lock()


def _unshared_count() -> int:
    """sys.getrefcount of an array that only a list holds, seen as take_spare sees it (the
    list, the loop variable, the call's argument: 3 on CPython 3.11-3.13), measured rather
    than assumed, since interpreters differ in the references they count."""
    arrays = [np.empty(1)]
    for a in arrays:
        return sys.getrefcount(a)


_UNSHARED = _unshared_count()


def device_index(device: str) -> int:
    """'cpu(3)' -> 3: the CPU device whose pool runs a stage."""
    m = re.fullmatch(r"cpu\((\d+)\)", device)
    if m is None:
        raise GraphcError(f"model parallelism: stage device {device!r} is not a CPU device cpu(k); "
                          "graphc runs partitioned graphs on CPU devices only")
    return int(m.group(1))


class _Stage:
    """One compiled program: its graph, the values it reads (keys of the environment) and the
    values it makes."""

    def __init__(self, device, rank, graph, reads, makes, part=0):
        self.device, self.rank, self.graph = device, rank, graph
        self.reads, self.makes = reads, makes
        self.part = part           # 1: the rest of a stage split at its handoff (plan_stages)
        self.program = None
        self.spare = None          # slot -> output arrays to reuse (PartitionedProgram._step)

    @property
    def label(self) -> str:
        return f"s{self.rank}{'w' if self.part else ''}@{self.device}"

    def take_spare(self, slot):
        """The arrays kept for `slot` if no one else holds any of them (else None)."""
        with _spare_lock:
            arrays = self.spare.pop(slot, None) if self.spare else None
        if arrays is None:
            return None
        for a in arrays:
            if sys.getrefcount(a) > _UNSHARED:
                return None
        return arrays

    def keep_spare(self, slot, arrays):
        with _spare_lock:
            if self.spare is None:
                self.spare = {}
            self.spare[slot] = list(arrays)


class _Copy:
    def __init__(self, device, rank, read, make):
        self.device, self.rank, self.reads, self.makes = device, rank, [read], [make]
        self.handover = False      # PartitionedProgram: pass the array on instead of copying it

    @property
    def label(self) -> str:
        return f"copy{self.rank}@{self.device}"


def _key(v: Value):
    return (id(v.node), v.index)


def plan_stages(graph: Graph, split_handoff: bool = False) -> list:
    """The steps (stages and copies) of a partitioned graph, in an order that runs it.

    split_handoff: cut each stage in two where that lets another device start sooner: first
    the operators that the values other devices read depend on (a backward stage's input
    gradient, which the previous stage waits for), then the rest (its weight gradients, which
    nobody else waits for). The zero-bubble pipelines' split, found from the graph alone."""
    rank, groups, order = {}, {}, []
    for node in graph.nodes:
        if node.is_var or node.is_const:
            continue
        dev = node_device(node)
        if dev is None:
            raise GraphcError(f"model parallelism: node {node.name!r} ({node.op}) has no device; "
                              "run passes.partition.partition_devices first")
        r = 0
        for v in node.inputs:
            src = v.node
            if src.is_var or src.is_const:
                continue
            r = max(r, rank[id(src)] + (1 if node.op == COPY or node_device(src) != dev else 0))
        rank[id(node)] = r
        if node.op == COPY:
            order.append(_Copy(dev, r, _key(node.inputs[0]), (id(node), 0)))
            continue
        if (dev, r) not in groups:
            groups[(dev, r)] = []
            order.append((dev, r))
        groups[(dev, r)].append(node)
    if split_handoff:
        groups, order = _split_handoff(graph, groups, order)
    # which values each stage must hand on: read by another step, or a graph output
    stage_of = {}
    for item, nodes in groups.items():
        for n in nodes:
            stage_of[id(n)] = item
    wanted = {}
    for node in graph.nodes:
        for v in node.inputs:
            if id(v.node) in stage_of and stage_of.get(id(node)) != stage_of[id(v.node)]:
                wanted.setdefault(stage_of[id(v.node)], []).append(v)
    for v in graph.outputs:
        if id(v.node) in stage_of:
            wanted.setdefault(stage_of[id(v.node)], []).append(v)
    steps = []
    for item in order:
        if isinstance(item, _Copy):
            steps.append(item)
            continue
        dev, r = item[:2]
        part = item[2] if len(item) > 2 else 0
        steps.append(_stage_graph(graph, dev, r, groups[item], wanted.get(item, []), part))
    # copies run after the stage making their source, stages after the copies they read: sort by
    # rank, a copy before the stages of its rank (its reader has at least its rank), the handoff
    # part of a split stage before the rest (which may read it)
    steps.sort(key=lambda s: (s.rank, 0 if isinstance(s, _Copy) else 1, getattr(s, "part", 0)))
    return steps


def _split_handoff(graph: Graph, groups: dict, order: list):
    """groups/order with each stage (dev, r) whose handoff (values a copy reads: another device
    waits for them) needs only some of its operators cut into (dev, r, 0), those operators, and
    (dev, r, 1), the others. Part 0 is closed under its inputs inside the stage, so part 1 may
    read part 0 but never the reverse."""
    copied = {id(v.node) for n in graph.nodes if n.op == COPY for v in n.inputs}
    new_groups, new_order = {}, []
    for item in order:
        if isinstance(item, _Copy):
            new_order.append(item)
            continue
        nodes = groups[item]
        inside = {id(n) for n in nodes}
        needed = {id(n) for n in nodes if id(n) in copied}
        for n in reversed(nodes):         # (topological order: users before their inputs)
            if id(n) in needed:
                needed.update(id(v.node) for v in n.inputs if id(v.node) in inside)
        if not needed or len(needed) == len(nodes):
            new_groups[item] = nodes
            new_order.append(item)
            continue
        for part, keep in ((0, True), (1, False)):
            key = item + (part,)
            new_groups[key] = [n for n in nodes if (id(n) in needed) == keep]
            new_order.append(key)
    return new_groups, new_order


def _stage_graph(graph: Graph, dev: str, r: int, nodes: list, outputs: list, part: int = 0) -> _Stage:
    inside = {id(n) for n in nodes}
    env, inputs, reads = {}, [], []
    new_nodes = []
    for node in nodes:
        ins = []
        for v in node.inputs:
            if v.node.is_const or id(v.node) in inside:
                ins.append(v if v.node.is_const else env[_key(v)])
                continue
            if _key(v) not in env:
                name = v.node.name if v.node.is_var else f"{v.node.name}_out{v.index}"
                var = variable(name, v.type, "input", {"device": dev})
                inputs.append(var)
                reads.append(_key(v))
                env[_key(v)] = var.out()
            ins.append(env[_key(v)])
        new = Node(node.op, ins, node.attrs, node.name, node.types, node.hints)
        new_nodes.append(new)
        for i in range(len(node.types)):
            env[(id(node), i)] = new.out(i)
    outs, makes = [], []
    for v in outputs:
        if _key(v) not in makes:
            makes.append(_key(v))
            outs.append(env[_key(v)])
    suffix = "" if part == 0 else "w"     # (the rest of a split stage: its weight gradients, typically)
    stage_graph = Graph.from_outputs(inputs, outs,
                                     f"{graph.name}_{dev.replace('(', '').replace(')', '')}_s{r}{suffix}")
    return _Stage(dev, r, stage_graph, reads, makes, part)


class PartitionedProgram:
    """A partitioned graph compiled stage by stage; called like a runtime Program:
    program(arrays, outputs=None, rng=None) -> list of numpy arrays (one per graph output).
    compile(graph, device_index) -> a Program for one stage (the caller's compiler)."""

    def __init__(self, graph: Graph, compile, split_handoff: bool = False):
        self.graph = graph
        self.steps = plan_stages(graph, split_handoff)
        for step in self.steps:
            if isinstance(step, _Stage):
                step.program = compile(step.graph, device_index(step.device))
        self.input_keys = [(id(n), 0) for n in graph.inputs]
        self.output_keys = [_key(v) for v in graph.outputs]
        self.consts = {(id(n), 0): n.attrs["value"] for n in graph.nodes if n.is_const}
        # a copy of a value a stage made hands the array over: the stage's program returned a
        # fresh array that nothing writes again (one machine, one address space); a caller's
        # input is copied (the caller may write it), and so is a value returned twice
        made = {k for s in self.steps if isinstance(s, _Stage) for k in s.makes}
        outputs = set(self.output_keys)
        for step in self.steps:
            if isinstance(step, _Copy):
                step.handover = step.reads[0] in made and not (step.reads[0] in outputs and step.makes[0] in outputs)

    def devices(self) -> list:
        return sorted({s.device for s in self.steps}, key=device_index)

    def __call__(self, arrays, outputs=None, rng=None):
        if len(arrays) != len(self.input_keys):
            raise GraphcError(f"{self.graph.name}: partitioned program takes {len(self.input_keys)} inputs, "
                              f"got {len(arrays)}")
        env = dict(self.consts)
        for k, a in zip(self.input_keys, arrays):
            env[k] = a
        self._run(env, rng)
        results = [env[k] for k in self.output_keys]
        if outputs is not None:
            for dst, src in zip(outputs, results):
                dst[...] = src
            return outputs
        return results

    def _run(self, env, rng):
        from . import engine
        if engine.on_dispatcher() or len({s.device for s in self.steps}) < 2:
            for step in self.steps:
                self._step(step, env, rng)
            return
        maker = {}
        jobs = []
        for step in self.steps:
            deps = []
            for k in step.reads:
                job = maker.get(k)
                if job is not None and job not in deps:
                    deps.append(job)
            job = engine.Job(lambda step=step: self._step(step, env, rng), device_index(step.device),
                             f"{self.graph.name}:{type(step).__name__.strip('_').lower()}@{step.device}", deps)
            for k in step.makes:
                maker[k] = job
            jobs.append(engine.push(job))
        for job in jobs:
            job.wait()
        for job in jobs:
            if job.error is not None:
                engine.reported(job.error)      # raised here, not again at waitall
                raise job.error

    @staticmethod
    def _step(step, env, rng, slot=None, outputs=None):
        """Run one step on env. slot: reuse the output arrays this step returned for the same
        slot (micro-batch) last time, when nothing holds them any more (static_alloc): fresh
        large arrays cost page faults and, freed, TLB shootdowns across the devices' threads.
        outputs: arrays for a stage to write its outputs into instead (the caller's, not kept)."""
        if isinstance(step, _Copy):
            src = env[step.reads[0]]
            # a memory copy on one machine (the destination owns its data), or the hand-over
            env[step.makes[0]] = src if step.handover else np.array(src, copy=True, order="C")
            return
        feed = [np.require(env[k], requirements="C") for k in step.reads]
        given = outputs is not None
        if not given and slot is not None:
            outputs = step.take_spare(slot)
        results = step.program(feed, outputs, rng=rng)
        if slot is not None and not given:
            step.keep_spare(slot, results)
        for k, r in zip(step.makes, results):
            env[k] = r


__all__ = ["PartitionedProgram", "plan_stages", "device_index"]
