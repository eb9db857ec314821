"""SymbolBlock: a block made from a graph instead of Python code — how exported models
(graphc's or MXNet 1.x's `-symbol.json` + `.params`) come back to life.

It inlines its graph into the trace of whoever calls it, so a SymbolBlock is compiled like
any hybridized block, can sit inside another block, and can be fine-tuned (its parameters are
ordinary Parameters)."""
from __future__ import annotations

import numpy as np

from ..ops.errors import FormatError, GraphcError
from ..ops.graph import Graph
from ..ops.attrs import _as_shape
from ..ndarray import NDArray
from ..passes.infer import Retyper
from ..symbol import Symbol, current_trace, Trace, _from_graph
from .block import HybridBlock
from .cached_op import unflatten, flatten
from .utils import shape_is_known


class SymbolBlock(HybridBlock):
    """SymbolBlock(outputs, inputs, params=None): outputs/inputs are Symbols (or lists)."""

    def __init__(self, outputs, inputs, params=None):
        super().__init__(prefix="", params=None)
        outs = [outputs] if isinstance(outputs, Symbol) else list(outputs)
        ins = [inputs] if isinstance(inputs, Symbol) else list(inputs)
        values = [v for s in outs for v in s._values]
        in_nodes = [s.value.node for s in ins]
        graph = Graph.from_outputs([], values, "symbolblock")
        inputs_by_name = {n.name for n in in_nodes}
        for node in graph.nodes:   # MXNet's check: a row_sparse weight needs a Trainer's pull
            # (inputs are not Parameters: Executor binds every argument as an input, row_sparse ones too)
            assert node.name in inputs_by_name or node.hints.get("__storage_type__") != "1", \
                f"SymbolBlock doesn't support Parameter '{node.name}' because its storage type is 'row_sparse'."
        self._setup(graph, [n.name for n in in_nodes], None)
        if params is not None:
            for name, p in params.items():
                if name in self._params_by_var:
                    self._params_by_var[name] = p
                    self._reg_params_replace(name, p)

    def _reg_params_replace(self, name, p):
        self.params._params[name] = p

    def _setup(self, graph: Graph, input_names, output_tree):
        self._graph = graph
        self._input_names = list(input_names)
        self._output_tree = output_tree
        variables = [n for n in graph.nodes if n.is_var]
        known = {n.name for n in variables}
        if len(known) != len(variables):   # arrays bind by name (MXNet: "Find duplicated argument name")
            twice = sorted({n.name for n in variables if sum(m.name == n.name for m in variables) > 1})
            raise GraphcError(f"SymbolBlock {graph.name}: variables {twice} appear more than once; arrays are "
                              "bound to variables by name, so names must be unique")
        missing = [nm for nm in self._input_names if nm not in known]
        if missing:
            raise GraphcError(f"SymbolBlock: inputs {missing} are not variables of the graph; it has {sorted(known)}")
        self._params_by_var = {}
        for node in variables:
            if node.name in self._input_names:
                continue
            aux = node.hints.get("kind") == "aux"
            shape = None
            if node.types and node.types[0] is not None:
                shape = node.types[0].shape
            elif node.hints.get("__shape__"):
                shape = _as_shape(node.hints["__shape__"])
            dtype = node.types[0].dtype if node.types and node.types[0] is not None else "float32"
            p = self.params.get(node.name, shape=shape, dtype=dtype, allow_deferred_init=True,
                                grad_req="null" if aux else "write", differentiable=not aux)
            self._params_by_var[node.name] = p
        self.hybridize()

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, ctx=None, allow_missing=False,
                ignore_extra=False):
        """Load `-symbol.json` (+ `.params`), as written by MXNet 1.x or graphc's export."""
        from ..formats.mxnet_json import load_symbol_json, read_symbol_file
        if isinstance(input_names, str):
            input_names = [input_names]
        graph = load_symbol_json(read_symbol_file(symbol_file), str(symbol_file), data_names=input_names)
        block = SymbolBlock.__new__(SymbolBlock)
        HybridBlock.__init__(block, prefix="", params=None)
        block._setup(graph, input_names, graph.output_tree)  # the file's output nesting, checked
        if param_file is not None:
            block.load_params_file(param_file, ctx, allow_missing, ignore_extra)
        return block

    def load_params_file(self, param_file, ctx=None, allow_missing=False, ignore_extra=False,
                         cast_dtype=False):
        """Load an MXNet `.params` file whose names are `arg:NAME`/`aux:NAME` (or bare names)."""
        from ..formats.mxnet_params import load_params
        arrays = load_params(param_file)
        by_name = {}
        for key, value in arrays.items():
            name = key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key
            by_name[name] = value
        for name, p in self._params_by_var.items():
            if name in by_name:
                try:
                    p._load_init(by_name[name], ctx, cast_dtype=cast_dtype)
                except ValueError as exc:   # the symbol file's __shape__ disagrees with the array
                    raise FormatError(f"{param_file}: {exc}") from None
            elif not allow_missing:
                raise GraphcError(f"{param_file}: no value for parameter {name!r} (set allow_missing=True "
                                  f"to initialise it later); the file has {sorted(by_name)[:8]}...")
        extra = sorted(set(by_name) - set(self._params_by_var) - set(self._input_names))
        if extra and not ignore_extra:
            raise GraphcError(f"{param_file}: parameters {extra} are not used by the graph "
                              "(set ignore_extra=True to skip them)")

    def __call__(self, *args):
        if current_trace() is None and (isinstance(flatten(list(args))[0][0], NDArray) if args
                                        else not self._input_names):   # (a graph of no inputs: zeros, arange)
            return self._call_cached_op(*args)
        return self.forward(*args)

    def _finish_deferred_params(self, inputs):
        """Parameters made without a shape (a hand-built symbol's variables) take the shapes the
        graph's inference gives from the inputs', as MXNet's SymbolBlock does on its first call."""
        pending = [p for p in self._params_by_var.values() if p._deferred_init]
        if not pending:
            return
        if any(not shape_is_known(p.shape) for p in pending):
            shapes = {name: tuple(x.shape) for name, x in zip(self._input_names, inputs)}
            dtypes = {name: np.dtype(x.dtype).name for name, x in zip(self._input_names, inputs)}
            found = _from_graph(self._graph)._var_types(shapes, dtypes, partial=True)
            for name, p in self._params_by_var.items():
                t = found.get(name)
                if t is not None and not shape_is_known(p.shape):
                    p.shape = t.shape
        for p in pending:
            p._finish_deferred_init()

    def forward(self, *args):
        """Inline the graph into the active trace (inputs are Symbols here)."""
        trace = current_trace()
        leaves, _ = flatten(list(args))
        if trace is None and not (leaves and all(isinstance(x, Symbol) for x in leaves)):
            raise GraphcError("SymbolBlock.forward expects symbols; call the block on NDArrays instead")
        if len(leaves) != len(self._input_names):
            raise GraphcError(f"SymbolBlock: expects {len(self._input_names)} inputs {self._input_names}, "
                              f"got {len(leaves)}")
        if trace is None:
            # free symbols (MXNet composes its graph onto them): shapes wait for infer_shape
            builder = leaves[0].builder
        else:
            self._finish_deferred_params(leaves)
            builder = trace.builder
        retype = Retyper(builder)
        for name, sym in zip(self._input_names, leaves):
            node = next(n for n in self._graph.nodes if n.is_var and n.name == name)
            retype.bind(node, sym.value)
        for node in self._graph.nodes:
            if node.is_var:
                if (id(node), 0) not in retype.env:
                    retype.bind(node, self._params_by_var[node.name].var().value)
                continue
            retype.emit(node)
        outs = [builder.wrap(retype.lookup(v)) for v in self._graph.outputs]
        if self._output_tree is not None:
            return unflatten(outs, self._output_tree)
        return outs[0] if len(outs) == 1 else outs
