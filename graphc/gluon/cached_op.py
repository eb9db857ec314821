"""CachedOp: what `hybridize()` turns a HybridBlock into.

The first call with a new input signature traces the block into a graph (inputs are Symbols
that know their shapes), simplifies it, and compiles it. For training (autograd recording) the
autodiff pass builds the backward graph, which is split from the forward and compiled too; the
block then joins the autograd tape as ONE node whose backward runs the compiled backward
program. Programs are cached by signature: shapes, dtypes, training flag, which inputs need
gradients.

Threads: one block may be called from several threads at once. Tracing and compiling a new
signature happen under a per-CachedOp lock (a second thread waits for the first's program rather
than compiling its own); programs run their concurrent calls on separate working memory
(runtime/executor.py); static_alloc's reusable output sets are handed out under a lock held until
the caller's NDArrays own them, and a caller that finds it taken gets fresh outputs instead of
waiting (two sets would otherwise look free to two threads at once and both write one).

Devices: programs are compiled per device (the cache key holds the input's context; the program
calls that device's worker pool). With one device in use a call runs on the caller's thread.
Once several devices are in use (graphc.device.MULTI), a call on cpu(k) is queued to cpu(k)'s
dispatcher (graphc/engine.py) and returns pending outputs at once, and its backward is queued
behind it: `[loss(net(x), y) for x, y in zip(xs, ys)]` then runs every device's work at the same
time. Queued calls always get fresh outputs (static_alloc's reuse test reads reference counts,
which a pending array's queued work would skew). A call on GPU arrays compiles the same graphs
for that GPU and runs them on device buffers (cached_op_gpu.py).
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import warnings

import numpy as np

from .. import autograd, device as _device
from ..ops.errors import GraphcError
from ..ops.graph import Graph
from ..ops.types import TensorType
from ..passes.autodiff import differentiate, split_forward_backward
from ..passes.expand_rnn import expand_rnn
from ..passes.fuse_softmax_ce import fuse_softmax_ce
from ..passes.pipeline import SIMPLIFY
from ..symbol import Trace, Symbol
from ..ndarray import NDArray
from ..ndarray import pending as _pending
from .. import random as _random


# -- nesting of inputs/outputs: lists and tuples, flattened with a tree to rebuild them ----------
def flatten(obj):
    """-> (leaves, tree) where tree is an int (leaf index), or ('list'|'tuple', [subtrees])."""
    leaves = []
    return leaves, _flatten_into(obj, leaves)


def _flatten_into(o, leaves):
    # a module-level function, not a closure that calls itself: that closure would be a
    # reference cycle holding `leaves` (the caller's arrays) until the cyclic collector runs,
    # and a static_alloc block would find its output buffers still in use
    if isinstance(o, (list, tuple)):
        return ("tuple" if isinstance(o, tuple) else "list", [_flatten_into(x, leaves) for x in o])
    leaves.append(o)
    return len(leaves) - 1


def unflatten(leaves, tree):
    if isinstance(tree, int):
        return leaves[tree]
    kind, items = tree
    seq = [unflatten(leaves, t) for t in items]
    return tuple(seq) if kind == "tuple" else seq


def tree_to_json(tree):
    return tree if isinstance(tree, int) else [tree[0], [tree_to_json(t) for t in tree[1]]]


def tree_from_json(obj):
    return obj if isinstance(obj, int) else (obj[0], [tree_from_json(t) for t in obj[1]])


def _aux_updates(nodes, param_nodes):
    """(value, parameter position) for every operator output that is the new value of a
    parameter it mutates (OpDef.mutates)."""
    from ..ops.registry import get_op, has_op
    position = {id(n): k for k, n in enumerate(param_nodes)}
    updates = []
    for node in nodes:
        if node.is_var or node.is_const or not has_op(node.op):
            continue
        for out_index, in_index in get_op(node.op).mutates:
            target = node.inputs[in_index].node
            if id(target) in position:
                updates.append((node.out(out_index), position[id(target)]))
    return updates


# -- programs --------------------------------------------------------------------------------------

def backward_feed(split, saved, inputs, ograds, what: str) -> list:
    """The backward program's inputs in its order: values the forward saved, the forward's
    inputs, and the output gradients (as C-contiguous arrays). `what` names the block in the
    error for a gradient that is itself being recorded (gradients of gradients are not compiled)."""
    feed = []
    for kind, k in split.backward_inputs:
        if kind == "saved":
            feed.append(saved[k])
        elif kind == "input":
            feed.append(inputs[k])
        else:
            g = ograds[k]
            if g._entry is not None and autograd.is_recording():
                raise GraphcError(f"{what}: gradients of gradients through it are not compiled; call it "
                                  "without hybridize() for create_graph")
            # (np.require keeps 0-d arrays 0-d; ascontiguousarray would make them (1,))
            feed.append(_head_feed(g._data, split.backward, len(feed), what))
    return feed


class InterpretedProgram:
    """Runs a graph on the numpy references: used when no compiler applies (and in tests as the oracle)."""

    def __init__(self, graph: Graph, training=False):
        self.graph, self.training = graph, training

    def __call__(self, inputs, outputs=None, rng=None):
        from ..ops.interpret import interpret
        res = interpret(self.graph, inputs, rng=rng, training=self.training)
        if outputs is not None:
            for dst, src in zip(outputs, res):
                dst[...] = src
            return outputs
        return [np.array(r, copy=True) if not r.flags.writeable or r.base is not None else r for r in res]


def compile_program(graph: Graph, training=False, backend="llvm", device=0):
    """Hand a simplified graph to the backend; the numpy interpreter when backend='numpy'.
    device: the CPU device k whose worker pool runs the program. A program over its device's
    memory budget (GRAPHC_DEVICE_MEMORY) is refused here, before anything is built. device may
    also be a GPU Context: the graph is placed on it and compiled for the GPU (cached_op_gpu.py)."""
    if getattr(device, "device_type", None) == "gpu":
        from ..compiler import compile_graph
        from .cached_op_gpu import on_gpu
        return compile_graph(on_gpu(graph, device), training=training)
    from ..device_memory import check_program
    check_program(graph, f"cpu({device})")
    if backend == "numpy":
        return InterpretedProgram(graph, training)
    from ..compiler import compile_graph
    return compile_graph(graph, training=training, device=device)


def _device_index(ctx) -> int:
    """The CPU device whose pool runs a program for ctx (cpu(k) -> k; anything else -> 0)."""
    return ctx.device_id if ctx is not None and ctx.device_type == "cpu" else 0


def prepare(graph: Graph, training: bool) -> Graph:
    """The graph a backend compiles: fused RNN operators unrolled into primitives (so autodiff,
    fusion and BLAS handle them), then simplified again. Export keeps the traced graph."""
    if not any(n.op == "RNN" for n in graph.nodes):
        return graph
    out = SIMPLIFY(expand_rnn(graph, training))
    out.output_tree = graph.output_tree
    return out


def _default_backend():
    import os
    return os.environ.get("GRAPHC_BACKEND", "llvm")


class _Compiled:
    """Everything cached for one input signature."""

    def __init__(self):
        self.graph = None          # traced + simplified forward graph
        self.param_list = []       # Parameters feeding graph inputs after the data inputs
        self.n_data = 0
        self.out_tree = None
        self.n_visible = 0         # graph outputs the block returns; the rest are aux updates
        self.aux_updates = []      # for each extra output: index into param_list it updates
        self.forward = None        # inference program
        self.train = {}            # grad mask -> (forward program, backward program, split)
        self.out_pool = {}         # program -> reusable output buffer sets (static_alloc)


class CachedOp:
    def __init__(self, block, static_alloc=False, static_shape=False, backend=None, **flags):
        self.block = block
        self.static_alloc = static_alloc
        self.static_shape = static_shape
        self.backend = backend or _default_backend()
        self.flags = flags
        self._cache = {}
        self.last = None   # the most recent _Compiled (export uses its graph)
        self._compile_lock = threading.RLock()   # tracing and compiling (slow path only)
        self._outputs_lock = threading.Lock()    # static_alloc's output pools (see _output_buffers)
        self._model_parallel = {}                # ctx -> whether calls there are partitioned
        self._group2ctx = bool(flags.get("group2ctx") or flags.get("devices"))
        micro = flags.get("pipeline_microbatches")
        if micro is not None:
            from ..pipeline_schedule import check_micro
            check_micro(micro, block.name)
        self._unpipelined = micro not in (None, 1)   # warned once if the block is not partitioned

    # -- tracing ---------------------------------------------------------------------------
    def _data_names(self, n):
        return ["data"] if n == 1 else [f"data{i}" for i in range(n)]

    def trace(self, args):
        leaves, in_tree = flatten(list(args))
        if not all(isinstance(x, NDArray) for x in leaves):
            raise GraphcError(f"{self.block.name}: a hybridized block takes NDArrays (or nested lists of "
                              f"them), got {[type(x).__name__ for x in leaves]}")
        entry = _Compiled()
        names = self._data_names(len(leaves))
        with Trace(self.block.name) as trace:
            syms = [trace.builder.var(nm, TensorType(x.shape, np.dtype(x.dtype).name), "input")
                    for nm, x in zip(names, leaves)]
            sym_args = unflatten(syms, in_tree)
            out = self.block.forward(*sym_args)
        out_leaves, out_tree = flatten(out)
        for o in out_leaves:
            if not isinstance(o, Symbol):
                raise GraphcError(f"{self.block.name}: forward returned {type(o).__name__}, not a value computed "
                                  "from its inputs; a hybridized block must return arrays built by F/nd operators")
        values = [o.value for o in out_leaves]
        param_nodes = [trace.param_vars[id(p)].value.node for p in trace.params]
        # auxiliary-state updates (BatchNorm's moving stats) become extra outputs, copied back
        # into their parameters after each run
        updates = _aux_updates(trace.builder.nodes, param_nodes)
        graph = trace.builder.build(values + [v for v, _ in updates])
        graph.inputs = [n for n in graph.inputs if n.hints.get("kind") == "input"] + param_nodes
        entry.graph = SIMPLIFY(graph)
        entry.graph.output_tree = out_tree
        entry.param_list = list(trace.params)
        entry.n_data = len(leaves)
        entry.n_visible = len(values)
        entry.aux_updates = [k for _, k in updates]
        entry.out_tree = out_tree
        return entry

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *args):
        if len(args) == 1 and type(args[0]) is NDArray:
            memo = self._memo
            if memo is not None and not _device.MULTI and not autograd.is_recording():
                x = args[0]
                a = x._data
                # the hot path (batch-1 inference pays it per call): the same signature as the last
                # inference call, so none of the key, the lookup or the checks below are redone
                shape, dtype, ctx, training, entry, forward, params, plain = memo
                if a.shape == shape and a.dtype is dtype and x._ctx is ctx \
                        and autograd.is_training() is training and entry.forward is forward:
                    self.last = entry
                    arrays = [a if a.flags.c_contiguous else np.require(a, requirements="C")]
                    arrays.extend([d[0]._data if (d := p._data) is not None and len(d) == 1
                                   else p.data(ctx)._data for p in params])
                    if plain and self._outputs_lock.acquire(False):
                        # static_alloc, one output, no aux updates: _run_forward inlined
                        try:
                            out = forward[1](arrays, self._output_buffers(entry, entry.graph, "forward"),
                                             _random.generator())[0]
                            return _wrap(out, ctx)
                        finally:
                            self._outputs_lock.release()
                    return self._run_forward(entry, forward[1], arrays, ctx, _random.generator())
            leaves = args          # the common case, without walking a nesting
        else:
            leaves, _ = flatten(list(args))
        training = autograd.is_training()
        ctx = leaves[0]._ctx if leaves else None
        if _device.MULTI or self._group2ctx:
            # model parallelism (graphc/gluon/model_parallel.py): a graph spanning devices
            partitioned = self._model_parallel.get(ctx)
            if partitioned is None:
                from . import model_parallel
                partitioned = self._model_parallel[ctx] = model_parallel.wanted(self, ctx)
            if partitioned:
                from . import model_parallel
                return model_parallel.call(self, args, leaves, training, ctx)
        if self._unpipelined:
            self._unpipelined = False
            warnings.warn(f"{self.block.name}: hybridize(pipeline_microbatches={self.flags['pipeline_microbatches']}) "
                          f"pipelines only a block partitioned over several devices (group2ctx=, devices=, or "
                          f"parameters on other devices than the input); called on {ctx} with every parameter "
                          "there, it runs on the whole batch at once, unpipelined", stacklevel=4)
        if _device.MULTI and ctx is not None:
            if ctx.device_type == "gpu":        # device buffers in and out (cached_op_gpu.py)
                from . import cached_op_gpu
                return cached_op_gpu.call(self, args, leaves, training, ctx)
            if ctx.device_type == "cpu":
                return self._call_queued(args, leaves, training, ctx)
        key = (tuple((x._data.shape, x._data.dtype) for x in leaves), training, ctx)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._trace_once(key, args)
        self.last = entry
        # p.data() without its checks (the hot path); parameters are always C-contiguous
        inputs = list(leaves)
        inputs.extend([p._data[0] if p._data is not None and len(p._data) == 1 else p.data(ctx)
                       for p in entry.param_list])
        arrays = [x._data for x in inputs]
        for i in range(len(leaves)):
            if not arrays[i].flags.c_contiguous:
                arrays[i] = np.require(arrays[i], requirements="C")
        rng = _random.generator()
        if autograd.is_recording():
            mask = tuple(_differentiated(x, x._data.dtype.kind) for x in inputs)
            if any(mask):
                outs = self._run_training(entry, inputs, arrays, mask, training, rng)
                return unflatten(outs, entry.out_tree)
        forward = entry.forward
        if forward is None or forward[0] != training:
            forward = self._compile_forward(entry, training, _device_index(ctx))
        if len(args) == 1 and leaves is args and not self._group2ctx and not _device.MULTI:
            # remembered for the hot path at the top; the tuple is replaced whole (threads)
            plain = self.static_alloc and not entry.aux_updates and entry.out_tree == 0
            self._memo = (arrays[0].shape, arrays[0].dtype, ctx, training, entry, forward,
                          tuple(entry.param_list), plain)
        return self._run_forward(entry, forward[1], arrays, ctx, rng)

    # of the last inference call: (shape, dtype, ctx, training, entry, entry.forward, its
    # parameters as a tuple, whether _run_forward's static_alloc single-output case applies)
    _memo = None

    def _run_forward(self, entry, program, arrays, ctx, rng):
        """Run the inference program on the input and parameter arrays; the block's outputs."""
        # static_alloc: the pool's lock is held until the returned NDArrays own the buffers
        pooled = self.static_alloc and self._outputs_lock.acquire(False)
        try:
            results = program(arrays, self._output_buffers(entry, entry.graph, "forward") if pooled else None,
                              rng=rng)
            if entry.aux_updates:
                results = self._write_back(entry, results, ctx)
            if entry.out_tree == 0:
                return NDArray(results[0], ctx)
            return unflatten([NDArray(r, ctx) for r in results], entry.out_tree)
        finally:
            if pooled:
                self._outputs_lock.release()

    def _trace_once(self, key, args):
        """Trace a new signature; a thread arriving meanwhile waits and uses the same entry."""
        with self._compile_lock:
            entry = self._cache.get(key)
            if entry is None:
                entry = self.trace(args)
                self._cache[key] = entry
            return entry

    def _compile_forward(self, entry, training, device=0):
        with self._compile_lock:
            forward = entry.forward
            if forward is None or forward[0] != training:
                forward = entry.forward = (training, compile_program(prepare(entry.graph, training), training,
                                                                      self.backend, device))
            return forward

    def _write_back(self, entry, results, ctx):
        """Copy auxiliary-state updates into their parameters; return the visible outputs."""
        n = entry.n_visible
        for value, k in zip(results[n:], entry.aux_updates):
            entry.param_list[k].data(ctx)._data[...] = value
        return results[:n]

    def _output_buffers(self, entry, graph, pool_key="forward", program=None):
        """static_alloc: reuse an output set that nobody holds any more (no page faults on a
        fresh output every call). A set is free when only the pool (and the program's own
        last-call cache, a weak one) refers to its arrays; two sets cover `y = net(x)` rebinding
        y each call. The caller holds _outputs_lock from here until its NDArrays hold the
        arrays: between the two a set in use would look free to another thread."""
        pool = entry.out_pool.setdefault(pool_key, [])
        for bufs in pool:
            # getrefcount sees: the pool's list, the loop variable, its own argument (programs
            # remember their last arrays only weakly); a user's view of a buffer holds it too
            for b in bufs:
                if sys.getrefcount(b) > 3:
                    break
            else:
                return bufs
        bufs = [np.empty(v.type.shape, v.type.dtype) for v in graph.outputs]
        if len(pool) < 2:
            pool.append(bufs)
        return bufs

    def _run_training(self, entry, inputs, arrays, mask, training, rng):
        compiled = entry.train.get((mask, training))
        if compiled is None:
            compiled = self._compile_training(entry, mask, training, _device_index(inputs[0].context))
        fwd_prog, bwd_prog, split, fwd_graph, bwd_graph = compiled
        pooled = self.static_alloc and self._outputs_lock.acquire(False)
        try:
            results = fwd_prog(arrays, self._output_buffers(entry, fwd_graph, ("train_fwd", mask, training))
                               if pooled else None, rng=rng)
            n_out = split.num_outputs
            ctx = inputs[0].context
            if entry.aux_updates:
                self._write_back(entry, results[:n_out], ctx)
            outputs = [NDArray(r, ctx) for r in results[:entry.n_visible]]
            saved = results[n_out:]
        finally:
            if pooled:
                self._outputs_lock.release()
        positions = [i for i, m in enumerate(mask) if m]
        kept_inputs = arrays
        segments = self._backward_segments(entry, mask, training, inputs, positions, bwd_graph)
        if segments is not None:
            # a gradient-ready hook watches a parameter (a distributed Trainer): the backward runs
            # as several programs and hands each one's gradients over as it returns
            def segmented(F, ins, outs, ograds):
                feed = backward_feed(split, saved, kept_inputs, ograds, f"{self.block.name}: a hybridized block")
                return self._run_segments(entry, segments, feed, positions, ctx, (mask, training))
            autograd.record_custom(inputs, outputs, segmented, self.block.name)
            return outputs

        def backward(F, ins, outs, ograds):
            feed = backward_feed(split, saved, kept_inputs, ograds, f"{self.block.name}: a hybridized block")
            pooled = self.static_alloc and self._outputs_lock.acquire(False)
            try:
                grads = bwd_prog(feed, self._output_buffers(entry, bwd_graph, ("train_bwd", mask, training))
                                 if pooled else None)
                out = [None] * len(ins)
                for pos, g in zip(positions, grads):
                    out[pos] = NDArray(g, ctx)
                return out
            finally:
                if pooled:
                    self._outputs_lock.release()

        autograd.record_custom(inputs, outputs, backward, self.block.name)
        return outputs

    def _backward_segments(self, entry, mask, training, inputs, positions, bwd_graph):
        """The segmented backward (segments, programs) to run instead of the one backward
        program, or None: only when some parameter being differentiated has a gradient-ready
        hook (autograd._add_grad_ready_hook) and the gradients are worth more than one
        segment (kvstore/overlap.py backward_segments), so single-process training never
        changes."""
        if not any(autograd._grad_ready_hooks(inputs[i]) for i in positions):
            return None
        from ..kvstore.overlap import backward_segments
        k = backward_segments([(v.type.size, v.type.dtype) for v in bwd_graph.outputs])
        if k <= 1:
            return None
        compiled = entry.train.get(("segments", mask, training, k))
        if compiled is None:
            compiled = self._compile_segments(entry, ("segments", mask, training, k), bwd_graph, k, training,
                                              _device_index(inputs[0].context))
        return compiled

    def _compile_segments(self, entry, key, bwd_graph, k, training, device):
        """segment_backward's cut of the backward graph, each segment compiled; None when the
        graph does not cut (one segment)."""
        from ..passes.segment_backward import segment_backward
        with self._compile_lock:
            if key in entry.train:
                return entry.train[key]
            segments = segment_backward(bwd_graph, k)
            compiled = None
            if len(segments) > 1:
                compiled = (segments, [compile_program(seg.graph, training, self.backend, device) for seg in segments])
            entry.train[key] = compiled
            return compiled

    def _run_segments(self, entry, compiled, feed, positions, ctx, pool_key):
        """Run the segments in order, yielding (input position, gradient) for each gradient as
        soon as the segment computing it returns (autograd's iterator protocol)."""
        segments, programs = compiled
        results = []
        for s, (seg, program) in enumerate(zip(segments, programs)):
            args = [feed[src[1]] if src[0] == "input" else results[src[1]][src[2]] for src in seg.sources]
            pooled = self.static_alloc and self._outputs_lock.acquire(False)
            try:
                out = program(args, self._output_buffers(entry, seg.graph, ("train_bwd_segment", s) + pool_key)
                              if pooled else None)
                grads = [(positions[o], NDArray(out[j], ctx)) for j, o in enumerate(seg.grads)]
            finally:
                if pooled:
                    self._outputs_lock.release()
            results.append(out)
            yield from grads

    # -- queued calls (several devices in use) ---------------------------------------------------
    def _call_queued(self, args, leaves, training, ctx):
        """__call__ on ctx's dispatcher: compile here (errors at the call, as MXNet's shape
        checks), run there; outputs are pending until the program has run."""
        key = (tuple((x.shape, np.dtype(x.dtype)) for x in leaves), training, ctx)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._trace_once(key, args)
        self.last = entry
        device = ctx.device_id
        inputs = list(leaves) + [p.data(ctx) for p in entry.param_list]
        local = [_pending.local_value(x, ctx) for x in inputs]
        rng = _random.generator()
        aux = [entry.param_list[k].data(ctx) for k in entry.aux_updates]
        if autograd.is_recording():
            mask = tuple(_differentiated(x, np.dtype(x.dtype).kind) for x in inputs)
            if any(mask):
                outs = self._train_queued(entry, inputs, local, aux, mask, training, rng, ctx)
                return unflatten(outs, entry.out_tree)
        forward = entry.forward
        if forward is None or forward[0] != training:
            forward = self._compile_forward(entry, training, device)
        program = forward[1]
        outputs = [_pending.new_output(v.type.shape, v.type.dtype, ctx) for v in entry.graph.outputs[:entry.n_visible]]

        def run():
            results = program(_contiguous(local), None, rng=rng)
            return self._write_back(entry, results, ctx) if entry.aux_updates else results
        _pending.run_async(ctx, run, reads=local, writes=aux, outputs=outputs, name=self.block.name)
        return outputs[0] if entry.out_tree == 0 else unflatten(outputs, entry.out_tree)

    def _train_queued(self, entry, inputs, local, aux, mask, training, rng, ctx):
        """_run_training queued: the forward now, the backward when autograd reaches this node,
        both on ctx's dispatcher; the forward's saved values pass between them in `state`."""
        compiled = entry.train.get((mask, training))
        if compiled is None:
            compiled = self._compile_training(entry, mask, training, ctx.device_id)
        fwd_prog, bwd_prog, split, fwd_graph, bwd_graph = compiled
        n_out = split.num_outputs
        outputs = [_pending.new_output(v.type.shape, v.type.dtype, ctx) for v in fwd_graph.outputs[:entry.n_visible]]
        state = {}

        def forward():
            arrays = _contiguous(local)
            results = fwd_prog(arrays, None, rng=rng)
            if entry.aux_updates:
                self._write_back(entry, results[:n_out], ctx)
            state["saved"], state["inputs"] = results[n_out:], arrays
            return results[:entry.n_visible]
        fwd_job = _pending.run_async(ctx, forward, reads=local, writes=aux, outputs=outputs,
                                     name=self.block.name + ".forward")
        positions = [i for i, m in enumerate(mask) if m]
        grad_types = [v.type for v in bwd_graph.outputs]

        def backward(F, ins, outs, ograds):
            for g in ograds:
                if g._entry is not None and autograd.is_recording():
                    raise GraphcError(f"{self.block.name}: gradients of gradients through a hybridized "
                                      "block are not compiled; call it without hybridize() for create_graph")
            heads = [_pending.local_value(g, ctx) for g in ograds]
            grads = [_pending.new_output(t.shape, t.dtype, ctx) for t in grad_types]

            def run():
                feed = []
                for kind, k in split.backward_inputs:
                    if kind == "saved":
                        feed.append(state["saved"][k])
                    elif kind == "input":
                        feed.append(state["inputs"][k])
                    else:
                        feed.append(_head_feed(heads[k]._data, split.backward, len(feed), self.block.name))
                return bwd_prog(feed, None)
            _pending.run_async(ctx, run, reads=heads, outputs=grads, name=self.block.name + ".backward",
                               after=[fwd_job])
            out = [None] * len(ins)
            for pos, g in zip(positions, grads):
                out[pos] = g
            return out

        autograd.record_custom(inputs, outputs, backward, self.block.name)
        return outputs

    def _compile_training(self, entry, mask, training, device=0):
        """The forward and backward programs for one grad mask, compiled once across threads."""
        with self._compile_lock:
            compiled = entry.train.get((mask, training))
            if compiled is not None:
                return compiled
            graph = prepare(entry.graph, training)
            wrt = [n for n, m in zip(graph.inputs, mask) if m]
            gg = differentiate(graph, wrt, num_heads=entry.n_visible)
            # before the split: the forward then saves a softmax's row statistics for the
            # backward, not its log-probabilities (passes/fuse_softmax_ce.py)
            gg = dataclasses.replace(gg, graph=fuse_softmax_ce(gg.graph))
            split = split_forward_backward(gg, graph.inputs)
            fwd = SIMPLIFY(split.forward)
            bwd = SIMPLIFY(split.backward)
            compiled = (compile_program(fwd, training, self.backend, device),
                        compile_program(bwd, training, self.backend, device), split, fwd, bwd)
            entry.train[(mask, training)] = compiled
            return compiled


def _wrap(data, ctx) -> NDArray:
    """NDArray(data, ctx) for a program's output, without NDArray.__init__'s context check: ctx
    is the input's, checked when that array was made (the hot path pays this per call).
    tests/gluon/test_cached_op_hot_path.py compares its slots with NDArray()'s."""
    out = _new_ndarray(NDArray)
    out._data = data
    out._ctx = ctx
    out._entry = None
    out._grad = None
    out._grad_req = "null"
    out._fresh_grad = False
    return out


_new_ndarray = object.__new__


def _differentiated(x, kind) -> bool:
    """Whether the block's backward computes x's gradient: a recorded or attached float array,
    or an integer array the caller attached a gradient to itself (MXNet's executor gives an int32
    argument an int32 gradient: Cast's back to int, say), but not integers merely computed under
    record() (indices flowing into an Embedding)."""
    if kind == "f":
        return autograd.needs_grad(x)
    return kind in "iu" and x._entry is None and x._grad_req != "null"


def _head_feed(data, bwd_graph, i, block_name):
    """A head gradient as the backward program's input i wants it. MXNet copies head gradients
    only into the gradient buffers some rule reads, as flat memory of the head's size: another
    shape of that size is reshaped, and an unread one (shape_array, a detached output) is never
    looked at, so any array goes there (zeros stand in)."""
    want = bwd_graph.inputs[i].types[0]
    if tuple(data.shape) == tuple(want.shape):
        return np.require(data, requirements="C")   # (keeps 0-d arrays 0-d; ascontiguousarray would not)
    if data.size == int(np.prod(want.shape)):
        return np.ascontiguousarray(data).reshape(want.shape)
    node = bwd_graph.inputs[i]
    read = any(v.node is node for n in bwd_graph.nodes for v in n.inputs) or \
        any(v.node is node for v in bwd_graph.outputs)
    if read:
        raise GraphcError(f"{block_name}: backward: head gradient {i} has shape {tuple(data.shape)}, "
                          f"the output it belongs to has {tuple(want.shape)}")
    return np.zeros(want.shape, want.dtype)


def _contiguous(arrays):
    """The numpy data of NDArrays, C-contiguous (a program binds raw pointers)."""
    out = []
    for x in arrays:
        a = x._data
        out.append(a if a.flags.c_contiguous else np.require(a, requirements="C"))
    return out


def export_block(block, path, epoch=0, remove_amp_cast=True):
    """Write `path-symbol.json` and `path-%04d.params` in MXNet 1.x's formats."""
    import json
    from ..formats.mxnet_json import dump_symbol_json
    from ..formats.mxnet_params import save_params
    from ..formats.atomic import atomic_write
    cached = getattr(block, "_cached_op", None)
    if cached is None or cached.last is None:
        raise GraphcError(f"{block.name}: export needs a traced graph; call hybridize() and run the "
                          "block once on an input before export()")
    graph = cached.last.graph
    if len(graph.outputs) != cached.last.n_visible:
        graph = graph.with_outputs(graph.outputs[:cached.last.n_visible], graph.output_tree)
    text = dump_symbol_json(graph)
    doc = json.loads(text)
    doc.setdefault("attrs", {})["graphc_output_tree"] = ["str", json.dumps(tree_to_json(graph.output_tree))]
    arrays = {}
    names = {n.name: n for n in graph.inputs}
    for p in cached.last.param_list:
        kind = names[p.name].hints.get("kind", "param") if p.name in names else "param"
        arrays[("aux:" if kind == "aux" else "arg:") + p.name] = p.data().asnumpy()
    try:
        from ..formats.mxnet_json import constants_of
        for name, value in constants_of(graph).items():
            arrays["arg:" + name] = np.asarray(value)
    except ImportError:
        pass
    atomic_write(f"{path}-symbol.json", json.dumps(doc, indent=2).encode())
    save_params(f"{path}-{epoch:04d}.params", arrays)
    return f"{path}-symbol.json", f"{path}-{epoch:04d}.params"
