"""Module: a Symbol trained over one or several devices (MXNet 1.9.1's mx.mod.Module).

The module keeps a host copy of every parameter (_arg_params/_aux_params, what get_params
returns and checkpoints hold) and the devices' copies inside its DataParallelExecutorGroup.
After update() the host copy is stale ("dirty") until get_params() averages the devices'
copies back, as in MXNet. Optimizer states go to a graphc states file (gluon/updater_states.py:
MXNet's .params layout plus a JSON description, no pickle), so `.states` files are not
exchangeable with MXNet's pickled ones; `.params` and `-symbol.json` are."""
from __future__ import annotations

import logging
import warnings

from ..device import Context, cpu
from ..ops.errors import GraphcError
from .base_module import BaseModule, check_input_names, parse_data_desc
from .executor_group import DataParallelExecutorGroup
from .updates import create_kvstore, initialize_kvstore, update_params, update_params_on_kvstore

__all__ = ["Module"]


class Module(BaseModule):
    """symbol: the network (its outputs are the module's outputs, usually a loss such as
    SoftmaxOutput); data_names/label_names: which arguments are fed from batches; context: one
    device or a list for data parallelism; fixed_param_names: parameters never updated;
    group2ctxs: model-parallel placement handed to Symbol.bind (one dict per context)."""

    def __init__(self, symbol, data_names=("data",), label_names=("softmax_label",), logger=logging,
                 context=None, work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None,
                 compression_params=None):
        super().__init__(logger=logger)
        context = cpu() if context is None else context
        self._context = [context] if isinstance(context, Context) else list(context)
        if work_load_list is None:
            work_load_list = [1] * len(self._context)
        if len(work_load_list) != len(self._context):
            raise ValueError(f"Module: {len(work_load_list)} work loads for {len(self._context)} contexts")
        self._work_load_list = list(work_load_list)
        if isinstance(group2ctxs, dict):
            group2ctxs = [group2ctxs] * len(self._context)
        if group2ctxs is not None and len(group2ctxs) != len(self._context):
            raise ValueError(f"Module: group2ctxs has {len(group2ctxs)} entries for {len(self._context)} contexts")
        self._group2ctxs = group2ctxs
        self._symbol = symbol
        data_names = list(data_names) if data_names is not None else []
        label_names = list(label_names) if label_names is not None else []
        state_names = list(state_names) if state_names is not None else []
        fixed_param_names = list(fixed_param_names) if fixed_param_names is not None else []
        check_input_names(symbol, data_names, "data", True)
        check_input_names(symbol, label_names, "label", False)
        check_input_names(symbol, state_names, "state", True)
        check_input_names(symbol, fixed_param_names, "fixed_param", True)
        inputs = data_names + label_names + state_names
        self._param_names = [x for x in symbol.list_arguments() if x not in inputs]
        self._fixed_param_names = fixed_param_names
        self._aux_names = symbol.list_auxiliary_states()
        self._data_names = data_names
        self._label_names = label_names
        self._state_names = state_names
        self._output_names = symbol.list_outputs()
        self._arg_params = None
        self._aux_params = None
        self._params_dirty = False
        self._compression_params = compression_params
        self._optimizer = None
        self._kvstore = None
        self._update_on_kvstore = None
        self._updater = None
        self._preload_opt_states = None
        self._grad_req = None
        self._exec_group = None
        self._data_shapes = None
        self._label_shapes = None

    # -- checkpoints -----------------------------------------------------------------------------
    @staticmethod
    def load(prefix, epoch, load_optimizer_states=False, **kwargs):
        """A Module over checkpoint `epoch` of `prefix` (its parameters are set on bind; with
        load_optimizer_states, prefix-<epoch>.states is loaded by init_optimizer)."""
        from ..model import load_checkpoint
        sym, args, auxs = load_checkpoint(prefix, epoch)
        mod = Module(symbol=sym, **kwargs)
        mod._arg_params = args
        mod._aux_params = auxs
        mod.params_initialized = True
        if load_optimizer_states:
            mod._preload_opt_states = "%s-%04d.states" % (prefix, epoch)
        return mod

    def save_checkpoint(self, prefix, epoch, save_optimizer_states=False, remove_amp_cast=True):
        self._symbol.save("%s-symbol.json" % prefix, remove_amp_cast=remove_amp_cast)
        param_name = "%s-%04d.params" % (prefix, epoch)
        self.save_params(param_name)
        logging.info('Saved checkpoint to "%s"', param_name)
        if save_optimizer_states:
            state_name = "%s-%04d.states" % (prefix, epoch)
            self.save_optimizer_states(state_name)
            logging.info('Saved optimizer state to "%s"', state_name)

    def _reset_bind(self):
        self.binded = False
        self._exec_group = None
        self._data_shapes = None
        self._label_shapes = None

    # -- names and shapes ------------------------------------------------------------------------
    @property
    def data_names(self):
        return self._data_names

    @property
    def label_names(self):
        return self._label_names

    @property
    def output_names(self):
        return self._output_names

    @property
    def data_shapes(self):
        self._check_bound("data_shapes")
        return self._data_shapes

    @property
    def label_shapes(self):
        self._check_bound("label_shapes")
        return self._label_shapes

    @property
    def output_shapes(self):
        self._check_bound("output_shapes")
        shapes = {d.name: d.shape for d in self._data_shapes + (self._label_shapes or [])}
        _, out_shapes, _ = self._symbol.infer_shape(**shapes)
        return list(zip(self._output_names, out_shapes))

    def _check_bound(self, what):
        if not self.binded:
            raise RuntimeError(f"Module.{what}: call bind() first")

    # -- parameters ------------------------------------------------------------------------------
    def get_params(self):
        if not self.params_initialized:
            raise RuntimeError("Module.get_params: parameters are not initialized (call init_params)")
        if self._params_dirty:
            self._sync_params_from_devices()
        return self._arg_params, self._aux_params

    def init_params(self, initializer=None, arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        """Fill the host parameters: copied from arg_params/aux_params where given (a missing one
        is an error unless allow_missing, then `initializer` fills it), else from `initializer`
        (default Uniform(0.01)); then copy them to every device."""
        from ..initializer import InitDesc, Uniform
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. init_params call ignored.",
                          stacklevel=2)
            return
        self._check_bound("init_params")
        if initializer is None and arg_params is None and aux_params is None:
            initializer = Uniform(0.01)

        def fill(name, arr, given):
            if given is not None:
                if name in given:
                    if given[name] is not arr:
                        arr[:] = given[name].as_in_context(arr.context) if hasattr(given[name], "as_in_context") \
                            else given[name]
                    return
                if not allow_missing:
                    raise RuntimeError(f"Module.init_params: {name!r} is not in the given parameters "
                                       "(allow_missing=True fills it with the initializer)")
            if initializer is not None:
                initializer(InitDesc(name, attrs.get(name)), arr)

        attrs = _attr_dict(self._symbol)
        for name, arr in sorted(self._arg_params.items()):
            fill(name, arr, arg_params)
        for name, arr in sorted(self._aux_params.items()):
            fill(name, arr, aux_params)
        self.params_initialized = True
        self._params_dirty = False
        self._exec_group.set_params(self._arg_params, self._aux_params, allow_extra=allow_extra)

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        if not allow_missing:
            self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                             allow_missing=allow_missing, force_init=force_init, allow_extra=allow_extra)
            return
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. set_params call ignored.",
                          stacklevel=2)
            return
        self._exec_group.set_params(arg_params, aux_params, allow_extra=allow_extra)
        self._params_dirty = True
        self.params_initialized = True

    def _sync_params_from_devices(self):
        self._exec_group.get_params(self._arg_params, self._aux_params)
        self._params_dirty = False

    # -- binding ---------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req="write"):
        """Make the executors for these input shapes (DataDescs or (name, shape) pairs)."""
        from ..ndarray import zeros
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if inputs_need_grad and not for_training:
            raise ValueError("Module.bind: inputs_need_grad=True needs for_training=True")
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._grad_req = grad_req
        self._data_shapes, self._label_shapes = parse_data_desc(self.data_names, self.label_names, data_shapes,
                                                                label_shapes)
        shared_group = None
        if shared_module is not None:
            if not (isinstance(shared_module, Module) and shared_module.binded and shared_module.params_initialized):
                raise ValueError("Module.bind: shared_module must be a bound Module with initialized parameters")
            shared_group = shared_module._exec_group
            if len(shared_group.execs) < len(self._context):
                raise ValueError("Module.bind: shared_module has fewer devices than this module")
        self._exec_group = DataParallelExecutorGroup(
            self._symbol, self._context, self._work_load_list, self._data_shapes, self._label_shapes,
            self._param_names, for_training, inputs_need_grad, shared_group,
            fixed_param_names=self._fixed_param_names, grad_req=grad_req, state_names=self._state_names,
            group2ctxs=self._group2ctxs)
        if shared_module is not None:
            self.params_initialized = True
            self._arg_params = shared_module._arg_params
            self._aux_params = shared_module._aux_params
        elif self.params_initialized:
            self._exec_group.set_params(self._arg_params, self._aux_params)
        else:
            self._arg_params = {n: zeros(b[0].shape, dtype=b[0].dtype)
                                for n, b in zip(self._param_names, self._exec_group.param_arrays)}
            self._aux_params = {n: zeros(b[0].shape, dtype=b[0].dtype)
                                for n, b in zip(self._aux_names, self._exec_group.aux_arrays)}
        if shared_module is not None and shared_module.optimizer_initialized:
            self.borrow_optimizer(shared_module)
        self.binded = True

    def reshape(self, data_shapes, label_shapes=None):
        self._check_bound("reshape")
        self._data_shapes, self._label_shapes = parse_data_desc(self.data_names, self.label_names, data_shapes,
                                                                label_shapes)
        self._exec_group.reshape(self._data_shapes, self._label_shapes)

    # -- optimizer -------------------------------------------------------------------------------
    def init_optimizer(self, kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),),
                       force_init=False):
        """Choose the store (module/updates.py) and make the optimizer with
        rescale_grad = 1 / (batch size x workers of a dist_sync store) unless given."""
        from .. import optimizer as opt
        if not (self.binded and self.params_initialized):
            raise RuntimeError("Module.init_optimizer: call bind() and init_params() first")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring...")
            return
        if self._params_dirty:
            self._sync_params_from_devices()
        kvstore, update_on_kvstore = create_kvstore(kvstore, len(self._context), self._arg_params)
        batch_size = self._exec_group.batch_size
        if kvstore is not None and "dist" in kvstore.type and "_sync" in kvstore.type:
            batch_size *= kvstore.num_workers
        rescale_grad = 1.0 / batch_size
        names = self._exec_group.param_names
        n_dev = len(self._context)
        idx2name = dict(enumerate(names)) if update_on_kvstore else \
            {i * n_dev + k: n for k in range(n_dev) for i, n in enumerate(names)}
        if isinstance(optimizer, str):
            optimizer_params = dict(optimizer_params)
            optimizer_params.setdefault("rescale_grad", rescale_grad)
            optimizer = opt.create(optimizer, sym=self.symbol, param_idx2name=idx2name, **optimizer_params)
        else:
            if not isinstance(optimizer, opt.Optimizer):
                raise TypeError(f"Module.init_optimizer: optimizer must be a name or an Optimizer, "
                                f"got {type(optimizer).__name__}")
            if optimizer.rescale_grad != rescale_grad:
                warnings.warn("Optimizer created manually outside Module but rescale_grad is not normalized to "
                              f"1.0/batch_size/num_workers ({optimizer.rescale_grad} vs. {rescale_grad}). "
                              "Is this intended?", stacklevel=2)
            if not optimizer.idx2name:
                optimizer.idx2name = dict(idx2name)
                optimizer.set_wd_mult({})
        _apply_symbol_mults(optimizer, self._symbol)
        self._optimizer = optimizer
        self._kvstore = kvstore
        self._update_on_kvstore = update_on_kvstore
        self._updater = None
        if kvstore is not None:
            if self._compression_params:
                kvstore.set_gradient_compression(self._compression_params)
            if update_on_kvstore:
                kvstore.set_optimizer(self._optimizer)
            initialize_kvstore(kvstore, self._exec_group.param_arrays, self._arg_params, self._param_names,
                               update_on_kvstore)
        if not update_on_kvstore:
            self._updater = opt.get_updater(optimizer)
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    def borrow_optimizer(self, shared_module):
        """Use shared_module's optimizer, store and updater (bucketing: one optimizer for all)."""
        if not shared_module.optimizer_initialized:
            raise RuntimeError("Module.borrow_optimizer: the shared module has no optimizer yet")
        self._optimizer = shared_module._optimizer
        self._kvstore = shared_module._kvstore
        self._update_on_kvstore = shared_module._update_on_kvstore
        self._updater = shared_module._updater
        self.optimizer_initialized = True

    def save_optimizer_states(self, fname):
        from ..gluon.updater_states import save_updater_states
        if not self.optimizer_initialized:
            raise RuntimeError("Module.save_optimizer_states: call init_optimizer() first")
        if self._update_on_kvstore:
            self._kvstore.save_optimizer_states(fname, dump_optimizer=True)
        else:
            save_updater_states(fname, self._optimizer, [self._updater], dump_optimizer=True)

    def load_optimizer_states(self, fname):
        from ..gluon.updater_states import load_updater_states
        if not self.optimizer_initialized:
            raise RuntimeError("Module.load_optimizer_states: call init_optimizer() first")
        if self._update_on_kvstore:
            self._kvstore.load_optimizer_states(fname)
        else:
            # index i*num_device+k lives on device k; its state goes back there
            load_updater_states(fname, self._optimizer, [self._updater], [self._context[0]])
            n_dev = len(self._context)
            if n_dev > 1:
                for idx, st in list(self._updater.states.items()):
                    self._updater.states[idx] = _to_context(st, self._context[idx % n_dev])

    # -- computations ----------------------------------------------------------------------------
    def forward(self, data_batch, is_train=None):
        """Run a batch; a batch of other shapes than the bound ones re-binds to them first (the
        parameters are kept)."""
        from ..io.base import DataDesc
        if not (self.binded and self.params_initialized):
            raise RuntimeError("Module.forward: call bind() and init_params() first")
        current = tuple(tuple(d.shape) for d in self._data_shapes)
        new = tuple(tuple(d.shape) for d in data_batch.data)
        if current != new:
            if getattr(data_batch, "provide_data", None):
                new_dshape = data_batch.provide_data
            else:
                new_dshape = [DataDesc(d.name, s, d.dtype, d.layout) for d, s in zip(self._data_shapes, new)]
            if getattr(data_batch, "provide_label", None):
                new_lshape = data_batch.provide_label
            elif getattr(data_batch, "label", None) and self._label_shapes:
                new_lshape = [DataDesc(d.name, tuple(lab.shape), d.dtype, d.layout)
                              for d, lab in zip(self._label_shapes, data_batch.label)]
            else:
                new_lshape = None
            self.reshape(new_dshape, new_lshape)
        self._exec_group.forward(data_batch, is_train)

    def backward(self, out_grads=None):
        if not (self.binded and self.params_initialized):
            raise RuntimeError("Module.backward: call bind() and init_params() first")
        self._exec_group.backward(out_grads=out_grads)

    def update(self):
        """Apply the optimizer to the gradients of the last backward (module/updates.py)."""
        if not (self.binded and self.params_initialized and self.optimizer_initialized):
            raise RuntimeError("Module.update: call bind(), init_params() and init_optimizer() first")
        self._params_dirty = True
        group = self._exec_group
        if self._update_on_kvstore:
            update_params_on_kvstore(group.param_arrays, group.grad_arrays, self._kvstore, group.param_names)
        else:
            update_params(group.param_arrays, group.grad_arrays, updater=self._updater,
                          num_device=len(self._context), kvstore=self._kvstore, param_names=group.param_names)

    def get_outputs(self, merge_multi_context=True):
        self._check_ready("get_outputs")
        return self._exec_group.get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        self._check_ready("get_input_grads")
        if not self.inputs_need_grad:
            raise GraphcError("Module.get_input_grads: bind with inputs_need_grad=True")
        return self._exec_group.get_input_grads(merge_multi_context=merge_multi_context)

    def get_states(self, merge_multi_context=True):
        self._check_ready("get_states")
        return self._exec_group.get_states(merge_multi_context=merge_multi_context)

    def set_states(self, states=None, value=None):
        self._check_ready("set_states")
        self._exec_group.set_states(states, value)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        self._exec_group.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon):
        """Monitor every executor of this module (mx.mon.Monitor)."""
        if not self.binded:
            raise RuntimeError("install_monitor: call bind first")
        for exe in self._exec_group.execs:
            mon.install(exe)


def _attr_dict(symbol):
    """name -> attributes of the symbol's variables (for InitDesc: __init__, __lr_mult__...)."""
    if hasattr(symbol, "attr_dict"):
        return symbol.attr_dict()
    out = {}
    for node in symbol._graph().nodes:
        if node.is_var:
            attrs = {k: str(v) for k, v in (getattr(node, "hints", None) or {}).items()}
            if attrs:
                out[node.name] = attrs
    return out


def _apply_symbol_mults(optimizer, symbol):
    """__lr_mult__/__wd_mult__ set on the symbol's variables scale those parameters (MXNet reads
    them from `sym` when it makes the optimizer)."""
    lr, wd = {}, {}
    args = set(symbol.list_arguments())     # (an operator's own lr_mult reaches it via its weights)
    for name, attrs in _attr_dict(symbol).items():
        if name not in args:
            continue
        if "__lr_mult__" in attrs:
            lr[name] = float(attrs["__lr_mult__"])
        if "__wd_mult__" in attrs:
            wd[name] = float(attrs["__wd_mult__"])
    if lr:
        optimizer.lr_mult.update(lr)
    if wd:
        optimizer.wd_mult.update(wd)


def _to_context(state, ctx):
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        return type(state)(_to_context(s, ctx) for s in state)
    return state.as_in_context(ctx)
