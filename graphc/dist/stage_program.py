"""StageProgram: this rank's share of a graph partitioned over pipeline ranks ('rank(k)').

Every rank of a pipeline holds the same partitioned graph and plans the same steps
(graphc.partitioned.plan_stages); each then runs only its part:

* a stage placed on this rank is compiled and run here; stages of other ranks are skipped;
* a copy from rank a to rank b is an MPI_Isend on a and an MPI_Irecv on b, with the step's index
  as the tag (every rank numbers the steps alike). Receives are posted when a call starts, into
  buffers of the copy's static type, and waited for when the step comes; sends are waited for
  at the end of the call. Steps run in plan order on every rank and a send never blocks, so a
  rank waits only for a step its peer reaches without waiting on this rank: no deadlock.
* every wait goes through World.wait: a deadline, and a dead peer named, never a hang.

Where a value is held: a graph input is either replicated (the SPMD script gives every rank the
same value, like a data batch: a copy of it is taken locally, nothing is sent) or held by one
device (a parameter on its stage's rank, a value an earlier program made there); a stage's
outputs are held by its rank. Outputs named in `broadcast` are sent from their holder to every
rank of the pipeline (MPI_Ibcast), so that every rank's script sees them; the others are
returned where held and are None on the other ranks.

A call runs every step in plan order; graphc/dist/stage_pipeline.py instead interleaves the
steps of several micro-batches' programs through the same pieces (environment, post_receives,
run_step, results, wait_sends).

This module runs steps; it never places nodes (passes/partition.py) and knows nothing of Gluon.
"""
from __future__ import annotations

import numpy as np

from ..ops.errors import GraphcError
from ..partitioned import _Copy, _Stage, plan_stages
from .placement import is_rank_device, rank_index

__all__ = ["StageProgram", "REPLICATED"]

REPLICATED = None           # the origin of an input every rank holds (e.g. the data batch)
_MAX_STEPS = 1 << 13        # tags: kind * _MAX_STEPS + step, kinds 0-3 (MPI guarantees tags up to 32767)


def _key(v):
    return (id(v.node), v.index)


class StageProgram:
    """graph: partitioned on 'rank(k)' devices; origins: per graph input, REPLICATED or the
    device holding it; pipeline: graphc.dist.placement.Pipeline; compile(graph) -> a Program;
    kind: 0 or 1, keeps a forward's and a backward's tags apart; broadcast: indices of the
    outputs every rank receives; name: the block, in error messages; split_handoff: cut each
    stage where another rank could start sooner (plan_stages), for pipelined backwards."""

    def __init__(self, graph, origins, pipeline, compile, kind=0, broadcast=(), name="block", split_handoff=False):
        if len(origins) != len(graph.inputs):
            raise GraphcError(f"{name}: StageProgram got {len(origins)} input origins for {len(graph.inputs)} inputs")
        self.graph, self.pipeline, self.name = graph, pipeline, name
        self.world, self.comm = pipeline.world, pipeline.comm
        self.me = f"rank({pipeline.stage})"
        self.kind = kind
        self.steps = plan_stages(graph, split_handoff)
        if len(self.steps) >= _MAX_STEPS:
            raise GraphcError(f"{name}: {len(self.steps)} pipeline steps; at most {_MAX_STEPS - 1} fit in MPI tags")
        self.types = {}
        for node in graph.nodes:
            for i, t in enumerate(node.types):
                self.types[(id(node), i)] = t
        self.input_keys = [(id(n), 0) for n in graph.inputs]
        self.output_keys = [_key(v) for v in graph.outputs]
        self.consts = {(id(n), 0): n.attrs["value"] for n in graph.nodes if n.is_const}
        self.holder = {k: REPLICATED for k in self.consts}
        for k, origin in zip(self.input_keys, origins):
            self.holder[k] = origin
        for step in self.steps:
            device = step.device
            if not is_rank_device(device):
                raise GraphcError(f"{name}: model parallelism across ranks places every operator on a rank, but a "
                                  f"{type(step).__name__.strip('_').lower()} step sits on {device!r}; put every "
                                  "ctx_group on graphc.dist.rank(k)")
            if rank_index(device) >= pipeline.stages:
                raise GraphcError(f"{name}: a stage is placed on {device}, but the pipeline has {pipeline.stages} "
                                  f"ranks (rank(0) .. rank({pipeline.stages - 1}))")
            for k in step.makes:
                self.holder[k] = device
            if isinstance(step, _Stage) and device == self.me:
                step.program = compile(step.graph)
        self.broadcast = sorted(set(broadcast))
        self.output_holders = [self.holder.get(k, REPLICATED) for k in self.output_keys]
        self._labels = {}
        for node in graph.nodes:
            if node.op == "_CrossDeviceCopy":
                self._labels[(id(node), 0)] = node.inputs[0].node.name

    # -- running --------------------------------------------------------------------------------
    def __call__(self, arrays, rng=None):
        """arrays: one per graph input (those held elsewhere may be None). Returns one value per
        graph output: broadcast ones on every rank, the rest where held (None elsewhere)."""
        env = self.environment(arrays)
        receives = self.post_receives()
        sends = []
        # (on an error the requests are left as they are: the peers cannot finish this call
        # either, and their deadline names this rank)
        for index in range(len(self.steps)):
            self.run_step(index, env, receives, sends, rng)
        results = self.results(env)
        self._broadcast(results)
        self.wait_sends(sends)
        return results

    def environment(self, arrays) -> dict:
        """The values this rank starts a call with: constants and the inputs it holds."""
        if len(arrays) != len(self.input_keys):
            raise GraphcError(f"{self.name}: takes {len(self.input_keys)} inputs, got {len(arrays)}")
        env = dict(self.consts)
        for k, a in zip(self.input_keys, arrays):
            if self.holder[k] in (REPLICATED, self.me):
                if a is None:
                    raise GraphcError(f"{self.name}: input {self.input_keys.index(k)} is held on {self.me} "
                                      "but was not given")
                env[k] = a
        return env

    def run_step(self, index, env, receives, sends, rng=None):
        """This rank's part of step `index`: run a stage placed here, send or receive a copy
        (receives: what post_receives returned; a send joins `sends`), or nothing."""
        step = self.steps[index]
        if isinstance(step, _Copy):
            self._copy(index, step, env, receives, sends)
        elif step.device == self.me:
            feed = [np.require(env[k], requirements="C") for k in step.reads]
            for k, r in zip(step.makes, step.program(feed, None, rng=rng)):
                env[k] = r

    def results(self, env) -> list:
        """One value per graph output: those held here, None for the others."""
        return [env.get(k) if h in (REPLICATED, self.me) else None
                for k, h in zip(self.output_keys, self.output_holders)]

    def wait_sends(self, sends):
        """The peers are done with the sent buffers once the sends complete."""
        if sends:
            self.world.wait([s[0] for s in sends], f"{self.name}: sending pipeline values "
                            f"({', '.join(s[1] for s in sends)}) from {self.me}")

    def _tag(self, index):
        return self.kind * _MAX_STEPS + index

    def _source(self, step):
        return self.holder.get(step.reads[0], REPLICATED)

    def post_receives(self) -> dict:
        """Irecv for every copy this rank receives from another, into buffers of its static
        type: {step index: (request, buffer, source)}."""
        receives = {}
        for index, step in enumerate(self.steps):
            if not isinstance(step, _Copy) or step.device != self.me:
                continue
            source = self._source(step)
            if source in (REPLICATED, self.me):
                continue
            t = self.types[step.makes[0]]
            buffer = np.empty(t.shape, np.dtype(t.dtype))
            request = self.comm.Irecv(buffer, source=rank_index(source), tag=self._tag(index))
            receives[index] = (request, buffer, source)
        return receives

    def _copy(self, index, step, env, receives, sends):
        source, dest = self._source(step), step.device
        label = self._labels.get(step.makes[0], "a value")
        if dest == self.me and source in (REPLICATED, self.me):
            env[step.makes[0]] = np.array(env[step.reads[0]], copy=True, order="C")
        elif dest == self.me:
            request, buffer, _ = receives[index]
            self.world.wait([request], f"{self.name}: {self.me} receiving {label!r} from {source} "
                            f"(pipeline step {index})", lambda: self._suspect(source))
            env[step.makes[0]] = buffer
        elif source == self.me:
            t = self.types[step.makes[0]]
            data = np.require(env[step.reads[0]], np.dtype(t.dtype), "C")
            if data.shape != tuple(t.shape):
                raise GraphcError(f"{self.name}: {label!r} has shape {data.shape} on {self.me}, but the graph "
                                  f"sends shape {tuple(t.shape)} to {dest}")
            request = self.comm.Isend(data, dest=rank_index(dest), tag=self._tag(index))
            sends.append((request, f"{label!r} to {dest}", data))     # (the buffer lives until the wait)

    def _broadcast(self, results):
        """Outputs in self.broadcast from their holder to every rank (collective, same order
        everywhere; every rank knows each output's holder from the same plan)."""
        requests, what = [], []
        for i in self.broadcast:
            holder = self.output_holders[i]
            if holder is REPLICATED:
                continue
            if holder != self.me:
                t = self.types[self.output_keys[i]]
                results[i] = np.empty(t.shape, np.dtype(t.dtype))
            else:
                t = self.types[self.output_keys[i]]
                results[i] = np.require(results[i], np.dtype(t.dtype), "C")
            requests.append(self.comm.Ibcast(results[i], root=rank_index(holder)))
            what.append(f"output {i} from {holder}")
        if requests:
            holders = sorted({self.output_holders[i] for i in self.broadcast} - {REPLICATED, self.me})
            self.world.wait(requests, f"{self.name}: broadcasting {', '.join(what)} to the pipeline",
                            lambda: "; ".join(self._suspect(h) for h in holders) or None)

    def _suspect(self, device):
        """Who a wait on `device` is stuck on, for the deadline's message."""
        return (f"{device} of the pipeline, {self.pipeline.peer(rank_index(device))}, has not sent it: it is "
                "stuck, or its script skipped this call (every rank must call the block, and backward, alike)")
