"""A rank-placed block's calls split into micro-batches and pipelined across the ranks:
hybridize(group2ctx={...: graphc.dist.rank(k)}, pipeline_microbatches=M).

The batch is cut into M micro-batches (graphc/pipeline_schedule.split_batch: sizes differ by at
most one); each size is traced and placed like the whole batch (the placement follows the
ctx_groups, so every size gets the same stages) and run as one StageProgram per micro-batch by
graphc/dist/stage_pipeline.py, which lets rank k work on micro-batch m+1 while rank k+1 works on
m. The backward plans each stage split at its handoff (input gradient first, sent at once; the
weight gradients after, when nobody waits for them).

What each rank gets is what the unpipelined rank path gives (gluon/model_parallel_ranks.py):
the outputs put together and broadcast from the rank making them, data gradients likewise;
a parameter's gradient summed over the micro-batches in order on its owner. Auxiliary states
(BatchNorm's moving statistics) are written back after each micro-batch's stage, so the next
micro-batch reads them, as the in-process pipeline does (graphc/gluon/pipeline.py).

After each call, `cached_op.last_rank_pipeline` holds this rank's timeline: {"forward": [...],
"backward": [...]} of (stage label, micro-batch, start, end, CPU seconds), as
graphc/dist/stage_pipeline.run_pipelined records them (the whole-batch part: micro-batch M).

Glue between the CachedOp, autograd and the runner; it owns no schedule logic.
"""
from __future__ import annotations

import time

import numpy as np

from .. import autograd
from .. import random as _random
from ..ndarray import NDArray
from ..ops.errors import GraphcError
from ..passes.batch_sums import split_batch_sums
from ..pipeline_schedule import split_batch
from .stage_pipeline import broadcast_outputs, global_order, run_pipelined
from .stage_program import REPLICATED, StageProgram

__all__ = ["call"]


class _Plans:
    """Per (sizes, training): the micro-batch entries and their placements (model_parallel_ranks
    .placement); the inference order; per gradient mask the training programs."""

    def __init__(self, entries, placements):
        self.entries, self.placements = entries, placements
        self.order = None
        self.train = {}            # mask -> _Training


def call(cached_op, args, entry, leaves, training, ctx, pipe, group2ctx, compile_stage, name):
    from ..gluon.model_parallel_ranks import forward_plan, placement
    micro = cached_op.flags["pipeline_microbatches"]
    n_data = entry.n_data
    shapes = [x.shape for x in leaves]
    if not shapes or any(len(s) == 0 for s in shapes) or len({s[0] for s in shapes}) != 1:
        raise GraphcError(f"{name}: pipeline_microbatches={micro} splits the data inputs along axis 0, so "
                          f"they need one batch size as their first axis; their shapes are {shapes}")
    bounds = split_batch(shapes[0][0], micro, name)
    sizes = tuple(b - a for a, b in bounds)
    plans = _plans(cached_op, args, entry, sizes, training, ctx, pipe, group2ctx, name, placement)
    params = entry.param_list
    origins = plans.placements[0][2]
    me = f"rank({pipe.stage})"
    inputs = list(leaves) + [p.data(ctx) if ctx in p.list_ctx() else p.data() for p in params]
    held = [np.require(x._data, requirements="C") if o in (REPLICATED, me) else None
            for x, o in zip(inputs, origins)]
    feeds = [[x[a:b] if x is not None else None for x in held[:n_data]] + held[n_data:] for a, b in bounds]
    rng = _random.generator()
    rngs = [np.random.default_rng(int(rng.integers(2 ** 63))) for _ in bounds]
    if autograd.is_recording():
        mask = tuple(autograd.needs_grad(x) and np.dtype(x.dtype).kind == "f" for x in inputs)
        if any(mask):
            return _train(cached_op, entry, plans, inputs, feeds, rngs, mask, bounds, training, ctx, pipe,
                          group2ctx, compile_stage, name)
    programs = [forward_plan(cached_op, e, training, pipe, group2ctx, compile_stage, name)[3] for e in plans.entries]
    if plans.order is None:
        plans.order = global_order(programs)
    events = []
    results = run_pipelined(programs, feeds, rngs, _aux_writer(entry, programs), plans.order, events)
    cached_op.last_rank_pipeline = {"forward": events}
    return _outputs(entry, programs, results, ctx)


def _plans(cached_op, args, entry, sizes, training, ctx, pipe, group2ctx, name, placement):
    """The traced and placed micro-batch sizes (cached on the whole batch's entry)."""
    from ..gluon.cached_op import flatten, unflatten
    cache = entry.__dict__.setdefault("rank_micro", {})
    plans = cache.get((sizes, training))
    if plans is not None:
        return plans
    by_size = {}
    with cached_op._compile_lock:
        for s in sorted(set(sizes)):
            flat, tree = flatten(list(args))
            small = [NDArray(x._data[:s], x._ctx) for x in flat]
            key = ("model_parallel_ranks_micro", tuple((x.shape, np.dtype(x.dtype)) for x in small), training, ctx)
            sub = cached_op._cache.get(key) or cached_op._trace_once(key, unflatten(small, tree))
            if [id(p) for p in sub.param_list] != [id(p) for p in entry.param_list] or sub.n_visible != entry.n_visible:
                raise GraphcError(f"{name}: a micro-batch of {s} rows traces to other parameters or outputs than "
                                  "the whole batch; pipeline_microbatches needs a block whose structure does not "
                                  "depend on the batch size")
            for j, (whole, piece) in enumerate(zip(entry.graph.outputs[:entry.n_visible], sub.graph.outputs)):
                ws, ps = whole.type.shape, piece.type.shape
                if not ws or not ps or ps[0] != s or ws[1:] != ps[1:]:
                    raise GraphcError(f"{name}: output {j} has shape {ws} for the whole batch and {ps} for a "
                                      f"micro-batch of {s} rows; the micro-batches' outputs are concatenated along "
                                      "axis 0, so every output needs the batch as its first axis")
            by_size[s] = (sub, placement(cached_op, sub, training, pipe, group2ctx))
    plans = cache[(sizes, training)] = _Plans([by_size[s][0] for s in sizes], [by_size[s][1] for s in sizes])
    return plans


def _aux_writer(entry, programs):
    """on_step: auxiliary-state updates (outputs n_visible.. of the forward) into their
    parameter as soon as this rank's stage made them, before the next micro-batch reads it."""
    n, aux = entry.n_visible, entry.aux_updates
    if not aux:
        return None
    made = [[] for _ in programs[0].steps]      # step index -> [(output position, parameter)]
    for j, k in enumerate(aux):
        key = programs[0].output_keys[n + j]
        for index, step in enumerate(programs[0].steps):
            if key in step.makes:
                made[index].append((n + j, k))

    def write(m, index, env):
        for j, k in made[index]:
            value = env.get(programs[m].output_keys[j])
            if value is not None:
                for arr in entry.param_list[k].list_data():
                    arr._data[...] = value
    return write


def _concatenated(results, indices) -> dict:
    """{output j: its micro-batches' rows in order, or None where this rank does not hold it}."""
    out = {}
    for j in indices:
        pieces = [r[j] for r in results]
        out[j] = None if any(p is None for p in pieces) else np.concatenate(pieces, axis=0)
    return out


def _outputs(entry, programs, results, ctx):
    from ..gluon.cached_op import unflatten
    values = broadcast_outputs(programs, _concatenated(results, range(entry.n_visible)))
    outs = [NDArray(values[j], ctx) for j in range(entry.n_visible)]
    return outs[0] if entry.out_tree == 0 else unflatten(outs, entry.out_tree)


class _Training:
    """One gradient mask's programs: per micro-batch, the forward and the per-micro-batch part
    of the backward (StagePrograms), the forward/backward split; the backward's part run once on
    the whole batch (passes/batch_sums.py: the sums over the batch, i.e. weight gradients) with
    its inputs' sources, and where each gradient comes from (("rows", j) or ("whole", j))."""

    def __init__(self, forwards, backwards, splits, whole, sources, outputs):
        self.forwards, self.backwards, self.splits = forwards, backwards, splits
        self.whole, self.sources, self.outputs = whole, sources, outputs
        self.forward_order, self.backward_order = global_order(forwards), global_order(backwards)


def _compile(cached_op, entry, plans, mask, training, pipe, group2ctx, compile_stage, name) -> _Training:
    from ..gluon.model_parallel_ranks import backward_origins, placement, training_split
    n_grads = sum(mask)
    data = [j for j, i in enumerate(i for i, m in enumerate(mask) if m) if i < entry.n_data]
    whole_split, _ = training_split(placement(cached_op, entry, training, pipe, group2ctx), entry, mask, group2ctx)
    by_size = {}
    for f, e in zip(plans.placements, plans.entries):
        size = e.graph.inputs[0].types[0].shape[0]
        if size not in by_size:
            split, gg = training_split(f, e, mask, group2ctx)
            by_size[size] = (f, split, gg, split_batch_sums(split.backward, whole_split.backward))
    if any(c is None or any(c.outputs[j][0] != "rows" for j in data) for _, _, _, c in by_size.values()):
        by_size = {s: v[:3] + (None,) for s, v in by_size.items()}     # (every sum stays per micro-batch)
    made = {}
    for size, (f, split, gg, cut) in by_size.items():
        fwd = StageProgram(split.forward, f[2], pipe, compile_stage, 0, range(entry.n_visible), name)
        origins = backward_origins(split, gg, fwd, f[2])
        rows = cut.rows if cut is not None else split.backward
        broadcast = [cut.outputs[j][1] for j in data] if cut is not None else data
        bwd = StageProgram(rows, origins, pipe, compile_stage, 1, broadcast, name, split_handoff=True)
        made[size] = (fwd, bwd, split, origins, cut)
    sizes = [e.graph.inputs[0].types[0].shape[0] for e in plans.entries]
    first = made[sizes[0]]
    cut = first[4]
    whole = sources = None
    outputs = [("rows", j) for j in range(n_grads)]
    if cut is not None:
        holders = first[1].output_holders
        sources = cut.sources
        whole_origins = [holders[src[1]] if src[0] == "output" else first[3][src[1]] for src in sources]
        whole = StageProgram(cut.whole, whole_origins, pipe, compile_stage, 2, (), name)
        outputs = cut.outputs
    return _Training([made[s][0] for s in sizes], [made[s][1] for s in sizes], [made[s][2] for s in sizes],
                     whole, sources, outputs)


def _whole_inputs(plan, grads, bfeeds) -> list:
    """The whole-batch program's inputs held here: row outputs and batch inputs concatenated
    over the micro-batches, a shared input as it is (None where another rank holds it)."""
    arrays = []
    for src in plan.sources:
        if src[0] == "output":
            pieces = [r[src[1]] for r in grads]
        elif src[2]:
            pieces = [f[src[1]] for f in bfeeds]
        else:
            arrays.append(bfeeds[0][src[1]])
            continue
        arrays.append(None if any(p is None for p in pieces) else np.concatenate(pieces, axis=0))
    return arrays


def _train(cached_op, entry, plans, inputs, feeds, rngs, mask, bounds, training, ctx, pipe, group2ctx, compile_stage,
           name):
    from ..gluon.cached_op import backward_feed, unflatten
    with cached_op._compile_lock:
        plan = plans.train.get(mask)
        if plan is None:
            plan = plans.train[mask] = _compile(cached_op, entry, plans, mask, training, pipe, group2ctx,
                                                compile_stage, name)
    record = cached_op.last_rank_pipeline = {"forward": [], "backward": []}
    results = run_pipelined(plan.forwards, feeds, rngs, _aux_writer(entry, plan.forwards), plan.forward_order,
                            record["forward"])
    n_out = plan.splits[0].num_outputs
    values = broadcast_outputs(plan.forwards, _concatenated(results, range(entry.n_visible)))
    outputs = [NDArray(values[j], ctx) for j in range(entry.n_visible)]
    saved = [r[n_out:] for r in results]
    positions = [i for i, m in enumerate(mask) if m]

    def backward(F, ins, outs, ograds):
        for g in ograds:
            if g._entry is not None and autograd.is_recording():
                raise GraphcError(f"{name}: gradients of gradients through a pipelined block are not compiled; "
                                  "call it without hybridize() for create_graph")
        bfeeds = [backward_feed(split, saved[m], feeds[m], [NDArray(g._data[a:b], g._ctx) for g in ograds], name)
                  for m, (split, (a, b)) in enumerate(zip(plan.splits, bounds))]
        grads = run_pipelined(plan.backwards, bfeeds, rngs, None, plan.backward_order, record["backward"])
        rows = [where[1] for j, where in enumerate(plan.outputs) if positions[j] < entry.n_data]
        moved = broadcast_outputs(plan.backwards, _concatenated(grads, rows))
        summed = None
        if plan.whole is not None:
            t0, c0 = time.perf_counter(), time.thread_time()
            summed = plan.whole(_whole_inputs(plan, grads, bfeeds))
            record["backward"].append(("whole batch", len(bounds), t0, time.perf_counter(), time.thread_time() - c0))
        out = [None] * len(ins)
        for j, pos in enumerate(positions):
            kind, k = plan.outputs[j]
            if pos < entry.n_data:
                g = moved[k]
            elif kind == "whole":
                g = summed[k]
            else:
                g = None        # None: a parameter of another rank's stage
                for r in grads:  # (the programs' outputs are fresh arrays: the first is summed into)
                    if r[k] is not None:
                        g = r[k] if g is None else np.add(g, r[k], out=g)
            if g is not None:
                out[pos] = NDArray(np.require(g, requirements="C"), ctx)
        return out

    autograd.record_custom(inputs, outputs, backward, name)
    return unflatten(outputs, entry.out_tree)
