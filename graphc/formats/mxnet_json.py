"""MXNet 1.x `-symbol.json` graphs: read into graphc's IR, write back in MXNet 1.9's format.

Reading happens in two steps. `read_symbol_json` checks the file's structure alone (keys, node
references in topological order, heads in range) and returns the nodes as written; it needs no
operator knowledge. `load_symbol_json` then resolves each operator in the registry, parses its
attributes and builds an *untyped* Graph (every output type is None): MXNet files leave
parameter shapes to the `.params` file (`__shape__` keeps 0 for unknown dimensions), so types
come later, from `bind_types`, once the caller knows the arrays and the data shapes.

An operator graphc does not know is refused with the node and the file named: guessing what an
unknown operator does would run a different model than the one in the file. Output counts come
from the operator declarations, never from `node_row_ptr`, which depends on the MXNet build
that wrote the file (an MKLDNN build gives max-Pooling a hidden workspace output).

Depth is never bounded by Python's recursion limit in a way a file can reach: the graph is
walked iteratively, and where a nested value must be parsed by a recursive parser (the JSON
text itself, Python-literal attributes), a file nested beyond what that parser takes is refused
with a FormatError naming the file, not a bare RecursionError.

This module parses text and builds graphs through `graphc.ops`; it must never import a backend.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Iterable, Mapping

from graphc.ops.attrs import REQUIRED, format_attr
from graphc.ops.builder import GraphBuilder
from graphc.ops.dtypes import MXNET_FLAG, FROM_MXNET_FLAG
from graphc.ops.errors import FormatError, GraphcError, OpAttributeError, ShapeError
from graphc.ops.graph import CONST, Graph, Node, Value, constant
from graphc.ops.registry import get_op, has_op
from graphc.ops.types import TensorType

MXNET_VERSION = 10901  # what dump_symbol_json claims to be: MXNet 1.9.1's format
# Nesting of graphc's output tree (the lists/tuples a hybridized block returned). Real blocks
# nest a few levels; the front end rebuilds the nesting recursively, so the file may not
# ask for more than a recursion-safe depth.
MAX_OUTPUT_TREE_DEPTH = 100
OUTPUT_TREE_ATTR = "graphc_output_tree"


@dataclass(frozen=True)
class RawNode:
    """One node as the file writes it: attrs are strings, inputs are (node, output, version)."""
    index: int
    op: str
    name: str
    attrs: dict
    inputs: tuple


@dataclass(frozen=True)
class SymbolFile:
    """A structurally valid symbol file, operators not yet resolved."""
    source: str
    nodes: tuple
    heads: tuple
    attrs: dict


# -- reading: structure --------------------------------------------------------------------------
def _fail(source: str, what: str, node: int | None = None, name: str | None = None) -> FormatError:
    where = "" if node is None else f"node {node}" + (f" {name!r}" if name else "") + ": "
    return FormatError(f"{source}: {where}{what}")


def _entry(source, value, what, node=None, name=None) -> tuple:
    """An input or head: [node, output] or [node, output, version], all non-negative ints."""
    if (not isinstance(value, list) or len(value) not in (2, 3)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value)):
        raise _fail(source, f"{what} must be [node index, output index(, version)] of non-negative "
                            f"integers, found {value!r}", node, name)
    return tuple(value) if len(value) == 3 else (value[0], value[1], 0)


def _attr_dict(source, node: dict, index: int, name: str) -> dict:
    """`attrs` (MXNet >= 0.9), or the older `param`/`attr`; merged, newer spelling winning."""
    merged = {}
    for key in ("param", "attr", "attrs"):
        part = node.get(key, {})
        if not isinstance(part, dict):
            raise _fail(source, f"{key!r} must be an object of strings, found {type(part).__name__}", index, name)
        for k, v in part.items():
            if not isinstance(v, str):
                raise _fail(source, f"attribute {k!r} must be a string as MXNet writes it, found {v!r}", index, name)
        merged.update(part)
    return merged


def _parse_json(text: str, source: str, what: str = "the file"):
    """json.loads, with its failures as FormatErrors naming the file. Python's JSON parser is
    recursive: a document nested deeper than the recursion limit allows is refused as such."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{source}: {what} is not valid JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None
    except RecursionError:
        raise FormatError(f"{source}: {what} nests JSON arrays/objects deeper than the parser takes "
                          f"(about {sys.getrecursionlimit()} levels); no symbol file needs that, so the "
                          "file is corrupt or hostile") from None


def read_symbol_json(text: str, source: str = "<string>") -> SymbolFile:
    """Parse and check the structure of a symbol file; operators are not looked up."""
    doc = _parse_json(text, source)
    if not isinstance(doc, dict):
        raise _fail(source, f"expected a JSON object with 'nodes' and 'heads', found {type(doc).__name__}")
    for key in ("nodes", "heads"):
        if not isinstance(doc.get(key), list):
            raise _fail(source, f"expected a list under {key!r}, found {type(doc.get(key)).__name__}")
    nodes = []
    for i, node in enumerate(doc["nodes"]):
        if not isinstance(node, dict):
            raise _fail(source, f"expected an object, found {type(node).__name__}", i)
        for key, kind in (("op", str), ("name", str), ("inputs", list)):
            if not isinstance(node.get(key), kind):
                raise _fail(source, f"expected key {key!r} holding a {kind.__name__}, found {node.get(key)!r}",
                            i, node.get("name") if isinstance(node.get("name"), str) else None)
        name, op = node["name"], node["op"]
        inputs = []
        for pos, value in enumerate(node["inputs"]):
            entry = _entry(source, value, f"input {pos}", i, name)
            if entry[0] >= i:
                raise _fail(source, f"input {pos} refers to node {entry[0]}, which does not come before it "
                                    f"(nodes must be in topological order; the file has {len(doc['nodes'])})", i, name)
            inputs.append(entry)
        if op == "null" and inputs:
            raise _fail(source, f"a variable ('null' node) has {len(inputs)} inputs", i, name)
        nodes.append(RawNode(i, op, name, _attr_dict(source, node, i, name), tuple(inputs)))
    heads = []
    for k, value in enumerate(doc["heads"]):
        entry = _entry(source, value, f"head {k}")
        if entry[0] >= len(nodes):
            raise _fail(source, f"head {k} refers to node {entry[0]}, but the file has {len(nodes)} nodes")
        heads.append(entry)
    if not heads:
        raise _fail(source, "the graph has no heads (outputs)")
    if not isinstance(doc.get("arg_nodes", []), list):
        raise _fail(source, f"expected a list under 'arg_nodes', found {type(doc['arg_nodes']).__name__}")
    for k in doc.get("arg_nodes", []):
        if not isinstance(k, int) or not 0 <= k < len(nodes) or nodes[k].op != "null":
            raise _fail(source, f"arg_nodes lists {k!r}, which is not the index of a variable ('null') node")
    for n in nodes:  # a variable has exactly one output; op outputs are checked once ops are known
        for pos, (src, out, _) in enumerate(n.inputs):
            if nodes[src].op == "null" and out != 0:
                raise _fail(source, f"input {pos} uses output {out} of variable {nodes[src].name!r}, "
                                    "which has only output 0", n.index, n.name)
    attrs = doc.get("attrs", {})
    return SymbolFile(source, tuple(nodes), tuple(heads), attrs if isinstance(attrs, dict) else {})


def read_symbol_file(path) -> str:
    """The text of a symbol file; one that is not UTF-8 is refused naming the file and byte."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: byte {exc.start}: not UTF-8 text ({exc.reason}); a symbol file is "
                          "JSON text") from None


# -- reading: the graph --------------------------------------------------------------------------
def _graph_name(source: str) -> str:
    base = os.path.basename(source)
    for suffix in ("-symbol.json", ".json"):
        if base.endswith(suffix):
            return base[: -len(suffix)] or "graph"
    return "graph" if base.startswith("<") else base


def load_symbol_json(text: str, source: str = "<string>", data_names: Iterable[str] = (),
                     name: str | None = None) -> Graph:
    """Build an untyped Graph from symbol-file text. `source` names the file in errors.

    Variables get hints['kind']: 'aux' where an operator mutates them (BatchNorm's moving
    statistics), 'input' for `data_names`, else 'param' (the file does not say which variables
    are data). MXNet's `__shape__`, `__dtype__`, `__lr_mult__`, ... stay in hints as written.
    Graph.inputs are all variables in file order; Graph.outputs are the heads."""
    sf = read_symbol_json(text, source)
    built: list[Node] = []
    aux: set = set()
    for raw in sf.nodes:
        if raw.op == "null":
            built.append(Node("var", (), {}, raw.name, (None,), dict(raw.attrs)))
            continue
        if not has_op(raw.op):
            raise _fail(source, f"unknown operator {raw.op!r}: graphc has no declaration for it and "
                                "refuses to guess what it computes", raw.index, raw.name)
        op = get_op(raw.op)
        try:
            attrs = op.parse({k: v for k, v in raw.attrs.items() if not k.startswith("__")})
            n_out = op.n_outputs(attrs)
            expected = op.input_names(attrs)
        except (OpAttributeError, ShapeError, ValueError, TypeError, KeyError) as exc:
            raise _fail(source, f"{raw.op}: {exc}", raw.index, raw.name) from None
        except (RecursionError, MemoryError):
            # Python's literal parser gives these for an attribute nested thousands deep
            # ("((((...", "----1"): its own stack overflowed, not the machine's memory
            raise _fail(source, f"{raw.op}: an attribute value is nested too deeply to parse "
                                f"({_longest_attr(raw.attrs)})", raw.index, raw.name) from None
        if len(raw.inputs) != len(expected):
            raise _fail(source, f"{raw.op} takes {len(expected)} inputs {list(expected)}, the file gives "
                                f"{len(raw.inputs)}", raw.index, raw.name)
        inputs = []
        for pos, (src, out, _version) in enumerate(raw.inputs):
            producer = built[src]
            if out >= len(producer.types):
                raise _fail(source, f"input {pos} uses output {out} of {producer.name!r} ({producer.op}), "
                                    f"which has {len(producer.types)}", raw.index, raw.name)
            inputs.append(Value(producer, out))
            if pos in op.aux_inputs and producer.op == "var":
                aux.add(id(producer))
        hints = {k: v for k, v in raw.attrs.items() if k.startswith("__")}
        hints["given_attrs"] = frozenset(k for k in raw.attrs if not k.startswith("__"))
        built.append(Node(op.name, inputs, attrs, raw.name, (None,) * n_out, hints))
    variables = [n for n in built if n.op == "var"]
    data_names = tuple(data_names)
    known = {n.name for n in variables}
    for d in data_names:
        if d not in known:
            raise FormatError(f"{source}: data input {d!r} is not a variable of this graph "
                              f"(variables: {sorted(known)})")
    for n in variables:
        n.hints["kind"] = "aux" if id(n) in aux else "input" if n.name in data_names else "param"
        _check_variable_hints(source, n)
    outputs = []
    for k, (src, out, _version) in enumerate(sf.heads):
        if out >= len(built[src].types):
            raise _fail(source, f"head {k} uses output {out} of {built[src].name!r} ({built[src].op}), "
                                f"which has {len(built[src].types)}")
        outputs.append(Value(built[src], out))
    return Graph(built, variables, outputs, name or _graph_name(source),
                 output_tree_of(sf.attrs, len(outputs), source))


def _longest_attr(attrs: dict) -> str:
    key = max(attrs, key=lambda k: len(attrs[k]))
    return f"attribute {key!r} is {len(attrs[key])} characters long"


def _check_variable_hints(source: str, node: Node) -> None:
    """A variable's __shape__/__dtype__ must parse: SymbolBlock and bind_types read them later,
    where the file is no longer named."""
    from ..passes.infer import hinted_type
    try:
        hinted_type(node)
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}") from None


# -- the output tree graphc's export adds ----------------------------------------------------------
def output_tree_of(file_attrs: dict, n_outputs: int, source: str = "<string>"):
    """The nesting of the outputs as the exported block returned them (leaf k = output k; an
    inner node is ('list' | 'tuple', [subtrees])), from the file's `graphc_output_tree`
    attribute; None when the file has none (MXNet's own files). Parsed iteratively and
    checked whole: every leaf a head of the file, at most MAX_OUTPUT_TREE_DEPTH levels."""
    entry = file_attrs.get(OUTPUT_TREE_ATTR)
    if entry is None:
        return None
    what = f"attribute {OUTPUT_TREE_ATTR!r}"
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
        raise _fail(source, f"{what} must be [\"str\", \"<JSON tree>\"], found {entry!r:.200}")
    doc = _parse_json(entry[1], source, what)

    def bad(why):
        return _fail(source, f"{what}: {why}")

    # Depth-first, with an explicit stack of (JSON node, depth, list that receives the result).
    root: list = []
    stack = [(doc, 1, root)]
    while stack:
        obj, depth, into = stack.pop()
        if depth > MAX_OUTPUT_TREE_DEPTH:
            raise bad(f"outputs nested more than {MAX_OUTPUT_TREE_DEPTH} levels deep")
        if isinstance(obj, int) and not isinstance(obj, bool):
            if not 0 <= obj < n_outputs:
                raise bad(f"leaf {obj} is not an output index (the file has {n_outputs} heads)")
            into.append(obj)
            continue
        if not (isinstance(obj, list) and len(obj) == 2 and obj[0] in ("list", "tuple")
                and isinstance(obj[1], list)):
            raise bad(f"expected an output index or [\"list\"|\"tuple\", [...]], found {obj!r:.200}")
        items: list = []
        into.append((obj[0], items))
        # children are appended to `items` in order: push them reversed
        stack.extend((child, depth + 1, items) for child in reversed(obj[1]))
    tree = root[0]
    leaves = sorted(_leaves(tree))
    if leaves != list(range(n_outputs)):
        raise bad(f"expected each of the {n_outputs} outputs exactly once, found leaves {leaves[:20]}")
    return tree


def _leaves(tree) -> list:
    out, stack = [], [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, int):
            out.append(t)
        else:
            stack.extend(t[1])
    return out


# -- types ---------------------------------------------------------------------------------------
def _hinted_type(node: Node):
    from ..passes.infer import hinted_type
    return hinted_type(node)


def bind_types(graph: Graph, input_types: Mapping[str, TensorType]) -> Graph:
    """Type an untyped graph: each variable from `input_types`, or from its complete
    __shape__/__dtype__ hints; operators are re-emitted in order (passes.infer.infer_types), so
    shape errors name the node that cannot take its inputs."""
    from ..passes.infer import infer_types
    names = {n.name for n in graph.nodes if n.is_var}
    unknown = sorted(set(input_types) - names)
    if unknown:
        raise GraphcError(f"graph {graph.name}: types given for {unknown}, which are not variables "
                          f"(variables: {sorted(names)})")
    return infer_types(graph, dict(input_types))


# -- writing -------------------------------------------------------------------------------------
def constants_of(graph: Graph) -> dict:
    """name -> array of each `_const` node: dump_symbol_json writes them as variables, so the
    caller saves these beside the parameters (as 'arg:<name>')."""
    return {n.name: n.attrs["value"] for n in graph.nodes if n.op == CONST}


def _dunder(hints: dict) -> dict:
    return {k: v if isinstance(v, str) else format_attr(v)
            for k, v in hints.items() if k.startswith("__") and k.endswith("__")}


# a variable's hints that are graphc's bookkeeping; every other hint is an attribute the user set
# (`sym.var('x', attr={'group': '1'})`, an AttrScope's keys), which MXNet writes as it was given
_VARIABLE_BOOKKEEPING = ("kind", "given_attrs", "device")


def _variable_json(node: Node) -> dict:
    attrs = _dunder(node.hints)
    attrs.update({k: v for k, v in node.hints.items()
                  if k not in _VARIABLE_BOOKKEEPING and not k.startswith("__") and isinstance(v, str)})
    t = node.types[0] if node.types else None
    # Parameters, states and constants carry their type, as MXNet's own export does. Data
    # inputs keep only what they had: a __shape__ there would pin the batch size.
    if isinstance(t, TensorType) and (node.op == CONST or node.hints.get("kind") != "input"):
        attrs["__shape__"] = format_attr(t.shape)
        attrs["__dtype__"] = str(MXNET_FLAG[t.dtype])
    out = {"op": "null", "name": node.name}
    if attrs:
        out["attrs"] = dict(sorted(attrs.items()))
    out["inputs"] = []
    return out


def _op_attrs_json(node: Node, op) -> dict:
    attrs = {}
    given = node.hints.get("given_attrs", ())
    for key, value in node.attrs.items():
        if key.startswith("__"):
            continue        # graphc's own bookkeeping (a Custom node's __site__): parsing drops these
        spec = op.attrs.get(key)
        if key not in given and spec is not None and spec.default is not REQUIRED \
                and spec.default == value and type(spec.default) is type(value):
            continue
        attrs[key] = format_attr(value)
    attrs.update(_dunder(node.hints))
    return dict(sorted(attrs.items()))


def _nnvm_order(graph: Graph) -> list:
    """Nodes in the order MXNet writes them: depth-first post-order from the heads, each input
    visited in order (so a variable sits just before its first user), then variables that no
    output needs (graph inputs kept for the calling convention) at the end."""
    order, seen = [], set()
    for head in graph.outputs:
        stack = [(head.node, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for v in reversed(node.inputs):
                if id(v.node) not in seen:
                    stack.append((v.node, False))
    for node in graph.nodes:
        if id(node) not in seen:
            seen.add(id(node))
            order.append(node)
    return order


def dump_symbol_json(graph: Graph) -> str:
    """Write `graph` as MXNet 1.9 symbol JSON. Attributes equal to the operator's default are
    left out; `_const` nodes become variables (get their values from `constants_of`)."""
    index: dict[int, int] = {}
    nodes, arg_nodes, row_ptr = [], [], [0]
    versions: dict[int, int] = {}  # variable -> times mutated so far (NNVM's entry version)
    variable_names: dict[str, Node] = {}
    for node in _nnvm_order(graph):
        if node.is_var or node.is_const:
            if node.name in variable_names:
                raise FormatError(f"cannot export graph {graph.name}: two variables/constants are named "
                                  f"{node.name!r}, and MXNet keys parameters by name")
            variable_names[node.name] = node
            index[id(node)] = len(nodes)
            arg_nodes.append(len(nodes))
            nodes.append(_variable_json(node))
            row_ptr.append(row_ptr[-1] + 1)
            continue
        if node.op.startswith("_fused") or not has_op(node.op):
            raise FormatError(f"cannot export node {node.name!r}: operator {node.op!r} does not exist in MXNet")
        op = get_op(node.op)
        inputs = []
        for pos, v in enumerate(node.inputs):
            if id(v.node) not in index:
                raise FormatError(f"cannot export node {node.name!r}: input {pos} ({v.node.name!r}) is not "
                                  f"among the graph's nodes before it")
            version = 0
            if v.node.is_var or v.node.is_const:
                version = versions.get(id(v.node), 0)
                if pos in op.aux_inputs:  # NNVM bumps a variable's version where an op mutates it
                    version += 1
                    versions[id(v.node)] = version
            inputs.append([index[id(v.node)], v.index, version])
        index[id(node)] = len(nodes)
        nodes.append({"op": op.name, "name": node.name, "attrs": _op_attrs_json(node, op), "inputs": inputs})
        n_out = len(node.types) if node.types else op.n_outputs(node.attrs)
        row_ptr.append(row_ptr[-1] + n_out)
    heads = []
    for v in graph.outputs:
        if id(v.node) not in index:
            raise FormatError(f"cannot export graph {graph.name}: output {v.node.name!r} is not among its nodes")
        heads.append([index[id(v.node)], v.index, 0])
    return _format(nodes, arg_nodes, row_ptr, heads)


def _format(nodes, arg_nodes, row_ptr, heads) -> str:
    """MXNet's layout: one key per line inside each node, short lists on one line."""
    def node_text(n):
        lines = [f'      "op": {json.dumps(n["op"])}', f'      "name": {json.dumps(n["name"])}']
        if n.get("attrs"):
            body = ",\n".join(f"        {json.dumps(k)}: {json.dumps(v)}" for k, v in n["attrs"].items())
            lines.append('      "attrs": {\n' + body + "\n      }")
        lines.append(f'      "inputs": {json.dumps(n["inputs"])}')
        return "    {\n" + ",\n".join(lines) + "\n    }"
    return ("{\n  \"nodes\": [\n" + ",\n".join(node_text(n) for n in nodes) + "\n  ],\n"
            f"  \"arg_nodes\": {json.dumps(arg_nodes)},\n"
            f"  \"node_row_ptr\": {json.dumps(row_ptr)},\n"
            f"  \"heads\": {json.dumps(heads)},\n"
            f"  \"attrs\": {{\"mxnet_version\": [\"int\", {MXNET_VERSION}]}}\n}}\n")
