"""partition_devices: place every node of a graph on a device and insert `_CrossDeviceCopy` at
every edge whose ends sit on different devices (MXNet's PlaceDevice pass, for model parallelism).

The placement of a node, first rule that applies:
  1. a `_CrossDeviceCopy` sits on its `device` attribute (the copy's destination);
  2. a node already placed (a `device` hint: the autodiff pass gives each gradient node the
     device of the forward node it differentiates) keeps it;
  3. a variable named in `var_devices` (where a parameter's data lives) goes there, preferring
     its own ctx_group's device when its data is there too;
  4. a node whose `__ctx_group__` (mx.AttrScope(ctx_group=...)) is in `group2ctx` goes there;
  5. an operator reading a parameter (a variable of kind param/aux or named in var_devices)
     goes to the first such parameter's device (a Gluon child initialised on cpu(1) runs there);
  6. an operator goes to its first placed input's device;
  7. everything else (data inputs, operators of constants only) goes to `default`.
Constants are placed nowhere: each device program that reads one embeds its own.

The pass is pure: it returns a new graph whose nodes carry the device in their types (shown as
`@cpu(1)` in the listing) and in `hints['device']`; it never runs or compiles anything. Applied
to a graph that is already partitioned it adds only the copies that new edges need.
"""
from __future__ import annotations

from graphc.ops.errors import GraphcError
from graphc.ops.graph import Graph, Node, Value
from graphc.ops.registry import get_op

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


def partition_devices(graph: Graph, group2ctx=None, var_devices=None, default="cpu(0)") -> Graph:
    """graph with every non-constant node placed and copies at the cuts (see the module doc).
    group2ctx: ctx_group name -> device; var_devices: variable name -> device or tuple of
    devices where its data lives; default: the device of data inputs and unplaced nodes."""
    groups = {k: device_name(v) for k, v in (group2ctx or {}).items()}
    var_devs = {}
    for name, devs in (var_devices or {}).items():
        devs = devs if isinstance(devs, (tuple, list)) else (devs,)
        var_devs[name] = tuple(device_name(d) for d in devs)
    default = device_name(default)
    new_of = {}                 # (id(old node), index) -> new Value
    copies = {}                 # (id(new source node), index, device) -> copy Value
    nodes = []
    placed_nodes = {}           # id(old node) -> new Node (for graph.inputs)

    def place_var(node: Node) -> str:
        if node.hints.get(DEVICE):
            return node.hints[DEVICE]
        group_dev = groups.get(node.hints.get("__ctx_group__"))
        held = var_devs.get(node.name)
        if held:
            return group_dev if group_dev in held else held[0]
        return group_dev or default

    def place_op(node: Node, inputs) -> str:
        if node.op == COPY:
            return node.attrs["device"]
        if node.hints.get(DEVICE):
            return node.hints[DEVICE]
        group = node.hints.get("__ctx_group__")
        if group in groups:
            return groups[group]
        for v in inputs:
            if v.node.is_var and (v.node.name in var_devs or v.node.hints.get("kind") in ("param", "aux")):
                return v.node.hints[DEVICE]
        for v in inputs:
            dev = node_device(v.node)
            if dev is not None:
                return dev
        return default

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
        elif node.is_var:
            dev = place_var(node)
            new = Node(node.op, (), node.attrs, node.name, _on(node.types, dev), {**node.hints, DEVICE: dev})
        else:
            ins = [new_of[(id(v.node), v.index)] for v in node.inputs]
            dev = place_op(node, ins)
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
    return out


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

__all__ = ["partition_devices", "check_partition", "node_device", "devices_of", "device_name", "DEVICE", "COPY"]
