"""Trainer: applies an optimizer to a set of Parameters (MXNet 1.x `gluon.Trainer`).

`step(batch_size)` = sum the gradients over devices (allreduce_grads), then update every
device's copy of every parameter with rescale_grad = 1/batch_size. With one device nothing is
copied. 'dist_*' kvstores go through graphc.kvstore's pushpull; local kinds ('device', 'local')
sum in process. Optimizer states save to one MXNet-format .params file: the arrays plus a JSON
description (no pickle).
"""
from __future__ import annotations

import json
import warnings

import numpy as np

from ..ndarray import NDArray
from . import optimizer as opt
from .parameter import Parameter, ParameterDict

__all__ = ["Trainer"]

_META = "__graphc_trainer_states__"


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
        self._kvstore_kind = kvstore
        self._kvstore = None
        self._update_on_kvstore = bool(update_on_kvstore)
        self._kv_initialized = False
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
        self._contexts = self._check_contexts()
        self._updaters = [opt.get_updater(self._optimizer) for _ in self._contexts]
        kind = self._kvstore_kind
        if kind is not None and not isinstance(kind, str):
            self._kvstore = kind  # a KVStore object
        elif isinstance(kind, str) and kind.startswith("dist"):
            from .. import kvstore as kvs
            self._kvstore = kvs.create(kind)
        if self._kvstore is not None:
            for i, param in enumerate(self._params):
                if param.grad_req != "null":
                    self._kvstore.init(i, param.list_data()[0])
            if self._update_on_kvstore:
                warnings.warn("update_on_kvstore=True: graphc updates on the workers after the allreduce, "
                              "with the same result")
                self._update_on_kvstore = False
        self._kv_initialized = True

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
    def step(self, batch_size, ignore_stale_grad=False):
        """One optimization step: gradients are divided by `batch_size` (rescale_grad)."""
        self._optimizer.rescale_grad = self._scale / batch_size
        if not self._kv_initialized:
            self._init_kvstore()
        self._allreduce_grads()
        self._update(ignore_stale_grad)

    def allreduce_grads(self):
        """Sum gradients over devices (for `update` after gradient processing, e.g. clipping)."""
        if not self._kv_initialized:
            self._init_kvstore()
        self._allreduce_grads()

    def update(self, batch_size, ignore_stale_grad=False):
        """The update half of step(), after allreduce_grads()."""
        if not self._kv_initialized:
            self._init_kvstore()
        self._optimizer.rescale_grad = self._scale / batch_size
        self._update(ignore_stale_grad)

    def _allreduce_grads(self):
        for i, param in enumerate(self._params):
            if param.grad_req == "null":
                continue
            grads = param.list_grad()
            if self._kvstore is not None:
                self._kvstore.pushpull(i, grads, out=grads)
            elif len(grads) > 1:
                total = grads[0]._data.copy()
                for g in grads[1:]:
                    total += g._data
                for g in grads:
                    g._data[...] = total

    def _update(self, ignore_stale_grad=False):
        updates = [[] for _ in self._updaters]
        for i, param in enumerate(self._params):
            if param.grad_req == "null":
                continue
            datas = param.list_data()
            if not ignore_stale_grad:
                for data in datas:
                    if not _fresh(data, True):
                        raise UserWarning(
                            f"Gradient of Parameter `{param.name}` on context {data.context} has not been updated "
                            "by backward since last `step`. This could mean a bug in your model that made it only "
                            "use a subset of the Parameters (Blocks) for this iteration. If you are intentionally "
                            "only using a subset, call step with ignore_stale_grad=True to suppress this warning "
                            "and skip updating of Parameters with stale gradient")
            for upd, arr, grad in zip(updates, datas, param.list_grad()):
                if not ignore_stale_grad or _fresh(arr, True):
                    upd.append((i, grad, arr))
                    _mark_stale(arr)
        for updater, upd in zip(self._updaters, updates):
            if upd:
                idx, g, w = zip(*upd)
                updater(list(idx), list(g), list(w))

    # -- states ----------------------------------------------------------------------------------
    def save_states(self, fname):
        """Write the optimizer states (and update counts) to `fname` in MXNet's .params format."""
        from ..io.mxnet_params import save_params
        if not self._kv_initialized:
            self._init_kvstore()
        arrays = {}

        def encode(state, key):
            if state is None:
                return None
            if isinstance(state, NDArray):
                arrays[key] = state.asnumpy()
                return key
            if isinstance(state, (tuple, list)):
                return [encode(s, f"{key}.{j}") for j, s in enumerate(state)]
            raise TypeError(f"cannot save optimizer state of type {type(state).__name__}")

        updaters = []
        for u, updater in enumerate(self._updaters):
            updaters.append({str(idx): encode(st, f"u{u}:{idx}") for idx, st in updater.states.items()})
        o = self._optimizer
        meta = {"optimizer": type(o).__name__.lower(), "num_update": o.num_update,
                "counts": {str(k): {str(i): c for i, c in v.items()} for k, v in o._all_index_update_counts.items()},
                "lr": o.lr, "wd": o.wd, "updaters": updaters}
        if hasattr(o, "m_schedule"):
            meta["m_schedule"] = o.m_schedule
        arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8).copy()
        save_params(fname, arrays)

    def load_states(self, fname):
        """Restore what save_states wrote (the Trainer's parameters must be the same)."""
        from ..io.mxnet_params import load_params
        if not self._kv_initialized:
            self._init_kvstore()
        arrays = load_params(fname)
        if _META not in arrays:
            raise ValueError(f"{fname}: not a graphc trainer-states file (no {_META} entry)")
        meta = json.loads(bytes(arrays[_META]).decode())
        o = self._optimizer
        if meta["optimizer"] != type(o).__name__.lower():
            raise ValueError(f"{fname}: states of optimizer {meta['optimizer']!r}, this Trainer uses "
                             f"{type(o).__name__.lower()!r}")
        o.num_update = meta["num_update"]
        o._all_index_update_counts = {int(k): {int(i): c for i, c in v.items()} for k, v in meta["counts"].items()}
        o._index_update_count = o._all_index_update_counts.setdefault(0, {})
        if "m_schedule" in meta:
            o.m_schedule = meta["m_schedule"]

        def decode(tree, ctx):
            if tree is None:
                return None
            if isinstance(tree, str):
                return NDArray(arrays[tree].copy(), ctx)
            return tuple(decode(t, ctx) for t in tree)

        for u, updater in enumerate(self._updaters):
            saved = meta["updaters"][u] if u < len(meta["updaters"]) else meta["updaters"][0]
            ctx = self._contexts[u]
            updater.states = {int(idx): decode(tree, ctx) for idx, tree in saved.items()}
            updater.states_synced = {idx: True for idx in updater.states}


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
