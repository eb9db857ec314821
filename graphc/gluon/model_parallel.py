"""Model parallelism for hybridized blocks: a CachedOp whose graph spans several devices.

A block is partitioned when it is hybridized with `group2ctx={'stage1': mx.cpu(0), ...}` (its
operators carry `__ctx_group__` from mx.AttrScope), or when some parameter lives only on
devices other than the input's (a child initialised with `ctx=mx.cpu(1)`). Its traced graph
then goes through passes.partition (every node placed, `_CrossDeviceCopy` at the cuts), for
training through autodiff (each gradient built where its forward node runs) and partitioning
again (the backward's own cuts), and runs as graphc.partitioned.PartitionedProgram: one
compiled program per device stage. Outputs live on the device of the node that makes them;
each parameter's gradient on the device of the parameter's data that was read.

The call runs on the calling thread (its stages are queued on the devices' dispatchers and
waited for); its backward likewise runs when autograd reaches it. hybridize(pipeline_microbatches=M)
hands the call to graphc/gluon/pipeline.py, which runs the same placement per micro-batch. This module is the glue
between the CachedOp, the pass and the runner; it owns no compiler or pass logic.
"""
from __future__ import annotations

import numpy as np

from .. import autograd, device as _device
from .. import random as _random
from ..ndarray import NDArray
from ..partitioned import PartitionedProgram
from . import pipeline as _pipeline
from ..passes.autodiff import GradientGraph, differentiate, split_forward_backward
from ..passes.partition import COPY, device_name, devices_of, node_device, partition_devices


def wanted(cached_op, ctx) -> bool:
    """Whether calls on `ctx` need the partitioned path (decided once per CachedOp and ctx)."""
    if cached_op.flags.get("group2ctx") or cached_op.flags.get("devices"):
        return True
    if ctx is None:
        return False
    for p in cached_op.block.collect_params().values():
        try:
            held = p.list_ctx()
        except RuntimeError:
            continue            # not initialised: the ordinary path reports it
        if held and ctx not in held:
            # partitioned graphs run on CPU devices only: a GPU in the mix is a caller's
            # mistake, which the ordinary path reports (the parameter is not on that context)
            return ctx.device_type == "cpu" and all(c.device_type == "cpu" for c in held)
    return False


def _context(device: str):
    kind, index = device.rstrip(")").split("(")
    return _device.Context(kind, int(index))


class _Placed:
    """What one traced signature needs for partitioned runs."""

    def __init__(self):
        self.forward = {}          # training flag -> (placed graph, PartitionedProgram)
        self.train = {}            # (mask, training) -> (fwd program, bwd program, split, wrt devices)


def call(cached_op, args, leaves, training, ctx):
    """CachedOp.__call__ for a partitioned block."""
    from . import model_parallel_ranks
    if model_parallel_ranks.wanted(cached_op):      # stages on MPI ranks (graphc.dist.rank(k))
        return model_parallel_ranks.call(cached_op, args, leaves, training, ctx)
    from .cached_op import prepare, unflatten
    key = ("model_parallel", tuple((x.shape, np.dtype(x.dtype)) for x in leaves), training, ctx)
    entry = cached_op._cache.get(key)
    if entry is None:
        entry = cached_op._trace_once(key, args)
    cached_op.last = entry
    placed = getattr(entry, "model_parallel", None)
    if placed is None:
        placed = entry.model_parallel = _Placed()
    group2ctx = cached_op.flags.get("group2ctx") or {}
    var_devices = {p.name: tuple(device_name(c) for c in p.list_ctx()) for p in entry.param_list}
    default = device_name(ctx)
    inputs_at = {n.name: device_name(x.context) for n, x in zip(entry.graph.inputs, leaves)}   # (where they are)

    def compile_stage(graph, device):
        from .cached_op import compile_program
        return compile_program(graph, training, cached_op.backend, device)

    with cached_op._compile_lock:
        forward = placed.forward.get(training)
        if forward is None:
            graph = prepare(entry.graph, training)
            if cached_op.flags.get("devices"):       # hybridize(devices=[...]): the cost model places
                graph = _auto_placed(cached_op, entry, placed, graph)
                var_devices = {p.name: tuple(device_name(c) for c in p.list_ctx()) for p in entry.param_list}
            graph = partition_devices(graph, group2ctx, var_devices, default, inputs_at)
            if group2ctx and not cached_op.flags.get("devices") and _move_to_users(graph, entry):
                var_devices = {p.name: tuple(device_name(c) for c in p.list_ctx()) for p in entry.param_list}
                graph = partition_devices(prepare(entry.graph, training), group2ctx, var_devices, default, inputs_at)
            for dev in devices_of(graph):
                _device.require_device(_context(dev))
            for p in entry.param_list:
                p._model_parallel = True       # a Trainer may update them on different devices
            forward = placed.forward[training] = (graph, PartitionedProgram(graph, compile_stage))
    graph = forward[0]
    param_devices = [node_device(n) for n in graph.inputs[entry.n_data:]]
    inputs = list(leaves) + [p.data(_context(d)) for p, d in zip(entry.param_list, param_devices)]
    arrays = [np.require(x._data, requirements="C") for x in inputs]
    rng = _random.generator()
    out_devices = [_context(node_device(v.node) or default) for v in graph.outputs]
    if _pipeline.wanted(cached_op):
        return _pipelined(cached_op, args, entry, graph, inputs, arrays, out_devices, training, rng,
                          group2ctx, var_devices, default, compile_stage)
    if autograd.is_recording():
        mask = tuple(autograd.needs_grad(x) and np.dtype(x.dtype).kind == "f" for x in inputs)
        if any(mask):
            outs = _run_training(cached_op, entry, placed, graph, inputs, arrays, mask, training, rng,
                                 group2ctx, var_devices, default, out_devices, compile_stage)
            return unflatten(outs, entry.out_tree)
    results = forward[1](arrays, None, rng=rng)
    results = _write_back(entry, results)
    outs = [NDArray(r, c) for r, c in zip(results, out_devices)]
    return outs[0] if entry.out_tree == 0 else unflatten(outs, entry.out_tree)


def _auto_placed(cached_op, entry, placed, graph):
    """`graph` with the placement passes/auto_place.py chooses for hybridize(devices=[...]), chosen
    once per signature (inference and training calls must agree on where parameters live), with
    training's memory estimate when any parameter is trained; each parameter moves to the device
    that first reads it."""
    from ..passes.auto_place import auto_place, place
    from .cached_op import prepare
    auto = getattr(placed, "auto", None)
    if auto is None:
        trains = any(p.grad_req != "null" for p in entry.param_list)
        auto = placed.auto = auto_place(prepare(entry.graph, trains), cached_op.flags["devices"], training=trains)
        for node, p in zip(entry.graph.inputs[entry.n_data:], entry.param_list):
            dev = auto.node_devices.get(node.name)
            if dev is not None and [device_name(c) for c in p.list_ctx()] != [dev]:
                p.reset_ctx(_context(dev))
    return place(graph, auto)


def _move_to_users(graph, entry) -> bool:
    """group2ctx: a parameter held on one device that only another device's stage reads moves
    there (MXNet allocates a group's arguments on the group's device), so that no copy of it
    runs per call and its gradient is made where it is used. Returns whether any moved."""
    users = graph.users()
    moved = False
    for node, p in zip(graph.inputs[entry.n_data:], entry.param_list):
        readers = users.get(id(node), [])
        targets = {user.attrs["device"] for user, _ in readers if user.op == COPY}
        if readers and len(p.list_ctx()) == 1 and all(user.op == COPY for user, _ in readers) \
                and len(targets) == 1:
            p.reset_ctx(_context(targets.pop()))
            moved = True
    return moved


def _write_back(entry, results):
    """Auxiliary-state updates (BatchNorm's moving statistics) into every copy of their
    parameter; returns the visible outputs."""
    n = entry.n_visible
    for value, k in zip(results[n:], entry.aux_updates):
        for arr in entry.param_list[k].list_data():
            arr._data[...] = value
    return results[:n]


def _run_training(cached_op, entry, placed, graph, inputs, arrays, mask, training, rng, group2ctx,
                  var_devices, default, out_devices, compile_stage):
    from .cached_op import backward_feed     # cached_op imports this module
    compiled = placed.train.get((mask, training))
    if compiled is None:
        with cached_op._compile_lock:
            compiled = placed.train.get((mask, training))
            if compiled is None:
                compiled = placed.train[(mask, training)] = _compile_training(
                    graph, entry, mask, group2ctx, var_devices, default, compile_stage)
    fwd_prog, bwd_prog, split, grad_devices = compiled
    results = fwd_prog(arrays, None, rng=rng)
    n_out = split.num_outputs
    _write_back(entry, results[:n_out])
    outputs = [NDArray(r, c) for r, c in zip(results[:entry.n_visible], out_devices)]
    saved = results[n_out:]
    positions = [i for i, m in enumerate(mask) if m]
    name = cached_op.block.name

    def backward(F, ins, outs, ograds):
        feed = backward_feed(split, saved, arrays, ograds, f"{name}: a partitioned block")
        grads = bwd_prog(feed, None, rng=rng)
        out = [None] * len(ins)
        for pos, g, dev in zip(positions, grads, grad_devices):
            out[pos] = NDArray(np.require(g, requirements="C"), dev)
        return out

    autograd.record_custom(inputs, outputs, backward, name)
    return outputs


def _pipelined(cached_op, args, entry, graph, inputs, arrays, out_devices, training, rng, group2ctx, var_devices,
               default, compile_stage):
    """call() with pipeline_microbatches=M (graphc/gluon/pipeline.py), placing and compiling
    each micro-batch's graph as this block's whole batch was."""
    partitioning = _pipeline.Partitioning(
        lambda g: partition_devices(g, group2ctx, var_devices, default), compile_stage,
        lambda g, e, mask: _training_graphs(g, e, mask, group2ctx, var_devices, default))
    return _pipeline.call(cached_op, args, entry, graph, inputs, arrays, out_devices, training, rng, partitioning)


def _compile_training(graph, entry, mask, group2ctx, var_devices, default, compile_stage):
    """Forward and backward partitioned programs of _training_graphs."""
    split, grad_devices = _training_graphs(graph, entry, mask, group2ctx, var_devices, default)
    fwd = PartitionedProgram(split.forward, compile_stage)
    # each backward stage in two: the input gradient the previous stage waits for, then the
    # weight gradients, which run while that stage works
    bwd = PartitionedProgram(split.backward, compile_stage, split_handoff=True)
    return fwd, bwd, split, grad_devices


def _training_graphs(graph, entry, mask, group2ctx, var_devices, default):
    """(forward/backward split, gradient devices): differentiate the placed graph (gradient
    nodes inherit their forward node's device), place the joint graph again (the backward's
    own cuts get copies), and split it as the single-device path does."""
    n_in = len(graph.inputs)
    wrt = [n for n, m in zip(graph.inputs, mask) if m]
    gg = differentiate(graph, wrt, num_heads=entry.n_visible)
    joint = partition_devices(gg.graph, group2ctx, var_devices, default)
    by_name = {n.name: n for n in joint.inputs}     # (variables keep their names and order)
    placed_gg = GradientGraph(joint, gg.num_forward_outputs, [by_name[n.name] for n in gg.head_grads],
                              [by_name[n.name] for n in gg.wrt])
    split = split_forward_backward(placed_gg, joint.inputs[:n_in])
    return split, [_context(node_device(w)) for w in placed_gg.wrt]


__all__ = ["wanted", "call"]
