"""Model parallelism across processes: a hybridized block whose stages run on MPI ranks.

    net.hybridize(group2ctx={'stage1': graphc.dist.rank(0), 'stage2': graphc.dist.rank(1)})

Every rank runs the same script (SPMD) with the same model and the same batch. The traced graph
is partitioned as for devices (passes/partition.py: the pass treats 'rank(k)' as a device name;
operators outside every ctx_group go to rank(0)), and each rank runs only its stages
(graphc.dist.stage_program): activations go forward and gradients back point to point.

What each rank sees:
* Outputs: the block's outputs are broadcast from the rank that makes them, so every rank gets
  the same outputs and its script computes the same loss (and the same metrics).
* Head gradients: every rank calls backward (each rank's backward runs its own stages; a rank
  that skips it leaves its peers waiting until the deadline, which then names it). Only the
  head gradient given on the rank that makes the output is used; the others are ignored.
* Parameters: a parameter belongs to the rank of the stage that reads it (one read only by a
  copy to another rank moves there, as MXNet allocates a group's arguments on its device).
  Every rank keeps its own copy of every Parameter (same seed, same initial values), but only
  the owner reads it, receives its gradient and updates it: it is marked `_stage_elsewhere` on
  the other ranks, where the Trainer leaves it alone (its value there goes stale until
  gather_parameters brings every rank the owners' values, e.g. before saving).
* Gradients of data inputs (x.attach_grad()) are broadcast like outputs.

This module is the glue between the CachedOp, the partition pass and the stage runner.
"""
from __future__ import annotations

import numpy as np

from .. import autograd
from .. import random as _random
from ..dist.placement import is_rank_device, pipeline, rank_index
from ..dist.stage_program import REPLICATED, StageProgram
from ..ndarray import NDArray
from ..ops.errors import GraphcError
from ..passes.autodiff import GradientGraph, differentiate, split_forward_backward
from ..passes.partition import COPY, device_name, node_device, partition_devices

__all__ = ["wanted", "call", "gather_parameters", "DEFAULT"]

DEFAULT = "rank(0)"         # where data inputs and operators outside every ctx_group are placed


def wanted(cached_op) -> bool:
    """Whether group2ctx places stages on ranks (refusing a mix of ranks and devices)."""
    group2ctx = cached_op.flags.get("group2ctx") or {}
    kinds = {g: is_rank_device(v) for g, v in group2ctx.items()}
    if not any(kinds.values()):
        return False
    if not all(kinds.values()):
        devices = sorted(g for g, k in kinds.items() if not k)
        raise GraphcError(f"{cached_op.block.name}: group2ctx places some groups on ranks and {devices} on "
                          f"devices ({[str(group2ctx[g]) for g in devices]}); across processes every group goes "
                          "on a graphc.dist.rank(k)")
    return True


class _Placed:
    def __init__(self):
        self.forward = {}      # training -> (graph, var_devices, origins, StageProgram)
        self.train = {}        # (mask, training) -> (forward, backward StageProgram, split)


def call(cached_op, args, leaves, training, ctx):
    """CachedOp.__call__ for a block partitioned over pipeline ranks."""
    from .cached_op import prepare, unflatten
    key = ("model_parallel_ranks", tuple((x.shape, np.dtype(x.dtype)) for x in leaves), training, ctx)
    entry = cached_op._cache.get(key)
    if entry is None:
        entry = cached_op._trace_once(key, args)
    cached_op.last = entry
    placed = getattr(entry, "rank_parallel", None)
    if placed is None:
        placed = entry.rank_parallel = _Placed()
    pipe = pipeline()
    group2ctx = {g: device_name(v) for g, v in cached_op.flags["group2ctx"].items()}
    name = cached_op.block.name or type(cached_op.block).__name__

    def compile_stage(graph):
        from .cached_op import compile_program
        return compile_program(graph, training, cached_op.backend, 0)

    with cached_op._compile_lock:
        forward = placed.forward.get(training)
        if forward is None:
            graph, var_devices = _place(prepare(entry.graph, training), entry.n_data, group2ctx)
            origins = [REPLICATED] * entry.n_data + [node_device(n) for n in graph.inputs[entry.n_data:]]
            me = f"rank({pipe.stage})"
            for p, origin in zip(entry.param_list, origins[entry.n_data:]):
                p._stage_owner = origin
                p._stage_elsewhere = origin != me      # the Trainer updates only its own (trainer.py)
            program = StageProgram(graph, origins, pipe, compile_stage, 0, range(entry.n_visible), name)
            forward = placed.forward[training] = (graph, var_devices, origins, program)
    graph, var_devices, origins, program = forward
    inputs = list(leaves) + [p.data(ctx) if ctx in p.list_ctx() else p.data() for p in entry.param_list]
    me = program.me
    arrays = [np.require(x._data, requirements="C") if o in (REPLICATED, me) else None
              for x, o in zip(inputs, origins)]
    if autograd.is_recording():
        mask = tuple(autograd.needs_grad(x) and np.dtype(x.dtype).kind == "f" for x in inputs)
        if any(mask):
            outs = _run_training(cached_op, entry, placed, forward, inputs, arrays, mask, training, group2ctx,
                                 pipe, compile_stage, ctx, _random.generator())
            return unflatten(outs, entry.out_tree)
    results = program(arrays, rng=_random.generator())
    _write_back(entry, results)
    outs = [NDArray(r, ctx) for r in results[:entry.n_visible]]
    return outs[0] if entry.out_tree == 0 else unflatten(outs, entry.out_tree)


def gather_parameters(params):
    """Bring every rank of the pipeline the current value of each parameter from the rank that
    trains it, so that any rank can save or evaluate the whole model. Collective: every rank of
    the pipeline calls it with the same parameters (a ParameterDict, dict or list); parameters
    no rank-placed block has read yet are left as they are."""
    if hasattr(params, "keys"):
        params = [params[k] for k in sorted(params.keys())]
    pipe = pipeline()
    moving, requests = [], []
    for p in params:
        owner = getattr(p, "_stage_owner", None)
        if owner is None:
            continue
        buffer = np.array(p.data()._data, copy=True, order="C")
        requests.append(pipe.comm.Ibcast(buffer, root=rank_index(owner)))
        moving.append((p, buffer))
    if requests:
        pipe.world.wait(requests, f"gathering {len(requests)} stage parameters onto every pipeline rank")
    for p, buffer in moving:
        for arr in p.list_data():
            arr._data[...] = buffer


def _place(graph, n_data, group2ctx):
    """The graph placed on ranks; a parameter that only a copy to one other rank reads moves
    to that rank (no transfer of it per call, its gradient made where it is used)."""
    placed = partition_devices(graph, group2ctx, {}, DEFAULT)
    users = placed.users()
    var_devices = {}
    for node in placed.inputs[n_data:]:
        readers = users.get(id(node), [])
        targets = {user.attrs["device"] for user, _ in readers if user.op == COPY}
        if readers and all(user.op == COPY for user, _ in readers) and len(targets) == 1:
            var_devices[node.name] = (targets.pop(),)
    if var_devices:
        placed = partition_devices(graph, group2ctx, var_devices, DEFAULT)
    return placed, var_devices


def _write_back(entry, results):
    """Auxiliary-state updates (BatchNorm's moving statistics) into their parameter, on the
    rank that made them."""
    n = entry.n_visible
    for value, k in zip(results[n:], entry.aux_updates):
        if value is not None:
            for arr in entry.param_list[k].list_data():
                arr._data[...] = value


def _run_training(cached_op, entry, placed, forward, inputs, arrays, mask, training, group2ctx, pipe,
                  compile_stage, ctx, rng):
    from .cached_op import backward_feed
    name = cached_op.block.name or type(cached_op.block).__name__
    with cached_op._compile_lock:
        compiled = placed.train.get((mask, training))
        if compiled is None:
            compiled = placed.train[(mask, training)] = _compile_training(
                forward, entry, mask, group2ctx, pipe, compile_stage, name)
    fwd_prog, bwd_prog, split = compiled
    results = fwd_prog(arrays, rng=rng)
    n_out = split.num_outputs
    _write_back(entry, results[:n_out])
    outputs = [NDArray(r, ctx) for r in results[:entry.n_visible]]
    saved = results[n_out:]
    positions = [i for i, m in enumerate(mask) if m]

    def backward(F, ins, outs, ograds):
        feed = backward_feed(split, saved, arrays, ograds, f"{name}: a block partitioned over ranks")
        grads = bwd_prog(feed, rng=rng)
        out = [None] * len(ins)
        for pos, g in zip(positions, grads):
            if g is not None:       # None: a parameter of another rank's stage
                out[pos] = NDArray(np.require(g, requirements="C"), ctx)
        return out

    autograd.record_custom(inputs, outputs, backward, name)
    return outputs


def _compile_training(forward, entry, mask, group2ctx, pipe, compile_stage, name):
    """Forward and backward stage programs: differentiate the placed graph (gradient nodes
    inherit their forward node's rank), place the joint graph again (the backward's own cuts
    get copies) and split it as the single-device path does."""
    graph, var_devices, origins, _ = forward
    n_in = len(graph.inputs)
    wrt = [n for n, m in zip(graph.inputs, mask) if m]
    gg = differentiate(graph, wrt, num_heads=entry.n_visible)
    joint = partition_devices(gg.graph, group2ctx, var_devices, DEFAULT)
    by_name = {n.name: n for n in joint.inputs}
    placed_gg = GradientGraph(joint, gg.num_forward_outputs, [by_name[n.name] for n in gg.head_grads],
                              [by_name[n.name] for n in gg.wrt])
    split = split_forward_backward(placed_gg, joint.inputs[:n_in])
    fwd = StageProgram(split.forward, origins, pipe, compile_stage, 0, range(entry.n_visible), name)
    held = fwd.output_holders
    bwd_origins = []
    for kind, k in split.backward_inputs:
        if kind == "saved":
            bwd_origins.append(held[split.num_outputs + k])
        elif kind == "input":
            bwd_origins.append(origins[k])
        else:       # only the head gradient given where the output is made counts
            bwd_origins.append(node_device(placed_gg.head_grads[k]))
    data_grads = [j for j, i in enumerate(i for i, m in enumerate(mask) if m) if i < entry.n_data]
    bwd = StageProgram(split.backward, bwd_origins, pipe, compile_stage, 1, data_grads, name)
    return fwd, bwd, split
