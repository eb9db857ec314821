"""A Scene drawn as SVG by graphc itself, for machines without Graphviz's `dot`.

The file is plain SVG 1.1 that any browser shows and any XML parser reads: edges first (so boxes
cover their ends), then boxes, then a legend. Each box is `<g class="node">` carrying the node's
name, operator and device in `data-*` attributes and a `<title>` (the tooltip); each edge is
`<g class="edge">` with `data-from`/`data-to`, and a cut between devices has the class `cut`,
is drawn red and dashed, and says how many bytes cross. Tests and tools read the picture back
through those attributes rather than through coordinates.
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .layout import Layout, layered_layout
from .scene import CUT_COLOR, DEVICE_COLORS, Box, Scene

FONT_SIZE = 12.0
CHAR_WIDTH = 7.0      # a generous mean advance of a 12 px sans-serif glyph
LINE_HEIGHT = 15.0
POINTS_PER_INCH = 72.0


def box_size(box: Box) -> tuple:
    """At least the size Graphviz would give (node_attrs width/height, in inches), and wide
    enough for the label: graphc's labels (fused groups) run longer than MXNet's."""
    text_w = max((len(line) for line in box.lines), default=0) * CHAR_WIDTH + 16
    text_h = len(box.lines) * LINE_HEIGHT + 12
    w = _inches(box.attrs.get("width"), 0.75) * POINTS_PER_INCH
    h = _inches(box.attrs.get("height"), 0.5) * POINTS_PER_INCH
    if box.shape in ("oval", "ellipse", "circle"):
        text_w, text_h = text_w * 1.3, text_h * 1.2
    return max(w, text_w), max(h, text_h)


def _inches(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def scene_to_svg(scene: Scene) -> str:
    sizes = {b.key: box_size(b) for b in scene.boxes}
    layout = layered_layout([b.key for b in scene.boxes], sizes, [(e.src, e.dst) for e in scene.edges])
    legend = _legend(scene, layout)
    width = max(layout.width, legend[1])
    height = layout.height + legend[2]
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="Helvetica,Arial,sans-serif" '
        f'font-size="{FONT_SIZE:g}">',
        f"<title>{escape(scene.title)}</title>",
        "<defs>",
        _marker("arrow", "#333333"),
        _marker("arrow-cut", CUT_COLOR),
        "</defs>",
        '<rect class="background" x="0" y="0" width="100%" height="100%" fill="white"/>',
        '<g class="edges">',
    ]
    labelled = set()     # a value read by several consumers is labelled once, where it leaves
    for i, (e, route) in enumerate(zip(scene.edges, layout.routes)):
        show = (e.src, e.label) not in labelled
        labelled.add((e.src, e.label))
        parts.append(_edge(i, e, route, show))
    parts += ["</g>", '<g class="nodes">']
    parts += [_box(b, layout.centers[b.key], sizes[b.key]) for b in scene.boxes]
    parts += ["</g>", legend[0], "</svg>"]
    return "\n".join(p for p in parts if p) + "\n"


def _marker(ident: str, color: str) -> str:
    return (f'<marker id="{ident}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')


def _path(points) -> str:
    """Straight through each virtual point, S-curves between ranks."""
    (x, y), rest = points[0], points[1:]
    d = [f"M{x:.1f},{y:.1f}"]
    for nx_, ny in rest:
        mid = (y + ny) / 2
        d.append(f"C{x:.1f},{mid:.1f} {nx_:.1f},{mid:.1f} {nx_:.1f},{ny:.1f}")
        x, y = nx_, ny
    return " ".join(d)


def _edge(i: int, edge, route, show_label: bool = True) -> str:
    cut = edge.cut is not None
    cls = "edge cut" if cut else "edge"
    stroke = (f'stroke="{CUT_COLOR}" stroke-width="2" stroke-dasharray="6,3" marker-end="url(#arrow-cut)"'
              if cut else 'stroke="#333333" stroke-width="1.2" marker-end="url(#arrow)"')
    extra = ""
    if cut:
        extra = f' data-cut={quoteattr(f"{edge.cut[0]}->{edge.cut[1]}")}'
        if edge.nbytes is not None:
            extra += f' data-bytes="{edge.nbytes}"'
    out = [f'<g class="{cls}" id="e{i}" data-from={quoteattr(edge.src)} data-to={quoteattr(edge.dst)}{extra}>',
           f"<title>{escape(edge.src)} \u2192 {escape(edge.dst)}</title>",
           f'<path d="{_path(route)}" fill="none" {stroke}/>']
    label = edge.label
    if cut and edge.nbytes is not None:
        label = f"{label} ({_bytes(edge.nbytes)})"
    if label and show_label:
        # where the value leaves its producer: the labels of one value's readers coincide
        x0, y0 = route[0]
        color = f' fill="{CUT_COLOR}"' if cut else ' fill="#555555"'
        out.append(f'<text class="edge-label" x="{x0 + 5:.1f}" y="{y0 - 6:.1f}" font-size="10"{color}>'
                   f"{escape(label)}</text>")
    out.append("</g>")
    return "".join(out)


def _box(box: Box, center, size) -> str:
    (x, y), (w, h) = center, size
    fill = box.fill or "white"
    attrs = f'data-name={quoteattr(box.name)} data-op={quoteattr(box.op)}'
    if box.device:
        attrs += f" data-device={quoteattr(box.device)}"
    if box.fused_ops:
        attrs += f" data-fused={quoteattr(' '.join(box.fused_ops))}"
    title = box.name + (f" ({box.op})" if box.op != "null" else "") + (f" on {box.device}" if box.device else "")
    out = [f'<g class="node" data-key={quoteattr(box.key)} {attrs}>', f"<title>{escape(title)}</title>"]
    stroke = 'stroke="#222222" stroke-width="' + ("2.2" if box.fused_ops else "1") + '"'
    if box.shape in ("oval", "ellipse", "circle"):
        out.append(f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" fill="{fill}" {stroke}/>')
    else:
        rounded = ' rx="6"' if box.fused_ops else ""
        out.append(f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}"{rounded} '
                   f'fill="{fill}" {stroke}/>')
    top = y - (len(box.lines) - 1) * LINE_HEIGHT / 2 + FONT_SIZE / 3
    text = "".join(f'<tspan x="{x:.1f}" y="{top + i * LINE_HEIGHT:.1f}">{escape(line)}</tspan>'
                   for i, line in enumerate(box.lines))
    out.append(f'<text text-anchor="middle">{text}</text></g>')
    return "".join(out)


def _legend(scene: Scene, layout: Layout) -> tuple:
    """(svg, width, height) of the device legend under the drawing; nothing when unpartitioned."""
    if not scene.devices:
        return "", 0.0, 0.0
    y0 = layout.height
    items = [f'<g class="legend" transform="translate(16,{y0:.1f})">',
             '<text x="0" y="12" font-weight="bold">devices</text>']
    for i, device in enumerate(scene.devices):
        y = 22 + i * 20
        color = DEVICE_COLORS[i % len(DEVICE_COLORS)]
        items.append(f'<g class="legend-device" data-device={quoteattr(device)}>'
                     f'<rect x="0" y="{y}" width="14" height="14" fill="{color}" stroke="#222222"/>'
                     f'<text x="20" y="{y + 11}">{escape(device)}</text></g>')
    y = 22 + len(scene.devices) * 20
    items.append(f'<g class="legend-cut"><path d="M0,{y + 7} L14,{y + 7}" stroke="{CUT_COLOR}" stroke-width="2" '
                 f'stroke-dasharray="6,3"/><text x="20" y="{y + 11}">copy between devices (cut)</text></g>')
    items.append("</g>")
    width = 16 + 20 + CHAR_WIDTH * max(len("copy between devices (cut)"), *(len(d) for d in scene.devices)) + 16
    return "".join(items), width, y + 30


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


__all__ = ["scene_to_svg", "box_size"]
