"""partition_devices: place every node of a graph on a device and insert `_CrossDeviceCopy` at
every edge whose ends sit on different devices (MXNet's PlaceDevice pass, for model parallelism).

The placement of a node, first rule that applies:
  1. a `_CrossDeviceCopy` sits on its `device` attribute (the copy's destination);
  2. a node already placed (a `device` hint: the autodiff pass gives each gradient node the
     device of the forward node it differentiates) keeps it;
  3. a variable named in `var_devices` (where a parameter's data lives) goes there, preferring
     its own ctx_group's device when its data is there too;
  4. a node whose `__ctx_group__` (mx.AttrScope(ctx_group=...)) is in `group2ctx` goes there;
  5. an operator reading a placed parameter (a variable of kind param/aux or named in
     var_devices, placed by rule 2, 3 or 4, or a value computed from such variables alone)
     goes to the first such parameter's device (a Gluon child initialised on cpu(1) runs there);
  6. an operator goes to the device of its first input placed by rules 1-6 (variables that
     sit on `default` only for want of a rule do not count);
  7. an operator of such variables and constants only goes to the device of its last reader
     (MXNet places ungrouped nodes from their consumers too), or to `default` if none;
  8. any other variable (the data inputs) goes to its `input_devices` entry or to `default`.
Constants are placed nowhere: each device program that reads one embeds its own.
GRAPHC_DUMP=partition_devices (or 1/all) prints the placed graph, a device per node.

The pass is pure: it returns a new graph whose nodes carry the device in their types (shown as
`@cpu(1)` in the listing) and in `hints['device']`; it never runs or compiles anything. Applied
to a graph that is already partitioned it adds only the copies that new edges need.
"""
from __future__ import annotations

import sys

from graphc.ops.errors import GraphcError
from graphc.ops.graph import Graph, Node, Value
from graphc.ops.registry import get_op

from .pipeline import dump_wanted

DEVICE = "device"            # the hint holding a node's device, e.g. 'cpu(1)'
COPY = "_CrossDeviceCopy"


def device_name(ctx) -> str:
    """'cpu(1)' for mx.cpu(1) or the string itself; refuses anything else in one line."""
    if isinstance(ctx, str):
        return ctx
    if hasattr(ctx, "device_type") and hasattr(ctx, "device_id"):
        return f"{ctx.device_type}({ctx.device_id})"
    raise GraphcError(f"partition_devices: a device must be a Context such as mx.cpu(1) or a string "
                      f"'cpu(1)', got {ctx!r} ({type(ctx).__name__})")


def node_device(node: Node):
    """The device the partitioning pass gave `node` (None for constants and unplaced graphs)."""
    if node.op == COPY:
        return node.attrs["device"]
    return node.hints.get(DEVICE)


def partition_devices(graph: Graph, group2ctx=None, var_devices=None, default="cpu(0)",
                      input_devices=None) -> Graph:
    """graph with every non-constant node placed and copies at the cuts (see the module doc).
    group2ctx: ctx_group name -> device; var_devices: variable name -> device or tuple of
    devices where its data lives; default: the device of data inputs and unplaced nodes;
    input_devices: data input name -> the device its array is on (the input sits there
    instead of on `default`, but operators do not follow it as they follow a parameter: an
    executor's weights are inputs on their group's device, read there without a copy)."""
    groups = {k: device_name(v) for k, v in (group2ctx or {}).items()}
    var_devs = {}
    for name, devs in (var_devices or {}).items():
        devs = devs if isinstance(devs, (tuple, list)) else (devs,)
        var_devs[name] = tuple(device_name(d) for d in devs)
    default = device_name(default)
    inputs_at = {k: device_name(v) for k, v in (input_devices or {}).items()}
    device_of = _place(graph, groups, var_devs, default, inputs_at)
    new_of = {}                 # (id(old node), index) -> new Value
    copies = {}                 # (id(new source node), index, device) -> copy Value
    nodes = []
    placed_nodes = {}           # id(old node) -> new Node (for graph.inputs)

    def moved(v: Value, device: str) -> Value:
        """v as seen on `device`: itself, or the (one, shared) copy of it there."""
        src = node_device(v.node)
        if src is None or src == device:
            return v
        key = (id(v.node), v.index, device)
        if key not in copies:
            copy = Node(COPY, [v], {"device": device}, f"{v.node.name}_to_{_slug(device)}",
                        (v.type.with_(device=device),), {DEVICE: device})
            nodes.append(copy)
            copies[key] = copy.out()
        return copies[key]

    for node in graph.nodes:
        if node.is_const:
            new = node
        else:
            dev = device_of[id(node)]
            ins = [new_of[(id(v.node), v.index)] for v in node.inputs]
            if node.op != COPY:
                ins = [moved(v, dev) for v in ins]
            new = Node(node.op, ins, node.attrs, node.name, _on(node.types, dev), {**node.hints, DEVICE: dev})
        placed_nodes[id(node)] = new
        nodes.append(new)
        for i in range(len(node.types)):
            new_of[(id(node), i)] = new.out(i)
    inputs = [placed_nodes[id(n)] for n in graph.inputs]
    outputs = [new_of[(id(v.node), v.index)] for v in graph.outputs]
    out = Graph(nodes, inputs, outputs, graph.name, graph.output_tree)
    if dump_wanted("partition_devices"):
        print(f"-- after partition_devices --\n{out}", file=sys.stderr)
    return out


def _place(graph: Graph, groups: dict, var_devs: dict, default: str, inputs_at: dict) -> dict:
    """id(node) -> device for every non-constant node, by the rules of the module doc.

    Two refinements keep the copies at the cuts. A value computed from parameters only (an
    unrolled LSTM's weight slices: passes/expand_rnn.py) counts as a parameter for rule 5, so
    the gate products go where the weights are, not where the activations come from. And an
    operator that reads only data inputs (and constants), directly or through other such
    operators (splitting the LSTM's initial state, a zeros begin-state), is placed where its
    last reader runs, as MXNet's PlaceDevice places ungrouped nodes from their consumers:
    the data is then copied once, before it is split, instead of once per piece."""
    device_of = {}
    anchored = set()            # placed by a rule of its own, not by the default
    param_like = set()          # parameters and the values computed from them alone
    free = []                   # operators of data inputs only: placed by their readers

    def place_var(node: Node):
        if node.hints.get(DEVICE):
            return node.hints[DEVICE], True
        group_dev = groups.get(node.hints.get("__ctx_group__"))
        held = var_devs.get(node.name)
        if held:
            return (group_dev if group_dev in held else held[0]), True
        if node.name in inputs_at:
            return inputs_at[node.name], False
        return (group_dev, True) if group_dev else (default, False)

    def place_op(node: Node, srcs):
        if node.op == COPY:
            return node.attrs["device"]
        if node.hints.get(DEVICE):
            return node.hints[DEVICE]
        group = node.hints.get("__ctx_group__")
        if group in groups:
            return groups[group]
        for src in srcs:
            if id(src) in param_like and id(src) in anchored:
                return device_of[id(src)]
        for src in srcs:
            if id(src) in anchored:
                return device_of[id(src)]
        return None

    for node in graph.nodes:
        if node.is_const:
            continue
        if node.is_var:
            device_of[id(node)], anchor = place_var(node)
            if anchor:
                anchored.add(id(node))
            if node.name in var_devs or node.hints.get("kind") in ("param", "aux"):
                param_like.add(id(node))
            continue
        srcs = [v.node for v in node.inputs if not v.node.is_const]
        dev = place_op(node, srcs)
        if dev is None:
            free.append(node)
        else:
            anchored.add(id(node))
        device_of[id(node)] = dev
        if node.op != COPY and srcs and all(id(s) in param_like for s in srcs):
            param_like.add(id(node))
    if free:
        readers = {}
        for node in graph.nodes:
            for v in node.inputs:
                readers.setdefault(id(v.node), []).append(node)
        for node in reversed(free):     # (readers come later in the graph: placed first)
            dev = next((device_of[id(r)] for r in reversed(readers.get(id(node), ()))
                        if r.op != COPY and device_of.get(id(r)) is not None), None)
            device_of[id(node)] = dev or default
    return device_of


def reader_devices(graph: Graph) -> dict:
    """variable name -> the device of the last node reading it in a partitioned graph (a copy
    reads for its destination), or the variable's own device when nothing reads it. This is
    where MXNet's PlaceDevice puts an ungrouped variable (its backward sweep gives each
    unplaced input the device of its last consumer), so where `simple_bind(group2ctx=...)`
    allocates an argument, its gradient and an auxiliary state."""
    found = {}
    for node in graph.nodes:
        if node.is_var:
            found.setdefault(node.name, node_device(node))
    for node in graph.nodes:
        for v in node.inputs:
            if v.node.is_var:
                found[v.node.name] = node_device(node)
    return found


def devices_of(graph: Graph) -> list:
    """The devices a partitioned graph uses, in order of first appearance."""
    seen = []
    for node in graph.nodes:
        dev = node_device(node)
        if dev is not None and dev not in seen:
            seen.append(dev)
    return seen


def check_partition(graph: Graph) -> Graph:
    """Raise unless every non-constant node is placed and every edge between two devices goes
    through a `_CrossDeviceCopy` (and no copy stays on one device)."""
    from graphc.ops.graph import VerifyError, format_node, value_names
    names = value_names(graph)
    for node in graph.nodes:
        if node.is_const:
            continue
        dev = node_device(node)
        if dev is None:
            raise VerifyError(f"partition: node {node.name!r} ({node.op}) has no device")
        for v in node.inputs:
            src = node_device(v.node)
            if src is None:
                continue
            if node.op == COPY:
                continue
            if src != dev:
                raise VerifyError(f"partition: {format_node(node, names)} on {dev} reads {v.node.name!r} on "
                                  f"{src} without a {COPY}")
    return graph


def _on(types, device):
    return tuple(None if t is None else t.with_(device=device) for t in types)


def _slug(device: str) -> str:
    return device.replace("(", "").replace(")", "")


get_op(COPY)   # the declaration must be registered (ops/declarations/placement.py)

__all__ = ["partition_devices", "check_partition", "node_device", "devices_of", "reader_devices", "device_name",
           "DEVICE", "COPY"]
