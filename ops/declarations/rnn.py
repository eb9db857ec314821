"""MXNet's fused recurrent operator `RNN` (vanilla ReLU/tanh, LSTM, GRU; stacked, optionally
bidirectional), its gradient `_backward_RNN`, and `_rnn_param_concat`, which Gluon's recurrent
layers use to pack their weights into the op's one parameter vector.

Semantics are MXNet 1.9's (the same as its CPU kernels and cuDNN):

- data (T, N, C), state (L*D, N, H) and, for LSTM, state_cell (L*D, N, H), where L is
  num_layers, D is 2 when bidirectional else 1, H is state_size. Rows of the states go layer by
  layer, forward direction first.
- parameters is one flat vector, cuDNN's layout: first every weight matrix, for each layer, for
  each direction, W_i2h (G*H, I_l) then W_h2h (G*H, H), row-major; then every bias, in the same
  order, b_i2h (G*H) then b_h2h (G*H). I_0 = C, I_l = D*H above. G is the number of gates:
  1 for rnn_relu/rnn_tanh, 4 for lstm (gate blocks i, f, g, o), 3 for gru (r, z, n).
- LSTM: c' = f*c + i*g, h' = o*tanh(c'); with lstm_state_clip_min/max, c' is clipped to that
  range before h' is computed (cuDNN's CUDNN_RNN_CLIP_MINMAX); lstm_state_clip_nan turns a NaN
  cell state into the lower bound instead of propagating it.
- GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
- The backward direction reads the sequence from the last step to the first; its output at
  time t sits in the second half of out[t]. Layer l > 0 reads the previous layer's out.
- p: dropout on every layer's output except the last, in training only. The masks it drew are
  a hidden last output (present only when p > 0 and num_layers > 1), which the gradient reuses.

The numpy reference is vectorised over the batch and loops over time; `_backward_RNN` is
backpropagation through time over the same recurrences (it recomputes the forward pass from
the inputs and the dropout masks). Second derivatives through RNN are not supported:
`_backward_RNN` has no gradient rule. `graphc.passes.expand_rnn` rewrites an RNN node into
primitive operators when a backend should compile it (GEMMs on BLAS) instead.

- projection_size P (LSTM only, LSTMP as cuDNN computes it): each (layer, direction) has a third
  weight W_h2r (P, H) after W_h2h, and no bias for it; the recurrent and output state is
  r = W_h2r (o * tanh(c')) of size P, so W_h2h is (G*H, P), layers above read D*P features,
  state and out carry P features while state_cell keeps H.
- use_sequence_length: an extra input sequence_length (N,) of valid lengths L_b. As cuDNN's
  padded layout: a sequence's steps t >= L_b leave its states unchanged and output zeros, so the
  forward direction's hy is the state after step L_b - 1 and the backward direction starts at
  step L_b - 1 (only the valid part is reversed). MXNet 1.9's CPU kernel ignores the lengths;
  graphc follows the GPU one, which is what Gluon's cells unrolled with valid_length compute.
"""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import OpAttributeError, ShapeError
from ..registry import Movement, OpDef, register
from .common import same_dtype, like
from .join import concat_grad, concat_infer, concat_pieces

GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}

_RNN_ATTRS = {
    "state_size": Attr("int"),
    "num_layers": Attr("int"),
    "mode": Attr("str", choices=tuple(GATES)),
    "bidirectional": Attr("bool", False),
    "p": Attr("float", 0.0),
    "state_outputs": Attr("bool", False),
    "projection_size": Attr("int", None, optional=True),
    "lstm_state_clip_min": Attr("float", None, optional=True),
    "lstm_state_clip_max": Attr("float", None, optional=True),
    "lstm_state_clip_nan": Attr("bool", False),
    "use_sequence_length": Attr("bool", False),
}


# -- layout ----------------------------------------------------------------------------------------
def param_size(mode, num_layers, directions, input_size, state_size, projection_size=None) -> int:
    """Length of the flat parameter vector: sum over layers l of D*G*H*(I_l + R + 2), plus
    D*P*H per layer for W_h2r with a projection (R is P then, else H)."""
    g, h, d = GATES[mode], state_size, directions
    r = projection_size or h
    proj = d * r * h if projection_size else 0
    return sum(d * g * h * ((input_size if l == 0 else d * r) + r + 2) + proj for l in range(num_layers))


def param_layout(mode, num_layers, directions, input_size, state_size, projection_size=None) -> list:
    """For each (layer, direction), in state-row order: {'wx', 'wh', 'bx', 'bh'} (and 'wr' with
    a projection) -> (offset, shape) inside the flat parameter vector."""
    g, h, d = GATES[mode], state_size, directions
    r = projection_size or h
    out, off = [], 0
    for layer in range(num_layers):
        i = input_size if layer == 0 else d * r
        for _ in range(d):
            entry = {"wx": (off, (g * h, i))}
            off += g * h * i
            entry["wh"] = (off, (g * h, r))
            off += g * h * r
            if projection_size:
                entry["wr"] = (off, (r, h))
                off += r * h
            out.append(entry)
    for entry in out:
        entry["bx"] = (off, (g * h,))
        off += g * h
        entry["bh"] = (off, (g * h,))
        off += g * h
    return out


def directions(attrs) -> int:
    return 2 if attrs["bidirectional"] else 1


def out_size(attrs) -> int:
    """Features of each direction's output and state: the projection's P, else H."""
    return attrs["projection_size"] or attrs["state_size"]


def num_visible(attrs) -> int:
    if not attrs["state_outputs"]:
        return 1
    return 3 if attrs["mode"] == "lstm" else 2


def has_mask(attrs) -> bool:
    """The hidden dropout-mask output exists: dropout between layers is possible."""
    return attrs["p"] > 0.0 and attrs["num_layers"] > 1


def _rnn_inputs(attrs):
    names = ["data", "parameters", "state"]
    if attrs["mode"] == "lstm":
        names.append("state_cell")
    if attrs["use_sequence_length"]:
        names.append("sequence_length")
    return tuple(names)


def _check_attrs(op, attrs):
    proj = attrs["projection_size"]
    if proj is not None and attrs["mode"] != "lstm":
        raise OpAttributeError(f"{op}: projection_size={proj} is only supported for LSTM (mode='lstm'), "
                               f"got mode={attrs['mode']!r}")
    if proj is not None and not 1 <= proj <= attrs["state_size"]:
        raise OpAttributeError(f"{op}: projection_size={proj} must be between 1 and state_size="
                               f"{attrs['state_size']}")
    if attrs["state_size"] < 1 or attrs["num_layers"] < 1:
        raise OpAttributeError(f"{op}: state_size={attrs['state_size']} and num_layers={attrs['num_layers']} "
                               "must both be at least 1")
    if not 0.0 <= attrs["p"] < 1.0:
        raise OpAttributeError(f"{op}: dropout p={attrs['p']} must be in [0, 1)")
    lo, hi = attrs["lstm_state_clip_min"], attrs["lstm_state_clip_max"]
    if (lo is None) != (hi is None):
        raise OpAttributeError(f"{op}: lstm_state_clip_min={lo} and lstm_state_clip_max={hi}: "
                               "give both bounds or neither")
    if lo is not None and lo > hi:
        raise OpAttributeError(f"{op}: lstm_state_clip_min={lo} exceeds lstm_state_clip_max={hi}")


def _check_types(op, attrs, data, params, state, cell=None, lengths=None):
    """Shape checks shared by RNN and _backward_RNN; returns (T, N, C, H, L, D)."""
    _check_attrs(op, attrs)
    same_dtype(op, data, params, state, *([cell] if cell is not None else []))
    if data.ndim != 3:
        raise ShapeError(f"{op}: data must be (sequence length, batch, features), got shape {data.shape}")
    t, n, c = data.shape
    h, nl, d, p = attrs["state_size"], attrs["num_layers"], directions(attrs), attrs["projection_size"]
    for label, s, size, what in (("state", state, p or h, "projection_size" if p else "state_size"),
                                 ("state_cell", cell, h, "state_size")):
        want = (nl * d, n, size)
        if s is not None and s.shape != want:
            raise ShapeError(f"{op}: {label} has shape {s.shape}, expected (num_layers*directions, batch, "
                             f"{what}) = {want}")
    if lengths is not None and lengths.shape != (n,):
        raise ShapeError(f"{op}: sequence_length has shape {lengths.shape}, expected (batch,) = ({n},) for "
                         f"data {data.shape}")
    size = param_size(attrs["mode"], nl, d, c, h, p)
    if params.shape != (size,):
        g = GATES[attrs["mode"]]
        rule = ("D*G*H*((C+H+2) + (L-1)*(D*H+H+2))" if p is None else
                f"D*G*H*((C+P+2) + (L-1)*(D*P+P+2)) + L*D*P*H with projection_size P={p}")
        raise ShapeError(
            f"{op}: parameters has shape {params.shape}, expected ({size},): mode={attrs['mode']} has "
            f"G={g} gates; with L={nl} layers, D={d} directions, input size C={c}, state_size H={h} the "
            f"length is {rule} = {size}")
    return t, n, c, h, nl, d


def _split_rest(rest, attrs):
    """The optional inputs after `state`: (state_cell or None, sequence_length or None)."""
    rest = list(rest)
    cell = rest.pop(0) if attrs["mode"] == "lstm" and rest else None
    lengths = rest.pop(0) if attrs["use_sequence_length"] and rest else None
    return cell, lengths


def _rnn_infer(data, params, state, *rest, **attrs):
    cell, lengths = _split_rest(rest, attrs)
    t, n, c, h, nl, d = _check_types("RNN", attrs, data, params, state, cell, lengths)
    outs = [like(data, (t, n, d * out_size(attrs)))]
    if attrs["state_outputs"]:
        outs.append(like(state))
        if attrs["mode"] == "lstm":
            outs.append(like(cell) if cell is not None else like(state, state.shape[:2] + (h,)))
    if has_mask(attrs):
        outs.append(like(data, (nl - 1, t, n, d * out_size(attrs))))
    return outs


# -- numpy reference: one layer, one direction -----------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _clip_cell(c, attrs):
    lo, hi = attrs["lstm_state_clip_min"], attrs["lstm_state_clip_max"]
    if lo is None:
        return c, None
    out = np.clip(c, lo, hi)
    if attrs["lstm_state_clip_nan"]:
        out = np.where(np.isnan(out), out.dtype.type(lo), out)
    return out, (c > lo) & (c < hi)


def _weights(params, entry):
    return {k: params[off:off + int(np.prod(shape))].reshape(shape) for k, (off, shape) in entry.items()}


def _direction_forward(mode, x, w, h0, c0, reverse, attrs, valid=None):
    """x (T, N, I) -> y (T, N, R), h_T, c_T, and per-step caches (in processing order). `valid`
    (T, N, 1) marks the steps inside each sequence: the others keep the state and output 0."""
    t_len, n, i = x.shape
    h_size = w["wx"].shape[0] // GATES[mode]
    xw = (x.reshape(t_len * n, i) @ w["wx"].T + w["bx"]).reshape(t_len, n, w["wx"].shape[0])
    y = np.empty((t_len, n, w["wh"].shape[1]), x.dtype)
    h, c = h0, c0
    steps = []
    for t in (range(t_len - 1, -1, -1) if reverse else range(t_len)):
        hw = h @ w["wh"].T + w["bh"]
        s = {"t": t, "h_prev": h}
        c_new = c
        if mode == "lstm":
            a = xw[t] + hw
            gi, gf = _sigmoid(a[:, :h_size]), _sigmoid(a[:, h_size:2 * h_size])
            gg, go = np.tanh(a[:, 2 * h_size:3 * h_size]), _sigmoid(a[:, 3 * h_size:])
            c_new, inside = _clip_cell(gf * c + gi * gg, attrs)
            s.update(c_prev=c, i=gi, f=gf, g=gg, o=go, c=c_new, inside=inside)
            h_new = go * np.tanh(c_new)
            if "wr" in w:
                s["h_raw"] = h_new
                h_new = h_new @ w["wr"].T
        elif mode == "gru":
            gr = _sigmoid(xw[t][:, :h_size] + hw[:, :h_size])
            gz = _sigmoid(xw[t][:, h_size:2 * h_size] + hw[:, h_size:2 * h_size])
            hn = hw[:, 2 * h_size:]
            gn = np.tanh(xw[t][:, 2 * h_size:] + gr * hn)
            s.update(r=gr, z=gz, n=gn, hn=hn)
            h_new = (1 - gz) * gn + gz * h
        else:
            a = xw[t] + hw
            h_new = np.maximum(a, 0) if mode == "rnn_relu" else np.tanh(a)
            s.update(a=a, h=h_new)
        if valid is None:
            h, c, y[t] = h_new, c_new, h_new
        else:
            m = s["valid"] = valid[t]
            h = np.where(m, h_new, h)
            c = np.where(m, c_new, c) if c is not None else None
            y[t] = np.where(m, h_new, 0)
        steps.append(s)
    return y, h, c, steps


def _direction_backward(mode, x, w, steps, dy, dh, dc):
    """BPTT through one direction: returns dx, grads {'wx','wh','bx','bh'[,'wr']}, dh0, dc0."""
    t_len, n, i = x.shape
    gh = w["wx"].shape[0]
    dxw = np.zeros((t_len, n, gh), x.dtype)
    dwh = np.zeros_like(w["wh"])
    dbh = np.zeros_like(w["bh"])
    dwr = np.zeros_like(w["wr"]) if "wr" in w else None
    for s in reversed(steps):
        t = s["t"]
        pass_h = pass_c = 0
        if "valid" in s:   # a padded step passed the state through untouched and output zero
            m = s["valid"]
            pass_h, dh = np.where(m, 0, dh), np.where(m, dh + dy[t], 0)
            if mode == "lstm":
                pass_c, dc = np.where(m, 0, dc), np.where(m, dc, 0)
        else:
            dh = dh + dy[t]
        if mode == "lstm":
            if dwr is not None:
                dwr += dh.T @ s["h_raw"]
                dh = dh @ w["wr"]
            tc = np.tanh(s["c"])
            do = dh * tc
            dcr = dc + dh * s["o"] * (1 - tc * tc)
            if s["inside"] is not None:
                dcr = dcr * s["inside"]
            gi, gf, gg, go = s["i"], s["f"], s["g"], s["o"]
            da = np.concatenate([dcr * gg * gi * (1 - gi), dcr * s["c_prev"] * gf * (1 - gf),
                                 dcr * gi * (1 - gg * gg), do * go * (1 - go)], axis=1)
            dc = dcr * gf + pass_c
            dax = dah = da
            carry = 0
        elif mode == "gru":
            gr, gz, gn = s["r"], s["z"], s["n"]
            dan = dh * (1 - gz) * (1 - gn * gn)
            dar = dan * s["hn"] * gr * (1 - gr)
            daz = dh * (s["h_prev"] - gn) * gz * (1 - gz)
            dax = np.concatenate([dar, daz, dan], axis=1)
            dah = np.concatenate([dar, daz, dan * gr], axis=1)
            carry = dh * gz
        else:
            deriv = (s["a"] > 0).astype(x.dtype) if mode == "rnn_relu" else 1 - s["h"] * s["h"]
            dax = dah = dh * deriv
            carry = 0
        dxw[t] = dax
        dwh += dah.T @ s["h_prev"]
        dbh += dah.sum(axis=0)
        dh = dah @ w["wh"] + carry + pass_h
    flat = dxw.reshape(t_len * n, gh)
    dx = (flat @ w["wx"]).reshape(t_len, n, i)
    grads = {"wx": flat.T @ x.reshape(t_len * n, i), "wh": dwh, "bx": flat.sum(axis=0), "bh": dbh}
    if dwr is not None:
        grads["wr"] = dwr
    return dx, grads, dh, dc


# -- numpy reference: the whole stack --------------------------------------------------------------
def _valid_steps(data, lengths):
    """(T, N, 1) booleans, True for the steps inside each sequence; None without lengths."""
    if lengths is None:
        return None
    t = data.shape[0]
    n = np.clip(np.asarray(lengths).astype(np.int64), 0, t)
    return (np.arange(t)[:, None] < n[None, :])[:, :, None]


def _forward(data, params, state, cell, attrs, masks, lengths=None):
    """Run every layer; returns out, hy, cy and what the backward pass needs."""
    mode, nl, d, h = attrs["mode"], attrs["num_layers"], directions(attrs), attrs["state_size"]
    layout = param_layout(mode, nl, d, data.shape[2], h, attrs["projection_size"])
    valid = _valid_steps(data, lengths)
    hy = np.empty_like(state)
    cy = np.empty_like(cell) if cell is not None else np.empty_like(state)
    zeros = np.zeros_like(state[0])
    x, record = data, []
    for layer in range(nl):
        ys, dirs = [], []
        for k in range(d):
            row = layer * d + k
            w = _weights(params, layout[row])
            c0 = cell[row] if cell is not None else zeros
            y, hy[row], cy[row], steps = _direction_forward(mode, x, w, state[row], c0, k == 1, attrs, valid)
            ys.append(y)
            dirs.append((row, w, steps))
        record.append((x, dirs))
        x = np.concatenate(ys, axis=2) if d == 2 else ys[0]
        if layer < nl - 1 and masks is not None:
            x = x * masks[layer]
    return x, hy, cy, record


def _draw_masks(data, attrs, rng, training):
    if not has_mask(attrs):
        return None
    t, n, _ = data.shape
    shape = (attrs["num_layers"] - 1, t, n, directions(attrs) * out_size(attrs))
    if not training:
        return np.ones(shape, data.dtype)
    p = attrs["p"]
    return ((rng.random(shape) >= p).astype(data.dtype) / data.dtype.type(1.0 - p)).astype(data.dtype)


def _widened(fn):
    """Run a float16 RNN in float32 and round the results back to float16, as cuDNN's float16
    RNN accumulates in float32: rounding every step's state to 11 bits would let the error grow
    along the sequence."""
    def run(*arrays, **kw):
        if not any(a.dtype == np.float16 for a in arrays):
            return fn(*arrays, **kw)
        outs = fn(*[a.astype(np.float32) if a.dtype == np.float16 else a for a in arrays], **kw)
        return tuple(o.astype(np.float16) for o in outs)
    run.__doc__, run.__name__ = fn.__doc__, fn.__name__
    return run


@_widened
def _rnn_np(data, params, state, *rest, rng=None, training=False, **attrs):
    _check_attrs("RNN", attrs)
    cell, lengths = _split_rest(rest, attrs)
    masks = _draw_masks(data, attrs, rng, training)
    out, hy, cy, _ = _forward(data, params, state, cell, attrs, masks, lengths)
    outs = [out]
    if attrs["state_outputs"]:
        outs.append(hy)
        if attrs["mode"] == "lstm":
            outs.append(cy)
    if masks is not None:
        outs.append(masks)
    return tuple(outs)


def _rnn_grad(F, ins, outs, gs, attrs):
    visible = num_visible(attrs)
    heads = [g if g is not None else F.zeros_like(o) for g, o in zip(gs[:visible], outs[:visible])]
    grads = F._backward_RNN(*ins, *outs, *heads, **dict(attrs))
    grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
    return grads + [None] * int(attrs["use_sequence_length"])   # lengths are not differentiable


def _rnn_infer_missing(in_types, attrs):
    """The packed parameters' size from the data's features (C), and begin states of unknown batch
    size from the data's: (num_layers*directions, N, P or H) for the state,
    (num_layers*directions, N, state_size) for LSTM's cell state."""
    data = in_types[0]
    if data is None:
        return in_types
    rows, n = attrs["num_layers"] * directions(attrs), data.shape[1]
    packed = param_size(attrs["mode"], attrs["num_layers"], directions(attrs), data.shape[2], attrs["state_size"],
                        attrs["projection_size"])
    wants = [None, like(data, (packed,)), like(data, (rows, n, out_size(attrs)))]
    if attrs["mode"] == "lstm":
        wants.append(like(data, (rows, n, attrs["state_size"])))
    wants += [None] * (len(in_types) - len(wants))
    return [t if t is not None else want for t, want in zip(in_types, wants)]


register(OpDef("RNN", infer=_rnn_infer, compute=_rnn_np, inputs=_rnn_inputs, attrs=_RNN_ATTRS,
               gradient=_rnn_grad, infer_missing=_rnn_infer_missing, num_outputs=lambda a: num_visible(a) + int(has_mask(a)),
               num_visible_outputs=num_visible, random=True, uses_training=True,
               # every step of every sequence multiplies-adds each weight of the packed parameters once
               flops=lambda ins, outs, a: 2.0 * ins[0].shape[0] * ins[0].shape[1] * ins[1].size,
               doc="MXNet's fused RNN: stacked (bi)directional vanilla RNN, LSTM or GRU over (T, N, C) data."))


# -- _backward_RNN -----------------------------------------------------------------------------------
def _backward_inputs(attrs):
    lstm = attrs["mode"] == "lstm"
    names = ["data", "parameters", "state"] + (["state_cell"] if lstm else [])
    names += (["sequence_length"] if attrs["use_sequence_length"] else []) + ["out"]
    if attrs["state_outputs"]:
        names += ["hy", "cy"] if lstm else ["hy"]
    if has_mask(attrs):
        names.append("dropout_mask")
    names.append("dout")
    if attrs["state_outputs"]:
        names += ["dhy", "dcy"] if lstm else ["dhy"]
    return tuple(names)


def _unpack_backward(args, attrs):
    return dict(zip(_backward_inputs(attrs), args))


def _backward_infer(*types, **attrs):
    a = _unpack_backward(types, attrs)
    _check_types("_backward_RNN", attrs, a["data"], a["parameters"], a["state"], a.get("state_cell"),
                 a.get("sequence_length"))
    for key in [k for k in a if k in ("out", "hy", "cy", "dout", "dhy", "dcy")]:
        ref = a["data"] if key in ("out", "dout") else a["state"]
        if key in ("out", "dout"):
            t, n, _ = a["data"].shape
            want = (t, n, directions(attrs) * out_size(attrs))
        elif key in ("cy", "dcy"):
            want = a["state_cell"].shape
        else:
            want = a["state"].shape
        if a[key].shape != want:
            raise ShapeError(f"_backward_RNN: {key} has shape {a[key].shape}, expected {want}")
        same_dtype("_backward_RNN", ref, a[key])
    outs = [a["data"], a["parameters"], a["state"]]
    if attrs["mode"] == "lstm":
        outs.append(a["state_cell"])
    return outs


@_widened
def _backward_np(*arrays, **attrs):
    a = _unpack_backward(arrays, attrs)
    data, params, state = a["data"], a["parameters"], a["state"]
    cell = a.get("state_cell")
    mode, h = attrs["mode"], attrs["state_size"]
    masks = a.get("dropout_mask")
    _, _, _, record = _forward(data, params, state, cell, attrs, masks, a.get("sequence_length"))
    dparams = np.zeros_like(params)
    dstate = np.zeros_like(state)
    dcell = np.zeros_like(cell) if cell is not None else np.zeros_like(state)
    zeros = np.zeros_like(state[0])
    dout = a["dout"]
    layout = param_layout(mode, attrs["num_layers"], directions(attrs), data.shape[2], h, attrs["projection_size"])
    r = out_size(attrs)
    for layer in reversed(range(len(record))):
        x, dirs = record[layer]
        dx_total = np.zeros_like(x)
        for k, (row, w, steps) in enumerate(dirs):
            dy = dout[:, :, k * r:(k + 1) * r]
            dh = a["dhy"][row] if "dhy" in a else zeros
            dc = a["dcy"][row] if "dcy" in a else (np.zeros_like(cell[row]) if cell is not None else zeros)
            dx, grads, dstate[row], dcell[row] = _direction_backward(mode, x, w, steps, dy, dh, dc)
            dx_total += dx
            for key, (off, shape) in layout[row].items():
                dparams[off:off + int(np.prod(shape))] = grads[key].reshape(-1)
        dout = dx_total * masks[layer - 1] if layer > 0 and masks is not None else dx_total
    grads = [dout, dparams, dstate]
    if mode == "lstm":
        grads.append(dcell)
    return tuple(grads)


register(OpDef("_backward_RNN", infer=_backward_infer, compute=_backward_np, inputs=_backward_inputs,
               attrs=_RNN_ATTRS, gradient=None,
               num_outputs=lambda a: 4 if a["mode"] == "lstm" else 3,
               doc="Gradients of RNN w.r.t. data, parameters, state (and state_cell) by backpropagation "
                   "through time. No gradient of its own: second derivatives through RNN are not supported."))


# -- _rnn_param_concat -------------------------------------------------------------------------------
def _variadic(attrs):
    return tuple(f"arg{i}" for i in range(attrs["num_args"]))


register(OpDef("_rnn_param_concat", infer=concat_infer("_rnn_param_concat"), inputs=_variadic,
               compute=lambda *xs, num_args, dim: np.concatenate(xs, axis=dim),
               attrs={"num_args": Attr("int"), "dim": Attr("int", 1)}, gradient=concat_grad,
               lowering=Movement(concat_pieces),
               doc="Concat for Gluon's packed RNN parameters (flattened weights and biases along dim 0)."))
