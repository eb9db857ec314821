"""Shapes, seeded weights and data of W7, W8a, W8b and W9 (shared/bench/WORKLOADS.md), plus the
numpy references the graphc scripts check themselves against (stdlib + numpy only).

Weights are flat lists in the order both a Gluon block's `collect_params()` and a torch module's
`parameters()` walk them (a block's own parameters first, then its children in registration
order), so every system loads the same arrays by position, each shape checked.
"""
from __future__ import annotations

import math

import numpy as np

import _common as C

# ------------------------------------------------------------------ W7: imperative MLP step
W7_BATCH = 64
W7_LR = 0.1
W7_MOMENTUM = 0.9
W7_BLOCK = 10            # steps per timing sample

# ------------------------------------------------------------------ W8a: BERT-base encoder
W8A = dict(layers=12, units=768, heads=12, ffn=3072, seq=128, batch=1, eps=1e-12)
W8A_BLOCK = 2            # calls per timing sample

# ------------------------------------------------------------------ W8b: Transformer LM step
W8B = dict(layers=2, units=256, heads=4, ffn=1024, vocab=10000, seq=64, batch=32, eps=1e-5)
W8B_LR = 1e-3
W8B_BLOCK = 2

# ------------------------------------------------------------------ W9: ResNet-18 training step
W9_BATCH = 16
W9_IMAGE = 224      # (bench/gpu's --smoke shrinks it: the CUDA simulator runs on one host core)
W9_LR = 0.01
W9_MOMENTUM = 0.9
W9_WD = 1e-4
W9_CLASSES = 1000
W9_BLOCK = 1

# (warm-up blocks, timed blocks) full and --quick; time_blocks also warms for WARM_S seconds
REPEATS = {"W7": ((1, 10), (1, 3)), "W8a": ((1, 8), (1, 2)), "W8b": ((1, 8), (1, 2)),
           "W9": ((1, 6), (1, 2))}
BLOCKS = {"W7": W7_BLOCK, "W8a": W8A_BLOCK, "W8b": W8B_BLOCK, "W9": W9_BLOCK}
UNITS = {"W7": "steps/s", "W8a": "ms", "W8b": "steps/s", "W9": "steps/s"}


def reps(wl: str, quick: bool) -> tuple[int, int]:
    full, q = REPEATS[wl]
    return q if quick else full


def record(system: str, variant: str, wl: str, samples_s: list, **extra) -> dict:
    """The result record of a new workload from per-call (per-step) seconds."""
    med = C.median(samples_s)
    rec = {"system": system, "variant": variant, "workload": wl, "n_samples": len(samples_s),
           "calls_per_sample": BLOCKS[wl]}
    if UNITS[wl] == "ms":
        rec.update(unit="ms", median=med * 1e3, samples=[s * 1e3 for s in samples_s])
    else:
        rec.update(unit="steps/s", median=1.0 / med, samples=[1.0 / s for s in samples_s])
    rec.update(extra)
    return rec


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ Transformer weights
def encoder_layer_shapes(units: int, ffn: int) -> list:
    """One post-LayerNorm encoder layer in registration order: attention query, key, value and
    output projections (weight (out, in), bias), LayerNorm 1 (gamma, beta), FFN in and out,
    LayerNorm 2."""
    d = units
    return [("w", (d, d)), ("b", (d,)), ("w", (d, d)), ("b", (d,)), ("w", (d, d)), ("b", (d,)),
            ("w", (d, d)), ("b", (d,)), ("g", (d,)), ("b", (d,)),
            ("w", (ffn, d)), ("b", (ffn,)), ("w", (d, ffn)), ("b", (d,)), ("g", (d,)), ("b", (d,))]


def _seeded(shapes, rng) -> list:
    """BERT's initialisation (normal, std 0.02) with small non-zero biases and LayerNorm gains
    near 1, so that a bias or gain wired to the wrong place changes the output."""
    out = []
    for kind, shape in shapes:
        if kind == "g":
            out.append(rng.uniform(0.9, 1.1, shape).astype(np.float32))
        elif kind == "b":
            out.append((rng.standard_normal(shape) * 0.02).astype(np.float32))
        else:
            out.append((rng.standard_normal(shape) * 0.02).astype(np.float32))
    return out


def w8a_params() -> list:
    cfg = W8A
    rng = np.random.default_rng(C.SEED + 80)
    return _seeded(encoder_layer_shapes(cfg["units"], cfg["ffn"]) * cfg["layers"], rng)


def w8a_input() -> np.ndarray:
    """The encoder's input: (batch, seq, units) hidden states (the embedding output)."""
    rng = np.random.default_rng(C.SEED + 81)
    return rng.standard_normal((W8A["batch"], W8A["seq"], W8A["units"]), dtype=np.float32)


def w8b_shapes() -> list:
    cfg = W8B
    return ([("w", (cfg["seq"], cfg["units"])), ("w", (cfg["vocab"], cfg["units"]))]
            + encoder_layer_shapes(cfg["units"], cfg["ffn"]) * cfg["layers"]
            + [("w", (cfg["vocab"], cfg["units"])), ("b", (cfg["vocab"],))])


def w8b_params() -> list:
    """Positional embedding (the LM block's own parameter, so first), token embedding, the
    layers, the decoder."""
    return _seeded(w8b_shapes(), np.random.default_rng(C.SEED + 82))


def w8b_data():
    """Tokens (batch, seq) and next-token targets (batch, seq), int64."""
    rng = np.random.default_rng(C.SEED + 83)
    t = rng.integers(0, W8B["vocab"], size=(W8B["batch"], W8B["seq"] + 1)).astype(np.int64)
    return t[:, :-1], t[:, 1:]


def causal_mask(seq: int) -> np.ndarray:
    """(1, seq, seq) additive mask: -1e9 where a position would attend to a later one."""
    return np.triu(np.full((seq, seq), -1e9, dtype=np.float32), k=1)[None]


# ------------------------------------------------------------------ numpy references
def _layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu_erf(x):
    try:
        from scipy.special import erf
    except ImportError:                    # a peer's venv without scipy: slower, same values
        from math import erf as _erf
        erf = np.vectorize(_erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def encoder_np(x, flat, layers, heads, eps, mask=None):
    """float64 forward of `layers` post-LN encoder layers (16 arrays each) on x (B, T, D)."""
    h = x.astype(np.float64)
    bsz, t, d = h.shape
    dh = d // heads
    p = [a.astype(np.float64) for a in flat]
    for i in range(layers):
        wq, bq, wk, bk, wv, bv, wo, bo, g1, b1, w1, c1, w2, c2, g2, b2 = p[16 * i:16 * i + 16]

        def heads_of(y):
            return y.reshape(bsz, t, heads, dh).transpose(0, 2, 1, 3)
        q, k, v = (heads_of(h @ w.T + b) for w, b in ((wq, bq), (wk, bk), (wv, bv)))
        s = (q / math.sqrt(dh)) @ k.transpose(0, 1, 3, 2)
        if mask is not None:
            s = s + mask[:, None]
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = a.transpose(0, 2, 1, 3).reshape(bsz, t, d) @ wo.T + bo
        h = _layer_norm(h + a, g1, b1, eps)
        f = _gelu_erf(h @ w1.T + c1) @ w2.T + c2
        h = _layer_norm(h + f, g2, b2, eps)
    return h


def w8b_loss_np(flat, tokens, targets) -> float:
    """First-step loss of W8b (mean softmax cross-entropy over all positions), float64."""
    cfg = W8B
    pos, emb = flat[0], flat[1]
    h = emb[tokens].astype(np.float64) + pos[None]
    h = encoder_np(h, flat[2:-2], cfg["layers"], cfg["heads"], cfg["eps"],
                   causal_mask(cfg["seq"]).astype(np.float64))
    logits = h @ flat[-2].T.astype(np.float64) + flat[-1]
    return C.softmax_ce_np(logits.reshape(-1, cfg["vocab"]), targets.reshape(-1))


def w7_losses_np(steps: int) -> list:
    """Losses of W7's first `steps` steps (MLP, SGD with momentum, float64 numpy)."""
    ws, bs = C.mlp_weights()
    ws = [w.astype(np.float64) for w in ws]
    bs = [b.astype(np.float64) for b in bs]
    x, y = C.mlp_inputs(W7_BATCH)
    x = x.astype(np.float64)
    mom = [np.zeros_like(a) for a in ws + bs]
    out = []
    for _ in range(steps):
        acts = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
        z = acts[-1] - acts[-1].max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        out.append(float(np.mean(-np.log(p[np.arange(len(y)), y]))))
        g = p
        g[np.arange(len(y)), y] -= 1.0
        g /= len(y)
        gw, gb = [None] * len(ws), [None] * len(ws)
        for i in reversed(range(len(ws))):
            gw[i] = acts[i].T @ g
            gb[i] = g.sum(0)
            if i:
                g = (g @ ws[i].T) * (acts[i] > 0)
        for j, (a, ga) in enumerate(zip(ws + bs, gw + gb)):
            mom[j] = W7_MOMENTUM * mom[j] + ga
            a -= W7_LR * mom[j]
    return out


def w9_data():
    rng = np.random.default_rng(C.SEED + 90)
    x = rng.standard_normal((W9_BATCH, 3, W9_IMAGE, W9_IMAGE), dtype=np.float32)
    y = rng.integers(0, W9_CLASSES, size=W9_BATCH).astype(np.int64)
    return x, y


# ------------------------------------------------------------------ loss traces
class LossTrace:
    """Every step's loss, in order, so the report can compare each step across systems (not
    only the first): all systems start from the same weights and data, so step k's loss is
    fixed up to rounding."""

    def __init__(self):
        self.values = []

    def add(self, v: float) -> None:
        v = float(v)
        if not math.isfinite(v):
            raise FloatingPointError(f"loss became {v} at step {len(self.values)}")
        self.values.append(v)

    def fields(self, cap: int = 400) -> dict:
        return {"first_loss": self.values[0], "losses": self.values[:cap],
                "n_steps": len(self.values)}
