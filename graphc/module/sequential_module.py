"""SequentialModule: modules chained, each one's outputs the next one's data (MXNet 1.9.1's
mx.mod.SequentialModule). add(module, take_labels=True) gives a module the batch's labels (a
loss at the end); auto_wiring=True renames the incoming outputs to the module's data names."""
from __future__ import annotations

import copy
import logging

from .base_module import BaseModule


class SequentialModule(BaseModule):
    """A chain of modules trained as one: forward runs them in order, backward in reverse,
    handing each the input gradients of the one after it."""

    META_TAKE_LABELS = "take_labels"
    META_AUTO_WIRING = "auto_wiring"

    def __init__(self, logger=logging):
        super().__init__(logger=logger)
        self._modules = []
        self._metas = []
        self._label_shapes = None
        self._data_shapes = None
        self._meta_keys = {self.META_TAKE_LABELS, self.META_AUTO_WIRING}

    def add(self, module, **kwargs):
        """Append `module` (meta flags take_labels / auto_wiring); returns self for chaining.
        The chain has to be bound and initialised again afterwards."""
        unknown = sorted(set(kwargs) - self._meta_keys)
        if unknown:
            raise AssertionError(f'Unknown meta "{unknown[0]}", a typo? (known: {sorted(self._meta_keys)})')
        self._modules.append(module)
        self._metas.append(kwargs)
        self.binded = False
        self.params_initialized = False
        self.optimizer_initialized = False
        return self

    def _takes_labels(self, i):
        return bool(self._metas[i].get(self.META_TAKE_LABELS, False))

    def _check(self, what, optimizer=False):
        if not (self.binded and self.params_initialized) or (optimizer and not self.optimizer_initialized):
            raise AssertionError(f"SequentialModule.{what}: bind, init_params"
                                 f"{' and init_optimizer' if optimizer else ''} first")

    # -- shapes and names -------------------------------------------------------------------------
    @property
    def data_names(self):
        return self._modules[0].data_names if self._modules else []

    @property
    def output_names(self):
        return self._modules[-1].output_names if self._modules else []

    @property
    def data_shapes(self):
        assert self.binded, "SequentialModule.data_shapes: call bind first"
        return self._modules[0].data_shapes

    @property
    def label_shapes(self):
        assert self.binded, "SequentialModule.label_shapes: call bind first"
        return self._label_shapes

    @property
    def output_shapes(self):
        assert self.binded, "SequentialModule.output_shapes: call bind first"
        return self._modules[-1].output_shapes

    # -- parameters -------------------------------------------------------------------------------
    def get_params(self):
        self._check("get_params")
        arg_params, aux_params = {}, {}
        for module in self._modules:
            arg, aux = module.get_params()
            arg_params.update(arg)
            aux_params.update(aux)
        return arg_params, aux_params

    def init_params(self, initializer=None, arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        """Initialise every module's parameters; parameter names must be unique over the chain."""
        if self.params_initialized and not force_init:
            return
        assert self.binded, "call bind before initializing the parameters"
        if initializer is None:
            from ..initializer import Uniform
            initializer = Uniform(0.01)
        for module in self._modules:
            module.init_params(initializer=initializer, arg_params=arg_params, aux_params=aux_params,
                               allow_missing=allow_missing, force_init=force_init, allow_extra=allow_extra)
        owners = ({}, {})
        for i, module in enumerate(self._modules):
            for known, names in zip(owners, module.get_params()):
                for name in names:
                    if name in known:
                        j = known[name]
                        raise AssertionError(
                            f'Duplicated parameter names: name "{name}" in layer {i} ({type(module)}) is already '
                            f"used in layer {j} ({type(self._modules[j])}).")
                    known[name] = i
        self.params_initialized = True

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        # each module receives the whole dict and takes its own names from it
        self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=allow_missing, force_init=force_init, allow_extra=True)

    # -- binding ----------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write"):
        """Bind each module on the output shapes of the one before; every module after the first
        needs its input gradients when training."""
        if self.binded and not force_rebind:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if inputs_need_grad and not for_training:
            raise AssertionError("SequentialModule.bind: inputs_need_grad needs for_training=True")
        if shared_module is not None:
            raise AssertionError("Shared module is not supported")
        if not self._modules:
            raise AssertionError("Attempting to bind an empty SequentialModule")
        self.binded = True
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._label_shapes = label_shapes
        shapes = data_shapes
        any_labels = False
        for i, module in enumerate(self._modules):
            labels = label_shapes if self._takes_labels(i) else None
            any_labels = any_labels or self._takes_labels(i)
            if self._metas[i].get(self.META_AUTO_WIRING, False):
                names = module.data_names
                if len(names) != len(shapes):
                    raise AssertionError(f"SequentialModule: layer {i} takes {len(names)} inputs {names}, "
                                         f"the layer before gives {len(shapes)}")
                shapes = [(name, _shape_of(s)) for name, s in zip(names, shapes)]
            module.bind(data_shapes=shapes, label_shapes=labels, for_training=for_training,
                        inputs_need_grad=bool(inputs_need_grad or (for_training and i > 0)),
                        force_rebind=force_rebind, shared_module=None, grad_req=grad_req)
            shapes = module.output_shapes
        if not any_labels:
            self._label_shapes = None

    def init_optimizer(self, kvstore="local", optimizer="sgd", optimizer_params=(("learning_rate", 0.01),),
                       force_init=False):
        self._check("init_optimizer")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring.")
            return
        for module in self._modules:
            module.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params,
                                  force_init=force_init)
        self.optimizer_initialized = True

    # -- computation ------------------------------------------------------------------------------
    def forward(self, data_batch, is_train=None):
        self._check("forward")
        batch = copy.copy(data_batch)
        for i, module in enumerate(self._modules):
            module.forward(batch, is_train=is_train)
            if i + 1 == len(self._modules):
                break
            batch.data = module.get_outputs()
            if hasattr(batch, "provide_data"):
                names = [x[0] for x in module.output_shapes]
                batch.provide_data = [(name, x.shape) for name, x in zip(names, batch.data)]

    def backward(self, out_grads=None):
        self._check("backward")
        for i in reversed(range(len(self._modules))):
            self._modules[i].backward(out_grads=out_grads)
            if i == 0:
                break
            out_grads = self._modules[i].get_input_grads()

    def update(self):
        self._check("update", optimizer=True)
        for module in self._modules:
            module.update()

    def get_outputs(self, merge_multi_context=True):
        self._check("get_outputs")
        return self._modules[-1].get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        self._check("get_input_grads")
        if not self.inputs_need_grad:
            raise AssertionError("SequentialModule.get_input_grads: bind with inputs_need_grad=True")
        return self._modules[0].get_input_grads(merge_multi_context=merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """Only the modules that take labels update the metric."""
        self._check("update_metric")
        for i, module in enumerate(self._modules):
            if self._takes_labels(i):
                module.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon):
        assert self.binded, "SequentialModule.install_monitor: call bind first"
        for module in self._modules:
            module.install_monitor(mon)


def _shape_of(desc):
    return desc[1] if isinstance(desc, (tuple, list)) else desc.shape
