"""split_batch_sums: cut a backward graph run on micro-batches into the part that must run per
micro-batch and the part that sums over the batch and can run once, on the whole batch.

A parameter's gradient is a sum over the batch's rows (dot(dY, X, transpose_a=True), a sum over
axis 0, a convolution's weight gradient). Run per micro-batch, each such GEMM has a quarter of
the rows (a 2048x2048 weight gradient from 64 rows runs at a fraction of the speed it has with
256) and the M results must then be added. But sum_m f(rows_m) = f(all rows) for such an f, so
the gradient can be computed once from the micro-batches' row values put back together: the
same GEMM, the same numbers as the unpipelined block, and nothing to add.

The classification is conservative. A value is ROWS (row i depends on row i of the batch inputs
only) when made by an elementwise operator whose batch inputs keep axis 0, a reshape keeping
axis 0, or an operator known to treat samples separately; SUMMED when it reduces ROWS values over
axis 0 with one of the additive reductions above, or adds / scales / copies SUMMED values;
SHARED when it does not depend on the batch; anything else is OTHER and stays per micro-batch.
A graph whose SUMMED values are read by anything not SUMMED is not cut.

Pure graph-to-graph code: it never runs or compiles anything.
"""
from __future__ import annotations

from graphc.ops.graph import Graph, Node, variable
from graphc.ops.registry import Elementwise, get_op, has_op

ROWS, SUMMED, SHARED, OTHER = "rows", "summed", "shared", "other"

# operators that compute each sample from that sample alone (axis 0 is the batch)
_PER_SAMPLE = {"_conv_data_grad", "_pooling_grad", "Convolution", "Pooling", "Reshape", "Flatten",
               "_CrossDeviceCopy"}
# elementwise operators linear in each input: a sum of their results is their result of the sums
_LINEAR = {"elemwise_add", "broadcast_add", "add_n", "_mul_scalar", "_div_scalar", "negative", "_CrossDeviceCopy"}


def classify(graph: Graph, batch_inputs: set) -> dict:
    """id(node) -> ROWS / SUMMED / SHARED / OTHER (for every output of the node). batch_inputs:
    ids of the input variables whose axis 0 is the batch."""
    kinds = {}
    for node in graph.nodes:
        if node.is_const:
            kinds[id(node)] = SHARED
        elif node.is_var:
            kinds[id(node)] = ROWS if id(node) in batch_inputs else SHARED
        else:
            kinds[id(node)] = _kind(node, [kinds[id(v.node)] for v in node.inputs])
    return kinds


def _kind(node: Node, ins: list) -> str:
    if all(k == SHARED for k in ins):
        return SHARED
    if OTHER in ins or len(node.types) != 1 or not has_op(node.op):
        return OTHER
    out = node.types[0].shape
    op = get_op(node.op)
    if SUMMED in ins:
        linear = node.op in _LINEAR and all(k in (SUMMED, SHARED) for k in ins)
        adds = node.op in ("elemwise_add", "broadcast_add", "add_n") and all(k == SUMMED for k in ins)
        scales = node.op not in ("elemwise_add", "broadcast_add", "add_n")
        return SUMMED if linear and (adds or scales) else OTHER
    rows = [v for v, k in zip(node.inputs, ins) if k == ROWS]
    batch = rows[0].type.shape[0] if rows[0].type.shape else None
    if batch is None or any(not v.type.shape or v.type.shape[0] != batch for v in rows):
        return OTHER
    if node.op == "dot":
        a, b = node.inputs
        two_d = len(a.type.shape) == 2 and len(b.type.shape) == 2
        if two_d and ins == [ROWS, ROWS] and node.attrs.get("transpose_a") and not node.attrs.get("transpose_b"):
            return SUMMED                        # dY^T X: contracts the batch axis
        if ins == [ROWS, SHARED] and not node.attrs.get("transpose_a") and out and out[0] == batch:
            return ROWS                          # dY W: row by row
        return OTHER
    if node.op == "sum":
        axes = _axes(node.attrs.get("axis"), len(rows[0].type.shape), node.attrs.get("exclude", False))
        if 0 in axes:
            return SUMMED if all(k == ROWS for k in ins) else OTHER
        return ROWS if out and out[0] == batch else OTHER
    if node.op == "_conv_weight_grad":
        return SUMMED if ins[:2] == [ROWS, ROWS] and all(k != OTHER for k in ins) else OTHER
    per_sample = node.op in _PER_SAMPLE or isinstance(op.lowering, Elementwise)
    if not per_sample or not out or out[0] != batch:
        return OTHER
    if isinstance(op.lowering, Elementwise):
        # numpy broadcasting aligns trailing axes: a batch input must have the output's rank (its
        # axis 0 is the batch), a shared one must not broadcast along axis 0
        for v, k in zip(node.inputs, ins):
            shape = v.type.shape
            if k == ROWS and len(shape) != len(out):
                return OTHER
            if k == SHARED and len(shape) == len(out) and shape and shape[0] != 1:
                return OTHER
    return ROWS


def _axes(axis, ndim, exclude) -> set:
    if axis is None or axis == ():
        picked = set(range(ndim))
    else:
        picked = {a % ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,))}
    return set(range(ndim)) - picked if exclude else picked


class BatchSplit:
    """The cut of a backward graph (see split_batch_sums).

    rows: the graph at micro-batch size, run per micro-batch; its outputs are the original
      outputs it keeps, then the row values the whole-batch part reads.
    whole: the graph at whole-batch size; its inputs are the values it reads, each given by
      `sources`: ("output", j) = output j of `rows`, concatenated over the micro-batches,
      ("input", i, batch) = input i, concatenated when `batch`, else the one shared array.
    outputs: for each original output, ("rows", j) or ("whole", j)."""

    def __init__(self, rows, whole, sources, outputs):
        self.rows, self.whole, self.sources, self.outputs = rows, whole, sources, outputs


def split_batch_sums(small: Graph, large: Graph) -> BatchSplit | None:
    """small and large: one backward graph traced at a micro-batch's size and at the whole
    batch's (the same operators in the same order; inputs whose axis 0 differs between them are
    the batch inputs). None when nothing can run on the whole batch (or the graphs differ)."""
    if len(small.nodes) != len(large.nodes) or any(a.op != b.op for a, b in zip(small.nodes, large.nodes)) \
            or len(small.inputs) != len(large.inputs):
        return None
    position = {id(n): k for k, n in enumerate(large.nodes)}
    batch = set()
    for s, l in zip(small.inputs, large.inputs):
        ss, ls = s.types[0].shape, l.types[0].shape
        if len(ss) == len(ls) and ss and ss[1:] == ls[1:] and ss[0] != ls[0]:
            batch.add(id(l))
    kinds = classify(large, batch)
    summed = {id(n) for n in large.nodes if kinds[id(n)] == SUMMED}
    if not summed:
        return None
    for n in large.nodes:
        if id(n) not in summed and any(id(v.node) in summed for v in n.inputs):
            return None                  # a per-row value needs a sum: the sum cannot wait
    if not any(id(v.node) in summed for v in large.outputs):
        return None
    input_index = {id(n): i for i, n in enumerate(large.inputs)}
    # the whole-batch graph: a variable per value it reads from outside, then the summing nodes
    sources, new_of, nodes, inputs, extra = [], {}, [], [], []
    for node in large.nodes:
        if id(node) not in summed:
            continue
        ins = []
        for v in node.inputs:
            key = (id(v.node), v.index)
            if id(v.node) not in summed and v.node.is_const:
                ins.append(v)
                continue
            if key not in new_of:
                var = variable(f"{v.node.name}_out{v.index}" if not v.node.is_var else v.node.name, v.type,
                               "input", {"device": v.node.hints.get("device")} if v.node.hints.get("device") else {})
                inputs.append(var)
                new_of[key] = var.out()
                if v.node.is_var:
                    sources.append(("input", input_index[id(v.node)], id(v.node) in batch))
                else:
                    sources.append(("output", None))
                    small_node = small.nodes[position[id(v.node)]]
                    extra.append((len(sources) - 1, small_node.out(v.index)))
            ins.append(new_of[key])
        new = Node(node.op, ins, node.attrs, node.name, node.types, node.hints)
        nodes.append(new)
        for i in range(len(node.types)):
            new_of[(id(node), i)] = new.out(i)
    kept = [j for j, v in enumerate(large.outputs) if id(v.node) not in summed]
    outputs, whole_outs = [None] * len(large.outputs), []
    for j, v in enumerate(large.outputs):
        if id(v.node) in summed:
            outputs[j] = ("whole", len(whole_outs))
            whole_outs.append(new_of[(id(v.node), v.index)])
    for n, j in enumerate(kept):
        outputs[j] = ("rows", n)
    row_outs = [small.outputs[j] for j in kept]
    for n, (src, value) in enumerate(extra):
        sources[src] = ("output", len(row_outs))
        row_outs.append(value)
    rows = Graph.from_outputs(small.inputs, row_outs, small.name)
    whole = Graph.from_outputs(inputs, whole_outs, f"{large.name}_whole_batch")
    return BatchSplit(rows, whole, sources, outputs)


__all__ = ["split_batch_sums", "classify", "BatchSplit", "ROWS", "SUMMED", "SHARED", "OTHER"]
