"""Parameter, Constant and ParameterDict: the learnable state of Gluon blocks (MXNet 1.x).

A Parameter holds one copy of its data (and gradient) per device it was initialized on.
Its shape may be partly unknown (0 dims) until the first forward pass tells the block the input
shape; initialization then waits (`allow_deferred_init`) and finishes in `_finish_deferred_init`.

While a HybridBlock is being traced (graphc.symbol.current_trace() is not None), `data()` and
`var()` hand out the trace's symbolic variable for the parameter instead of the array, so the same
block code builds a graph. This module never imports a backend.
"""
from __future__ import annotations

import re
import warnings
from collections import OrderedDict

import numpy as np

from .. import autograd
from ..device import Context, as_context, cpu, current_context
from ..ops.dtypes import canonical
from ..ops.errors import GraphcError
from . import init as initializer
from .gpu_values import upload_into, zero_on_device
from .utils import shape_is_known, _indent

__all__ = ["DeferredInitializationError", "Parameter", "Constant", "ParameterDict", "tensor_types"]


class DeferredInitializationError(GraphcError):
    """A parameter's data was asked for before its deferred initialization could finish."""


from ..symbol import current_trace as _current_trace  # noqa: E402  (hot path: no per-call import)


def _nd():
    from .. import ndarray
    return ndarray


def tensor_types():
    from ..ndarray import NDArray
    from ..ops.builder import Handle
    return (NDArray, Handle)


def _dtype_name(dtype):
    return np.dtype(canonical(dtype)).name if dtype is not None else None


class Parameter:
    """A learnable (or auxiliary) array of a Block, possibly copied to several devices.

    Parameters follow MXNet 1.x: name, grad_req ('write' | 'add' | 'null'), shape (0 = unknown),
    dtype, lr_mult, wd_mult, init (an Initializer or its name), allow_deferred_init,
    differentiable (False forces grad_req='null', e.g. BatchNorm running stats), stype, grad_stype.
    """

    def __init__(self, name, grad_req="write", shape=None, dtype="float32", lr_mult=1.0, wd_mult=1.0,
                 init=None, allow_deferred_init=False, differentiable=True, stype="default",
                 grad_stype="default"):
        self._var = None
        self._data = None
        self._grad = None
        self._ctx_list = None
        self._ctx_map = None
        self._trainer = None
        self._deferred_init = ()
        self._differentiable = differentiable
        self._allow_deferred_init = allow_deferred_init
        self._grad_req = None
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        self._shape = tuple(0 if d is None else int(d) for d in shape) if shape is not None else None
        self.name = name
        self._dtype = dtype
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult
        self.grad_req = grad_req
        self.init = init
        valid = ("default", "row_sparse", "csr")
        # MXNet asserts these (AssertionError), and its tests rely on it
        assert stype in valid, f"Invalid stype for Parameter {name!r}: {stype!r}. Valid stypes are {valid}"
        assert grad_stype in valid, f"Invalid grad_stype for Parameter {name!r}: {grad_stype!r}. Valid stypes " \
                                    f"are {valid}"
        if grad_stype == "csr":
            raise GraphcError(f"Parameter {name!r}: grad_stype='csr' is not supported (MXNet's Gluon produces "
                              "row_sparse gradients only); use 'row_sparse' or 'default'")
        # stype='row_sparse' weights are held as RowSparseNDArrays storing every row (as MXNet's after
        # initialization), so optimizers update them in place; row_sparse_data gives the rows asked
        # for. grad_stype='row_sparse' makes the gradient buffer a RowSparseNDArray
        self._stype = stype
        self._grad_stype = grad_stype

    def __repr__(self):
        return f"Parameter {self.name} (shape={self.shape}, dtype={self.dtype})"

    # -- attributes ---------------------------------------------------------------------------
    @property
    def grad_req(self):
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req):
        if req not in ("write", "add", "null"):
            raise ValueError(f"grad_req must be one of 'write', 'add', or 'null', but got {req!r}")
        if not self._differentiable:
            req = "null"
        if self._grad_req == req:
            return
        self._grad_req = req
        if req == "null" and self._grad is not None:
            self._grad = None
            for d in self._data or []:
                d._grad, d._grad_req, d._entry = None, "null", None
        elif self._data is not None:
            self._init_grad()

    @property
    def dtype(self):
        return self._dtype

    @dtype.setter
    def dtype(self, dtype):
        self.cast(dtype)

    @property
    def shape(self):
        return self._shape

    @shape.setter
    def shape(self, new_shape):
        if new_shape is None:
            return
        new_shape = tuple(0 if d is None else int(d) for d in new_shape)
        if self._shape is None:
            self._shape = new_shape
            return
        if len(self._shape) != len(new_shape) or \
                not all(j in (-1, 0, i) for i, j in zip(new_shape, self._shape)):
            raise ValueError(f"Parameter '{self.name}': expected shape {self._shape} is incompatible with "
                             f"given shape {new_shape}")
        self._shape = new_shape

    @property
    def stype(self):
        return self._stype

    # -- access -------------------------------------------------------------------------------
    def _check_and_get(self, arr_list, ctx):
        if arr_list is not None:
            if ctx is list:
                return arr_list
            if ctx is None:
                if len(arr_list) == 1:
                    return arr_list[0]
                ctx = current_context()
            ctx = as_context(ctx)
            ctx_list = self._ctx_map[ctx.device_typeid & 1]
            if ctx.device_id < len(ctx_list):
                idx = ctx_list[ctx.device_id]
                if idx is not None:
                    return arr_list[idx]
            raise RuntimeError(f"Parameter '{self.name}' was not initialized on context {ctx}. "
                               f"It was only initialized on {self._ctx_list}.")
        if self._deferred_init:
            raise DeferredInitializationError(
                f"Parameter '{self.name}' has not been initialized yet because initialization was deferred. "
                "Actual initialization happens during the first forward pass. Please pass one batch of data "
                "through the network before accessing Parameters. You can also avoid deferred initialization "
                "by specifying in_units, num_features, etc., for network layers.")
        raise RuntimeError(
            f"Parameter '{self.name}' has not been initialized. Note that you should initialize parameters "
            "and create Trainer with Block.collect_params() instead of Block.params because the later does "
            "not include Parameters of nested child Blocks")

    def data(self, ctx=None):
        """This parameter's array on `ctx` (the only copy when ctx is None); while tracing a
        HybridBlock, the trace's symbolic variable for it."""
        trace = _current_trace()
        if trace is not None:
            return trace.param_var(self)
        if self._stype != "default":
            raise RuntimeError(f"Cannot return a copy of Parameter '{self.name}' on ctx {ctx} via data() because "
                               f"its storage type is {self._stype}. Please use row_sparse_data() instead.")
        return self._check_and_get(self._data, ctx)

    def list_data(self):
        if self._stype != "default":
            raise RuntimeError(f"Cannot return copies of Parameter '{self.name}' on all contexts via list_data() "
                               f"because its storage type is {self._stype}. Please use row_sparse_data() instead.")
        return self._check_and_get(self._data, list)

    def grad(self, ctx=None):
        if self._data is not None and self._grad is None:
            raise RuntimeError(f"Cannot get gradient array for Parameter '{self.name}' because grad_req='null'")
        return self._check_and_get(self._grad, ctx)

    def list_grad(self):
        if self._data is not None and self._grad is None:
            raise RuntimeError(f"Cannot get gradient array for Parameter '{self.name}' because grad_req='null'")
        return self._check_and_get(self._grad, list)

    def list_ctx(self):
        if self._data is None:
            if self._deferred_init:
                return self._deferred_init[1]
            raise RuntimeError(f"Parameter '{self.name}' has not been initialized")
        return self._ctx_list

    def row_sparse_data(self, row_id):
        """The rows `row_id` of the weight on row_id's device, as a RowSparseNDArray carrying the
        parameter's gradient, so backward through it reaches the Trainer (sparse_arrays.PulledRows).
        As in MXNet, only once a Trainer holds the parameter (MXNet pulls the rows from the
        Trainer's kvstore; graphc's copy on each device is already whole, so they are read from it)."""
        if self._stype != "row_sparse":
            raise RuntimeError(f"Cannot return copies of Parameter '{self.name}' on all contexts via "
                               f"row_sparse_data() because its storage type is {self._stype}. Please use data() "
                               "instead.")
        if self._trainer is None:
            raise RuntimeError(f"Cannot get row_sparse data for Parameter '{self.name}' when no Trainer is "
                               "created with it.")
        weight = self._check_and_get(self._data, row_id.context)
        rows = row_id.asnumpy().astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= weight.shape[0]):
            raise IndexError(f"row_sparse_data: Parameter '{self.name}' has rows [0, {weight.shape[0]}), "
                             f"row_id asks for {sorted(set(rows.tolist()))}")
        from ..ndarray.sparse_arrays import PulledRows
        return PulledRows(weight, rows)

    def list_row_sparse_data(self, row_id):
        return [self.row_sparse_data(row_id.as_in_context(c)) for c in self.list_ctx()]

    def var(self):
        """The symbolic variable for this parameter: the current trace's while tracing, else a
        free `graphc.sym.var` carrying the shape/dtype/lr_mult/wd_mult/init hints."""
        trace = _current_trace()
        if trace is not None:
            return trace.param_var(self)
        if self._var is None:
            from .. import symbol
            init = self.init.dumps() if isinstance(self.init, initializer.Initializer) else self.init
            self._var = symbol.var(self.name, shape=self.shape, dtype=self.dtype, lr_mult=self.lr_mult,
                                   wd_mult=self.wd_mult, init=init, stype=self._stype)
        return self._var

    # -- initialization -----------------------------------------------------------------------
    def initialize(self, init=None, ctx=None, default_init=initializer.Uniform(), force_reinit=False):
        """Create the data on each device of `ctx` (default: the current device), filled by this
        parameter's own `init`, else `init`, else `default_init`. With an unknown shape and
        allow_deferred_init, waits for the shape."""
        if self._data is not None and not force_reinit:
            warnings.warn(f"Parameter '{self.name}' is already initialized, ignoring. "
                          "Set force_reinit=True to re-initialize.", stacklevel=2)
            return
        self._data = self._grad = None
        if ctx is None:
            ctx = [current_context()]
        if isinstance(ctx, (Context, str)):
            ctx = [ctx]
        ctx = [as_context(c) for c in ctx]
        if init is None:
            init = default_init if self.init is None else self.init
        if not shape_is_known(self.shape):
            if self._allow_deferred_init:
                self._deferred_init = (init, ctx, default_init, None)
                return
            raise ValueError(f"Cannot initialize Parameter '{self.name}' because it has invalid shape: "
                             f"{self.shape}.")
        self._deferred_init = (init, ctx, default_init, None)
        self._finish_deferred_init()

    def _finish_deferred_init(self):
        """Initialize now that the shape is known (called by blocks after shape inference)."""
        if not self._deferred_init:
            return
        init, ctx, default_init, data = self._deferred_init
        if not shape_is_known(self.shape):
            raise ValueError(f"Cannot initialize Parameter '{self.name}' because it has invalid shape: "
                             f"{self.shape}. Please specify in_units, in_channels, etc for `Block`s.")
        self._deferred_init = ()
        nd = _nd()
        with autograd.pause():
            if data is None:
                data = nd.zeros(self.shape, ctx=cpu(), dtype=self.dtype)
                initializer.create(default_init)(initializer.InitDesc(self.name, {"__init__": init}), data)
            self._init_impl(data, ctx)

    def _init_impl(self, data, ctx_list):
        self._ctx_list = list(ctx_list)
        self._ctx_map = [[], []]
        for i, ctx in enumerate(self._ctx_list):
            dev_list = self._ctx_map[ctx.device_typeid & 1]
            while len(dev_list) <= ctx.device_id:
                dev_list.append(None)
            dev_list[ctx.device_id] = i
        nd = _nd()
        src = data.asnumpy() if isinstance(data, nd.NDArray) else np.asarray(data)
        src = src.astype(canonical(self.dtype), copy=False)
        self._data = [self._held(src.copy(), ctx) for ctx in self._ctx_list]
        self._init_grad()

    def _held(self, values, ctx):
        """The array that holds `values` on ctx: dense, or for stype='row_sparse' a
        RowSparseNDArray storing every row (its values are writable in place)."""
        nd = _nd()
        if self._stype != "row_sparse":
            return nd.NDArray(values, ctx)
        rows = np.arange(values.shape[0], dtype=np.int64)
        return nd.sparse.RowSparseNDArray(values, rows, values.shape, ctx)

    def _init_grad(self):
        if self.grad_req == "null":
            self._grad = None
            return
        for d in self._data:
            d.attach_grad(self.grad_req, stype=self._grad_stype)
        self._grad = [d._grad for d in self._data]

    def _reduce(self):
        """One CPU copy of the data (the mean over devices)."""
        nd = _nd()
        block = self._check_and_get(self._data, list)
        if len(block) == 1:
            return nd.NDArray(block[0].asnumpy(), cpu())      # (a GPU copy is downloaded, not moved)
        values = [d.asnumpy() for d in block]
        mean = sum(values) / len(block)
        return nd.NDArray(mean.astype(values[0].dtype), cpu())

    def _load_init(self, data, ctx, cast_dtype=False, dtype_source="current"):
        """Initialize from loaded data (numpy or NDArray), checking shape and dtype."""
        nd = _nd()
        if isinstance(data, nd.NDArray):
            data = data.asnumpy()
        data = np.asarray(data)
        if self.shape:
            if len(self.shape) != data.ndim or any(s not in (0, d) for s, d in zip(self.shape, data.shape)):
                raise ValueError(f"Failed loading Parameter '{self.name}' from saved params: shape incompatible "
                                 f"expected {self.shape} vs saved {data.shape}")
            self.shape = tuple(s if s != 0 else d for s, d in zip(self.shape, data.shape))
        else:   # no shape known (a -symbol.json without __shape__ hints): the saved array has it
            self.shape = data.shape
        if self.dtype:
            want = np.dtype(canonical(self.dtype))
            if want != data.dtype:
                if cast_dtype and dtype_source == "current":
                    data = data.astype(want)
                elif cast_dtype and dtype_source == "saved":
                    self.cast(data.dtype)   # held arrays too, as MXNet's dtype setter does
                else:
                    raise ValueError(f"Failed loading Parameter '{self.name}' from saved params: dtype "
                                     f"incompatible expected {want.name} vs saved {data.dtype.name}. Set "
                                     "cast_dtype=True to cast the dtype of saved params.")
        if isinstance(ctx, (Context, str)):
            ctx = [ctx]
        if self._data is None:
            if self._deferred_init:
                if ctx is not None and set(as_context(c) for c in ctx) != set(self._deferred_init[1]):
                    raise ValueError(f"Failed to load Parameter '{self.name}' on {ctx} because it was previous "
                                     f"initialized on {self.list_ctx()}.")
                ctx = self._deferred_init[1]
            elif ctx is None:
                ctx = [cpu()]
            ctx = [as_context(c) for c in ctx]
            self._init_impl(data, ctx)
        else:
            if ctx is not None and set(as_context(c) for c in ctx) != set(self.list_ctx()):
                raise ValueError(f"Failed to load Parameter '{self.name}' on {ctx} because it was previous "
                                 f"initialized on {self.list_ctx()}.")
            self.set_data(data)
        self._deferred_init = ()

    # -- mutation -----------------------------------------------------------------------------
    def set_data(self, data):
        """Overwrite the data on every device (in place: gradients stay attached)."""
        nd = _nd()
        self.shape = tuple(data.shape)
        if self._data is None:
            if not self._deferred_init:
                raise RuntimeError(f"Parameter '{self.name}' has not been initialized")
            self._deferred_init = self._deferred_init[:3] + (data,)
            return
        trainer = self._trainer
        if getattr(trainer, "_kv_initialized", False) and getattr(trainer, "_update_on_kvstore", False):
            trainer._reset_kvstore()    # the store's copy is stale: re-broadcast on the next step
        if isinstance(data, nd.NDArray):
            src = data.asnumpy() if data.context.device_type == "gpu" else data._data
        else:
            src = np.asarray(data)
        for arr in self._check_and_get(self._data, list):
            if arr.context.device_type == "gpu" and arr.stype == "default":
                upload_into(arr, src)
            else:
                arr._data[...] = src

    def zero_grad(self):
        """Set the gradient to zero on every device (needed with grad_req='add')."""
        if self._grad is None:
            return
        for g in self._grad:
            if g.stype != "default":
                g[:] = 0        # a row_sparse gradient: no rows stored
            elif g.context.device_type == "gpu":
                zero_on_device(g)      # a memset on the device (gpu_values.py)
            else:
                g._data[...] = 0

    def reset_ctx(self, ctx):
        """Move the data (and gradients) to other devices."""
        if ctx is None:
            ctx = [current_context()]
        if isinstance(ctx, (Context, str)):
            ctx = [ctx]
        ctx = [as_context(c) for c in ctx]
        if self._data:
            data = self._reduce()
            with autograd.pause():
                self._init_impl(data, ctx)
        elif self._deferred_init:
            init, _, default_init, data = self._deferred_init
            self._deferred_init = (init, ctx, default_init, data)
        else:
            raise ValueError(f"Cannot reset context for Parameter '{self.name}' because it has not been initialized.")

    def cast(self, dtype):
        """Change the dtype of the data and gradients (optimizer state is not touched)."""
        self._dtype = dtype
        if self._data is None:
            return
        target = np.dtype(canonical(dtype))
        self._data = [self._held(d.asnumpy().astype(target, copy=False), d.context) for d in self._data]
        self._init_grad()

    def _set_trainer(self, trainer):
        if self._trainer is not None and trainer is not None and self._trainer is not trainer and \
                (self._stype != "default" or getattr(self._trainer, "_update_on_kvstore", False)):
            raise RuntimeError(f"Failed to set the trainer for Parameter '{self.name}' because it was already "
                               "set. It is not allowed to set the trainer of a Parameter updated on kvstore "
                               "to multiple trainers.")
        self._trainer = trainer


class Constant(Parameter):
    """A parameter that never trains (grad_req='null'), initialized to `value`."""

    def __init__(self, name, value):
        nd = _nd()
        if not isinstance(value, nd.NDArray):
            value = nd.array(value)
        self.value = value
        super().__init__(name, grad_req="null", shape=value.shape, dtype=np.dtype(value.dtype).name,
                         init=initializer.Constant(value.asnumpy()))

    def __repr__(self):
        return f"Constant {self.name} (shape={self.shape}, dtype={self.dtype})"

    @property
    def grad_req(self):
        return "null"

    @grad_req.setter
    def grad_req(self, req):
        if req != "null":
            warnings.warn(f'Constant parameter "{self.name}" does not support grad_req other than "null", '
                          f'and new value "{req}" is ignored.', stacklevel=2)
        self._grad_req = "null"


class ParameterDict:
    """An ordered name -> Parameter map with a prefix; `get('weight')` finds or creates
    `<prefix>weight`, looking in `shared` first (parameter sharing between blocks)."""

    def __init__(self, prefix="", shared=None):
        self._prefix = prefix
        self._params = OrderedDict()
        self._shared = shared

    def __repr__(self):
        name = self._prefix + " " if self._prefix else ""
        content = "\n".join(_indent(f"  {v}", 2) for v in self.values())
        return f"{name}(\n{content}\n)"

    def __getitem__(self, key):
        return self._params[key]

    def __iter__(self):
        return iter(self._params)

    def __len__(self):
        return len(self._params)

    def __contains__(self, key):
        return key in self._params

    def items(self):
        return self._params.items()

    def keys(self):
        return self._params.keys()

    def values(self):
        return self._params.values()

    @property
    def prefix(self):
        return self._prefix

    def _get_impl(self, name):
        if name in self._params:
            return self._params[name]
        if self._shared is not None and name in self._shared._params:
            self._params[name] = self._shared._params[name]
            return self._shared._params[name]
        return None

    def get(self, name, **kwargs):
        """The parameter `prefix + name`, created with kwargs if new; for an existing one,
        kwargs must agree (unknown shape dims are filled in)."""
        name = self._prefix + name
        param = self._get_impl(name)
        if param is None:
            param = Parameter(name, **kwargs)
            self._params[name] = param
            return param
        for k, v in kwargs.items():
            if not hasattr(param, k) or getattr(param, k) is None:
                setattr(param, k, v)
                continue
            existing = getattr(param, k)
            if k == "shape" and v is not None:
                v = (v,) if isinstance(v, int) else tuple(v)
                if len(v) == len(existing):
                    merged, matched = [], True
                    for d1, d2 in zip(v, existing):
                        if d1 != d2 and d1 > 0 and d2 > 0:
                            matched = False
                            break
                        merged.append(d2 if d1 in (0, -1) else d1)
                    if matched:
                        param._shape = tuple(merged)
                        continue
            elif k == "dtype" and _dtype_name(v) == _dtype_name(existing):
                continue
            if v is not None and v != existing:
                raise ValueError(f"Cannot retrieve Parameter '{name}' because desired attribute does not match "
                                 f"with stored for attribute '{k}': desired '{v}' vs stored '{existing}'.")
        return param

    def get_constant(self, name, value=None):
        name = self._prefix + name
        param = self._get_impl(name)
        if param is None:
            if value is None:
                raise KeyError(f"No constant named '{name}'. Please specify value if you want to create a new constant.")
            param = Constant(name, value)
            self._params[name] = param
        elif value is not None:
            if not isinstance(param, Constant):
                raise TypeError(f"Parameter '{name}' already exists but it is not a constant.")
            arr = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
            if param.shape != arr.shape or not (param.value.asnumpy() == arr).all():
                raise ValueError(f"Constant '{name}' already exists but it's value doesn't match new value")
        return param

    def update(self, other):
        """Copy all of `other` in; the same name must mean the same Parameter object."""
        for k, v in other.items():
            if k in self._params and self._params[k] is not v:
                raise ValueError(f"Cannot update self with other because they have different Parameters with "
                                 f"the same name '{k}'")
        for k, v in other.items():
            self._params[k] = v

    def initialize(self, init=initializer.Uniform(), ctx=None, verbose=False, force_reinit=False):
        """Initialize every parameter: `init` is the default for those without their own."""
        if verbose and hasattr(init, "set_verbosity"):
            init.set_verbosity(verbose=verbose)
        for v in self.values():
            v.initialize(None, ctx, init, force_reinit=force_reinit)

    def zero_grad(self):
        for v in self.values():
            v.zero_grad()

    def reset_ctx(self, ctx):
        for v in self.values():
            v.reset_ctx(ctx)

    def list_ctx(self):
        s = []
        for v in self.values():
            for c in v.list_ctx():
                if c not in s:
                    s.append(c)
        return s

    def setattr(self, name, value):
        """Set one attribute on every parameter: `params.setattr('grad_req', 'null')`."""
        for v in self.values():
            setattr(v, name, value)

    def select(self, pattern):
        """A new ParameterDict with the parameters whose names match the regex (re.match)."""
        prog = re.compile(pattern)
        ret = ParameterDict(self._prefix)
        ret.update({k: v for k, v in self.items() if prog.match(k)})
        return ret

    def save(self, filename, strip_prefix=""):
        """Write all parameters to an MXNet .params file, names without `strip_prefix`."""
        from ..formats.mxnet_params import save_params
        arrays = {}
        for param in self.values():
            if not param.name.startswith(strip_prefix):
                raise ValueError(
                    f"Prefix '{strip_prefix}' is to be striped before saving, but Parameter's name "
                    f"'{param.name}' does not start with '{strip_prefix}'. this may be due to your Block shares "
                    "parameters from other Blocks or you forgot to use 'with name_scope()' when creating child blocks.")
            value = param._reduce()
            if param.stype == "row_sparse":     # written as a row_sparse record, as MXNet's
                value = _nd().sparse.saveable(value.tostype("row_sparse"))
            else:
                value = value.asnumpy()
            arrays[param.name[len(strip_prefix):]] = value
        save_params(filename, arrays)

    def load(self, filename, ctx=None, allow_missing=False, ignore_extra=False, restore_prefix="",
             cast_dtype=False, dtype_source="current"):
        from ..formats.mxnet_params import load_params
        if restore_prefix:
            for name in self.keys():
                if not name.startswith(restore_prefix):
                    raise ValueError(f"restore_prefix is '{restore_prefix}' but Parameters name '{name}' does not "
                                     "start with it")
        self.load_dict(load_params(filename), ctx, allow_missing, ignore_extra, restore_prefix, filename,
                       cast_dtype, dtype_source)

    def load_dict(self, param_dict, ctx=None, allow_missing=False, ignore_extra=False, restore_prefix="",
                  filename=None, cast_dtype=False, dtype_source="current"):
        loaded = [(k[4:] if k.startswith(("arg:", "aux:")) else k, v) for k, v in param_dict.items()]
        arg_dict = {restore_prefix + k: v for k, v in loaded}
        where = f"file '{filename}'" if filename else "dict"
        if not allow_missing:
            for name in self.keys():
                if name not in arg_dict:
                    raise ValueError(f"Parameter '{name}' is missing in {where}, which contains parameters: "
                                     f"{sorted(arg_dict)}. Please make sure source and target networks have the "
                                     "same prefix.")
        for name in arg_dict:
            if name not in self._params:
                if not ignore_extra:
                    raise ValueError(f"Parameter '{name}' loaded from {where} is not present in ParameterDict, "
                                     f"choices are: {list(self.keys())}. Set ignore_extra to True to ignore. "
                                     "Please make sure source and target networks have the same prefix.")
                continue
            self[name]._load_init(arg_dict[name], ctx, cast_dtype=cast_dtype, dtype_source=dtype_source)
