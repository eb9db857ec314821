"""A hybridized block called on GPU arrays: the CachedOp's programs compiled for that GPU and run
on device buffers (runtime/cuda/program.GpuProgram), so a call never copies its inputs,
parameters or outputs through the host.

The traced graph is the CPU's (cached_op.CachedOp.trace; export keeps using it). What changes is
the graph each backend gets: `on_gpu` places every value on the input's GPU (the partitioning
pass with one device: nothing is cut, every type reads 'gpu(k)'), and graphc.compiler routes
such a graph to the GPU backend. Training compiles the same forward and backward split as the
CPU path (CachedOp._compile_training, with the GPU context as its device); the forward's saved
values stay in device buffers that the backward program reads when autograd reaches the block,
and the gradients it returns are device arrays that autograd writes into the parameters' GPU
gradients.

Not on the GPU path: static_alloc's reusable output sets (the caching allocator hands the same
blocks back each call, runtime/cuda/memory.py), gradient-ready hooks (distributed overlap is a
CPU feature), and model parallelism across devices (model_parallel.py decides before this).
"""
from __future__ import annotations

import numpy as np

from .. import autograd, random as _random
from ..ops.errors import GraphcError
from ..ndarray import NDArray
from ..ndarray.gpu import GpuNDArray, device_buffer, from_buffer, write_buffer


def on_gpu(graph, ctx):
    """`graph` with every value on GPU `ctx` (a Context); the output tree is kept."""
    from ..passes.partition import partition_devices
    placed = partition_devices(graph, default=str(ctx))
    placed.output_tree = getattr(graph, "output_tree", None)
    return placed


def _on_ctx(x, ctx, what):
    """x, checked to be a GpuNDArray on ctx: a block's inputs and parameters must share its
    device, as MXNet requires (no silent copies)."""
    if type(x) is GpuNDArray and x._ctx == ctx:
        return x
    where = x.context if isinstance(x, NDArray) else type(x).__name__
    raise GraphcError(f"{what} is on {where}, but the block is called on {ctx}: every input must be on "
                      f"the same device (copy it with as_in_context({ctx}))")


def _head_on_ctx(g, ctx):
    """A head gradient on ctx: one made on the host (backward(out_grad=nd.ones(...))) is
    uploaded, as autograd accepts it for a CPU block too."""
    if type(g) is GpuNDArray and g._ctx == ctx:
        return g
    return NDArray(g.asnumpy() if isinstance(g, NDArray) else np.asarray(g), ctx)


def call(cop, args, leaves, training, ctx):
    """CachedOp.__call__ for inputs on GPU ctx."""
    from .cached_op import unflatten, _differentiated
    key = (tuple((tuple(x.shape), np.dtype(x.dtype)) for x in leaves), training, ctx)
    entry = cop._cache.get(key)
    if entry is None:
        entry = cop._trace_once(key, args)
    cop.last = entry
    name = cop.block.name
    inputs = [_on_ctx(x, ctx, f"{name}: input {i}") for i, x in enumerate(leaves)]
    for p in entry.param_list:
        inputs.append(_on_ctx(p.data(ctx), ctx, f"{name}: parameter {p.name}"))
    bufs = [device_buffer(x) for x in inputs]
    rng = _random.generator()
    if autograd.is_recording():
        mask = tuple(_differentiated(x, np.dtype(x.dtype).kind) for x in inputs)
        if any(mask):
            return unflatten(_train(cop, entry, inputs, bufs, mask, training, rng, ctx), entry.out_tree)
    forward = cop._compile_forward(entry, training, ctx)[1]
    results = forward.run(bufs, rng=rng)
    outs = _wrap_all(results, forward.out_types, ctx)
    if entry.aux_updates:
        _write_back(entry, outs[entry.n_visible:], ctx)
    outs = outs[:entry.n_visible]
    return outs[0] if entry.out_tree == 0 else unflatten(outs, entry.out_tree)


def _wrap_all(bufs, types, ctx):
    return [from_buffer(b, t.shape, t.dtype, ctx) for b, t in zip(bufs, types)]


def _write_back(entry, values, ctx):
    """Auxiliary-state updates (BatchNorm's moving statistics) into their parameters, on the
    device."""
    for value, k in zip(values, entry.aux_updates):
        write_buffer(entry.param_list[k].data(ctx), device_buffer(value))


def _train(cop, entry, inputs, bufs, mask, training, rng, ctx):
    """The forward program now; the backward program when autograd reaches the block."""
    compiled = entry.train.get((mask, training))
    if compiled is None:
        compiled = cop._compile_training(entry, mask, training, ctx)
    fwd_prog, bwd_prog, split, _, bwd_graph = compiled
    results = fwd_prog.run(bufs, rng=rng)
    n_out = split.num_outputs
    visible = _wrap_all(results[:n_out], fwd_prog.out_types[:n_out], ctx)
    if entry.aux_updates:
        _write_back(entry, visible[entry.n_visible:], ctx)
    outputs = visible[:entry.n_visible]
    saved = results[n_out:]
    positions = [i for i, m in enumerate(mask) if m]
    name = cop.block.name

    def backward(F, ins, outs, ograds):
        feed = []
        for kind, k in split.backward_inputs:
            if kind == "saved":
                feed.append(saved[k])
            elif kind == "input":
                feed.append(bufs[k])
            else:
                feed.append(_head(ograds[k], bwd_graph, len(feed), ctx, name))
        grads = bwd_prog.run(feed)
        out = [None] * len(ins)
        for pos, g, t in zip(positions, grads, bwd_prog.out_types):
            out[pos] = from_buffer(g, t.shape, t.dtype, ctx)
        return out

    autograd.record_custom(inputs, outputs, backward, name)
    return outputs


def _head(g, bwd_graph, i, ctx, name):
    """A head gradient's device buffer as the backward program's input i wants it (see
    cached_op._head_feed: the same rules, on device memory, where a reshape is free)."""
    if g._entry is not None and autograd.is_recording():
        raise GraphcError(f"{name}: gradients of gradients through a hybridized block are not compiled; "
                          "call it without hybridize() for create_graph")
    want = bwd_graph.inputs[i].types[0]
    if int(np.prod(g.shape)) == want.size:
        if np.dtype(g.dtype) != np.dtype(want.dtype):
            g = g.astype(want.dtype)
        return device_buffer(_head_on_ctx(g, ctx))
    node = bwd_graph.inputs[i]
    read = any(v.node is node for n in bwd_graph.nodes for v in n.inputs) or \
        any(v.node is node for v in bwd_graph.outputs)
    if read:
        raise GraphcError(f"{name}: backward: head gradient {i} has shape {tuple(g.shape)}, "
                          f"the output it belongs to has {tuple(want.shape)}")
    from ..ndarray.gpu import zeros
    return device_buffer(zeros(want.shape, want.dtype, ctx))


__all__ = ["call", "on_gpu"]
