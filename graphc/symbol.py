"""graphc.sym: symbolic values. While a HybridBlock is traced they know their shape and dtype
(x.shape works inside hybrid_forward); built by hand from `sym.var('data')` they may be
untyped until `infer_shape` binds input shapes.

A Symbol is a Handle (ops/builder.py) plus the methods MXNet users rely on: list_arguments,
infer_shape, get_internals, tojson, eval...
"""
from __future__ import annotations

import threading

import numpy as np

from .ops.builder import GraphBuilder, Handle, given_attrs_hint
from .ops.errors import GraphcError
from .ops.graph import Graph, Node, Value, variable, format_node, value_names
from .op_functions import SYMBOL_BINARY, ElementwiseFunctions, PrefixNamespace, RandomFunctions
from .contrib_functions import ContribFunctions
from .internal_namespace import InternalNamespace
from . import split_histogram as _split_histogram
from .creation_functions import CreationFunctions
from .ops.registry import get_op
from .ops.types import TensorType
from .symbol_attrs import _HIDDEN_KEYS, _hinted_dtype, _node_attrs, _var_hints

_local = threading.local()

# MXNet's hidden attribute keys: AttrScope(ctx_group='a') and attr={'ctx_group': 'a'} store them
# as '__ctx_group__' (what -symbol.json files and the partitioning pass read)


def _hidden_key(key: str) -> str:
    return f"__{key}__" if key in _HIDDEN_KEYS else key


class AttrScope:
    """`with mx.AttrScope(ctx_group='stage1'):` every symbol created inside (operators and
    variables, traced or built by hand) carries the attributes, as in MXNet 1.x; scopes nest,
    the inner value winning. ctx_group is how a graph is placed on devices (`group2ctx`)."""

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            if not isinstance(value, str):
                raise ValueError(f"AttrScope: attribute {key}={value!r} is a {type(value).__name__}; "
                                 "attributes need to be strings")
        self._attr = {_hidden_key(k): v for k, v in kwargs.items()}
        self._saved = None

    @staticmethod
    def current() -> dict:
        return getattr(_local, "attr_scope", None) or {}

    def get(self, attr=None) -> dict:
        """The scope's attributes updated with `attr` (the explicit ones win)."""
        merged = dict(self._attr)
        merged.update({_hidden_key(k): v for k, v in (attr or {}).items()})
        return merged

    def __enter__(self):
        self._saved = getattr(_local, "attr_scope", None)
        merged = dict(self._saved or {})
        merged.update(self._attr)
        _local.attr_scope = merged
        return self

    def __exit__(self, *exc):
        _local.attr_scope = self._saved


def _scoped_hints(hints) -> dict:
    """hints with the active AttrScope's attributes under them (explicit hints win)."""
    scope = AttrScope.current()
    if not scope:
        return hints
    merged = dict(scope)
    merged.update(hints or {})
    return merged


# attributes MXNet gives the variable it creates for an operator's missing input (its
# FSetInputVarAttrOnCompose): PReLU's slopes start at 0.25 whatever the global initializer
_INPUT_VAR_ATTRS = {("LeakyReLU", "gamma"): {"__init__": '["Constant", {"value": 0.25}]'}}


class NodeName(str):
    """A node name the NameManager has already decided: used as it is, never counted again."""


class SymbolBuilder(GraphBuilder):
    """A builder that tolerates untyped values (inference waits for infer_shape) and, like
    MXNet, creates missing inputs as variables named `<node>_<input>` (fc1_weight)."""

    def __init__(self, name="symbol", mxnet_names=False):
        super().__init__(name, handle_cls=Symbol)
        self.mxnet_names = mxnet_names

    def node_name(self, op_name, name=None) -> str:
        """The name a node gets. Symbols built by hand are named as MXNet names them, through
        the current mx.name.NameManager (fresh counters in `with NameManager()`, a Prefix on
        every operator name); a trace keeps its own counters."""
        if isinstance(name, NodeName):
            return str(name)
        if not self.mxnet_names:
            return name or self._name(op_name)
        from .gluon.block import NameManager
        return NodeName(NameManager.current().get(name, op_name.lower().lstrip("_")))

    def emit(self, op_name, inputs, attrs=None, name=None, hints=None):
        op = get_op(op_name)
        parsed = op.parse(attrs or {})
        name = str(self.node_name(op.name, name))
        names = op.input_names(parsed)
        inputs = list(inputs)
        if len(inputs) < len(names) and "num_args" not in op.attrs:
            for i, missing in enumerate(names[len(inputs):], len(inputs)):
                kind = "aux" if i in op.aux_inputs else "param"   # BatchNorm's moving stats
                node = variable(f"{name}_{missing}", None, kind,
                                _scoped_hints(dict(_INPUT_VAR_ATTRS.get((op.name, missing), {}))))
                node.types = (None,)
                self.inputs.append(node)
                inputs.append(node.out())
        hints = _scoped_hints(given_attrs_hint(hints, attrs))
        if any(v.type is None for v in inputs):
            node = Node(op.name, inputs, parsed, name, (None,) * op.n_outputs(parsed), hints)
        else:
            types = op.infer_types([v.type for v in inputs], parsed, f"'{name}'")
            node = Node(op.name, inputs, parsed, name, types, hints)
        self.nodes.append(node)
        return node


class Trace:
    """The state of one hybridize trace: its builder and the variable made for each Parameter."""

    def __init__(self, name="graph"):
        self.builder = SymbolBuilder(name)
        self.param_vars = {}   # id(param) -> Symbol
        self.params = []       # Parameters in first-use order

    def param_var(self, param) -> "Symbol":
        sym = self.param_vars.get(id(param))
        if sym is None:
            if param.shape is None or any(d in (0, None) for d in param.shape):
                raise GraphcError(f"parameter {param.name!r} has unknown shape {param.shape} while tracing; "
                                  "its block must infer it from the input (infer_shape) first")
            kind = "param" if getattr(param, "_differentiable", True) else "aux"
            hints = {"__lr_mult__": getattr(param, "lr_mult", 1.0), "__wd_mult__": getattr(param, "wd_mult", 1.0)}
            sym = self.builder.var(param.name, TensorType(param.shape, param.dtype), kind, hints)
            self.param_vars[id(param)] = sym
            self.params.append(param)
        return sym

    def __enter__(self):
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _local.stack.pop()


def current_trace() -> Trace | None:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def _builder_for(inputs):
    for x in inputs:
        if isinstance(x, Handle):
            return x.builder
    trace = current_trace()
    return trace.builder if trace else _GLOBAL


class Symbol(Handle):
    """One or more symbolic outputs. `Group([a, b])` makes a multi-output Symbol."""

    __slots__ = ("_values",)

    def __init__(self, value: Value, builder, values=None):
        super().__init__(value, builder)
        self._values = list(values) if values is not None else [value]

    # -- identity -------------------------------------------------------------------------
    @property
    def name(self):
        return self.value.node.name if len(self._values) == 1 else None

    def attr(self, key):
        node = self.value.node
        v = node.hints.get(key, node.hints.get(_hidden_key(key), node.attrs.get(key)))
        return None if v is None else str(v)

    def list_attr(self, recursive=False):
        """The attributes set on this symbol's node, as strings (MXNet's): an operator's given
        attributes and hints; a variable's keywords (see var). recursive=True is attr_dict's
        union, each key prefixed with its node's name as MXNet 0.x did."""
        if recursive:
            return {f"{node}${k}": v for node, attrs in self.attr_dict().items() for k, v in attrs.items()}
        return _node_attrs(self.value.node)

    def attr_dict(self):
        """node name -> its list_attr(), for every node of the graph that has attributes."""
        out = {}
        for node in self._graph().nodes:
            attrs = _node_attrs(node)
            if attrs:
                out[node.name] = attrs
        return out

    @property
    def shape(self):
        t = self.value.type
        if t is None:
            raise GraphcError(f"symbol {self.name!r} has no shape yet: call infer_shape with the input shapes")
        return t.shape

    @property
    def dtype(self):
        t = self.value.type
        return None if t is None else np.dtype(t.dtype)

    def __repr__(self):
        if len(self._values) > 1:
            return f"<Symbol group [{', '.join(v.node.name for v in self._values)}]>"
        t = self.value.type
        return f"<Symbol {self.name}{': ' + str(t) if t is not None else ''}>"

    def __iter__(self):
        return (Symbol(v, self.builder) for v in self._values)

    def __len__(self):
        return len(self._values)

    def __getitem__(self, index):
        if len(self._values) == 1 and len(self.value.node.types) == 1 and not isinstance(index, str) \
                and self.value.type is not None:
            return self.__getitem_basic(index)
        if isinstance(index, str):
            for v, out_name in zip(self._values, self.list_outputs()):
                if out_name == index or v.node.name == index:
                    return Symbol(v, self.builder)
            raise KeyError(f"no output named {index!r}; outputs are {self.list_outputs()}")
        if len(self._values) == 1 and len(self.value.node.types) > 1:
            return Symbol(self.value.node.out(index), self.builder)
        return Symbol(self._values[index], self.builder)

    # -- graph views ------------------------------------------------------------------------
    def _graph(self) -> Graph:
        g = Graph.from_outputs([], self._values, "symbol")
        g.inputs = [n for n in g.nodes if n.is_var]
        return g

    def _vars(self):
        return [n for n in self._graph().nodes if n.is_var]

    def list_arguments(self):
        # (an atomic symbol's input placeholders, kind 'unbound', are nobody's arguments yet)
        return [n.name for n in self._vars() if n.hints.get("kind") not in ("aux", "unbound")]

    def list_auxiliary_states(self):
        return [n.name for n in self._vars() if n.hints.get("kind") == "aux"]

    def list_inputs(self):
        return [n.name for n in self._vars() if n.hints.get("kind") != "unbound"]

    def list_outputs(self):
        def prefix(node):       # an atomic symbol's operator has no name: its outputs are 'output'
            return f"{node.name}_" if node.name else ""
        out = []
        for v in self._values:
            node = v.node
            if node.is_var:
                out.append(node.name)
            elif hasattr(get_op(node.op), "output_names"):     # Custom: the Prop's list_outputs()
                out.append(f"{prefix(node)}{get_op(node.op).output_names(node.attrs)[v.index]}")
            elif len(node.types) == 1 or get_op(node.op).n_visible(node.attrs) == 1:
                out.append(f"{prefix(node)}output")
            else:
                out.append(f"{prefix(node)}output{v.index}")
        return out

    def get_internals(self):
        g = self._graph()
        values = []
        for n in g.nodes:
            vis = len(n.types) if n.is_var or n.is_const else get_op(n.op).n_visible(n.attrs)
            values.extend(n.out(i) for i in range(vis))
        return Symbol(values[0], self.builder, values)

    def get_children(self):
        """The inputs of this symbol's operators as one grouped Symbol; None when there are none
        (variables), as MXNet's."""
        nodes = list({id(v.node): v.node for v in self._values}.values())   # (outputs of one node once)
        ins = [v for node in nodes for v in node.inputs]
        return Symbol(ins[0], self.builder, ins) if ins else None

    # -- composition and Python protocol ------------------------------------------------------
    def __call__(self, *args, **kwargs):
        """A copy of this symbol with arguments replaced by other symbols (MXNet's composition:
        `net2(fc3_data=net1, name='composed')`)."""
        from .symbol_compose import compose
        name = kwargs.pop("name", None)
        values = compose(self, args, kwargs, name)
        return Symbol(values[0], self.builder, values)

    def _compose(self, *args, **kwargs):
        """Composition in place, as MXNet's Symbol._compose: this handle now names the result."""
        from .symbol_compose import compose
        name = kwargs.pop("name", None)
        values = compose(self, args, kwargs, name)
        self.value, self._values = values[0], values

    def _gen_atomic_symbol(self):
        from .symbol_compose import atomic
        values = atomic(self)
        return Symbol(values[0], self.builder, values)

    def __bool__(self):
        from .base import NotImplementedForSymbol
        raise NotImplementedForSymbol(self.__bool__, "bool")

    __nonzero__ = __bool__

    def __reduce__(self):
        # pickled as MXNet pickles a Symbol: its JSON form
        return (load_json, (self.tojson(),))

    # -- inference ------------------------------------------------------------------------
    def _infer(self, shapes=None, dtypes=None):
        """MXNet's shape inference over this symbol's graph (symbol_shape_inference)."""
        from .symbol_shape_inference import infer_partial, seeds_of
        shapes, dtypes = shapes or {}, dtypes or {}
        g = self._graph()
        names = {n.name for n in g.inputs}
        unknown = sorted(set(shapes) - names)
        if unknown:
            raise GraphcError(f"infer_shape: {unknown} are not inputs of the symbol; its inputs are {sorted(names)}")
        seeds, types = seeds_of(g, shapes, dtypes)
        return g, infer_partial(g, seeds, types)

    def _var_types(self, shapes=None, dtypes=None, partial=False) -> dict:
        """name -> TensorType (None when unknown) for every variable, after MXNet-style inference
        (forward and backward, 0 = unknown dimension). Raises, unless `partial`, when a
        variable stays unknown."""
        from .symbol_shape_inference import known
        g, inf = self._infer(shapes, dtypes)
        var_types = {}
        for n in g.inputs:
            shape = inf.shape_of(n.out())
            dtype = (dtypes or {}).get(n.name) or inf.dtype_of(n.out()) or _hinted_dtype(n)
            var_types[n.name] = TensorType(shape, dtype) if known(shape) else None
        missing = [k for k, t in var_types.items() if t is None]
        if missing and not partial:
            raise GraphcError(f"infer_shape: cannot infer the shapes of {missing} from the given "
                              f"{sorted(shapes or {})}; give their shapes too")
        return var_types

    def _bind(self, shapes=None, dtypes=None) -> Graph:
        """The symbol's graph typed from input shapes/dtypes (parameters' shapes inferred)."""
        from .passes.infer import infer_types
        from .symbol_compose import without_shape_hints
        var_types = self._var_types(shapes, dtypes)
        return infer_types(without_shape_hints(self._graph(), shapes or {}), var_types)

    def infer_shape(self, *args, **kwargs):
        """(arg_shapes, out_shapes, aux_shapes), like MXNet: weights' shapes follow from the
        data's, unknown inputs from what their users need. Incomplete: (None, None, None) and
        MXNet's warning naming the arguments still unknown."""
        from .symbol_shape_inference import known
        if args:
            kwargs.update(zip(self.list_arguments(), args))
        arg, out, aux = self._partial_shapes(kwargs)
        if not all(known(s) for s in arg + out + aux):
            import warnings
            unknowns = [f"{n}: {s or ()}" for n, s in zip(self.list_arguments(), arg) if not known(s)]
            unknowns = unknowns[:10] + (["..."] if len(unknowns) > 10 else [])
            warnings.warn("Cannot decide shape for the following arguments (0s in shape means unknown "
                          "dimensions). Consider providing them as input:\n\t" + "\n\t".join(unknowns),
                          stacklevel=2)
            return (None, None, None)
        g = self._bind(kwargs)
        by = {n.name: n.types[0].shape for n in g.inputs}
        return ([by[n] for n in self.list_arguments()], [v.type.shape for v in g.outputs],
                [by[n] for n in self.list_auxiliary_states()])

    def infer_shape_partial(self, *args, **kwargs):
        """As infer_shape, but what cannot be inferred is () or has 0s (MXNet 1.x's answer)."""
        if args:
            kwargs.update(zip(self.list_arguments(), args))
        return tuple([s or () for s in part] for part in self._partial_shapes(kwargs))

    def _partial_shapes(self, shapes):
        """(args, outputs, aux) partial shapes, None where not even the rank is known."""
        g, inf = self._infer(shapes)
        by = {n.name: inf.shape_of(n.out()) for n in g.inputs}
        return ([by[n] for n in self.list_arguments()], [inf.shape_of(v) for v in self._values],
                [by[n] for n in self.list_auxiliary_states()])

    def infer_type(self, *args, **kwargs):
        """(arg_types, out_types, aux_types) as numpy types. Incomplete: (None, None, None) and
        MXNet's warning naming the arguments still unknown."""
        arg, out, aux = self.infer_type_partial(*args, **kwargs)
        if any(t is None for t in arg + out + aux):
            import warnings
            unknowns = [f"{n}: None" for n, t in zip(self.list_arguments(), arg) if t is None]
            unknowns = unknowns[:10] + (["..."] if len(unknowns) > 10 else [])
            warnings.warn("Cannot decide type for the following arguments. Consider providing them as "
                          "input:\n\t" + "\n\t".join(unknowns), stacklevel=2)
            return (None, None, None)
        return arg, out, aux

    def infer_type_partial(self, *args, **kwargs):
        """As infer_type, with None for what cannot be inferred (MXNet's)."""
        from .symbol_shape_inference import infer_dtypes
        if args:
            kwargs.update(zip(self.list_arguments(), args))
        dtypes = {k: np.dtype(v).name for k, v in kwargs.items()}
        var_types = self._var_types(None, dtypes, partial=True)
        if all(t is not None for t in var_types.values()):   # shapes known: exact inference
            g = self._bind(None, dtypes)
            by = {n.name: np.dtype(n.types[0].dtype).type for n in g.inputs}
            outs = [np.dtype(v.type.dtype).type for v in g.outputs]
        else:
            g = self._graph()
            dt = infer_dtypes(g, dtypes, _hinted_dtype)
            as_type = lambda d: None if d is None else np.dtype(d).type   # noqa: E731
            by = {n.name: as_type(dt.get((id(n), 0))) for n in g.inputs}
            outs = [as_type(dt.get((id(v.node), v.index))) for v in self._values]
        return ([by[n] for n in self.list_arguments()], outs, [by[n] for n in self.list_auxiliary_states()])

    # -- executors (MXNet 1.x's symbolic training API) ------------------------------------
    def simple_bind(self, ctx=None, grad_req="write", type_dict=None, group2ctx=None, **shapes):
        """An Executor with zero-filled arguments, gradients and auxiliary states of the shapes
        inferred from `shapes` (usually just the data's). group2ctx ({'stage1': mx.cpu(1)}):
        operators run on their `ctx_group`'s device, each array on its reader's device."""
        from .executor import Executor
        return Executor.simple(self, ctx, grad_req, type_dict, shapes, group2ctx)

    def bind(self, ctx=None, args=None, args_grad=None, grad_req="write", aux_states=None, group2ctx=None, **_):
        """An Executor over the given arrays (lists in list_arguments() order, or dicts by name);
        they are used in place: forward reads them, backward writes `args_grad`. group2ctx as
        in simple_bind (each gradient array must be on the device computing it)."""
        from .executor import Executor
        return Executor(self, ctx, args, args_grad, grad_req, aux_states, group2ctx)

    # -- evaluation and files -------------------------------------------------------------
    def eval(self, ctx=None, **kwargs):
        """Evaluate with NDArray inputs (by name); returns a list of NDArrays."""
        from .ndarray import NDArray, array
        from .ops.interpret import interpret
        shapes = {k: v.shape for k, v in kwargs.items()}
        dtypes = {k: np.dtype(v.dtype).name for k, v in kwargs.items()}
        g = self._bind(shapes, dtypes)
        arrays = {k: (v.asnumpy() if isinstance(v, NDArray) else np.asarray(v)) for k, v in kwargs.items()}
        return [array(o, dtype=o.dtype) for o in interpret(g, arrays)]

    def tojson(self):
        from .formats.mxnet_json import dump_symbol_json
        return dump_symbol_json(self._graph())

    def save(self, fname, remove_amp_cast=True):
        from .formats.atomic import atomic_write
        atomic_write(fname, self.tojson().encode())

    # -- fluent methods, as on NDArray: x.sum(axis=1), x.reshape((0, -1)), x.exp() -----------
    def reshape(self, *shape, **kwargs):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if "shape" in kwargs:
            shape = tuple(kwargs.pop("shape"))
        return _NAMESPACE.Reshape(self, shape=shape, **kwargs)

    def astype(self, dtype, copy=True):
        return _NAMESPACE.Cast(self, dtype=dtype)

    @property
    def T(self):
        return _NAMESPACE.transpose(self)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        fn = getattr(_NAMESPACE, name, None)
        if fn is None:
            raise AttributeError(f"'Symbol' object has no attribute {name!r}")
        return lambda *args, **kwargs: fn(self, *args, **kwargs)

    def __getitem_basic(self, key):
        from .ndarray.ndarray import encode_index
        return _NAMESPACE._basic_index(self, key=encode_index(key, self.ndim))

    def __copy__(self):
        # a new handle on the same (never mutated) nodes: _compose on the copy leaves self alone
        return Symbol(self.value, self.builder, list(self._values))

    def __deepcopy__(self, memo):
        return self.__copy__()

    def debug_str(self):
        return str(self._graph())


_GLOBAL = SymbolBuilder("symbol", mxnet_names=True)


def _symbol_invoke(op, inputs, attrs, name):
    from .device import Context
    attrs = dict(attrs)
    extra = attrs.pop("attr", None)
    if extra:    # (reached only by callers that bypass SymbolNamespace)
        with AttrScope(**{k: str(v) for k, v in extra.items()}):
            return _symbol_invoke(op, inputs, attrs, name)
    # a Context is written as its string, as MXNet's symbol functions do (sym.zeros(ctx=cpu()))
    attrs = {k: str(v) if isinstance(v, Context) else v for k, v in attrs.items()}
    out = _builder_for(inputs).invoke(op, inputs, attrs, name)
    if isinstance(out, tuple) and current_trace() is None:
        # a multi-output operator built by hand is one grouped Symbol (MXNet's SliceChannel),
        # indexable and iterable; a trace keeps the tuple Gluon code unpacks
        return Group(out)
    return out


from .symbol_namespace import SymbolNamespace  # noqa: E402
_NAMESPACE = SymbolNamespace(_symbol_invoke, lambda a: isinstance(a, Handle))
from .symbol_sparse import SparseSymbolFunctions as _SparseSymbolFunctions  # noqa: E402

# MXNet's sym.maximum/minimum, sym.random.*, sym.linalg.*: the same functions as graphc.nd's
random = RandomFunctions(_NAMESPACE, lambda a: isinstance(a, Handle))
linalg = PrefixNamespace(_NAMESPACE, "_linalg_")
image = PrefixNamespace(_NAMESPACE, "_image_")     # sym.image: MXNet's image operators
globals().update(_split_histogram.functions(_NAMESPACE, lambda a: isinstance(a, Handle)))  # sym.split_v2/histogram
contrib = ContribFunctions(_NAMESPACE)   # sym.contrib: _contrib_* operators and control flow
sparse = _SparseSymbolFunctions(_NAMESPACE)     # sym.sparse: dense twins of nd.sparse (symbol_sparse.py)
cast_storage = sparse.cast_storage               # MXNet's sym.cast_storage (a copy in a dense graph)
globals().update(CreationFunctions(_NAMESPACE).functions())   # sym.arange/full/eye/linspace
globals().update(ElementwiseFunctions(_NAMESPACE, lambda a: isinstance(a, Handle)).functions(SYMBOL_BINARY))
pow = power     # noqa: A001  (MXNet's sym.pow)
_internal = InternalNamespace(_NAMESPACE, lambda a: isinstance(a, Handle))


def hypot(left, right):
    """sqrt(left**2 + right**2) for symbols and numbers (MXNet's sym.hypot)."""
    import numbers
    if isinstance(left, Handle) and isinstance(right, Handle):
        return _NAMESPACE.broadcast_hypot(left, right)
    if isinstance(left, numbers.Number) and isinstance(right, numbers.Number):
        return np.hypot(left, right)
    if isinstance(left, numbers.Number) and isinstance(right, Handle):
        left, right = right, left
    if isinstance(left, Handle) and isinstance(right, numbers.Number):
        return _internal._hypot_scalar(left, scalar=right)
    raise TypeError(f"hypot: expects symbols or numbers, got {type(left).__name__} and {type(right).__name__}")


def var(name, attr=None, shape=None, lr_mult=None, wd_mult=None, dtype=None, init=None, stype=None, **kwargs):
    """A named input. With a shape it is typed at once; without, it waits for infer_shape.
    Every keyword is kept as MXNet keeps it, a string attribute (`__shape__`, `__dtype__` as
    MXNet's type flag, `__lr_mult__`, `__init__` as the initializer's JSON...): Module reads
    `__init__` when it initialises and the optimizer reads `__lr_mult__`/`__wd_mult__`."""
    if not isinstance(name, str):
        raise TypeError(f"sym.var: name must be a string, got {type(name).__name__}")
    trace = current_trace()
    builder = trace.builder if trace else _GLOBAL
    hints = _scoped_hints({_hidden_key(k): str(v) for k, v in (attr or {}).items()})
    hints.update(_var_hints(shape, lr_mult, wd_mult, dtype, init, stype, kwargs))
    known = shape is not None and all(d not in (0, None) for d in shape)
    if known:
        return builder.var(name, TensorType(shape, dtype or "float32"), "input", hints)
    node = variable(name, None, "input", hints)
    node.types = (None,)
    builder.inputs.append(node)
    return builder.wrap(node.out())


Variable = var


def Group(symbols):
    symbols = list(symbols)
    values = [v for s in symbols for v in s._values]
    return Symbol(values[0], symbols[0].builder, values)


def load_json(json_str):
    from .formats.mxnet_json import load_symbol_json
    return _from_graph(load_symbol_json(json_str, "<json string>"))


def load(fname):
    from .formats.mxnet_json import load_symbol_json, read_symbol_file
    return _from_graph(load_symbol_json(read_symbol_file(fname), str(fname)))


def _from_graph(graph: Graph) -> Symbol:
    values = list(graph.outputs)
    return Symbol(values[0], _GLOBAL, values)


def zeros(shape, dtype="float32", **kw):
    return _NAMESPACE._zeros(shape=shape, dtype=dtype, **kw)


def ones(shape, dtype="float32", **kw):
    return _NAMESPACE._ones(shape=shape, dtype=dtype, **kw)


def __getattr__(name):
    fn = getattr(_NAMESPACE, name, None)
    if fn is None:
        raise AttributeError(f"module 'graphc.symbol' has no attribute {name!r}: not supported (graphc has no "
                             "operator or function of that name; dir(graphc.symbol) lists those it has)")
    return fn


# MXNet's Symbol class lives in mxnet.symbol.symbol; graphc keeps one module, so that path names
# this same module (`import graphc.symbol.symbol`, `from graphc.symbol.symbol import Symbol`).
import sys as _sys  # noqa: E402
symbol = _sys.modules.setdefault(__name__ + ".symbol", _sys.modules[__name__])
