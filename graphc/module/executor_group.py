"""DataParallelExecutorGroup: one Executor per device, each bound to its slice of the batch.

Module splits every batch along its batch axis (DataDesc layout 'N') into one slice per
context, sized by work_load_list, and runs each slice on its own Executor (graphc/executor.py).
Each executor holds its own copy of every parameter; Module keeps the copies equal (it sums the
gradients through a KVStore and applies the same update everywhere). Outputs and input
gradients are concatenated back along the batch axis when merged.

The group never updates parameters: that is Module.update's job (module/updates.py)."""
from __future__ import annotations

from collections import OrderedDict

from ..io.base import DataDesc
from ..ops.errors import GraphcError

__all__ = ["DataParallelExecutorGroup", "split_input_slice"]


def split_input_slice(batch_size, work_load_list):
    """Contiguous slices of range(batch_size), one per device, proportional to the work loads
    (rounding left to the last device); a device that would get nothing is an error."""
    total = float(sum(work_load_list))
    counts = [int(round(w * batch_size / total)) for w in work_load_list]
    if sum(counts) < batch_size:
        counts[-1] += batch_size - sum(counts)
    slices, end = [], 0
    for c in counts:
        begin = min(end, batch_size)
        end = min(begin + c, batch_size)
        if begin >= end:
            raise ValueError(f"Module: batch size {batch_size} cannot be split over {len(work_load_list)} "
                             f"devices with work loads {list(work_load_list)}: a device gets no examples")
        slices.append(slice(begin, end))
    return slices


def _batch_axis(desc):
    return DataDesc.get_batch_axis(getattr(desc, "layout", None))


def _slice(arr, axis, s):
    if axis < 0:
        return arr
    if axis == 0:
        return arr[s.start:s.stop]
    return arr.slice_axis(axis=axis, begin=s.start, end=s.stop)


def _merge(parts, axis):
    from ..ndarray import concat
    if len(parts) == 1 or any(p is None for p in parts):
        return parts[0]
    if axis < 0:
        return parts[0]
    ctx = parts[0].context
    return concat(*[p.as_in_context(ctx) for p in parts], dim=axis)


class DataParallelExecutorGroup:
    """See the module docstring. param_arrays/grad_arrays are [per parameter][per device]."""

    def __init__(self, symbol, contexts, workload, data_shapes, label_shapes, param_names, for_training,
                 inputs_need_grad, shared_group=None, fixed_param_names=None, grad_req="write",
                 state_names=None, group2ctxs=None):
        self.symbol = symbol
        self.contexts = list(contexts)
        self.workload = list(workload)
        self.param_names = list(param_names)
        self.arg_names = symbol.list_arguments()
        self.aux_names = symbol.list_auxiliary_states()
        self.output_names = symbol.list_outputs()
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self.fixed_param_names = list(fixed_param_names or [])
        self.state_names = list(state_names or [])
        self.group2ctxs = group2ctxs
        self.grad_req = self._grad_reqs(grad_req, data_shapes, label_shapes)
        self.execs = []
        self._shared = shared_group
        self.bind_exec(data_shapes, label_shapes, shared_group)

    def _grad_reqs(self, grad_req, data_shapes, label_shapes):
        """argument name -> 'write' | 'add' | 'null', as MXNet's executor group decides."""
        data_names = [d[0] for d in data_shapes]
        if isinstance(grad_req, dict):
            reqs = {n: grad_req.get(n, "null") for n in self.arg_names}
        elif isinstance(grad_req, (list, tuple)):
            reqs = dict(zip(self.arg_names, grad_req))
        else:
            reqs = {}
            for n in self.arg_names:
                if not self.for_training:
                    reqs[n] = "null"
                elif n in self.param_names:
                    reqs[n] = "null" if n in self.fixed_param_names else grad_req
                elif n in data_names:
                    reqs[n] = grad_req if self.inputs_need_grad else "null"
                else:
                    reqs[n] = "null"
        return reqs

    # -- binding ---------------------------------------------------------------------------------
    def bind_exec(self, data_shapes, label_shapes, shared_group=None, reshape=False):
        self.data_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in data_shapes]
        self.label_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in (label_shapes or [])]
        self.data_names = [d.name for d in self.data_shapes]
        self.label_names = [d.name for d in self.label_shapes]
        self.data_layouts = [_batch_axis(d) for d in self.data_shapes]
        self.label_layouts = [_batch_axis(d) for d in self.label_shapes]
        axis = self.data_layouts[0]
        self.batch_size = self.data_shapes[0].shape[axis] if axis >= 0 else None
        for d, a in zip(self.data_shapes + self.label_shapes, self.data_layouts + self.label_layouts):
            if a >= 0 and self.batch_size is not None and d.shape[a] != self.batch_size:
                raise GraphcError(f"Module.bind: {d.name!r} has batch size {d.shape[a]} (shape {d.shape}) but "
                                  f"{self.data_shapes[0].name!r} has {self.batch_size}")
        self.slices = split_input_slice(self.batch_size, self.workload) if self.batch_size else \
            [slice(None)] * len(self.contexts)
        old = self.execs
        self.execs = [self._bind_one(i, old[i] if reshape and old else None, shared_group)
                      for i in range(len(self.contexts))]
        self.param_arrays = [[e.arg_dict[n] for e in self.execs] for n in self.param_names]
        self.grad_arrays = [[e.grad_dict.get(n) for e in self.execs] if self.grad_req[n] != "null" else
                            [None] * len(self.execs) for n in self.param_names]
        self.aux_arrays = [[e.aux_dict[n] for e in self.execs] for n in self.aux_names]
        self.data_arrays = [[(s, e.arg_dict[n]) for s, e in zip(self.slices, self.execs)] for n in self.data_names]
        self.label_arrays = [[(s, e.arg_dict[n]) for s, e in zip(self.slices, self.execs)]
                             for n in self.label_names if n in self.arg_names]
        # a data input bound with grad_req 'null' has None for its gradient, as in MXNet
        self.input_grad_arrays = [[e.grad_dict.get(n) for e in self.execs] for n in self.data_names
                                  if self.inputs_need_grad and n in self.arg_names]

    def _sliced_shapes(self, i):
        shapes = {}
        for d, a in zip(self.data_shapes + self.label_shapes, self.data_layouts + self.label_layouts):
            shape = list(d.shape)
            if a >= 0:
                s = self.slices[i]
                shape[a] = s.stop - s.start
            shapes[d.name] = tuple(shape)
        return shapes

    def _bind_one(self, i, old_exec, shared_group):
        from ..ndarray import zeros
        ctx = self.contexts[i]
        shapes = {k: v for k, v in self._sliced_shapes(i).items() if k in self.arg_names}
        types = {d.name: d.dtype for d in self.data_shapes + self.label_shapes
                 if d.name in self.arg_names and d.dtype is not None}
        arg_types = self.symbol._var_types(shapes, {k: _dtype_name(v) for k, v in types.items()})
        shared = shared_group.execs[i] if shared_group is not None else None
        group2ctx = self.group2ctxs[i] if self.group2ctxs else None
        where = {}
        if group2ctx:
            # model parallelism: each array on the device of the operator reading it, as
            # simple_bind allocates them (the executor refuses a gradient elsewhere)
            from ..executor import placement
            where = placement(self.symbol, group2ctx, ctx, {n: t.shape for n, t in arg_types.items()},
                              {n: t.dtype for n, t in arg_types.items()})
        args, grads, aux = {}, {}, {}
        for n in self.arg_names:
            t = arg_types[n]
            dev = where.get(n, ctx)
            if shared is not None and n in self.param_names and n in shared.arg_dict:
                args[n] = shared.arg_dict[n]          # bucketing: every bucket trains the same arrays
                if self.grad_req[n] != "null" and n in shared.grad_dict:
                    grads[n] = shared.grad_dict[n]
                    continue
            elif old_exec is not None and n in self.param_names:
                args[n] = old_exec.arg_dict[n]       # reshape keeps the parameters
                if n in old_exec.grad_dict:
                    grads[n] = old_exec.grad_dict[n]
                    continue
            else:
                args[n] = zeros(t.shape, ctx=dev, dtype=t.dtype)
            if self.grad_req[n] != "null":
                grads[n] = zeros(t.shape, ctx=dev, dtype=t.dtype)
        for n in self.aux_names:
            if shared is not None and n in shared.aux_dict:
                aux[n] = shared.aux_dict[n]
            elif old_exec is not None:
                aux[n] = old_exec.aux_dict[n]
            else:
                t = arg_types[n]
                aux[n] = zeros(t.shape, ctx=where.get(n, ctx), dtype=t.dtype)
        kwargs = {"group2ctx": group2ctx} if group2ctx else {}
        return self.symbol.bind(ctx, args, args_grad=grads, grad_req=self.grad_req, aux_states=aux, **kwargs)

    def reshape(self, data_shapes, label_shapes):
        if [tuple(d) for d in data_shapes] == [tuple(d) for d in self.data_shapes] and \
                [tuple(d) for d in (label_shapes or [])] == [tuple(d) for d in self.label_shapes]:
            return
        self.bind_exec(data_shapes, label_shapes, self._shared, reshape=True)

    # -- parameters ------------------------------------------------------------------------------
    def set_params(self, arg_params, aux_params, allow_extra=False):
        for e in self.execs:
            e.copy_params_from(arg_params, aux_params, allow_extra_params=allow_extra)

    def get_params(self, arg_params, aux_params):
        """The devices' average of each parameter into arg_params/aux_params (in place)."""
        for name, block in zip(self.param_names, self.param_arrays):
            arg_params[name][:] = _mean(block)
        for name, block in zip(self.aux_names, self.aux_arrays):
            aux_params[name][:] = _mean(block)

    # -- running ---------------------------------------------------------------------------------
    def forward(self, data_batch, is_train=None):
        if is_train is None:
            is_train = self.for_training
        if is_train and not self.for_training:
            raise GraphcError("Module.forward(is_train=True) on a module bound with for_training=False")
        self._load(self.data_arrays, data_batch.data, self.data_layouts)
        if data_batch.label and self.label_arrays:
            self._load(self.label_arrays, data_batch.label, self.label_layouts)
        for e in self.execs:
            e.forward(is_train=is_train)

    def _load(self, targets, sources, layouts):
        if len(sources) < len(targets):
            raise GraphcError(f"Module.forward: the batch has {len(sources)} arrays, the module expects "
                              f"{len(targets)}")
        for src, dst, axis in zip(sources, targets, layouts):
            for s, arr in dst:
                part = _slice(src, axis, s) if len(dst) > 1 else src
                if tuple(part.shape) != tuple(arr.shape):
                    raise GraphcError(f"Module.forward: a batch array of shape {tuple(part.shape)} does not fit "
                                      f"the bound shape {tuple(arr.shape)}")
                arr[:] = part.as_in_context(arr.context) if hasattr(part, "as_in_context") else part

    def backward(self, out_grads=None):
        if not self.for_training:
            raise GraphcError("Module.backward: re-bind with for_training=True")
        if out_grads is None:
            out_grads = []
        elif not isinstance(out_grads, (list, tuple)):
            out_grads = [out_grads]
        axes = self._output_layouts()
        for i, e in enumerate(self.execs):
            mine = [(_slice(g, axis, self.slices[i]) if axis >= 0 else g).as_in_context(self.contexts[i])
                    if len(self.execs) > 1 else g for g, axis in zip(out_grads, axes)]
            e.backward(out_grads=mine or None)

    def _output_layouts(self):
        """Each output's batch axis: its `__layout__` attribute's 'N' (MXNet's output_layouts)."""
        return [DataDesc.get_batch_axis(out.attr("__layout__")) for out in self.symbol]

    def get_outputs(self, merge_multi_context=True):
        outs = [[e.outputs[i] for e in self.execs] for i in range(len(self.execs[0].outputs))]
        if merge_multi_context:
            return [_merge(o, axis) for o, axis in zip(outs, self._output_layouts())]
        return outs

    def get_input_grads(self, merge_multi_context=True):
        if not self.inputs_need_grad:
            raise GraphcError("Module.get_input_grads: bind with inputs_need_grad=True")
        if merge_multi_context:
            return [_merge(g, axis) for g, axis in zip(self.input_grad_arrays, self.data_layouts)]
        return self.input_grad_arrays

    def get_states(self, merge_multi_context=True):
        states = [[e.arg_dict[n] for e in self.execs] for n in self.state_names]
        return [_merge(s, 0) for s in states] if merge_multi_context else states

    def set_states(self, states=None, value=None):
        if (states is None) == (value is None):
            raise ValueError("set_states: give exactly one of states and value")
        for j, n in enumerate(self.state_names):
            for i, e in enumerate(self.execs):
                e.arg_dict[n][:] = value if states is None else states[j][i]

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        for i, (e, s) in enumerate(zip(self.execs, self.slices)):
            if pre_sliced:
                mine = labels[i]
            elif len(self.execs) == 1:
                mine = labels
            else:
                mine = [_slice(lab, axis, s) for lab, axis in zip(labels, self.label_layouts)]
            eval_metric.update_dict(OrderedDict(zip(self.label_names, mine)),
                                    OrderedDict(zip(self.output_names, e.outputs)))


def _dtype_name(dtype):
    import numpy as np
    return np.dtype(dtype).name


def _mean(block):
    if len(block) == 1:
        return block[0]
    ctx = block[0].context
    total = block[0].copy()
    for arr in block[1:]:
        total = total + arr.as_in_context(ctx)
    return total / len(block)
