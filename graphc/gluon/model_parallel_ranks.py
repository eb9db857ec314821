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
  Every rank initializes every Parameter (same seed, same initial values), but only the owner
  reads it, receives its gradient and updates it: it is marked `_stage_elsewhere` on the other
  ranks, where the Trainer leaves it alone, and from the first call on its data and gradient
  there are placeholders holding no bytes (graphc/dist/param_memory.py) until
  gather_parameters brings the owners' values (e.g. before saving).
* pipeline_microbatches=M > 1: the batch is pipelined over the ranks in micro-batches
  (graphc/dist/rank_microbatches.py); same results as above.
* Gradients of data inputs (x.attach_grad()) are broadcast like outputs.

This module is the glue between the CachedOp, the partition pass and the stage runner.
"""
from __future__ import annotations

import numpy as np

from .. import autograd
from .. import random as _random
from ..dist import param_memory
from ..dist.placement import is_rank_device, pipeline, rank_index
from ..dist.stage_program import _MAX_STEPS, REPLICATED, StageProgram
from ..ndarray import NDArray
from ..ops.errors import GraphcError
from ..passes.autodiff import GradientGraph, differentiate, split_forward_backward
from ..passes.partition import COPY, device_name, node_device, partition_devices

__all__ = ["wanted", "call", "gather_parameters", "initialize_owned", "DEFAULT"]

_GATHER_TAG = 3 * _MAX_STEPS    # gather_parameters(root=k): kind 3 (0-2: the stage programs)
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
        self.placement = {}    # training -> (graph, var_devices, origins)
        self.forward = {}      # training -> (graph, var_devices, origins, StageProgram)
        self.train = {}        # (mask, training) -> (forward, backward StageProgram, split)


def call(cached_op, args, leaves, training, ctx):
    """CachedOp.__call__ for a block partitioned over pipeline ranks."""
    from .cached_op import unflatten
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

    if micro_wanted(cached_op):       # pipelined micro-batches (graphc/dist/rank_microbatches.py)
        from ..dist import rank_microbatches
        return rank_microbatches.call(cached_op, args, entry, leaves, training, ctx, pipe, group2ctx,
                                      compile_stage, name)
    forward = forward_plan(cached_op, entry, training, pipe, group2ctx, compile_stage, name)
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


def micro_wanted(cached_op) -> bool:
    """Whether the calls are pipelined over micro-batches (pipeline_microbatches=M, M > 1)."""
    return cached_op.flags.get("pipeline_microbatches") not in (None, 1)


def placement(cached_op, entry, training, pipe, group2ctx):
    """(placed graph, moved parameters, input origins) of a traced entry, made once per entry
    and mode. Marks each parameter's owner, and releases the memory of those another rank owns
    (graphc/dist/param_memory.py)."""
    from .cached_op import prepare
    placed = getattr(entry, "rank_parallel", None)
    if placed is None:
        placed = entry.rank_parallel = _Placed()
    with cached_op._compile_lock:
        made = placed.placement.get(training)
        if made is None:
            graph, var_devices = _place(prepare(entry.graph, training), entry.n_data, group2ctx)
            origins = [REPLICATED] * entry.n_data + [node_device(n) for n in graph.inputs[entry.n_data:]]
            me = f"rank({pipe.stage})"
            for p, origin in zip(entry.param_list, origins[entry.n_data:]):
                p._stage_owner = origin
                p._stage_elsewhere = origin != me      # the Trainer updates only its own (trainer.py)
                if p._stage_elsewhere:
                    param_memory.release(p)
            made = placed.placement[training] = (graph, var_devices, origins)
    return made


def forward_plan(cached_op, entry, training, pipe, group2ctx, compile_stage, name):
    """placement(...) and the forward StageProgram: (graph, var_devices, origins, program)."""
    placed_graph = placement(cached_op, entry, training, pipe, group2ctx)
    placed = entry.rank_parallel
    with cached_op._compile_lock:
        forward = placed.forward.get(training)
        if forward is None:
            graph, _, origins = placed_graph
            program = StageProgram(graph, origins, pipe, compile_stage, 0, range(entry.n_visible), name)
            forward = placed.forward[training] = placed_graph + (program,)
    return forward


def initialize_owned(net, *inputs, init=None, ctx=None):
    """net.initialize(init, ctx) for a block hybridized with group2ctx on ranks, allocating only
    this rank's parameters: traces the block on `inputs` (their shapes and dtypes; the
    parameters need full shapes, e.g. in_units), places it, then initializes the parameters in
    collect_params() order as net.initialize does, so the random draws, and the owners' values,
    are those of one process, and drops each parameter another rank owns right after drawing
    it. A rank then never holds more than its own share plus the largest parameter: a model
    bigger than one machine's memory can be split. Collective (every rank of the pipeline calls
    it, like the block). init: the default initializer (graphc.init.Uniform() when None)."""
    from .. import initializer
    from .cached_op import CachedOp, flatten
    from .utils import shape_is_known
    if getattr(net, "_cached_op", None) is None:
        net._cached_op = CachedOp(net, **net._flags)
    cached_op = net._cached_op
    name = net.name or type(net).__name__
    if not wanted(cached_op):
        raise GraphcError(f"initialize_owned: {name} is not hybridized with group2ctx placing its groups on "
                          "graphc.dist.rank(k); call net.hybridize(group2ctx=...) first, or use net.initialize()")
    leaves, _ = flatten(list(inputs))
    if not leaves or not all(isinstance(x, NDArray) for x in leaves):
        raise GraphcError(f"initialize_owned: {name} is traced on sample inputs (NDArrays of the batch's shapes), "
                          f"got {[type(x).__name__ for x in leaves]}")
    missing = [p.name for p in net.collect_params().values() if p._data is None and not shape_is_known(p.shape)]
    if missing:
        raise GraphcError(f"initialize_owned: {name}'s parameters {missing} have unknown shapes; give them in full "
                          "(in_units, in_channels, ...) so the block can be placed before anything is allocated")
    key = ("model_parallel_ranks", tuple((x.shape, np.dtype(x.dtype)) for x in leaves), False, leaves[0]._ctx)
    entry = cached_op._cache.get(key) or cached_op._trace_once(key, inputs)
    group2ctx = {g: device_name(v) for g, v in cached_op.flags["group2ctx"].items()}
    placement(cached_op, entry, False, pipeline(), group2ctx)
    init = initializer.Uniform() if init is None else init
    for p in net.collect_params().values():
        p.initialize(None, ctx, init)
        if getattr(p, "_stage_elsewhere", False):
            param_memory.release(p)


def gather_parameters(params, root=None):
    """Bring the current value of each parameter from the rank that trains it to every rank of
    the pipeline (root=None) or to rank(root) only, so that it can save or evaluate the whole
    model: a rank that receives a parameter it does not own holds its full data from then on
    (needing the whole model's memory); the others keep holding only their own. Collective:
    every rank of the pipeline calls it with the same parameters (a ParameterDict, dict or
    list); parameters no rank-placed block has read yet are left as they are."""
    if hasattr(params, "keys"):
        params = [params[k] for k in sorted(params.keys())]
    pipe = pipeline()
    if root is not None and (not isinstance(root, int) or not 0 <= root < pipe.stages):
        raise GraphcError(f"gather_parameters: root={root!r}; expected a rank of the pipeline, 0 .. {pipe.stages - 1}, "
                          "or None for every rank")
    me = f"rank({pipe.stage})"
    moving, requests = [], []
    for p in params:
        owner = getattr(p, "_stage_owner", None)
        if owner is None:
            continue
        arrays = p.list_data()
        source = rank_index(owner)
        wanted_here = owner != me and root in (None, pipe.stage)
        if owner == me:
            buffer = np.require(arrays[0]._data, requirements="C")
        elif wanted_here:
            buffer = np.empty(arrays[0].shape, np.dtype(arrays[0].dtype))
        if root is None:
            requests.append(pipe.comm.Ibcast(buffer, root=source))
        elif owner == me and root != pipe.stage:        # point to point: only the root allocates
            requests.append(pipe.comm.Isend(buffer, dest=root, tag=_GATHER_TAG))
        elif wanted_here:
            requests.append(pipe.comm.Irecv(buffer, source=source, tag=_GATHER_TAG))
        if wanted_here:
            moving.append((p, buffer))
    if requests:
        pipe.world.wait(requests, f"gathering {len(requests)} stage parameters onto "
                                  f"{'every pipeline rank' if root is None else f'rank({root})'}")
    for p, buffer in moving:
        param_memory.hold(p, buffer)


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


def training_split(placed, entry, mask, group2ctx):
    """Differentiate the placed graph (gradient nodes inherit their forward node's rank), place
    the joint graph again (the backward's own cuts get copies) and split it as the
    single-device path does: (forward/backward split, placed gradient graph)."""
    graph, var_devices = placed[0], placed[1]
    n_in = len(graph.inputs)
    wrt = [n for n, m in zip(graph.inputs, mask) if m]
    gg = differentiate(graph, wrt, num_heads=entry.n_visible)
    joint = partition_devices(gg.graph, group2ctx, var_devices, DEFAULT)
    by_name = {n.name: n for n in joint.inputs}
    placed_gg = GradientGraph(joint, gg.num_forward_outputs, [by_name[n.name] for n in gg.head_grads],
                              [by_name[n.name] for n in gg.wrt])
    return split_forward_backward(placed_gg, joint.inputs[:n_in]), placed_gg


def backward_origins(split, placed_gg, forward_program, origins) -> list:
    """Where each input of the backward program is held: a saved value where the forward made
    it, a forward input where it was, a head gradient on the rank making its output (only the
    head gradient given there counts)."""
    held = forward_program.output_holders
    out = []
    for kind, k in split.backward_inputs:
        if kind == "saved":
            out.append(held[split.num_outputs + k])
        elif kind == "input":
            out.append(origins[k])
        else:
            out.append(node_device(placed_gg.head_grads[k]))
    return out


def _compile_training(forward, entry, mask, group2ctx, pipe, compile_stage, name, split_handoff=False):
    """Forward and backward stage programs of the placed forward (training_split)."""
    origins = forward[2]
    split, placed_gg = training_split(forward, entry, mask, group2ctx)
    fwd = StageProgram(split.forward, origins, pipe, compile_stage, 0, range(entry.n_visible), name)
    bwd_origins = backward_origins(split, placed_gg, fwd, origins)
    data_grads = [j for j, i in enumerate(i for i, m in enumerate(mask) if m) if i < entry.n_data]
    bwd = StageProgram(split.backward, bwd_origins, pipe, compile_stage, 1, data_grads, name, split_handoff)
    return fwd, bwd, split
