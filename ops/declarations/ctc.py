"""CTCLoss (MXNet's CTCLoss / ctc_loss / contrib.CTCLoss): the connectionist temporal
classification loss of unnormalised activations (T, N, C) against padded label sequences, by
the forward-backward recursion in log space (float64). Like MXNet it has a hidden second output,
the gradient with respect to the activations, which its gradient rule scales by the head
gradient. A label sequence that cannot fit its input length (p = 0) gives loss 0 and gradient 0
(MXNet returns loss 0 there, and an undefined gradient)."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from .common import like

_ATTRS = {"use_data_lengths": Attr("bool", False), "use_label_lengths": Attr("bool", False),
          "blank_label": Attr("str", "first", choices=("first", "last"))}


def _inputs(attrs):
    return ("data", "label") + (("data_lengths",) if attrs["use_data_lengths"] else ()) + \
        (("label_lengths",) if attrs["use_label_lengths"] else ())


def _infer(data, label, *lengths, use_data_lengths, use_label_lengths, blank_label):
    if data.ndim != 3 or label.ndim != 2 or label.shape[0] != data.shape[1]:
        raise ShapeError(f"CTCLoss: data must be (time, batch, classes) and label (batch, max label length); got "
                         f"data {tuple(data.shape)}, label {tuple(label.shape)}")
    for name, t in zip(_inputs({"use_data_lengths": use_data_lengths, "use_label_lengths": use_label_lengths})[2:],
                       lengths):
        if t.shape != (data.shape[1],):
            raise ShapeError(f"CTCLoss: {name} must hold one length per batch item ({data.shape[1]},), got {t.shape}")
    return [like(data, (data.shape[1],)), data]


def _logsumexp(*xs):
    stacked = np.stack(xs)
    top = stacked.max(axis=0)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(top), safe + np.log(np.exp(stacked - safe).sum(axis=0)), -np.inf)


def _shifted(a, k):
    """a moved k places right along the last axis, -inf filling in."""
    out = np.full_like(a, -np.inf)
    out[..., k:] = a[..., :a.shape[-1] - k]
    return out


def _sequence_loss(logits, labels, blank):
    """(-log p(labels | logits), gradient w.r.t. the logits) for one sequence: logits (T, C)."""
    t_len = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ext = np.full(2 * len(labels) + 1, blank, np.int64)
    ext[1::2] = labels
    skip = np.zeros(len(ext), bool)          # s may come from s - 2: a label unlike the one before it
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = logp[:, ext]                      # (T, S)
    alpha = np.full((t_len, len(ext)), -np.inf)
    beta = np.full_like(alpha, -np.inf)
    alpha[0, :2] = emit[0, :2]
    for t in range(1, t_len):
        prev = alpha[t - 1]
        alpha[t] = _logsumexp(prev, _shifted(prev, 1), np.where(skip, _shifted(prev, 2), -np.inf)) + emit[t]
    beta[-1, -2:] = emit[-1, -2:]
    skip_back = np.zeros(len(ext), bool)     # s may go to s + 2
    skip_back[:-2] = skip[2:]
    for t in range(t_len - 2, -1, -1):
        nxt = beta[t + 1]
        ahead1, ahead2 = np.full_like(nxt, -np.inf), np.full_like(nxt, -np.inf)
        ahead1[:-1], ahead2[:-2] = nxt[1:], nxt[2:]
        beta[t] = _logsumexp(nxt, ahead1, np.where(skip_back, ahead2, -np.inf)) + emit[t]
    log_p = _logsumexp(*alpha[-1, -2:]) if len(ext) > 1 else alpha[-1, -1]
    if not np.isfinite(log_p):
        return 0.0, np.zeros_like(logits)
    occupancy = alpha + beta - emit           # log of the probability of paths through (t, s)
    grad = np.exp(logp)
    for c in np.unique(ext):
        grad[:, c] -= np.exp(_logsumexp(*occupancy[:, ext == c].T) - log_p)
    return -log_p, grad


def _labels(row, length, blank_label):
    row = np.asarray(row).astype(np.int64)
    if length is None:
        pad = 0 if blank_label == "first" else -1
        stops = np.nonzero(row == pad)[0]
        length = stops[0] if len(stops) else len(row)
    return row[:int(length)]


def _compute(data, label, *lengths, use_data_lengths, use_label_lengths, blank_label):
    data_lengths = lengths[0] if use_data_lengths else None
    label_lengths = lengths[-1] if use_label_lengths else None
    t_max, batch, classes = data.shape
    blank = 0 if blank_label == "first" else classes - 1
    loss = np.zeros(batch, np.float64)
    grad = np.zeros(data.shape, np.float64)
    for n in range(batch):
        t_len = int(data_lengths[n]) if data_lengths is not None else t_max
        labels = _labels(label[n], None if label_lengths is None else label_lengths[n], blank_label)
        if t_len > 0:
            loss[n], grad[:t_len, n] = _sequence_loss(data[:t_len, n].astype(np.float64), labels, blank)
    return loss.astype(data.dtype), grad.astype(data.dtype)


def _gradient(F, ins, outs, gs, attrs):
    scaled = F.broadcast_mul(outs[1], F.Reshape(gs[0], shape=(1, -1, 1)))
    return [scaled] + [None] * (len(ins) - 1)


register(OpDef("CTCLoss", infer=_infer, compute=_compute, inputs=_inputs, attrs=_ATTRS, gradient=_gradient,
               num_outputs=2, num_visible_outputs=1, aliases=("ctc_loss", "_contrib_CTCLoss", "_contrib_ctc_loss"),
               doc="-log p(label | softmax(data)) per batch item, summed over the alignments of the label "
                   "(blank class first or last; labels padded with 0 or -1 unless lengths are given)."))
