"""A Scene as Graphviz DOT text, laid out as MXNet's `plot_network` writes it (through the
`graphviz` package): one statement per node, then one per edge written from the consumer to its
input with `dir=back`, so Graphviz ranks inputs at the bottom and outputs at the top.

A partitioned scene adds one `cluster_` subgraph per device (Graphviz draws it as a labelled
frame) and draws cut edges red and dashed.
"""
from __future__ import annotations

import re

from .scene import CUT_COLOR, Scene

_PLAIN_ID = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*\Z")
_NUMERAL = re.compile(r"-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)\Z")
_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}


def dot_id(text: str) -> str:
    """`text` as a DOT ID: bare when the grammar allows it, else a quoted string."""
    text = str(text)
    if (_PLAIN_ID.match(text) or _NUMERAL.match(text)) and text.lower() not in _KEYWORDS:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _attr_list(attrs: dict) -> str:
    """`[label=... k=v ...]`: the label first, the rest sorted, as the graphviz package writes them."""
    items = []
    if "label" in attrs:
        items.append(f"label={dot_id(attrs['label'])}")
    items += [f"{k}={dot_id(v)}" for k, v in sorted(attrs.items()) if k != "label"]
    return "[" + " ".join(items) + "]"


def scene_to_dot(scene: Scene) -> str:
    lines = [f"digraph {dot_id(scene.title)} {{"]
    for box in scene.boxes:
        lines.append(f"\t{dot_id(box.key)} {_attr_list({'label': chr(10).join(box.lines), **box.attrs})}")
    for i, device in enumerate(scene.devices):
        members = "".join(f" {dot_id(b.key)};" for b in scene.boxes if b.device == device)
        lines.append(f"\tsubgraph {dot_id(f'cluster_{i}')} {{ label={dot_id(device)}; style=dashed;{members} }}")
    for edge in scene.edges:
        attrs = {"label": edge.label, "dir": "back", "arrowtail": "open"}
        if edge.cut is not None:
            attrs.update(color=CUT_COLOR, fontcolor=CUT_COLOR, style="dashed", penwidth="2")
        lines.append(f"\t{dot_id(edge.dst)} -> {dot_id(edge.src)} {_attr_list(attrs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["scene_to_dot", "dot_id"]
