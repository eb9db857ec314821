"""expand_rnn: rewrite each fused `RNN` node into the primitive operators it stands for, so that
the rest of the compiler handles recurrent networks with no special runtime code: autodiff
differentiates the unrolled graph, fusion merges each step's gate arithmetic into the epilogue of
its GEMM, and the backends run the matrix products on BLAS.

For each layer and direction the expansion is:

- the weights and biases, sliced out of the flat parameter vector (cuDNN's layout, see
  `graphc.ops.declarations.rnn`) and reshaped into matrices, once;
- the input projection of *all* time steps as one GEMM, `FullyConnected((T*N, I), W_i2h)` with
  the biases folded in, then split once into one (N, H) block per gate and step;
- each gate's block of W_h2h transposed once, to (H_in, H_out), so that the GEMMs of every
  step read it as a plain (K, N) matrix: the GEMM packs its B operand on every call, and packing
  a transposed operand costs more than a row-major copy (2-layer LSTM H=200, batch 20, one
  thread: the forward plus backward step 9-10% less CPU time than with `transpose_b=True`);
- per step, one `dot(h, W_h2h[gate]^T)` per gate (a small GEMM whose epilogue fuses the gate's
  additions and activation) and the cell update as elementwise arithmetic;
- the backward direction walks the per-step blocks from the last to the first (no reversal op),
  and `stack`/`Concat` assemble out, hy and cy.

Per-gate GEMMs instead of one (N, G*H) GEMM per step avoid slicing the gates apart at every
step: a slice would be a host step in the middle of the recurrence, a gate's GEMM is not.

Dropout between layers (p > 0, more than one layer) becomes a `Dropout` node (mode 'training')
on each layer's output but the last, where MXNet applies it; in training its mask is drawn in a
compiled kernel (runtime/dropout_kernel.py) and autodiff's gradient reads the node's mask output,
and the fused op's hidden mask output is those masks stacked. Outside training the mask output
is ones, as the fused op's is. A node is left fused in float16,
which the backends do not compute in, so that it stays one host step instead of hundreds; and with
a projection (LSTMP) or per-sequence lengths, which the expansion does not write out. This pass never
touches a backend; it builds nodes through `GraphBuilder`, so every new node is typed.
"""
from __future__ import annotations

import numpy as np

from graphc.ops.builder import GraphBuilder
from graphc.ops.declarations.rnn import GATES, directions, has_mask, param_layout
from graphc.ops.errors import GraphcError
from graphc.ops.graph import Graph, Node, Value

from .rewrite import rebuild

_COMPILED_DTYPES = ("float32", "float64")     # what the backends compile GEMMs and gate arithmetic in


def expand_rnn(graph: Graph, training: bool = False) -> Graph:
    """Replace every RNN node by its unrolled equivalent (see the module docstring); `training`
    says whether the graph will run in training mode (dropout between layers is then written out
    as Dropout nodes)."""

    def rule(node: Node):
        if node.op != "RNN":
            return None
        if node.attrs["projection_size"] is not None or node.attrs["use_sequence_length"]:
            return None     # LSTMP and variable lengths stay fused: one host step, its own BPTT
        if node.types[0].dtype not in _COMPILED_DTYPES:
            return None     # float16: the primitives would each be a host step; the fused op is one
        if any(v.type is None for v in node.inputs):
            raise GraphcError(f"expand_rnn: RNN node {node.name!r} has untyped inputs; infer types first")
        builder = GraphBuilder(node.name)
        return [h.value for h in unroll_rnn(builder, [builder.wrap(v) for v in node.inputs], node.attrs,
                                           training)]

    return rebuild(graph, rule)


def _pieces(F, x, n, axis):
    """split into n pieces along axis, dropping it; always a list."""
    out = F.split(x, num_outputs=n, axis=axis, squeeze_axis=True)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _param(F, params, entry):
    off, shape = entry
    block = F.slice_axis(params, axis=0, begin=off, end=off + int(np.prod(shape)))
    return F.Reshape(block, shape=shape) if len(shape) > 1 else block


def unroll_rnn(builder: GraphBuilder, ins: list, attrs, training: bool = False) -> list:
    """Handles for the RNN node's outputs (out, [hy, [cy]], [dropout mask]) built from `ins`;
    `training` writes the dropout between layers out (else the mask output is ones)."""
    F = builder.F
    data, params, state = ins[:3]
    cell = ins[3] if attrs["mode"] == "lstm" else None
    mode, layers, hidden = attrs["mode"], attrs["num_layers"], attrs["state_size"]
    dirs, gates = directions(attrs), GATES[mode]
    seq, batch, feat = data.shape
    layout = param_layout(mode, layers, dirs, feat, hidden)
    h0 = _pieces(F, state, layers * dirs, 0)
    c0 = _pieces(F, cell, layers * dirs, 0) if cell is not None else None
    clip = (attrs["lstm_state_clip_min"], attrs["lstm_state_clip_max"], attrs["lstm_state_clip_nan"])
    x, hy, cy, masks = data, [], [], []
    for layer in range(layers):
        ys = []
        for k in range(dirs):
            row = layer * dirs + k
            y, h, c = _direction(F, x, params, layout[row], h0[row], c0[row] if c0 else None,
                                 mode, gates, hidden, reverse=(k == 1), clip=clip)
            ys.append(y)
            hy.append(h)
            cy.append(c)
        x = F.Concat(*ys, dim=2) if dirs == 2 else ys[0]
        if training and has_mask(attrs) and layer < layers - 1:
            # the node's mask output (1) is what the fused op returns as this layer's mask; its
            # gradient multiplies by the same mask
            # named after the RNN node: the kernel's random stream is keyed by the node's name
            drop = builder.invoke("Dropout", [x], {"p": attrs["p"], "mode": "training"},
                                  name=f"{builder.name}_dropout{layer}").value.node
            x, mask = builder.wrap(Value(drop, 0)), builder.wrap(Value(drop, 1))
            masks.append(mask)
    outs = [x]
    if attrs["state_outputs"]:
        outs.append(F.stack(*hy, axis=0))
        if mode == "lstm":
            outs.append(F.stack(*cy, axis=0))
    if has_mask(attrs) and masks:
        outs.append(F.stack(*masks, axis=0))
    elif has_mask(attrs):  # not training: the fused op's mask output is all ones
        outs.append(builder.const(np.ones((layers - 1, seq, batch, dirs * hidden), data.dtype)))
    return outs


def _direction(F, x, params, entry, h, c, mode, gates, hidden, reverse, clip):
    seq, batch, size = x.shape
    wx, wh = _param(F, params, entry["wx"]), _param(F, params, entry["wh"])
    bx, bh = _param(F, params, entry["bx"]), _param(F, params, entry["bh"])
    if mode == "gru":
        # b_hn sits inside r * (W_hn h + b_hn): only the r and z parts of b_h2h fold into the GEMM
        bh_rz, bh_n = (F.slice_axis(bh, axis=0, begin=0, end=2 * hidden),
                       F.slice_axis(bh, axis=0, begin=2 * hidden, end=3 * hidden))
        bias = bx + F.Concat(bh_rz, F.zeros_like(bh_n), dim=0)
    else:
        bias = bx + bh
    # all steps' input projections in one GEMM, then one (N, H) block per gate and step
    proj = F.FullyConnected(F.Reshape(x, shape=(seq * batch, size)), wx, bias, num_hidden=gates * hidden)
    proj = F.transpose(F.Reshape(proj, shape=(seq * batch, gates, hidden)), axes=(1, 0, 2))
    blocks = _pieces(F, F.Reshape(proj, shape=(gates * seq, batch, hidden)), gates * seq, 0)
    wh_gates = [F.transpose(w) for w in _pieces(F, F.Reshape(wh, shape=(gates, hidden, hidden)), gates, 0)]

    def pre(g, t, h):
        return blocks[g * seq + t] + F.dot(h, wh_gates[g])

    ys = [None] * seq
    for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
        if mode == "lstm":
            i, f = F.sigmoid(pre(0, t, h)), F.sigmoid(pre(1, t, h))
            g, o = F.tanh(pre(2, t, h)), F.sigmoid(pre(3, t, h))
            c = _clip(F, f * c + i * g, clip)
            h = o * F.tanh(c)
        elif mode == "gru":
            r, z = F.sigmoid(pre(0, t, h)), F.sigmoid(pre(1, t, h))
            n = F.tanh(blocks[2 * seq + t] + r * (F.dot(h, wh_gates[2]) + bh_n))
            h = (1 - z) * n + z * h
        else:
            a = pre(0, t, h)
            h = F.relu(a) if mode == "rnn_relu" else F.tanh(a)
        ys[t] = h
    return F.stack(*ys, axis=0), h, c


def _clip(F, c, clip):
    lo, hi, nan = clip
    if lo is None:
        return c
    out = F.clip(c, a_min=lo, a_max=hi)
    if nan:  # NaN compares unequal to itself: it becomes the lower bound, as in the fused op
        out = F.where(c == c, out, F.zeros_like(c) + lo)
    return out


__all__ = ["expand_rnn", "unroll_rnn"]
