"""mx.mon: MXNet 1.x's Monitor, statistics of every intermediate array of a bound symbol
(Executor / Module), for debugging a network: each `interval` batches, between tic() and toc(),
stat_func of each output (and gradient) whose name matches `pattern`, plus the arguments.

graphc compiles a bound symbol into one program that keeps no intermediate arrays, so a monitored
Executor recomputes them (set_monitor_callback): after forward, the bound graph runs once more
through the operators' numpy references (ops/interpret.py's path), reporting each node's outputs
as MXNet names them (`fc1_output`, `slice_output1`; with monitor_all the variables and each
node's inputs, `fc1_weight`); after backward, each node's gradient rule runs on those arrays in
reverse order, reporting `<node>_backward_output<i>`, the gradient of its i-th input, for the
nodes on a path from an argument that takes a gradient. Random operators (Dropout) draw their
own masks in this second run, so their monitored values are a sample, not the training run's."""
from __future__ import annotations

import logging
import math
import re

import numpy as np

from . import autograd
from .ops.registry import get_op


class Monitor:
    """Collects stat_func(array) for the monitored arrays of every installed executor."""

    def __init__(self, interval, stat_func=None, pattern=".*", sort=False, monitor_all=False):
        if stat_func is None:
            stat_func = _norm_stat
        self.stat_func = stat_func
        self.interval = interval
        self.activated = False
        self.queue = []
        self.step = 0
        self.exes = []
        self.re_prog = re.compile(pattern)
        self.sort = sort
        self.monitor_all = monitor_all
        self.stat_helper = _StatHelper(self)

    def install(self, exe):
        """Monitor executor `exe` (Module.install_monitor calls this for each of its executors)."""
        exe.set_monitor_callback(self.stat_helper, self.monitor_all)
        self.exes.append(exe)

    def tic(self):
        """Start collecting, if this batch is one of every `interval`."""
        if self.step % self.interval == 0:
            self.queue = []
            self.activated = True
        self.step += 1

    def toc(self):
        """Stop collecting: [(step, name, stat string)], the arguments and auxiliary states
        added last; the stat string is each statistic's value followed by a tab."""
        if not self.activated:
            return []
        for exe in self.exes:
            for name, array in zip(exe._symbol.list_arguments(), exe.arg_arrays):
                if self.re_prog.match(name):
                    self.queue.append((self.step, name, self.stat_func(array)))
            for name, array in zip(exe._symbol.list_auxiliary_states(), exe.aux_arrays):
                if self.re_prog.match(name):
                    self.queue.append((self.step, name, self.stat_func(array)))
        self.activated = False
        if self.sort:
            self.queue.sort(key=lambda entry: entry[1])
        res = [(n, k, _format(v)) for n, k, v in self.queue]
        self.queue = []
        return res

    def toc_print(self):
        """toc(), logged (logging.info) one line per array."""
        for n, k, v in self.toc():
            logging.info("Batch: {:7d} {:30s} {:s}".format(n, k, v))


def _norm_stat(x):
    """MXNet's default statistic: ||x||_2 / sqrt(size)."""
    from . import ndarray
    return ndarray.norm(x) / math.sqrt(x.size)


def _format(stats):
    from .ndarray import NDArray
    stats = stats if isinstance(stats, list) else [stats]
    out = ""
    for v in stats:
        if not isinstance(v, NDArray):
            raise TypeError(f"Monitor: stat_func must return an NDArray or a list of them, got {type(v).__name__}")
        out += (str(v.asscalar()) if v.shape in ((1,), ()) else str(v.asnumpy())) + "\t"
    return out


class _StatHelper:
    """The executor callback: queues stat_func of the arrays whose names match, while active.
    `active` lets an executor skip recomputing its intermediates when nobody collects them."""

    def __init__(self, monitor):
        self._monitor = monitor

    @property
    def active(self):
        return self._monitor.activated

    def __call__(self, name, array):
        mon = self._monitor
        if not mon.activated or not mon.re_prog.match(name):
            return
        mon.queue.append((mon.step, name, mon.stat_func(array)))


# -- what a monitored Executor calls -----------------------------------------------------------

def _wanted(callback) -> bool:
    return callback is not None and getattr(callback, "active", True)


def _output_names(node):
    from .symbol import Symbol
    return Symbol(node.out(0), None, [node.out(i) for i in range(_n_visible(node))]).list_outputs()


def _n_visible(node):
    if node.is_var or node.is_const:
        return 1
    return get_op(node.op).n_visible(node.attrs)


def report_forward(executor, is_train):
    """Recompute the bound graph's intermediates and report them to the executor's callback;
    keeps them (executor._monitor_values) for report_backward."""
    callback, monitor_all = executor._monitor_callback, executor._monitor_all
    executor._monitor_values = None
    if not _wanted(callback):
        return
    from .ndarray import NDArray
    arrays = {**executor.arg_dict, **executor.aux_dict}
    graph = executor._symbol._bind({n: a.shape for n, a in arrays.items()},
                                   {n: np.dtype(a.dtype).name for n, a in arrays.items()})
    env = {}
    rng = np.random.default_rng()
    for node in graph.nodes:
        if node.is_var:
            env[(id(node), 0)] = arrays[node.name].asnumpy()
            if monitor_all:
                callback(node.name, NDArray(env[(id(node), 0)]))
            continue
        if node.is_const:
            env[(id(node), 0)] = np.asarray(node.attrs["value"])
            continue
        op = get_op(node.op)
        ins = [env[(id(v.node), v.index)] for v in node.inputs]
        if monitor_all:
            for name, x in zip(_input_names(node), ins):
                callback(f"{node.name}_{name}", NDArray(x))
        outs = op.run(ins, node.attrs, rng=rng, training=bool(is_train))
        for i, o in enumerate(outs):
            env[(id(node), i)] = np.asarray(o)
        for name, i in zip(_output_names(node), range(_n_visible(node))):
            callback(name, NDArray(env[(id(node), i)]))
    executor._monitor_values = (graph, env)


def _input_names(node):
    names = list(get_op(node.op).input_names(node.attrs))
    return names + [f"input{i}" for i in range(len(names), len(node.inputs))]


def report_backward(executor, out_grads):
    """Report each node's input gradients (`<node>_backward_output<i>`), from the arrays the
    last report_forward kept, with out_grads (default ones) as the outputs' gradients."""
    callback = executor._monitor_callback
    if not _wanted(callback) or getattr(executor, "_monitor_values", None) is None:
        return
    from . import ndarray as nd
    from .ndarray import NDArray
    graph, env = executor._monitor_values
    reqs = executor._grad_req
    needs = set()
    for node in graph.nodes:
        if node.is_var:
            if reqs.get(node.name, "null") != "null":
                needs.add(id(node))
        elif any(id(v.node) in needs for v in node.inputs):
            needs.add(id(node))
    grads = {}
    heads = list(out_grads) if out_grads is not None else [None] * len(graph.outputs)
    for v, g in zip(graph.outputs, heads):
        value = env[(id(v.node), v.index)]
        g = np.ones_like(value) if g is None else (g.asnumpy() if isinstance(g, NDArray) else np.asarray(g))
        grads[(id(v.node), v.index)] = grads.get((id(v.node), v.index), 0) + g
    for node in reversed(graph.nodes):
        if node.is_var or node.is_const or id(node) not in needs:
            continue
        op = get_op(node.op)
        outs = [env[(id(node), i)] for i in range(len(node.types))]
        gs = [grads.get((id(node), i)) for i in range(len(outs))]
        gs = [NDArray(np.zeros_like(o) if g is None else np.asarray(g, o.dtype)) for g, o in zip(gs, outs)]
        ins = [env[(id(v.node), v.index)] for v in node.inputs]
        with autograd.pause():
            in_grads = op.gradient(nd, [NDArray(x) for x in ins], [NDArray(o) for o in outs], gs, node.attrs)
        args = [i for i in range(len(ins)) if i not in op.aux_inputs]
        for i in args:
            g = in_grads[i] if i < len(in_grads) else None
            g = np.zeros_like(ins[i]) if g is None else (g.asnumpy() if isinstance(g, NDArray) else np.asarray(g))
            g = np.broadcast_to(g, ins[i].shape)
            key = (id(node.inputs[i].node), node.inputs[i].index)
            grads[key] = grads[key] + g if key in grads else g
            suffix = "output" if len(args) == 1 else f"output{args.index(i)}"
            callback(f"{node.name}_backward_{suffix}", NDArray(np.array(g)))
