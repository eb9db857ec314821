"""Pipelined micro-batches for a partitioned hybridized block: `hybridize(group2ctx=...,
pipeline_microbatches=M)`, or M on a block whose children live on different devices.

A call splits every data input along axis 0 (the batch axis of MXNet's NC/NCHW layouts; a
block whose batch is another axis, such as an RNN layer in TNC layout, cannot be pipelined
this way) into M contiguous micro-batches whose sizes differ by at most one, runs each stage of
each micro-batch on its device as soon as its input is there (graphc/pipeline_schedule.py
orders the tasks, graphc/micro_batches.py runs them), and concatenates the outputs back along
axis 0, so every output must have the batch as its first axis. Under autograd.record() the
block's backward runs pipelined too: each parameter's gradient is the sum over micro-batches
(what the whole batch gives, up to the order of float additions), a data input's gradient the
concatenation; grad_req='add' then adds that sum once, as for any block. Each gradient is
handed to autograd as soon as its device made it (the last stage's are written to .grad while
the first stage still computes). A weight gradient made once on the whole batch is made in the
parameter's .grad array itself when backward() would overwrite that whole anyway (grad_req
'write', the parameter read by this block alone: autograd.grad_buffer), so no copy follows (on
W11, 128 MB of copies per step), and a Trainer then steps each device's parameters on that
device, all at once (gluon/device_updates.py). Without recording the forward is pipelined the
same way.

What differs from the whole batch: operators that mix the rows of a batch see one micro-batch
at a time. BatchNorm in training normalises with each micro-batch's own mean and variance and
updates its moving statistics M times, one micro-batch after the other (as M steps on the
micro-batches would). Nets without such operators compute what the unpipelined block computes.

Each micro-batch size is traced and compiled once (uneven splits: two sizes), with the device
placement of the whole batch's graph copied node by node, so the stages are the same. This
module is the glue between the CachedOp, autograd and the runner; it owns no schedule logic.
"""
from __future__ import annotations

import queue

import numpy as np

from .. import autograd
from ..ndarray import NDArray
from ..ops.errors import GraphcError
from ..ops.graph import Graph, Node
from ..micro_batches import WholeBatch, run_micro_batches, start_micro_batches
from ..partitioned import PartitionedProgram
from ..passes.batch_sums import split_batch_sums
from ..passes.partition import COPY, DEVICE, node_device
from ..pipeline_schedule import split_batch

FLAG = "pipeline_microbatches"
SCHEDULE_FLAG = "pipeline_schedule"
# 'zero-bubble': backward stages split at their handoff, sums over the batch run once on the
# whole batch; 'gpipe': every stage whole, per micro-batch (GPipe as published; for comparison)
SCHEDULES = ("zero-bubble", "gpipe")


def wanted(cached_op) -> bool:
    """Whether a partitioned block's calls are pipelined (M > 1; M = 1 is the plain path)."""
    micro = cached_op.flags.get(FLAG)
    return micro is not None and micro != 1


class Partitioning:
    """How the block's calls place and compile graphs (model_parallel.call's choices):
    place(graph) -> placed graph; compile_stage(graph, device) -> Program;
    training_graphs(placed graph, entry, mask) -> (forward/backward split, gradient devices)."""

    def __init__(self, place, compile_stage, training_graphs):
        self.place, self.compile_stage, self.training_graphs = place, compile_stage, training_graphs


class _Micro:
    """One micro-batch size: its traced entry, placed graph and (inference) program; training's
    programs are in the whole batch's _TrainPlan."""

    def __init__(self, entry, graph):
        self.entry, self.graph = entry, graph
        self.forward = None        # PartitionedProgram of the graph


def call(cached_op, args, entry, graph, inputs, arrays, out_devices, training, rng, partitioning: Partitioning):
    """CachedOp.__call__ of a partitioned block with pipeline_microbatches=M. `graph`: the whole
    batch's placed graph; inputs/arrays: data inputs then parameters (NDArrays / their arrays)."""
    name = cached_op.block.name
    micro = cached_op.flags.get(FLAG)
    what = f"{name}: {FLAG}={micro!r}"
    n_data = entry.n_data
    batch = _batch_size(arrays[:n_data], what)
    bounds = split_batch(batch, micro, name)
    sizes = [b - a for a, b in bounds]
    with cached_op._compile_lock:
        parts = {s: _micro(cached_op, args, entry, graph, s, batch, training, partitioning, what)
                 for s in sorted(set(sizes))}
    feeds = [[x[a:b] for x in arrays[:n_data]] + list(arrays[n_data:]) for a, b in bounds]
    rngs = [np.random.default_rng(int(rng.integers(2 ** 63))) for _ in bounds] if rng is not None \
        else [None] * len(bounds)
    if autograd.is_recording():
        mask = tuple(autograd.needs_grad(x) and np.dtype(x.dtype).kind == "f" for x in inputs)
        if any(mask):
            return _train(cached_op, entry, graph, parts, sizes, bounds, inputs, feeds, rngs, mask, training,
                          out_devices, partitioning)
    for s, part in parts.items():
        if part.forward is None:
            with cached_op._compile_lock:
                if part.forward is None:
                    part.forward = PartitionedProgram(part.graph, partitioning.compile_stage)
    results, timeline = run_micro_batches([parts[s].forward for s in sizes], feeds, rngs,
                                          _aux_writer(entry, entry.n_visible), reuse_outputs=cached_op.static_alloc)
    cached_op.last_pipeline = {"forward": timeline}
    return _nested(entry, _concatenated(entry, results, out_devices))


def _batch_size(arrays, what) -> int:
    shapes = [x.shape for x in arrays]
    if not shapes or any(len(s) == 0 for s in shapes) or len({s[0] for s in shapes}) != 1:
        raise GraphcError(f"{what}: the data inputs are split into micro-batches along axis 0, so they need "
                          f"one batch size as their first axis; their shapes are {shapes}")
    return shapes[0][0]


def _micro(cached_op, args, entry, graph, size, batch, training, partitioning, what) -> _Micro:
    """The traced, placed micro-batch of `size` rows (cached on the whole batch's entry)."""
    from .cached_op import flatten, prepare, unflatten
    cache = entry.__dict__.setdefault("pipeline", {})
    part = cache.get((size, training))
    if part is not None:
        return part
    leaves, tree = flatten(list(args))
    small = [NDArray(x._data[:size], x._ctx) for x in leaves]
    key = ("pipeline_micro", tuple((x.shape, np.dtype(x.dtype)) for x in small), training, small[0]._ctx)
    sub = cached_op._trace_once(key, unflatten(small, tree))
    for j, (whole, piece) in enumerate(zip(entry.graph.outputs[:entry.n_visible], sub.graph.outputs)):
        ws, ps = whole.type.shape, piece.type.shape
        if not ws or not ps or ws[0] != batch or ps[0] != size:
            raise GraphcError(f"{what}: output {j} has shape {ws} for a batch of {batch} and {ps} for a "
                              f"micro-batch of {size}; the micro-batches' outputs are concatenated along axis 0, "
                              "so every output needs the batch as its first axis")
    placed = _placed_like(graph, prepare(sub.graph, training), partitioning.place)
    part = cache[(size, training)] = _Micro(sub, placed)
    return part


def _placed_like(whole: Graph, graph: Graph, place) -> Graph:
    """`graph` (a micro-batch's trace) placed as `whole` (the batch's placed graph) is: node by
    node when the two traces have the same operators in the same order (they do unless a pass
    simplified one size differently), else by the block's own placement rules."""
    ref = [n for n in whole.nodes if n.op != COPY]
    if len(ref) != len(graph.nodes) or any(a.op != b.op for a, b in zip(ref, graph.nodes)):
        return place(graph)
    new_of, nodes, by_id = {}, [], {}
    for a, b in zip(ref, graph.nodes):
        dev = node_device(a)
        if b.is_const or dev is None:
            new = b
        else:
            ins = [new_of[(id(v.node), v.index)] for v in b.inputs]
            new = Node(b.op, ins, b.attrs, b.name, b.types, {**b.hints, DEVICE: dev})
        nodes.append(new)
        by_id[id(b)] = new
        for i in range(len(b.types)):
            new_of[(id(b), i)] = new.out(i)
    hinted = Graph(nodes, [by_id[id(n)] for n in graph.inputs], [new_of[(id(v.node), v.index)] for v in graph.outputs],
                   graph.name, graph.output_tree)
    return place(hinted)


def _aux_writer(entry, n_visible):
    """on_output for a forward: auxiliary-state updates (BatchNorm's moving statistics) go into
    every copy of their parameter as soon as a micro-batch made them, before the next
    micro-batch's run of that stage reads them."""
    n_aux = len(entry.aux_updates)

    def write(m, j, value):
        if n_visible <= j < n_visible + n_aux:
            for arr in entry.param_list[entry.aux_updates[j - n_visible]].list_data():
                arr._data[...] = value
    return write


def _concatenated(entry, results, out_devices) -> list:
    """The block's outputs: each micro-batch's rows, in order."""
    return [NDArray(np.concatenate([r[j] for r in results], axis=0), out_devices[j]) for j in range(entry.n_visible)]


def _nested(entry, outs):
    from .cached_op import unflatten
    return outs[0] if entry.out_tree == 0 else unflatten(outs, entry.out_tree)


class _TrainPlan:
    """One gradient mask's programs: per micro-batch size (forward, per-micro-batch backward,
    forward/backward split, gradient devices); the whole-batch backward program and, for each
    gradient, where it comes from (("rows", j) of the per-micro-batch backward or ("whole", j))."""

    def __init__(self, per_size, whole, sources, outputs):
        self.per_size, self.whole, self.sources, self.outputs = per_size, whole, sources, outputs


def _plan(cached_op, entry, graph, parts, mask, training, partitioning) -> _TrainPlan:
    cache = entry.__dict__.setdefault("pipeline_train", {})
    plan = cache.get((mask, training))
    if plan is not None:
        return plan
    schedule = cached_op.flags.get(SCHEDULE_FLAG, "zero-bubble")
    if schedule not in SCHEDULES:
        raise GraphcError(f"{cached_op.block.name}: {SCHEDULE_FLAG}={schedule!r}; expected one of {SCHEDULES}")
    compile_stage = partitioning.compile_stage
    graphs = {s: partitioning.training_graphs(part.graph, part.entry, mask) for s, part in parts.items()}
    cuts = None
    if schedule == "zero-bubble":
        whole_split, _ = partitioning.training_graphs(graph, entry, mask)
        cuts = {s: split_batch_sums(split.backward, whole_split.backward) for s, (split, _) in graphs.items()}
        if any(c is None for c in cuts.values()):
            cuts = None                     # (the sums over the batch stay per micro-batch)
    per_size = {}
    for s, (split, grad_devices) in graphs.items():
        backward = cuts[s].rows if cuts else split.backward
        per_size[s] = (PartitionedProgram(split.forward, compile_stage),
                       PartitionedProgram(backward, compile_stage, split_handoff=schedule == "zero-bubble"),
                       split, grad_devices)
    first = next(iter(cuts.values())) if cuts else None
    n_grads = len(next(iter(graphs.values()))[0].backward.outputs)
    plan = cache[(mask, training)] = _TrainPlan(
        per_size, PartitionedProgram(first.whole, compile_stage) if first else None,
        first.sources if first else None, first.outputs if first else [("rows", j) for j in range(n_grads)])
    return plan


def _train(cached_op, entry, graph, parts, sizes, bounds, inputs, feeds, rngs, mask, training, out_devices,
           partitioning):
    with cached_op._compile_lock:
        plan = _plan(cached_op, entry, graph, parts, mask, training, partitioning)
    compiled = [plan.per_size[s] for s in sizes]
    split = compiled[0][2]
    n_out, n_visible, micro = split.num_outputs, entry.n_visible, len(bounds)
    results, forward_timeline = run_micro_batches([c[0] for c in compiled], feeds, rngs, _aux_writer(entry, n_visible),
                                                  reuse_outputs=cached_op.static_alloc)
    cached_op.last_pipeline = {"forward": forward_timeline}
    outs = _concatenated(entry, results, out_devices)
    saved = [r[n_out:] for r in results]
    positions = [i for i, m in enumerate(mask) if m]
    grad_devices = compiled[0][3]
    name = cached_op.block.name
    record = cached_op.last_pipeline
    from_rows = {where[1]: j for j, where in enumerate(plan.outputs) if where[0] == "rows"}
    from_whole = {where[1]: j for j, where in enumerate(plan.outputs) if where[0] == "whole"}

    def backward(F, ins, outs_, ograds):
        for g in ograds:
            if g._entry is not None and autograd.is_recording():
                raise GraphcError(f"{name}: gradients of gradients through a pipelined block are not compiled; "
                                  "call it without hybridize() for create_graph")
        heads = [np.require(g._data, requirements="C") for g in ograds]
        bfeeds = [_backward_feed(c[2], saved[m], feeds[m], [h[a:b] for h in heads])
                  for m, (c, (a, b)) in enumerate(zip(compiled, bounds))]
        summed = [None] * len(positions)
        pieces = [[None] * micro for _ in positions]

        def collect(m, r, g):
            j = from_rows.get(r)
            if j is None:
                return                           # a row value the whole-batch part reads
            if positions[j] < entry.n_data:
                pieces[j][m] = g                 # a data input's gradient: rows of micro-batch m
            elif summed[j] is None:
                summed[j] = g                    # (the program's own fresh array)
            else:
                np.add(summed[j], g, out=summed[j])

        ready = queue.SimpleQueue()          # whole-batch gradients as their device makes them

        def collect_whole(w, g):
            summed[from_whole[w]] = g            # the sum over every micro-batch's rows at once
            ready.put(from_whole[w])
        whole = WholeBatch(plan.whole, plan.sources, collect_whole, _grad_targets(inputs, positions, from_whole,
                                                                              grad_devices)) \
            if plan.whole is not None else None
        running = start_micro_batches([c[1] for c in compiled], bfeeds, rngs, collect, whole,
                                      reuse_outputs=cached_op.static_alloc, on_finish=lambda: ready.put(None))

        def gradient(j):
            g = np.concatenate(pieces[j], axis=0) if positions[j] < entry.n_data else summed[j]
            return positions[j], NDArray(np.require(g, requirements="C"), grad_devices[j])

        def handed_over():
            # (position, gradient) pairs, each as soon as it is final (autograd takes an iterator):
            # autograd writes the last stage's gradients while the first stage still computes
            given = set()
            while True:
                j = ready.get()
                if j is None:
                    break
                given.add(j)
                yield gradient(j)
            _, timeline = running.wait()          # (raises a stage's error)
            record["backward"] = timeline
            for j in range(len(positions)):
                if j not in given:
                    yield gradient(j)
        return handed_over()

    autograd.record_custom(inputs, outs, backward, name)
    return _nested(entry, outs)


def _grad_targets(inputs, positions, from_whole, grad_devices) -> dict:
    """{whole-batch output: numpy array}: the .grad buffers that backward() offers for the
    gradients the whole-batch program makes (autograd.grad_buffer: grad_req 'write', the
    parameter read by this block alone), on the device the gradient is made on. The program
    writes each there, the array handed over is that buffer, and backward copies nothing."""
    targets = {}
    for w, j in from_whole.items():
        buf = autograd.grad_buffer(inputs[positions[j]])
        if buf is not None and buf._ctx == grad_devices[j]:
            targets[w] = buf._data
    return targets


def _backward_feed(split, saved, forward_inputs, heads) -> list:
    """The backward program's inputs for one micro-batch (graphc/gluon/cached_op.backward_feed's
    order): values its forward saved, its forward's inputs, its rows of the output gradients."""
    feed = []
    for kind, k in split.backward_inputs:
        feed.append(saved[k] if kind == "saved" else forward_inputs[k] if kind == "input" else heads[k])
    return feed


__all__ = ["wanted", "call", "Partitioning", "FLAG", "SCHEDULE_FLAG", "SCHEDULES"]
