"""PyTorch's twins of W7, W8a, W8b and W9 (imported by torch_w.py, which pins the threads).

Modules register their parameters in the Gluon models' order (_transformer.py, the model zoo's
resnet18_v1), so _w7_9's seeded flat lists load by position. Variants: eager; torch.compile
(default and, for inference, with inductor freezing); channels_last for the CNN.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as Fn

import _common as C
import _w7_9 as W


def _load(net, arrays, what):
    """parameters() yields a module's own parameters, then its children's in registration
    order: the order of Gluon's collect_params() for the twins here."""
    C.assign_flat(list(net.parameters()), arrays, _put, what)


def _put(t, a, i):
    if tuple(t.shape) != a.shape:
        raise ValueError(f"parameter {i}: shape {tuple(t.shape)} vs seeded {a.shape}")
    with torch.no_grad():
        t.copy_(torch.from_numpy(a))


# ------------------------------------------------------------------ Transformer twins
class SelfAttention(tnn.Module):
    def __init__(self, units, heads):
        super().__init__()
        self.heads, self.scale = heads, 1.0 / math.sqrt(units // heads)
        self.query, self.key = tnn.Linear(units, units), tnn.Linear(units, units)
        self.value, self.proj = tnn.Linear(units, units), tnn.Linear(units, units)

    def forward(self, x, mask=None):
        b, t, d = x.shape

        def split(y):
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x) * self.scale), split(self.key(x)), split(self.value(x))
        s = q @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        o = torch.softmax(s, dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(tnn.Module):
    def __init__(self, units, heads, ffn, eps):
        super().__init__()
        self.attn = SelfAttention(units, heads)
        self.ln1 = tnn.LayerNorm(units, eps=eps)
        self.ffn1, self.ffn2 = tnn.Linear(units, ffn), tnn.Linear(ffn, units)
        self.ln2 = tnn.LayerNorm(units, eps=eps)

    def forward(self, x, mask=None):
        h = self.ln1(x + self.attn(x, mask))
        return self.ln2(h + self.ffn2(Fn.gelu(self.ffn1(h))))      # erf GELU (the default)


class Encoder(tnn.Module):
    def __init__(self, layers, units, heads, ffn, eps):
        super().__init__()
        self.layers = tnn.ModuleList(EncoderLayer(units, heads, ffn, eps) for _ in range(layers))

    def forward(self, x):
        for blk in self.layers:
            x = blk(x)
        return x


class TransformerLM(tnn.Module):
    def __init__(self, layers, units, heads, ffn, vocab, seq, eps):
        super().__init__()
        self.pos_weight = tnn.Parameter(torch.zeros(seq, units))
        self.embed = tnn.Embedding(vocab, units)
        self.layers = tnn.ModuleList(EncoderLayer(units, heads, ffn, eps) for _ in range(layers))
        self.decoder = tnn.Linear(units, vocab)

    def forward(self, tokens, mask):
        h = self.embed(tokens) + self.pos_weight
        for blk in self.layers:
            h = blk(h, mask)
        return self.decoder(h)


def make_encoder():
    cfg = W.W8A
    net = Encoder(cfg["layers"], cfg["units"], cfg["heads"], cfg["ffn"], cfg["eps"]).eval()
    _load(net, W.w8a_params(), "W8a encoder")
    return net


def export_w8a_onnx(path):
    """W8a's encoder as ONNX (TorchScript exporter, opset 17) for onnxruntime; prints the torch
    output's fingerprint."""
    net = make_encoder()
    x = torch.from_numpy(W.w8a_input())
    with torch.no_grad():
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
        y = net(x).numpy()
    print(C.PREFIX + json.dumps({"check": C.check_weighted(y)}), flush=True)


# ------------------------------------------------------------------ bodies
def _mlp():
    ws, bs = C.mlp_weights()
    layers = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        lin = tnn.Linear(w.shape[0], w.shape[1])
        _put(lin.weight, np.ascontiguousarray(w.T), 2 * i)
        _put(lin.bias, b, 2 * i + 1)
        layers += [lin] + ([tnn.ReLU()] if i < len(ws) - 1 else [])
    return tnn.Sequential(*layers)


def _train_loop(system, variant, wl, step, quick, block, **extra):
    trace = W.LossTrace()

    def one():
        trace.add(step().item())
    t0 = time.perf_counter()
    one()
    setup = time.perf_counter() - t0
    warm, reps = W.reps(wl, quick)
    samples = C.time_blocks(one, block, warm, reps)
    return W.record(system, variant, wl, samples, setup_s=setup, weights="seeded",
                    **trace.fields(), **extra)


def w7(system, variant, quick):
    def body():
        net = _mlp().train()
        xn, yn = C.mlp_inputs(W.W7_BATCH)
        x, y = torch.from_numpy(xn), torch.from_numpy(yn)
        opt = torch.optim.SGD(net.parameters(), lr=W.W7_LR, momentum=W.W7_MOMENTUM)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss
        return _train_loop(system, variant, "W7", step, quick, W.W7_BLOCK)
    return body


def w8a(system, variant, quick):
    def body():
        net = make_encoder()
        x = torch.from_numpy(W.w8a_input())
        t0 = time.perf_counter()
        with torch.inference_mode():
            if variant.startswith("compile"):
                import torch._inductor.config as ic
                ic.freezing = "freezing" in variant     # process-wide: set for every variant
                fn = torch.compile(net)
            else:
                fn = net
            out = fn(x)
        setup = time.perf_counter() - t0

        def call():
            with torch.inference_mode():
                fn(x)
        warm, reps = W.reps("W8a", quick)
        samples = C.time_blocks(call, W.W8A_BLOCK, warm, reps)
        return W.record(system, variant, "W8a", samples, check=C.check_weighted(out.numpy()),
                        setup_s=setup, weights="seeded")
    return body


def w8b(system, variant, quick):
    def body():
        cfg = W.W8B
        net = TransformerLM(cfg["layers"], cfg["units"], cfg["heads"], cfg["ffn"], cfg["vocab"],
                            cfg["seq"], cfg["eps"]).train()
        _load(net, W.w8b_params(), "W8b LM")
        tn, yn = W.w8b_data()
        tokens, y = torch.from_numpy(tn), torch.from_numpy(yn).reshape(-1)
        mask = torch.from_numpy(W.causal_mask(cfg["seq"]))
        model = torch.compile(net) if variant == "compile" else net
        opt = torch.optim.Adam(net.parameters(), lr=W.W8B_LR)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(model(tokens, mask).reshape(-1, cfg["vocab"]), y)
            loss.backward()
            opt.step()
            return loss
        return _train_loop(system, variant, "W8b", step, quick, W.W8B_BLOCK)
    return body


def w9(system, variant, quick, make_resnet):
    def body():
        net = make_resnet().train()
        xn, yn = W.w9_data()
        x, y = torch.from_numpy(xn), torch.from_numpy(yn)
        if "channels_last" in variant:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        model = torch.compile(net) if variant.startswith("compile") else net
        opt = torch.optim.SGD(net.parameters(), lr=W.W9_LR, momentum=W.W9_MOMENTUM,
                              weight_decay=W.W9_WD)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        rec = _train_loop(system, variant, "W9", step, quick, W.W9_BLOCK)
        rec["peak_rss_mib"] = W.peak_rss_mib()
        return rec
    return body


def plan(system, wl, quick, make_resnet):
    if wl == "W7":
        return [("eager", w7(system, "eager", quick))]
    if wl == "W8a":
        return [(v, w8a(system, v, quick)) for v in ("eager", "compile", "compile+freezing")]
    if wl == "W8b":
        return [(v, w8b(system, v, quick)) for v in ("eager", "compile")]
    if wl == "W9":
        return [(v, w9(system, v, quick, make_resnet))
                for v in ("eager", "eager+channels_last", "compile+channels_last")]
    return []
