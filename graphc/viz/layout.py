"""A layered drawing of a DAG (Sugiyama's scheme), for pictures made without Graphviz's `dot`.

1. Ranks: each node one rank above its highest input (longest path from the sources); a source
   (a data input, a shown weight) then sits just below its first consumer, not at the bottom.
2. Edges that skip ranks get a virtual point on every rank they cross, so that they are routed
   around boxes, not through them.
3. Order within ranks: barycentre sweeps (a node goes to the mean position of its neighbours on
   the rank before), down and up, keeping the order with the fewest crossings seen.
4. Horizontal positions: each rank placed as close as it can to its neighbours' mean positions
   while keeping its order and the gaps between boxes: a least-squares fit under ordering
   constraints, solved exactly by pool-adjacent-violators.

Inputs are drawn at the bottom and outputs at the top, as MXNet's pictures (Graphviz with
`dir=back` edges) show them. The module knows sizes and points only, nothing of graphs or SVG.
"""
from __future__ import annotations

from dataclasses import dataclass

RANK_GAP = 36.0      # vertical space between ranks (edge labels sit in it)
NODE_GAP = 24.0      # horizontal space between neighbouring boxes
VIRTUAL_WIDTH = 8.0  # the width an edge passing through a rank takes there
MARGIN = 16.0
SWEEPS = 12


@dataclass
class Layout:
    width: float
    height: float
    centers: dict        # key -> (x, y)
    routes: list         # per edge, in the order given: the points of its polyline, producer first


def layered_layout(keys: list, sizes: dict, edges: list) -> Layout:
    """keys: nodes in topological order; sizes: key -> (width, height); edges: (producer,
    consumer) pairs (repeats allowed: an operator may read one value twice)."""
    ranks = _ranks(keys, edges)
    chains, layers, up, down = _virtual_chains(keys, edges, ranks)
    _order(layers, up, down)
    width_of = {k: sizes[k][0] if k in sizes else VIRTUAL_WIDTH for layer in layers for k in layer}
    xs = _positions(layers, up, down, width_of)
    heights = [max((sizes[k][1] for k in layer if k in sizes), default=0.0) for layer in layers]
    ys, y = {}, MARGIN
    for r in range(len(layers) - 1, -1, -1):     # the last rank at the top
        for k in layers[r]:
            ys[k] = y + heights[r] / 2
        y += heights[r] + RANK_GAP
    left = min((xs[k] - width_of[k] / 2 for k in xs), default=0.0)
    shift = MARGIN - left
    centers = {k: (xs[k] + shift, ys[k]) for k in xs}
    width = max((centers[k][0] + width_of[k] / 2 for k in centers), default=0.0) + MARGIN
    routes = _routes(chains, centers, sizes)
    return Layout(width, y - RANK_GAP + MARGIN, {k: centers[k] for k in keys}, routes)


def _ranks(keys, edges) -> dict:
    preds = {k: [] for k in keys}
    succs = {k: [] for k in keys}
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    rank = {}
    for k in keys:
        rank[k] = max((rank[p] + 1 for p in preds[k]), default=0)
    for k in keys:
        if not preds[k] and succs[k]:
            rank[k] = min(rank[s] for s in succs[k]) - 1
    return rank


def _virtual_chains(keys, edges, ranks):
    """Per edge the chain of points it passes (producer, virtual points, consumer); the ranks as
    lists in a first order (topological, a virtual point beside its producer); neighbours."""
    n_ranks = max(ranks.values(), default=0) + 1
    index = {k: i for i, k in enumerate(keys)}
    where = dict(ranks)
    first = {k: float(index[k]) for k in keys}
    chains = []
    for e, (u, v) in enumerate(edges):
        chain = [u]
        for r in range(ranks[u] + 1, ranks[v]):
            point = ("virtual", e, r)
            where[point] = r
            first[point] = index[u] + 0.5
            chain.append(point)
        chain.append(v)
        chains.append(chain)
    layers = [[] for _ in range(n_ranks)]
    for k in sorted(where, key=lambda k: first[k]):
        layers[where[k]].append(k)
    up = {k: [] for k in where}
    down = {k: [] for k in where}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
    return chains, layers, up, down


def _order(layers, up, down) -> None:
    """Barycentre sweeps in place, keeping the best order seen."""
    best = [list(layer) for layer in layers]
    best_cost = _crossings(layers, down)
    for sweep in range(SWEEPS):
        if best_cost == 0:
            break
        ranks = range(1, len(layers)) if sweep % 2 == 0 else range(len(layers) - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for r in ranks:
            pos = {k: i for layer in layers for i, k in enumerate(layer)}
            layer = layers[r]

            def barycentre(k, pos=pos):
                near = neighbours[k]
                return sum(pos[n] for n in near) / len(near) if near else pos[k]
            layer.sort(key=lambda k: (barycentre(k), pos[k]))
        cost = _crossings(layers, down)
        if cost < best_cost:
            best, best_cost = [list(layer) for layer in layers], cost
    layers[:] = best


def _crossings(layers, down) -> int:
    """Edge crossings between neighbouring ranks: inversions of the lower ends, the upper ends sorted."""
    total = 0
    for r in range(len(layers) - 1):
        pos = {k: i for i, k in enumerate(layers[r + 1])}
        ends = sorted((i, pos[v]) for i, u in enumerate(layers[r]) for v in down[u])
        total += _inversions([b for _, b in ends])
    return total


def _inversions(seq) -> int:
    if len(seq) < 2:
        return 0
    mid = len(seq) // 2
    left, right = sorted(seq[:mid]), sorted(seq[mid:])
    count = _inversions(seq[:mid]) + _inversions(seq[mid:])
    j = 0
    for a in left:          # pairs (a in left, b in right) with a > b
        while j < len(right) and right[j] < a:
            j += 1
        count += j
    return count


def _positions(layers, up, down, width_of) -> dict:
    x = {}
    for layer in layers:
        at = 0.0
        for i, k in enumerate(layer):
            if i:
                at += width_of[layer[i - 1]] / 2 + NODE_GAP + width_of[k] / 2
            x[k] = at
    for sweep in range(2 * 4 + 1):
        ranks = range(1, len(layers)) if sweep % 2 == 0 else range(len(layers) - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for r in ranks:
            _fit_rank(layers[r], neighbours, width_of, x)
    return x


def _fit_rank(layer, neighbours, width_of, x) -> None:
    """Move the rank's nodes toward their neighbours' mean x, keeping order and gaps: minimise
    sum w_i (x_i - want_i)^2 subject to x_{i+1} - x_i >= gap_i. With o_i the running sum of
    gaps, y_i = x_i - o_i must be non-decreasing: isotonic regression, pool-adjacent-violators."""
    if not layer:
        return
    offsets, at = [], 0.0
    for i, k in enumerate(layer):
        if i:
            at += width_of[layer[i - 1]] / 2 + NODE_GAP + width_of[k] / 2
        offsets.append(at)
    blocks = []             # [weighted sum, weight, count]
    for i, k in enumerate(layer):
        near = neighbours[k]
        want, weight = (sum(x[n] for n in near) / len(near), 1.0) if near else (x[k], 0.05)
        blocks.append([(want - offsets[i]) * weight, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w
            blocks[-1][2] += c
    i = 0
    for s, w, c in blocks:
        for _ in range(c):
            x[layer[i]] = s / w + offsets[i]
            i += 1


def _routes(chains, centers, sizes) -> list:
    """Polylines from the top of the producer to the bottom of the consumer, through the
    virtual points; ends spread along a box's side when several edges meet there."""
    out_ports, in_ports = {}, {}
    for e, chain in enumerate(chains):
        out_ports.setdefault(chain[0], []).append(e)
        in_ports.setdefault(chain[-1], []).append(e)

    def point(k):
        return centers[k]

    def spread(ports, toward, end):
        offsets = {}
        for key, es in ports.items():
            es = sorted(es, key=lambda e: point(chains[e][toward])[0])
            step = min(12.0, sizes[key][0] * 0.6 / max(len(es), 1))
            for j, e in enumerate(es):
                offsets[(e, end)] = (j - (len(es) - 1) / 2) * step
        return offsets

    offsets = {**spread(out_ports, 1, "out"), **spread(in_ports, -2, "in")}
    routes = []
    for e, chain in enumerate(chains):
        (x0, y0), (x1, y1) = centers[chain[0]], centers[chain[-1]]
        start = (x0 + offsets[(e, "out")], y0 - sizes[chain[0]][1] / 2)
        end = (x1 + offsets[(e, "in")], y1 + sizes[chain[-1]][1] / 2)
        routes.append([start] + [centers[k] for k in chain[1:-1]] + [end])
    return routes


__all__ = ["layered_layout", "Layout"]
