"""mx.viz: pictures and tables of networks, as MXNet 1.x's `mxnet.visualization` makes them.

- `plot_network(symbol, title, save_format, shape, dtype, node_attrs, hide_weights)`: a picture
  of the graph. MXNet returns a `graphviz.Digraph`; graphc returns a `NetworkPlot` with the same
  everyday surface (`.source`, `.render()`, `.pipe()`, `.save()`, `_repr_svg_` for notebooks)
  that needs no Graphviz: it writes DOT text always, and draws SVG itself (graphc/viz/svg.py)
  wherever the `dot` program is missing. PDF and PNG need `dot`.
- `print_summary(symbol, shape, line_length, positions)`: MXNet's layer table, same text.
- `print_partition_summary(graph)`: per-device FLOPs, memory and the bytes crossing each cut of
  a device-partitioned graph.

Each takes a Symbol (drawn the way MXNet draws it), a graphc `Graph` (typed, after any passes:
a fused kernel is one box; placed on devices: boxes coloured by device, copies drawn as cut
edges), or a HybridBlock that has run (its traced graph; its partitioned graph when it runs
model-parallel).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings

from ..ops.errors import GraphcError
from ..ops.graph import Graph
from .dot import scene_to_dot
from .scene import EdgeLabels, build_scene
from .summary import summary_lines
from .svg import scene_to_svg


class GraphvizMissingWarning(UserWarning):
    """`dot` is not installed: the DOT text was saved, and graphc's own SVG instead of PDF/PNG."""


class NetworkPlot:
    """A drawn network: what `plot_network` returns, in place of MXNet's graphviz.Digraph."""

    def __init__(self, scene, save_format="pdf"):
        self.scene = scene
        self.name = scene.title
        self.format = save_format
        self.source = scene_to_dot(scene)
        self._svg = None

    def __str__(self):
        return self.source

    def svg(self) -> str:
        """The picture as SVG, drawn by graphc (no Graphviz needed)."""
        if self._svg is None:
            self._svg = scene_to_svg(self.scene)
        return self._svg

    def _repr_svg_(self):
        return self.svg()

    def pipe(self, format=None) -> bytes:
        """The rendered picture as bytes: through `dot` when it is installed, else (SVG only)
        graphc's own drawing."""
        fmt = format or self.format
        dot = shutil.which("dot")
        if dot:
            return subprocess.run([dot, f"-T{fmt}"], input=self.source.encode(), capture_output=True,
                                  check=True).stdout
        if fmt == "svg":
            return self.svg().encode()
        raise GraphcError(f"plot_network: rendering {fmt!r} needs Graphviz's 'dot' program, which is not on "
                          "PATH; use format='svg' (graphc draws SVG itself) or save the DOT text with .save()")

    def save(self, filename=None, directory=None) -> str:
        """Write the DOT text (graphviz.Digraph.save); returns its path."""
        path = self._path(filename, directory)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.source)
        return path

    def render(self, filename=None, directory=None, view=False, cleanup=False, format=None) -> str:
        """Save the DOT text to `filename` (default `<title>.gv`) and the picture beside it as
        `<filename>.<format>`, as graphviz.Digraph.render does; returns the picture's path.
        Without `dot`, an SVG is drawn by graphc, and a PDF/PNG request gets the SVG plus a
        one-line GraphvizMissingWarning naming both files."""
        fmt = format or self.format
        source_path = self.save(filename, directory)
        out = f"{source_path}.{fmt}"
        if shutil.which("dot"):
            subprocess.run([shutil.which("dot"), f"-T{fmt}", "-o", out, source_path], check=True,
                           capture_output=True)
        else:
            if fmt != "svg":
                out = f"{source_path}.svg"
                warnings.warn(f"plot_network: Graphviz's 'dot' program is not installed, so no {fmt.upper()} "
                              f"was made; the DOT text is in {source_path} and graphc drew {out}",
                              GraphvizMissingWarning, stacklevel=2)
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(self.svg())
        if cleanup:
            os.remove(source_path)
        return out

    def view(self, filename=None, directory=None, cleanup=False) -> str:
        """Render; opening a viewer is left to the caller (graphc never launches programs)."""
        return self.render(filename, directory, cleanup=cleanup)

    def _path(self, filename, directory) -> str:
        filename = filename or f"{self.name}.gv"
        return os.path.join(directory, filename) if directory else filename


def plot_network(symbol, title="plot", save_format="pdf", shape=None, dtype=None, node_attrs=None,
                 hide_weights=True) -> NetworkPlot:
    """The picture of `symbol`'s graph (see the module doc). shape: input name -> shape, to
    label edges with the shapes they carry; dtype: input name -> dtype, to add the dtypes;
    node_attrs: Graphviz node attributes overriding the defaults (shape, fillcolor, width...);
    hide_weights: leave out variables named like parameters (*_weight, *_bias, ...)."""
    graph, labels, by_kind = _graph_to_draw(symbol, shape, dtype, "plot_network")
    scene = build_scene(graph, title, labels, node_attrs, hide_weights, weights_by_kind=by_kind)
    return NetworkPlot(scene, save_format)


def print_summary(symbol, shape=None, line_length=120, positions=(.44, .64, .74, 1.)):
    """Print MXNet's layer table: layer (type), output shape, parameter count, previous layer."""
    graph, labels, _ = _graph_to_draw(symbol, shape, None, "print_summary")
    print("\n".join(summary_lines(graph, labels.style != "none", line_length, positions)))


def print_partition_summary(graph):
    """Print per-device ops, FLOPs, parameter and activation bytes, and the bytes crossing each
    pair of devices, for a partitioned Graph (or a block running model-parallel)."""
    from ..passes.partition_report import partition_report
    graph, _, _ = _graph_to_draw(graph, None, None, "print_partition_summary")
    print(partition_report(graph))


def _graph_to_draw(source, shape, dtype, who):
    """(graph, edge labels, whether variables' kinds mark weights) for a Symbol, Graph or block."""
    from ..symbol import Symbol
    if isinstance(source, Symbol):
        return _symbol_graph(source, shape, dtype)
    if isinstance(source, Graph):
        graph = _retyped(source, shape, dtype) if shape else source
        typed = all(t is not None for n in graph.nodes for t in n.types)
        return graph, EdgeLabels("full" if typed else "none"), True
    graph = _block_graph(source, who)
    if graph is not None:
        return _graph_to_draw(graph, shape, dtype, who)
    raise TypeError(f"{who}: expected a Symbol, a graphc Graph or a HybridBlock that has run, "
                    f"got {type(source).__name__}")


def _symbol_graph(symbol, shape, dtype):
    dtypes = {k: _dtype_name(v) for k, v in (dtype or {}).items()}
    if shape is not None:
        graph = _typed_symbol_graph(symbol, shape, dtypes)
        style = "mxnet"
    else:
        graph, style = symbol._graph(), "none"
    value_dtypes = _value_dtypes(graph, dtypes) if dtype is not None else None
    return graph, EdgeLabels(style, value_dtypes), False


def _typed_symbol_graph(symbol, shape, dtypes) -> Graph:
    """The symbol's graph typed from the given input shapes; where graphc cannot infer some
    variable (a loss's label, which MXNet infers backwards from the loss), every value that
    does not depend on it is still typed, so the picture and table show what is known."""
    try:
        return symbol._bind(shape, dtypes)
    except GraphcError:
        var_types = symbol._var_types(shape, dtypes, partial=True)
    from ..ops.graph import Node
    from ..ops.registry import get_op
    new_of, nodes = {}, []
    for n in symbol._graph().nodes:
        if n.is_var:
            types = (var_types.get(n.name),)
        elif n.is_const:
            types = n.types
        else:
            ins = [new_of[(id(v.node), v.index)].type for v in n.inputs]
            types = tuple(get_op(n.op).infer_types(ins, n.attrs, f"'{n.name}'")) if all(ins) else \
                (None,) * len(n.types)
        new = Node(n.op, [new_of[(id(v.node), v.index)] for v in n.inputs], n.attrs, n.name, types, n.hints)
        nodes.append(new)
        for i in range(len(types)):
            new_of[(id(n), i)] = new.out(i)
    graph = symbol._graph()
    outputs = [new_of[(id(v.node), v.index)] for v in graph.outputs]
    return Graph(nodes, [n for n in nodes if n.is_var], outputs, graph.name)


def _value_dtypes(graph: Graph, given: dict) -> dict:
    """(id(node), output) -> dtype name: the inferred type where known, else MXNet's rule
    (an operator's `dtype` attribute, else its first input's dtype)."""
    out = {}
    for n in graph.nodes:
        for i, t in enumerate(n.types):
            if t is not None:
                out[(id(n), i)] = t.dtype
            elif n.is_var:
                out[(id(n), i)] = given.get(n.name)
            else:
                first = next((out.get((id(v.node), v.index)) for v in n.inputs
                              if out.get((id(v.node), v.index))), None)
                out[(id(n), i)] = n.attrs.get("dtype") or first
    return out


def _dtype_name(value) -> str:
    import numpy as np
    return np.dtype(value).name


def _retyped(graph: Graph, shape, dtype) -> Graph:
    from ..ops.types import TensorType
    from ..passes.infer import infer_types
    dtype = dtype or {}
    types = {}
    for name, dims in shape.items():
        old = next((n.types[0] for n in graph.inputs if n.name == name and n.types), None)
        dt = _dtype_name(dtype[name]) if name in dtype else (old.dtype if old is not None else "float32")
        types[name] = TensorType(tuple(dims), dt)
    return infer_types(graph, types)


def _block_graph(block, who):
    """A block's traced graph (the partitioned one when it ran model-parallel), or None when
    `block` is not a HybridBlock."""
    op = getattr(block, "_cached_op", "no block")
    if op == "no block" or not hasattr(block, "hybridize"):
        return None
    entry = getattr(op, "last", None) if op is not None else None
    if entry is None:
        raise GraphcError(f"{who}: block {getattr(block, 'name', '?')!r} has no traced graph yet: call "
                          "hybridize() and run it once on an input, or pass net(mx.sym.var('data'))")
    placed = getattr(entry, "model_parallel", None)
    if placed is not None and placed.forward:
        return placed.forward.get(False, next(iter(placed.forward.values())))[0]
    return entry.graph


__all__ = ["plot_network", "print_summary", "print_partition_summary", "NetworkPlot", "GraphvizMissingWarning"]
