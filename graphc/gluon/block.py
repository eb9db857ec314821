"""Block and HybridBlock: Gluon's model containers, with MXNet 1.x naming and semantics.

Naming: a block made outside any name scope takes a global name `<classname><n>_` (dense0_);
inside a parent's `name_scope()` it is `<parent prefix><classname><k>_` with k counted per
parent. Parameters are named `<block prefix><name>` (dense0_weight). `save_parameters` instead
uses structural names, the attribute path through child blocks (`0.weight`, `body.1.bias`).

HybridBlock.hybridize() only records the wish; the first call with NDArrays hands the block to
graphc.gluon.cached_op.CachedOp, which traces `forward` with symbols and compiles the graph.
While tracing, the same `forward`/`hybrid_forward` code runs with F = graphc.symbol and the
parameters as symbolic variables. This module never imports a backend.
"""
from __future__ import annotations

import re
import threading
import warnings
from collections import OrderedDict

import numpy as np

from ..ops.errors import GraphcError
from .parameter import Parameter, ParameterDict, DeferredInitializationError, tensor_types
from .utils import HookHandle, _indent, shape_is_known
from ..ndarray import NDArray as _NDArray
from . import init as initializer

__all__ = ["Block", "HybridBlock", "NameManager", "Prefix"]


# -- naming ------------------------------------------------------------------------------------
class NameManager:
    """Hands out default names `<hint><n>` with one counter per hint. `with NameManager():`
    starts fresh counters (as `mx.name.NameManager()`); the previous manager comes back on exit."""

    _local = threading.local()

    def __init__(self):
        self._counter = {}
        self._old = None

    def get(self, name, hint):
        if name:
            return name
        n = self._counter.get(hint, 0)
        self._counter[hint] = n + 1
        return f"{hint}{n}"

    @classmethod
    def current(cls) -> "NameManager":
        cur = getattr(cls._local, "value", None)
        if cur is None:
            cur = cls._local.value = NameManager()
        return cur

    def __enter__(self):
        self._old = NameManager.current()
        NameManager._local.value = self
        return self

    def __exit__(self, *exc):
        NameManager._local.value = self._old


class Prefix(NameManager):
    """A NameManager that puts `prefix` before every name (`with mx.name.Prefix('net_'):`)."""

    def __init__(self, prefix):
        super().__init__()
        self._prefix = prefix

    def get(self, name, hint):
        return self._prefix + super().get(name, hint)


class _BlockScope:
    """The name scope of one block: counts its children's class names (dense0_, dense1_...)."""

    _local = threading.local()

    def __init__(self, block):
        self._block = block
        self._counter = {}
        self._old_scope = None

    @staticmethod
    def current():
        return getattr(_BlockScope._local, "value", None)

    @staticmethod
    def create(prefix, params, hint):
        """(full prefix, ParameterDict) for a new block, from the enclosing scope."""
        current = _BlockScope.current()
        if current is None:
            if prefix is None:
                prefix = NameManager.current().get(None, hint) + "_"
            params = ParameterDict(prefix) if params is None else ParameterDict(params.prefix, params)
            return prefix, params
        if prefix is None:
            count = current._counter.get(hint, 0)
            prefix = f"{hint}{count}_"
            current._counter[hint] = count + 1
        if params is None:
            parent = current._block.params
            params = ParameterDict(parent.prefix + prefix, parent._shared)
        else:
            params = ParameterDict(params.prefix, params)
        return current._block.prefix + prefix, params

    def __enter__(self):
        if self._block._empty_prefix:
            return self
        self._old_scope = _BlockScope.current()
        _BlockScope._local.value = self
        return self

    def __exit__(self, *exc):
        if self._block._empty_prefix:
            return
        _BlockScope._local.value = self._old_scope
        self._old_scope = None


class _OpNameScope(NameManager):
    """While a block's hybrid_forward builds symbols, operators left unnamed are called
    `<block prefix><op><k>` with k counted afresh for this call (net0_stage1_activation0), as
    MXNet names them under the block's name_scope(); a block made with prefix='' adds no scope,
    so its operators count on in the enclosing block's. Explicit names are kept as given (the
    layers give their full `<prefix>fwd`). Hand-built symbols take names from the current
    NameManager, a trace from its builder's `_name`: the scope serves both."""

    def __init__(self, builder, block):
        super().__init__()
        self._builder = builder
        self._prefix = None if block._empty_prefix else block.prefix
        self._saved_name = None

    def get(self, name, hint):
        if name:
            return name
        return self._prefix + super().get(None, hint)

    def _name(self, op):
        return self.get(None, op.lower().lstrip("_"))

    def __enter__(self):
        if self._prefix is not None:
            super().__enter__()
            self._saved_name = self._builder.__dict__.get("_name")
            self._builder._name = self._name      # an instance attribute shadows GraphBuilder._name
        return self

    def __exit__(self, *exc):
        if self._prefix is None:
            return
        if self._saved_name is None:
            del self._builder._name
        else:
            self._builder._name = self._saved_name
        super().__exit__(*exc)


def _flatten(args):
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(_flatten(a))
        else:
            out.append(a)
    return out


from ..symbol import current_trace as _current_trace  # noqa: E402  (hot path: no per-call import)
from ..ops.builder import Handle as _Handle  # noqa: E402


# -- Block -------------------------------------------------------------------------------------
class Block:
    """Base class of all layers and models. Subclasses create children and parameters in
    `__init__` (inside `with self.name_scope():`) and compute in `forward`."""

    def __init__(self, prefix=None, params=None):
        self._empty_prefix = prefix == ""
        self._prefix, self._params = _BlockScope.create(prefix, params, self._alias())
        self._name = self._prefix[:-1] if self._prefix.endswith("_") else self._prefix
        self._scope = _BlockScope(self)
        self._children = OrderedDict()
        self._reg_params = {}
        self._forward_hooks = OrderedDict()
        self._forward_pre_hooks = OrderedDict()

    def __repr__(self):
        modstr = "\n".join(f"  ({key}): {_indent(repr(block), 2)}"
                           for key, block in self.__dict__.items() if isinstance(block, Block))
        return f"{self.__class__.__name__}(\n{modstr}\n)"

    def __setattr__(self, name, value):
        """Registers Blocks as children and Parameters as this block's parameters."""
        if hasattr(self, name):
            existing = getattr(self, name)
            if isinstance(existing, (Parameter, Block)) and not isinstance(value, type(existing)):
                raise TypeError(f"Changing attribute type for {name} from {type(existing)} to {type(value)} "
                                "is not allowed.")
        if isinstance(value, Block):
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            if name in self._reg_params:
                raise ValueError(f"Overriding Parameter attribute {name} is not allowed. If you want to share "
                                 "parameters between blocks, please set 'params' at Block construction instead.")
            self._reg_params[name] = value
        super().__setattr__(name, value)

    def _check_container_with_block(self):
        children = set(self._children.values())

        def _find(data):
            if isinstance(data, (list, tuple)):
                return any(_find(d) for d in data)
            if isinstance(data, dict):
                return any(_find(d) for d in data.values())
            return isinstance(data, Block) and data not in children

        for k, v in self.__dict__.items():
            if isinstance(v, (list, tuple, dict)) and not (k.startswith("__") or k == "_children") and _find(v):
                warnings.warn(f'"{self.name}" is an unregistered container with Blocks. Note that Blocks inside '
                              "the list, tuple or dict will not be registered automatically. Make sure to "
                              "register them using register_child() or switching to nn.Sequential/"
                              "nn.HybridSequential instead.", stacklevel=3)

    def _alias(self):
        return self.__class__.__name__.lower()

    @property
    def prefix(self):
        return self._prefix

    @property
    def name(self):
        return self._name

    @property
    def params(self):
        """This block's own ParameterDict (children's parameters are not in it)."""
        return self._params

    def name_scope(self):
        """`with self.name_scope():` makes children and parameters take this block's prefix."""
        return self._scope

    def collect_params(self, select=None):
        """A ParameterDict of this block's and all descendants' parameters; `select` is a regex
        the names must match (re.match), e.g. '.*weight|.*bias'."""
        self._check_container_with_block()
        ret = ParameterDict(self._params.prefix)
        if not select:
            ret.update(self.params)
        else:
            pattern = re.compile(select)
            ret.update({name: value for name, value in self.params.items() if pattern.match(name)})
        for cld in self._children.values():
            ret.update(cld.collect_params(select=select))
        return ret

    def _collect_params_with_prefix(self, prefix=""):
        if prefix:
            prefix += "."
        ret = {prefix + key: val for key, val in self._reg_params.items()}
        for name, child in self._children.items():
            ret.update(child._collect_params_with_prefix(prefix + name))
        return ret

    def register_child(self, block, name=None):
        """Make `block` a child; `name` defaults to its index ('0', '1', ...)."""
        if name is None:
            name = str(len(self._children))
        self._children[name] = block

    def register_forward_pre_hook(self, hook):
        """hook(block, inputs) runs before forward; returns a handle with detach()."""
        handle = HookHandle()
        handle.attach(self._forward_pre_hooks, hook)
        return handle

    def register_forward_hook(self, hook):
        """hook(block, inputs, outputs) runs after forward; returns a handle with detach()."""
        handle = HookHandle()
        handle.attach(self._forward_hooks, hook)
        return handle

    def apply(self, fn):
        """Call fn(block) on every descendant, then on self."""
        for cld in self._children.values():
            cld.apply(fn)
        fn(self)
        return self

    # -- parameters ---------------------------------------------------------------------------
    def initialize(self, init=initializer.Uniform(), ctx=None, verbose=False, force_reinit=False):
        self.collect_params().initialize(init, ctx, verbose, force_reinit)

    def zero_grad(self):
        self.collect_params().zero_grad()

    def reset_ctx(self, ctx):
        self.collect_params().reset_ctx(ctx)

    def setattr(self, name, value):
        self.collect_params().setattr(name, value)

    def cast(self, dtype):
        for child in self._children.values():
            child.cast(dtype)
        for _, param in self.params.items():
            param.cast(dtype)

    def save_parameters(self, filename, deduplicate=False):
        """Write parameters in MXNet's .params format under structural names (`0.weight`)."""
        from ..formats.mxnet_params import save_params
        params = self._collect_params_with_prefix()
        if deduplicate:  # a shared parameter is saved once, under its first name
            reverse = {}
            for k, v in params.items():
                reverse.setdefault(id(v), (k, v))
            params = {k: v for k, v in reverse.values()}
        save_params(filename, {key: val._reduce().asnumpy() for key, val in params.items()})

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False,
                        cast_dtype=False, dtype_source="current"):
        """Load what save_parameters wrote. A file without structural names (the older
        `save_params`, or prefixed names) loads through collect_params().load(), as MXNet."""
        from ..formats.mxnet_params import load_params
        loaded = load_params(filename)
        params = self._collect_params_with_prefix()
        if not loaded and not params:
            return
        if not any("." in k for k in loaded):
            self.collect_params().load(filename, ctx, allow_missing, ignore_extra, self.prefix,
                                       cast_dtype=cast_dtype, dtype_source=dtype_source)
            return
        if not allow_missing:
            for name in params:
                if name not in loaded:
                    raise ValueError(f"Parameter '{name}' is missing in file '{filename}', which contains "
                                     f"parameters: {sorted(loaded)}. Set allow_missing=True to ignore missing "
                                     "parameters.")
        for name in loaded:
            if not ignore_extra and name not in params:
                raise ValueError(f"Parameter '{name}' loaded from file '{filename}' is not present in "
                                 f"ParameterDict, which contains parameters {sorted(params)}. Set "
                                 "ignore_extra=True to ignore. ")
            if name in params:
                params[name]._load_init(loaded[name], ctx, cast_dtype=cast_dtype, dtype_source=dtype_source)

    def save(self, prefix):
        """Write `prefix-model.json` (the block tree's names) and `prefix-model.params`, for
        load() on a model rebuilt by the same code (MXNet 1.9.1's Block.save)."""
        from .block_archive import save_model
        save_model(self, prefix)

    def load(self, prefix):
        """Rename a freshly built model to the names save() recorded, then load its parameters."""
        from .block_archive import load_model
        load_model(self, prefix)

    def save_params(self, filename):
        """Deprecated in MXNet: saves prefixed names (without this block's prefix)."""
        warnings.warn("save_params is deprecated. Please use save_parameters.", stacklevel=2)
        self.collect_params().save(filename, strip_prefix=self.prefix)

    def load_params(self, filename, ctx=None, allow_missing=False, ignore_extra=False):
        warnings.warn("load_params is deprecated. Please use load_parameters.", stacklevel=2)
        self.load_parameters(filename, ctx, allow_missing, ignore_extra)

    # -- running ------------------------------------------------------------------------------
    def hybridize(self, active=True, **kwargs):
        """Plain Blocks cannot compile; pass the wish on to HybridBlock children."""
        for cld in self._children.values():
            cld.hybridize(active, **kwargs)

    def __call__(self, *args):
        for hook in self._forward_pre_hooks.values():
            hook(self, args)
        out = self.forward(*args)
        for hook in self._forward_hooks.values():
            hook(self, args, out)
        return out

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def summary(self, *inputs):
        """Print each layer's output shape and parameter count, running the block on `inputs`."""
        rows, hooks = [], []

        def shapes(o):
            if isinstance(o, (list, tuple)):
                return [shapes(x) for x in o]
            return tuple(o.shape) if hasattr(o, "shape") else None

        def hook(block, _, out):
            n = sum(int(np.prod(p.shape)) for p in block.params.values() if p.shape and shape_is_known(p.shape))
            rows.append((f"{block.__class__.__name__}-{len(rows) + 1}", shapes(out), n))

        def register(block):
            # MXNet refuses: a hybridized block's children run inside one compiled graph, so no
            # per-layer hook would fire
            assert not getattr(block, "_active", False), \
                f'"{block.name}" must not be hybridized to print summary.'
            hooks.append(block.register_forward_hook(hook))

        try:
            self.apply(register)
        except AssertionError:
            for h in hooks:
                h.detach()
            raise
        try:
            self(*inputs)
        finally:
            for h in hooks:
                h.detach()
        line = "-" * 80
        print(line)
        print(f"{'Layer (type)':>20}  {'Output Shape':>42}  {'Param #':>12}")
        print("=" * 80)
        print(f"{'Input':>20}  {str(shapes(list(inputs))):>42}  {0:>12}")
        for name, shape, n in rows:
            print(f"{name:>20}  {str(shape):>42}  {n:>12}")
        print("=" * 80)
        params = self.collect_params()
        total = sum(int(np.prod(p.shape)) for p in params.values() if shape_is_known(p.shape))
        trainable = sum(int(np.prod(p.shape)) for p in params.values()
                        if shape_is_known(p.shape) and p.grad_req != "null")
        print(f"Parameters in forward computation graph, duplicate included\n   Total params: {total}\n"
              f"   Trainable params: {trainable}\n   Non-trainable params: {total - trainable}")
        print(line)


# -- HybridBlock -------------------------------------------------------------------------------
class HybridBlock(Block):
    """A block that can be compiled: write `hybrid_forward(self, F, x, *args, **params)` (F is
    graphc.nd eagerly, graphc.symbol while tracing), or override `forward(self, x)` directly
    and use `x.exp()`, `nd.relu(x)`, `self.weight.data()`, which work in both modes.

    Layers whose parameter shapes depend on the input implement `infer_shape(self, x, *args)`,
    setting `param.shape`; it runs (on NDArrays or symbols, both have .shape) before the first
    forward, and then deferred initialization finishes."""

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._cached_op = None
        self._active = False
        self._flags = {}

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if isinstance(value, HybridBlock):
            self._clear_cached_op()

    def register_child(self, block, name=None):
        if not isinstance(block, HybridBlock):
            raise ValueError(f"Children of HybridBlock must also be HybridBlock, but {block} has type "
                             f"{type(block)}. If you are using Sequential, please try HybridSequential instead.")
        super().register_child(block, name)
        self._clear_cached_op()

    def _clear_cached_op(self):
        self._cached_op = None

    def hybridize(self, active=True, static_alloc=False, static_shape=False, backend=None, **flags):
        """Record that calls should run compiled (the trace happens on the next call)."""
        self._active = active
        self._flags = dict(static_alloc=static_alloc, static_shape=static_shape, backend=backend, **flags)
        self._clear_cached_op()
        if active and (self._forward_hooks or self._forward_pre_hooks):
            warnings.warn(f'"{self.name}" is being hybridized while still having forward hook/pre-hook. '
                          f'If "{self.name}" is a child of HybridBlock, the hooks will not take effect.',
                          stacklevel=2)
        super().hybridize(active, static_alloc=static_alloc, static_shape=static_shape, backend=backend, **flags)

    def cast(self, dtype):
        self._clear_cached_op()
        super().cast(dtype)

    def __call__(self, *args):
        if self._forward_pre_hooks:
            for hook in self._forward_pre_hooks.values():
                hook(self, args)
        op = self._cached_op
        if op is not None and len(args) == 1 and type(args[0]) is _NDArray and self._active \
                and not self._forward_hooks and _current_trace() is None:
            return op(args[0])    # the hot path of a hybridized block: nothing else to do
        leaves = _flatten(args)
        if self._active and leaves and isinstance(leaves[0], _NDArray) and _current_trace() is None:
            self._ensure_params(*args)
            out = self._call_cached_op(*args)
        else:
            if type(self).forward is not HybridBlock.forward:  # Gluon-2 style forward
                self._ensure_params(*args)
            out = self.forward(*args)
        for hook in self._forward_hooks.values():
            hook(self, args, out)
        return out

    def _call_cached_op(self, *args):
        if self._cached_op is None:
            from .cached_op import CachedOp
            self._cached_op = CachedOp(self, **self._flags)
        return self._cached_op(*args)

    def _ensure_params(self, *args):
        """Finish deferred initialization of this block's parameters from the input shapes."""
        pending = [p for p in self._reg_params.values() if p._deferred_init]
        if not pending:
            return
        if any(isinstance(a, _Handle) and a.type is None for a in _flatten(args)):
            # a free symbol (mx.sym.var('data')): MXNet builds the graph with the parameters'
            # variables carrying 0-dim shape hints, left to Symbol.infer_shape
            return
        if any(not shape_is_known(p.shape) for p in pending):
            self.infer_shape(*args)
        for p in self._reg_params.values():
            p._finish_deferred_init()
        for p in self.params.values():
            if p._deferred_init and shape_is_known(p.shape):
                p._finish_deferred_init()

    def forward(self, x, *args):
        """Run hybrid_forward with F = graphc.nd (NDArray input) or graphc.symbol (symbolic)."""
        self._ensure_params(x, *args)
        leaves = [a for a in _flatten((x,) + args) if isinstance(a, tensor_types())]
        from ..ops.builder import Handle
        if leaves and isinstance(leaves[0], Handle):
            from .. import symbol as F
            params = {k: v.var() for k, v in self._reg_params.items()}
            with _OpNameScope(leaves[0].builder, self):
                return self.hybrid_forward(F, x, *args, **params)
        from .. import ndarray as F
        ctx = leaves[0].context if leaves else None
        params = {k: v.data(ctx) for k, v in self._reg_params.items()}
        return self.hybrid_forward(F, x, *args, **params)

    def hybrid_forward(self, F, x, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement hybrid_forward() or forward()")

    def infer_shape(self, *args):
        """Set unknown parameter shapes from the inputs. Layers override this; for a container
        the base version runs a symbolic pass so each child infers its own."""
        unknown = [p.name for p in self._reg_params.values() if not shape_is_known(p.shape)]
        if unknown:
            shapes = [tuple(a.shape) for a in _flatten(args) if hasattr(a, "shape")]
            raise DeferredInitializationError(
                f"{self.name} ({type(self).__name__}): parameters {unknown} have unknown shapes and the block "
                f"cannot infer them from inputs of shapes {shapes}; implement infer_shape(self, x, *args) "
                "setting param.shape, or give the full shape (in_units, in_channels...) when creating it")
        if any(p._deferred_init for p in self.collect_params().values()):
            self._symbolic_pass(*args)

    def _symbolic_pass(self, *args):
        from ..ndarray import NDArray
        from ..ops.types import TensorType
        from ..symbol import Trace
        if _current_trace() is not None or not all(isinstance(a, NDArray) for a in _flatten(args)):
            return self.forward(*args)
        with Trace(self.name) as trace:
            syms, i = [], 0

            def to_sym(a):
                nonlocal i
                if isinstance(a, (list, tuple)):
                    return type(a)(to_sym(b) for b in a)
                i += 1
                return trace.builder.var(f"data{i - 1}", TensorType(a.shape, np.dtype(a.dtype).name), "input")
            syms = [to_sym(a) for a in args]
            self.forward(*syms)

    def infer_type(self, *args):
        """Parameter dtypes are fixed at creation in graphc; kept for MXNet compatibility."""

    def export(self, path, epoch=0, remove_amp_cast=True):
        """Write `path-symbol.json` and `path-%04d.params` (MXNet 1.x formats); needs a
        hybridized block that has run once."""
        from .cached_op import export_block
        return export_block(self, path, epoch)

    def optimize_for(self, x, *args, backend=None, clear=False, **kwargs):
        self.hybridize(True, backend=backend, **kwargs)
        return self(x, *args)
