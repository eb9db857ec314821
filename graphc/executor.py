"""Executor: MXNet 1.x's bound symbol (`sym.simple_bind`, `sym.bind`).

It holds one array per argument, gradient and auxiliary state, named as the symbol lists them,
and runs the symbol through a SymbolBlock, so it is compiled and differentiated exactly like a
hybridized Gluon block (no second execution path to keep correct). The arrays are the
executor's own buffers, as in MXNet: forward reads arg_arrays, backward writes grad_arrays
(or adds to them for grad_req='add'), training forward updates aux_arrays (BatchNorm's moving
statistics).

Model parallelism (`group2ctx`, MXNet's bind/simple_bind argument): the SymbolBlock is
hybridized with the same group2ctx, so the symbol's `__ctx_group__` attributes (mx.AttrScope)
place its operators and it runs as one program per device stage (gluon/model_parallel.py).
Where the arrays live follows MXNet 1.9: simple_bind allocates each argument, gradient and
auxiliary state on the device of the operator that reads it; bind takes the arguments wherever
they are, but refuses a gradient array that is not on the device computing that gradient (as
MXNet does); outputs live on the device of the operator making them.
"""
from __future__ import annotations

import numpy as np

from . import autograd
from .ops.errors import GraphcError

_GRAD_REQS = ("write", "add", "null")


def _as_dict(kind, names, arrays) -> dict:
    """Arrays given as a list (in `names` order) or a dict by name -> dict by name."""
    if arrays is None:
        return {}
    if isinstance(arrays, dict):
        extra = sorted(set(arrays) - set(names))
        if extra:
            raise GraphcError(f"bind: {kind} {extra} are not in the symbol's {names}")
        return dict(arrays)
    arrays = list(arrays)
    if len(arrays) != len(names):
        raise GraphcError(f"bind: {len(arrays)} {kind} given, the symbol has {len(names)}: {names}")
    return dict(zip(names, arrays))


def _shape_keywords(symbol, keywords) -> dict:
    """The shapes among simple_bind's keywords. MXNet's simple_bind takes a keyword as a shape
    only when it is a tuple naming one of the symbol's variables and ignores the rest, so code
    passing the operator's own attributes along (`axis=0, mode='clip'`) or the shapes of a larger
    network's inputs binds as it does there."""
    names = set(symbol.list_arguments()) | set(symbol.list_auxiliary_states())
    return {k: tuple(v) for k, v in keywords.items()
            if k in names and isinstance(v, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in v)}


class UnknownParameterError(GraphcError, ValueError):
    """A parameter given by name that the symbol does not have. A ValueError too, as MXNet's
    copy_params_from raises one (Module.set_params callers catch that type)."""

class Executor:
    """A symbol bound to arrays; see the module docstring."""

    def __init__(self, symbol, ctx, args, args_grad=None, grad_req="write", aux_states=None, group2ctx=None):
        from .gluon.symbol_block import SymbolBlock
        from .symbol import Symbol
        self._symbol = symbol
        self._ctx = ctx
        self._group2ctx = dict(group2ctx) if group2ctx else None
        arg_names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
        self.arg_dict = _as_dict("arguments", arg_names, args)
        missing = [n for n in arg_names if n not in self.arg_dict]
        if missing:
            raise GraphcError(f"bind: no array for arguments {missing}")
        self.aux_dict = _as_dict("auxiliary states", aux_names, aux_states)
        missing = [n for n in aux_names if n not in self.aux_dict]
        if missing:
            raise GraphcError(f"bind: no array for auxiliary states {missing}")
        if isinstance(grad_req, str):
            grad_req = {n: grad_req for n in arg_names}
        elif not isinstance(grad_req, dict):
            grad_req = dict(zip(arg_names, grad_req))
        self._grad_req = {n: grad_req.get(n, "null") for n in arg_names}
        bad = {n: r for n, r in self._grad_req.items() if r not in _GRAD_REQS}
        if bad:
            raise GraphcError(f"bind: grad_req {bad} must be one of {_GRAD_REQS}")
        grads = _as_dict("gradients", arg_names, args_grad)
        self.grad_dict = {}
        for n in arg_names:
            if self._grad_req[n] == "null":
                continue
            if grads.get(n) is None:
                if args_grad is not None and not isinstance(args_grad, dict):
                    raise GraphcError(f"bind: argument {n!r} has grad_req {self._grad_req[n]!r} but no gradient array")
                # No array to write into: MXNet binds it anyway and backward leaves it alone
                # (bind(args) without args_grad is the usual inference-only spelling).
                self._grad_req[n] = "null"
                continue
            self.grad_dict[n] = grads[n]
        nodes = {n.name: n for n in symbol._graph().nodes if n.is_var}
        inputs = [Symbol(nodes[n].out(), symbol.builder) for n in arg_names]
        self._block = SymbolBlock(symbol, inputs)
        if self._group2ctx:
            self._check_grad_devices()
            self._block.hybridize(group2ctx=self._group2ctx)
        self._aux_params = {n: self._block._params_by_var[n] for n in aux_names}
        self._outputs = None
        self._out_buffers = None

    @classmethod
    def simple(cls, symbol, ctx, grad_req, type_dict, shapes, group2ctx=None):
        """Zero-filled arrays of the inferred shapes (Symbol.simple_bind); with group2ctx each
        on the device of the operator reading it."""
        from .ndarray import zeros
        shapes = _shape_keywords(symbol, shapes)
        dtypes = {k: np.dtype(v).name for k, v in (type_dict or {}).items()}
        var_types = symbol._var_types(shapes, dtypes)
        where = placement(symbol, group2ctx, ctx, shapes, dtypes) if group2ctx else {}
        arrays = {n: zeros(t.shape, ctx=where.get(n, ctx), dtype=t.dtype) for n, t in var_types.items()}
        arg_names = symbol.list_arguments()
        reqs = {n: grad_req for n in arg_names} if isinstance(grad_req, str) else \
            (dict(grad_req) if isinstance(grad_req, dict) else dict(zip(arg_names, grad_req)))
        grads = {n: zeros(arrays[n].shape, ctx=arrays[n].context, dtype=arrays[n].dtype)
                 for n in arg_names if reqs.get(n, "null") != "null"}
        return cls(symbol, ctx, {n: arrays[n] for n in arg_names}, grads, reqs,
                   {n: arrays[n] for n in symbol.list_auxiliary_states()}, group2ctx)

    def _check_grad_devices(self):
        """MXNet's bind refuses a gradient array on another device than the one computing it
        ("Trying to save gradient to cpu(0) while its source node ... computes it on cpu(1)")."""
        shapes = {n: a.shape for n, a in {**self.arg_dict, **self.aux_dict}.items()}
        dtypes = {n: np.dtype(a.dtype).name for n, a in {**self.arg_dict, **self.aux_dict}.items()}
        where = placement(self._symbol, self._group2ctx, self._ctx, shapes, dtypes)
        for name, g in self.grad_dict.items():
            if g.context != where[name]:
                raise GraphcError(f"bind: the gradient of {name!r} is computed on {where[name]} (group2ctx "
                                  f"places the operator reading it there) but its array is on {g.context}; "
                                  f"allocate it on {where[name]} (MXNet refuses this too)")

    # -- MXNet's list views -------------------------------------------------------------
    @property
    def arg_arrays(self):
        return [self.arg_dict[n] for n in self._symbol.list_arguments()]

    @property
    def grad_arrays(self):
        return [self.grad_dict.get(n) for n in self._symbol.list_arguments()]

    @property
    def aux_arrays(self):
        return [self.aux_dict[n] for n in self._symbol.list_auxiliary_states()]

    @property
    def outputs(self):
        """The output arrays. Read before the first forward they are zeros of the inferred
        shapes, and forward then writes into those same arrays: MXNet allocates outputs at bind,
        and code that keeps `exe.outputs[0]` from before forward reads the results through it."""
        if self._out_buffers is not None:
            return list(self._out_buffers)
        if self._outputs is not None:
            return list(self._outputs)
        self._out_buffers = self._zero_outputs()
        return list(self._out_buffers)

    def _zero_outputs(self):
        from .ndarray import zeros
        shapes = {n: a.shape for n, a in self.arg_dict.items()}
        types = {n: a.dtype for n, a in self.arg_dict.items()}
        _, out_shapes, _ = self._symbol.infer_shape(**shapes)
        _, out_types, _ = self._symbol.infer_type(**types)
        return [zeros(s, ctx=self._ctx, dtype=t) for s, t in zip(out_shapes, out_types)]

    @property
    def output_dict(self):
        return dict(zip(self._symbol.list_outputs(), self.outputs))

    # -- running ------------------------------------------------------------------------
    def forward(self, is_train=False, **kwargs):
        """Run the symbol; keyword arrays are copied into arg_dict first (as MXNet does)."""
        for name, value in kwargs.items():
            if name not in self.arg_dict:
                raise GraphcError(f"forward: {name!r} is not an argument of the symbol; "
                                  f"arguments are {self._symbol.list_arguments()}")
            self.arg_dict[name][:] = value
        for name, p in self._aux_params.items():
            if p._data is None:      # (with group2ctx where its stage reads it: no copy per call)
                p._load_init(self.aux_dict[name], self.aux_dict[name].context if self._group2ctx else self._ctx)
            else:
                p.set_data(self.aux_dict[name])
        args = []
        for name in self._symbol.list_arguments():
            x = self.arg_dict[name].copy()
            if is_train and self._grad_req[name] != "null":
                x.attach_grad()
            args.append(x)
        self._args = args
        if is_train:
            with autograd.record(train_mode=True):
                out = self._block(*args)
        else:
            with autograd.pause(train_mode=False):
                out = self._block(*args)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        self._outputs = outs
        self._trained = is_train
        if self._out_buffers is not None:
            for buf, o in zip(self._out_buffers, outs):
                buf[:] = o
        for name, p in self._aux_params.items():
            self.aux_dict[name][:] = p.data(p.list_ctx()[0])   # (group2ctx may have moved it)
        if getattr(self, "_monitor_callback", None) is not None:
            from .monitor import report_forward
            report_forward(self, is_train)
        return self.outputs

    def set_monitor_callback(self, callback, monitor_all=False):
        """callback(name, NDArray) for each intermediate output after forward and each input
        gradient after backward (mx.mon.Monitor installs one; see graphc/monitor.py)."""
        self._monitor_callback = callback
        self._monitor_all = monitor_all

    def _record_inference_forward(self):
        """Re-run the last (inference) forward under autograd, in predict mode, so backward
        has a graph; outputs keep the same values."""
        args = []
        for name, x in zip(self._symbol.list_arguments(), self._args):
            x = x.copy()
            if self._grad_req[name] != "null":
                x.attach_grad()
            args.append(x)
        self._args = args
        with autograd.record(train_mode=False):
            out = self._block(*args)
        self._outputs = list(out) if isinstance(out, (list, tuple)) else [out]
        self._trained = True

    def backward(self, out_grads=None, is_train=True):
        """Gradients of the last forward into grad_dict (written or added); without a forward
        yet, of one run now on the bound arrays."""
        if all(r == "null" for r in self._grad_req.values()):
            return      # nothing to write: MXNet's backward is a no-op here too
        if self._outputs is None:
            # MXNet's bound graph runs backward straight on the bound arrays, without a forward
            # (gradients of linear operators need none); graphc records one, in predict mode.
            self.forward(is_train=False)
        if not self._trained:
            # MXNet's static graph can differentiate an inference forward (is_train only picks
            # the Dropout/BatchNorm mode); graphc records on demand, in the same predict mode.
            self._record_inference_forward()
        if out_grads is not None and not isinstance(out_grads, (list, tuple)):
            out_grads = [out_grads]
        if out_grads is not None and len(out_grads) != len(self._outputs):
            raise GraphcError(f"backward: {len(out_grads)} out_grads for {len(self._outputs)} outputs")
        if out_grads is not None:
            out_grads = self._unread_heads_as_zeros(out_grads)
        autograd.backward(self._outputs, out_grads)
        if getattr(self, "_monitor_callback", None) is not None:
            from .monitor import report_backward
            report_backward(self, out_grads)
        for name, x in zip(self._symbol.list_arguments(), self._args):
            req = self._grad_req[name]
            if req == "null":
                continue
            g = x.grad
            if req == "write":
                self.grad_dict[name][:] = g
            else:
                self.grad_dict[name][:] = self.grad_dict[name] + g

    def _unread_heads_as_zeros(self, out_grads):
        """MXNet copies a head gradient only into the buffers some gradient rule reads; one
        nobody reads (shape_array's: its gradient is zero) may have any shape. A head gradient
        whose size is not its output's is replaced by zeros when the symbol's gradient graph
        never reads it; one that is read is left for autograd to refuse."""
        from .ndarray import NDArray, zeros
        wrong = [i for i, (g, o) in enumerate(zip(out_grads, self._outputs))
                 if isinstance(g, NDArray) and g.size != o.size]
        if not wrong:
            return out_grads
        read = self._heads_read()
        out_grads = list(out_grads)
        for i in wrong:
            if not read[i]:
                o = self._outputs[i]
                out_grads[i] = zeros(o.shape, ctx=o.context, dtype=o.dtype)
        return out_grads

    def _heads_read(self) -> list:
        """Per output: whether the gradient graph of the bound symbol reads its head gradient."""
        from .passes.autodiff import differentiate
        arrays = {**self.arg_dict, **self.aux_dict}
        graph = self._symbol._bind({n: a.shape for n, a in arrays.items()},
                                   {n: np.dtype(a.dtype).name for n, a in arrays.items()})
        wrt = [n for n in graph.inputs if self._grad_req.get(n.name, "null") != "null"]
        grad = differentiate(graph, wrt)
        readers = {id(v.node) for n in grad.graph.nodes for v in n.inputs}
        readers |= {id(v.node) for v in grad.graph.outputs}
        return [id(h) in readers for h in grad.head_grads]

    def debug_str(self):
        """MXNet's execution-plan printout, ending in 'Total N MB allocated' (executor_debug)."""
        from .executor_debug import debug_str
        shapes = {n: a.shape for n, a in {**self.arg_dict, **self.aux_dict}.items()}
        dtypes = {n: np.dtype(a.dtype).name for n, a in {**self.arg_dict, **self.aux_dict}.items()}
        return debug_str(self._symbol, shapes, dtypes, self._grad_req)

    # -- parameters and shapes ----------------------------------------------------------
    def copy_params_from(self, arg_params, aux_params=None, allow_extra_params=False):
        """Copy arrays by name into arg_dict/aux_dict (MXNet's Executor.copy_params_from)."""
        for kind, given, target in (("argument", arg_params, self.arg_dict),
                                    ("auxiliary state", aux_params or {}, self.aux_dict)):
            for name, value in given.items():
                if name not in target:
                    if allow_extra_params:
                        continue
                    raise UnknownParameterError(f"copy_params_from: {kind} {name!r} is not in the symbol "
                                      f"(allow_extra_params=True skips it)")
                target[name][:] = value

    def reshape(self, partial_shaping=False, allow_up_sizing=False, **shapes):
        """A new Executor for new input shapes that shares this one's memory, as MXNet's: an
        array that is no larger than before is a view of the old one's first elements (the
        weights stay shared, writes show through both executors), a larger one is allocated
        anew (only with allow_up_sizing=True). An argument whose shape the new ones change
        without being given needs partial_shaping=True."""
        dtypes = {n: np.dtype(a.dtype).name for n, a in {**self.arg_dict, **self.aux_dict}.items()}
        var_types = self._symbol._var_types(shapes, dtypes)

        def resized(kind, name, arr):
            new_shape = var_types[name].shape
            if new_shape != arr.shape and name not in shapes and not partial_shaping:
                raise GraphcError(f"reshape: the shape of unspecified {kind} {name!r} changed from {arr.shape} "
                                  f"to {new_shape}; this can cause the new executor not to share parameters "
                                  "with the old one (set partial_shaping=True if it is intended)")
            return _share(arr, new_shape, allow_up_sizing, f"{kind} {name!r}")
        args = {n: resized("argument", n, a) for n, a in self.arg_dict.items()}
        grads = {n: _share(a, var_types[n].shape, allow_up_sizing, f"gradient of {n!r}")
                 for n, a in self.grad_dict.items()}
        aux = {n: resized("auxiliary state", n, a) for n, a in self.aux_dict.items()}
        new = Executor(self._symbol, self._ctx, args, grads, dict(self._grad_req), aux, self._group2ctx)
        out_shapes = [z.shape for z in new._zero_outputs()]
        new._out_buffers = [_share(old, shape, True, "output")
                            for old, shape in zip(self.outputs, out_shapes)]
        return new


def _share(arr, shape, allow_up_sizing, what):
    """`arr`'s memory seen with `shape` (its first elements) when it is large enough; else a new
    zero array, which MXNet allows only with allow_up_sizing."""
    from .ndarray import NDArray, zeros
    if tuple(arr.shape) == tuple(shape):
        return arr
    size = int(np.prod(shape))
    if size <= arr.size and type(arr) is NDArray and arr._data.flags.c_contiguous:
        return NDArray(arr._data.reshape(-1)[:size].reshape(shape), arr.context)
    if size > arr.size and not allow_up_sizing:
        raise GraphcError(f"reshape: the new shape {tuple(shape)} of {what} is larger than its original "
                          f"{tuple(arr.shape)}; making a big executor first and then down-sizing it is more "
                          "efficient (set allow_up_sizing=True to allocate new arrays)")
    return zeros(shape, ctx=arr.context, dtype=arr.dtype)


def placement(symbol, group2ctx, ctx, shapes, dtypes=None) -> dict:
    """variable name -> the Context MXNet gives it under group2ctx: its own ctx_group's device,
    else the device of the operator reading it (passes/partition.py places the operators;
    reader_devices reads it off)."""
    from .device import Context, current_context
    from .passes.partition import device_name, partition_devices, reader_devices
    default = device_name(ctx if ctx is not None else current_context())
    placed = partition_devices(symbol._bind(shapes, dtypes), group2ctx, default=default)
    devices = reader_devices(placed)
    for node in placed.inputs:
        group = node.hints.get("__ctx_group__")
        if group in group2ctx:
            devices[node.name] = device_name(group2ctx[group])
    out = {}
    for name, dev in devices.items():
        kind, index = dev.rstrip(")").split("(")
        out[name] = Context(kind, int(index))
    return out
