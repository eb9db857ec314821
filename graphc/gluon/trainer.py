"""Trainer: applies an optimizer to a set of Parameters (MXNet 1.x `gluon.Trainer`).

`step(batch_size)` = sum the gradients over devices (allreduce_grads), then update every
device's copy of every parameter with rescale_grad = 1/batch_size. As in MXNet, the sum goes
through a KVStore (graphc.kvstore) only when there is one: `kvstore=None`, or a kind name with a
single device and no 'dist', means no store and no sum. With a store, `update_on_kvstore`
(default: True where the store can run an optimizer) makes the store own the optimizer: it
updates its copy of each weight with the summed gradient and the devices pull the result.
Optimizer states save to one MXNet-format .params file (gluon/updater_states.py, no pickle).
Weights on a GPU are updated there by one compiled step (gluon/gpu_step.py); several GPUs' copies
are summed on the device by a single-process store (kvstore/gpu_push.py).

With a synchronous distributed store ('dist_sync*', no compression, one device per parameter
in each process) the sums over workers can start during backward: from the second step on,
each parameter's gradient-ready hook hands it to an overlapped reducer (kvstore/overlap.py),
whose buckets run while backward computes the rest, and step() only finishes them. The first
step creates the store after its backward and so is not overlapped. GRAPHC_DIST_OVERLAP=1/0
turns it on/off (by default on, except where all ranks share one host whose cores their
compute threads fill); every worker's weights are the same bits either way.
"""
from __future__ import annotations

import os

import numpy as np

from ..ndarray import NDArray
from . import optimizer as opt
from .device_updates import update_by_device
from .gpu_step import gpu_update
from .parameter import Parameter, ParameterDict
from .updater_states import load_updater_states, save_updater_states

__all__ = ["Trainer"]


class Trainer:
    """params: a ParameterDict, dict or list of Parameters; optimizer: a name ('sgd') or an
    Optimizer; optimizer_params: its keyword arguments (learning_rate, wd, momentum...)."""

    def __init__(self, params, optimizer, optimizer_params=None, kvstore="device", compression_params=None,
                 update_on_kvstore=None):
        if isinstance(params, (dict, ParameterDict)):
            params = [params[key] for key in sorted(params.keys())]
        if not isinstance(params, (list, tuple)):
            raise ValueError(f"First argument must be a list or dict of Parameters, got {type(params)}.")
        self._params = []
        self._param2idx = {}
        for i, param in enumerate(params):
            if not isinstance(param, Parameter):
                raise ValueError(f"First argument must be a list or dict of Parameters, got list of {type(param)}.")
            if param.name in self._param2idx:
                raise ValueError(f"Parameter {param.name!r} appears twice in the list given to Trainer")
            self._param2idx[param.name] = i
            self._params.append(param)
            param._set_trainer(self)
        self._compression_params = compression_params
        self._contexts = None
        self._kvstore_params = {"kvstore": kvstore, "update_on_kvstore": update_on_kvstore}
        self._kvstore = None
        self._overlap = None            # kvstore/overlap.py's reducer, when sums overlap backward
        self._update_on_kvstore = None
        self._distributed = None
        self._kv_initialized = False
        self._params_to_init = list(self._params)   # not yet in the store (MXNet's name)
        optimizer_params = optimizer_params if optimizer_params else {}
        self._init_optimizer(optimizer, optimizer_params)
        self._scale = self._optimizer.rescale_grad

    def _init_optimizer(self, optimizer, optimizer_params):
        param_dict = {i: param for i, param in enumerate(self._params)}
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise ValueError("optimizer_params must be None if optimizer is an instance of Optimizer instead "
                                 "of str")
            self._optimizer = optimizer
            self._optimizer.param_dict = param_dict
        else:
            self._optimizer = opt.create(optimizer, param_dict=param_dict, **optimizer_params)
        self._updaters = None

    def _check_contexts(self):
        held = [param.list_ctx() for param in self._params]
        if held and all(len(c) == 1 for c in held) and len({c[0] for c in held}) > 1 \
                and all(getattr(p, "_model_parallel", False) for p in self._params):
            # model parallelism (gluon/model_parallel.py marks the parameters of a partitioned
            # block): each lives on its stage's one device, so there is one copy to update and
            # nothing to sum across devices; any other mix is refused, as MXNet does
            return [held[0][0]]
        contexts = None
        for param in self._params:
            ctx = param.list_ctx()
            if contexts is not None and list(contexts) != list(ctx):
                raise ValueError(f"All Parameters must be initialized on the same set of contexts, but Parameter "
                                 f"{param.name} is initialized on {ctx} while previous Parameters are "
                                 f"initialized on {contexts}.")
            contexts = ctx
        return list(contexts or [])

    def _init_kvstore(self):
        """Choose the store and where updates happen, as MXNet's Trainer._init_kvstore and
        model._create_kvstore do, and put every parameter's first copy into the store."""
        from .. import kvstore as kvs
        self._contexts = self._check_contexts()
        self._updaters = [opt.get_updater(self._optimizer) for _ in self._contexts]
        kind, wanted = self._kvstore_params["kvstore"], self._kvstore_params["update_on_kvstore"]
        update_on_kvstore = bool(int(os.getenv("MXNET_UPDATE_ON_KVSTORE", "1")))
        if kind is None:
            kv = None
        elif isinstance(kind, kvs.KVStoreBase):
            kv = kind
        elif isinstance(kind, str):
            if len(self._contexts) == 1 and "dist" not in kind:
                kv = None       # one device, one process: nothing to sum
            else:
                kv = kvs.create(kind)
                if kind == "local" and max(int(np.prod(p.shape)) for p in self._params) > 1024 * 1024 * 16:
                    update_on_kvstore = False
        else:
            raise TypeError(f"kvstore must be KVStore, str or None, got {type(kind).__name__}")
        if any(p._stype != "default" for p in self._params):
            # MXNet keeps a sparse weight's master copy in the store (row_sparse_pull reads it),
            # so a store is made even for one device and the update must run there
            if wanted is False:
                raise ValueError("Cannot set update_on_kvstore=False when sparse weights are present.")
            if kv is None and isinstance(kind, str):
                kv = kvs.create(kind)
            update_on_kvstore = True
        elif any(p._grad_stype != "default" for p in self._params):
            # dense weights, sparse gradients: on one machine updating locally is faster; a
            # distributed store can only push sparse gradients and pull dense weights
            distributed = kv is not None and "dist" in kv.type
            if wanted is False and distributed:
                raise ValueError("Cannot set update_on_kvstore=False on dist kvstore when sparse "
                                 "gradients are present.")
            update_on_kvstore = distributed
        if kv is None:
            if wanted:      # MXNet fails here too, with an AttributeError from deep inside
                raise ValueError(f"update_on_kvstore=True needs a kvstore, but kvstore={kind!r} with "
                                 f"{len(self._contexts)} device(s) gives none; leave update_on_kvstore=None")
            self._kvstore, self._update_on_kvstore, self._distributed = None, None, False
            self._kv_initialized = True
            self._params_to_init = [p for p in self._params if p._deferred_init]
            return
        update_on_kvstore = update_on_kvstore and kv.is_capable(kvs.KVStoreBase.OPTIMIZER)
        self._distributed = "dist" in kv.type
        if self._distributed and "async" in kv.type:
            if wanted is False:
                raise ValueError("Please set update_on_kvstore=True when training in async mode.")
            update_on_kvstore = True
        if wanted is not None:
            update_on_kvstore = bool(wanted)
        if update_on_kvstore and not kv.is_capable(kvs.KVStoreBase.OPTIMIZER):
            raise ValueError(f"Please set update_on_kvstore=False when training with {type(kv)}")
        if self._compression_params:
            kv.set_gradient_compression(self._compression_params)
        if update_on_kvstore:
            kv.set_optimizer(self._optimizer)
        elif isinstance(kind, str) and isinstance(kv, kvs.KVStore):
            # a store only this Trainer can reach, never pulled from: the sums go straight into
            # the gradients (in place over MPI) without a copy into the store
            kv._keeps_sums = False
        if isinstance(kv, kvs.KVStore):
            # one call for every parameter: a distributed store checks that all workers agree on
            # the keys, shapes and dtypes before anything is sent. A model-parallel stage's
            # parameter another rank owns is left out: the store would hold a full copy of it
            keys = [i for i, p in enumerate(self._params) if not getattr(p, "_stage_elsewhere", False)]
            if keys:
                kv.broadcast(keys, [_held(self._params[i])[0] for i in keys],
                             [_held(self._params[i]) for i in keys])
        else:
            for i, param in enumerate(self._params):
                arrays = _held(param)
                kv.broadcast(i, arrays[0], arrays)
        self._kvstore, self._update_on_kvstore = kv, update_on_kvstore
        self._kv_initialized = True
        self._params_to_init = [p for p in self._params if p._deferred_init]
        self._overlap = None
        if self._distributed and isinstance(kv, kvs.KVStore):
            self._overlap = self._overlap_reducer()

    def _reset_kvstore(self):
        """Forget the store after a parameter was overwritten (load, set_data) while the store
        held the master copy: the next step re-creates it from the parameters, as MXNet does."""
        if self._kvstore is not None and "dist" in self._kvstore.type:
            raise RuntimeError("Cannot reset distributed KVStore.")
        self._kv_initialized = False
        self._kvstore = None
        self._distributed = None
        self._update_on_kvstore = None
        self._overlap = None
        self._params_to_init = list(self._params)

    # -- learning rate ---------------------------------------------------------------------------
    @property
    def learning_rate(self):
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning("Optimizer has to be defined before its learning rate can be accessed.")
        return self._optimizer.learning_rate

    @property
    def optimizer(self):
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning("Optimizer has not been initialized yet")
        return self._optimizer

    def set_learning_rate(self, lr):
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning("Optimizer has to be defined before its learning rate is mutated.")
        self._optimizer.set_learning_rate(lr)

    # -- stepping --------------------------------------------------------------------------------
    def _check_and_rescale_grad(self, scale):
        """rescale_grad = scale; as in MXNet, a distributed store that runs the optimizer
        received it with the first step's scale, so a later batch size may not change it."""
        if self._update_on_kvstore and self._distributed and self._kv_initialized:
            if self._optimizer.rescale_grad != scale:
                raise UserWarning("Possible change in the `batch_size` from previous `step` detected. Optimizer "
                                  "gradient normalizing factor will not change w.r.t new batch_size when "
                                  "update_on_kvstore=True and when distributed kvstore is used.")
        self._optimizer.rescale_grad = scale

    def step(self, batch_size, ignore_stale_grad=False):
        """One optimization step: gradients are divided by `batch_size` (rescale_grad).

        With a 'dist_sync' store the gradients are summed over all workers (MXNet's semantics),
        so `batch_size` is the per-worker batch: n workers each stepping with batch b move the
        weights exactly as one process stepping with b on the n batches concatenated."""
        self._check_and_rescale_grad(self._scale / batch_size)
        if not self._kv_initialized:
            self._init_kvstore()
        self._allreduce_grads()
        self._update(ignore_stale_grad)

    def allreduce_grads(self):
        """Sum gradients over devices (for `update` after gradient processing, e.g. clipping)."""
        if not self._kv_initialized:
            self._init_kvstore()
        self._check_not_on_kvstore("allreduce_grads")
        self._allreduce_grads()

    def _check_not_on_kvstore(self, what):
        if self._kvstore is not None and self._update_on_kvstore:
            raise AssertionError(f"{what}() when parameters are updated on kvstore is not supported. Try setting "
                                 "`update_on_kvstore` to False when creating trainer.")

    def update(self, batch_size, ignore_stale_grad=False):
        """The update half of step(), after allreduce_grads()."""
        if not self._kv_initialized:
            self._init_kvstore()
        self._check_not_on_kvstore("update")
        self._check_and_rescale_grad(self._scale / batch_size)
        self._update(ignore_stale_grad)

    def _allreduce_grads(self):
        if self._kvstore is None:
            return          # MXNet: without a store each device keeps its own gradient
        from ..kvstore import KVStore
        if isinstance(self._kvstore, KVStore):
            # every gradient in one call, so a distributed store buckets them and overlaps their
            # transfer with the per-device sums and the updates (kvstore/mpi_transport.py); with
            # update_on_kvstore=False a big gradient is summed over workers in its own memory.
            # With an overlapped reducer most sums started during backward: finish them here
            live = [i for i, p in enumerate(self._params) if _trained_here(p)]
            if not live:
                return
            if self._overlap is not None and self._flush_overlap(live):
                return
            grads = [self._params[i].list_grad() for i in live]
            if self._update_on_kvstore:
                self._kvstore.pushpull(live, grads, out=[_held(self._params[i]) for i in live])
            else:
                self._kvstore.pushpull(live, grads)
            return
        for i, param in enumerate(self._params):
            if not _trained_here(param):
                continue
            grads = param.list_grad()
            if self._update_on_kvstore:
                # push the gradients, the store updates its weight, every device pulls it
                self._kvstore.pushpull(i, grads, out=_held(param), priority=-i)
            else:
                self._kvstore.pushpull(i, grads, priority=-i)

    def _overlap_reducer(self):
        from ..kvstore.overlap import reducer_for
        keys = [i for i, p in enumerate(self._params) if _trained_here(p)]
        return reducer_for(self._kvstore, self._params, keys, self._update_on_kvstore, owner=self)

    def _flush_overlap(self, live):
        """Finish the overlapped reducer's round; False when the caller must sum the ordinary
        way (the round was stale, or the trained parameters changed since the reducer was
        planned, in which case it is planned again for the next step)."""
        reducer = self._overlap
        if tuple(live) != reducer.keys or any(self._params[i].grad_req != "write" for i in live):
            reducer.close()         # (waits for what it started this round)
            self._overlap = self._overlap_reducer()
            return False
        return reducer.flush(self._update_on_kvstore)

    def _update(self, ignore_stale_grad=False):
        updates = [[] for _ in self._updaters]
        for i, param in enumerate(self._params):
            if not _trained_here(param):
                continue
            datas = _held(param)
            if not ignore_stale_grad:
                for data in datas:
                    if not _fresh(data, True):
                        raise UserWarning(
                            f"Gradient of Parameter `{param.name}` on context {data.context} has not been updated "
                            "by backward since last `step`. This could mean a bug in your model that made it only "
                            "use a subset of the Parameters (Blocks) for this iteration. If you are intentionally "
                            "only using a subset, call step with ignore_stale_grad=True to suppress this warning "
                            "and skip updating of Parameters with stale gradient")
            if self._kvstore is not None and self._update_on_kvstore:
                for arr in datas:
                    _mark_stale(arr)
                continue        # the store updated the weights during allreduce
            for upd, arr, grad in zip(updates, datas, param.list_grad()):
                if not ignore_stale_grad or _fresh(arr, True):
                    upd.append((i, grad, arr))
                    _mark_stale(arr)
        for updater, upd in zip(self._updaters, updates):
            if not upd:
                continue
            idx, g, w = (list(t) for t in zip(*upd))
            # weights on a GPU: one compiled step there (gluon/gpu_step.py), no host copies
            if gpu_update(updater, idx, g, w):
                continue
            # a model-parallel block's weights on several devices: each device's share on its
            # own device, at once (gluon/device_updates.py)
            if not update_by_device(updater, upd):
                updater(idx, g, w)

    # -- states ----------------------------------------------------------------------------------
    def save_states(self, fname):
        """Write the optimizer states (and update counts) to `fname` in MXNet's .params format."""
        if not self._kv_initialized:
            self._init_kvstore()
        if self._kvstore is not None and self._update_on_kvstore:
            self._kvstore.save_optimizer_states(fname, dump_optimizer=True)
        else:
            save_updater_states(fname, self._optimizer, self._updaters, dump_optimizer=True)

    def load_states(self, fname):
        """Restore what save_states wrote (the Trainer's parameters must be the same)."""
        if not self._kv_initialized:
            self._init_kvstore()
        if self._kvstore is not None and self._update_on_kvstore:
            self._kvstore.load_optimizer_states(fname)
        else:
            load_updater_states(fname, self._optimizer, self._updaters, self._contexts)


def _trained_here(param):
    """Whether this process sums and updates `param`: not grad_req 'null', and not the parameter
    of a model-parallel stage that another MPI rank runs (gluon/model_parallel_ranks.py marks
    those; only their owner gets a gradient, so they are neither stale nor updated here)."""
    return param.grad_req != "null" and not getattr(param, "_stage_elsewhere", False)


def _tracks_fresh_grad():
    """Whether the eager autograd marks gradients it writes (NDArray declares `_fresh_grad`,
    which backward sets True on each array whose gradient it wrote, MXNet's protocol)."""
    return hasattr(NDArray, "_fresh_grad")


def _fresh(arr, default):
    """Whether backward wrote arr's gradient since the last step; `default` when the autograd
    does not track it."""
    if not _tracks_fresh_grad():
        return default
    return bool(getattr(arr, "_fresh_grad", default))


def _mark_stale(arr):
    if _tracks_fresh_grad():
        arr._fresh_grad = False


def _held(param):
    """The parameter's arrays on every device, whatever its storage type (list_data() refuses a
    row_sparse parameter, as MXNet's; the Trainer updates its whole arrays in place)."""
    return param._check_and_get(param._data, list)
